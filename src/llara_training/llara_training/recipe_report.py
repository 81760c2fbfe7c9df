"""What `llara_training recipe` writes at the end: run summaries, the aux curve, the shipment.

`DIR/<run>/recipe_summary.json`: the run's stages (steps, samples, seconds, losses; skipped ones
keep the seconds they took), its evaluation per task and partition, the shared phases' seconds
and the machine. `DIR/curve/aux_curve.{csv,png,md}`: success on visual_manipulation L1 of the
aux and noaux arms per training-set size, and how often the executed model steps picked the
object the prompt names (`eval_grounding`: a grounding signal where success is ~0) (the csv's
first columns are the ones the demo's `demo_media.read_aux_curve` reads; new columns go last).
`ship` copies the final model (weights, config, tokenizer, processor, chat template,
training_config.yaml: no checkpoints or optimizer states) and the reports into a policy folder,
within a weight budget.
"""
import csv
import json
import os
from pathlib import Path
import shutil

from llara_policy.errors import ConfigError
from llara_policy.model.config import AUX_CURVE_FILE, RECIPE_CONFIG_FILE
from llara_training.recipe_runs import CURVE_PARTITION, CURVE_TASK, RunPlan

SUMMARY_JSON = 'recipe_summary.json'
# samples: the robot trajectories (episodes) the run trained on - LLaRA's data-size axis; the
# samples its optimiser saw (steps x batch, equal for both arms) are samples_seen.
CURVE_COLUMNS = ('samples', 'aux', 'success', 'episodes', 'train_episodes_per_task',
                 'train_episodes', 'steps', 'samples_seen', 'success_all_tasks',
                 'episodes_all_tasks', 'picks_on_target', 'model_steps', 'places_on_target')
CURVE_FILES = (AUX_CURVE_FILE, 'aux_curve.png', 'aux_curve.md')
EVAL_FILES = ('results.json', 'results.md', 'success.png', 'errors.json')
SHIP_LIMIT_MB = 25.0  # the demo policy's checkpoint budget
# What a served model needs (VlmPolicy: weights, config, tokenizer, processor, chat template,
# the trained settings); everything else of a finetune output stays behind.
MODEL_FILES = ('config.json', 'generation_config.json', 'model.safetensors',
               'model.safetensors.index.json', 'pytorch_model.bin', 'tokenizer.json',
               'tokenizer_config.json', 'tokenizer.model', 'special_tokens_map.json',
               'added_tokens.json', 'vocab.json', 'merges.txt', 'preprocessor_config.json',
               'processor_config.json', 'chat_template.json', 'chat_template.jinja',
               'training_config.yaml')
WEIGHT_SUFFIXES = ('.safetensors', '.bin')


def machine(results: list[dict], jobs: int, device: str) -> dict:
    """Cores, torch threads per training process (as measured there), device, jobs."""
    return {'cores': os.cpu_count(), 'torch_threads': sorted({r['torch_threads']
                                                              for r in results}),
            'device': device, 'cuda_available': any(r['cuda_available'] for r in results),
            'jobs': jobs}


def write_run_summary(plan: RunPlan, result: dict, phases: dict, host: dict) -> Path:
    """Write DIR/<run>/recipe_summary.json; return its path.

    A rerun (e.g. only to --ship) skips what is done: its parts keep the seconds the summary of
    the invocation that ran them recorded, so the summary always says what the run cost.
    """
    path = plan.directory / SUMMARY_JSON
    earlier = json.loads(path.read_text()).get('seconds', {}) if path.is_file() else {}
    summary = {'run': plan.name, 'arm': plan.arm, 'episodes_per_task': plan.episodes_per_task,
               'train_episodes': len(plan.episode_ids),
               'steps': sum(stage.train.max_steps for stage in plan.stages),
               'samples': sum(stage.samples for stage in plan.stages),
               'stages': result['stages'], 'eval': result['eval'],
               'seconds': {'phases': phases, **run_seconds(result, earlier)}, 'machine': host}
    path.write_text(json.dumps(summary, indent=1) + '\n')
    return path


def run_seconds(result: dict, earlier: dict) -> dict:
    """Seconds per stage and of the evaluation.

    This invocation's, or for a part it skipped the seconds its stage record
    (`stage_result.json`) or else `earlier` (a previous summary's 'seconds') recorded (0 when
    none).
    """
    seconds = {stage['name']: stage.get('seconds')
               or earlier.get('stages', {}).get(stage['name'], 0.0)
               for stage in result['stages']}
    evaluated = earlier.get('eval', 0.0) if result['eval'].get('skipped') else \
        result['eval']['seconds']
    return {'stages': seconds, 'eval': evaluated}


def success(result: dict, level: str, task: str) -> tuple[int, int]:
    """(successes, episodes) of one task in one partition ('all': the partition's row)."""
    rows = result['eval']['partitions'] if task == 'all' else result['eval']['tasks']
    row = next((r for r in rows if r['partition'] == level and r['task'] == task), None)
    return (row['successes'], row['episodes']) if row else (0, 0)


def on_target(result: dict, level: str, task: str) -> tuple[int, int, int]:
    """Return (picks on the task's target, places on its base, executed model steps).

    (0, 0, 0) when the evaluation recorded none (e.g. a summary from before grounding existed).
    """
    row = next((r for r in result['eval']['tasks']
                if r['partition'] == level and r['task'] == task), {})
    return (row.get('picks_on_target', 0), row.get('places_on_target', 0),
            row.get('model_steps', 0))


def summary_text(plans: list[RunPlan], results: list[dict], phases: dict, host: dict,
                 total_seconds: float) -> str:
    """Write the final summary: machine, phase times, per run its times and successes."""
    from llara_training.eval_config import rate_text

    threads = ', '.join(map(str, host['torch_threads']))
    cuda = 'available' if host['cuda_available'] else 'not available'
    lines = ['recipe summary',
             f"  machine: {host['cores']} cores, torch threads per training process {threads}, "
             f"device {host['device']} (CUDA {cuda}), {host['jobs']} job(s) at once",
             '  phases: ' + ', '.join(f'{name} {seconds:.1f} s'
                                      for name, seconds in phases.items())
             + f'; total {total_seconds:.1f} s']
    for plan, result in zip(plans, results, strict=True):
        stages = ', '.join(
            f"{s['name']} skipped (took {s.get('seconds', '?')} s before)" if s['skipped']
            else f"{s['name']} {s['seconds']:.1f} s" for s in result['stages'])
        evaluation = result['eval']
        eval_text = 'eval skipped (done before)' if evaluation['skipped'] else \
            f"eval {evaluation['seconds']:.1f} s"
        size = f'first {plan.episodes_per_task} per task' if plan.episodes_per_task else 'all'
        lines.append(f'  {plan.name} ({size}: {len(plan.episode_ids)} training episodes, '
                     f'{sum(s.samples for s in plan.stages)} samples): {stages}, {eval_text}')
        rows = [*evaluation['tasks'], *evaluation['partitions']]
        lines.extend(f"    {row['partition']} {row['task']}: "
                     f"{rate_text(row['successes'], row['episodes'])}" for row in rows)
        lines.extend(f'    FAILED {name}: {error}' for name, error in evaluation['errors'].items())
    return '\n'.join(lines)


def curve_rows(plans: list[RunPlan], results: list[dict]) -> list[dict]:
    """One row per curve run: training trajectories, arm, L1 visual_manipulation success, etc."""
    from llara_policy.sim.episode import Partition
    from llara_training.eval_config import LEVEL_OF

    level = LEVEL_OF[Partition(CURVE_PARTITION)]
    rows = []
    for plan, result in zip(plans, results, strict=True):
        if plan.arm not in ('aux', 'noaux'):
            continue
        successes, episodes = success(result, level, CURVE_TASK)
        all_successes, all_episodes = success(result, level, 'all')
        picks, places, model_steps = on_target(result, level, CURVE_TASK)
        rows.append({'samples': len(plan.episode_ids),
                     'aux': 'true' if plan.arm == 'aux' else 'false', 'success': successes,
                     'episodes': episodes, 'train_episodes_per_task': plan.episodes_per_task,
                     'train_episodes': len(plan.episode_ids),
                     'steps': sum(s.train.max_steps for s in plan.stages),
                     'samples_seen': sum(s.samples for s in plan.stages),
                     'success_all_tasks': all_successes, 'episodes_all_tasks': all_episodes,
                     'picks_on_target': picks, 'model_steps': model_steps,
                     'places_on_target': places})
    return rows


def write_curve(directory: Path, rows: list[dict]) -> list[Path]:
    """Write aux_curve.csv, .png (success and picks on target vs training episodes) and .md."""
    directory.mkdir(parents=True, exist_ok=True)
    csv_path, png_path, md_path = (directory / name for name in CURVE_FILES)
    with open(csv_path, 'w', newline='') as handle:
        writer = csv.DictWriter(handle, CURVE_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    _plot_curve(rows, png_path)
    lines = ['# Success with and without auxiliary data', '',
             f'{CURVE_TASK} {CURVE_PARTITION} (L1); the same test seeds for every point. '
             'Both arms take the same optimiser steps; noaux trains on the main (inBC) set '
             'alone. Picks on the named object / places on the named base: executed model '
             'steps whose pick point lands on the object the prompt names / whose place point '
             'lands on the base it names (results.md, grounding table).', '',
             '| episodes per task | training episodes | arm | steps | samples seen | success | '
             'all L1 tasks | picks on the named object | places on the named base |',
             '|---|---|---|---|---|---|---|---|---|']
    for row in rows:
        arm = 'aux' if row['aux'] == 'true' else 'noaux'
        lines.append(f"| {row['train_episodes_per_task']} | {row['train_episodes']} | {arm} | "
                     f"{row['steps']} | {row['samples_seen']} | {_rate(row, '')} | "
                     f"{_rate(row, '_all_tasks')} | {_grounding_text(row, 'picks')} | "
                     f"{_grounding_text(row, 'places')} |")
    md_path.write_text('\n'.join(lines) + '\n')
    return [csv_path, png_path, md_path]


def _rate(row: dict, suffix: str) -> str:
    from llara_training.eval_config import rate_text

    return rate_text(row[f'success{suffix}'], row[f'episodes{suffix}'])


def _grounding_text(row: dict, side: str) -> str:
    from llara_training.eval_config import rate_text

    if not row.get('model_steps'):
        return 'no model step recorded'
    return rate_text(row.get(f'{side}_on_target', 0), row['model_steps'])


def _percent(count, total) -> float:
    return 100.0 * count / total if total else float('nan')


def _plot_curve(rows: list[dict], path: Path) -> None:
    """Two panels, same x axis: success (left); picks on the named object, places on the base."""
    import matplotlib

    matplotlib.use('Agg')  # files only, no display
    from matplotlib import pyplot

    figure, (left, right) = pyplot.subplots(1, 2, figsize=(10, 4), dpi=100, sharex=True)
    for aux, label, colour in (('true', 'with aux', 'tab:green'),
                               ('false', 'without aux', 'tab:orange')):
        line = sorted((r for r in rows if r['aux'] == aux),
                      key=lambda r: r['train_episodes_per_task'])
        xs = [r['train_episodes_per_task'] for r in line]
        left.plot(xs, [_percent(r['success'], r['episodes']) for r in line], marker='o',
                  color=colour, label=label)
        for side, style, what in (('picks', '-', 'picks on object'),
                                  ('places', '--', 'places on base')):
            right.plot(xs, [_percent(r.get(f'{side}_on_target', 0), r.get('model_steps', 0))
                            for r in line], marker='o', linestyle=style, color=colour,
                       label=f'{label}: {what}')
    left.set_ylabel(f'success on {CURVE_TASK} L1 (%)')
    right.set_ylabel('model steps on the named object / base (%)')
    for axis in (left, right):
        axis.set_xlabel('training episodes per task')
        axis.set_ylim(-5, 105)
        axis.grid(alpha=0.3)
        axis.legend()
    figure.suptitle('LLaRA recipe: auxiliary data vs none (same optimiser steps)')
    figure.tight_layout()
    figure.savefig(path)
    pyplot.close(figure)


def ship(plan: RunPlan, out: Path, ship_dir: Path, limit_mb: float) -> list[str]:
    """Copy the run's final model and reports into `ship_dir`; return lines saying what.

    ConfigError, with nothing copied, when the weights exceed `limit_mb` megabytes (1e6).
    """
    model = plan.model_dir
    weights = [p for p in model.iterdir()
               if p.is_file() and p.name in MODEL_FILES and p.suffix in WEIGHT_SUFFIXES]
    size_mb = sum(p.stat().st_size for p in weights) / 1e6
    if not weights:
        raise ConfigError(f'--ship: {model} holds no weights')
    if size_mb > limit_mb:
        raise ConfigError(f'--ship: the weights of {model} are {size_mb:.2f} MB, over the '
                          f'{limit_mb:g} MB budget; nothing shipped to {ship_dir}')
    copies = [(p, ship_dir / p.name) for p in sorted(model.iterdir())
              if p.is_file() and p.name in MODEL_FILES]
    copies += [(plan.eval_dir / name, ship_dir / 'eval' / name) for name in EVAL_FILES
               if (plan.eval_dir / name).is_file()]
    copies += [(out / RECIPE_CONFIG_FILE, ship_dir / RECIPE_CONFIG_FILE),
               (plan.directory / SUMMARY_JSON, ship_dir / SUMMARY_JSON)]
    copies += [(out / 'curve' / name, ship_dir / name) for name in CURVE_FILES
               if (out / 'curve' / name).is_file()]
    before = {p for p in ship_dir.rglob('*') if p.is_file()} if ship_dir.is_dir() else set()
    for source, target in copies:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
    total_mb = sum(target.stat().st_size for _, target in copies) / 1e6
    lines = [f'ship: {len(copies)} files, {total_mb:.2f} MB, into {ship_dir} (weights '
             f'{size_mb:.2f} MB of the {limit_mb:g} MB budget)']
    lines += [f'  {target.relative_to(ship_dir)}' for _, target in copies]
    kept = sorted(before - {target for _, target in copies})
    lines += [f'  left as it was (not from this recipe): {p.relative_to(ship_dir)}'
              for p in kept]
    return lines
