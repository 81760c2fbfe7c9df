"""What an evaluation run does: `EvalConfig` (policy, env, episodes, LLaRA's prompt-mode flags).

The protocol is LLaRA's (llara-spec 5.1, `eval/eval-llara.py`, `eval/vima_utils.py`): per
partition and task, `episodes` episodes with seeds `seed`, `seed + 1`, ...; at most `max_steps`
env steps, stopping early on success or failure; tids `<partition>/<task>/<seed>`. Prompt-mode
flags (spec 3.6): h history, s one step per query (else every parsed step runs open loop before
the next query), o oracle boxes, d the model describes the reference images itself, e an
external detector (priority e, d, o); v (reference images as extra `<imageN>`) is refused: the
runtime policy serves one image per query.
"""
from dataclasses import asdict, dataclass, field
import enum
import math

from llara_policy.errors import ConfigError
from llara_policy.geometry.vima_map import check_vima_mapping
from llara_policy.model.config import DECODINGS, DEVICES, DTYPES
from llara_policy.sim.episode import SEED_RANGES, Partition, Split
from llara_policy.sim.tasks import TASKS
from llara_policy.sim.vima_bench import VIMA_PARTITION_TASKS
from llara_policy.task_loop import LLARA_MAX_STEPS
from llara_policy.text.prompting import ActionSpacing
from llara_policy.types import check_int, check_real

ORACLE = 'oracle'  # --policy value of the scripted expert
ENVS = ('sim', 'vima')
# llara: LLaRA's action sentences (spec 2.4). rt2: RT-2-style action tokens in VIMA table metres
# (eval-rt2.py, spec 1.3); rt2_image: the same tokens as image coordinates (the I- datasets).
DECODERS = ('llara', 'rt2', 'rt2_image')
# What an unparseable answer leads to: LLaRA samples a random action (its default here, for
# comparable numbers; recorded as a parse failure and a random action) or the episode stops.
PARSE_FAILURE_ACTIONS = ('random', 'stop')
LEVELS = {'L1': Partition.PLACEMENT, 'L2': Partition.COMBINATORIAL,
          'L3': Partition.NOVEL_OBJECT, 'L4': Partition.NOVEL_TASK}
LEVEL_OF = {partition: level for level, partition in LEVELS.items()}
# LLaRA's defaults: seeds 200000.. on VIMA-Bench (spec 5.1); the sim's test seeds start at 1e6.
DEFAULT_SEEDS = {'sim': SEED_RANGES[Split.TEST].start, 'vima': 200_000}
RENDERERS = ('auto', 'egl', 'tiny')
_FLAGS = 'hsodev'


class Descriptions(enum.Enum):
    """How the task's reference images become text (spec 3.5), by prompt-mode flag."""

    NAMES = 'names'        # no flag: `<p>NAME</p>`, a scene by its key (the inBC text)
    ORACLE = 'oracle'      # o: boxes from the reference segmentation (D-inBC text)
    SELF = 'self'          # d: the policy's own answer to a detection/localization question
    DETECTOR = 'detector'  # e: an external detector (--detector)


@dataclass(frozen=True)
class PromptMode:
    """LLaRA's `--prompt-mode` letters, e.g. 'hso'."""

    letters: str = 'hso'

    def __post_init__(self):
        if not isinstance(self.letters, str) or set(self.letters) - set(_FLAGS):
            raise ConfigError(f'prompt mode letters are {_FLAGS!r} (h history, s single step, '
                              f'o oracle boxes, d self-detection, e detector), got '
                              f'{self.letters!r}')
        if 'v' in self.letters:
            raise ConfigError("prompt mode 'v' (reference images as extra <imageN> inputs) is "
                              'not supported: the runtime policy serves one image per query')

    @property
    def history(self) -> bool:
        """h: the executed steps go into the prompt as 'You have finished: ...'."""
        return 'h' in self.letters

    @property
    def single_step(self) -> bool:
        """s: execute only the first parsed step, then query again (closed loop)."""
        return 's' in self.letters

    @property
    def descriptions(self) -> Descriptions:
        """The description source; priority e, then d, then o (LLaRA's prepare_prompt)."""
        for letter, source in (('e', Descriptions.DETECTOR), ('d', Descriptions.SELF),
                               ('o', Descriptions.ORACLE)):
            if letter in self.letters:
                return source
        return Descriptions.NAMES


def parse_partitions(text: str, env: str) -> tuple[Partition, ...]:
    """Parse 'all' or comma-separated L1..L4 / VIMA partition names, in the given order."""
    available = env_partitions(env)
    if text.strip() == 'all':
        return available
    by_name = {**LEVELS, **{p.value: p for p in Partition}}
    chosen = []
    for name in (part.strip() for part in text.split(',') if part.strip()):
        if name not in by_name:
            raise ConfigError(f'unknown partition {name!r}; use L1..L4 or '
                              f'{", ".join(p.value for p in Partition)}')
        if by_name[name] not in available:
            raise ConfigError(f'the {env} env has no partition {name} (it has '
                              f'{", ".join(LEVEL_OF[p] for p in available)})')
        if by_name[name] not in chosen:
            chosen.append(by_name[name])
    if not chosen:
        raise ConfigError(f'no partition given in {text!r}')
    return tuple(chosen)


def env_partitions(env: str) -> tuple[Partition, ...]:
    """Return the partitions an env can run (the sim has no L4 tasks: VIMA-Bench only)."""
    return tuple(p for p in Partition if env == 'vima' or p is not Partition.NOVEL_TASK)


def partition_tasks(env: str, partition: Partition) -> tuple[str, ...]:
    """Return a partition's tasks in VIMA-Bench's order; on the sim, those it implements."""
    tasks = VIMA_PARTITION_TASKS[partition]
    return tasks if env == 'vima' else tuple(t for t in tasks if t in TASKS)


@dataclass(frozen=True)
class EvalConfig:
    """Settings of one `llara_training evaluate` run (see the CLI help for each).

    `tasks` empty means every task of each partition. A named task missing from one of the
    partitions is left out there and reported (`skipped_pairs`); one in none is an error.
    """

    policy: str
    out: str
    env: str = 'sim'
    partitions: tuple[Partition, ...] = (Partition.PLACEMENT,)
    tasks: tuple[str, ...] = ()
    episodes: int = 20
    seed: int = DEFAULT_SEEDS['sim']
    workers: int = 1
    prompt_mode: PromptMode = PromptMode()
    prompt_id: int = -1
    max_steps: int = LLARA_MAX_STEPS
    decoder: str = 'llara'
    decoding: str = 'greedy'
    max_new_tokens: int = 256
    on_parse_failure: str = 'random'
    spacing: str = ActionSpacing.RELEASED.value
    rt2_instruction: bool = False
    vima_mapping: str = 'unbiased'
    renderer: str = 'auto'
    device: str = 'auto'
    dtype: str = 'auto'
    cpu_threads: int = 0
    detector: str = ''
    detector_threshold: float = 0.6
    trained_settings: dict = field(default_factory=dict)

    def __post_init__(self):
        for name, allowed in (('env', ENVS), ('decoder', DECODERS), ('decoding', DECODINGS),
                              ('on_parse_failure', PARSE_FAILURE_ACTIONS),
                              ('spacing', tuple(s.value for s in ActionSpacing)),
                              ('renderer', RENDERERS), ('device', DEVICES), ('dtype', DTYPES)):
            if getattr(self, name) not in allowed and not (
                    name == 'device' and str(self.device).startswith('cuda:')):
                raise ConfigError(f'EvalConfig.{name} must be one of {", ".join(allowed)}; '
                                  f'got {getattr(self, name)!r}')
        if not self.policy or not self.out:
            raise ConfigError('EvalConfig: policy (oracle or a model directory) and out are '
                              'required')
        object.__setattr__(self, 'partitions', tuple(self.partitions))
        object.__setattr__(self, 'tasks', tuple(self.tasks))
        for partition in self.partitions:
            if partition not in env_partitions(self.env):
                raise ConfigError(f'the {self.env} env has no partition {partition.value}')
        known = {t for p in self.partitions for t in partition_tasks(self.env, p)}
        unknown = [t for t in self.tasks if t not in known]
        if unknown or not self.partitions:
            raise ConfigError(f'tasks {", ".join(unknown)} are in none of the partitions '
                              f'{", ".join(LEVEL_OF[p] for p in self.partitions)} of the '
                              f'{self.env} env (their tasks: {", ".join(sorted(known))})')
        for name, low in (('episodes', 1), ('workers', 1), ('max_steps', 1),
                          ('max_new_tokens', 1), ('cpu_threads', 0)):
            check_int(f'EvalConfig.{name}', getattr(self, name), low, error=ConfigError)
        check_int('EvalConfig.prompt_id', self.prompt_id, error=ConfigError)
        check_int('EvalConfig.seed', self.seed, 0, error=ConfigError)
        check_real('EvalConfig.detector_threshold', self.detector_threshold, 0.0, 1.0,
                   error=ConfigError)
        check_vima_mapping('EvalConfig.vima_mapping', self.vima_mapping)
        self._check_combinations()

    def _check_combinations(self) -> None:
        if self.env == 'sim':
            test = SEED_RANGES[Split.TEST]
            if self.seed < test.start or self.seed + self.episodes > test.stop:
                raise ConfigError(f'sim test seeds lie in {test.start}..{test.stop - 1}; seeds '
                                  f'{self.seed}..{self.seed + self.episodes - 1} do not')
        if self.is_oracle and self.decoder != 'llara':
            raise ConfigError('the oracle answers in LLaRA text: use --decoder llara with it')
        if self.decoder != 'llara' and self.decoding == 'template':
            raise ConfigError('template decoding forces LLaRA sentences; RT-2 decoders need '
                              '--decoding greedy')
        if self.prompt_mode.descriptions is Descriptions.DETECTOR and not self.detector:
            raise ConfigError("prompt mode 'e' needs --detector MODULE:FUNCTION (LLaRA's MaskRCNN "
                              'is not part of this stack; the hook takes an RGB reference image '
                              'and returns eval_prompts.Detection values)')

    @property
    def is_oracle(self) -> bool:
        """Whether the policy is the scripted expert rather than a model directory."""
        return self.policy == ORACLE

    def items(self) -> list[tuple[Partition, str, int]]:
        """Every (partition, task, seed) of the run, partition by partition, task by task."""
        return [(partition, task, seed)
                for partition in self.partitions
                for task in partition_tasks(self.env, partition)
                if not self.tasks or task in self.tasks
                for seed in range(self.seed, self.seed + self.episodes)]

    def skipped_pairs(self) -> list[tuple[Partition, str]]:
        """Named tasks left out of a partition that does not have them."""
        return [(p, t) for p in self.partitions for t in self.tasks
                if t not in partition_tasks(self.env, p)]

    def global_args(self) -> dict:
        """Return the JSON `global` entry: LLaRA's argument names where they fit, then ours."""
        values = asdict(self)
        values.update(partitions=[p.value for p in self.partitions], tasks=list(self.tasks),
                      prompt_mode=self.prompt_mode.letters)
        llara = {'model_path': self.policy, 'output_path': self.out,
                 'prompt_mode': self.prompt_mode.letters, 'prompt_id': self.prompt_id,
                 'seed': self.seed, 'num_env': self.episodes, 'max_length': self.max_steps,
                 'partition': ','.join(p.value for p in self.partitions),
                 'detector': self.detector, 'detector_thre': self.detector_threshold}
        return {**llara, **values}


# The `global` keys that decide what an episode's result means: a results file is resumed only
# by a run that agrees on all of them (episodes, tasks, partitions and workers may change).
PROTOCOL_KEYS = ('policy', 'env', 'prompt_mode', 'prompt_id', 'max_steps', 'decoder',
                 'decoding', 'max_new_tokens', 'on_parse_failure', 'spacing',
                 'rt2_instruction', 'vima_mapping', 'renderer', 'detector', 'detector_threshold',
                 'trained_settings')


def rate_text(successes: int, episodes: int) -> str:
    """'90.0 (18/20)': a success rate as LLaRA's result tables write it."""
    rate = 100.0 * successes / episodes if episodes else math.nan
    return f'{rate:.1f} ({successes}/{episodes})'
