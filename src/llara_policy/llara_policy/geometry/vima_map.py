"""VIMA's fixed front-view map between table metres and model points, and LLaRA's rotation rule.

LLaRA's labels and evaluation (LostXine/LLaRA eval/vima_utils.py `pos2pix_front`/`pix2pos_front`,
llara-spec section 2.2) use an affine map between VIMA's table frame and the 256x128 front view;
released checkpoints answer in it. Forward truncates with int(), the inverse clips to VIMA's
action bounds. Rotation (spec 2.3): the text value r is the negated yaw delta in degrees.
Two pixel conventions (VIMA_MAPPINGS): LLaRA's, and an unbiased one for our own data and models.
LLaRA's action history rebuilds each executed step from its float32 action dict
(eval-llara.py `action_to_text`): `llara_stored_xy` and `llara_history_rotation` reproduce it.
"""
from dataclasses import dataclass
import math

import numpy as np

from llara_policy.errors import ConfigError, ValueRangeError
from llara_policy.geometry.transforms import as_points
from llara_policy.types import (
    MODEL_FRAME_HEIGHT_PX,
    MODEL_FRAME_WIDTH_PX,
    ImagePoint,
    check_real,
)

# pos2pix_front / pix2pos_front constants (LostXine/LLaRA eval/vima_utils.py): pixels per metre
# across (y -> column) and along the table (x -> row, 251 * cos 45 for the 45-degree camera), and
# the pixel of the workspace corner (x, y) = (0.25, -0.5).
VIMA_COLUMNS_PER_M = 251.0
VIMA_ROWS_PER_M = 178.0
VIMA_COLUMN_AT_Y_MIN = 3.0
VIMA_ROW_AT_X_MIN = 34.0
# VIMA's action-position bounds in metres (vimalabs/VIMABench vima_bench/env/base.py); the
# inverse map clips to them.
VIMA_X_RANGE_M = (0.25, 0.75)
VIMA_Y_RANGE_M = (-0.5, 0.5)
# Pixel conventions of the fixed map. Both decode a model point as a continuous pixel coordinate
# (pixel k spans [k, k + 1)); they differ in the labels:
#   'llara'    labels are int()-truncated pixels, i.e. the pixel's corner (LLaRA's arithmetic;
#              released checkpoints were trained on it). Cost: a label -> table round trip
#              lands half a pixel toward -x/-y on average (0.5 / 178 m = 2.8 mm in x and
#              0.5 / 251 m = 2.0 mm in y; up to 5.6 and 4.0 mm), so picks near an edge miss.
#   'unbiased' labels are pixel centres (floor + 0.5): the round trip error is within half a
#              pixel either way, mean zero. The default for our own data and models.
VIMA_MAPPINGS = ('llara', 'unbiased')


def check_vima_mapping(name: str, value) -> str:
    """Return `value` if it is one of VIMA_MAPPINGS; else raise ConfigError naming `name`."""
    if value not in VIMA_MAPPINGS:
        raise ConfigError(f'{name} must be one of {VIMA_MAPPINGS}, got {value!r}')
    return value


def vima_table_xy_to_pixels(table_xy_m, mapping: str = 'llara') -> np.ndarray:
    """Map VIMA table XY (N, 2) metres to front-view label pixels (N, 2) (column, row).

    'llara' truncates with int() as pos2pix_front does (toward zero): whole pixels.
    'unbiased' returns the centre of the pixel holding the point (floor + 0.5).
    """
    check_vima_mapping('mapping', mapping)
    xy = as_points(table_xy_m, 2, 'table_xy_m')
    column = (xy[:, 1] - VIMA_Y_RANGE_M[0]) * VIMA_COLUMNS_PER_M + VIMA_COLUMN_AT_Y_MIN
    row = (xy[:, 0] - VIMA_X_RANGE_M[0]) * VIMA_ROWS_PER_M + VIMA_ROW_AT_X_MIN
    pixels = np.column_stack([column, row])
    return np.trunc(pixels) if mapping == 'llara' else np.floor(pixels) + 0.5


def vima_pixels_to_table_xy(pixel_uv) -> np.ndarray:
    """Map front-view pixels (N, 2) (column, row) to VIMA table XY (N, 2) metres, clipped."""
    pixels = as_points(pixel_uv, 2, 'pixel_uv')
    y = (pixels[:, 0] - VIMA_COLUMN_AT_Y_MIN) / VIMA_COLUMNS_PER_M + VIMA_Y_RANGE_M[0]
    x = (pixels[:, 1] - VIMA_ROW_AT_X_MIN) / VIMA_ROWS_PER_M + VIMA_X_RANGE_M[0]
    return np.column_stack([np.clip(x, *VIMA_X_RANGE_M), np.clip(y, *VIMA_Y_RANGE_M)])


def vima_table_to_model_point(x_m: float, y_m: float, mapping: str = 'llara') -> ImagePoint:
    """Return the label point for VIMA table position (x_m, y_m): label pixel / (256, 128).

    'llara': LLaRA's whole pixels; 'unbiased': pixel centres (see VIMA_MAPPINGS). Raises
    ValueRangeError when the position falls outside the 256x128 frame.
    """
    column, row = vima_table_xy_to_pixels([x_m, y_m], mapping)[0]
    if not (0 <= column < MODEL_FRAME_WIDTH_PX and 0 <= row < MODEL_FRAME_HEIGHT_PX):
        raise ValueRangeError(
            f'VIMA table point ({x_m}, {y_m}) m maps to pixel ({column:g}, {row:g}), outside '
            f'the {MODEL_FRAME_WIDTH_PX}x{MODEL_FRAME_HEIGHT_PX} front view')
    return ImagePoint(column / MODEL_FRAME_WIDTH_PX, row / MODEL_FRAME_HEIGHT_PX)


def vima_model_point_to_table(point: ImagePoint) -> tuple[float, float]:
    """Return VIMA table (x_m, y_m) for a model point, clipped to VIMA's action bounds.

    As LLaRA's evaluation: column = x_norm * 256, row = y_norm * 128, then pix2pos_front. Both
    conventions decode this way (a continuous pixel coordinate; they differ in the labels only).
    """
    pixel = (point.x_norm * MODEL_FRAME_WIDTH_PX, point.y_norm * MODEL_FRAME_HEIGHT_PX)
    x_m, y_m = vima_pixels_to_table_xy(pixel)[0]
    return float(x_m), float(y_m)


def llara_rotation_to_yaw_delta_rad(rotation_cw_deg: float) -> float:
    """Return the yaw change (about +z) for LLaRA's rotation text value: yaw = -r degrees.

    LLaRA eval/eval-llara.py `parse_bc` places with a rotation about z by -r degrees.
    """
    return -math.radians(rotation_cw_deg)


def llara_rotation_from_yaw_delta(yaw_delta_deg: float) -> int:
    """Return LLaRA's rotation label for a yaw change: -int(yaw_place - yaw_pick) in degrees.

    int() truncates toward zero (LostXine/LLaRA datasets/convert_vima.ipynb `get_action_info`).
    """
    return -int(check_real('yaw_delta_deg', yaw_delta_deg))


def llara_stored_xy(x_m: float, y_m: float) -> tuple[float, float]:
    """Return table (x_m, y_m) as LLaRA's evaluation stores and reads back an executed position.

    `parse_bc` stores positions as np.float32 arrays; `action_to_text` evaluates pos2pix_front
    on the float32 elements, which NumPy 1.x promotes to float64 against Python floats. So the
    history's pixel is the float64 label arithmetic on the float32-rounded value: rounding can
    move a point across a pixel edge (a decoded column 4 comes back as 4, row 35 as 34, where
    float64 all through would give 3 and 35). E.g. the released answer's pick (0.320, 0.547)
    comes back as (0.316, 0.547) to 3 decimals.
    """
    return (float(np.float32(check_real('x_m', x_m))),
            float(np.float32(check_real('y_m', y_m))))


def llara_history_rotation(yaw_change_deg: float) -> int:
    """Return LLaRA's history rotation for a commanded yaw change (degrees about +z).

    LLaRA's evaluation (eval-llara.py `parse_bc`, `action_to_text`) stores the place
    orientation as a float32 quaternion of Rz(yaw) (scipy, xyzw: (0, 0, sin(yaw/2),
    cos(yaw/2))) and the pick's as identity, reads both yaws back as 'xyz' Euler angles in
    [-180, 180] and writes -int(yaw_place - yaw_pick). The float32 rounding usually lands just
    inside the whole degree, so int() loses one: r = 116 (yaw -116) comes back as 115; yaws
    beyond 180 wrap (r = 200 comes back as -159). For a pure z rotation the Euler yaw is
    2 atan2(z, w), wrapped into [-pi, pi] as scipy does.
    """
    half_rad = math.radians(check_real('yaw_change_deg', yaw_change_deg)) / 2.0
    z = float(np.float32(math.sin(half_rad)))
    w = float(np.float32(math.cos(half_rad)))
    yaw_rad = 2.0 * math.atan2(z, w)
    if yaw_rad < -math.pi:
        yaw_rad += 2.0 * math.pi
    elif yaw_rad > math.pi:
        yaw_rad -= 2.0 * math.pi
    return -int(math.degrees(yaw_rad))


@dataclass(frozen=True)
class VimaFixedMap:
    """VIMA's front-view map as a pixel <-> table-XY mapping of its 256x128 camera image.

    `convention` is one of VIMA_MAPPINGS; it decides the labels (table_xy_to_pixels) only.
    """

    convention: str = 'llara'

    def __post_init__(self):
        check_vima_mapping('VimaFixedMap.convention', self.convention)

    def pixels_to_table_xy(self, pixel_uv) -> np.ndarray:
        """Map front-view pixels (N, 2) to table XY (N, 2) metres (clipped, pix2pos_front)."""
        return vima_pixels_to_table_xy(pixel_uv)

    def table_xy_to_pixels(self, table_xy_m) -> np.ndarray:
        """Map table XY (N, 2) metres to label pixels (N, 2) (pos2pix_front for 'llara')."""
        return vima_table_xy_to_pixels(table_xy_m, self.convention)
