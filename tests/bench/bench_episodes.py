"""Benchmark: sim oracle episodes generated per second per worker, with 1 and 2 workers.

Run `python tests/bench/bench_episodes.py [--seeds 12] [--tasks rotate,visual_manipulation]
[--renderer auto]`. Each run generates the same (task, seed) episodes into a fresh store with
`llara_training.sources.sim_rollouts.generate` (episodes written to disk, as `llara_training
episodes generate` does). Reports, per worker count, the whole run (process start, env set-up
and writing included) and the steady state (from each worker's first finished episode on), as
episodes per second per worker, and the 2-worker / 1-worker ratio of the steady per-worker
rate (1.0 = perfect scaling), and the CPU seconds each episode cost (process and workers,
start-up included): a figure that other load on the machine does not change, unlike the rates.
"""
import argparse
import os
from pathlib import Path
import resource
import sys
import tempfile
import time

try:
    from llara_training.sources.sim_rollouts import RolloutConfig, generate
except ImportError:  # run from a plain checkout, without the colcon workspace sourced
    root = Path(__file__).resolve().parents[2] / 'src'
    sys.path[:0] = [str(root / 'llara_policy'), str(root / 'llara_training')]
    from llara_training.sources.sim_rollouts import RolloutConfig, generate


def measure(config: RolloutConfig, workers: int) -> dict:
    """Generate the episodes with `workers` processes; return the timings."""
    cpu_before = _cpu_s()
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        stamps, statuses = [], []
        for outcome in generate(config, out, workers):
            stamps.append(time.perf_counter() - start)
            statuses.append(outcome.status)
        wall = time.perf_counter() - start
    cpu = _cpu_s() - cpu_before  # this process and its reaped workers
    count = len(stamps)
    # Steady state: after the first `workers` outcomes (each worker's start-up is behind it).
    steady = (count - workers) / (stamps[-1] - stamps[workers - 1]) if count > workers else 0.0
    return {'workers': workers, 'episodes': count, 'wall_s': wall,
            'written': statuses.count('written'), 'rejected': statuses.count('rejected'),
            'per_worker_overall': count / wall / workers, 'per_worker_steady': steady / workers,
            'cpu_s_per_episode': cpu / count}


def _cpu_s() -> float:
    """User + system CPU seconds of this process and its finished children."""
    own, children = (resource.getrusage(who) for who in (resource.RUSAGE_SELF,
                                                          resource.RUSAGE_CHILDREN))
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main() -> int:
    """Run 1 and 2 workers on the same episodes, print the table and the ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--seeds', type=int, default=12, help='seeds 0..N-1 per task')
    parser.add_argument('--tasks', default='rotate,visual_manipulation')
    parser.add_argument('--renderer', default='auto', choices=['auto', 'egl', 'tiny'])
    args = parser.parse_args()
    config = RolloutConfig(tuple(args.tasks.split(',')), range(args.seeds),
                           renderer=args.renderer)
    print(f'sim oracle episodes: {args.tasks}, seeds 0..{args.seeds - 1}, renderer '
          f'{args.renderer}, {os.cpu_count()} CPUs')
    print(f'{"workers":>7} {"episodes":>8} {"wall s":>7} {"ep/s/worker (overall)":>22} '
          f'{"ep/s/worker (steady)":>21} {"CPU s/episode":>14}')
    results = [measure(config, workers) for workers in (1, 2)]
    for r in results:
        print(f"{r['workers']:>7} {r['episodes']:>8} {r['wall_s']:>7.1f} "
              f"{r['per_worker_overall']:>22.2f} {r['per_worker_steady']:>21.2f} "
              f"{r['cpu_s_per_episode']:>14.3f}"
              + (f"  ({r['rejected']} rejected)" if r['rejected'] else ''))
    one, two = results
    steady = two['per_worker_steady'] / one['per_worker_steady']
    overall = two['per_worker_overall'] / one['per_worker_overall']
    print(f'ratio 2 workers / 1 worker, per worker: {steady:.2f} steady, {overall:.2f} overall; '
          f'total throughput x{2 * steady:.2f} steady')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
