"""Oracle rollouts of the embedded sim as episodes: tasks x a seed range, sharded, in parallel.

VIMA's dataset is oracle demonstrations (vimabench-spec D): reset a seed, let the scripted
oracle act until the task is done, keep successes. Here each (task, seed) is one episode,
`sim-<task>-<seed:07d>`, fully determined by the pair (SimEnv builds the same scene and pixels
for the same seed; a run pins the renderer), so:

- a shard `K/N` takes the K-th of N contiguous blocks of the seed range, on any machine, and
  shards merge without duplicates (`episode_store.merge_stores`);
- a killed run resumes: ids with an outcome in the store (an episode or a rejection) are
  skipped, a finished shard (its manifest) is skipped whole;
- `workers` processes (spawn: pybullet is not fork-safe) each hold one SimEnv at a time and
  write their episodes themselves (atomic renames), returning only an outcome line.

Unsuccessful oracle episodes are rejected with their reason (kept as success=False episodes
with `keep_failed`), never silently dropped. Points are labelled from the oracle's exact
model-frame point u = x_norm * width (the executor's decode: model pixel u -> camera ray) with
`LabelMapping`: UNBIASED = the centre of the pixel holding u, (floor(u) + 0.5) / width, round
trip error within half a pixel, mean zero; LLARA = int(u) / width, LLaRA's whole pixels (on
average half a pixel toward the top left, as LLaRA's labels are). Rotation is LLaRA's
-int(yaw change) either way.
"""
from collections.abc import Callable, Iterator
import contextlib
from dataclasses import dataclass
import hashlib
import json
import math
import multiprocessing
import os
import time

from llara_policy.errors import ConfigError, LlaraError
from llara_policy.sim.env import SimEnv, SimEnvConfig
from llara_policy.sim.episode import SEED_RANGES, Partition, Split, object_boxes
from llara_policy.sim.tasks import TASKS
from llara_policy.types import (
    MODEL_FRAME_HEIGHT_PX,
    MODEL_FRAME_WIDTH_PX,
    ActionStep,
    ImagePoint,
    check_int,
)
from llara_training.episode import Episode, EpisodeSource, Frame, LabelMapping
from llara_training.episode_store import EpisodeStore

SIM_MAPPINGS = (LabelMapping.UNBIASED, LabelMapping.LLARA)
_THREAD_VARIABLES = ('OMP_NUM_THREADS', 'OPENBLAS_NUM_THREADS', 'MKL_NUM_THREADS')


@dataclass(frozen=True)
class Shard:
    """Shard `index` of `count`: the index-th of `count` contiguous blocks of a seed range."""

    index: int = 0
    count: int = 1

    def __post_init__(self):
        check_int('Shard.count', self.count, 1, error=ConfigError)
        check_int('Shard.index', self.index, 0, self.count - 1, error=ConfigError)

    @classmethod
    def parse(cls, text: str) -> 'Shard':
        """Parse 'K/N' (0-based K)."""
        index, sep, count = text.partition('/')
        if not sep or not index.strip().isdigit() or not count.strip().isdigit():
            raise ConfigError(f'a shard is K/N with 0 <= K < N, got {text!r}')
        return cls(int(index), int(count))

    def seeds(self, seeds: range) -> range:
        """Return this shard's block of `seeds` (blocks differ in size by at most one)."""
        size, extra = divmod(len(seeds), self.count)
        start = seeds.start + self.index * size + min(self.index, extra)
        return range(start, start + size + (self.index < extra))

    @property
    def tag(self) -> str:
        """'0of2': file-name form."""
        return f'{self.index}of{self.count}'


def parse_seeds(text: str) -> range:
    """Parse 'A:B' (seeds A..B-1, Python's range)."""
    first, sep, stop = text.partition(':')
    try:
        seeds = range(int(first), int(stop))
    except ValueError:
        seeds = range(0)
    if not sep or not seeds:
        raise ConfigError(f'seeds are A:B with A < B (seeds A..B-1), got {text!r}')
    return seeds


@dataclass(frozen=True)
class RolloutConfig:
    """What a generation run produces: tasks x seeds (this shard's block), how labelled."""

    tasks: tuple[str, ...]
    seeds: range
    shard: Shard = Shard()
    split: Split = Split.TRAIN
    mapping: LabelMapping = LabelMapping.UNBIASED
    keep_failed: bool = False
    renderer: str = 'auto'

    def __post_init__(self):
        object.__setattr__(self, 'tasks', tuple(self.tasks))
        unknown = [t for t in self.tasks if t not in TASKS]
        if not self.tasks or unknown:
            raise ConfigError(f'tasks must be among {", ".join(sorted(TASKS))}; got '
                              f'{", ".join(self.tasks) or "none"}')
        allowed = SEED_RANGES[self.split]
        if not isinstance(self.seeds, range) or not self.seeds or self.seeds.step != 1 or (
                self.seeds.start < allowed.start or self.seeds.stop > allowed.stop):
            raise ConfigError(f'{self.split.value} seeds lie in {allowed.start}:{allowed.stop}, '
                              f'got {self.seeds}')
        if self.mapping not in SIM_MAPPINGS:
            raise ConfigError(f'sim labels are {[m.value for m in SIM_MAPPINGS]}, '
                              f'got {self.mapping}')
        SimEnvConfig(task=self.tasks[0], renderer=self.renderer)  # validates the renderer

    def items(self) -> list[tuple[str, int]]:
        """Return this shard's (task, seed) pairs, task by task (one env per task)."""
        return [(task, seed) for task in self.tasks for seed in self.shard.seeds(self.seeds)]

    def shard_tag(self) -> str:
        """Return the shard manifest's name: the seed range, the shard and a digest of the rest."""
        return (f'sim_{self.seeds.start}-{self.seeds.stop}_{self.shard.tag}_'
                f'{_digest(self.manifest_params())}')

    def manifest_params(self) -> dict:
        """Return the parameters a finished shard's manifest records."""
        return {'tasks': list(self.tasks), 'seeds': [self.seeds.start, self.seeds.stop],
                'shard': [self.shard.index, self.shard.count], 'split': self.split.value,
                'mapping': self.mapping.value, 'keep_failed': self.keep_failed,
                'renderer': self.renderer}


def _digest(params: dict) -> str:
    return hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:8]


def episode_id(task: str, seed: int) -> str:
    """Return the id of the sim episode (task, seed)."""
    return f'sim-{task}-{seed:07d}'


def label_point(point: ImagePoint, mapping: LabelMapping) -> ImagePoint:
    """Return the label of an exact model point (see the module docstring)."""
    coords = []
    for value, size in ((point.x_norm, MODEL_FRAME_WIDTH_PX),
                        (point.y_norm, MODEL_FRAME_HEIGHT_PX)):
        pixel = value * size
        label = math.trunc(pixel) if mapping is LabelMapping.LLARA else math.floor(pixel) + 0.5
        coords.append(min(label, size - 0.5) / size)
    return ImagePoint(*coords)


@dataclass(frozen=True)
class Rollout:
    """One oracle rollout: the episode (None when not even one step ran) and why it failed."""

    episode: Episode | None
    reason: str  # '' on success
    steps: int


def rollout(env: SimEnv, seed: int, mapping: LabelMapping) -> Rollout:
    """Run the oracle on `env` from `seed` until the episode ends; label its steps."""
    task = env.config.task
    try:
        obs = env.reset(seed)
    except LlaraError as error:
        return Rollout(None, f'reset: {type(error).__name__}: {error}', 0)
    info = env.info
    frames = [Frame(obs.rgb, obs.segm, object_boxes(obs.segm, info.object_names))]
    steps, reason, result = [], '', None
    while result is None or not result.done:
        try:
            oracle = env.oracle()
            result = env.step(oracle.action)
        except LlaraError as error:
            reason = f'step {len(steps) + 1}: {type(error).__name__}: {error}'
            break
        step = oracle.step
        steps.append(ActionStep(label_point(step.pick, mapping), label_point(step.place, mapping),
                                step.rotation_cw_deg, oracle.object_name, step.effector,
                                len(steps) + 1))
        frames.append(Frame(result.obs.rgb, result.obs.segm,
                            object_boxes(result.obs.segm, info.object_names)))
    success = bool(result is not None and result.success and not reason)
    if not reason and not success:
        reason = ('task failure' if result.failure
                  else f'not solved within {env.step_limit} steps')
    if not steps:
        return Rollout(None, reason, 0)
    episode = Episode(episode_id(task, seed), EpisodeSource.SIM, task, seed, info.prompt,
                      info.effector, tuple(frames), tuple(steps), success, mapping,
                      dict(info.object_names))
    return Rollout(episode, reason, len(steps))


@dataclass(frozen=True)
class Outcome:
    """What became of one (task, seed): 'written', 'rejected' or 'skipped' (done before)."""

    episode_id: str
    status: str
    reason: str = ''
    steps: int = 0
    seconds: float = 0.0


# -- workers ---------------------------------------------------------------------------------

_worker: dict = {}


def _init_worker(config: RolloutConfig, root: str, writer: str) -> None:
    store = EpisodeStore(root)
    _worker.update(config=config, store=store, env=None,
                   scratch=store.partial_dir(f'{writer}-{multiprocessing.current_process().pid}'))


def _run_item(item: tuple[str, int]) -> Outcome:
    task, seed = item
    config, store = _worker['config'], _worker['store']
    env = _worker['env']
    if env is None or env.config.task != task:
        if env is not None:
            env.close()  # one env at a time: the EGL plugin serves one world per process
        env = _worker['env'] = SimEnv(SimEnvConfig(
            task=task, partition=Partition.PLACEMENT, split=config.split,
            renderer=config.renderer, bonus_steps=0))
    start = time.perf_counter()
    result = rollout(env, seed, config.mapping)
    name = episode_id(task, seed)
    keep = result.episode is not None and (not result.reason or config.keep_failed)
    if keep and store.write(result.episode, _worker['scratch']):
        store.clear_rejection(name)  # rejected by an earlier run that did not keep failures
        status = 'written'
    elif keep:
        status = 'skipped'
    else:
        store.reject(name, result.reason, task=task, seed=seed, steps=result.steps)
        status = 'rejected'
    return Outcome(name, status, result.reason, result.steps, time.perf_counter() - start)


def _close_worker() -> None:
    if _worker.get('env') is not None:
        _worker['env'].close()
        _worker['env'] = None


def generate(config: RolloutConfig, root, workers: int = 1,
             on_total: Callable[[int], None] = lambda n: None) -> Iterator[Outcome]:
    """Generate this shard's episodes into the store at `root`; yield each item's outcome.

    Items already done are yielded as 'skipped' first; a finished shard yields them all as
    skipped. `on_total` learns the item count before the first outcome. When every item has
    an outcome, the shard manifest is written.
    """
    check_int('workers', workers, 1, error=ConfigError)
    store = EpisodeStore(root, create=True)
    tag, items = config.shard_tag(), config.items()
    on_total(len(items))
    finished = store.shard_manifest(tag) is not None
    done = set(store.episode_ids())
    # A rejection is final, unless failed episodes are now kept and this one has steps to keep.
    done |= {item_id for item_id, record in store.rejections().items()
             if not (config.keep_failed and record.get('steps', 0))}
    todo = []
    for task, seed in items:
        if finished or episode_id(task, seed) in done:
            yield Outcome(episode_id(task, seed), 'skipped')
        else:
            todo.append((task, seed))
    if finished:
        return
    counts = {'written': 0, 'rejected': 0, 'skipped': len(items) - len(todo)}
    for outcome in _outcomes(config, store, todo, workers):
        counts[outcome.status] += 1
        yield outcome
    store.finish_shard(tag, {**config.manifest_params(), 'counts': counts})


@contextlib.contextmanager
def _one_blas_thread():
    """Start worker processes with one BLAS/OpenMP thread each (unless the user chose).

    W workers are meant to use W cores; numpy's BLAS threads in every worker would compete
    for them.
    """
    saved = {name: os.environ.get(name) for name in _THREAD_VARIABLES}
    os.environ.update({name: value or '1' for name, value in saved.items()})
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)


def _outcomes(config, store, todo, workers) -> Iterator[Outcome]:
    writer = config.shard_tag()
    store.clear_partials(writer)  # this shard's half-written episodes from a killed run
    try:
        if workers == 1 or len(todo) <= 1:
            _init_worker(config, str(store.root), writer)
            try:
                yield from map(_run_item, todo)
            finally:
                _close_worker()
            return
        context = multiprocessing.get_context('spawn')
        with _one_blas_thread():
            pool = context.Pool(min(workers, len(todo)), _init_worker,
                                (config, str(store.root), writer))
        with pool:
            yield from pool.imap_unordered(_run_item, todo, chunksize=1)
    finally:
        store.clear_partials(writer)
