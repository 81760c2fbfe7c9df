"""Episodes -> LLaRA behaviour-cloning conversations: inBC, D-inBC and RT-2 style (spec 1.2, 1.3).

One single-round sample per executed step i of an episode: the frame before the step
(`<episode>/rgb_front/<i>.jpg`), the user turn `<image0>` / `<task>PROMPT</task>` / action-format
instruction / (i > 0) `You have finished: Step 1: ...`, and the answer: the remaining steps
`Step i+1: ...` one per line (multi, the released models' format) or step i alone (single).
Every piece of text comes from `llara_policy.text.prompting`, the module the runtime prompts
with; this module only assembles it (LLaRA `datasets/convert_vima.ipynb`
`prepare_behavior_cloning_dataset`). The notebook's "visual" state mode (reference images as
extra `<imageN>`; no released model uses it) is not offered.
"""
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
import enum
from json.encoder import encode_basestring_ascii as _json_string  # C-accelerated

from llara_policy.errors import ConfigError
from llara_policy.execution import TableAction
from llara_policy.geometry.vima_map import vima_model_point_to_table
from llara_policy.sim.episode import Placeholder, PlaceholderKind
from llara_policy.text.action_tokens import action_to_unit_values, unit_values_to_token_ids
from llara_policy.text.prompting import (
    HISTORY_PREFIX,
    STEP_PREFIX,
    ActionSpacing,
    DescriptionMode,
    Reference,
    Scene,
    build_task_text,
    build_user_turn,
    format_step,
)
from llara_policy.types import MODEL_FRAME_HEIGHT_PX, MODEL_FRAME_WIDTH_PX, ActionStep, ImagePoint
from llara_training.episode import Episode, LabelMapping

VIEW = 'front'  # LLaRA's released models see VIMA's front view only


def frame_image_path(episode_id: str, t: int) -> str:
    """Relative path of observation t, as LLaRA lays out VIMA (`<episode>/rgb_front/<t>.jpg`)."""
    return f'{episode_id}/rgb_{VIEW}/{t}.jpg'


def reference_image_path(episode_id: str, key: str) -> str:
    """Relative path of a prompt's reference image (`<episode>/rgb_front/a_<key>.png`)."""
    return f'{episode_id}/rgb_{VIEW}/a_{key}.png'


@dataclass(frozen=True)
class Sample:
    """One LLaVA sample: id, image paths (relative to the image folder), one human/gpt round."""

    sample_id: str
    images: tuple[str, ...]
    question: str
    answer: str

    def __post_init__(self):
        if not self.sample_id or not self.images or not self.question or not self.answer:
            raise ConfigError(f'a sample needs an id, images, a question and an answer, got '
                              f'{self!r}')

    def to_json(self) -> dict:
        """Return the sample as LLaVA's JSON object (spec 1.1)."""
        return {'id': self.sample_id, 'image': list(self.images),
                'conversations': [{'from': 'human', 'value': self.question},
                                  {'from': 'gpt', 'value': self.answer}]}

    def json_text(self) -> str:
        """Return `json.dumps(self.to_json())`, written directly (conversion's hot path)."""
        images = ', '.join(map(_json_string, self.images))
        return (f'{{"id": {_json_string(self.sample_id)}, "image": [{images}], '
                f'"conversations": [{{"from": "human", "value": {_json_string(self.question)}}}'
                f', {{"from": "gpt", "value": {_json_string(self.answer)}}}]}}')


class Method(enum.Enum):
    """How actions are written: LLaRA's sentences (inBC) or RT-2-style action tokens."""

    INBC = 'inBC'
    RT2 = 'RT2'


class AnswerMode(enum.Enum):
    """All remaining steps (multi, the released models) or only the next one (single)."""

    MULTI = 'multi'
    SINGLE = 'single'


class Rt2Coordinates(enum.Enum):
    """RT-2 values from VIMA table metres (the released RT-2 baseline) or image coordinates."""

    TABLE = 'table'
    IMAGE = 'image'  # the notebook's is_rt_raw_action=False, file prefix 'I-'


# --format names of the CLI -> (method, describe, RT-2 coordinates).
FORMATS: dict[str, tuple[Method, bool, Rt2Coordinates]] = {
    'inBC': (Method.INBC, False, Rt2Coordinates.TABLE),
    'D-inBC': (Method.INBC, True, Rt2Coordinates.TABLE),
    'RT2': (Method.RT2, False, Rt2Coordinates.TABLE),
    'D-RT2': (Method.RT2, True, Rt2Coordinates.TABLE),
    'I-RT2': (Method.RT2, False, Rt2Coordinates.IMAGE),
    'I-D-RT2': (Method.RT2, True, Rt2Coordinates.IMAGE),
}


@dataclass(frozen=True)
class ConversationConfig:
    """What kind of behaviour-cloning samples to write.

    `describe` gives the D- variant (references as boxes). `single_step_number_quirk` numbers
    single-mode answers as the notebook does, `Step i+n:` for n steps (its leftover loop
    variable); off by default, because no released checkpoint saw single-mode data and the
    numbering contradicts the history. `spacing` is the step sentence's whitespace (prompting).
    """

    method: Method = Method.INBC
    describe: bool = True
    answers: AnswerMode = AnswerMode.MULTI
    spacing: ActionSpacing = ActionSpacing.RELEASED
    rt2_coordinates: Rt2Coordinates = Rt2Coordinates.TABLE
    single_step_number_quirk: bool = False

    def __post_init__(self):
        for name, kind in (('method', Method), ('answers', AnswerMode),
                           ('spacing', ActionSpacing), ('rt2_coordinates', Rt2Coordinates)):
            if not isinstance(getattr(self, name), kind):
                raise ConfigError(f'ConversationConfig.{name} must be a {kind.__name__}, '
                                  f'got {getattr(self, name)!r}')

    @classmethod
    def from_format(cls, name: str, **kwargs) -> 'ConversationConfig':
        """Build from a --format name (FORMATS) plus the other fields."""
        if name not in FORMATS:
            raise ConfigError(f'format must be one of {sorted(FORMATS)}, got {name!r}')
        method, describe, coordinates = FORMATS[name]
        return cls(method=method, describe=describe, rt2_coordinates=coordinates, **kwargs)

    @property
    def stem(self) -> str:
        """`{I-}{D-}{inBC|RT2}-text-{multi|single}`, LLaRA's dataset name before the split."""
        image = 'I-' if (self.method is Method.RT2
                         and self.rt2_coordinates is Rt2Coordinates.IMAGE) else ''
        describe = 'D-' if self.describe else ''
        return f'{image}{describe}{self.method.value}-text-{self.answers.value}'

    def file_name(self, split: str) -> str:
        """Return the dataset file name, e.g. `D-inBC-text-multi-train-front.json`."""
        return f'{self.stem}-{split}-{VIEW}.json'


# A describer turns one prompt placeholder into its reference text source: an object name,
# an ObjectDescription or a Scene (prompting.build_task_text). The default reads the boxes the
# source computed from the reference image's segmentation; a detector plugs in here.
Describer = Callable[[Placeholder], Reference]
TokenDecoder = Callable[[Sequence[int]], str]  # token ids -> text (the model's tokenizer)


def segmentation_reference(placeholder: Placeholder) -> Reference:
    """Describe an object placeholder by its box (its name if not visible), a scene by boxes."""
    boxes = placeholder.reference.objects
    if placeholder.kind is PlaceholderKind.SCENE:
        return Scene(boxes)
    return boxes[0] if boxes else placeholder.object_names[0]


def missing_token_decoder(token_ids: Sequence[int]) -> str:
    """Stand-in decoder: RT-2 text needs the model's tokenizer, so this always refuses."""
    raise ConfigError('RT-2 samples need the model tokenizer to write action tokens as text '
                      '(convert --tokenizer)')


@dataclass(frozen=True)
class BehaviourCloning:
    """Writes one episode's behaviour-cloning samples (`samples`)."""

    config: ConversationConfig = field(default_factory=ConversationConfig)
    describer: Describer = segmentation_reference
    token_decoder: TokenDecoder = missing_token_decoder

    def __post_init__(self):
        if self.config.method is Method.RT2 and self.token_decoder is missing_token_decoder:
            raise ConfigError('RT-2 samples need a token decoder (the model tokenizer)')

    def task_text(self, episode: Episode) -> str:
        """Return the `<task>` text: the prompt with names (inBC) or boxes (D-inBC) filled in."""
        prompt = episode.prompt
        references = {key: self.describer(placeholder)
                      for key, placeholder in prompt.placeholders.items()}
        mode = DescriptionMode.BOXES if self.config.describe else DescriptionMode.NAMES
        return build_task_text(prompt.template, references, mode)

    def action_texts(self, episode: Episode) -> list[str]:
        """Each step as answer text: LLaRA's sentence or five RT-2 action tokens."""
        config = self.config
        if config.method is Method.INBC:
            return [format_step(step, config.spacing) for step in episode.steps]
        return [self.token_decoder(unit_values_to_token_ids(
            rt2_unit_values(step, episode.label_mapping, config.rt2_coordinates,
                            episode.episode_id)))
                for step in episode.steps]

    def samples(self, episode: Episode) -> list[Sample]:
        """One sample per step, ids `<episode>_<i>`, answers per `config.answers`."""
        config = self.config
        task = self.task_text(episode)
        actions = self.action_texts(episode)
        rt2 = config.method is Method.RT2
        base_turn = build_user_turn(task, episode.effector, instruction=not rt2)
        count = len(actions)
        samples = []
        for i in range(count):
            if rt2:
                question = base_turn + _rt2_history(actions[:i])
            else:
                question = build_user_turn(task, episode.effector, history=episode.steps[:i],
                                           spacing=config.spacing)
            if config.answers is AnswerMode.MULTI:
                answer = '\n'.join(STEP_PREFIX.format(k=k + 1) + actions[k]
                                   for k in range(i, count))
            else:
                number = i + count if config.single_step_number_quirk else i + 1
                answer = STEP_PREFIX.format(k=number) + actions[i]
            samples.append(Sample(f'{episode.episode_id}_{i}',
                                  (frame_image_path(episode.episode_id, i),), question, answer))
        return samples


def _rt2_history(actions: Sequence[str]) -> str:
    # The notebook's history for RT-2 samples is the token text of the earlier steps (its
    # `<p>..</p>` -> `object` substitution finds nothing to replace there).
    if not actions:
        return ''
    return '\n' + HISTORY_PREFIX + '\n'.join(
        STEP_PREFIX.format(k=k) + text for k, text in enumerate(actions, start=1))


def rt2_unit_values(step: ActionStep, label_mapping: LabelMapping,
                    coordinates: Rt2Coordinates, episode_id: str = '') -> tuple[float, ...]:
    """Return the five values in [0, 1] an RT-2-style action is quantised from (spec 1.3).

    The rotation value is the yaw change (-rotation_cw_deg, not negated as in inBC text),
    wrapped into [-180, 180) degrees: the same turn, inside the range (r + 180) / 360 maps to
    [0, 1] (the notebook asserts instead). IMAGE: the steps' model points. TABLE: VIMA table
    metres through VIMA's fixed map; an episode stores model points only, so a truncated
    (LLARA-labelled) point is taken at its pixel centre (within half a pixel of the metres the
    notebook quantised, about 1.4 of the 256 bins in x); CALIBRATION-labelled episodes have no
    VIMA metres and raise ConfigError.
    """
    yaw_change_deg = (-step.rotation_cw_deg + 180) % 360 - 180
    if coordinates is Rt2Coordinates.IMAGE:
        return (step.pick.x_norm, step.pick.y_norm, step.place.x_norm, step.place.y_norm,
                (yaw_change_deg + 180) / 360)
    if label_mapping is LabelMapping.CALIBRATION:
        raise ConfigError(f'episode {episode_id!r}: RT-2 table metres need VIMA-mapped '
                          f'labels, not a camera calibration; use the I-RT2 format')
    pick, place = step.pick, step.place
    if label_mapping is LabelMapping.LLARA:
        pick, place = _pixel_centre(pick), _pixel_centre(place)
    return action_to_unit_values(TableAction(vima_model_point_to_table(pick),
                                             vima_model_point_to_table(place),
                                             float(yaw_change_deg)))


def _pixel_centre(point: ImagePoint) -> ImagePoint:
    return ImagePoint(min(point.x_norm + 0.5 / MODEL_FRAME_WIDTH_PX, 1.0),
                      min(point.y_norm + 0.5 / MODEL_FRAME_HEIGHT_PX, 1.0))
