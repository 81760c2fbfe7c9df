"""Motion primitives over the `Arm` protocol: one LLaRA step becomes a checked SDK sequence.

`pick_and_place` is the suction pick-and-place every step of the policy turns into, used by the
simulated env and by the ROS executor alike, with a real or a simulated arm: approach at travel
height, descend, suction on and probe down until the gripper reports 'picked', lift, travel
while turning by the yaw change, lower, release, retreat, go home. Every return code goes
through `check_code`, so any failure raises a typed error and nothing moves after it.
Heights are given for the support surface under the object (the table, for a real robot) so
the primitive needs no knowledge of object sizes. `sweep` is the spatula's push (VIMA's Push)
for the sweeping tasks. Millimetres and degrees, base frame.
"""
from dataclasses import dataclass
import math

from llara_policy.arms.base import VACUUM_PICKED, Arm, check_code
from llara_policy.errors import ConfigError, ValueRangeError


@dataclass(frozen=True)
class PickPlaceConfig:
    """Heights, steps and speeds of the pick-and-place sequence (mm, mm/s, deg, s).

    `approach_mm` must exceed the tallest object: the probing descent starts there.
    `probe_step_mm` must stay below the suction's catch distance so the cup never presses an
    object into the table. The tool points down (roll 180, pitch 0), yaw 0 at the pick.
    """

    travel_height_mm: float = 200.0
    approach_mm: float = 70.0
    probe_step_mm: float = 6.0
    min_clearance_mm: float = 1.0
    place_clearance_mm: float = 8.0
    travel_speed_mm_s: float = 250.0
    approach_speed_mm_s: float = 120.0
    probe_speed_mm_s: float = 40.0
    suction_timeout_s: float = 1.0
    roll_deg: float = 180.0
    pitch_deg: float = 0.0
    pick_yaw_deg: float = 0.0
    home_xyz_mm: tuple[float, float, float] = (220.0, 0.0, 350.0)
    return_home: bool = True

    def __post_init__(self):
        for name in ('travel_height_mm', 'approach_mm', 'probe_step_mm', 'travel_speed_mm_s',
                     'approach_speed_mm_s', 'probe_speed_mm_s', 'suction_timeout_s'):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ConfigError(f'PickPlaceConfig.{name} must be a number > 0, got {value!r}')
        if self.approach_mm >= self.travel_height_mm:
            raise ConfigError(f'PickPlaceConfig.approach_mm ({self.approach_mm}) must be below '
                              f'travel_height_mm ({self.travel_height_mm})')
        if len(self.home_xyz_mm) != 3:
            raise ConfigError(f'PickPlaceConfig.home_xyz_mm must be 3 numbers, got '
                              f'{self.home_xyz_mm!r}')


@dataclass(frozen=True)
class PickPlaceResult:
    """What the sequence measured: the cup's height above the pick support when it gripped."""

    grip_height_mm: float


def wrap_deg(angle_deg: float) -> float:
    """Return the angle in (-180, 180] (the SDK's yaw range)."""
    wrapped = math.fmod(angle_deg + 180.0, 360.0)
    if wrapped <= 0.0:
        wrapped += 360.0
    return wrapped - 180.0


def _move(arm: Arm, xyz_mm, yaw_deg: float, speed_mm_s: float, config: PickPlaceConfig,
          what: str) -> None:
    code = arm.set_position(x=xyz_mm[0], y=xyz_mm[1], z=xyz_mm[2], roll=config.roll_deg,
                            pitch=config.pitch_deg, yaw=wrap_deg(yaw_deg), speed=speed_mm_s,
                            wait=True)
    check_code(code, f'set_position ({what})', arm)


def enable(arm: Arm) -> None:
    """Run the SDK's start-up sequence: clear warnings and errors, enable, mode 0, state 0."""
    check_code(arm.clean_warn(), 'clean_warn', arm)
    check_code(arm.clean_error(), 'clean_error', arm)
    check_code(arm.motion_enable(enable=True), 'motion_enable', arm)
    check_code(arm.set_mode(0), 'set_mode(0)', arm)
    check_code(arm.set_state(state=0), 'set_state(0)', arm)


def go_home(arm: Arm, config: PickPlaceConfig = PickPlaceConfig()) -> None:
    """Move to the home pose (tool down, yaw 0): out of the camera's view in the sim."""
    _move(arm, config.home_xyz_mm, config.pick_yaw_deg, config.travel_speed_mm_s, config, 'home')


def _grip(arm: Arm, pick_xyz_mm, config: PickPlaceConfig) -> float:
    """Descend with the suction on until it reports picked; return the grip height (mm)."""
    x, y, support_z = pick_xyz_mm
    yaw = config.pick_yaw_deg
    check_code(arm.set_vacuum_gripper(True, wait=False), 'set_vacuum_gripper(on)', arm)
    z = support_z + config.approach_mm
    floor = support_z + config.min_clearance_mm
    while True:
        code, state = arm.get_vacuum_gripper()
        check_code(code, 'get_vacuum_gripper', arm)
        if state == VACUUM_PICKED or z <= floor:
            break
        z = max(floor, z - config.probe_step_mm)
        _move(arm, (x, y, z), yaw, config.probe_speed_mm_s, config, 'probe down')
    # The verification the SDK offers: wait for 'picked' (code 41 when nothing holds).
    check_code(arm.set_vacuum_gripper(True, wait=True, timeout=config.suction_timeout_s),
               'set_vacuum_gripper(on, wait) - nothing picked', arm)
    return z - support_z


def pick_and_place(arm: Arm, pick_xyz_mm, place_xyz_mm, yaw_change_deg: float,
                   config: PickPlaceConfig = PickPlaceConfig()) -> PickPlaceResult:
    """Pick at `pick_xyz_mm`, turn by `yaw_change_deg` (about +z), place at `place_xyz_mm`.

    z of each point is the support surface there (the table). The held object is released
    `place_clearance_mm` above the place support, assuming it rests at the pick on a support
    of the same kind. Raises ArmError (ControllerError with the controller's error code) on the
    first failing call; an unconfirmed grip raises ArmError code 41 with the cup still down.
    """
    pick = tuple(float(v) for v in pick_xyz_mm)
    place = tuple(float(v) for v in place_xyz_mm)
    yaw0 = config.pick_yaw_deg
    travel_z = max(pick[2], place[2]) + config.travel_height_mm
    _move(arm, (pick[0], pick[1], travel_z), yaw0, config.travel_speed_mm_s, config,
          'above pick')
    _move(arm, (pick[0], pick[1], pick[2] + config.approach_mm), yaw0,
          config.approach_speed_mm_s, config, 'approach pick')
    grip_height = _grip(arm, pick, config)
    _move(arm, (pick[0], pick[1], travel_z), yaw0, config.approach_speed_mm_s, config, 'lift')
    yaw1 = yaw0 + yaw_change_deg
    _move(arm, (place[0], place[1], travel_z), yaw1, config.travel_speed_mm_s, config,
          'above place')
    _move(arm, (place[0], place[1], place[2] + grip_height + config.place_clearance_mm), yaw1,
          config.approach_speed_mm_s, config, 'lower to place')
    check_code(arm.set_vacuum_gripper(False, wait=False), 'set_vacuum_gripper(off)', arm)
    _move(arm, (place[0], place[1], travel_z), yaw1, config.approach_speed_mm_s, config,
          'retreat')
    if config.return_home:
        go_home(arm, config)
    return PickPlaceResult(grip_height)


@dataclass(frozen=True)
class SweepConfig:
    """The spatula push (mm, mm/s): VIMA's Push, a straight push just above the table.

    The blade starts `back_off_mm` behind the start point (so it lands behind the object, not
    on it) and stops as far short of the end point (so the object, not the blade, ends there).
    """

    travel_height_mm: float = 200.0
    blade_clearance_mm: float = 3.0
    back_off_mm: float = 16.0
    travel_speed_mm_s: float = 250.0
    approach_speed_mm_s: float = 120.0
    push_speed_mm_s: float = 80.0
    roll_deg: float = 180.0
    pitch_deg: float = 0.0
    home_xyz_mm: tuple[float, float, float] = (220.0, 0.0, 350.0)
    return_home: bool = True


def sweep(arm: Arm, start_xyz_mm, end_xyz_mm, config: SweepConfig = SweepConfig()) -> None:
    """Push with the spatula along the table from `start_xyz_mm` towards `end_xyz_mm`.

    z of each point is the table there. The blade faces the push direction (tool x along it),
    as VIMA's Push aligns its spatula; rotations play no part. Raises ArmError on the first
    failing call and ValueRangeError for a push of zero length.
    """
    start = [float(v) for v in start_xyz_mm]
    end = [float(v) for v in end_xyz_mm]
    dx, dy = end[0] - start[0], end[1] - start[1]
    length = math.hypot(dx, dy)
    if length < 1e-6:
        raise ValueRangeError(f'a push needs distinct start and end points, got {start}')
    ux, uy = dx / length, dy / length
    yaw = math.degrees(math.atan2(uy, ux))
    back = config.back_off_mm
    first = (start[0] - ux * back, start[1] - uy * back)
    last = (end[0] - ux * back, end[1] - uy * back)
    blade_z = max(start[2], end[2]) + config.blade_clearance_mm
    travel_z = max(start[2], end[2]) + config.travel_height_mm
    pose = PickPlaceConfig(roll_deg=config.roll_deg, pitch_deg=config.pitch_deg,
                           home_xyz_mm=config.home_xyz_mm)
    _move(arm, (*first, travel_z), yaw, config.travel_speed_mm_s, pose, 'above push start')
    _move(arm, (*first, blade_z), yaw, config.approach_speed_mm_s, pose, 'lower the blade')
    _move(arm, (*last, blade_z), yaw, config.push_speed_mm_s, pose, 'push')
    _move(arm, (*last, travel_z), yaw, config.approach_speed_mm_s, pose, 'lift the blade')
    if config.return_home:
        go_home(arm, PickPlaceConfig(travel_speed_mm_s=config.travel_speed_mm_s,
                                     home_xyz_mm=config.home_xyz_mm))
