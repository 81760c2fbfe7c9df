"""What the demo's two runs produced, and its output folder: bag/, GIF, charts, results.json.

results.json is written last and names its writer, so a folder holding one is a finished demo's:
a later demo replaces its outputs there, and refuses to touch anyone else's files. Every output
that cannot be written is reported (and counted), never skipped quietly.
"""
import argparse
from dataclasses import asdict, dataclass
import json
from pathlib import Path
import shutil
import sys
from typing import Optional

from llara_bringup import demo_media
from llara_bringup.demo_bag import BagError, read_recording
from llara_bringup.graphs import TEST_SEED_BASE
from llara_policy.model.config import AUX_CURVE_FILE

RESULTS_MARK = 'llara_bringup.demo'  # results.json's written_by
OUTPUT_NAMES = ('bag', 'demo.gif', 'success.png', 'aux_curve.png', 'results.json')


class OutputFolderError(Exception):
    """The output folder holds files the demo did not write; the message names them."""


@dataclass(frozen=True)
class EpisodeRow:
    """One episode as the launcher reported it."""

    task: str
    seed: int
    success: bool
    steps: int
    message: str


@dataclass(frozen=True)
class RunResult:
    """One launcher run: task -> (wins, episodes) in task order, its episodes, its last line."""

    label: str
    scores: dict
    episodes: tuple[EpisodeRow, ...]
    total_line: str


def prepare_out(out: Path) -> None:
    """Create `out`; replace the outputs of an earlier demo there, refuse anyone else's."""
    earlier = [out / name for name in OUTPUT_NAMES if (out / name).exists()]
    if earlier:
        try:
            mark = json.loads((out / 'results.json').read_text()).get('written_by')
        except (OSError, ValueError, AttributeError):
            mark = ''
        if mark != RESULTS_MARK:
            raise OutputFolderError(f'{out} holds {", ".join(p.name for p in earlier)}, not '
                                    'from a finished demo: remove them or pass another --out')
        print(f'[demo] replacing the earlier demo outputs in {out}', flush=True)
        for path in earlier:
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()
    out.mkdir(parents=True, exist_ok=True)


def _run_json(run: Optional[RunResult]) -> Optional[dict]:
    if run is None:
        return None
    return {'per_task': {t: {'success': w, 'episodes': n} for t, (w, n) in run.scores.items()},
            'total': run.total_line, 'episodes': [asdict(row) for row in run.episodes]}


def episode_labels(run: RunResult) -> dict[tuple[str, int], str]:
    """(task, seed) -> 'episode k/N', k counted per task in the run's order."""
    labels, done = {}, {}
    for row in run.episodes:
        done[row.task] = done.get(row.task, 0) + 1
        labels[(row.task, row.seed)] = f'episode {done[row.task]}/{run.scores[row.task][1]}'
    return labels


def write_gif(out: Path, policy_run: RunResult) -> tuple[str, dict]:
    """Write demo.gif from the policy run's bag; (what to print, what results.json keeps)."""
    recording = read_recording(out / 'bag')
    unplanned = recording.queries_without_plan
    if not recording.plans:
        raise demo_media.MediaError(f'the bag has no policy/plan; {len(unplanned)} queries '
                                    'without a plan:\n  ' + '\n  '.join(unplanned))
    scale = demo_media.plans_gif(out / 'demo.gif', recording.plans, episode_labels(policy_run))
    notes = [f' ({len(recording.plans)} frames, one per policy/plan, at scale {scale:.2f}; '
             f'{len(recording.missing_frames)} plans without their camera frame, '
             f'{len(unplanned)} queries without a plan)']
    notes += [f'\n[demo]   drawn on a blank frame: {line}' for line in recording.missing_frames]
    notes += [f'\n[demo]   not in the GIF: {line}' for line in unplanned]
    return ''.join(notes), {'frames': len(recording.plans), 'scale': scale,
                            'plans_without_frame': list(recording.missing_frames),
                            'queries_without_plan': list(unplanned)}


def _aux_curve(out: Path, curve: Path, policy_name: str) -> str:
    points = demo_media.read_aux_curve(curve)
    demo_media.aux_curve_chart(out / 'aux_curve.png', points,
                               f'{policy_name}: success vs training trajectories')
    with_aux = sum(point.aux for point in points)
    return f' (from {curve}: {with_aux} points with aux, {len(points) - with_aux} without)'


def write_outputs(out: Path, policy: Path, args: argparse.Namespace, policy_run: RunResult,
                  oracle_run: Optional[RunResult]) -> int:
    """Write demo.gif, success.png, aux_curve.png, then results.json; print where; failures."""
    failures, results = 0, {'written_by': RESULTS_MARK, 'policy_dir': str(policy),
                            'tasks': list(args.tasks), 'partition': args.partition,
                            'episodes_per_task': args.episodes, 'seed': args.seed,
                            'first_test_seed': TEST_SEED_BASE + args.seed,
                            'renderer': args.renderer, 'policy': _run_json(policy_run),
                            'oracle': _run_json(oracle_run), 'gif': None}

    def make(name: str, write) -> None:
        nonlocal failures
        try:
            note = write()
            print(f'[demo] {name}: {out / name}{note}', flush=True)
        except (demo_media.MediaError, BagError, OSError, ValueError) as error:
            failures += 1
            print(f'demo: {name} not written: {error}', file=sys.stderr, flush=True)

    def gif() -> str:
        note, results['gif'] = write_gif(out, policy_run)
        return note

    def chart() -> str:
        title = (f'{policy.name}{" vs oracle" if oracle_run else ""}\n{args.partition}, '
                 f'{args.episodes} episodes per task, seeds from {TEST_SEED_BASE + args.seed:,}')
        demo_media.success_chart(out / 'success.png', policy_run.scores,
                                 oracle_run.scores if oracle_run else {}, title)
        return ''

    def results_json() -> str:
        (out / 'results.json').write_text(json.dumps(results, indent=1) + '\n')
        return ''

    print(f'[demo] bag: {out / "bag"} (the policy run\'s recording)', flush=True)
    make('demo.gif', gif)
    make('success.png', chart)
    if (policy / AUX_CURVE_FILE).is_file():
        make('aux_curve.png', lambda: _aux_curve(out, policy / AUX_CURVE_FILE, policy.name))
    else:
        print(f'[demo] no {AUX_CURVE_FILE} in {policy}: no aux_curve.png', flush=True)
    make('results.json', results_json)
    return failures
