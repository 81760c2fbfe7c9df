"""`llara_training recipe --config FILE --out DIR`: random weights to an evaluated small policy.

One config (recipe_config.RecipeConfig; configs/demo_recipe.yaml), one command:
  DIR/episodes   `episodes generate` of the config's tasks x seeds (it resumes itself)
  DIR/data       `convert` once: the main set and every auxiliary set of the preset
  DIR/model      `small-model` with the config's preset and flags (random weights)
  DIR/run/<stage>/  each stage's finetune.yaml, weights, loss.csv/png, output.log; trained in
                 order on its data (aux, mixture or main, filtered to the run's episodes or
                 the stage's first `episodes_per_task`: DIR/data/subsets/<all|nN>/), each
                 from the previous stage's final weights
  DIR/run/eval/  the closed-loop evaluation of the final weights (results.json/.md, success.png)
  DIR/run/recipe_summary.json  timings, success per task and partition, the machine
  DIR/recipe_config.yaml       the resolved config
`--curve`: per size N of curve.episodes_per_task, runs DIR/curve/aux-nN (the stages on the
first N training episodes of each task by seed, or fewer where a stage asks fewer) and
DIR/curve/noaux-nN (one stage on their main set with the stages' total steps), each
evaluated on the same test seeds, then
DIR/curve/aux_curve.csv/.png/.md. `--jobs N` trains N runs at once (spawned processes).
`--ship SHIP_DIR` copies the final model and the reports there (refused over the weight
budget). Resumable: a stage with final weights and an evaluation holding every episode are
skipped (and say so). Exit status 0; 2 with the reason for a bad config or a failed step.
"""
import argparse
import importlib
import multiprocessing
import os
from pathlib import Path
import sys
import time

import yaml

from llara_policy.errors import ConfigError, LlaraError
from llara_policy.model.config import RECIPE_CONFIG_FILE
from llara_training.recipe_config import RecipeConfig, load_recipe
from llara_training.recipe_report import (
    SHIP_LIMIT_MB,
    curve_rows,
    machine,
    ship,
    summary_text,
    write_curve,
    write_run_summary,
)
from llara_training.recipe_runs import (
    CURVE_DIR,
    Printer,
    execute_run,
    plan_runs,
    training_episodes,
    write_run_data,
)
from llara_training.small_model import frames_mean

# Sections whose change invalidates DIR's episodes' conversion or model: another --out then.
_FIXED_SECTIONS = ('convert', 'model')


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `llara_training recipe`."""
    parser.add_argument('--config', required=True, type=Path,
                        help='recipe YAML (e.g. src/llara_training/configs/demo_recipe.yaml)')
    parser.add_argument('--out', required=True, type=Path,
                        help='work directory (episodes, data, model, runs); reruns resume it')
    parser.add_argument('--curve', action='store_true',
                        help='also the with/without-auxiliary-data curve (DIR/curve)')
    parser.add_argument('--ship', type=Path, metavar='SHIP_DIR',
                        help='copy the final model, its reports and the curve into SHIP_DIR')
    parser.add_argument('--ship-limit-mb', type=float, default=SHIP_LIMIT_MB,
                        help=f'largest weights --ship accepts, in MB (default {SHIP_LIMIT_MB:g})')
    parser.add_argument('--jobs', type=int, default=1,
                        help='training runs at once (processes; the curve has several)')


def run(args: argparse.Namespace) -> int:
    """Run the recipe; see the module docstring for the exit status."""
    started = time.time()
    say = Printer(started)
    try:
        if args.jobs < 1:
            raise ConfigError(f'--jobs must be >= 1, got {args.jobs}')
        config = load_recipe(args.config)
        out = Path(args.out)
        _claim(out, config)
        threads = max(config.train_config(s, 'm', 'd', 'i', 'o').cpu_threads
                      for s in config.stages)
        if threads:  # before torch starts its thread pools, here and in spawned workers
            os.environ['OMP_NUM_THREADS'] = str(threads)
        say(f'config {args.config} -> {out}; {os.cpu_count()} cores, {args.jobs} job(s), '
            f'OMP_NUM_THREADS={os.environ.get("OMP_NUM_THREADS", "unset")}')
        phases = {'episodes': _episodes(config, out, say), 'convert': _convert(config, out, say)}
        episodes = training_episodes(config, out)
        say('training episodes: ' + ', '.join(f'{task} {len(names)}'
                                              for task, names in episodes.items()))
        phases['model'] = _model(config, out, episodes, say)
        plans = plan_runs(config, out, episodes, args.curve, started)
        start, written = time.monotonic(), set()
        for plan in plans:
            for line in write_run_data(plan, written):
                say(f'data {line}')
        phases['data'] = round(time.monotonic() - start, 1)
        start = time.monotonic()
        results = _execute(plans, args.jobs, say)
        phases['runs'] = round(time.monotonic() - start, 1)
        device = config.train_config(config.stages[-1], 'm', 'd', 'i', 'o').device
        host = machine(results, args.jobs, device)
        for plan, result in zip(plans, results, strict=True):
            write_run_summary(plan, result, phases, host)
        if args.curve:
            paths = write_curve(out / CURVE_DIR, curve_rows(plans, results))
            say('curve: ' + ', '.join(map(str, paths)))
        say(summary_text(plans, results, phases, host, time.time() - started))
        if args.ship:
            for line in ship(plans[0], out, args.ship, args.ship_limit_mb):
                say(line)
    except LlaraError as error:
        print(f'recipe: {type(error).__name__}: {error}', file=sys.stderr, flush=True)
        return 2
    return 0


def _claim(out: Path, config: RecipeConfig) -> None:
    """Save the resolved config in DIR, or refuse one whose conversion or model differ."""
    path = out / RECIPE_CONFIG_FILE
    resolved = config.to_dict()
    if path.is_file():
        previous = yaml.safe_load(path.read_text()) or {}
        changed = [name for name in _FIXED_SECTIONS if previous.get(name) != resolved[name]]
        if changed:
            raise ConfigError(f'{out} was made with other {" and ".join(changed)} settings '
                              f'({[previous.get(n) for n in changed]} there); use another --out')
    out.mkdir(parents=True, exist_ok=True)
    path.write_text('# The resolved llara_training recipe config of this directory.\n'
                    + yaml.safe_dump(resolved, sort_keys=False))


def _cli(name: str, module_name: str, argv: list[str], say: Printer) -> tuple[int, float]:
    """Run a stage's CLI in this process (its own output and summary); (status, seconds)."""
    say(f'{name}: llara_training {name} {" ".join(argv)}')
    module = importlib.import_module(module_name)
    parser = argparse.ArgumentParser(prog=f'llara_training {name}')
    module.add_arguments(parser)
    start = time.monotonic()
    status = int(module.run(parser.parse_args(argv)) or 0)
    sys.stdout.flush()
    return status, round(time.monotonic() - start, 1)


def _episodes(config: RecipeConfig, out: Path, say: Printer) -> float:
    section = config.episodes
    status, seconds = _cli('episodes', 'llara_training.episodes_cli', [
        'generate', '--out', str(out / 'episodes'), '--tasks', ','.join(section.tasks),
        '--seeds', section.seeds, '--workers', str(section.workers), '--renderer',
        section.renderer, '--mapping', section.mapping], say)
    if status:
        raise ConfigError(f'episodes generate exited {status} (its reason is above)')
    return seconds


def _convert(config: RecipeConfig, out: Path, say: Printer) -> float:
    status, seconds = _cli('convert', 'llara_training.convert_cli', [
        str(out / 'episodes'), '--out', str(out / 'data'), *config.convert.convert_args()], say)
    if status == 1:
        say('convert: some episodes failed (named above); training leaves them out')
    elif status:
        raise ConfigError(f'convert exited {status} (its reason is above)')
    return seconds


def _model(config: RecipeConfig, out: Path, episodes: dict[str, list[str]],
           say: Printer) -> float:
    """Make the random model (`model/`), unless it exists.

    `frame_mean: data` takes the mean of the first stage's episodes' frames: the model is made
    for the data it first learns from.
    """
    model = out / 'model'
    if (model / 'config.json').is_file():
        say(f'small-model: {model} exists: skipped (made before with the same model section)')
        return 0.0
    mean = ()
    if config.model.frame_mean == 'data':
        size = config.stages[0].episodes_per_task
        first = [name for names in episodes.values() for name in names[:size or None]]
        mean = frames_mean(out / 'data' / 'images', episodes=first)
        say(f'small-model: frames mean (R, G, B) of the {len(first)} episodes of stage '
            f'{config.stages[0].name!r}: {mean}')
    status, seconds = _cli('small-model', 'llara_training.small_model',
                           ['--out', str(model), *config.model.small_model_args(mean)], say)
    if status:
        raise ConfigError(f'small-model exited {status} (its reason is above)')
    return seconds


def _execute(plans, jobs: int, say: Printer) -> list[dict]:
    """Run every plan: here one after another, or in `jobs` spawned processes at once."""
    if jobs == 1 or len(plans) == 1:
        return [execute_run(plan) for plan in plans]
    say(f'{len(plans)} runs, {min(jobs, len(plans))} at once (spawned processes)')
    context = multiprocessing.get_context('spawn')  # torch and pybullet are not fork-safe
    with context.Pool(min(jobs, len(plans))) as pool:
        return pool.map(execute_run, plans, chunksize=1)
