"""Benchmark: sim costs per task: reset, oracle step, rendered frame (256x128 and 640x480).

Run `python tests/bench/bench_sim.py [--episodes 5] [--renderer auto|egl|tiny]
[--place-height table|ground_truth]`. For each task it times `SimEnv.reset`, one oracle step
(`oracle()` + `step()`: the workspace check, the pick-and-place on the simulated xArm plus
settling and the new frame), and `SimWorld.render` of the front camera at
the model frame size and at 640x480. Targets on a 2-core machine: reset + full oracle episode
of visual_manipulation under 1.5 s; a 256x128 frame under 40 ms. The load average is printed:
other processes on a shared machine slow every number down.
"""
import argparse
import os
import statistics
import sys
import time

try:
    from llara_policy.sim.env import SimEnv, SimEnvConfig
except ImportError:  # run from a plain checkout, without the colcon workspace sourced
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', '..', 'src', 'llara_policy'))
    from llara_policy.sim.env import SimEnv, SimEnvConfig
from llara_policy.sim.env import PLACE_HEIGHTS
from llara_policy.sim.episode import SEED_RANGES, Split
from llara_policy.sim.tasks import TASKS

EPISODE_TARGET_S = 1.5
FRAME_TARGET_S = 0.040
FRAMES = 10


def median_time(call, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_task(task: str, episodes: int, renderer: str, place_height: str) -> dict:
    resets, steps, episodes_s = [], [], []
    with SimEnv(SimEnvConfig(task=task, split=Split.TEST, renderer=renderer,
                             place_height=place_height)) as env:
        for index in range(episodes):
            seed = SEED_RANGES[Split.TEST].start + index
            start = time.perf_counter()
            env.reset(seed)
            resets.append(time.perf_counter() - start)
            while True:
                step_start = time.perf_counter()
                result = env.step(env.oracle().action)
                steps.append(time.perf_counter() - step_start)
                if result.done:
                    break
            episodes_s.append(time.perf_counter() - start)
        small = env.camera
        large = env.camera.scaled(640, 480)
        env.world.render(large)  # first use of a size allocates buffers
        frame_small = median_time(lambda: env.world.render(small), FRAMES)
        frame_large = median_time(lambda: env.world.render(large), FRAMES)
        egl = env.world.uses_egl
    return {'reset': statistics.median(resets), 'step': statistics.median(steps),
            'episode': statistics.median(episodes_s), 'small': frame_small,
            'large': frame_large, 'egl': egl}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--episodes', type=int, default=5)
    parser.add_argument('--renderer', default='auto', choices=('auto', 'egl', 'tiny'))
    parser.add_argument('--tasks', nargs='*', default=sorted(TASKS))
    parser.add_argument('--place-height', default='table', choices=PLACE_HEIGHTS)
    args = parser.parse_args()
    load = ', '.join(f'{v:.2f}' for v in os.getloadavg())
    print(f'sim timings, median of {args.episodes} test episodes per task; renderer '
          f'{args.renderer}; {os.cpu_count()} CPUs, load average {load}')
    print(f'{"task":28s} {"reset s":>8s} {"step s":>8s} {"episode s":>10s} '
          f'{"256x128 ms":>11s} {"640x480 ms":>11s}')
    ok = True
    for task in args.tasks:
        r = bench_task(task, args.episodes, args.renderer, args.place_height)
        print(f'{task:28s} {r["reset"]:8.3f} {r["step"]:8.3f} {r["episode"]:10.3f} '
              f'{r["small"] * 1000:11.1f} {r["large"] * 1000:11.1f}'
              f'{"  (EGL)" if r["egl"] else "  (TinyRenderer)"}', flush=True)
        if task == 'visual_manipulation':
            ok &= r['episode'] < EPISODE_TARGET_S
        ok &= r['small'] < FRAME_TARGET_S
    print(f'targets: visual_manipulation reset + episode < {EPISODE_TARGET_S} s, 256x128 frame '
          f'< {FRAME_TARGET_S * 1000:.0f} ms: {"met" if ok else "NOT met"}')
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
