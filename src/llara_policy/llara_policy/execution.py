"""The executor-facing mapping: a model-frame LLaRA step becomes a base-frame table action.

The real executor node, the embedded simulator and the VIMA-Bench adapter all go through
`table_action_from_step`, so the path a model's answer takes to the arm is the same everywhere:
model point -> (undo preprocessing) -> camera pixel -> base-frame point through the calibration
(pinhole, homography or VIMA's fixed map), rotation by LLaRA's convention (yaw change = -r).
"""
from dataclasses import dataclass
import math

from llara_policy.errors import ValueRangeError
from llara_policy.geometry.calibration import ModelFrameMapper, RotationConvention
from llara_policy.types import ActionStep, check_real


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
