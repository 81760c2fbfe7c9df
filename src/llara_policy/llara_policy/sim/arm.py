"""`SimArm`: the xArm SDK's `XArmAPI` subset, moving the simulated xArm6 with IK and physics.

It keeps the SDK's contract (mm and degrees, integer codes, controller error/warn codes,
enable/mode/state, straight-line `set_position`, the vacuum gripper's picked state, reduced-mode
boundary raising controller error 35, unreachable targets raising error 40) so the executor and
`arms.primitives` drive it exactly as they drive a real arm. Motions run synchronously in
simulated time: `wait=False` returns after the motion like `wait=True` (the sim is never behind).
The arm follows its IK path kinematically while the objects are simulated; the suction holds an
object with a fixed constraint. Fault hooks (`inject_fault`, `fail_suction`) let tests provoke
the codes a real controller returns.
"""
from collections.abc import Callable
from dataclasses import dataclass, field, replace
import math

import numpy as np
import pybullet as p

from llara_policy.arms.base import (
    CODE_HAS_ERROR,
    CODE_NOT_CONNECTED,
    CODE_OK,
    CODE_STATE_NOT_READY,
    CODE_SUCTION_TIMEOUT,
    CODE_WAIT_TIMEOUT,
    ERROR_NO_IK,
    ERROR_SAFETY_BOUNDARY,
    MODE_POSITION,
    STATE_READY,
    STATE_STOPPED,
    VACUUM_NOT_PICKED,
    VACUUM_OFF,
    VACUUM_PICKED,
)
from llara_policy.errors import SimError
from llara_policy.sim.kinematics import cartesian_path, rotation_from_rpy, rpy_from_rotation
from llara_policy.sim.objects import Role
from llara_policy.sim.world import TIME_STEP_S, SimWorld
from llara_policy.types import Effector


@dataclass(frozen=True)
class SimArmConfig:
    """Motion and suction settings of the simulated arm.

    `default_speed_mm_s` is the xArm SDK's initial TCP speed (last_used_tcp_speed = 100).
    `suction_reach_mm`: an object surface this close below the cup is sucked on (a real cup's
    bellows and airflow catch it); keep the primitives' probe step below it.
    """

    default_speed_mm_s: float = 100.0
    max_speed_mm_s: float = 1000.0  # xArm6 maximum TCP speed (UFACTORY datasheet)
    angular_speed_deg_s: float = 180.0
    waypoint_mm: float = 20.0
    waypoint_deg: float = 15.0
    suction_reach_mm: float = 8.0
    suction_force_n: float = 200.0


@dataclass(frozen=True)
class Fault:
    """Make the next `times` calls of `method` return `code` (setting `error_code` if given)."""

    method: str
    code: int
    error_code: int = 0
    times: int = 1


@dataclass(frozen=True)
class ArmCall:
    """One call the arm received and the code it returned (the call log tests assert on)."""

    method: str
    args: tuple
    kwargs: dict = field(default_factory=dict)
    code: int = CODE_OK


class SimArm:
    """An `Arm` backed by a `SimWorld`'s xArm6 and suction tool."""

    def __init__(self, world: SimWorld, config: SimArmConfig = SimArmConfig()):
        self.world = world
        self.config = config
        self.calls: list[ArmCall] = []
        self._faults: list[Fault] = []
        self._suction_failures = 0
        self._connected = True
        self._enabled = False
        self._state = STATE_STOPPED
        self._mode = MODE_POSITION
        self._error_code = 0
        self._warn_code = 0
        self._speed_mm_s = config.default_speed_mm_s
        # As a controller with the sim tool's TCP offset saved (save_conf).
        self._kinematics = world.kinematics
        self._boundary_mm = (math.inf, -math.inf, math.inf, -math.inf, math.inf, -math.inf)
        self._reduced = False
        self._fence = False
        self._vacuum_on = False
        self._constraint = -1
        self.held_body = -1
        self.sim_time_s = 0.0
        self._tick_listeners: list[Callable[[float], None]] = []

    def world_was_reset(self) -> None:
        """Forget the grip after `SimWorld.reset` (the world and its constraints are new).

        The arm keeps its controller state (enabled, mode, errors), as a real arm does between
        episodes; the vacuum goes off.
        """
        self._constraint = -1
        self.held_body = -1
        self._vacuum_on = False

    # ---- test hooks --------------------------------------------------------------------------

    def inject_fault(self, fault: Fault) -> None:
        """Queue a fault: the next call(s) of `fault.method` return `fault.code`, no motion."""
        self._faults.append(fault)

    def add_tick_listener(self, listener: Callable[[float], None]) -> None:
        """Call `listener(sim_time_s)` after every physics tick of a motion (e.g. to film it)."""
        self._tick_listeners.append(listener)

    def fail_suction(self, times: int = 1) -> None:
        """Make the next `times` suction attempts fail to hold anything (a leaking cup)."""
        self._suction_failures += times

    def _take_fault(self, method: str) -> int:
        for index, fault in enumerate(self._faults):
            if fault.method == method:
                if fault.times > 1:
                    self._faults[index] = replace(fault, times=fault.times - 1)
                else:
                    del self._faults[index]
                if fault.error_code:
                    self._raise_controller_error(fault.error_code)
                return fault.code
        return CODE_OK

    def _log(self, method: str, code: int, *args, **kwargs) -> int:
        self.calls.append(ArmCall(method, args, kwargs, code))
        return code

    def _raise_controller_error(self, error_code: int) -> int:
        self._error_code = error_code
        self._state = STATE_STOPPED
        return CODE_HAS_ERROR

    # ---- status ------------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """Whether the arm is connected."""
        return self._connected

    @property
    def error_code(self) -> int:
        """Controller error code (0: none)."""
        return self._error_code

    @property
    def warn_code(self) -> int:
        """Controller warning code (0: none)."""
        return self._warn_code

    @property
    def state(self) -> int:
        """Robot state: 2 ready, 3 paused, 4 stopped (motions finish inside the call)."""
        return self._state

    @property
    def mode(self) -> int:
        """Control mode."""
        return self._mode

    def disconnect(self) -> None:
        """Drop the connection: every later call returns -1."""
        self._connected = False

    def _gate(self, method: str, *args, **kwargs) -> int:
        """Return the code of the common checks: connection, then an injected fault."""
        if not self._connected:
            return CODE_NOT_CONNECTED
        return self._take_fault(method)

    def motion_enable(self, enable=True, servo_id=None) -> int:
        """Enable or disable the motors; set_state(0) must follow before moving."""
        code = self._gate('motion_enable')
        if code == CODE_OK:
            self._enabled = bool(enable)
            self._state = STATE_STOPPED
        return self._log('motion_enable', code, enable)

    def set_mode(self, mode=0, detection_param=0) -> int:
        """Set the control mode; as on the controller, set_state(0) must follow."""
        code = self._gate('set_mode')
        if code == CODE_OK:
            self._mode = int(mode)
            self._state = STATE_STOPPED
        return self._log('set_mode', code, mode)

    def set_state(self, state=0) -> int:
        """State 0 makes an enabled, error-free arm ready; 3 pauses; 4 stops."""
        code = self._gate('set_state')
        if code == CODE_OK:
            if state == 0:
                if self._error_code:
                    code = CODE_HAS_ERROR
                elif self._enabled:
                    self._state = STATE_READY
            elif state in (3, 4, 6):
                self._state = STATE_STOPPED if state in (4, 6) else 3
        return self._log('set_state', code, state)

    def get_state(self) -> tuple[int, int]:
        """Return (code, state)."""
        code = self._gate('get_state')
        return self._log('get_state', code), self._state

    def clean_error(self) -> int:
        """Clear the controller error (the arm stays stopped until enabled and set to 0)."""
        code = self._gate('clean_error')
        if code == CODE_OK:
            self._error_code = 0
        return self._log('clean_error', code)

    def clean_warn(self) -> int:
        """Clear the controller warning."""
        code = self._gate('clean_warn')
        if code == CODE_OK:
            self._warn_code = 0
        return self._log('clean_warn', code)

    def get_err_warn_code(self, show=False, lang='en') -> tuple[int, list[int]]:
        """Return (code, [error_code, warn_code])."""
        code = self._gate('get_err_warn_code')
        return self._log('get_err_warn_code', code), [self._error_code, self._warn_code]

    def emergency_stop(self) -> None:
        """Stop (state 4), as the SDK's emergency_stop; the vacuum and errors are untouched."""
        self._state = STATE_STOPPED
        self._log('emergency_stop', CODE_OK)

    # ---- configuration -----------------------------------------------------------------------

    def set_tcp_offset(self, offset, is_radian=None, wait=True, **kwargs) -> int:
        """Set the TCP offset [x, y, z, roll, pitch, yaw] from the flange (mm, deg)."""
        code = self._gate('set_tcp_offset')
        if code == CODE_OK:
            x, y, z, roll, pitch, yaw = (float(v) for v in offset)
            angles = (roll, pitch, yaw) if is_radian else tuple(map(math.radians,
                                                                     (roll, pitch, yaw)))
            flange_from_tcp = np.eye(4)
            flange_from_tcp[:3, :3] = rotation_from_rpy(*angles)
            flange_from_tcp[:3, 3] = (x / 1000, y / 1000, z / 1000)
            self._kinematics = replace(self.world.kinematics, flange_from_tcp=flange_from_tcp)
        return self._log('set_tcp_offset', code, tuple(offset))

    def set_reduced_tcp_boundary(self, boundary) -> int:
        """Set [x_max, x_min, y_max, y_min, z_max, z_min] (mm), enforced in reduced/fence mode."""
        code = self._gate('set_reduced_tcp_boundary')
        if code == CODE_OK:
            self._boundary_mm = tuple(float(v) for v in boundary)
        return self._log('set_reduced_tcp_boundary', code, tuple(boundary))

    def set_reduced_mode(self, on) -> int:
        """Turn reduced mode on or off (the sim enforces only its TCP boundary)."""
        code = self._gate('set_reduced_mode')
        if code == CODE_OK:
            self._reduced = bool(on)
        return self._log('set_reduced_mode', code, on)

    def set_fence_mode(self, on) -> int:
        """Turn the safety boundary on or off."""
        code = self._gate('set_fence_mode')
        if code == CODE_OK:
            self._fence = bool(on)
        return self._log('set_fence_mode', code, on)

    # ---- motion ------------------------------------------------------------------------------

    def get_position(self, is_radian=None) -> tuple[int, list[float]]:
        """Return (code, [x, y, z, roll, pitch, yaw]) of the TCP, mm and degrees."""
        code = self._gate('get_position')
        pose = self._kinematics.tcp_pose(self.world.arm_joints())
        angles = rpy_from_rotation(pose[:3, :3])
        if not is_radian:
            angles = tuple(math.degrees(a) for a in angles)
        values = [*(pose[:3, 3] * 1000).tolist(), *angles]
        return self._log('get_position', code), values

    def _in_boundary(self, xyz_mm) -> bool:
        if not (self._reduced or self._fence):
            return True
        x_max, x_min, y_max, y_min, z_max, z_min = self._boundary_mm
        x, y, z = xyz_mm
        return x_min <= x <= x_max and y_min <= y <= y_max and z_min <= z <= z_max

    def set_position(self, x=None, y=None, z=None, roll=None, pitch=None, yaw=None,
                     radius=None, speed=None, mvacc=None, mvtime=None, relative=False,
                     is_radian=None, wait=False, timeout=None, **kwargs) -> int:
        """Move the TCP in a straight line to the pose (mm, deg); synchronous in sim time."""
        call = dict(x=x, y=y, z=z, roll=roll, pitch=pitch, yaw=yaw, speed=speed, wait=wait)
        code = self._gate('set_position')
        if code == CODE_OK and self._error_code:
            code = CODE_HAS_ERROR
        elif code == CODE_OK and not (self._enabled and self._state == STATE_READY
                                      and self._mode == MODE_POSITION):
            code = CODE_STATE_NOT_READY
        if code != CODE_OK:
            return self._log('set_position', code, **call)
        target = self._target_pose(x, y, z, roll, pitch, yaw, relative, is_radian)
        if not self._in_boundary(target[:3, 3] * 1000):
            return self._log('set_position', self._raise_controller_error(ERROR_SAFETY_BOUNDARY),
                             **call)
        if speed is not None:
            self._speed_mm_s = min(float(speed), self.config.max_speed_mm_s)
        start = self._kinematics.tcp_pose(self.world.arm_joints())
        try:
            path = cartesian_path(self._kinematics, self.world.arm_joints(), start, target,
                                  self.config.waypoint_mm / 1000,
                                  math.radians(self.config.waypoint_deg))
        except SimError:
            return self._log('set_position', self._raise_controller_error(ERROR_NO_IK), **call)
        duration_s = self._run(path, start, target)
        if wait and timeout is not None and duration_s > timeout:
            return self._log('set_position', CODE_WAIT_TIMEOUT, **call)
        return self._log('set_position', CODE_OK, **call)

    def _target_pose(self, x, y, z, roll, pitch, yaw, relative, is_radian) -> np.ndarray:
        code, current = self.get_position(is_radian=True)
        self.calls.pop()  # the internal read is not part of the caller's call log
        given = [x, y, z, roll, pitch, yaw]
        values = []
        for index, (value, now) in enumerate(zip(given, current, strict=True)):
            if value is None:
                values.append(0.0 if relative else now)
                continue
            value = float(value)
            if index >= 3 and not is_radian:
                value = math.radians(value)
            values.append(value)
        if relative:
            values = [a + b for a, b in zip(values, current, strict=True)]
        pose = np.eye(4)
        pose[:3, :3] = rotation_from_rpy(*values[3:])
        pose[:3, 3] = np.array(values[:3]) / 1000
        return pose

    def _run(self, path: np.ndarray, start: np.ndarray, target: np.ndarray) -> float:
        """Play a joint path (waypoints (N, 6)) at the current speed; returns its duration."""
        distance_m = float(np.linalg.norm(target[:3, 3] - start[:3, 3]))
        turn = np.clip((np.trace(target[:3, :3] @ start[:3, :3].T) - 1) / 2, -1.0, 1.0)
        duration_s = max(distance_m * 1000 / self._speed_mm_s,
                         math.degrees(math.acos(turn)) / self.config.angular_speed_deg_s)
        ticks = max(1, math.ceil(duration_s / TIME_STEP_S))
        positions = np.linspace(0.0, len(path) - 1, ticks + 1)[1:]
        previous = self.world.arm_joints()
        for position in positions:
            index = min(int(position), len(path) - 2)
            fraction = position - index
            joints = path[index] * (1 - fraction) + path[index + 1] * fraction
            self.world.set_arm_joints(joints, (joints - previous) / TIME_STEP_S)
            previous = joints
            self.world.step()
            self.sim_time_s += TIME_STEP_S
            for listener in self._tick_listeners:
                listener(self.sim_time_s)
        self.world.set_arm_joints(path[-1])
        if self._vacuum_on and self._constraint < 0:
            self._try_attach()
        return ticks * TIME_STEP_S

    # ---- suction -----------------------------------------------------------------------------

    def _cup_tip(self) -> tuple[np.ndarray, np.ndarray]:
        """Cup tip position and pointing direction (base frame), from the physical tool."""
        pose = self.world.kinematics.tcp_pose(self.world.arm_joints())
        return pose[:3, 3], pose[:3, 2]

    def _try_attach(self) -> None:
        """Grip a dynamic object whose surface lies within reach below the cup."""
        if self.world.config.effector is not Effector.SUCTION:
            return  # a spatula has no suction
        if self._suction_failures > 0:
            self._suction_failures -= 1
            return
        tip, direction = self._cup_tip()
        end = tip + direction * self.config.suction_reach_mm / 1000
        body, link, _, hit, _ = p.rayTest(tip.tolist(), end.tolist(),
                                          physicsClientId=self.world.client_id)[0]
        if body < 0 or body not in self.world.objects or (
                self.world.objects[body].role is not Role.DRAGGED):
            return
        cid = self.world.client_id
        # Constraint frames are relative to each body's centre of mass (link frame of inertia).
        flange_com = p.getLinkState(self.world.robot_id, self.world.flange_link,
                                    computeForwardKinematics=True, physicsClientId=cid)[:2]
        position, quat = p.getBasePositionAndOrientation(body, physicsClientId=cid)
        inverse_pos, inverse_quat = p.invertTransform(*flange_com)
        rel_pos, rel_quat = p.multiplyTransforms(inverse_pos, inverse_quat, position, quat)
        self._constraint = p.createConstraint(
            self.world.robot_id, self.world.flange_link, body, -1, p.JOINT_FIXED, (0, 0, 0),
            rel_pos, (0, 0, 0), rel_quat, physicsClientId=self.world.client_id)
        p.changeConstraint(self._constraint, maxForce=self.config.suction_force_n,
                           physicsClientId=self.world.client_id)
        self.held_body = body

    def _release(self) -> None:
        if self._constraint >= 0:
            p.removeConstraint(self._constraint, physicsClientId=self.world.client_id)
        self._constraint = -1
        self.held_body = -1

    def set_vacuum_gripper(self, on, wait=False, timeout=3, delay_sec=None, sync=True,
                           hardware_version=1) -> int:
        """Switch the suction; with wait=True and on, 41 unless something is picked."""
        code = self._gate('set_vacuum_gripper')
        if code == CODE_OK:
            self._vacuum_on = bool(on)
            if on and self._constraint < 0:
                self._try_attach()
            elif not on:
                self._release()
            if on and wait and self._constraint < 0:
                code = CODE_SUCTION_TIMEOUT
        return self._log('set_vacuum_gripper', code, on, wait=wait)

    def get_vacuum_gripper(self, hardware_version=1) -> tuple[int, int]:
        """Return (code, state): -1 off, 0 on and nothing picked, 1 picked."""
        code = self._gate('get_vacuum_gripper')
        if not self._vacuum_on:
            state = VACUUM_OFF
        else:
            state = VACUUM_PICKED if self._constraint >= 0 else VACUUM_NOT_PICKED
        return self._log('get_vacuum_gripper', code), state
