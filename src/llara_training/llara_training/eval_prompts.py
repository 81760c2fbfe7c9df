"""The text of an evaluation query: task descriptions per prompt-mode flag, turns and history.

LLaRA's `prepare_prompt` (llara-spec 3.3-3.5): the VIMA template's placeholders become text by
the flag (`eval_config.Descriptions`), the user turn is `<image0>`, `<task>..</task>`, the user
prompt (`--prompt-id`), the action-format instruction and, with `h`, the history. Everything is
written by `llara_policy.text.prompting`, the module training and the runtime use.

- NAMES (no flag) and ORACLE (`o`) are `prompting.build_task_text` over the reference images'
  names and segmentation boxes: inBC and D-inBC text. (LLaRA's eval wraps a scene's key as
  `<scene>scene</scene>` without a flag; this writes the bare key, as inBC training does.)
- SELF (`d`): one extra query per placeholder on its reference image, a random detection
  question for a scene, a localization question for an object; the raw answer is inserted
  (a scene's tags stripped and re-wrapped, a final period dropped), as LLaRA does (but
  without the last-line deletion of LLaRA's tag regex, see _SCENE_TAG).
- DETECTOR (`e`): a hook `MODULE:FUNCTION` takes the reference RGB and returns `Detection`s;
  LLaRA's rules: a scene lists every detection scoring at least the threshold (no periods); an
  object takes the first kept detection whose text contains its `<p>NAME</p>` phrase
  (case-insensitive), else the bare phrase.
RT-2-style prompts (`rt2` decoders) write the history as action-token text (the training
conversions' layout) and, by default, no action-format instruction.
"""
from collections.abc import Callable, Sequence
from dataclasses import dataclass
import importlib
import random
import re

import numpy as np

from llara_policy.errors import ConfigError, LlaraError, PromptError
from llara_policy.sim.episode import Placeholder, PlaceholderKind, TaskPrompt
from llara_policy.text import prompting
from llara_policy.text.action_tokens import unit_values_to_token_ids
from llara_policy.types import ActionStep, Effector, ObjectDescription, check_real
from llara_training.conversations import (
    Rt2Coordinates,
    TokenDecoder,
    missing_token_decoder,
    rt2_unit_values,
)
from llara_training.episode import LabelMapping
from llara_training.eval_config import Descriptions

_PLACEHOLDER = re.compile(r'\{(.+?)\}')  # LLaRA prepare_prompt: re.findall(r'\{.+?\}', p)
# `<scene>`/`</scene>` in a `d` answer. LLaRA strips them with re.sub('<.*?scene>', ''), which
# also deletes a last line ending in '</scene>' ('.' stops at newlines, so the match starts at
# that line's first '<'); that quirk is not replicated: every described object is kept.
_SCENE_TAG = re.compile(r'</?scene>')


@dataclass(frozen=True)
class Detection:
    """One detector output on a reference image: a named box and its score in [0, 1]."""

    description: ObjectDescription
    score: float

    def __post_init__(self):
        if not isinstance(self.description, ObjectDescription):
            raise ConfigError(f'Detection.description must be an ObjectDescription, got '
                              f'{self.description!r}')
        object.__setattr__(self, 'score', check_real('Detection.score', self.score, 0.0, 1.0,
                                                     error=ConfigError))


Detector = Callable[[np.ndarray], Sequence[Detection]]


def load_detector(spec: str) -> Detector:
    """Import the detector hook `MODULE:FUNCTION`; ConfigError naming what is missing."""
    module_name, sep, function_name = spec.partition(':')
    if not sep or not module_name or not function_name:
        raise ConfigError(f'--detector must be MODULE:FUNCTION, got {spec!r}')
    try:
        function = getattr(importlib.import_module(module_name), function_name)
    except (ImportError, AttributeError) as error:
        raise ConfigError(f'--detector {spec!r} cannot be loaded: {error}') from error
    if not callable(function):
        raise ConfigError(f'--detector {spec!r} is not callable')
    return function


@dataclass(frozen=True)
class DescriptionQuery:
    """A `d`-mode question about a placeholder's reference image and the policy's answer."""

    placeholder: str
    question: str
    answer: str


# The policy's answer to a question about a placeholder's reference image (`d` mode).
Describer = Callable[[Placeholder, str], str]


@dataclass(frozen=True)
class TaskText:
    """The text inside `<task>..</task>` and the `d`-mode queries that produced it."""

    text: str
    queries: tuple[DescriptionQuery, ...] = ()
    notes: tuple[str, ...] = ()


def task_text(prompt: TaskPrompt, source: Descriptions, *, describe: Describer,
              rng: random.Random, detector: Detector | None = None,
              threshold: float = 0.6) -> TaskText:
    """Fill the prompt's placeholders as the description source says (module docstring)."""
    if source is Descriptions.NAMES:
        return TaskText(prompting.build_task_text(prompt.template, prompt.references(),
                                                  prompting.DescriptionMode.NAMES))
    if source is Descriptions.ORACLE:
        return TaskText(prompting.build_task_text(prompt.template, prompt.references(),
                                                  prompting.DescriptionMode.BOXES))
    texts, queries, notes = {}, [], []
    for key in dict.fromkeys(_PLACEHOLDER.findall(prompt.template)):
        if key not in prompt.placeholders:
            raise PromptError(f'task template {prompt.template!r} needs reference {key!r}; '
                              f'got {sorted(prompt.placeholders)}')
        placeholder = prompt.placeholders[key]
        if source is Descriptions.SELF:
            question = _self_question(placeholder, rng)
            answer = describe(placeholder, question)
            queries.append(DescriptionQuery(key, question, answer))
            text = answer
        else:
            text, note = _detector_text(placeholder, detector, threshold)
            notes.extend([note] if note else [])
        if placeholder.kind is PlaceholderKind.SCENE:
            text = prompting.SCENE_OPEN + _SCENE_TAG.sub('', text) + prompting.SCENE_CLOSE
        texts[key] = text.removesuffix('.')
    filled = _PLACEHOLDER.sub(lambda match: texts[match[1]], prompt.template)
    return TaskText(filled, tuple(queries), tuple(notes))


def _self_question(placeholder: Placeholder, rng: random.Random) -> str:
    if placeholder.kind is PlaceholderKind.SCENE:
        return prompting.detection_question(rng)
    return prompting.localization_question(placeholder.object_names[0], rng)


def _detector_text(placeholder: Placeholder, detector: Detector | None,
                   threshold: float) -> tuple[str, str]:
    """LLaRA's `e` text for one placeholder and a note when an object was not found."""
    if detector is None:
        raise ConfigError("prompt mode 'e' needs a detector (--detector MODULE:FUNCTION)")
    detections = detector(placeholder.reference.rgb)
    kept = []
    for detection in detections:
        if not isinstance(detection, Detection):
            raise ConfigError(f'the detector returned {detection!r}; it must return '
                              'eval_prompts.Detection values')
        if detection.score >= threshold:
            kept.append(prompting.format_object_description(detection.description))
    if placeholder.kind is PlaceholderKind.SCENE:
        return '\n'.join(kept), ''
    phrase = prompting.format_object_phrase(placeholder.object_names[0])
    for text in kept:
        if phrase.lower() in text.lower():
            return text, ''
    return phrase, (f'{placeholder.name}: the detector found no {phrase} (score >= '
                    f'{threshold}); the bare phrase is used')


def question_turn(question: str) -> str:
    """Return a `d`-mode question (`<image>` first, as LLaRA and the aux data) as a turn.

    The policy serves turns that start with `<image0>`; for one image both give the same
    input ids (llara-spec 1.1).
    """
    if not question.startswith('<image>\n'):
        raise PromptError(f'a description question starts with "<image>\\n", got {question!r}')
    return '<image0>' + question[len('<image>'):]


@dataclass(frozen=True)
class TurnWriter:
    """Writes the user turn of every action query of an episode.

    `user_prompts` draws the user-prompt sentence per query (`--prompt-id`, seeded with the
    episode seed as LLaRA seeds Python's random). RT-2 turns need `token_text` (the model
    tokenizer's decode) and the env's label mapping for the history's action tokens.
    """

    task: str
    effector: Effector
    prompt_id: int
    rng: random.Random
    history: bool
    spacing: prompting.ActionSpacing
    decoder: str = 'llara'
    rt2_instruction: bool = False
    token_text: TokenDecoder = missing_token_decoder
    label_mapping: LabelMapping = LabelMapping.UNBIASED

    def turn(self, executed: Sequence[ActionStep]) -> str:
        """Write the user turn of a query after the `executed` steps (history only with `h`)."""
        user_prompt = prompting.select_user_prompt(self.prompt_id, self.rng)
        history = tuple(executed) if self.history else ()
        if self.decoder == 'llara':
            return prompting.build_user_turn(self.task, self.effector, user_prompt=user_prompt,
                                             history=history, spacing=self.spacing)
        turn = prompting.build_user_turn(self.task, self.effector, user_prompt=user_prompt,
                                         instruction=self.rt2_instruction)
        if not history:
            return turn
        lines = (prompting.STEP_PREFIX.format(k=k) + self._token_text(step)
                 for k, step in enumerate(history, start=1))
        return turn + '\n' + prompting.HISTORY_PREFIX + '\n'.join(lines)

    def _token_text(self, step: ActionStep) -> str:
        try:
            coordinates = (Rt2Coordinates.IMAGE if self.decoder == 'rt2_image'
                           else Rt2Coordinates.TABLE)
            values = rt2_unit_values(step, self.label_mapping, coordinates)
        except LlaraError as error:
            raise PromptError(f'cannot write executed step {step} as RT-2 tokens: '
                              f'{error}') from error
        return self.token_text(unit_values_to_token_ids(values))
