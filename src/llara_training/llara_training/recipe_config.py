"""`RecipeConfig`: one YAML file for `llara_training recipe`, from random weights to a policy.

Sections (each a frozen dataclass validated on construction; an unknown key is a ConfigError
naming it): `episodes` (sim rollouts to generate), `convert` (the LLaRA conversion and the
auxiliary mixture ratios), `model` (the small-model preset and flags), `stages` (fine-tuning
stages, trained in order, each from the previous one's weights, on `data` aux, mixture or
main), `train_defaults` (TrainConfig keys every stage starts from), `evaluate` (the closed-loop
protocol of the final weights) and `curve` (the with/without-auxiliary-data curve). The four
TrainConfig paths are the recipe's to set. See configs/demo_recipe.yaml.
"""
from dataclasses import MISSING, asdict, dataclass, field, fields
import re
import typing

from llara_policy.errors import ConfigError
from llara_policy.task_loop import LLARA_MAX_STEPS
from llara_training.aux_datasets import AUX_PRESETS, AuxName, parse_ratios
from llara_training.conversations import FORMATS, AnswerMode, ConversationConfig, Method
from llara_training.eval_config import (
    ORACLE,
    RENDERERS,
    EvalConfig,
    PromptMode,
    parse_partitions,
)
from llara_training.small_model import PRESETS, check_feature_layer, spec_from_args
from llara_training.train_config import TrainConfig, coerce_value, read_yaml

# Which samples a stage trains on: every auxiliary sample with a mixture ratio > 0 (LLaVA's
# stage-1 grounding data), LLaRA's mixture (main + aux at the ratios) or the main set alone.
DATA_KINDS = ('aux', 'mixture', 'main')
# How the model normalizes frames: CLIP's mean, or the training frames' own (model.frame_mean).
FRAME_MEANS = ('clip', 'data')
MAX_MISSED_RATIO = 10  # missed-attempt samples per main sample, at most
RECIPE_PATH_KEYS = ('model_path', 'data_path', 'image_folder', 'output_dir')
_NAME = re.compile(r'[A-Za-z0-9][A-Za-z0-9_.-]*')
_RESERVED_STAGE_NAMES = ('eval',)


def _check_types(section: str, obj) -> None:
    """ConfigError naming `section.field` whose value is not of its annotated type."""
    for item in fields(obj):
        value, annotation = getattr(obj, item.name), item.type
        if typing.get_origin(annotation) is tuple:
            element = typing.get_args(annotation)[0]
            good = isinstance(value, tuple) and all(
                type(v) is element or (element is float and type(v) is int) for v in value)
        elif annotation is float:
            good = type(value) in (int, float)
        else:
            good = type(value) is annotation
        if not good:
            name = getattr(annotation, '__name__', str(annotation))
            raise ConfigError(f'recipe {section}.{item.name} must be of type {name}, '
                              f'got {value!r}')


def _positive(section: str, name: str, value: int) -> None:
    if value < 1:
        raise ConfigError(f'recipe {section}.{name} must be >= 1, got {value!r}')


@dataclass(frozen=True)
class EpisodesSection:
    """Oracle rollouts of the embedded sim: tasks x seeds A:B (the `episodes generate` flags)."""

    tasks: tuple[str, ...] = ('visual_manipulation',)
    seeds: str = '0:100'
    renderer: str = 'tiny'
    workers: int = 1
    mapping: str = 'unbiased'

    def __post_init__(self):
        from llara_policy.sim.tasks import TASKS
        from llara_training.sources.sim_rollouts import parse_seeds

        _check_types('episodes', self)
        unknown = [task for task in self.tasks if task not in TASKS]
        if not self.tasks or unknown:
            raise ConfigError(f'recipe episodes.tasks must name sim tasks '
                              f'({", ".join(sorted(TASKS))}); got {list(self.tasks)}')
        parse_seeds(self.seeds)
        if self.renderer not in RENDERERS or self.mapping not in ('unbiased', 'llara'):
            raise ConfigError(f'recipe episodes: renderer one of {RENDERERS}, mapping unbiased '
                              f'or llara; got {self.renderer!r}, {self.mapping!r}')
        _positive('episodes', 'workers', self.workers)

    @property
    def seed_range(self) -> range:
        """The seeds A..B-1."""
        from llara_training.sources.sim_rollouts import parse_seeds

        return parse_seeds(self.seeds)


@dataclass(frozen=True)
class ConvertSection:
    """The conversion (`convert` flags): format, aux preset, mixture ratios, answers, seed."""

    format: str = 'inBC'
    aux: str = 'B'
    aux_ratio: dict = field(default_factory=dict)
    answers: str = AnswerMode.MULTI.value
    seed: int = 0

    def __post_init__(self):
        _check_types('convert', self)
        if self.format not in FORMATS or \
                ConversationConfig.from_format(self.format).method is not Method.INBC:
            raise ConfigError(f'recipe convert.format must be a LLaRA text format (inBC, '
                              f'D-inBC, ...; RT-2 formats need a tokenizer), got {self.format!r}')
        if self.aux not in AUX_PRESETS or self.answers not in [m.value for m in AnswerMode]:
            raise ConfigError(f'recipe convert: aux one of {list(AUX_PRESETS)}, answers multi '
                              f'or single; got {self.aux!r}, {self.answers!r}')
        _ = self.ratios  # parse_ratios checks the names and values

    @property
    def ratios(self) -> dict[AuxName, float]:
        """Mixture ratio per auxiliary set of the preset (1 where not given)."""
        return parse_ratios([f'{name}={value}' for name, value in self.aux_ratio.items()],
                            AUX_PRESETS[self.aux])

    @property
    def aux_sets(self) -> tuple[AuxName, ...]:
        """The auxiliary sets a stage trains on: those with a ratio > 0, in preset order."""
        return tuple(name for name, ratio in self.ratios.items() if ratio > 0)

    def convert_args(self) -> list[str]:
        """Return the `convert` command-line options of this section."""
        ratios = [f'--aux-ratio={name.value}={ratio:g}' for name, ratio in self.ratios.items()]
        return ['--format', self.format, '--aux', self.aux, '--answers', self.answers,
                '--seed', str(self.seed), *ratios]


@dataclass(frozen=True)
class ModelSection:
    """The random-weight model (`small-model` flags); `sizes` overrides TinySpec fields."""

    preset: str = 'demo'
    squash: bool = True
    sincos_positions: bool = True
    vision_feature_layer: int = -2
    # 'clip': CLIP's normalization mean; 'data': the training frames' per-channel mean.
    frame_mean: str = 'clip'
    sizes: dict = field(default_factory=dict)

    def __post_init__(self):
        _check_types('model', self)
        if any(type(value) is not int for value in self.sizes.values()):
            raise ConfigError(f'recipe model.sizes values must be integers, got {self.sizes}')
        if self.preset not in PRESETS:
            raise ConfigError(f'recipe model.preset must be one of {", ".join(PRESETS)}, '
                              f'got {self.preset!r}')
        check_feature_layer(spec_from_args(self.preset, dict(self.sizes)),
                            self.vision_feature_layer)
        if self.frame_mean not in FRAME_MEANS:
            raise ConfigError(f'recipe model.frame_mean must be one of {", ".join(FRAME_MEANS)}, '
                              f'got {self.frame_mean!r}')

    def small_model_args(self, frame_mean: tuple = ()) -> list[str]:
        """Return the `small-model` command-line options (without --out).

        `frame_mean` (R, G, B): the training frames' mean, needed when frame_mean is 'data'.
        """
        if self.frame_mean == 'data' and len(frame_mean) != 3:
            raise ConfigError("recipe model.frame_mean 'data' needs the training frames' mean")
        flags = ['--squash'] * self.squash + ['--sincos-positions'] * self.sincos_positions
        if self.frame_mean == 'data':
            flags.append('--frame-mean=' + ','.join(f'{value:g}' for value in frame_mean))
        sizes = [f'--{name.replace("_", "-")}={value}' for name, value in self.sizes.items()]
        layer = [f'--vision-feature-layer={self.vision_feature_layer}']
        return ['--preset', self.preset, *flags, *layer, *sizes]


@dataclass(frozen=True)
class StageSection:
    """One fine-tuning stage: its name (a directory), its data and its TrainConfig keys.

    `episodes_per_task`: the stage trains on the first N training episodes of each task (by
    seed), like a curve size; 0, the default, is every training episode. A stage on a subset
    followed by one on everything is how a small set is learnt first and then widened.
    `missed_attempts`: missed-attempt samples (llara_training.retries) per main sample added to
    the stage's data (0, the default: none), so that the answers after a missed pick are
    learnt too.
    """

    name: str
    data: str
    train: dict = field(default_factory=dict)
    episodes_per_task: int = 0
    missed_attempts: float = 0.0

    def __post_init__(self):
        _check_types('stages', self)
        if self.episodes_per_task < 0:
            raise ConfigError(f'recipe stage {self.name!r}: episodes_per_task must be >= 0 '
                              f'(0: every training episode), got {self.episodes_per_task!r}')
        if not _NAME.fullmatch(self.name) or self.name in _RESERVED_STAGE_NAMES:
            raise ConfigError(f'recipe stage name {self.name!r} must be a file name of letters, '
                              f'digits, _ . - (and not {", ".join(_RESERVED_STAGE_NAMES)})')
        if self.data not in DATA_KINDS:
            raise ConfigError(f'recipe stage {self.name!r}: data must be one of '
                              f'{", ".join(DATA_KINDS)}, got {self.data!r}')
        if not 0 <= self.missed_attempts <= MAX_MISSED_RATIO or \
                (self.missed_attempts and self.data == 'aux'):
            raise ConfigError(f'recipe stage {self.name!r}: missed_attempts is a ratio in [0, '
                              f'{MAX_MISSED_RATIO}] on main or mixture data (aux data has no '
                              f'steps to miss), got {self.missed_attempts!r} on {self.data!r}')
        object.__setattr__(self, 'train', _train_values(f'stage {self.name!r} train',
                                                        self.train))


def _train_values(where: str, values: dict) -> dict:
    """TrainConfig keys typed (coerce_value names unknown ones); the paths are refused."""
    for key in values:
        if key in RECIPE_PATH_KEYS:
            raise ConfigError(f'recipe {where}: {key} is set by the recipe (the run directory)')
    return {str(key): coerce_value(str(key), value) for key, value in values.items()}


@dataclass(frozen=True)
class EvaluateSection:
    """The closed-loop protocol of the final weights (`evaluate` flags), on the sim."""

    tasks: tuple[str, ...] = ('visual_manipulation',)
    partitions: tuple[str, ...] = ('placement_generalization',)
    episodes: int = 20
    seed: int = 1_000_000
    prompt_mode: str = 'hs'
    prompt_id: int = 15
    decoding: str = 'template'
    renderer: str = 'tiny'
    max_steps: int = LLARA_MAX_STEPS
    max_new_tokens: int = 256
    device: str = 'cpu'
    dtype: str = 'float32'
    cpu_threads: int = 1
    workers: int = 1

    def __post_init__(self):
        _check_types('evaluate', self)
        self.protocol(ORACLE, 'out', self.episodes)  # EvalConfig checks every value

    def protocol(self, policy: str, out: str, episodes: int) -> EvalConfig:
        """Return this protocol as an EvalConfig (the trained settings not read back)."""
        return EvalConfig(
            policy=policy, out=out, env='sim',
            partitions=parse_partitions(','.join(self.partitions), 'sim'), tasks=self.tasks,
            episodes=episodes, seed=self.seed, workers=self.workers,
            prompt_mode=PromptMode(self.prompt_mode), prompt_id=self.prompt_id,
            max_steps=self.max_steps, decoding=self.decoding,
            max_new_tokens=self.max_new_tokens, renderer=self.renderer, device=self.device,
            dtype=self.dtype, cpu_threads=self.cpu_threads)


@dataclass(frozen=True)
class CurveSection:
    """Training-set sizes (episodes per task) of the with/without-aux curve; its test episodes."""

    episodes_per_task: tuple[int, ...] = ()
    evaluate_episodes: int = 20

    def __post_init__(self):
        _check_types('curve', self)
        sizes = self.episodes_per_task
        if any(size < 1 for size in sizes) or list(sizes) != sorted(set(sizes)):
            raise ConfigError(f'recipe curve.episodes_per_task must be increasing sizes >= 1, '
                              f'got {list(sizes)}')
        _positive('curve', 'evaluate_episodes', self.evaluate_episodes)


@dataclass(frozen=True)
class RecipeConfig:
    """The whole recipe; see the module docstring."""

    stages: tuple[StageSection, ...]
    episodes: EpisodesSection = field(default_factory=EpisodesSection)
    convert: ConvertSection = field(default_factory=ConvertSection)
    model: ModelSection = field(default_factory=ModelSection)
    train_defaults: dict = field(default_factory=dict)
    evaluate: EvaluateSection = field(default_factory=EvaluateSection)
    curve: CurveSection = field(default_factory=CurveSection)

    def __post_init__(self):
        if not self.stages:
            raise ConfigError('recipe stages: at least one stage is needed')
        names = [stage.name for stage in self.stages]
        if len(set(names)) != len(names):
            raise ConfigError(f'recipe stage names must differ, got {names}')
        object.__setattr__(self, 'train_defaults',
                           _train_values('train_defaults', self.train_defaults))
        seeds = len(self.episodes.seed_range)
        for stage in self.stages:
            if stage.episodes_per_task > seeds:
                raise ConfigError(f'recipe stage {stage.name!r}: episodes_per_task '
                                  f'{stage.episodes_per_task} exceeds the {seeds} seeds of '
                                  f'episodes.seeds')
            if stage.data != 'main' and not self.convert.aux_sets:
                raise ConfigError(f'recipe stage {stage.name!r}: data {stage.data} needs '
                                  'auxiliary sets with a ratio > 0 (convert.aux, aux_ratio)')
            config = self.train_config(stage, 'model', 'data.json', 'images', 'out')
            if config.mode != 'full':
                raise ConfigError(f'recipe stage {stage.name!r}: mode must be full (the model '
                                  f'starts from random weights), got {config.mode!r}')
            if config.max_steps < 1:
                raise ConfigError(f'recipe stage {stage.name!r}: max_steps must be >= 1 (the '
                                  f'recipe counts optimiser steps), got {config.max_steps}')
        if self.train_config(self.stages[-1], 'm', 'd', 'i', 'o').prompt_format == 'plain':
            raise ConfigError(f'recipe: the last stage ({self.stages[-1].name!r}) trains the '
                              "served policy; prompt_format 'plain' cannot be served")

    def train_config(self, stage: StageSection, model_path: str, data_path: str,
                     image_folder: str, output_dir: str, **changes) -> TrainConfig:
        """Return the stage's TrainConfig: train_defaults, the stage's keys, then `changes`."""
        return TrainConfig(**{**self.train_defaults, **stage.train, **changes},
                           model_path=model_path, data_path=data_path,
                           image_folder=image_folder, output_dir=output_dir)

    def to_dict(self) -> dict:
        """Return the resolved config as YAML-ready values (what `recipe` saves, ships)."""
        def plain(value):
            if isinstance(value, (tuple, list)):
                return [plain(v) for v in value]
            if isinstance(value, dict):
                return {k: plain(v) for k, v in value.items()}
            return value

        return plain(asdict(self))


_SECTIONS = {'episodes': EpisodesSection, 'convert': ConvertSection, 'model': ModelSection,
             'evaluate': EvaluateSection, 'curve': CurveSection}


def _section(cls, name: str, values) -> object:
    """Build a section from its YAML mapping; ConfigError naming an unknown key."""
    if not isinstance(values, dict):
        raise ConfigError(f'recipe {name} must be a mapping, got {values!r}')
    known = {item.name: item.type for item in fields(cls)}
    unknown = sorted(str(key) for key in values if key not in known)
    if unknown:
        raise ConfigError(f'recipe {name}: unknown key(s) {", ".join(unknown)}; known: '
                          f'{", ".join(known)}')
    missing = [item.name for item in fields(cls) if item.name not in values
               and item.default is MISSING and item.default_factory is MISSING]
    if missing:
        raise ConfigError(f'recipe {name}: missing key(s) {", ".join(missing)}')
    return cls(**{key: tuple(value) if isinstance(value, list) else value
                  for key, value in values.items()})


def recipe_from_dict(data: dict) -> RecipeConfig:
    """Build a RecipeConfig from the YAML mapping; ConfigError naming what is wrong."""
    known = ('stages', 'train_defaults', *_SECTIONS)
    unknown = sorted(str(key) for key in data if key not in known)
    if unknown:
        raise ConfigError(f'recipe: unknown key(s) {", ".join(unknown)}; known: '
                          f'{", ".join(known)}')
    stages = data.get('stages') or []
    if not isinstance(stages, list):
        raise ConfigError(f'recipe stages must be a list of stages, got {stages!r}')
    defaults = data.get('train_defaults') or {}
    if not isinstance(defaults, dict):
        raise ConfigError(f'recipe train_defaults must be a mapping, got {defaults!r}')
    sections = {name: _section(cls, name, data[name]) for name, cls in _SECTIONS.items()
                if data.get(name) is not None}
    return RecipeConfig(stages=tuple(_section(StageSection, f'stages[{index}]', stage)
                                     for index, stage in enumerate(stages)),
                        train_defaults=defaults, **sections)


def load_recipe(path) -> RecipeConfig:
    """Read a recipe YAML file (ConfigError naming the file or the bad key)."""
    return recipe_from_dict(read_yaml(path))
