"""LLaRA prompts and action text, for training and runtime alike (no train/serve skew).

The one place that writes what the model reads and parses what it answers. Formats follow
llara-spec.md sections 1-3 (LostXine/LLaRA `eval/vima_utils.py`, `eval/eval-llara.py`,
`datasets/convert_vima.ipynb`) byte for byte. Sentence templates are data (`STEP_TEMPLATES` in
`template_grammar`, `OBJECT_DESCRIPTION_TEMPLATE`), from which the parsers are compiled; answers
are parsed by `answer_parsing`, whose names are importable from here.
"""
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
import enum
import random
import re

from llara_policy.errors import ParseError, PromptError
from llara_policy.text.answer_parsing import (  # noqa: F401 (re-exported: callers use prompting)
    AnswerDiagnostic,
    DiagnosticKind,
    ParsedAnswer,
    TextSpan,
    parse_answer,
    unit_value,
)
from llara_policy.text.prompt_pools import ACTION_PROMPTS, DETECTION_PROMPTS, LOCALIZATION_PROMPTS
from llara_policy.text.template_grammar import (  # noqa: F401 (FIELD_PATTERNS: re-exported)
    FIELD_PATTERNS,
    HISTORY_OBJECT,
    NOTEBOOK_STEP_TEMPLATES,
    OBJECT_PHRASE,
    STEP_PREFIX,
    STEP_TEMPLATES,
    compile_template,
    number_field,
    text_field,
)
from llara_policy.types import ActionStep, Effector, ImageBox, ImagePoint, ObjectDescription


class ActionSpacing(enum.Enum):
    """Whitespace of the step sentence; the two variants differ only inside the pick point.

    RELEASED (the default) writes `(0.320,  0.547)`: two spaces after the pick point's comma, as in
    >99.9% of the released checkpoints' answers (LLaRA `results/*.json`, spec 2.1) and in the
    history of the eval that produced the published numbers (spec 3.4), i.e. the text those
    models were trained on. NOTEBOOK is the single-space form of the current convert_vima.ipynb.
    """

    RELEASED = 'released'
    NOTEBOOK = 'notebook'


HISTORY_PREFIX = 'You have finished: '  # LLaRA eval/eval-llara.py query_bc

# LLaRA eval/vima_utils.py bbox_format and obj_format; `{{`/`}}` are literal braces.
OBJECT_DESCRIPTION_TEMPLATE = (
    '<p>{name}</p> at <b>({center_x}, {center_y}), {{{width}, {height}}}</b>')
SCENE_OPEN, SCENE_CLOSE = '<scene>', '</scene>'

# LLaRA eval/vima_utils.py prepare_prompt (= convert_vima.ipynb get_action_prompt). The suction
# text lacks the space before "The image coordinate" in both training and eval: keep it.
_INSTRUCTION_HEAD = (
    'Every action you take must include two locations in the format of <b>(x, y)</b> and one '
    'clockwise rotation angle in the format of <r>[r]</r>. ')
ACTION_INSTRUCTIONS: dict[Effector, str] = {
    Effector.SUCTION: _INSTRUCTION_HEAD + (
        'The first location is the image coordinate where you use a suction cup to pick up the '
        'object, and the second location is where you place the object.The image coordinate '
        'ranges from 0 to 1. The rotation angle indicates how many degrees you rotate the object '
        'clockwise, and it ranges from -359 to 359.'),
    Effector.SPATULA: _INSTRUCTION_HEAD + (
        'The first location is the image coordinate where you start to sweep the object using a '
        'spatula, and the second location is where you stop sweeping. The image coordinate '
        'ranges from 0 to 1. The rotation angle indicates how many degrees you rotate the '
        'spatula clockwise, and it ranges from -359 to 359.'),
}

# LLaVA conv_templates['v1'] (conv_vicuna_v1: USER/ASSISTANT, sep ' ', sep2 '</s>'), spec 3.1.
VICUNA_V1_SYSTEM = ('A chat between a curious user and an artificial intelligence assistant. '
                    "The assistant gives helpful, detailed, and polite answers to the user's "
                    'questions.')

_DESCRIPTION_GRAMMAR = compile_template(
    OBJECT_DESCRIPTION_TEMPLATE,
    {'name': text_field('name'),
     **{name: number_field(name) for name in ('center_x', 'center_y', 'width', 'height')}}, '.')
_NON_SPACE = re.compile(r'\S')
_BAD_PHRASE = re.compile(r'[<>\n]')  # would break the tags or the one-step-per-line layout


def step_template(effector: Effector, spacing: ActionSpacing = ActionSpacing.RELEASED) -> str:
    """Return the `str.format` template of one step sentence."""
    if spacing is ActionSpacing.RELEASED:
        return STEP_TEMPLATES[effector]
    return NOTEBOOK_STEP_TEMPLATES[effector]


def format_step(step: ActionStep, spacing: ActionSpacing = ActionSpacing.RELEASED,
                history: bool = False) -> str:
    """Write one step sentence, without the `Step k: ` prefix.

    The object is written as `<p>NAME</p>`, or as the word `object` when `history` is set (the
    history form of spec 3.4) or the step has no object text.
    """
    template = step_template(step.effector, spacing)
    if history or not step.object_text:
        template, name = template.replace(OBJECT_PHRASE, HISTORY_OBJECT), ''
    else:
        name = _checked_phrase('object_text', step.object_text)
    return template.format(
        object=name,
        pick_x=_unit_text(step.pick.x_norm), pick_y=_unit_text(step.pick.y_norm),
        rotation=int(step.rotation_cw_deg),
        place_x=_unit_text(step.place.x_norm), place_y=_unit_text(step.place.y_norm))


def format_answer(steps: Sequence[ActionStep],
                  spacing: ActionSpacing = ActionSpacing.RELEASED) -> str:
    """Write answer text: one line per step, `Step k: ` prefixed unless its number is 0."""
    return '\n'.join(
        (STEP_PREFIX.format(k=step.step_number) if step.step_number else '')
        + format_step(step, spacing) for step in steps)


def format_history(steps: Sequence[ActionStep],
                   spacing: ActionSpacing = ActionSpacing.RELEASED) -> str:
    """Write the action history, `You have finished: Step 1: ...`.

    Steps are numbered 1.. in order (as LLaRA's eval and training number them) and each object
    phrase is replaced by the word `object`.
    """
    lines = (STEP_PREFIX.format(k=number) + format_step(step, spacing, history=True)
             for number, step in enumerate(steps, start=1))
    return HISTORY_PREFIX + '\n'.join(lines)


def format_object_description(description: ObjectDescription) -> str:
    """`<p>NAME</p> at <b>(cx, cy), {w, h}</b>` (no trailing period)."""
    box = description.box
    return OBJECT_DESCRIPTION_TEMPLATE.format(
        name=_checked_phrase('name', description.name),
        center_x=_unit_text(box.center.x_norm), center_y=_unit_text(box.center.y_norm),
        width=_unit_text(box.width_norm), height=_unit_text(box.height_norm))


def format_scene(objects: Sequence[ObjectDescription], line_periods: bool = True) -> str:
    """Write `<scene>` + one description per line + `</scene>`.

    Each line ends in '.' unless `line_periods` is False (LLaRA's MaskRCNN lists, spec 3.5).
    """
    tail = '.' if line_periods else ''
    lines = '\n'.join(format_object_description(obj) + tail for obj in objects)
    return SCENE_OPEN + lines + SCENE_CLOSE


def parse_object_description(text: str) -> ObjectDescription:
    """Parse one `<p>NAME</p> at <b>(cx, cy), {w, h}</b>` or raise ParseError.

    A final period and any whitespace around tokens are allowed; values must lie in [0, 1].
    """
    start = _skip_space(text, 0)
    end = len(text.rstrip())
    match = _DESCRIPTION_GRAMMAR.match(text[:end], start)
    if match is None:
        diagnosis = _DESCRIPTION_GRAMMAR.diagnose(text[:end], start)
        raise ParseError(f'malformed object description: expected {diagnosis.expected}', text,
                         diagnosis.position)
    if match.end() != end:
        raise ParseError('unexpected text after the object description', text, match.end())
    return _description_from_match(match, text)


def parse_scene(text: str) -> tuple[ObjectDescription, ...]:
    """Parse a scene description into its objects.

    Optional `<scene>`/`</scene>` around descriptions separated by whitespace (usually newlines),
    each with an optional final period. An unfinished last description of an unclosed scene
    (generation cut off) is dropped; anything else malformed raises ParseError.
    """
    pos = _skip_space(text, 0)
    end = len(text.rstrip())
    opened = text.startswith(SCENE_OPEN, pos)
    pos += len(SCENE_OPEN) if opened else 0
    closed = opened and text.endswith(SCENE_CLOSE, pos, end)
    end -= len(SCENE_CLOSE) if closed else 0
    body = text[:end]
    objects = []
    while (pos := _skip_space(body, pos)) < end:
        match = _DESCRIPTION_GRAMMAR.match(body, pos)
        if match is None:
            diagnosis = _DESCRIPTION_GRAMMAR.diagnose(body, pos)
            if diagnosis.unfinished and not closed:
                break
            raise ParseError(f'malformed object description: expected {diagnosis.expected}',
                             text, diagnosis.position)
        objects.append(_description_from_match(match, text))
        pos = match.end()
    if not objects and not opened:
        raise ParseError('no object description found', text)
    return tuple(objects)


def _description_from_match(match: re.Match, text: str) -> ObjectDescription:
    center_x, center_y, width, height = (
        unit_value(match, name, text) for name in ('center_x', 'center_y', 'width', 'height'))
    return ObjectDescription(match['name'].strip(),
                             ImageBox(ImagePoint(center_x, center_y), width, height))


class DescriptionMode(enum.Enum):
    """How a VIMA prompt's reference placeholders become text (spec 1.2, 3.5)."""

    NAMES = 'names'  # inBC: object -> `<p>NAME</p>`, scene -> its placeholder key
    BOXES = 'boxes'  # D-inBC: object -> `<p>NAME</p> at <b>..</b>`, scene -> `<scene>` block


@dataclass(frozen=True)
class Scene:
    """A multi-object reference (a VIMA scene/frame asset) for `build_task_text`."""

    objects: tuple[ObjectDescription, ...]
    line_periods: bool = True  # False reproduces LLaRA's MaskRCNN ('e' mode) lists


# A reference is an object name (no box known), a described object, or a scene.
Reference = str | ObjectDescription | Scene
_PLACEHOLDER = re.compile(r'\{(.+?)\}')  # LLaRA eval/vima_utils.py prepare_prompt


def build_task_text(template: str, references: Mapping[str, Reference],
                    mode: DescriptionMode = DescriptionMode.BOXES) -> str:
    """Fill a VIMA prompt template's `{placeholder}`s (the text inside `<task>..</task>`).

    NAMES (inBC): an object becomes `<p>NAME</p>` and a scene its own key (e.g. `scene`). BOXES
    (D-inBC, the released checkpoints): a described object becomes `<p>NAME</p> at <b>(cx, cy),
    {w, h}</b>` and a scene a `<scene>..</scene>` block; a bare name stays `<p>NAME</p>` (LLaRA's
    fallback when a detector misses the object). LLaRA strips one trailing period from each
    inserted description; these never end in one (a scene's last line keeps its period inside
    `</scene>`), so the rule holds by construction.
    """
    def fill(placeholder: re.Match) -> str:
        key = placeholder[1]
        if key not in references:
            raise PromptError(f'task template {template!r} needs reference {key!r}; '
                              f'got {sorted(references)}')
        return _reference_text(key, references[key], mode)

    return _PLACEHOLDER.sub(fill, template)


def _reference_text(key: str, reference: Reference, mode: DescriptionMode) -> str:
    if isinstance(reference, str):
        return f"<p>{_checked_phrase('reference name', reference)}</p>"
    if isinstance(reference, ObjectDescription):
        if mode is DescriptionMode.BOXES:
            return format_object_description(reference)
        return f"<p>{_checked_phrase('name', reference.name)}</p>"
    if isinstance(reference, Scene):
        if mode is DescriptionMode.BOXES:
            return format_scene(reference.objects, reference.line_periods)
        return key
    raise PromptError(f'reference {key!r} must be a name, ObjectDescription or Scene, '
                      f'got {reference!r}')


def select_user_prompt(prompt_id: int, rng: random.Random) -> str:
    """Choose the user-prompt sentence as LLaRA's `--prompt-id` does.

    Negative: one of ACTION_PROMPTS drawn from `rng` (per query); 0-14: that sentence; larger:
    omitted (''), which is the layout of the training notebook.
    """
    if not isinstance(prompt_id, int) or isinstance(prompt_id, bool):
        raise PromptError(f'prompt_id must be an integer, got {prompt_id!r}')
    if prompt_id < 0:
        return rng.choice(ACTION_PROMPTS)
    return ACTION_PROMPTS[prompt_id] if prompt_id < len(ACTION_PROMPTS) else ''


def build_user_turn(task_text: str, effector: Effector, *, user_prompt: str = '',
                    history: Sequence[ActionStep] = (), image_index: int = 0,
                    spacing: ActionSpacing = ActionSpacing.RELEASED,
                    instruction: bool = True) -> str:
    """Build the user turn of spec 3.3.

    Lines joined by newlines: `<imageK>`, `<task>TASK</task>`, the user prompt (if any), the
    effector's action-format instruction (`instruction=False` for RT-2-style training samples),
    then, with history, a newline and `You have finished: Step 1: ...`.
    """
    if not isinstance(image_index, int) or isinstance(image_index, bool) or image_index < 0:
        raise PromptError(f'image_index must be a non-negative integer, got {image_index!r}')
    lines = [f'<image{image_index}>', f'<task>{task_text}</task>']
    if user_prompt:
        lines.append(user_prompt)
    if instruction:
        lines.append(ACTION_INSTRUCTIONS[effector])
    turn = '\n'.join(lines)
    if history:
        turn += '\n' + format_history(history, spacing)
    return turn


def generation_prompt(user_turn: str) -> str:
    """Wrap a user turn for generation: `SYSTEM USER: <turn> ASSISTANT:` (Vicuna v1)."""
    return f'{VICUNA_V1_SYSTEM} USER: {user_turn} ASSISTANT:'


def training_text(user_turn: str, answer: str) -> str:
    """Wrap one single-round training sample (Vicuna v1), ending in `</s>`."""
    return f'{VICUNA_V1_SYSTEM} USER: {user_turn} ASSISTANT: {answer}</s>'


def with_image_token(text: str, image_token: str = '<image>') -> str:
    """Swap LLaRA's `<image0>` for a processor's image token.

    For one image both give the same input ids (spec 1.1); texts naming further images
    (`<image1>`..) cannot be served that way and raise PromptError.
    """
    indices = re.findall(r'<image(\d+)>', text)
    if indices != ['0']:
        raise PromptError(f'expected exactly one <image0> and no other <imageN>, found '
                          f'{[f"<image{i}>" for i in indices]}')
    return text.replace('<image0>', image_token)


def detection_question(rng: random.Random) -> str:
    """Draw an obj_det question (LLaRA's `d` mode for a scene): `<image>` + detection prompt."""
    return '<image>\n' + rng.choice(DETECTION_PROMPTS)


def format_object_phrase(name: str) -> str:
    """`<p>NAME</p>`: how every LLaRA text names an object (tasks, steps, auxiliary questions)."""
    return f"<p>{_checked_phrase('name', name)}</p>"


def localization_question(name: str, rng: random.Random) -> str:
    """Draw an obj_loc question about `<p>NAME</p>` (LLaRA's `d` mode for one object)."""
    phrase = f"<p>{_checked_phrase('name', name)}</p>"
    return '<image>\n' + rng.choice(LOCALIZATION_PROMPTS).replace('{object}', phrase)


def _unit_text(value: float) -> str:
    return f'{value + 0.0:.3f}'  # + 0.0 turns -0.0 into 0.0


def _checked_phrase(name: str, phrase: str) -> str:
    if not isinstance(phrase, str) or _BAD_PHRASE.search(phrase) or phrase != phrase.strip():
        raise PromptError(f'{name} must be text without <, >, newlines or outer spaces, '
                          f'got {phrase!r}')
    return phrase


def _skip_space(text: str, pos: int) -> int:
    found = _NON_SPACE.search(text, pos)
    return found.start() if found is not None else len(text)

