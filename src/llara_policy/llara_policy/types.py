"""Domain types shared by prompting, geometry, policies, the simulator and the nodes.

Frozen dataclasses with units and frames in their names. Points that the model reads
or writes are normalized coordinates of the *model frame* (the image the model saw,
VIMA's 256x128 front view for LLaRA): x = column / width, y = row / height, origin at
the top-left corner, both in [0, 1].
"""
from dataclasses import dataclass, field
import enum
import math

import numpy as np

from llara_policy.errors import ValueRangeError

# Size of the model frame LLaRA is trained on: VIMA's front camera view
# (llara-spec section 0; VIMABench vima_bench/tasks/components/cameras.py).
MODEL_FRAME_WIDTH_PX = 256
MODEL_FRAME_HEIGHT_PX = 128


class Effector(enum.Enum):
    """End effector a step is written for (LLaRA's verb depends on it)."""

    SUCTION = 'suction'  # "Pick up the ... and drop it at ..."
    SPATULA = 'spatula'  # "Sweep the ... and stop at ..."


def _check_unit_interval(name: str, value: float) -> None:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and 0.0 <= value <= 1.0):
        raise ValueRangeError(f'{name} must be a finite number in [0, 1], got {value!r}')


@dataclass(frozen=True)
class ImagePoint:
    """A point in normalized model-frame coordinates, each in [0, 1]."""

    x_norm: float
    y_norm: float

    def __post_init__(self):
        _check_unit_interval('x_norm', self.x_norm)
        _check_unit_interval('y_norm', self.y_norm)


@dataclass(frozen=True)
class ImageBox:
    """An axis-aligned box in normalized model-frame coordinates (LLaRA's `(cx, cy), {w, h}`)."""

    center: ImagePoint
    width_norm: float
    height_norm: float

    def __post_init__(self):
        _check_unit_interval('width_norm', self.width_norm)
        _check_unit_interval('height_norm', self.height_norm)


@dataclass(frozen=True)
class ObjectDescription:
    """A named object and its box in an image, e.g. 'red block' at (0.5, 0.6), {0.1, 0.2}."""

    name: str
    box: ImageBox


@dataclass(frozen=True)
class ActionStep:
    """One LLaRA action: pick (or sweep start), clockwise rotation, place (or sweep stop).

    `rotation_cw_deg` is the image-plane clockwise rotation LLaRA writes in `<r>[..]</r>`
    (whole degrees, [-359, 359]); `step_number` is the k of "Step k:" (0 when absent).
    """

    pick: ImagePoint
    place: ImagePoint
    rotation_cw_deg: int
    object_text: str = ''
    effector: Effector = Effector.SUCTION
    step_number: int = 0

    def __post_init__(self):
        if not isinstance(self.rotation_cw_deg, int) or not -359 <= self.rotation_cw_deg <= 359:
            raise ValueRangeError(
                f'rotation_cw_deg must be an integer in [-359, 359], got {self.rotation_cw_deg!r}')
        if not isinstance(self.step_number, int) or self.step_number < 0:
            raise ValueRangeError(
                f'step_number must be a non-negative integer, got {self.step_number!r}')


@dataclass(frozen=True)
class Observation:
    """What a policy sees at one step: an RGB frame (H, W, 3) uint8 and the end effector."""

    rgb: np.ndarray = field(compare=False)
    effector: Effector = Effector.SUCTION
    stamp_s: float = 0.0
