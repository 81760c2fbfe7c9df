"""Domain types shared by prompting, geometry, policies, the simulator and the nodes.

Frozen dataclasses with units and frames in their names. Points that the model reads
or writes are normalized coordinates of the *model frame* (the image the model saw,
VIMA's 256x128 front view for LLaRA): x = column / width, y = row / height, origin at
the top-left corner, both in [0, 1].
"""
from dataclasses import dataclass, field
import enum
import math
import numbers

import numpy as np

from llara_policy.errors import LlaraError, ValueRangeError

# Size of the model frame LLaRA is trained on: VIMA's front camera view
# (llara-spec section 0; VIMABench vima_bench/tasks/components/cameras.py).
MODEL_FRAME_WIDTH_PX = 256
MODEL_FRAME_HEIGHT_PX = 128


class Effector(enum.Enum):
    """End effector a step is written for (LLaRA's verb depends on it)."""

    SUCTION = 'suction'  # "Pick up the ... and drop it at ..."
    SPATULA = 'spatula'  # "Sweep the ... and stop at ..."


def check_real(name: str, value, minimum: float = -math.inf, maximum: float = math.inf,
               error: type[LlaraError] = ValueRangeError) -> float:
    """Check the one numeric rule of every domain and config type: a finite real in range.

    Python and numpy ints and floats are accepted; bools (which Python counts as ints), NaN,
    inf, strings and arrays are not. Returns the value as a float; raises `error` naming `name`.
    """
    if type(value) is float and minimum <= value <= maximum and math.isfinite(value):
        return value  # the common case, without the slower ABC checks below
    if (isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real)
            or not math.isfinite(value) or not minimum <= value <= maximum):
        raise error(f'{name} must be a finite number in [{minimum}, {maximum}], got {value!r}')
    return float(value)


def check_int(name: str, value, minimum: float = -math.inf, maximum: float = math.inf,
              error: type[LlaraError] = ValueRangeError) -> int:
    """`check_real` for integers: Python or numpy integers only, bools rejected; returns an int."""
    if type(value) is int and minimum <= value <= maximum:
        return value  # the common case, without the slower ABC checks below
    if (isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral)
            or not minimum <= value <= maximum):
        raise error(f'{name} must be an integer in [{minimum}, {maximum}], got {value!r}')
    return int(value)


def _set_checked(instance, name: str, check, *bounds) -> None:
    # Frozen dataclasses store the normalized value (numpy scalars become Python numbers).
    object.__setattr__(instance, name, check(name, getattr(instance, name), *bounds))


@dataclass(frozen=True)
class ImagePoint:
    """A point in normalized model-frame coordinates, each in [0, 1]."""

    x_norm: float
    y_norm: float

    def __post_init__(self):
        x, y = self.x_norm, self.y_norm
        # Plain floats in range (NaN fails the comparisons) need no normalizing: the parser
        # builds two points per step, so this keeps the same rule off its hot path.
        if type(x) is float and type(y) is float and 0.0 <= x <= 1.0 and 0.0 <= y <= 1.0:
            return
        _set_checked(self, 'x_norm', check_real, 0.0, 1.0)
        _set_checked(self, 'y_norm', check_real, 0.0, 1.0)


@dataclass(frozen=True)
class ImageBox:
    """An axis-aligned box in normalized model-frame coordinates (LLaRA's `(cx, cy), {w, h}`)."""

    center: ImagePoint
    width_norm: float
    height_norm: float

    def __post_init__(self):
        _set_checked(self, 'width_norm', check_real, 0.0, 1.0)
        _set_checked(self, 'height_norm', check_real, 0.0, 1.0)


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
        r, k = self.rotation_cw_deg, self.step_number
        if type(r) is int and type(k) is int and -359 <= r <= 359 and k >= 0:
            return  # plain ints in range: nothing to normalize (the parser's hot path)
        _set_checked(self, 'rotation_cw_deg', check_int, -359, 359)
        _set_checked(self, 'step_number', check_int, 0)


@dataclass(frozen=True)
class Observation:
    """What a policy sees at one step: an RGB frame (H, W, 3) uint8 and the end effector."""

    rgb: np.ndarray = field(compare=False)
    effector: Effector = Effector.SUCTION
    stamp_s: float = 0.0
