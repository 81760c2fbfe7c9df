"""`llara_training episodes ACTION`: generate or import episodes into an episode store.

  generate     oracle rollouts of the embedded sim: --tasks x --seeds A:B, --shard K/N of the
               seed range (one per machine), --workers W processes
  import-vima  VIMA-Data trajectory folders under ROOT (--split-list: LLaRA's vima-*.json)
  import-bag   recorded sessions of the ROS graph (rosbag2/MCAP directories)
  merge        several stores (e.g. one per shard) into --out, without duplicates

Every action is resumable: items with an outcome in --out (an episode, or a rejection with
its reason) are skipped, and a finished generation shard is skipped whole. Progress bar on a
terminal, a summary at the end (also in --out/summary-<action>.json). Exit status 0; 1 when an
import rejected something or a merge met conflicting episodes (the summary names them); 2 for
bad options.
"""
import argparse
from collections import Counter
from collections.abc import Callable, Iterable
import json
from pathlib import Path
import sys
import time

from llara_policy.errors import ConfigError, LlaraError
from llara_policy.sim.episode import Split
from llara_policy.sim.tasks import TASKS
from llara_training.episode import LabelMapping
from llara_training.episode_store import merge_stores
from llara_training.sources.sim_rollouts import (
    Outcome,
    RolloutConfig,
    Shard,
    generate,
    parse_seeds,
)

# Rejection reasons shown per summary, the rest counted.
_SHOWN = 10


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the arguments of `llara_training episodes`."""
    actions = parser.add_subparsers(dest='action', required=True, metavar='ACTION')
    gen = actions.add_parser('generate', help='oracle rollouts of the embedded sim')
    gen.add_argument('--out', type=Path, required=True, help='episode store directory')
    gen.add_argument('--tasks', required=True,
                     help=f'comma-separated sim tasks ({", ".join(sorted(TASKS))})')
    gen.add_argument('--seeds', required=True, help='seed range A:B (seeds A..B-1)')
    gen.add_argument('--shard', default='0/1', help='K/N: the K-th of N blocks of the seeds')
    gen.add_argument('--workers', type=int, default=1, help='worker processes (default 1)')
    gen.add_argument('--split', choices=[s.value for s in Split], default=Split.TRAIN.value,
                     help='seed split (train 0:1000000, test 1000000:2000000)')
    gen.add_argument('--mapping', choices=['unbiased', 'llara'], default='unbiased',
                     help="point labels: pixel centres (unbiased) or LLaRA's int() pixels")
    gen.add_argument('--keep-failed', action='store_true',
                     help='also store unsuccessful oracle episodes (success=false)')
    gen.add_argument('--renderer', choices=['auto', 'egl', 'tiny'], default='auto',
                     help='sim renderer (auto: EGL where it loads, else TinyRenderer)')
    vima = actions.add_parser('import-vima', help='VIMA-Data trajectory folders')
    vima.add_argument('root', type=Path, help='directory the keys are relative to')
    vima.add_argument('--out', type=Path, required=True, help='episode store directory')
    vima.add_argument('--split-list', type=Path,
                      help="LLaRA's split list (vima-8k.json); default: every folder under root")
    vima.add_argument('--split', default='train', help='list in --split-list (default train)')
    vima.add_argument('--mapping', choices=['llara', 'unbiased'], default='llara',
                      help="point labels: LLaRA's pos2pix_front (default) or pixel centres")
    bag = actions.add_parser('import-bag', help='recorded sessions (rosbag2 directories)')
    bag.add_argument('bags', type=Path, nargs='+', help='recording directories')
    bag.add_argument('--out', type=Path, required=True, help='episode store directory')
    merge = actions.add_parser('merge', help='merge stores (e.g. shards) into one')
    merge.add_argument('sources', type=Path, nargs='+', help='episode stores')
    merge.add_argument('--out', type=Path, required=True, help='destination store')


def run(args: argparse.Namespace) -> int:
    """Run the action; see the module docstring for the exit status."""
    started = time.monotonic()
    try:
        if args.action == 'merge':
            return _merge(args)
        outcomes, source = _outcomes(args)
        summary = summarise(args.action, _with_progress(outcomes, args.action), source)
    except LlaraError as error:
        print(f'episodes {args.action}: {type(error).__name__}: {error}', file=sys.stderr)
        return 2
    summary['seconds'] = round(time.monotonic() - started, 1)
    _report(args.out, args.action, summary)
    return 1 if args.action != 'generate' and summary['rejected'] else 0


def _outcomes(args) -> tuple[Callable[[Callable[[int], None]], Iterable[Outcome]], str]:
    """Return a function of on_total that yields the action's outcomes, and a label."""
    if args.action == 'generate':
        config = RolloutConfig(
            tuple(t.strip() for t in args.tasks.split(',') if t.strip()),
            parse_seeds(args.seeds), Shard.parse(args.shard), Split(args.split),
            LabelMapping(args.mapping), args.keep_failed, args.renderer)
        return (lambda on_total: generate(config, args.out, args.workers, on_total),
                f'shard {args.shard} of seeds {args.seeds}')
    if args.action == 'import-vima':
        from llara_training.sources.vima_data import discover, import_vima, split_keys

        if not args.root.is_dir():
            raise ConfigError(f'VIMA-Data root {str(args.root)!r} is not a directory')
        keys = (split_keys(args.split_list, args.split) if args.split_list
                else discover(args.root))
        return (lambda on_total: import_vima(args.root, keys, args.out,
                                             LabelMapping(args.mapping), on_total),
                str(args.root))
    from llara_training.sources.rosbag import import_bags

    return (lambda on_total: import_bags(args.bags, args.out, on_total),
            ', '.join(map(str, args.bags)))


def _with_progress(outcomes, action: str) -> Iterable[Outcome]:
    try:
        from tqdm import tqdm
    except ImportError:  # tqdm is optional: no bar, the summary still says everything
        yield from outcomes(lambda total: None)
        return
    bar = tqdm(unit='episode', desc=action, file=sys.stderr, disable=None)
    try:
        for outcome in outcomes(lambda total: setattr(bar, 'total', total) or bar.refresh()):
            bar.update(1)
            bar.set_postfix_str(outcome.status, refresh=False)
            yield outcome
    finally:
        bar.close()


def summarise(action: str, outcomes: Iterable[Outcome], source: str) -> dict:
    """Count outcomes: written, skipped, rejected (reasons), notes on written episodes."""
    counts, reasons, rejected, notes = Counter(), Counter(), {}, {}
    seconds = []
    for outcome in outcomes:
        counts[outcome.status] += 1
        if outcome.status == 'rejected':
            rejected[outcome.episode_id] = outcome.reason
            reasons[_reason_kind(outcome.reason)] += 1
        elif outcome.reason:
            notes[outcome.episode_id] = outcome.reason
        if outcome.status == 'written':
            seconds.append(outcome.seconds)
    return {'action': action, 'source': source, 'written': counts['written'],
            'skipped': counts['skipped'], 'rejected': counts['rejected'],
            'rejected_by_reason': dict(reasons.most_common()), 'rejected_items': rejected,
            'notes': notes,
            'mean_seconds_per_episode': round(sum(seconds) / len(seconds), 3) if seconds else 0}


def _reason_kind(reason: str) -> str:
    """Group reasons: 'step 2: SimError: ...' and 'step 1: SimError: ...' are one kind."""
    head = reason.split(': ', 1)
    if head[0].startswith('step ') and len(head) == 2:
        reason = head[1]
    return reason[:120]


def summary_text(summary: dict) -> str:
    """Return a few lines for the terminal."""
    lines = [f"episodes {summary['action']} ({summary['source']}): {summary['written']} "
             f"written, {summary['skipped']} skipped (done before), {summary['rejected']} "
             f"rejected, {summary['seconds']} s"]
    if summary['written'] and summary['mean_seconds_per_episode']:
        lines.append(f"  {summary['mean_seconds_per_episode']} s per written episode "
                     '(per worker)')
    for reason, count in summary['rejected_by_reason'].items():
        lines.append(f'  rejected x{count}: {reason}')
    items = list(summary['rejected_items'].items())
    lines.extend(f'    {name}: {reason}' for name, reason in items[:_SHOWN])
    if len(items) > _SHOWN:
        lines.append(f'    ... {len(items) - _SHOWN} more in summary-{summary["action"]}.json')
    notes = list(summary['notes'].items())
    lines.extend(f'  note {name}: {note}' for name, note in notes[:_SHOWN])
    if len(notes) > _SHOWN:
        lines.append(f'  ... {len(notes) - _SHOWN} more notes in the summary file')
    return '\n'.join(lines)


def _report(out: Path, action: str, summary: dict) -> None:
    text = summary_text(summary)
    try:
        from rich.console import Console

        Console(highlight=False, soft_wrap=True).print(text, markup=False)
    except ImportError:
        print(text)
    Path(out).mkdir(parents=True, exist_ok=True)
    (Path(out) / f'summary-{action}.json').write_text(json.dumps(summary, indent=1) + '\n')


def _merge(args) -> int:
    report = merge_stores(args.sources, args.out)
    summary = {'action': 'merge', 'sources': [str(s) for s in args.sources],
               'copied': report.copied, 'rejected_copied': report.rejected_copied,
               'duplicates': report.duplicates, 'conflicts': list(report.conflicts),
               'shards': list(report.shards)}
    print(f'episodes merge: {report.copied} episodes and {report.rejected_copied} rejections '
          f'copied, {report.duplicates} duplicates skipped (identical), '
          f"{len(report.conflicts)} conflicts (kept the destination's)")
    for name in report.conflicts[:_SHOWN]:
        print(f'  CONFLICT {name}')
    (Path(args.out) / 'summary-merge.json').write_text(json.dumps(summary, indent=1) + '\n')
    return 1 if report.conflicts else 0
