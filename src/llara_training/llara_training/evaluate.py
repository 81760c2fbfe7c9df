"""`llara_training evaluate --policy oracle|MODEL_DIR --out DIR ...`: closed-loop evaluation.

LLaRA's protocol (llara-spec 5.1) on the embedded sim or VIMA-Bench: per partition and task,
`--episodes` episodes with seeds from `--seed`, at most `--max-steps` env steps each, stopping
on success or failure; the runtime's `VlmPolicy` (or the scripted oracle) answers, the answer is
decoded as LLaRA text or RT-2-style action tokens and executed through the executor's mapping
(`eval_episode`). Episodes run in `--workers` processes (spawn; one env and one policy each).

Outputs in --out: `results.json` (LLaRA's format: `global` + one entry per
`<partition>/<task>/<seed>` with every prompt and answer, plus our fields), `results.md` (table
per task and partition), `success.png` (bar chart), `errors.json` (episodes that raised; they
are not stored, so a rerun retries them). Resumable: tids already in results.json are skipped.
Exit status 0; 1 when some episode raised; 2 for bad options or a policy that does not load.
"""
import argparse
from dataclasses import asdict, dataclass, field
import multiprocessing
import os
from pathlib import Path
import sys
import time

from llara_policy.errors import ConfigError, LlaraError
from llara_policy.model.config import DECODINGS, DEVICES, DTYPES, read_trained_settings
from llara_policy.sim.vima_bench import INSTALL_HINT, vima_bench_available
from llara_policy.task_loop import LLARA_MAX_STEPS
from llara_policy.text.prompting import ActionSpacing
from llara_training.eval_agents import make_agent, make_env, policy_config
from llara_training.eval_config import (
    DECODERS,
    DEFAULT_SEEDS,
    ENVS,
    LEVEL_OF,
    PARSE_FAILURE_ACTIONS,
    RENDERERS,
    EvalConfig,
    PromptMode,
    parse_partitions,
    rate_text,
)
from llara_training.eval_episode import run_episode, tid
from llara_training.eval_prompts import load_detector
from llara_training.eval_report import ERRORS_JSON, ResultStore, Row, write_json, write_reports


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `llara_training evaluate`."""
    add = parser.add_argument
    add('--policy', required=True, help="'oracle' (the env's scripted expert) or a model "
        'directory (a finetune output: its training_config.yaml is read back)')
    add('--out', required=True, type=Path, help='output directory (results.json, results.md, '
        'success.png, errors.json); an existing results.json is resumed')
    add('--env', choices=ENVS, default='sim', help='embedded sim or VIMA-Bench (make vima)')
    add('--partition', default='all', help='all, or comma-separated L1..L4 / VIMA partition '
        'names (the sim has L1-L3)')
    add('--tasks', default='all', help='all, or comma-separated VIMA task names')
    add('--episodes', type=int, default=20, help='episodes per task and partition (LLaRA: 20)')
    add('--seed', type=int, default=-1, help='first seed (default: 1000000 on the sim, whose '
        'test seeds start there; 200000 on VIMA-Bench, as LLaRA)')
    add('--workers', type=int, default=1, help='parallel worker processes (one env each)')
    add('--prompt-mode', default='hso', help="LLaRA's flags: h history, s single step per "
        'query, o oracle boxes, d self-detection, e detector (default hso)')
    add('--prompt-id', type=int, default=-1, help='user prompt: < 0 random per query (seeded '
        'by the episode seed), 0-14 fixed, >= 15 omitted')
    add('--max-steps', type=int, default=LLARA_MAX_STEPS,
        help=f'env steps per episode (LLaRA: {LLARA_MAX_STEPS})')
    add('--decoder', choices=DECODERS, default='llara', help='answer decoding: LLaRA text, '
        'RT-2 action tokens in VIMA table metres (rt2) or image coordinates (rt2_image)')
    add('--decoding', choices=DECODINGS, default='greedy', help="generation: greedy (LLaRA's "
        'eval) or template (forced LLaRA sentences, the policy node default)')
    add('--max-new-tokens', type=int, default=256, help='generation budget (LLaRA: 256)')
    add('--on-parse-failure', choices=PARSE_FAILURE_ACTIONS, default='random',
        help="an answer with no step: a random action (LLaRA's eval) or stop the episode")
    add('--spacing', choices=[s.value for s in ActionSpacing], default='released',
        help='pick-point spacing of history lines (released checkpoints: released)')
    add('--rt2-instruction', action='store_true', help="RT-2 decoders: add LLaRA's action "
        'format instruction, as eval-rt2.py does (its training samples have none)')
    add('--vima-mapping', choices=('unbiased', 'llara'), default='unbiased',
        help="VIMA-Bench model-point convention: llara for LLaRA's released checkpoints")
    add('--renderer', choices=RENDERERS, default='auto', help='sim renderer')
    add('--device', default='auto', help=f'model device: {", ".join(DEVICES)} or cuda:N')
    add('--dtype', choices=DTYPES, default='auto', help='model dtype')
    add('--cpu-threads', type=int, default=0, help='torch threads per worker (0: the cores '
        'divided among the workers)')
    add('--detector', default='', help='prompt mode e: MODULE:FUNCTION taking a reference RGB '
        'image and returning eval_prompts.Detection values')
    add('--detector-threshold', type=float, default=0.6, help='e: lowest detection score kept')
    add('--no-progress', action='store_true', help='no progress bar')


def config_from_args(args: argparse.Namespace) -> EvalConfig:
    """Build the run's config from the arguments (ConfigError when they do not fit)."""
    tasks = () if args.tasks.strip() == 'all' else tuple(
        t.strip() for t in args.tasks.split(',') if t.strip())
    is_model = args.policy != 'oracle'
    if is_model and not Path(args.policy).is_dir():
        raise ConfigError(f"--policy must be 'oracle' or a model directory; {args.policy!r} "
                          'is neither')
    if args.env == 'vima' and not vima_bench_available():
        raise ConfigError(INSTALL_HINT)
    threads = args.cpu_threads
    if is_model and threads == 0 and args.workers > 1:
        threads = max(1, (os.cpu_count() or 1) // args.workers)  # no oversubscription
    return EvalConfig(
        policy=args.policy, out=str(args.out), env=args.env,
        partitions=parse_partitions(args.partition, args.env), tasks=tasks,
        episodes=args.episodes, seed=DEFAULT_SEEDS[args.env] if args.seed < 0 else args.seed,
        workers=args.workers, prompt_mode=PromptMode(args.prompt_mode),
        prompt_id=args.prompt_id, max_steps=args.max_steps, decoder=args.decoder,
        decoding=args.decoding, max_new_tokens=args.max_new_tokens,
        on_parse_failure=args.on_parse_failure, spacing=args.spacing,
        rt2_instruction=args.rt2_instruction, vima_mapping=args.vima_mapping,
        renderer=args.renderer, device=args.device, dtype=args.dtype, cpu_threads=threads,
        detector=args.detector, detector_threshold=args.detector_threshold,
        trained_settings=read_trained_settings(args.policy) if is_model else {})


@dataclass(frozen=True)
class EvalSummary:
    """What a run did: episodes run and resumed, errors, rates per partition, outputs."""

    episodes: int
    ran: int
    resumed: int
    errors: dict
    partitions: list[Row]
    seconds: float
    out: Path
    skipped_pairs: list = field(default_factory=list)


# -- workers -----------------------------------------------------------------------------------

_worker: dict = {}


def _init_worker(config: EvalConfig) -> None:
    _worker.clear()
    _worker.update(config=config, agent=None, detector=None, env=None, env_key=None)


def _run_item(item) -> dict:
    """Run one (partition, task, seed) in this process; returns the entry or the error."""
    partition, task, seed = item
    config = _worker['config']
    name = tid(partition, task, seed)
    if _worker['agent'] is None:
        try:
            _worker['agent'] = make_agent(config)
            _worker['detector'] = load_detector(config.detector) if config.detector else None
        except (LlaraError, OSError) as error:
            return {'tid': name, 'fatal': f'the policy does not load: {type(error).__name__}: '
                    f'{error}'}
    try:
        if _worker['env_key'] != (partition, task):
            _close_env()  # one env per process at a time (VIMA-Bench allows no more)
            _worker['env'] = make_env(config, partition, task)
            _worker['env_key'] = (partition, task)
        entry = run_episode(config, _worker['env'], _worker['agent'], partition, task, seed,
                            _worker['detector'])
    except LlaraError as error:
        return {'tid': name, 'error': f'{type(error).__name__}: {error}'}
    return {'tid': name, 'entry': entry}


def _close_env() -> None:
    if _worker.get('env') is not None:
        _worker['env'].close()
    _worker['env'], _worker['env_key'] = None, None


def _outcomes(config: EvalConfig, items: list):
    if config.workers == 1 or len(items) <= 1:
        _init_worker(config)
        try:
            yield from map(_run_item, items)
        finally:
            _close_env()
        return
    context = multiprocessing.get_context('spawn')  # pybullet and torch are not fork-safe
    with context.Pool(min(config.workers, len(items)), _init_worker, (config,)) as pool:
        yield from pool.imap_unordered(_run_item, items, chunksize=1)


# -- the run -----------------------------------------------------------------------------------

def evaluate(config: EvalConfig, progress: bool = True) -> EvalSummary:
    """Run every episode of `config` not yet in its results file; write the reports."""
    start = time.monotonic()
    global_args = config.global_args()
    if not config.is_oracle:  # what the policy runs with, trained settings read back
        global_args['policy_config'] = asdict(policy_config(config))
    store = ResultStore(config.out, global_args)
    items = config.items()
    todo = [item for item in items if tid(*item) not in store]
    errors = {}
    bar = _progress(len(todo), progress)
    successes = 0
    for outcome in _outcomes(config, todo):
        if 'fatal' in outcome:
            bar.close()
            raise ConfigError(outcome['fatal'])
        if 'error' in outcome:
            errors[outcome['tid']] = outcome['error']
        else:
            store.add(outcome['entry'])
            successes += bool(outcome['entry']['success'])
        bar.update(1)
        bar.set_postfix_str(f'success {successes}/{bar.n}')
    bar.close()
    write_json(store.root / ERRORS_JSON, [{'tid': k, 'error': v} for k, v in errors.items()])
    _, _, partition_rows = write_reports(store)
    return EvalSummary(len(items), len(todo) - len(errors), len(items) - len(todo), errors,
                       partition_rows, time.monotonic() - start, store.root,
                       config.skipped_pairs())


def summary_text(summary: EvalSummary, config: EvalConfig) -> str:
    """Write a few lines for the terminal: counts, rates per partition, problems, outputs."""
    lines = [f'evaluate: {summary.episodes} episodes ({summary.ran} run, {summary.resumed} from '
             f'earlier runs, {len(summary.errors)} failed) in {summary.seconds:.1f} s with '
             f'{config.workers} worker(s); policy {config.policy}, env {config.env}, mode '
             f'{config.prompt_mode.letters}, decoder {config.decoder}']
    for row in summary.partitions:
        lines.append(f'  {row.level}: success {rate_text(row.successes, row.episodes)}; '
                     f'{row.queries} queries, {row.parse_failures} parse failures, '
                     f'{row.random_actions} random actions, {row.rejected_actions} rejected')
    lines.extend(f'  not run: {task} is not a {LEVEL_OF[partition]} task'
                 for partition, task in summary.skipped_pairs)
    lines.extend(f'  FAILED {name}: {error}' for name, error in summary.errors.items())
    lines.append(f'  results: {summary.out}/results.json, results.md, success.png')
    return '\n'.join(lines)


def run(args: argparse.Namespace) -> int:
    """Entry point of the stage; see the module docstring for the exit status."""
    try:
        config = config_from_args(args)
        summary = evaluate(config, progress=not args.no_progress)
    except LlaraError as error:
        print(f'evaluate: {type(error).__name__}: {error}', file=sys.stderr)
        return 2
    print(summary_text(summary, config))
    return 1 if summary.errors else 0


def _progress(total: int, enabled: bool):
    try:
        from tqdm import tqdm
    except ImportError:  # tqdm is optional: no bar, the summary still says everything
        enabled = False
    if not enabled:
        return _NoProgress()
    return tqdm(total=total, unit='episode', desc='evaluate', file=sys.stderr)


class _NoProgress:
    n = 0

    def update(self, count: int) -> None:
        """Count without drawing."""
        self.n += count

    def set_postfix_str(self, text: str) -> None:
        """Ignore the postfix."""

    def close(self) -> None:
        """Nothing to close."""

