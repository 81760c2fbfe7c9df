"""`make demo` (`python -m llara_bringup.demo`): a policy and the oracle through the sim graph.

Runs the embedded launcher's sim.launch.py twice on the same tasks and seeds, its output streamed
with a `[policy]` or `[oracle]` prefix: the policy (a checkpoint folder, by default the shipped
models/demo_policy/) with record:=true, then the sim's oracle. Both run the evaluator's episode
protocol (`llara_training evaluate`): at most LLARA_MAX_STEPS (8) policy queries per episode
(max_steps:=8; the sim env allows as many steps beyond the task's own), a missed pick and a step
refused before any motion each use one query and the episode goes on. From each run's success table
(`episodes.success_table`) and episode lines it prints one table, policy beside oracle, and
last the policy's own `success: K/N`. Outputs in --out: bag/ (the policy run's recording),
demo.gif (one annotated frame per policy/plan), success.png, results.json and, when the policy
folder has aux_curve.csv, aux_curve.png. Exit 0 when the graphs ran, whatever the success rate;
1 when a launcher failed or an output could not be written; 2 for a bad command line or folder.
"""
import argparse
from collections.abc import Sequence
import os
from pathlib import Path
import re
import signal
import subprocess
import sys
from typing import Optional

import yaml

from llara_bringup.demo_outputs import (
    EpisodeRow,
    OutputFolderError,
    RunResult,
    prepare_out,
    write_outputs,
)
from llara_bringup.graphs import PACKAGE, TEST_SEED_BASE, task_list
from llara_bringup.launch import ERROR_PREFIX, child_setup, libc_prctl
from llara_policy.model.config import DTYPES, RECIPE_CONFIG_FILE
from llara_policy.sim.episode import SEED_RANGES, Split
from llara_policy.task_loop import LLARA_MAX_STEPS

DEFAULT_TASKS = 'visual_manipulation,rotate'
DEMO_POLICY = Path('models') / 'demo_policy'  # relative to the package (source or share)
RECIPE = 'src/llara_training/configs/demo_recipe.yaml'
REPORT_DTYPE = 'report'  # --dtype: the dtype of the policy's evaluation report
TOTAL_LINE = re.compile(r'success: (\d+)/(\d+)$')
TABLE_HEADER = re.compile(r'task\s+success\s+rate$')
TABLE_ROW = re.compile(r'(\S+)\s+(\d+)/(\d+)\s+\d+%$')
# e.g. "[launch] episode 1/2 rotate seed 1000000: failure after 0 steps (step 1 failed: ...)"
EPISODE_LINE = re.compile(r'\[launch\] episode \d+/\d+ (\S+) seed (\d+): (success|failure) '
                          r'after (\d+) steps \((.*)\)$')


class DemoError(Exception):
    """The demo cannot run or a run failed; the message is for the user."""


def default_policy_dir() -> Path:
    """Return the shipped demo policy: the source tree's (symlink install), else the share's."""
    source = Path(__file__).resolve().parents[1] / DEMO_POLICY
    if source.is_dir():
        return source
    try:
        from ament_index_python.packages import get_package_share_directory
        share = Path(get_package_share_directory(PACKAGE)) / DEMO_POLICY
    except (ImportError, LookupError):
        return source
    return share if share.is_dir() else source


def check_policy_dir(policy: Path, shipped: bool) -> Path:
    """Return `policy` made absolute; DemoError naming it, and how to get one, if no folder."""
    if policy.is_dir():
        return policy.resolve()
    state = 'is not a folder' if policy.exists() else 'does not exist'
    how = (f'the demo policy is missing: rebuild it with `python -m llara_training recipe '
           f'--config {RECIPE} --out out/demo_recipe --ship {policy}` (about an hour on 2 '
           'cores), or pass --policy DIR' if shipped
           else 'pass --policy DIR, a LLaRA checkpoint folder')
    raise DemoError(f'policy folder {policy} {state}: {how}')


def policy_dtype(policy: Path, asked: str) -> str:
    """Return the model dtype of the policy run: `asked`, or the report's for 'report'.

    The report's is the dtype the policy's evaluation was measured in (its recipe_config.yaml
    `evaluate.dtype`; 'auto' when the folder has no recipe config), so that the graph's
    numbers compare with the report.
    """
    if asked != REPORT_DTYPE:
        return asked
    path = policy / RECIPE_CONFIG_FILE
    if not path.is_file():
        return 'auto'
    try:
        dtype = (yaml.safe_load(path.read_text()) or {}).get('evaluate', {}).get('dtype', 'auto')
    except (OSError, yaml.YAMLError, AttributeError) as error:
        raise DemoError(f'cannot read evaluate.dtype from {path}: {error}') from error
    if dtype not in DTYPES:
        raise DemoError(f'{path}: evaluate.dtype must be one of {DTYPES}, got {dtype!r}')
    return dtype


def launcher_command(args: argparse.Namespace, policy: str, record_dir: str) -> list[str]:
    """Return the launcher's command line for one run (record_dir '': no recording)."""
    cmd = [sys.executable, '-m', 'llara_bringup.launch', 'sim.launch.py', f'policy:={policy}',
           f'task:={",".join(args.tasks)}', f'partition:={args.partition}',
           f'episodes:={args.episodes}', f'seed:={args.seed}', f'renderer:={args.renderer}',
           f'max_steps:={LLARA_MAX_STEPS}',  # the evaluator's budget (evaluate --max-steps)
           f'dtype:={args.dtype}']
    if record_dir:
        cmd += ['record:=true', f'record_dir:={record_dir}']
    return cmd


def stream_launcher(label: str, cmd: list[str]) -> tuple[int, list[str]]:
    """Run the launcher, each output line printed as `[label] line`; (exit code, lines).

    It runs in a session of its own and gets SIGINT when this process dies; a Ctrl-C or
    SIGTERM here is passed on once as SIGINT (the launcher then stops its graph cleanly) and
    re-raised once it has exited.
    """
    print(f'[demo] {label} run: {" ".join(cmd[1:])}', flush=True)
    process = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL, text=True, start_new_session=True,
                               env=dict(os.environ, PYTHONUNBUFFERED='1'),
                               preexec_fn=child_setup(libc_prctl(), os.getpid()))
    lines: list[str] = []

    def forward() -> None:
        for line in process.stdout:
            lines.append(line.rstrip('\n'))
            print(f'[{label}] {lines[-1]}', flush=True)

    try:
        forward()
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print(f'[demo] interrupted: stopping the {label} run', flush=True)
        process.send_signal(signal.SIGINT)
        forward()
        process.wait()
        raise
    return process.wait(), lines


def parse_run(label: str, lines: list[str], tasks: Sequence[str], episodes: int) -> RunResult:
    """Read the success table and episode lines; check them against each other and the ask."""
    if not lines or not TOTAL_LINE.match(lines[-1]):
        raise DemoError(f'the {label} run did not end with its `success: K/N` line')
    end = len(lines) - 1
    start = end
    while start > 0 and TABLE_ROW.match(lines[start - 1]):
        start -= 1
    if start == 0 or not TABLE_HEADER.match(lines[start - 1]):
        raise DemoError(f'the {label} run printed no success table above its last line')
    scores = {}
    for line in lines[start:end]:
        task, wins, runs = TABLE_ROW.match(line).groups()
        scores[task] = (int(wins), int(runs))
    rows = tuple(EpisodeRow(task, int(seed), outcome == 'success', int(steps), message)
                 for task, seed, outcome, steps, message
                 in (m.groups() for m in map(EPISODE_LINE.match, lines) if m))
    counted = {t: (sum(r.success for r in rows if r.task == t),
                   sum(r.task == t for r in rows)) for t in dict.fromkeys(r.task for r in rows)}
    asked = {t: episodes for t in tasks}
    if counted != scores or {t: n for t, (_, n) in scores.items()} != asked:
        raise DemoError(f'the {label} run reported {scores} in its table and {counted} in its '
                        f'episode lines; asked for {asked}')
    wins, runs = map(int, TOTAL_LINE.match(lines[-1]).groups())
    if (wins, runs) != (sum(w for w, _ in scores.values()), sum(n for _, n in scores.values())):
        raise DemoError(f"the {label} run's last line {lines[-1]!r} disagrees with its table")
    return RunResult(label, scores, rows, lines[-1])


def run_graph(label: str, cmd: list[str], args: argparse.Namespace) -> RunResult:
    """One launcher run, parsed; DemoError with the launcher's own report when it failed."""
    code, lines = stream_launcher(label, cmd)
    if code != 0:
        first = next((k for k, line in enumerate(lines) if line.startswith(ERROR_PREFIX)),
                     max(len(lines) - 5, 0))
        report = '\n  '.join(lines[first:]) or '(no output)'
        raise DemoError(f'the {label} run failed: the launcher exited with code {code}:\n  '
                        f'{report}')
    return parse_run(label, lines, args.tasks, args.episodes)


def _cell(score: Optional[tuple[int, int]]) -> tuple[str, str]:
    if score is None:
        return '-', '-'
    return f'{score[0]}/{score[1]}', f'{score[0] / score[1]:.0%}'


def combined_table(policy: RunResult, oracle: Optional[RunResult]) -> str:
    """One row per task: policy K/N and rate, oracle K/N and rate; then policy's total line."""
    lines = [f'{"task":<32} {"policy":>9} {"rate":>6} {"oracle":>9} {"rate":>6}']
    for task, score in policy.scores.items():
        cells = (*_cell(score), *_cell(oracle.scores.get(task) if oracle else None))
        lines.append(f'{task:<32} {cells[0]:>9} {cells[1]:>6} {cells[2]:>9} {cells[3]:>6}')
    lines.append(policy.total_line)
    return '\n'.join(lines)


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    """Read the command line (argparse exits 2 on a bad one)."""
    def count(text: str, least: int) -> int:
        value = int(text)
        if value < least:
            raise argparse.ArgumentTypeError(f'must be at least {least}, got {value}')
        return value

    def tasks(text: str) -> tuple[str, ...]:
        try:
            return task_list(text)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    parser = argparse.ArgumentParser(prog='python -m llara_bringup.demo', description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--policy', type=Path, help='checkpoint folder (default: the '
                        f"package's {DEMO_POLICY}/)")
    parser.add_argument('--tasks', type=tasks, default=task_list(DEFAULT_TASKS),
                        help=f'comma-separated sim tasks (default {DEFAULT_TASKS})')
    parser.add_argument('--partition', default='placement_generalization',
                        help='VIMA partition of the sim episodes (default '
                        'placement_generalization)')
    parser.add_argument('--episodes', type=lambda t: count(t, 1), default=10,
                        help='episodes per task (default 10)')
    parser.add_argument('--seed', type=lambda t: count(t, 0), default=0,
                        help=f'episode k of a task uses test seed {TEST_SEED_BASE:,} + seed + k, '
                        'for the policy and the oracle alike (default 0)')
    parser.add_argument('--out', type=Path, default=Path('demo_out'),
                        help='output folder (default demo_out/ under the working directory)')
    parser.add_argument('--renderer', default='tiny', choices=('tiny', 'egl', 'auto'),
                        help='sim camera renderer (default tiny: CPU)')
    parser.add_argument('--dtype', default=REPORT_DTYPE, choices=(REPORT_DTYPE, *DTYPES),
                        help=f"model dtype (default '{REPORT_DTYPE}': the dtype the policy's "
                        f'evaluation report was measured in, from its {RECIPE_CONFIG_FILE}; auto '
                        "when it has none). 'auto' picks bfloat16 on a CPU with native bf16: "
                        "a small model's close digits then differ from a float32 report")
    parser.add_argument('--no-oracle', dest='oracle', action='store_false',
                        help='skip the oracle run')
    args = parser.parse_args(argv)
    last = TEST_SEED_BASE + args.seed + args.episodes - 1
    if last not in SEED_RANGES[Split.TEST]:
        # --seed is an offset into the test seeds: e.g. --seed 1000000 would ask for 2000000.
        parser.error(f'--seed {args.seed} with --episodes {args.episodes} reaches test seed '
                     f'{last:,}; test seeds are {SEED_RANGES[Split.TEST].start:,}..'
                     f'{SEED_RANGES[Split.TEST].stop - 1:,} (--seed is an offset from '
                     f'{TEST_SEED_BASE:,})')
    return args


def _terminate(signum, frame) -> None:
    raise KeyboardInterrupt


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point; exit codes in the module docstring (130 when interrupted)."""
    args = parse_args(argv)
    # Ctrl-C and SIGTERM stop the run in progress cleanly, even when this process was started
    # with SIGINT ignored (in the background of a script).
    signal.signal(signal.SIGINT, _terminate)
    signal.signal(signal.SIGTERM, _terminate)
    try:
        policy = check_policy_dir(args.policy or default_policy_dir(), args.policy is None)
        args.dtype = policy_dtype(policy, args.dtype)
        out = args.out.resolve()
        prepare_out(out)
    except (DemoError, OutputFolderError) as error:
        print(f'demo: {error}', file=sys.stderr, flush=True)
        return 2
    try:
        policy_run = run_graph('policy', launcher_command(args, str(policy), str(out / 'bag')),
                               args)
        oracle_run = run_graph('oracle', launcher_command(args, 'oracle', ''), args) \
            if args.oracle else None
    except DemoError as error:
        print(f'demo: {error}', file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        print('demo: interrupted', file=sys.stderr, flush=True)
        return 130
    failures = write_outputs(out, policy, args, policy_run, oracle_run)
    print(combined_table(policy_run, oracle_run), flush=True)
    return 1 if failures else 0


if __name__ == '__main__':
    raise SystemExit(main())
