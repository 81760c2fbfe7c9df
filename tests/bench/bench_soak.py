"""Benchmark: a soak of many sim episodes through the whole graph; no crash, bounded memory growth.

Run `python tests/bench/bench_soak.py [--episodes 200] [--task rotate] [--warmup 20]`.
One embedded launcher (`sim.launch.py policy:=oracle episodes:=N`, own process group and
ROS_DOMAIN_ID, TinyRenderer) runs all N episodes: sim_node, policy_node and task_node as
separate processes for the whole run, every episode through sim/reset + run_task. While its
output streams in, after every `[launch] episode k/N` line the resident memory (RSS; psutil,
else /proc/<pid>/status VmRSS) of every node process and of the launcher (whose episode runner
is a node too) is sampled. Growth per process = RSS at the last episode's sample / RSS after
episode `--warmup` (the start-up and the first episodes allocate caches, pools and DDS history
that a leak must not be confused with) - 1; the least-squares slope over those samples
(MB per 100 episodes) is printed next to it. Baseline of the same run: the RSS after warm-up.
Target: launcher exit 0 with its `success: K/N` line, no node exited early, and growth < 10 %
for every process; exits 1 on a crash or an unfinished run (memory growth is only reported).
It takes about 1 s per episode on our 2-core machine (oracle, TinyRenderer), 3-4 minutes for the
default 200; `--episodes` makes it shorter or longer.
"""
import argparse
import os
import queue
import random
import re
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # bench_graph
from bench_graph import stop_launcher  # noqa: E402 (after the path set-up)
import numpy as np  # noqa: E402

try:
    import psutil
except ImportError:  # /proc below
    psutil = None

TARGET_GROWTH = 0.10
STARTUP_TIMEOUT_S = 300.0
EPISODE_TIMEOUT_S = 60.0  # generous: an oracle episode takes about a second
EPISODE_LINE = re.compile(r'\[launch\] episode (\d+)/(\d+) \S+ seed \d+: (success|failure)')
SUCCESS_LINE = re.compile(r'success: (\d+)/(\d+)$')
NODE_MODULE = re.compile(r'^llara_policy\.ros\.(\w+)$')
CRASH_MARKS = ('exited with code', 'did not stop on SIGINT', 'Traceback')


def rss_bytes(pid: int) -> int:
    """Resident memory of `pid` in bytes; 0 when it is gone."""
    if psutil is not None:
        try:
            return psutil.Process(pid).memory_info().rss
        except psutil.Error:
            return 0
    try:
        with open(f'/proc/{pid}/status') as file:
            for line in file:
                if line.startswith('VmRSS:'):
                    return int(line.split()[1]) * 1024  # kB
    except OSError:
        pass
    return 0


def node_processes(launcher_pid: int) -> dict[str, int]:
    """The launcher and its node processes: name -> pid (nodes named by their module)."""
    found = {'launcher': launcher_pid}
    for thread in os.listdir(f'/proc/{launcher_pid}/task'):
        try:
            with open(f'/proc/{launcher_pid}/task/{thread}/children') as file:
                children = [int(pid) for pid in file.read().split()]
        except OSError:
            continue
        for pid in children:
            try:
                with open(f'/proc/{pid}/cmdline') as file:
                    argv = file.read().split('\0')
            except OSError:
                continue
            module = argv[argv.index('-m') + 1] if '-m' in argv[:-1] else ''
            match = NODE_MODULE.match(module)
            found[match[1] if match else f'pid {pid}'] = pid
    return found


def _reader(stream, lines: queue.Queue) -> None:
    for line in stream:
        lines.put(line.rstrip('\n'))
    lines.put(None)


def soak(args) -> dict:
    """Run the launcher; sample RSS after each episode; return what was seen."""
    env = dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST',
               ROS_DOMAIN_ID=str(args.domain_id), PYTHONUNBUFFERED='1')
    command = [sys.executable, '-m', 'llara_bringup.launch', 'sim.launch.py',
               f'task:={args.task}', f'episodes:={args.episodes}', 'seed:=0', 'policy:=oracle',
               f'renderer:={args.renderer}']
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, env=env, start_new_session=True)
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=_reader, args=(process.stdout, lines), daemon=True).start()
    deadline = time.monotonic() + STARTUP_TIMEOUT_S + EPISODE_TIMEOUT_S * args.episodes
    seen = {'output': [], 'samples': {}, 'episodes': {}, 'error': '', 'pids': {}, 'at_s': {}}
    try:
        while True:
            try:
                line = lines.get(timeout=max(deadline - time.monotonic(), 0.01))
            except queue.Empty:
                seen['error'] = f'timed out after {time.perf_counter() - start:.0f} s'
                break
            if line is None:
                break
            seen['output'].append(line)
            match = EPISODE_LINE.search(line)  # a node line may be printed in front
            if not match:
                continue
            episode = int(match[1])
            seen['episodes'][episode] = match[3] == 'success'
            seen['at_s'][episode] = time.perf_counter() - start
            if episode >= args.warmup:
                pids = node_processes(process.pid)
                seen['pids'] = seen['pids'] or pids
                seen['samples'][episode] = {name: rss_bytes(pid) for name, pid in pids.items()}
            if episode % 20 == 0:
                print(f'  episode {episode}/{args.episodes} after '
                      f'{time.perf_counter() - start:.0f} s', flush=True)
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            seen['output'] += stop_launcher(process).splitlines()
    seen['returncode'] = process.returncode
    seen['wall_s'] = time.perf_counter() - start
    return seen


def growth_rows(samples: dict[int, dict[str, int]], warmup: int):
    """Per process: (name, warm-up MB, end MB, end episode, max MB, growth, slope MB/100 ep)."""
    episodes = sorted(samples)
    names = list(samples[episodes[0]]) if episodes else []
    rows = []
    for name in names:
        # The last sample with the process still alive (the launcher stops nodes at the end).
        alive = [(e, samples[e].get(name, 0)) for e in episodes if samples[e].get(name, 0)]
        if not alive or alive[0][0] != warmup:
            rows.append((name, 0.0, 0.0, 0, 0.0, float('nan'), float('nan')))
            continue
        x = np.array([e for e, _ in alive], dtype=float)
        y = np.array([rss for _, rss in alive], dtype=float) / 2**20
        slope = float(np.polyfit(x, y, 1)[0]) * 100 if len(alive) > 1 else 0.0
        rows.append((name, y[0], y[-1], int(x[-1]), float(y.max()), y[-1] / y[0] - 1, slope))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--episodes', type=int, default=200)
    parser.add_argument('--task', default='rotate', help='sim task of every episode')
    parser.add_argument('--warmup', type=int, default=20,
                        help='episodes before the baseline RSS sample')
    parser.add_argument('--renderer', default='tiny', choices=('auto', 'egl', 'tiny'))
    parser.add_argument('--domain-id', type=int, default=None,
                        help='ROS_DOMAIN_ID of the graph; default: random 100-200')
    args = parser.parse_args()
    if not 1 <= args.warmup < args.episodes:
        parser.error('--warmup must be at least 1 and below --episodes')
    if args.domain_id is None:
        args.domain_id = random.Random(os.getpid()).randint(100, 200)
    print(f'soak: {args.episodes} {args.task} episodes through the sim graph (sim.launch.py '
          f'policy:=oracle, renderer {args.renderer}), RSS baseline after episode '
          f'{args.warmup}, ROS_DOMAIN_ID {args.domain_id}, RSS via '
          f'{"psutil" if psutil else "/proc"}; {os.cpu_count()} CPUs, load average '
          f'{os.getloadavg()[0]:.2f}', flush=True)
    seen = soak(args)
    output = seen['output']
    match = next(filter(None, map(SUCCESS_LINE.search, reversed(output))), None)
    crashes = [line for line in output if any(mark in line for mark in CRASH_MARKS)]
    completed = match is not None and int(match[2]) == args.episodes
    no_crash = (not seen['error'] and seen['returncode'] == 0 and completed and not crashes)
    rows = growth_rows(seen['samples'], args.warmup)
    print(f'\n{"process":14s} {"pid":>7} {f"RSS ep {args.warmup} MB":>13} {"RSS end MB":>10} '
          f'{"end ep":>6} {"max MB":>7} {"growth":>7} {"MB/100 ep":>9}')
    for name, warm, end, end_episode, peak, growth, slope in rows:
        print(f'{name:14s} {seen["pids"].get(name, 0):7d} {warm:13.1f} {end:10.1f} '
              f'{end_episode:6d} {peak:7.1f} {growth:7.2%} {slope:9.2f}')
    wins = sum(seen['episodes'].values())
    print(f'episodes: {len(seen["episodes"])}/{args.episodes} run, {wins} successes; launcher '
          f'exit {seen["returncode"]}, success line: {match[0] if match else "none"}; '
          f'{seen["error"] or "no timeout"}')
    for line in crashes[:10]:
        print(f'  crash sign: {line}')
    if seen['error'] or not completed or seen['returncode'] != 0:
        print('last launcher output:\n' + '\n'.join(output[-30:]))
    at_s = seen['at_s']
    if len(at_s) > 1:
        first, last = min(at_s), max(at_s)
        print(f'wall time {seen["wall_s"]:.0f} s: graph start-up and episode {first} done after '
              f'{at_s[first]:.0f} s, then {(at_s[last] - at_s[first]) / (last - first):.2f} '
              f's/episode')
    else:
        print(f'wall time {seen["wall_s"]:.0f} s')
    worst = max((growth for *_, growth, _ in rows), default=float('nan'))
    memory_ok = bool(rows) and all(growth < TARGET_GROWTH for *_, growth, _ in rows)
    print(f'no crash: {no_crash}; largest RSS growth {worst:.2%} (target < {TARGET_GROWTH:.0%} '
          f'per process: {"met" if memory_ok else "MISSED"})')
    print(f'load average after: {os.getloadavg()[0]:.2f}')
    return 0 if no_crash else 1


if __name__ == '__main__':
    sys.exit(main())
