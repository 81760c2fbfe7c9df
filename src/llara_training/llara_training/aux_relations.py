"""spa_rel and tmp_rel question/answer pairs: where one object is relative to another (spec 4).

Objects are named by their phrase `<p>NAME</p>` and keyed by it, as the notebook's dicts do:
of several objects with one name the first's position in the order and the last's box count
(the caller counts the hidden ones). Distances are between normalised box centres, printed
with 3 decimals (LLaRA `datasets/convert_vima.ipynb` get_spatial_relationship,
get_temporal_relationship).
"""
from collections.abc import Sequence
from dataclasses import dataclass
import math
import random

from llara_policy.text.prompt_pools import SPA_REL_PROMPTS, TMP_REL_PROMPTS
from llara_policy.text.prompting import format_object_phrase
from llara_policy.types import ImageBox, ObjectDescription

SPATIAL_ANSWER = ('{ego} is {horizontal} and {vertical} from {ref} with 2d center distance (x,y) '
                  'of <d>({dx:.3f}, {dy:.3f})</d> and euclidean center distance of '
                  '<e>{distance:.3f}</e>.')
TEMPORAL_ANSWER = ('{change}2d center distance (x,y) of {ego} from {ref} changes by '
                   '<d>({dx:.3f}, {dy:.3f})</d> and Euclidean center distance between them '
                   '<e>{distance:.3f}</e>.\n')
TEMPORAL_CHANGES = {'away': '{ref} moves far away from {ego}. ',
                    'closer': '{ref} moves closer to {ego}. ',
                    'same': 'The distance between {ref} and {ego} does not change. '}
DISTANCE_CHANGE_THRESHOLD = 0.01  # |change of the centre distance| above this is a change


@dataclass(frozen=True)
class Quirks:
    r"""The notebook's text quirks in spa_rel/tmp_rel: True (default) replicates, False fixes.

    containig_typo: 'containig' for 'containing'. vertical_says_horizontally: when the ego's
    centre is not above the reference's but its top edge is, the vertical slot reads
    'horizontally containig' (fixed: 'vertically containing'). tmp_rel_slash_n: tmp_rel
    questions start with the characters `<image>/n`, not `<image>` and a newline.
    tmp_rel_example_newline: tmp_rel's `{example}` keeps the other answer's final '.' and
    newline (the notebook strips a final '.', and tmp_rel answers end in '\\n').
    Replicated without a flag: `{example}` is another pair's answer from the same image (the
    previous pair's; the first pair takes the last's). It shows the answer format with true
    values of another pair, which is what the released Aux-D data holds.
    """

    containig_typo: bool = True
    vertical_says_horizontally: bool = True
    tmp_rel_slash_n: bool = True
    tmp_rel_example_newline: bool = True


QUIRK_NAMES = tuple(Quirks.__dataclass_fields__)


def spatial_samples(objects: Sequence[ObjectDescription], rng: random.Random,
                    quirks: Quirks) -> list[tuple[str, str]]:
    """(question, answer) for every ordered pair (ego, ref) of distinctly named objects."""
    boxes = _boxes_by_phrase(objects)
    questions, answers = [], []
    for ego, ego_box in boxes.items():
        for ref, ref_box in boxes.items():
            if ego == ref:
                continue
            questions.append('<image>\n' + rng.choice(SPA_REL_PROMPTS).replace(
                '{Putego}', ego).replace('{Putref}', ref))
            answers.append(spatial_answer(ego, ego_box, ref, ref_box, quirks))
    return [(question.replace('{example}', _example(answers[i - 1], quirks)), answers[i])
            for i, question in enumerate(questions)]


def spatial_answer(ego: str, ego_box: ImageBox, ref: str, ref_box: ImageBox,
                   quirks: Quirks) -> str:
    """`EGO is left|right|.. and top|bottom|.. from REF with 2d center distance ...`.

    Horizontal: ego centre left of ref centre -> 'left' if ego's right edge is left of ref's,
    else containing; otherwise containing if ego's left edge is left of ref's, else 'right'.
    Vertical likewise with 'top'/'bottom' (image rows grow downward).
    """
    containing = 'containig' if quirks.containig_typo else 'containing'
    ego_left, ego_top, ego_right, ego_bottom = _edges(ego_box)
    ref_left, ref_top, ref_right, ref_bottom = _edges(ref_box)
    ego_x, ego_y = ego_box.center.x_norm, ego_box.center.y_norm
    ref_x, ref_y = ref_box.center.x_norm, ref_box.center.y_norm
    if ego_x < ref_x:
        horizontal = 'left' if ego_right < ref_right else f'horizontally {containing}'
    else:
        horizontal = f'horizontally {containing}' if ego_left < ref_left else 'right'
    if ego_y < ref_y:
        vertical = 'top' if ego_bottom < ref_bottom else f'vertically {containing}'
    elif ego_top < ref_top:
        side = 'horizontally' if quirks.vertical_says_horizontally else 'vertically'
        vertical = f'{side} {containing}'
    else:
        vertical = 'bottom'
    return SPATIAL_ANSWER.format(
        ego=ego, horizontal=horizontal, vertical=vertical, ref=ref, dx=ego_x - ref_x,
        dy=ego_y - ref_y, distance=math.dist((ego_x, ego_y), (ref_x, ref_y)))


def temporal_samples(before: Sequence[ObjectDescription], after: Sequence[ObjectDescription],
                     scene: str, rng: random.Random,
                     quirks: Quirks) -> tuple[list[tuple[str, str]], int]:
    """(question, answer) for every ordered pair across a step, and the objects left out.

    Pairs use the objects named in both frames (in frame t's order); the count of distinct
    names seen in only one of the two frames is returned (the notebook would stop there).
    `scene` (for `{scene}`) is frame t+1's full scene description.
    """
    first, second = _boxes_by_phrase(before), _boxes_by_phrase(after)
    names = [name for name in first if name in second]
    left_out = len(first) + len(second) - 2 * len(names)
    prefix = '<image>/n' if quirks.tmp_rel_slash_n else '<image>\n'
    questions, answers = [], []
    for ego in names:
        for ref in names:
            if ego == ref:
                continue
            questions.append(prefix + rng.choice(TMP_REL_PROMPTS).replace(
                '{Putego}', ego).replace('{Putref}', ref))
            answers.append(temporal_answer(ego, ref, (first[ego], first[ref]),
                                           (second[ego], second[ref])))
    pairs = [(question.replace('{example}', _example(answers[i - 1], quirks, temporal=True))
              .replace('{scene}', scene), answers[i]) for i, question in enumerate(questions)]
    return pairs, left_out


def temporal_answer(ego: str, ref: str, before: tuple[ImageBox, ImageBox],
                    after: tuple[ImageBox, ImageBox]) -> str:
    """How the (ego, ref) centre offset and distance change from frame t to t+1."""
    (ego_x1, ego_y1), (ref_x1, ref_y1) = (_centre(box) for box in before)
    (ego_x2, ego_y2), (ref_x2, ref_y2) = (_centre(box) for box in after)
    change = (math.dist((ego_x2, ego_y2), (ref_x2, ref_y2))
              - math.dist((ego_x1, ego_y1), (ref_x1, ref_y1)))
    if change > DISTANCE_CHANGE_THRESHOLD:
        kind = 'away'
    elif change < -DISTANCE_CHANGE_THRESHOLD:
        kind = 'closer'
    else:
        kind = 'same'
    return TEMPORAL_ANSWER.format(
        change=TEMPORAL_CHANGES[kind].format(ref=ref, ego=ego), ego=ego, ref=ref,
        dx=(ego_x2 - ref_x2) - (ego_x1 - ref_x1), dy=(ego_y2 - ref_y2) - (ego_y1 - ref_y1),
        distance=change)


def _example(answer: str, quirks: Quirks, temporal: bool = False) -> str:
    if temporal and not quirks.tmp_rel_example_newline:
        answer = answer.rstrip('\n')
    return answer[:-1] if answer.endswith('.') else answer


def _boxes_by_phrase(objects: Sequence[ObjectDescription]) -> dict[str, ImageBox]:
    return {format_object_phrase(obj.name): obj.box for obj in objects}


def _centre(box: ImageBox) -> tuple[float, float]:
    return box.center.x_norm, box.center.y_norm


def _edges(box: ImageBox) -> tuple[float, float, float, float]:
    # The notebook's expand_bbox: centre -/+ half the size (left, top, right, bottom).
    x, y = box.center.x_norm, box.center.y_norm
    return (x - box.width_norm / 2, y - box.height_norm / 2,
            x + box.width_norm / 2, y + box.height_norm / 2)
