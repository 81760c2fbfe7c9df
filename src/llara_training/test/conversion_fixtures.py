"""Hand-built episodes for the conversion tests: 3 frames, 2 steps, 3 objects with boxes.

Boxes are multiples of 1/256 (x) and 1/128 (y) like real labels. The scene:
  frame 0: red block (0.25, 0.5) 0.125x0.25, green bowl (0.75, 0.5) 0.25x0.5,
           blue letter A (0.5, 0.75) 0.125x0.125
  step 1:  red block (0.25, 0.5) -> (0.796875, 0.578125), rotate 30 (clockwise)
  frame 1: red block at (0.796875, 0.578125), the rest unchanged
  step 2:  blue letter A (0.5, 0.75) -> (0.25, 0.25), rotate -45
  frame 2: blue letter A at (0.25, 0.25)
Prompt 'Put the {dragged_obj_1} into the {base_obj}. Then make it look like {scene}.' with a
reference image per placeholder (red block alone, green bowl alone, a two-object scene).
"""
import numpy as np

from llara_policy.sim.episode import (
    Placeholder,
    PlaceholderKind,
    ReferenceImage,
    TaskPrompt,
)
from llara_policy.types import ActionStep, Effector, ImageBox, ImagePoint, ObjectDescription
from llara_training.episode import Episode, EpisodeSource, Frame, LabelMapping

EPISODE_ID = 'sim-test-0000007'
TEMPLATE = 'Put the {dragged_obj_1} into the {base_obj}. Then make it look like {scene}.'


def described(name: str, x: float, y: float, width: float, height: float) -> ObjectDescription:
    return ObjectDescription(name, ImageBox(ImagePoint(x, y), width, height))


RED_0 = described('red block', 0.25, 0.5, 0.125, 0.25)
BOWL = described('green bowl', 0.75, 0.5, 0.25, 0.5)
LETTER_0 = described('blue letter A', 0.5, 0.75, 0.125, 0.125)
RED_1 = described('red block', 0.796875, 0.578125, 0.125, 0.25)
LETTER_2 = described('blue letter A', 0.25, 0.25, 0.125, 0.125)
FRAME_OBJECTS = ((RED_0, BOWL, LETTER_0), (RED_1, BOWL, LETTER_0), (RED_1, BOWL, LETTER_2))


def image(value: int) -> np.ndarray:
    return np.full((128, 256, 3), value, np.uint8)


def segmentation() -> np.ndarray:
    return np.full((128, 256), -1, np.int32)


def reference(*objects: ObjectDescription) -> ReferenceImage:
    names = {body: obj.name for body, obj in enumerate(objects, start=1)}
    return ReferenceImage(image(200), segmentation(), names, objects)


def prompt() -> TaskPrompt:
    return TaskPrompt(TEMPLATE, {
        'dragged_obj_1': Placeholder('dragged_obj_1', PlaceholderKind.OBJECT, ('red block',),
                                     reference(described('red block', 0.5, 0.5, 0.25, 0.5))),
        'base_obj': Placeholder('base_obj', PlaceholderKind.OBJECT, ('green bowl',),
                                reference(described('green bowl', 0.5, 0.5, 0.5, 0.75))),
        'scene': Placeholder('scene', PlaceholderKind.SCENE, ('red block', 'green bowl'),
                             reference(described('red block', 0.75, 0.625, 0.125, 0.25),
                                       described('green bowl', 0.75, 0.5, 0.25, 0.5))),
    })


def steps(effector: Effector = Effector.SUCTION) -> tuple[ActionStep, ...]:
    return (
        ActionStep(ImagePoint(0.25, 0.5), ImagePoint(0.796875, 0.578125), 30, 'red block',
                   effector, 1),
        ActionStep(ImagePoint(0.5, 0.75), ImagePoint(0.25, 0.25), -45, 'blue letter A',
                   effector, 2),
    )


def episode(episode_id: str = EPISODE_ID, effector: Effector = Effector.SUCTION,
            label_mapping: LabelMapping = LabelMapping.UNBIASED,
            frame_objects=FRAME_OBJECTS) -> Episode:
    frames = tuple(Frame(image(10 * t), segmentation(), objects)
                   for t, objects in enumerate(frame_objects))
    return Episode(episode_id, EpisodeSource.SIM, 'visual_manipulation', 7, prompt(), effector,
                   frames, steps(effector)[:len(frames) - 1], True, label_mapping,
                   {1: 'red block', 2: 'green bowl', 3: 'blue letter A'})
