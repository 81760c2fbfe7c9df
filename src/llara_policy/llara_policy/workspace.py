"""The safety envelope: where and how fast the tool may go, checked before any arm call.

One frozen `Workspace` describes the legal region in the robot base frame (a box over the
table, a z floor above the table, reach limits around the base axis), the largest yaw change of
one step and the speed cap. `check_tcp_target` and `check_table_action` are the only checks:
they raise `UnsafeTargetError` naming the limit and the offending value and never move a target
to the nearest legal point. The motion primitives call them for every target of a sequence
before its first arm call; `arms.primitives.enable()` also hands the same box to the controller
as its reduced-mode TCP boundary and turns the safety fence on, so the arm enforces it a second
time. Defaults, units and what each limit rejects are listed in the README's safety table.
"""
from dataclasses import dataclass, fields
import math

from llara_policy.errors import ConfigError, UnsafeTargetError
from llara_policy.execution import TableAction
from llara_policy.types import check_real

# The xArm's largest linear TCP speed (UFACTORY xArm 6 user manual: 1000 mm/s).
XARM_MAX_SPEED_MM_S = 1000.0


@dataclass(frozen=True)
class Workspace:
    """The safety envelope in the robot base frame (metres, degrees, mm/s).

    Defaults fit the embedded sim's xArm6 set-up: the 0.3 x 0.6 m task area in front of the
    robot (x forward, y left), table top at z = 0. `z_floor_above_table_m` is the lowest TCP
    height above `table_z_m` any target may have (the suction cup's tip may touch the table,
    never press into it); `reach_*_m` bound the horizontal distance from the base's z axis.
    Fields use ROS parameter types so a node can declare one parameter per field.

    Args:
        x_min_m: smallest x (forward) of any TCP target and pick/place point, base frame (m).
        x_max_m: largest x of any target (m).
        y_min_m: smallest y (left) of any target (m).
        y_max_m: largest y of any target (m).
        table_z_m: table top height in the base frame (m); must agree with the calibration's.
        z_floor_above_table_m: lowest TCP height above the table any target may have (m).
        z_max_m: highest TCP z of any target, e.g. travel height or home (m).
        reach_min_m: smallest horizontal distance of a target from the base z axis (m).
        reach_max_m: largest horizontal distance of a target from the base z axis (m).
        max_yaw_change_deg: largest tool rotation one step may command (deg).
        max_speed_mm_s: cap on every commanded TCP speed (mm/s, at most the xArm's 1000).
    """

    x_min_m: float = 0.2
    x_max_m: float = 0.5
    y_min_m: float = -0.3
    y_max_m: float = 0.3
    table_z_m: float = 0.0
    z_floor_above_table_m: float = 0.0
    z_max_m: float = 0.5
    reach_min_m: float = 0.15
    reach_max_m: float = 0.65
    max_yaw_change_deg: float = 359.0
    max_speed_mm_s: float = 600.0

    def __post_init__(self):
        for f in fields(self):
            object.__setattr__(self, f.name, check_real(f'Workspace.{f.name}',
                                                        getattr(self, f.name), error=ConfigError))
        for low, high in (('x_min_m', 'x_max_m'), ('y_min_m', 'y_max_m'),
                          ('z_floor_m', 'z_max_m'), ('reach_min_m', 'reach_max_m')):
            if not getattr(self, low) < getattr(self, high):
                raise ConfigError(f'Workspace.{low} ({getattr(self, low)}) must be below '
                                  f'Workspace.{high} ({getattr(self, high)})')
        for name in ('z_floor_above_table_m', 'reach_min_m'):
            check_real(f'Workspace.{name}', getattr(self, name), 0.0, error=ConfigError)
        check_real('Workspace.max_yaw_change_deg', self.max_yaw_change_deg, 0.0, 360.0,
                   error=ConfigError)
        check_real('Workspace.max_speed_mm_s', self.max_speed_mm_s, 1e-9, XARM_MAX_SPEED_MM_S,
                   error=ConfigError)

    @property
    def z_floor_m(self) -> float:
        """The lowest legal TCP z in the base frame (metres)."""
        return self.table_z_m + self.z_floor_above_table_m

    def corners_xy_m(self) -> tuple[tuple[float, float], ...]:
        """Return the box's four table corners (x, y) in metres, from (x_min, y_min) on."""
        return ((self.x_min_m, self.y_min_m), (self.x_max_m, self.y_min_m),
                (self.x_max_m, self.y_max_m), (self.x_min_m, self.y_max_m))

    def tcp_boundary_mm(self) -> list[float]:
        """Return the SDK's reduced TCP boundary [x_max, x_min, y_max, y_min, z_max, z_min] (mm).

        The controller enforces this box only (not the reach limits) once the fence is on
        (`set_fence_mode(True)`); targets outside it raise controller error 35.
        """
        return [1000.0 * v for v in (self.x_max_m, self.x_min_m, self.y_max_m, self.y_min_m,
                                     self.z_max_m, self.z_floor_m)]


def _unsafe(what: str, limit: str, value: float, unit: str, bound: str) -> UnsafeTargetError:
    return UnsafeTargetError(f'{what}: {limit} {value:.6g} {unit} is outside the workspace '
                             f'({bound})', limit=limit, value=value)


def check_xy_m(workspace: Workspace, xy_m, what: str) -> None:
    """Raise UnsafeTargetError unless base-frame (x, y) metres is inside the box and the reach."""
    x, y = (_finite(what, name, v, 'm') for name, v in zip(('x', 'y'), xy_m, strict=True))
    w = workspace
    if not w.x_min_m <= x <= w.x_max_m:
        raise _unsafe(what, 'x', x, 'm', f'Workspace.x_min_m={w.x_min_m}, x_max_m={w.x_max_m}')
    if not w.y_min_m <= y <= w.y_max_m:
        raise _unsafe(what, 'y', y, 'm', f'Workspace.y_min_m={w.y_min_m}, y_max_m={w.y_max_m}')
    reach = math.hypot(x, y)
    if not w.reach_min_m <= reach <= w.reach_max_m:
        raise _unsafe(what, 'reach', reach, 'm',
                      f'Workspace.reach_min_m={w.reach_min_m}, reach_max_m={w.reach_max_m}')


def finite_xyz_mm(xyz_mm, what: str) -> tuple[float, float, float]:
    """Return (x, y, z) mm as floats; UnsafeTargetError unless three finite numbers.

    The primitives call it on their input points before any arithmetic, so a NaN, an inf or a
    wrong-shaped point is refused with the limit it breaks ('x', 'y', 'z' or 'xyz').
    """
    if isinstance(xyz_mm, (str, bytes)) or not hasattr(xyz_mm, '__len__') or len(xyz_mm) != 3:
        raise UnsafeTargetError(f'{what}: a TCP target needs x, y, z in mm, got {xyz_mm!r}',
                                limit='xyz', value=math.nan)
    x, y, z = (_finite(what, n, v, 'mm') for n, v in zip('xyz', xyz_mm, strict=True))
    return x, y, z


def check_tcp_target(workspace: Workspace, xyz_mm, speed_mm_s: float, what: str) -> None:
    """Raise UnsafeTargetError unless a TCP target (mm, base frame) and its speed are legal.

    Checks, in order: finiteness, the x/y box, the reach from the base axis, the z floor above
    the table and z_max, then 0 < speed <= max_speed_mm_s. The error's `limit` names the first
    limit broken ('x', 'y', 'reach', 'z', 'speed'); `value` is in metres (mm/s for speed).
    """
    x_mm, y_mm, z_mm = finite_xyz_mm(xyz_mm, what)
    check_xy_m(workspace, (x_mm / 1000.0, y_mm / 1000.0), what)
    z_m = z_mm / 1000.0
    if not workspace.z_floor_m <= z_m <= workspace.z_max_m:
        raise _unsafe(what, 'z', z_m, 'm',
                      f'floor Workspace.table_z_m + z_floor_above_table_m = '
                      f'{workspace.z_floor_m:.6g}, Workspace.z_max_m={workspace.z_max_m}')
    speed = _finite(what, 'speed', speed_mm_s, 'mm/s')
    if not 0.0 < speed <= workspace.max_speed_mm_s:
        raise _unsafe(what, 'speed', speed, 'mm/s',
                      f'Workspace.max_speed_mm_s={workspace.max_speed_mm_s}')


def check_yaw_change(workspace: Workspace, yaw_change_deg: float, what: str) -> None:
    """Raise UnsafeTargetError if one step's yaw change exceeds the rotation limit."""
    yaw = _finite(what, 'yaw change', yaw_change_deg, 'deg')
    if abs(yaw) > workspace.max_yaw_change_deg:
        raise _unsafe(what, 'yaw change', yaw, 'deg',
                      f'Workspace.max_yaw_change_deg={workspace.max_yaw_change_deg}')


def check_table_action(workspace: Workspace, action: TableAction) -> None:
    """Check a base-frame table action's pick, place and rotation before anything moves."""
    check_xy_m(workspace, action.pick_xy_m, 'pick')
    check_xy_m(workspace, action.place_xy_m, 'place')
    check_yaw_change(workspace, action.yaw_change_deg, 'rotation')


def _finite(what: str, name: str, value, unit: str) -> float:
    if (isinstance(value, bool) or not isinstance(value, (int, float))
            and not hasattr(value, '__float__')):
        raise UnsafeTargetError(f'{what}: {name} must be a number in {unit}, got {value!r}',
                                limit=name, value=math.nan)
    number = float(value)
    if not math.isfinite(number):
        raise UnsafeTargetError(f'{what}: {name} is {number} {unit}, not a finite number',
                                limit=name, value=number)
    return number
