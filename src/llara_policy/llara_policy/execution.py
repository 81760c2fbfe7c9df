"""The executor-facing mapping: model-frame points and LLaRA steps become base-frame targets.

The real executor node, the embedded simulator and the VIMA-Bench adapter all go through
`table_action_from_step`, so the path a model's answer takes to the arm is the same everywhere:
model point -> (undo preprocessing) -> camera pixel -> base-frame point through the calibration
(pinhole, homography or VIMA's fixed map), rotation by LLaRA's convention (yaw change = -r).
"""
from dataclasses import dataclass
import enum
import math

import numpy as np

from llara_policy.errors import CalibrationError, ProjectionError, ValueRangeError
from llara_policy.geometry.calibration import Calibration
from llara_policy.geometry.preprocessing import FramePreprocess
from llara_policy.geometry.transforms import (
    BasePoint,
    PinholeCamera,
    as_points,
    image_rotation_to_yaw_delta_rad,
)
from llara_policy.geometry.vima_map import (
    VimaFixedMap,
    llara_history_rotation,
    llara_rotation_to_yaw_delta_rad,
    llara_stored_xy,
)
from llara_policy.types import ActionStep, ImagePoint, check_real


class RotationConvention(enum.Enum):
    """How the model's rotation value r (degrees, 'clockwise') becomes a yaw change in the base."""

    # LLaRA's labels are negated world yaw deltas: yaw = -r (eval/eval-llara.py parse_bc).
    LLARA = 'llara'
    # r is an on-screen clockwise turn in the model frame, mapped through the calibration.
    IMAGE_PLANE = 'image_plane'


@dataclass(frozen=True)
class ModelFrameMapper:
    """The executor's single call: model-frame points <-> base-frame points for one camera.

    Undoes `preprocess` (model pixel -> camera pixel), then applies the calibration's mapping.
    A pinhole calibration intersects the pixel ray with z = table_z_m + height_m; a homography or
    VIMA's fixed map knows only the table plane, so they accept height_m = 0 only.
    """

    calibration: Calibration
    preprocess: FramePreprocess

    def __post_init__(self):
        cal, pre = self.calibration, self.preprocess
        if (pre.camera_width_px, pre.camera_height_px) != (cal.image_width_px,
                                                           cal.image_height_px):
            raise CalibrationError(
                f'preprocess expects {pre.camera_width_px}x{pre.camera_height_px} camera images '
                f'but calibration {cal.camera_id!r} is for {cal.image_width_px}x'
                f'{cal.image_height_px}')

    def model_pixels_to_base(self, model_pixel_uv, height_m: float = 0.0) -> np.ndarray:
        """Map model-frame pixels (N, 2) to base-frame points (N, 3) metres."""
        camera_pixels = self.preprocess.model_to_camera_pixels(model_pixel_uv)
        cal = self.calibration
        if isinstance(cal.mapping, PinholeCamera):
            return cal.mapping.pixels_to_base(camera_pixels, cal.table_z_m + height_m)
        if height_m != 0.0:
            raise ProjectionError(
                f'a {cal.kind} calibration maps only the table plane; height_m must be 0, '
                f'got {height_m}')
        xy = cal.mapping.pixels_to_table_xy(camera_pixels)
        return np.column_stack([xy, np.full(len(xy), cal.table_z_m)])

    def model_point_to_base(self, point: ImagePoint, height_m: float = 0.0) -> BasePoint:
        """Map a normalized model point to the base frame (on the plane table_z_m + height_m)."""
        pixel = (point.x_norm * self.preprocess.model_width_px,
                 point.y_norm * self.preprocess.model_height_px)
        x_m, y_m, z_m = self.model_pixels_to_base(pixel, height_m)[0]
        return BasePoint(float(x_m), float(y_m), float(z_m))

    def base_to_model_pixels(self, points_base_m) -> np.ndarray:
        """Map base-frame points (N, 3) m to model-frame pixels (N, 2), even off the frame.

        The inverse of model_pixels_to_base (homography / VIMA use only XY). Raises
        ProjectionError when a point is behind a pinhole camera.
        """
        points = as_points(points_base_m, 3, 'points_base_m')
        mapping = self.calibration.mapping
        if isinstance(mapping, PinholeCamera):
            camera_pixels = mapping.base_to_pixels(points)
        else:
            camera_pixels = mapping.table_xy_to_pixels(points[:, :2])
        return self.preprocess.camera_to_model_pixels(camera_pixels)

    def base_to_model_point(self, point: BasePoint) -> ImagePoint:
        """Map a base-frame point to a normalized model point (homography / VIMA use its XY).

        Raises ProjectionError when the point is behind the camera or outside the model frame.
        """
        mapping = self.calibration.mapping
        if isinstance(mapping, PinholeCamera):
            camera_pixel = mapping.base_to_pixels(point.as_array())
        else:
            camera_pixel = mapping.table_xy_to_pixels((point.x_m, point.y_m))
        return self.preprocess.camera_pixel_to_model_point(camera_pixel)

    def rotation_to_yaw_delta_rad(
            self, point: ImagePoint, rotation_cw_deg: float,
            convention: RotationConvention = RotationConvention.LLARA) -> float:
        """Return the base yaw change (radians about +z) for the model's rotation at `point`."""
        if convention is RotationConvention.LLARA:
            return llara_rotation_to_yaw_delta_rad(rotation_cw_deg)
        pixel = (point.x_norm * self.preprocess.model_width_px,
                 point.y_norm * self.preprocess.model_height_px)
        return image_rotation_to_yaw_delta_rad(self.model_pixels_to_base, pixel, rotation_cw_deg)


def model_point_to_base(calibration: Calibration, preprocess: FramePreprocess,
                        point: ImagePoint, height_m: float = 0.0) -> BasePoint:
    """Map a normalized model point to a base-frame point (see ModelFrameMapper)."""
    return ModelFrameMapper(calibration, preprocess).model_point_to_base(point, height_m)


@dataclass(frozen=True)
class TableAction:
    """One pick-and-place on the table in the robot base frame.

    `pick_xy_m` and `place_xy_m` are base-frame XY in metres; `yaw_change_deg` is the yaw of the
    placed object minus its yaw at pick, counter-clockwise seen from above (about +z), i.e. NOT
    negated as LLaRA's text rotation is. Only finiteness is checked here: whether a target is
    safe for an arm is the workspace's call (`llara_policy.workspace`), made before any motion.
    """

    pick_xy_m: tuple[float, float]
    place_xy_m: tuple[float, float]
    yaw_change_deg: float

    def __post_init__(self):
        for name in ('pick_xy_m', 'place_xy_m'):
            xy = getattr(self, name)
            if isinstance(xy, (str, bytes)) or len(xy) != 2:
                raise ValueRangeError(
                    f'{name} must be an (x, y) pair of finite numbers, got {xy!r}')
            object.__setattr__(self, name, (check_real(f'{name}[0]', xy[0]),
                                             check_real(f'{name}[1]', xy[1])))
        object.__setattr__(self, 'yaw_change_deg',
                           check_real('yaw_change_deg', self.yaw_change_deg))


def table_action_from_step(mapper: ModelFrameMapper, step: ActionStep) -> TableAction:
    """Map LLaRA's model-frame step to the base frame through a calibration (the executor's path).

    Points go through the mapper's calibration (pinhole, homography or VIMA's fixed map);
    the rotation follows LLaRA's convention (yaw change = -rotation_cw_deg).
    """
    pick = mapper.model_point_to_base(step.pick)
    place = mapper.model_point_to_base(step.place)
    yaw_rad = mapper.rotation_to_yaw_delta_rad(step.pick, step.rotation_cw_deg,
                                               RotationConvention.LLARA)
    return TableAction((pick.x_m, pick.y_m), (place.x_m, place.y_m), math.degrees(yaw_rad))


def history_rotation(yaw_change_deg: float) -> int:
    """Return the history rotation for a yaw change: -round(yaw), wrapped into [-359, 359].

    LLaRA's convention (rotation = -yaw) for whole degrees; a yaw of 360 or more (never from
    an ActionStep, whose rotation is within [-359, 359]) wraps toward zero (360 -> 0).
    """
    return int(math.fmod(-round(check_real('yaw_change_deg', yaw_change_deg)), 360))


def executed_step(mapper: ModelFrameMapper, step: ActionStep, action: TableAction) -> ActionStep:
    """Return `action` (what the executor commands for `step`) projected back into the model frame.

    This is the step's entry in LLaRA's action history: the executed base-frame targets, not
    the model's text (LLaRA's evaluation rebuilds its history from the executed action dicts,
    llara-spec 3.4). By calibration:
    - VIMA's fixed map, 'llara' convention: LLaRA's own arithmetic, bit for bit (float32
      positions, int() label pixels, the rotation read back from a float32 quaternion:
      `vima_map.llara_stored_xy`, `llara_history_rotation`), so 0.320 comes back as 0.316
      and a rotation of 116 as 115;
    - VIMA's fixed map, 'unbiased': its pixel-centre labels and `history_rotation`;
    - pinhole / homography: the continuous projection through the calibration and the
      preprocessing, and `history_rotation`.
    The object phrase is dropped (history writes `object`); effector and step number are the
    step's. ProjectionError when a target leaves the model frame.
    """
    mapping = mapper.calibration.mapping
    pick_xy_m, place_xy_m = action.pick_xy_m, action.place_xy_m
    if isinstance(mapping, VimaFixedMap) and mapping.convention == 'llara':
        pick_xy_m, place_xy_m = llara_stored_xy(*pick_xy_m), llara_stored_xy(*place_xy_m)
        rotation_cw_deg = llara_history_rotation(action.yaw_change_deg)
    else:
        rotation_cw_deg = history_rotation(action.yaw_change_deg)
    table_z_m = mapper.calibration.table_z_m
    pick = mapper.base_to_model_point(BasePoint(*pick_xy_m, table_z_m))
    place = mapper.base_to_model_point(BasePoint(*place_xy_m, table_z_m))
    return ActionStep(pick, place, rotation_cw_deg, effector=step.effector,
                      step_number=step.step_number)
