"""Benchmark: the scripted oracle's success rate per sim task on 100 seeds (acceptance: >= 99).

Run `python tests/bench/bench_sim_oracle.py [--episodes 100] [--partition ...] [--tasks ...]
[--place-height table ground_truth]`. Each episode resets a task on a test seed and rolls the
oracle out through SimEnv.step (the safety envelope's check, then the pick-and-place primitive
on the simulated xArm) until success, failure or the step limit, once per place-height path:
'table' (the default; a place knows only the table height, as a real executor) and
'ground_truth' (the simulator's surface heights). Prints one line per task and path, the failed
seeds with the reason, and exits 1 if a task is below 99 % on any path (VIMA-Bench's own oracle
succeeded 51/51 in vimabench-spec C.4).
"""
import argparse
import os
import sys
import time

try:
    from llara_policy.sim.env import SimEnv, SimEnvConfig
except ImportError:  # run from a plain checkout, without the colcon workspace sourced
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', '..', 'src', 'llara_policy'))
    from llara_policy.sim.env import SimEnv, SimEnvConfig
from llara_policy.errors import LlaraError
from llara_policy.sim.env import PLACE_HEIGHTS
from llara_policy.sim.episode import SEED_RANGES, Partition, Split
from llara_policy.sim.tasks import TASKS

TARGET_RATE = 0.99


def run_task(task: str, partition: Partition, episodes: int, renderer: str,
             place_height: str):
    """Roll the oracle out on `episodes` test seeds; return (successes, failures, seconds)."""
    failures = []
    successes = 0
    start = time.perf_counter()
    with SimEnv(SimEnvConfig(task=task, partition=partition, split=Split.TEST,
                             renderer=renderer, place_height=place_height)) as env:
        for index in range(episodes):
            seed = SEED_RANGES[Split.TEST].start + index
            try:
                env.reset(seed)
                while True:
                    result = env.step(env.oracle().action)
                    if result.done:
                        break
            except LlaraError as error:
                failures.append((seed, f'error: {error}'))
                continue
            if result.success:
                successes += 1
            else:
                reason = 'failure' if result.failure else f'step limit ({result.steps})'
                failures.append((seed, reason))
    return successes, failures, time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--episodes', type=int, default=100)
    parser.add_argument('--partition', default=Partition.PLACEMENT.value,
                        choices=[p.value for p in Partition])
    parser.add_argument('--tasks', nargs='*', default=sorted(TASKS))
    parser.add_argument('--renderer', default='auto', choices=('auto', 'egl', 'tiny'))
    parser.add_argument('--place-height', nargs='+', default=list(PLACE_HEIGHTS),
                        choices=PLACE_HEIGHTS)
    args = parser.parse_args()
    partition = Partition(args.partition)
    print(f'oracle success, {args.episodes} test seeds per task, {partition.value}, safety '
          f'envelope on (pid {os.getpid()}, {os.cpu_count()} CPUs visible)')
    ok = True
    for place_height in args.place_height:
        print(f'place height: {place_height}')
        for task in args.tasks:
            successes, failures, seconds = run_task(task, partition, args.episodes,
                                                    args.renderer, place_height)
            rate = successes / args.episodes
            ok &= rate >= TARGET_RATE
            print(f'  {task:28s} {successes:4d}/{args.episodes}  {rate:6.1%}  '
                  f'{seconds / args.episodes:.2f} s/episode', flush=True)
            for seed, reason in failures:
                print(f'      seed {seed}: {reason}')
    print('PASS' if ok else f'FAIL: a task is below {TARGET_RATE:.0%}')
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
