"""The training runs of `llara_training recipe`: what each trains on, and running one.

A run is a list of stages trained in order (each from the previous stage's final weights, the
first from the random model) on a set of training episodes, then the closed-loop evaluation of
its final weights. `plan_runs` makes the recipe's own run (`DIR/run`: every training episode)
and, for the curve, two arms per training-set size (`DIR/curve/aux-n<N>`: the stages as
configured; `DIR/curve/noaux-n<N>`: one stage on the main set alone with as many optimiser
steps). `write_run_data` writes a run's stage data from the conversion's part files, filtered
to its episodes (`DIR/data/subsets/<all|nN>/`); `execute_run` trains and evaluates in this
process (`finetune.train`, `evaluate.evaluate`), skipping stages whose final weights exist and
an evaluation whose report holds every episode. Library output goes to a log file per stage
(`output.log`) and per evaluation (`eval.log`); the terminal gets progress lines.
"""
import argparse
import contextlib
from dataclasses import dataclass
import hashlib
import json
from pathlib import Path
import sys
import time

import yaml

from llara_policy.errors import ConfigError
from llara_training.dataset_writer import MAIN, OutputLayout, merge, write_sets
from llara_training.recipe_config import RecipeConfig, StageSection

RUN_DIR = 'run'
CURVE_DIR = 'curve'
STAGE_RESULT = 'stage_result.json'
FINETUNE_YAML = 'finetune.yaml'
OUTPUT_LOG = 'output.log'
EVAL_DIR = 'eval'
EVAL_LOG = 'eval.log'
WEIGHT_FILES = ('model.safetensors', 'model.safetensors.index.json', 'pytorch_model.bin')
CURVE_PARTITION = 'placement_generalization'  # L1: the curve's test partition
CURVE_TASK = 'visual_manipulation'
PROGRESS_LINES = 20  # progress lines per stage (plus the last step)


@dataclass(frozen=True)
class StagePlan:
    """One stage of a run: its name, data, training episodes and resolved TrainConfig."""

    name: str
    data: str
    train: object  # TrainConfig (imported lazily: recipe_config stays light)
    episode_ids: tuple[str, ...]
    missed_attempts: float = 0.0  # missed-attempt samples per main sample (retries.py)

    def episodes_digest(self) -> str:
        """Return a digest of the stage's training episode ids (a finished stage must match)."""
        return hashlib.sha1('\n'.join(sorted(self.episode_ids)).encode()).hexdigest()[:16]

    @property
    def directory(self) -> Path:
        """The stage's output directory (checkpoints, final weights, finetune.yaml, log)."""
        return Path(self.train.output_dir)

    @property
    def samples(self) -> int:
        """Training samples the stage sees: steps x batch x gradient accumulation."""
        return (self.train.max_steps * self.train.per_device_batch_size
                * self.train.gradient_accumulation_steps)


@dataclass(frozen=True)
class RunPlan:
    """One run: its directory, arm, training episodes, stages and evaluation.

    The evaluation is the config's protocol on `eval_partitions` x `eval_tasks` x
    `eval_episodes`; `started` is the recipe's start (epoch seconds, for progress lines).
    """

    name: str
    directory: Path
    arm: str
    episodes_per_task: int
    episode_ids: tuple[str, ...]
    stages: tuple[StagePlan, ...]
    eval_partitions: tuple[str, ...]
    eval_tasks: tuple[str, ...]
    eval_episodes: int
    config: RecipeConfig
    started: float

    @property
    def model_dir(self) -> Path:
        """The final weights: the last stage's output directory."""
        return self.stages[-1].directory

    @property
    def eval_dir(self) -> Path:
        """Where the evaluation's reports go."""
        return self.directory / EVAL_DIR


def training_episodes(config: RecipeConfig, out: Path) -> dict[str, list[str]]:
    """Per task, the converted training episodes of the seed range, in seed order."""
    from llara_training.episode_store import EpisodeStore
    from llara_training.sources.sim_rollouts import episode_id

    store, layout = EpisodeStore(out / 'episodes'), OutputLayout(out / 'data')
    return {task: [name for name in (episode_id(task, seed)
                                     for seed in config.episodes.seed_range)
                   if name in store and layout.is_done(name)]
            for task in config.episodes.tasks}


def plan_runs(config: RecipeConfig, out: Path, episodes: dict[str, list[str]], curve: bool,
              started: float) -> list[RunPlan]:
    """Plan the recipe's run, then (`curve`) the aux and noaux arm of every curve size."""
    evaluate = config.evaluate
    runs = [_plan(config, out, RUN_DIR, 'recipe', 0, episodes, config.stages,
                  (evaluate.partitions, evaluate.tasks, evaluate.episodes), started)]
    if not curve:
        return runs
    if not config.curve.episodes_per_task:
        raise ConfigError('recipe --curve: curve.episodes_per_task lists no size')
    tasks = tuple(dict.fromkeys((CURVE_TASK, *evaluate.tasks)))
    protocol = ((CURVE_PARTITION,), tasks, config.curve.evaluate_episodes)
    last = config.stages[-1]
    total_steps = sum(config.train_config(s, 'm', 'd', 'i', 'o').max_steps
                      for s in config.stages)
    noaux = StageSection(last.name, 'main', {**last.train, 'max_steps': total_steps},
                         missed_attempts=last.missed_attempts)
    for size in config.curve.episodes_per_task:
        for arm, stages in (('aux', config.stages), ('noaux', (noaux,))):
            runs.append(_plan(config, out, f'{CURVE_DIR}/{arm}-n{size}', arm, size, episodes,
                              stages, protocol, started))
    return runs


def _first(episodes: dict[str, list[str]], size: int, what: str) -> tuple[tuple[str, ...], str]:
    """Return the first `size` episodes of each task (0: all) and their subset folder name."""
    if not size:
        return tuple(name for names in episodes.values() for name in names), 'all'
    short = {task: len(names) for task, names in episodes.items() if len(names) < size}
    if short:
        raise ConfigError(f'recipe {what}: {size} training episodes per task asked, but '
                          f'{short} converted episodes only (generate more seeds)')
    return tuple(name for names in episodes.values() for name in names[:size]), f'n{size}'


def _plan(config: RecipeConfig, out: Path, name: str, arm: str, size: int,
          episodes: dict[str, list[str]], stages, protocol, started: float) -> RunPlan:
    """Plan a run on the first `size` episodes per task (0: all); a stage's own size caps it."""
    ids, _ = _first(episodes, size, f'run {name}')
    if not ids:
        raise ConfigError(f'recipe run {name}: no converted training episode (see the '
                          'episodes and convert output above)')
    directory, data = out / name, out / 'data'
    model_path, plans = out / 'model', []
    for stage in stages:
        cap = min(filter(None, (size, stage.episodes_per_task)), default=0)
        stage_ids, subset = _first(episodes, cap, f'stage {stage.name!r} of run {name}')
        missed = f'-missed{stage.missed_attempts:g}' if stage.missed_attempts else ''
        train = config.train_config(stage, str(model_path),
                                    str(data / 'subsets' / subset / f'{stage.data}{missed}.json'),
                                    str(data / 'images'), str(directory / stage.name))
        plans.append(StagePlan(stage.name, stage.data, train, stage_ids, stage.missed_attempts))
        model_path = directory / stage.name
    partitions, tasks, count = protocol
    return RunPlan(name, directory, arm, size, ids, tuple(plans), tuple(partitions),
                   tuple(tasks), count, config, started)


def has_weights(directory: Path) -> bool:
    """Whether a finetune output directory holds its final weights (written last)."""
    return any((Path(directory) / name).is_file() for name in WEIGHT_FILES)


def write_run_data(plan: RunPlan, written: set[str]) -> list[str]:
    """Write the data files of the run's unfinished stages; return a line per file.

    A file named in `written` (by an earlier run of this recipe invocation) is not written
    again; the ones written are added to it.
    """
    layout, lines = OutputLayout(Path(plan.stages[0].train.image_folder).parent), []
    convert = plan.config.convert
    for stage in plan.stages:
        path = Path(stage.train.data_path)
        if has_weights(stage.directory) or str(path) in written:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        aux = [name.value for name in convert.aux_sets]
        if stage.data == 'mixture':
            ratios = convert.ratios  # merge wants every converted set (ratio 0: none taken)
            folder = path.parent.relative_to(layout.root)
            result = merge(layout, stage.episode_ids, str(folder / 'main.json'),
                           {name: str(folder / f'aux-{name.value}.json') for name in ratios},
                           ratios, convert.seed, str(folder / path.name))
            count = next(f.samples for f in result.files if f.name == 'mixture')
            parts = ', '.join(f"{name} {entry['taken']}" + (
                f" (of {entry['requested']} asked)" if entry['taken'] < entry['requested']
                else '') for name, entry in result.mixture.items())
            what = f'main {result.files[0].samples} + {parts}'
        else:
            sets = [MAIN] if stage.data == 'main' else aux
            count = write_sets(layout, stage.episode_ids, sets, path)
            what = ' + '.join(sets)
        if stage.missed_attempts:
            added = _add_missed_attempts(path, stage.data, stage.missed_attempts,
                                         convert.seed)
            count, what = count + added, f'{what} + missed attempts {added}'
        written.add(str(path))
        lines.append(f'{path}: {count} samples ({what}) of {len(stage.episode_ids)} episodes')
    return lines


def _add_missed_attempts(path: Path, data: str, ratio: float, seed: int) -> int:
    """Append missed-attempt samples of the main samples to the data file; return how many.

    The main samples are the file's own (`data` main) or, for a mixture, the subset's main set
    that `merge` wrote next to it.
    """
    from llara_training.retries import missed_attempt_samples

    samples = json.loads(path.read_text())
    main = samples if data == MAIN else json.loads((path.parent / f'{MAIN}.json').read_text())
    added = missed_attempt_samples(main, ratio, seed)
    temporary = path.with_name(path.name + '.tmp')
    temporary.write_text('[\n' + ',\n'.join(json.dumps(item) for item in samples + added)
                         + '\n]\n')
    temporary.replace(path)
    return len(added)


class Printer:
    """Prints `[recipe +H:MM:SS] <run>: text` lines to the stream it was made with."""

    def __init__(self, started: float, prefix: str = '', stream=None):
        self.started, self.prefix = started, prefix
        self.stream = stream if stream is not None else sys.stdout

    def __call__(self, text: str) -> None:
        """Print each line of `text` with the time stamp and prefix."""
        elapsed = int(time.time() - self.started)
        stamp = f'[recipe +{elapsed // 3600}:{elapsed // 60 % 60:02d}:{elapsed % 60:02d}]'
        for line in text.splitlines() or ['']:
            print(f'{stamp} {self.prefix}{line}', file=self.stream, flush=True)


@contextlib.contextmanager
def _library_output(path: Path):
    """Send what the libraries print (Trainer bars and logs, evaluate's output) to `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, 'a') as log, contextlib.redirect_stdout(log), \
            contextlib.redirect_stderr(log):
        yield


def execute_run(plan: RunPlan) -> dict:
    """Train the run's stages and evaluate its final weights; return what happened."""
    say = Printer(plan.started, f'{plan.name}: ')
    stages = [_train_stage(stage, say) for stage in plan.stages]
    evaluation = _evaluate(plan, say)
    import torch

    return {'run': plan.name, 'arm': plan.arm, 'episodes_per_task': plan.episodes_per_task,
            'train_episodes': len(plan.episode_ids), 'stages': stages, 'eval': evaluation,
            'torch_threads': torch.get_num_threads(),
            'cuda_available': torch.cuda.is_available()}


def _train_stage(stage: StagePlan, say: Printer) -> dict:
    from llara_training.finetune import train
    from llara_training.train_config import load_config

    directory, digest = stage.directory, stage.episodes_digest()
    marker = directory / STAGE_RESULT
    if has_weights(directory):
        _check_finished(stage, digest, marker)
        say(f'{stage.name}: final weights exist in {directory}: skipped (trained before)')
        previous = json.loads(marker.read_text()) if marker.is_file() else {}
        return {**previous, 'name': stage.name, 'skipped': True}
    directory.mkdir(parents=True, exist_ok=True)
    config_path = directory / FINETUNE_YAML
    config_path.write_text("# Written by llara_training recipe: this stage's TrainConfig.\n"
                           + yaml.safe_dump(stage.train.to_dict(), sort_keys=False))
    config = load_config(config_path)
    say(f'{stage.name}: training {config.max_steps} steps x batch '
        f'{config.per_device_batch_size} ({stage.data} data of {len(stage.episode_ids)} '
        f'episodes {config.data_path}, prompt '
        f'{config.prompt_format}, LR {config.learning_rate:g}) from {config.model_path}; '
        f'log {directory / OUTPUT_LOG}')
    start = time.monotonic()
    with _library_output(directory / OUTPUT_LOG):
        result = train(config, callbacks=(_progress_callback(say, stage.name, config),))
    seconds = time.monotonic() - start
    losses = [point.loss for point in result.losses]
    entry = {'name': stage.name, 'data': stage.data, 'steps': result.global_step,
             'batch': config.per_device_batch_size * config.gradient_accumulation_steps,
             'samples': stage.samples, 'episodes': len(stage.episode_ids),
             'seconds': round(seconds, 1),
             'first_loss': losses[0] if losses else None,
             'last_loss': losses[-1] if losses else None, 'episodes_digest': digest}
    marker.write_text(json.dumps(entry, indent=1) + '\n')
    loss = f'; loss {losses[0]:.4f} -> {losses[-1]:.4f}' if losses else ''
    say(f'{stage.name}: done, {result.global_step} steps in {seconds:.1f} s '
        f'({stage.samples / max(seconds, 1e-9):.1f} samples/s){loss}')
    return {**entry, 'skipped': False}


def _check_finished(stage: StagePlan, digest: str, marker: Path) -> None:
    """ConfigError when a finished stage was trained otherwise than the config now says."""
    from llara_training.finetune import RESUMABLE_CHANGES
    from llara_training.train_config import load_saved_config

    saved = load_saved_config(stage.directory).to_dict()
    learned = [key for key, value in stage.train.to_dict().items()
               if saved.get(key) != value and (key not in RESUMABLE_CHANGES
                                               or key in ('max_steps', 'num_train_epochs'))]
    if marker.is_file() and json.loads(marker.read_text()).get('episodes_digest') != digest:
        learned.append('the training episodes')
    if learned:
        raise ConfigError(f'{stage.directory} was trained with other settings '
                          f'({", ".join(learned)}) than the recipe now asks; use another --out '
                          'or remove that stage directory')


def _progress_callback(say: Printer, name: str, config):
    """Return a Trainer callback printing about PROGRESS_LINES loss lines, and the last."""
    from transformers import TrainerCallback

    every = max(1, config.max_steps // PROGRESS_LINES)
    start = time.monotonic()

    class Progress(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            step = state.global_step
            if not logs or 'loss' not in logs or (step % every and step != config.max_steps):
                return
            seconds = time.monotonic() - start
            left = seconds / step * (config.max_steps - step) if step else 0.0
            say(f'{name}: step {step}/{config.max_steps} loss {logs["loss"]:.4f} lr '
                f'{logs.get("learning_rate", 0.0):.2e} ({seconds:.0f} s, ~{left:.0f} s left)')

    return Progress()


def _evaluate(plan: RunPlan, say: Printer) -> dict:
    """Evaluate the final weights pair by pair (a progress line each); the report, resumable."""
    from llara_training import evaluate as evaluation
    from llara_training.eval_config import LEVEL_OF
    from llara_training.eval_episode import tid

    config = _eval_config(plan, plan.eval_partitions, plan.eval_tasks)
    log = plan.directory / EVAL_LOG
    results = plan.eval_dir / 'results.json'
    done = _earlier_results(plan, config, results)
    if (plan.eval_dir / 'results.md').is_file() and all(tid(*item) in done
                                                        for item in config.items()):
        say(f'eval: {plan.eval_dir} holds every episode: skipped (evaluated before)')
        return {'seconds': 0.0, 'skipped': True, 'errors': {}, **eval_rows(plan.eval_dir)}
    say(f'eval: {len(config.items())} episodes ({", ".join(plan.eval_partitions)} x '
        f'{", ".join(plan.eval_tasks)} x {plan.eval_episodes}, seeds from '
        f'{config.seed}) of {plan.model_dir}; log {log}')
    start, errors = time.monotonic(), {}
    pairs = dict.fromkeys((partition, task) for partition, task, _ in config.items())
    for partition, task in [*pairs, (None, '')]:  # then once with all: the report's `global`
        pair = _eval_config(plan, (partition.value,), (task,)) if task else config
        with _library_output(log):
            summary = evaluation.evaluate(pair, progress=False)
        errors.update(summary.errors)
        if task:
            rows = [r for r in eval_rows(plan.eval_dir)['tasks']
                    if r['partition'] == LEVEL_OF[partition] and r['task'] == task]
            text = f"{rows[0]['successes']}/{rows[0]['episodes']}" if rows else 'no episode'
            say(f'eval {LEVEL_OF[partition]} {task}: success {text} ({summary.ran} run, '
                f'{summary.resumed} before, {len(summary.errors)} failed; '
                f'{summary.seconds:.1f} s)')
    seconds = time.monotonic() - start
    for name, error in errors.items():
        say(f'eval FAILED {name}: {error}')
    say(f'eval: done in {seconds:.1f} s; reports {plan.eval_dir}/results.md, success.png')
    return {'seconds': round(seconds, 1), 'skipped': False, 'errors': errors,
            **eval_rows(plan.eval_dir)}


def _earlier_results(plan: RunPlan, config, results: Path) -> dict:
    """Return the run's earlier results; ConfigError unless made of its final weights.

    Adding a stage changes the final weights' directory; retraining a stage rewrites them:
    either way the report there is of another model, which must not pass for this one's.
    """
    from llara_training.eval_report import ResultStore

    if not results.is_file():
        return {}
    try:  # the protocol check of a resumed evaluation: another policy, prompt, decoding...
        store = ResultStore(plan.eval_dir, config.global_args())
    except ConfigError as error:
        raise ConfigError(f'{error}. The recipe evaluates its final weights: move '
                          f'{plan.eval_dir} aside and rerun') from None
    weights = [plan.model_dir / name for name in WEIGHT_FILES
               if (plan.model_dir / name).is_file()]
    if any(path.stat().st_mtime > results.stat().st_mtime for path in weights):
        raise ConfigError(f'{results} was written before the weights of {plan.model_dir} '
                          '(retrained since); remove that evaluation directory')
    return store.data


def _eval_config(plan: RunPlan, partitions, tasks):
    """Return the run's EvalConfig, built by evaluate's own argument handling."""
    from llara_training import evaluate as evaluation

    section = plan.config.evaluate
    parser = argparse.ArgumentParser()
    evaluation.add_arguments(parser)
    args = parser.parse_args([
        '--policy', str(plan.model_dir), '--out', str(plan.eval_dir), '--env', 'sim',
        '--partition', ','.join(partitions), '--tasks', ','.join(tasks),
        '--episodes', str(plan.eval_episodes), '--seed', str(section.seed),
        '--prompt-mode', section.prompt_mode, '--prompt-id', str(section.prompt_id),
        '--decoding', section.decoding, '--renderer', section.renderer,
        '--max-steps', str(section.max_steps), '--max-new-tokens', str(section.max_new_tokens),
        '--device', section.device, '--dtype', section.dtype,
        '--cpu-threads', str(section.cpu_threads), '--workers', str(section.workers),
        '--no-progress'])
    return evaluation.config_from_args(args)


def eval_rows(eval_dir: Path) -> dict:
    """Successes (and model steps, picks and places on target) per (partition, task), partition."""
    from llara_training.eval_grounding import TARGET
    from llara_training.eval_report import GLOBAL, aggregate

    data = json.loads((Path(eval_dir) / 'results.json').read_text())
    task_rows, partition_rows = aggregate(v for k, v in data.items() if k != GLOBAL)

    def plain(row):  # with the executed model steps whose pick landed on the task's target
        return {'partition': row.level, 'task': row.task, 'successes': row.successes,
                'episodes': row.episodes, 'model_steps': row.grounding.model_steps,
                'picks_on_target': row.grounding.picks[TARGET],
                'places_on_target': row.grounding.places[TARGET]}

    return {'tasks': [plain(r) for r in task_rows],
            'partitions': [plain(r) for r in partition_rows]}
