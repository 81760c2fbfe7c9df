"""VIMA's fixed front-view map between table metres and model points, and LLaRA's rotation rule.

LLaRA's labels and evaluation (LostXine/LLaRA eval/vima_utils.py `pos2pix_front`/`pix2pos_front`,
llara-spec section 2.2) use an affine map between VIMA's table frame and the 256x128 front view;
released checkpoints answer in it. Forward truncates with int(), the inverse clips to VIMA's
action bounds. Rotation (spec 2.3): the text value r is the negated yaw delta in degrees.
"""
from dataclasses import dataclass
import math

import numpy as np

from llara_policy.errors import ValueRangeError
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


def vima_table_xy_to_pixels(table_xy_m) -> np.ndarray:
    """Map VIMA table XY (N, 2) metres to integer front-view pixels (N, 2) as floats (column, row).

    Truncates with int() as pos2pix_front does (toward zero), so labels are whole pixels.
    """
    xy = as_points(table_xy_m, 2, 'table_xy_m')
    column = np.trunc((xy[:, 1] - VIMA_Y_RANGE_M[0]) * VIMA_COLUMNS_PER_M + VIMA_COLUMN_AT_Y_MIN)
    row = np.trunc((xy[:, 0] - VIMA_X_RANGE_M[0]) * VIMA_ROWS_PER_M + VIMA_ROW_AT_X_MIN)
    return np.column_stack([column, row])


def vima_pixels_to_table_xy(pixel_uv) -> np.ndarray:
    """Map front-view pixels (N, 2) (column, row) to VIMA table XY (N, 2) metres, clipped."""
    pixels = as_points(pixel_uv, 2, 'pixel_uv')
    y = (pixels[:, 0] - VIMA_COLUMN_AT_Y_MIN) / VIMA_COLUMNS_PER_M + VIMA_Y_RANGE_M[0]
    x = (pixels[:, 1] - VIMA_ROW_AT_X_MIN) / VIMA_ROWS_PER_M + VIMA_X_RANGE_M[0]
    return np.column_stack([np.clip(x, *VIMA_X_RANGE_M), np.clip(y, *VIMA_Y_RANGE_M)])


def vima_table_to_model_point(x_m: float, y_m: float) -> ImagePoint:
    """Return LLaRA's label point for VIMA table position (x_m, y_m): whole pixels / (256, 128).

    Raises ValueRangeError when the position falls outside the 256x128 frame.
    """
    column, row = vima_table_xy_to_pixels([x_m, y_m])[0]
    if not (0 <= column < MODEL_FRAME_WIDTH_PX and 0 <= row < MODEL_FRAME_HEIGHT_PX):
        raise ValueRangeError(
            f'VIMA table point ({x_m}, {y_m}) m maps to pixel ({column:g}, {row:g}), outside '
            f'the {MODEL_FRAME_WIDTH_PX}x{MODEL_FRAME_HEIGHT_PX} front view')
    return ImagePoint(column / MODEL_FRAME_WIDTH_PX, row / MODEL_FRAME_HEIGHT_PX)


def vima_model_point_to_table(point: ImagePoint) -> tuple[float, float]:
    """Return VIMA table (x_m, y_m) for a model point, clipped to VIMA's action bounds.

    As LLaRA's evaluation: column = x_norm * 256, row = y_norm * 128, then pix2pos_front.
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


@dataclass(frozen=True)
class VimaFixedMap:
    """VIMA's front-view map as a pixel <-> table-XY mapping of its 256x128 camera image."""

    def pixels_to_table_xy(self, pixel_uv) -> np.ndarray:
        """Map front-view pixels (N, 2) to table XY (N, 2) metres (clipped, pix2pos_front)."""
        return vima_pixels_to_table_xy(pixel_uv)

    def table_xy_to_pixels(self, table_xy_m) -> np.ndarray:
        """Map table XY (N, 2) metres to whole front-view pixels (N, 2) (pos2pix_front)."""
        return vima_table_xy_to_pixels(table_xy_m)
