"""Domain types of a sim episode: partitions and seeds, prompts with reference images, actions.

These are what the training package and the ROS graph read from the simulator: the VIMA-style
prompt template and, per placeholder, the object names and a reference image with its object
boxes (so both inBC and D-inBC prompts can be written); the robot-frame action a step executes;
and the oracle's answer in both frames. Boxes follow LLaRA's rule (llara-spec section 2.2).
"""
from collections.abc import Mapping
from dataclasses import dataclass, field
import enum

import numpy as np

from llara_policy.errors import ConfigError
from llara_policy.execution import TableAction
from llara_policy.text.prompting import Reference, Scene
from llara_policy.types import ActionStep, Effector, ImageBox, ImagePoint, ObjectDescription
from llara_policy.workspace import Workspace

# The table area tasks use (metres, base frame): the default safety envelope's box
# (llara_policy.workspace.Workspace), 2:1 like VIMA's 0.5 x 1.0 m (vimabench-spec A.10) but
# 0.3 x 0.6 m so an xArm6 with the sim tool reaches it. Tasks place objects and goals inside
# it, so the oracle's targets pass the envelope's checks.
_TASK_AREA = Workspace()
WORKSPACE_X_M = (_TASK_AREA.x_min_m, _TASK_AREA.x_max_m)
WORKSPACE_Y_M = (_TASK_AREA.y_min_m, _TASK_AREA.y_max_m)
# VIMA's evaluation allows oracle_max_steps + 2 steps (vimalabs/VIMA scripts/example.py
# TimeLimitWrapper bonus_steps=2).
EVAL_BONUS_STEPS = 2


class Partition(enum.Enum):
    """VIMA-Bench's generalization levels, by their VIMA key (vimabench-spec A.3)."""

    PLACEMENT = 'placement_generalization'  # L1: training objects, new placements
    COMBINATORIAL = 'combinatorial_generalization'  # L2: colour sets swapped
    NOVEL_OBJECT = 'novel_object_generalization'  # L3: held-out shapes
    NOVEL_TASK = 'novel_task_generalization'  # L4: held-out tasks (VIMA-Bench only)


class Split(enum.Enum):
    """Train and test episodes come from disjoint seed ranges (ravens' habit, typed)."""

    TRAIN = 'train'
    TEST = 'test'


SEED_RANGES = {Split.TRAIN: range(1_000_000), Split.TEST: range(1_000_000, 2_000_000)}


def check_seed(split: Split, partition: Partition, seed: int) -> None:
    """Raise ConfigError unless `seed` belongs to `split` and the partition allows the split."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ConfigError(f'seed must be an integer, got {seed!r}')
    seeds = SEED_RANGES[split]
    if seed not in seeds:
        raise ConfigError(f'{split.value} seeds are {seeds.start}..{seeds.stop - 1}, got {seed}')
    if split is Split.TRAIN and partition is not Partition.PLACEMENT:
        raise ConfigError(f'{partition.value} is a test partition; train on '
                          f'{Partition.PLACEMENT.value}')


@dataclass(frozen=True)
class SceneObject:
    """An object in a world: its body id, shape and colour names, and role in the task."""

    body_id: int
    shape: str
    colour: str
    role: str  # 'dragged', 'base' or 'distractor'

    @property
    def name(self) -> str:
        """The readable name, colour first: 'red block'."""
        return f'{self.colour} {self.shape}'


def object_boxes(segm: np.ndarray, names: Mapping[int, str]) -> tuple[ObjectDescription, ...]:
    """Boxes of the named objects visible in a segmentation (LLaRA's rule, spec 2.2).

    (x1, y1, x2, y2) are the min/max column/row of the mask; the centre is the floor of the
    midpoints; w = x2 - x1, h = y2 - y1; everything divided by the image width/height. Objects
    with no visible pixel are left out. Order: as in `names`.
    """
    height, width = segm.shape
    boxes = []
    for body, name in names.items():
        rows, cols = np.nonzero(segm == body)
        if rows.size == 0:
            continue
        x1, x2, y1, y2 = cols.min(), cols.max(), rows.min(), rows.max()
        centre = ImagePoint(float((x1 + x2) // 2) / width, float((y1 + y2) // 2) / height)
        boxes.append(ObjectDescription(
            name, ImageBox(centre, float(x2 - x1) / width, float(y2 - y1) / height)))
    return tuple(boxes)


class PlaceholderKind(enum.Enum):
    """What an image placeholder of a prompt shows (VIMA's placeholder_type)."""

    OBJECT = 'object'
    SCENE = 'scene'


@dataclass(frozen=True)
class ReferenceImage:
    """A rendered prompt asset: front-view RGB (H, W, 3), its segmentation and object boxes.

    `object_names` maps the segmentation's body ids to names; `objects` are the boxes (the
    text D-inBC writes: '<p>name</p> at <b>(cx, cy), {w, h}</b>').
    """

    rgb: np.ndarray = field(compare=False, repr=False)
    segm: np.ndarray = field(compare=False, repr=False)
    object_names: Mapping[int, str]
    objects: tuple[ObjectDescription, ...]


@dataclass(frozen=True)
class Placeholder:
    """One `{name}` of a prompt template: an object or a scene, shown by a reference image."""

    name: str
    kind: PlaceholderKind
    object_names: tuple[str, ...]
    reference: ReferenceImage


@dataclass(frozen=True)
class TaskPrompt:
    """VIMA's multimodal prompt: a template whose `{placeholders}` stand for images.

    Text placeholders (e.g. scene_understanding's colours) are already written in, as VIMA's
    `env.prompt` has them.
    """

    template: str
    placeholders: Mapping[str, Placeholder]

    def instruction(self) -> str:
        """Plain-text instruction: objects by name, scenes by their key ('this scene').

        This is the inBC wording without LLaRA's tags; prompting.py adds those.
        """
        values = {}
        for key, placeholder in self.placeholders.items():
            if placeholder.kind is PlaceholderKind.OBJECT:
                values[key] = ' and '.join(placeholder.object_names)
            else:
                values[key] = key
        return self.template.format(**values)

    def references(self) -> dict[str, Reference]:
        """Return the placeholders as `prompting.build_task_text` references.

        An object becomes its ObjectDescription in its reference image (its name alone if it
        is not visible there); a scene becomes a `prompting.Scene` of its object boxes.
        """
        references = {}
        for key, placeholder in self.placeholders.items():
            boxes = placeholder.reference.objects
            if placeholder.kind is PlaceholderKind.SCENE:
                references[key] = Scene(boxes)
            else:
                references[key] = boxes[0] if boxes else placeholder.object_names[0]
        return references


@dataclass(frozen=True)
class EpisodeInfo:
    """What a reset produced besides the first frame.

    `object_names` maps segmentation body ids to names for boxes in every frame; `max_steps` is
    VIMA's oracle_max_steps of the task (policies get EVAL_BONUS_STEPS more).
    """

    task: str
    partition: Partition
    seed: int
    prompt: TaskPrompt
    object_names: Mapping[int, str]
    objects: tuple[SceneObject, ...]
    max_steps: int
    effector: Effector = Effector.SUCTION


@dataclass(frozen=True)
class OracleAction:
    """The oracle's next step in both frames, and the manipulated object's name.

    `step` is LLaRA's model-frame ActionStep of `action` (normalized points, rotation_cw_deg =
    -int(yaw change)).
    """

    action: TableAction
    step: ActionStep
    object_name: str
