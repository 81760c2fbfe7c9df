"""The `Arm` protocol (the xarm-python-sdk `XArmAPI` subset the executor uses) and its codes.

Every arm, real or simulated, speaks the SDK's language: millimetres and degrees, integer return
codes, controller `error_code` / `warn_code`, enable / mode / state. `check_code` is the one place
that turns a return code into a typed `ArmError`, so no caller can forget to check one. Codes and
meanings: xArm-Developer/xArm-Python-SDK doc/api/xarm_api_code.md (ros2-anchors.md section 1.1)
and `xarm/x3/code.py` of xarm-python-sdk 1.18.4. `TableActuator` is the other kind of arm: one
that runs a whole base-frame pick-and-place (or push) itself, as VIMA-Bench's env.step does.
"""
from typing import Protocol, runtime_checkable

from llara_policy.errors import ArmError, ControllerError, NotConnectedError
from llara_policy.execution import TableAction
from llara_policy.types import Effector

# API return codes (xarm/x3/code.py APIState, xarm/core/config/x_config.py UxbusState).
CODE_OK = 0
CODE_NOT_CONNECTED = -1
CODE_NOT_READY = -2
CODE_EMERGENCY_STOP = -9
CODE_HAS_ERROR = 1  # the controller holds an uncleared error (see error_code)
CODE_HAS_WARN = 2
CODE_STATE_NOT_READY = 9
CODE_SUCTION_TIMEOUT = 41  # set_vacuum_gripper(wait=True) saw no 'picked' before its timeout
CODE_WAIT_TIMEOUT = 100
API_CODES = {
    CODE_NOT_CONNECTED: 'not connected',
    CODE_NOT_READY: 'not ready (motion not enabled or state not set)',
    -6: 'Cartesian limit', -7: 'joint limit', -8: 'out of range',
    CODE_EMERGENCY_STOP: 'emergency stop',
    CODE_HAS_ERROR: 'controller has an uncleared error',
    CODE_HAS_WARN: 'controller has an uncleared warning',
    3: 'response timeout',
    CODE_STATE_NOT_READY: 'state not ready to move',
    CODE_SUCTION_TIMEOUT: 'suction wait timeout (nothing picked)',
    CODE_WAIT_TIMEOUT: 'wait-finish timeout',
    102: 'end-effector error', 103: 'end effector not enabled',
}
# Controller error codes (doc/api/xarm_api_code.md, "Controller Error Code").
ERROR_SELF_COLLISION = 22
ERROR_JOINT_LIMIT = 23
ERROR_COLLISION = 31
ERROR_SAFETY_BOUNDARY = 35
ERROR_NO_IK = 40
CONTROLLER_ERRORS = {
    1: 'emergency stop button', 2: 'emergency IO of the control box', 3: 'three-state switch',
    ERROR_SELF_COLLISION: 'self-collision', ERROR_JOINT_LIMIT: 'joint angle exceeds limit',
    24: 'speed exceeds limit', ERROR_COLLISION: 'collision (abnormal current)',
    ERROR_SAFETY_BOUNDARY: 'safety boundary limit', 38: 'abnormal joint angle',
    ERROR_NO_IK: 'no inverse kinematics solution',
}
# Robot states (get_state) and modes (set_mode).
STATE_MOVING = 1
STATE_READY = 2  # "sleeping": idle, ready for a command
STATE_PAUSED = 3
STATE_STOPPED = 4
MODE_POSITION = 0
# get_vacuum_gripper states.
VACUUM_OFF = -1
VACUUM_NOT_PICKED = 0
VACUUM_PICKED = 1


@runtime_checkable
class Arm(Protocol):
    """The XArmAPI calls and properties the executor and the motion primitives use.

    Signatures match xarm-python-sdk's `XArmAPI` (mm, degrees unless `is_radian`), so the real
    SDK object satisfies this protocol as is and a sim arm can stand in for it.
    """

    @property
    def connected(self) -> bool:
        """Whether the arm is connected (every call returns -1 otherwise)."""

    @property
    def error_code(self) -> int:
        """The controller's current error code (0: none)."""

    @property
    def warn_code(self) -> int:
        """The controller's current warning code (0: none)."""

    @property
    def state(self) -> int:
        """Robot state: 1 moving, 2 ready, 3 paused, 4 stopped."""

    @property
    def mode(self) -> int:
        """Control mode: 0 position (the only mode the executor uses)."""

    def motion_enable(self, enable=True, servo_id=None) -> int:
        """Enable (or disable) the joint motors; returns a code."""

    def set_mode(self, mode=0, detection_param=0) -> int:
        """Select the control mode; follow it with set_state(0)."""

    def set_state(self, state=0) -> int:
        """Set 0 (motion), 3 (pause), 4 (stop) or 6 (deceleration stop)."""

    def get_state(self) -> tuple[int, int]:
        """Return (code, state)."""

    def clean_error(self) -> int:
        """Clear the controller error; motion_enable(True) and set_state(0) must follow."""

    def clean_warn(self) -> int:
        """Clear the controller warning."""

    def get_err_warn_code(self, show=False, lang='en') -> tuple[int, list[int]]:
        """Return (code, [error_code, warn_code])."""

    def set_position(self, x=None, y=None, z=None, roll=None, pitch=None, yaw=None,
                     radius=None, speed=None, mvacc=None, mvtime=None, relative=False,
                     is_radian=None, wait=False, timeout=None, **kwargs) -> int:
        """Move the TCP in a straight line to a base-frame pose (mm, deg); returns a code."""

    def get_position(self, is_radian=None) -> tuple[int, list[float]]:
        """Return (code, [x, y, z, roll, pitch, yaw]) of the TCP (mm, deg)."""

    def set_vacuum_gripper(self, on, wait=False, timeout=3, delay_sec=None, sync=True,
                           hardware_version=1) -> int:
        """Switch the suction on/off; with wait, until picked (41 on timeout)."""

    def get_vacuum_gripper(self, hardware_version=1) -> tuple[int, int]:
        """Return (code, state): -1 off, 0 on but nothing picked, 1 picked."""

    def set_tcp_offset(self, offset, is_radian=None, wait=True, **kwargs) -> int:
        """Set the TCP offset [x, y, z, roll, pitch, yaw] from the flange (mm, deg)."""

    def set_reduced_tcp_boundary(self, boundary) -> int:
        """Set the safety box [x_max, x_min, y_max, y_min, z_max, z_min] (mm)."""

    def set_reduced_mode(self, on) -> int:
        """Turn reduced mode (speed limits and the boundary) on or off."""

    def set_fence_mode(self, on) -> int:
        """Turn the safety boundary (fence) on or off."""

    def emergency_stop(self) -> None:
        """Stop all motion now (state 4); errors are not cleared."""


@runtime_checkable
class TableActuator(Protocol):
    """An arm that executes one whole table action in one call (VIMA-Bench's env.step).

    The executor maps and checks the action against its `Workspace` before the call, exactly
    as for an `Arm`; the actuator owns the motion in between (its own approach, grasp and
    release), so the executor plans no primitive for it and enables nothing.
    """

    def execute_table_action(self, action: TableAction, effector: Effector) -> None:
        """Run the pick-and-place (suction) or push (spatula) of `action`, base frame, metres.

        Returns when the motion is over. Raises a LlaraError when it cannot run or fails
        (ArmError for an arm, e.g. code 102 for an effector it does not carry; SimError for a
        simulator that cannot step); no other exception escapes.
        """

    def emergency_stop(self) -> None:
        """Stop any motion now (an actuator whose action is atomic has none between calls)."""


def describe_code(code: int, error_code: int = 0) -> str:
    """Return a readable meaning of an API return code (and the controller error, if any)."""
    text = API_CODES.get(code, 'unknown code')
    if error_code:
        text += f'; controller error C{error_code}: ' + CONTROLLER_ERRORS.get(
            error_code, 'see xarm_api_code.md')
    return text


def check_code(code, what: str, arm: Arm) -> None:
    """Raise a typed ArmError unless `code` is 0: the ONE place SDK return codes become errors.

    `what` names the call for the message. Code 1 ("uncleared controller error") raises
    ControllerError carrying the arm's `error_code` (e.g. 35, safety boundary); -1 raises
    NotConnectedError; any other non-zero code raises ArmError with that code. A getter's
    `(code, value)` result may be passed as is, and so may a raw `[code, ...]` list (the SDK's
    `set_fence_mode` returns the controller's whole reply, not its code).
    """
    if isinstance(code, (tuple, list)):
        code = code[0]
    if code == CODE_OK:
        return
    if code == CODE_NOT_CONNECTED:
        raise NotConnectedError(f'{what}: arm is not connected')
    if code == CODE_HAS_ERROR:
        error_code = arm.error_code
        raise ControllerError(f'{what} failed: {describe_code(code, error_code)}', error_code)
    raise ArmError(f'{what} failed: {describe_code(code)}', code)
