"""Benchmark: VIMA-Bench's oracle through VimaBenchEnv's model points vs VIMA's own oracle loop.

Run `python tests/bench/bench_vima_oracle.py [--seeds 0-4] [--partitions ...] [--tasks ...]
[--hows native model] [--mapping unbiased] [--jobs N] [--out results.jsonl]`. Every task of
each partition runs on the same seeds in one subprocess per (partition, task, how) (one VIMA
env per process): 'native' is VIMA's own loop (scripts/oracle/run.py), 'model' the oracle's
model-frame step through the fixed map in --mapping's convention, 'table' its table action.
Prints success per partition (tasks pooled) and every failed episode, and exits 1 if 'model'
falls more than 2 points below 'native' in a partition (the target of issue 9 item 9). Skips
(exit 0) when vima_bench is not installed (`make vima`).
"""
import argparse
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
import json
import os
import subprocess
import sys
import time

try:
    from llara_policy.sim.vima_bench import VIMA_PARTITION_TASKS, vima_bench_available
except ImportError:  # run from a plain checkout, without the colcon workspace sourced
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', '..', 'src', 'llara_policy'))
    from llara_policy.sim.vima_bench import VIMA_PARTITION_TASKS, vima_bench_available
from llara_policy.sim.episode import Partition

TARGET_POINTS = 2.0


def run(partition: str, task: str, how: str, seeds: str, mapping: str) -> list[dict]:
    """Run one subprocess of llara_policy.sim.vima_oracle; return its episode records."""
    command = [sys.executable, '-m', 'llara_policy.sim.vima_oracle', '--task', task,
               '--partition', partition, '--seeds', seeds, '--how', how, '--mapping', mapping]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    # pybullet's C code prints without a newline, so a record may follow its text on a line.
    records = [json.loads(line[line.index('{"task"'):]) for line in done.stdout.splitlines()
               if '{"task"' in line]
    if done.returncode != 0:
        records.append({'task': task, 'partition': partition, 'how': how, 'seed': None,
                        'success': False, 'error': done.stderr.strip().splitlines()[-1:]})
    return records


def main() -> int:
    """Run the sweep, print the table and the failures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--seeds', default='0-4')
    parser.add_argument('--partitions', nargs='+', default=[p.value for p in Partition])
    parser.add_argument('--tasks', nargs='+', default=None)
    parser.add_argument('--hows', nargs='+', default=['native', 'model'])
    parser.add_argument('--mapping', default='unbiased')
    parser.add_argument('--jobs', type=int, default=os.cpu_count() or 1)
    parser.add_argument('--out', default=None, help='also write every record here (JSON lines)')
    args = parser.parse_args()
    if not vima_bench_available():
        print('skipped: vima_bench is not installed (make vima)')
        return 0
    runs = [(partition, task, how) for partition in args.partitions
            for task in VIMA_PARTITION_TASKS[Partition(partition)]
            if args.tasks is None or task in args.tasks for how in args.hows]
    start = time.monotonic()
    records = []
    # Records are written as each run ends, so a long sweep keeps what it measured.
    with ThreadPoolExecutor(args.jobs) as pool, open(args.out or os.devnull, 'w') as out:
        for batch in pool.map(lambda r: run(*r, args.seeds, args.mapping), runs):
            records.extend(batch)
            out.writelines(json.dumps(r) + '\n' for r in batch)
            out.flush()
    tally = defaultdict(lambda: [0, 0])
    for r in records:
        tally[r['partition'], r['how']][0] += bool(r['success'])
        tally[r['partition'], r['how']][1] += 1
    print(f'VIMA-Bench oracle success, seeds {args.seeds}, mapping {args.mapping} '
          f'({time.monotonic() - start:.0f} s, {args.jobs} jobs)')
    status = 0
    for partition in args.partitions:
        cells = {how: tally[partition, how] for how in args.hows}
        line = '  '.join(f'{how} {k}/{n} ({100 * k / max(n, 1):.1f}%)'
                         for how, (k, n) in cells.items())
        verdict = ''
        if 'native' in cells and 'model' in cells:
            gap = 100 * (cells['native'][0] / max(cells['native'][1], 1)
                         - cells['model'][0] / max(cells['model'][1], 1))
            verdict = f'  gap {gap:+.1f} points'
            if gap > TARGET_POINTS:
                verdict += f' (target <= {TARGET_POINTS:g})'
                status = 1
        print(f'{partition:30s} {line}{verdict}')
    for r in records:
        if not r['success']:
            print('failed:', json.dumps(r))
    return status


if __name__ == '__main__':
    sys.exit(main())
