"""Motion primitives over the `Arm` protocol: one LLaRA step becomes a checked SDK sequence.

`pick_and_place` is the suction pick-and-place every step of the policy turns into, used by the
simulated env and by the ROS executor alike, with a real or a simulated arm: approach at travel
height, descend, suction on and probe down until the gripper reports 'picked', lift, travel
while turning by the yaw change, lower, release, retreat, go home. `sweep` is the spatula's push
(VIMA's Push). Each primitive first plans its whole sequence and checks every target and speed
against the `Workspace` (plan, check, then move): a bad target raises `UnsafeTargetError` before
the first arm call. Every return code goes through `check_code`, so any failure raises a typed
error and nothing moves after it. Heights are given for the support surface under a point (the
table, for a real robot), so no primitive needs object sizes. Millimetres and degrees, base frame.
An optional `on_phase(name)` hook hears each phase (PICK_PLACE_PHASES / SWEEP_PHASES) before its
first motion; an exception it raises (e.g. a cancel) stops the sequence before that motion.
"""
from collections.abc import Callable
from dataclasses import dataclass
import math
from typing import Optional

from llara_policy.arms.base import CODE_SUCTION_TIMEOUT, VACUUM_PICKED, Arm, check_code
from llara_policy.errors import ArmError, ConfigError, NothingPickedError, ValueRangeError
from llara_policy.types import check_real
from llara_policy.workspace import Workspace, check_tcp_target, check_yaw_change, finite_xyz_mm

# The home pose's TCP (mm, base frame; tool down, yaw 0): 0.35 m above the table at the task
# area's robot-side edge. In the sim the whole arm is then above the front camera's view
# (sim/camera.py), so frames never show it; sim/world.py derives its home joints from this.
HOME_XYZ_MM = (220.0, 0.0, 350.0)
# Phase names the primitives report through `on_phase`, in order (ExecuteStep.action's PHASE_*;
# the spatula's GRASP is lowering the blade, its RELEASE lifting it).
PICK_PLACE_PHASES = ('approach', 'descend', 'grasp', 'lift', 'transfer', 'place', 'release',
                     'retreat')
SWEEP_PHASES = ('approach', 'grasp', 'transfer', 'release', 'retreat')
PhaseHook = Optional[Callable[[str], None]]


def _check_fields(config, positive: tuple[str, ...], non_negative: tuple[str, ...] = ()) -> None:
    """Apply the one numeric rule to a config's fields and its home point (ConfigError)."""
    name = type(config).__name__
    for field_name in positive:
        check_real(f'{name}.{field_name}', getattr(config, field_name), 1e-9, error=ConfigError)
    for field_name in non_negative:
        check_real(f'{name}.{field_name}', getattr(config, field_name), 0.0, error=ConfigError)
    for field_name in ('roll_deg', 'pitch_deg'):
        check_real(f'{name}.{field_name}', getattr(config, field_name), error=ConfigError)
    home = config.home_xyz_mm
    if isinstance(home, (str, bytes)) or not hasattr(home, '__len__') or len(home) != 3:
        raise ConfigError(f'{name}.home_xyz_mm must be 3 numbers (mm), got {home!r}')
    for axis, value in zip('xyz', home, strict=True):
        check_real(f'{name}.home_xyz_mm[{axis}]', value, error=ConfigError)


@dataclass(frozen=True)
class PickPlaceConfig:
    """Heights, steps and speeds of the pick-and-place sequence (mm, mm/s, deg, s).

    `approach_mm` must exceed the tallest object: the probing descent starts there.
    `probe_step_mm` must stay below the suction's catch distance so the cup never presses an
    object into the table. The held object is released `place_clearance_mm` above the place
    point's support. The tool points down (roll 180, pitch 0), yaw `pick_yaw_deg` at the pick.

    Args:
        travel_height_mm: TCP height above the table for moves between points (mm).
        approach_mm: height above the pick/place support where descents start (mm); above the
            tallest object.
        probe_step_mm: the probing descent's step towards the object (mm).
        min_clearance_mm: lowest cup height above the support while probing or releasing (mm).
        place_clearance_mm: the held object is released this high above the place support (mm).
        travel_speed_mm_s: speed of travel moves (mm/s).
        approach_speed_mm_s: speed of descents to approach height and lifts (mm/s).
        probe_speed_mm_s: speed of the probing descent (mm/s).
        suction_timeout_s: how long the suction may take to confirm a grip at each probe (s).
        roll_deg: tool roll (180: pointing down) (deg).
        pitch_deg: tool pitch (deg).
        pick_yaw_deg: tool yaw at the pick; the place adds the step's yaw change (deg).
        home_xyz_mm: the home position the arm returns to after a step (mm, base frame).
        return_home: go home after each step (false: stay at travel height above the place).
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
    home_xyz_mm: tuple[float, float, float] = HOME_XYZ_MM
    return_home: bool = True

    def __post_init__(self):
        _check_fields(self, ('travel_height_mm', 'approach_mm', 'probe_step_mm',
                             'travel_speed_mm_s', 'approach_speed_mm_s', 'probe_speed_mm_s',
                             'suction_timeout_s'), ('min_clearance_mm', 'place_clearance_mm'))
        check_real('PickPlaceConfig.pick_yaw_deg', self.pick_yaw_deg, error=ConfigError)
        if self.approach_mm >= self.travel_height_mm:
            raise ConfigError(f'PickPlaceConfig.approach_mm ({self.approach_mm}) must be below '
                              f'travel_height_mm ({self.travel_height_mm})')
        if self.min_clearance_mm >= self.approach_mm:
            raise ConfigError(f'PickPlaceConfig.min_clearance_mm ({self.min_clearance_mm}) must '
                              f'be below approach_mm ({self.approach_mm})')


@dataclass(frozen=True)
class SweepConfig:
    """The spatula push (mm, mm/s): VIMA's Push, a straight push just above the table.

    The blade starts `back_off_mm` behind the start point (so it lands behind the object, not
    on it) and stops as far short of the end point (so the object, not the blade, ends there).

    Args:
        travel_height_mm: TCP height above the table for moves between points (mm).
        blade_clearance_mm: the blade's height above the sweep support while pushing (mm).
        back_off_mm: the push starts this far behind the start point and stops this far short
            of the end point (mm).
        travel_speed_mm_s: speed of travel moves (mm/s).
        approach_speed_mm_s: speed of the blade's descent and lift (mm/s).
        push_speed_mm_s: speed of the push (mm/s).
        roll_deg: tool roll (deg).
        pitch_deg: tool pitch (deg).
        home_xyz_mm: the home position the arm returns to after a sweep (mm, base frame).
        return_home: go home after each sweep.
    """

    travel_height_mm: float = 200.0
    blade_clearance_mm: float = 3.0
    back_off_mm: float = 16.0
    travel_speed_mm_s: float = 250.0
    approach_speed_mm_s: float = 120.0
    push_speed_mm_s: float = 80.0
    roll_deg: float = 180.0
    pitch_deg: float = 0.0
    home_xyz_mm: tuple[float, float, float] = HOME_XYZ_MM
    return_home: bool = True

    def __post_init__(self):
        _check_fields(self, ('travel_height_mm', 'travel_speed_mm_s', 'approach_speed_mm_s',
                             'push_speed_mm_s'), ('blade_clearance_mm', 'back_off_mm'))


@dataclass(frozen=True)
class PickPlaceResult:
    """What the sequence measured: the cup's height above the pick support when it gripped."""

    grip_height_mm: float


@dataclass(frozen=True)
class Waypoint:
    """One planned straight-line TCP move: target (mm, base frame), yaw (deg), speed, purpose."""

    xyz_mm: tuple[float, float, float]
    yaw_deg: float
    speed_mm_s: float
    what: str


def wrap_deg(angle_deg: float) -> float:
    """Return the angle in (-180, 180] (the SDK's yaw range)."""
    wrapped = math.fmod(angle_deg + 180.0, 360.0)
    if wrapped <= 0.0:
        wrapped += 360.0
    return wrapped - 180.0


def check_waypoints(workspace: Workspace, waypoints) -> None:
    """Check every planned target and speed against the workspace (UnsafeTargetError)."""
    for waypoint in waypoints:
        check_tcp_target(workspace, waypoint.xyz_mm, waypoint.speed_mm_s, waypoint.what)


def _move(arm: Arm, waypoint: Waypoint, roll_deg: float, pitch_deg: float) -> None:
    x, y, z = waypoint.xyz_mm
    code = arm.set_position(x=x, y=y, z=z, roll=roll_deg, pitch=pitch_deg,
                            yaw=wrap_deg(waypoint.yaw_deg), speed=waypoint.speed_mm_s, wait=True)
    check_code(code, f'set_position ({waypoint.what})', arm)


def enable(arm: Arm, workspace: Workspace) -> None:
    """Run the SDK's start-up sequence and hand the workspace box to the controller.

    Clears warnings and errors, sets the reduced-mode TCP boundary from `workspace` and turns
    the safety fence on (`set_fence_mode(True)`: the controller then refuses targets outside
    the box with error 35; reduced mode itself stays off, as it would also cap the speeds),
    enables the motors, mode 0, state 0.
    """
    check_code(arm.clean_warn(), 'clean_warn', arm)
    check_code(arm.clean_error(), 'clean_error', arm)
    check_code(arm.set_reduced_tcp_boundary(workspace.tcp_boundary_mm()),
               'set_reduced_tcp_boundary', arm)
    check_code(arm.set_fence_mode(True), 'set_fence_mode(on)', arm)
    check_code(arm.motion_enable(enable=True), 'motion_enable', arm)
    check_code(arm.set_mode(0), 'set_mode(0)', arm)
    check_code(arm.set_state(state=0), 'set_state(0)', arm)


def _home(home_xyz_mm, speed_mm_s: float) -> Waypoint:
    return Waypoint(tuple(float(v) for v in home_xyz_mm), 0.0, speed_mm_s, 'home')


def go_home(arm: Arm, workspace: Workspace, config: PickPlaceConfig = PickPlaceConfig()) -> None:
    """Move to the home pose (tool down, yaw 0), checked against the workspace first."""
    home = _home(config.home_xyz_mm, config.travel_speed_mm_s)
    check_waypoints(workspace, (home,))
    _move(arm, home, config.roll_deg, config.pitch_deg)


@dataclass(frozen=True)
class _PickPlacePlan:
    """Every target of one pick-and-place; probe and release heights lie between two of them."""

    above_pick: Waypoint
    approach: Waypoint
    probe_floor: Waypoint  # the lowest probe point; probe steps lie between it and `approach`
    lift: Waypoint
    above_place: Waypoint
    release_low: Waypoint  # release for the lowest possible grip height
    release_high: Waypoint  # ... and for the highest; the real one lies between them
    retreat: Waypoint
    grip_retreat: Waypoint  # where a failed grip retreats to (pick support + travel height)
    home: Waypoint | None

    def targets(self) -> tuple[Waypoint, ...]:
        """Return every target to check (the box is convex: points between them are legal)."""
        return tuple(w for w in (self.above_pick, self.approach, self.probe_floor, self.lift,
                                 self.above_place, self.release_low, self.release_high,
                                 self.retreat, self.grip_retreat, self.home) if w is not None)


def _plan_pick_and_place(pick, place, yaw_change_deg: float,
                         config: PickPlaceConfig) -> _PickPlacePlan:
    c = config
    travel_z = max(pick[2], place[2]) + c.travel_height_mm
    yaw0, yaw1 = c.pick_yaw_deg, c.pick_yaw_deg + yaw_change_deg
    px, py, pz = pick
    qx, qy, qz = place
    release = qz + c.place_clearance_mm
    return _PickPlacePlan(
        above_pick=Waypoint((px, py, travel_z), yaw0, c.travel_speed_mm_s, 'above pick'),
        approach=Waypoint((px, py, pz + c.approach_mm), yaw0, c.approach_speed_mm_s,
                          'approach pick'),
        probe_floor=Waypoint((px, py, pz + c.min_clearance_mm), yaw0, c.probe_speed_mm_s,
                             'probe down'),
        lift=Waypoint((px, py, travel_z), yaw0, c.approach_speed_mm_s, 'lift'),
        above_place=Waypoint((qx, qy, travel_z), yaw1, c.travel_speed_mm_s, 'above place'),
        release_low=Waypoint((qx, qy, release + c.min_clearance_mm), yaw1,
                             c.approach_speed_mm_s, 'lower to place'),
        release_high=Waypoint((qx, qy, release + c.approach_mm), yaw1, c.approach_speed_mm_s,
                              'lower to place'),
        retreat=Waypoint((qx, qy, travel_z), yaw1, c.approach_speed_mm_s, 'retreat'),
        grip_retreat=Waypoint((px, py, pz + c.travel_height_mm), yaw0, c.approach_speed_mm_s,
                              'retreat after a failed grip'),
        home=_home(c.home_xyz_mm, c.travel_speed_mm_s) if c.return_home else None)


def _grip(arm: Arm, plan: _PickPlacePlan, support_z: float, config: PickPlaceConfig) -> float:
    """Descend with the suction on until it reports picked; return the grip height (mm)."""
    x, y, floor = plan.probe_floor.xyz_mm
    z = plan.approach.xyz_mm[2]
    check_code(arm.set_vacuum_gripper(True, wait=False), 'set_vacuum_gripper(on)', arm)
    while True:
        code, state = arm.get_vacuum_gripper()
        check_code(code, 'get_vacuum_gripper', arm)
        if state == VACUUM_PICKED or z <= floor:
            break
        z = max(floor, z - config.probe_step_mm)
        _move(arm, Waypoint((x, y, z), plan.probe_floor.yaw_deg, config.probe_speed_mm_s,
                            'probe down'), config.roll_deg, config.pitch_deg)
    # The verification the SDK offers: wait for 'picked' (code 41 when nothing holds).
    check_code(arm.set_vacuum_gripper(True, wait=True, timeout=config.suction_timeout_s),
               'set_vacuum_gripper(on, wait) - nothing picked', arm)
    return z - support_z


def _abandon_grip(arm: Arm, retreat: Waypoint, config: PickPlaceConfig,
                  error: ArmError) -> bool:
    """After a grip that failed: vacuum off, retreat above the pick support; True if both ran.

    Never raises: a recovery call that fails too (e.g. the controller holds an error and
    refuses motion) is added to `error` as a note, so the first cause stays on top, and False
    is returned.
    """
    try:
        check_code(arm.set_vacuum_gripper(False, wait=False), 'set_vacuum_gripper(off)', arm)
        _move(arm, retreat, config.roll_deg, config.pitch_deg)
    except ArmError as recovery_error:
        error.add_note(f'recovery after the failed grip failed too: {recovery_error}')
        return False
    return True


def _checked_pick_and_place_plan(workspace: Workspace, pick_xyz_mm, place_xyz_mm,
                                 yaw_change_deg: float, config: PickPlaceConfig):
    pick = finite_xyz_mm(pick_xyz_mm, 'pick')
    place = finite_xyz_mm(place_xyz_mm, 'place')
    check_yaw_change(workspace, yaw_change_deg, 'rotation')
    plan = _plan_pick_and_place(pick, place, float(yaw_change_deg), config)
    check_waypoints(workspace, plan.targets())
    return pick, place, plan


def check_pick_and_place(workspace: Workspace, pick_xyz_mm, place_xyz_mm, yaw_change_deg: float,
                         config: PickPlaceConfig = PickPlaceConfig()) -> None:
    """Run pick_and_place's whole pre-motion check without an arm (UnsafeTargetError)."""
    _checked_pick_and_place_plan(workspace, pick_xyz_mm, place_xyz_mm, yaw_change_deg, config)


def _phase(on_phase: PhaseHook, name: str) -> None:
    if on_phase is not None:
        on_phase(name)


def pick_and_place(arm: Arm, workspace: Workspace, pick_xyz_mm, place_xyz_mm,
                   yaw_change_deg: float,
                   config: PickPlaceConfig = PickPlaceConfig(),
                   on_phase: PhaseHook = None) -> PickPlaceResult:
    """Pick at `pick_xyz_mm`, turn by `yaw_change_deg` (about +z), place at `place_xyz_mm`.

    z of each point is the support surface there (the table, or what the caller assumes
    there). Every target (travel heights, approach, the lowest probe point, the release
    heights, retreat, home), every speed and the yaw change are checked against `workspace`
    first: UnsafeTargetError, and no arm call at all, if one is outside. The held object is
    released `place_clearance_mm` above the place support plus its grip height. Raises ArmError
    (ControllerError with the controller's code) on the first failing call. If the grip fails
    (code 41: nothing held, or any ArmError while gripping), the suction goes off and the cup
    retreats to the pick support + `travel_height_mm`; then a miss (code 41) whose recovery
    ran raises NothingPickedError (code 41: the arm is in a known state, nothing is held),
    and any other grip error, or a recovery that failed too, re-raises the error itself
    (a failed recovery noted on it). `on_phase` hears each of PICK_PLACE_PHASES before its
    first arm call.
    """
    pick, place, plan = _checked_pick_and_place_plan(workspace, pick_xyz_mm, place_xyz_mm,
                                                     yaw_change_deg, config)
    roll, pitch = config.roll_deg, config.pitch_deg
    _phase(on_phase, 'approach')
    _move(arm, plan.above_pick, roll, pitch)
    _phase(on_phase, 'descend')
    _move(arm, plan.approach, roll, pitch)
    _phase(on_phase, 'grasp')
    try:
        grip_height = _grip(arm, plan, pick[2], config)
    except ArmError as error:
        if _abandon_grip(arm, plan.grip_retreat, config, error) \
                and error.code == CODE_SUCTION_TIMEOUT:
            x, y, z = plan.grip_retreat.xyz_mm
            raise NothingPickedError(
                f'nothing picked at ({x:.0f}, {y:.0f}) mm: the suction confirmed no grip; '
                f'suction off, cup retreated to z {z:.0f} mm', error.code) from error
        raise
    _phase(on_phase, 'lift')
    _move(arm, plan.lift, roll, pitch)
    _phase(on_phase, 'transfer')
    _move(arm, plan.above_place, roll, pitch)
    release_z = place[2] + grip_height + config.place_clearance_mm
    _phase(on_phase, 'place')
    _move(arm, Waypoint((place[0], place[1], release_z), plan.above_place.yaw_deg,
                        config.approach_speed_mm_s, 'lower to place'), roll, pitch)
    _phase(on_phase, 'release')
    check_code(arm.set_vacuum_gripper(False, wait=False), 'set_vacuum_gripper(off)', arm)
    _phase(on_phase, 'retreat')
    _move(arm, plan.retreat, roll, pitch)
    if plan.home is not None:
        _move(arm, plan.home, roll, pitch)
    return PickPlaceResult(grip_height)


def _plan_sweep(start, end, config: SweepConfig) -> tuple[float, tuple[Waypoint, ...]]:
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
    c = config
    moves = (Waypoint((*first, travel_z), yaw, c.travel_speed_mm_s, 'above push start'),
             Waypoint((*first, blade_z), yaw, c.approach_speed_mm_s, 'lower the blade'),
             Waypoint((*last, blade_z), yaw, c.push_speed_mm_s, 'push'),
             Waypoint((*last, travel_z), yaw, c.approach_speed_mm_s, 'lift the blade'))
    if config.return_home:
        moves += (_home(config.home_xyz_mm, config.travel_speed_mm_s),)
    return yaw, moves


def _checked_sweep_moves(workspace: Workspace, start_xyz_mm, end_xyz_mm,
                        config: SweepConfig) -> tuple[Waypoint, ...]:
    start = finite_xyz_mm(start_xyz_mm, 'push start')
    end = finite_xyz_mm(end_xyz_mm, 'push end')
    yaw, moves = _plan_sweep(start, end, config)
    check_yaw_change(workspace, yaw, 'blade turn')
    check_waypoints(workspace, moves)
    return moves


def check_sweep(workspace: Workspace, start_xyz_mm, end_xyz_mm,
                config: SweepConfig = SweepConfig()) -> None:
    """Run sweep's whole pre-motion check without an arm (UnsafeTargetError, ValueRangeError)."""
    _checked_sweep_moves(workspace, start_xyz_mm, end_xyz_mm, config)


def sweep(arm: Arm, workspace: Workspace, start_xyz_mm, end_xyz_mm,
          config: SweepConfig = SweepConfig(), on_phase: PhaseHook = None) -> None:
    """Push with the spatula along the table from `start_xyz_mm` towards `end_xyz_mm`.

    z of each point is the table there. The blade faces the push direction (tool x along it),
    as VIMA's Push aligns its spatula. Every target (blade start and end at travel and blade
    height, home), every speed and the tool's turn from yaw 0 are checked against `workspace`
    before the first arm call (UnsafeTargetError). Raises ArmError on the first failing call
    and ValueRangeError for a push of zero length. `on_phase` hears each of SWEEP_PHASES
    before its motion (approach: above the start; grasp: blade lowered; transfer: the push;
    release: blade lifted; retreat: home, when `return_home`).
    """
    moves = _checked_sweep_moves(workspace, start_xyz_mm, end_xyz_mm, config)
    # Without the return home the last phase, retreat, has no motion and is not reported.
    for name, waypoint in zip(SWEEP_PHASES, moves, strict=False):
        _phase(on_phase, name)
        _move(arm, waypoint, config.roll_deg, config.pitch_deg)
