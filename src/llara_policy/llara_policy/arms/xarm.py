"""`XArm`: xarm-python-sdk's `XArmAPI` behind the `Arm` protocol, with connect, start-up, shutdown.

The SDK is imported in `connect` only (heavy, and it prints on import). Units are the SDK's mm
and degrees: the SDK object is built with is_radian=False and every call taking an angle passes
is_radian explicitly. SDK results are normalized to the protocol's shapes in one place (`_code`,
`_code_value`); every code the adapter itself gets goes through `check_code`. Start-up and the
controller-side safety follow ros2-anchors.md section 1.1 (xarm-python-sdk 1.18.4 source).
"""
from collections.abc import Callable
from dataclasses import dataclass
import ipaddress
import math
import socket
import time

from llara_policy.arms.base import (
    CODE_OK,
    CODE_STATE_NOT_READY,
    STATE_MOVING,
    STATE_READY,
    VACUUM_OFF,
    check_code,
)
from llara_policy.arms.primitives import enable
from llara_policy.errors import ArmError, ConfigError, ControllerError, NotConnectedError
from llara_policy.types import check_int, check_real
from llara_policy.workspace import XARM_MAX_SPEED_MM_S, Workspace

# Seconds between connection attempts; each SDK attempt has its own fixed 1 s socket timeout
# (xarm/core/comm/socket_port.py), so `connect_timeout_s` bounds the attempts, not one socket.
CONNECT_RETRY_S = 0.5
# Largest rated payload of the arms the SDK drives (xArm 6 and UFACTORY 850 datasheets: 5 kg).
MAX_PAYLOAD_KG = 5.0


def _check_numbers(name: str, values, lengths: tuple[int, ...]) -> tuple[float, ...]:
    if isinstance(values, (str, bytes)) or not hasattr(values, '__len__') or (
            len(values) not in lengths):
        raise ConfigError(f'{name} must hold {" or ".join(map(str, lengths))} numbers, '
                          f'got {values!r}')
    return tuple(check_real(f'{name}[{i}]', v, error=ConfigError) for i, v in enumerate(values))


@dataclass(frozen=True)
class XArmConfig:
    """Connection and controller-side safety settings of a real xArm (mm, mm/s, deg, kg, s).

    `robot_ip`: the control box's IPv4 address (the SDK takes anything else for a serial port).
    `connect_timeout_s`: keep retrying the connection this long (0: one attempt).
    `collision_sensitivity`: 1 (least) to 5; 3 is UFACTORY's default (xarm_ros#248). 0 would
    disable collision detection and is refused (flagged unsafe in gello_software#23).
    `reduced_mode`: turn the controller's reduced mode on, capping the TCP speed at
    `reduced_max_tcp_speed_mm_s`; when False the controller's reduced mode is left as it is.
    `tcp_offset_mm_deg`: () keeps the controller's saved TCP offset, else [x, y, z, roll, pitch,
    yaw] from the flange. `tcp_load`: () keeps the saved load, else [kg, cog x, y, z (mm)].
    `vacuum_hardware_version`: 1 plug-in, 2 contact connection (the SDK's hardware_version).
    `vacuum_off_on_shutdown`: switch the suction off at shutdown (drops a held object).

    Args:
        robot_ip: the control box's IPv4 address.
        connect_timeout_s: keep retrying the connection this long (s; 0: one attempt).
        collision_sensitivity: 1 (least) to 5 (0, detection off, is refused).
        reduced_mode: turn the controller's reduced mode on (caps the TCP speed).
        reduced_max_tcp_speed_mm_s: the reduced mode's TCP speed cap (mm/s).
        tcp_offset_mm_deg: [] keeps the controller's TCP offset, else [x, y, z, roll, pitch,
            yaw] from the flange (mm, deg).
        tcp_load: [] keeps the saved load, else [kg, cog x, y, z (mm)].
        vacuum_hardware_version: 1 plug-in, 2 contact-connected vacuum gripper.
        vacuum_off_on_shutdown: switch the suction off at shutdown (drops a held object).
    """

    robot_ip: str = '192.168.1.185'
    connect_timeout_s: float = 5.0
    collision_sensitivity: int = 3
    reduced_mode: bool = False
    reduced_max_tcp_speed_mm_s: float = 250.0
    tcp_offset_mm_deg: tuple[float, ...] = ()
    tcp_load: tuple[float, ...] = ()
    vacuum_hardware_version: int = 1
    vacuum_off_on_shutdown: bool = False

    def __post_init__(self):
        try:  # a string: IPv4Address would also take the int 192 as 0.0.0.192
            ipaddress.IPv4Address(self.robot_ip if isinstance(self.robot_ip, str) else None)
        except (ValueError, TypeError):
            raise ConfigError(f'XArmConfig.robot_ip must be an IPv4 address such as '
                              f'192.168.1.185, got {self.robot_ip!r}') from None
        check_real('XArmConfig.connect_timeout_s', self.connect_timeout_s, 0.0, 600.0,
                   error=ConfigError)
        check_int('XArmConfig.collision_sensitivity', self.collision_sensitivity, 1, 5,
                  error=ConfigError)
        check_real('XArmConfig.reduced_max_tcp_speed_mm_s', self.reduced_max_tcp_speed_mm_s,
                   1.0, XARM_MAX_SPEED_MM_S, error=ConfigError)
        check_int('XArmConfig.vacuum_hardware_version', self.vacuum_hardware_version, 1, 2,
                  error=ConfigError)
        for name in ('reduced_mode', 'vacuum_off_on_shutdown'):
            if type(getattr(self, name)) is not bool:
                raise ConfigError(f'XArmConfig.{name} must be true or false, '
                                  f'got {getattr(self, name)!r}')
        offset = _check_numbers('XArmConfig.tcp_offset_mm_deg', self.tcp_offset_mm_deg, (0, 6))
        load = _check_numbers('XArmConfig.tcp_load', self.tcp_load, (0, 4))
        if load:
            check_real('XArmConfig.tcp_load[0] (kg)', load[0], 0.0, MAX_PAYLOAD_KG,
                       error=ConfigError)
        object.__setattr__(self, 'tcp_offset_mm_deg', offset)
        object.__setattr__(self, 'tcp_load', load)


def _code(result) -> int:
    """Return the SDK's answer as an int code (`set_fence_mode` gives the reply [code, ...])."""
    return int(result[0]) if isinstance(result, (tuple, list)) else int(result)


def _code_value(result, default):
    """(code, value) of an SDK getter; `default` when the code is not 0.

    The SDK's value is only valid with code 0; a disconnected SDK returns the message
    'xArm is not connect' in its place, which must never reach a caller as a value.
    """
    code = _code(result)
    return code, (result[1] if code == CODE_OK else default)


def _degrees(is_radian):
    """Return is_radian for the SDK: the protocol speaks degrees, so None becomes False."""
    return False if is_radian is None else is_radian


class XArm:
    """An `Arm` over a connected `XArmAPI`; build it with `connect(config)`."""

    def __init__(self, api, config: XArmConfig):
        self._api = api
        self.config = config

    # ---- status --------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """Whether the SDK's socket to the control box is up."""
        return bool(self._api.connected)

    @property
    def error_code(self) -> int:
        """The controller's error code, asked of the controller (see get_err_warn_code)."""
        return self.get_err_warn_code()[1][0]

    @property
    def warn_code(self) -> int:
        """The controller's warning code, asked of the controller."""
        return self.get_err_warn_code()[1][1]

    @property
    def state(self) -> int:
        """Robot state as the SDK last saw it: 1 moving, 2 ready, 3 paused, 4 stopped."""
        return self._api.state

    @property
    def mode(self) -> int:
        """Control mode as the SDK last saw it."""
        return self._api.mode

    def get_err_warn_code(self, show=False, lang='en') -> tuple[int, list[int]]:
        """Return (code, [error_code, warn_code]) read from the controller now.

        The SDK's `error_code` property is the report socket's last value, which can lag the
        reply that just returned code 1; this query cannot. Without an answer (code != 0) the
        SDK's last reported codes are returned with the code.
        """
        code, codes = _code_value(self._api.get_err_warn_code(show=show, lang=lang), None)
        if codes is None:
            codes = [self._api.error_code, self._api.warn_code]
        return code, [int(codes[0]), int(codes[1])]

    def get_state(self) -> tuple[int, int]:
        """Return (code, state)."""
        return _code_value(self._api.get_state(), self._api.state)

    # ---- enable, mode, state, errors ----------------------------------------------------------

    def motion_enable(self, enable=True, servo_id=None) -> int:
        """Enable (or disable) the joint motors."""
        return _code(self._api.motion_enable(enable=enable, servo_id=servo_id))

    def set_mode(self, mode=0, detection_param=0) -> int:
        """Select the control mode; set_state(0) must follow."""
        return _code(self._api.set_mode(mode=mode, detection_param=detection_param))

    def set_state(self, state=0) -> int:
        """Set 0 (motion), 3 (pause), 4 (stop) or 6 (deceleration stop)."""
        return _code(self._api.set_state(state=state))

    def clean_error(self) -> int:
        """Clear the controller error; motion_enable(True) and set_state(0) must follow."""
        return _code(self._api.clean_error())

    def clean_warn(self) -> int:
        """Clear the controller warning."""
        return _code(self._api.clean_warn())

    def emergency_stop(self) -> None:
        """Stop now: the SDK's emergency stop (state 4, retried up to 3 s); errors stay."""
        self._api.emergency_stop()

    # ---- motion and tool -----------------------------------------------------------------------

    def set_position(self, x=None, y=None, z=None, roll=None, pitch=None, yaw=None,
                     radius=None, speed=None, mvacc=None, mvtime=None, relative=False,
                     is_radian=None, wait=False, timeout=None, **kwargs) -> int:
        """Straight-line TCP move to a base-frame pose (mm, deg unless is_radian)."""
        return _code(self._api.set_position(
            x=x, y=y, z=z, roll=roll, pitch=pitch, yaw=yaw, radius=radius, speed=speed,
            mvacc=mvacc, mvtime=mvtime, relative=relative, is_radian=_degrees(is_radian),
            wait=wait, timeout=timeout, **kwargs))

    def get_position(self, is_radian=None) -> tuple[int, list[float]]:
        """Return (code, [x, y, z, roll, pitch, yaw]) (mm, deg); NaNs when code != 0."""
        code, pose = _code_value(self._api.get_position(is_radian=_degrees(is_radian)),
                                 [math.nan] * 6)
        return code, [float(v) for v in pose]

    def set_vacuum_gripper(self, on, wait=False, timeout=3, delay_sec=None, sync=True,
                           hardware_version=None) -> int:
        """Switch the suction; hardware_version defaults to the configured one."""
        if hardware_version is None:
            hardware_version = self.config.vacuum_hardware_version
        return _code(self._api.set_vacuum_gripper(
            on, wait=wait, timeout=timeout, delay_sec=delay_sec, sync=sync,
            hardware_version=hardware_version))

    def get_vacuum_gripper(self, hardware_version=None) -> tuple[int, int]:
        """Return (code, state): -1 off, 0 on and nothing picked, 1 picked."""
        if hardware_version is None:
            hardware_version = self.config.vacuum_hardware_version
        code, state = _code_value(
            self._api.get_vacuum_gripper(hardware_version=hardware_version), VACUUM_OFF)
        return code, int(state)

    # ---- controller-side configuration ---------------------------------------------------------

    def set_tcp_offset(self, offset, is_radian=None, wait=True, **kwargs) -> int:
        """Set the TCP offset [x, y, z, roll, pitch, yaw] from the flange (mm, deg)."""
        return _code(self._api.set_tcp_offset(list(offset), is_radian=_degrees(is_radian),
                                              wait=wait, **kwargs))

    def set_reduced_tcp_boundary(self, boundary) -> int:
        """Set the safety box [x_max, x_min, y_max, y_min, z_max, z_min] (mm)."""
        return _code(self._api.set_reduced_tcp_boundary(list(boundary)))

    def set_reduced_mode(self, on) -> int:
        """Turn reduced mode on or off."""
        return _code(self._api.set_reduced_mode(on))

    def set_fence_mode(self, on) -> int:
        """Turn the safety boundary (fence) on or off."""
        return _code(self._api.set_fence_mode(on))

    # ---- start-up and shutdown -----------------------------------------------------------------

    def start_up(self, workspace: Workspace) -> None:
        """Make the arm ready to move inside `workspace`, with the controller-side safety on.

        `primitives.enable` (clean warning and error, the workspace box as the reduced TCP
        boundary, fence on, motors on, mode 0, state 0); then collision sensitivity, TCP
        offset and load if configured, reduced mode if configured (refused with ConfigError
        before any call if the workspace allows faster speeds than its cap), and state 0
        again (the SDK wants it after configuration changes). The SDK answers 0 to non-motion
        calls even while the controller holds an error, so the controller is asked at the end:
        an error raises ControllerError with its code, a state other than ready or moving
        raises ArmError.
        """
        c = self.config
        if c.reduced_mode and workspace.max_speed_mm_s > c.reduced_max_tcp_speed_mm_s:
            raise ConfigError(f'Workspace.max_speed_mm_s ({workspace.max_speed_mm_s}) exceeds '
                              'XArmConfig.reduced_max_tcp_speed_mm_s '
                              f'({c.reduced_max_tcp_speed_mm_s}): the envelope would allow '
                              'speeds the controller caps')
        enable(self, workspace)
        check_code(self._api.set_collision_sensitivity(c.collision_sensitivity),
                   f'set_collision_sensitivity({c.collision_sensitivity})', self)
        if c.tcp_offset_mm_deg:
            check_code(self.set_tcp_offset(c.tcp_offset_mm_deg), 'set_tcp_offset', self)
        if c.tcp_load:
            check_code(self._api.set_tcp_load(c.tcp_load[0], list(c.tcp_load[1:]), wait=True),
                       'set_tcp_load', self)
        if c.reduced_mode:
            check_code(self._api.set_reduced_max_tcp_speed(c.reduced_max_tcp_speed_mm_s),
                       'set_reduced_max_tcp_speed', self)
            check_code(self.set_reduced_mode(True), 'set_reduced_mode(on)', self)
        check_code(self.set_state(state=0), 'set_state(0)', self)
        code, (error_code, _) = self.get_err_warn_code()
        check_code(code, 'get_err_warn_code', self)
        if error_code:
            raise ControllerError(f'start-up: the controller holds error C{error_code} '
                                  '(clear its cause, then start up again)', error_code)
        code, state = self.get_state()
        check_code(code, 'get_state', self)
        if state not in (STATE_MOVING, STATE_READY):
            raise ArmError(f'start-up: the arm is in state {state}, not ready to move',
                           CODE_STATE_NOT_READY)

    def shutdown(self) -> tuple[str, ...]:
        """Stop motion, optionally switch the suction off, disconnect; never raises.

        Returns what went wrong (empty when all went well), for the caller to report. With the
        connection already lost, nothing can be stopped: that is reported and the SDK's
        sockets are still closed.
        """
        problems = []

        def attempt(what: str, call) -> None:
            try:
                check_code(call(), what, self)
            except ArmError as error:
                problems.append(str(error))
            except Exception as error:  # the SDK raises bare Exceptions on socket failures
                problems.append(f'{what}: {type(error).__name__}: {error}')

        if self.connected:
            attempt('set_state(4) (stop)', lambda: self.set_state(state=4))
            if self.config.vacuum_off_on_shutdown:
                attempt('set_vacuum_gripper(off)',
                        lambda: self.set_vacuum_gripper(False, wait=False, sync=False))
        else:
            problems.append(f'xArm at {self.config.robot_ip}: connection already lost at '
                            'shutdown, motion and suction could not be stopped from here')
        attempt('disconnect', lambda: self._api.disconnect() or CODE_OK)
        return tuple(problems)


def _open(api) -> str:
    """One SDK connection attempt; returns why it failed ('' when connected).

    The SDK sets the process-wide socket default timeout to 1 s when it opens a socket
    (socket_port.py); the previous default is restored so the rest of the process keeps its own.
    """
    previous = socket.getdefaulttimeout()
    try:
        api.connect()
    except Exception as error:  # the SDK raises bare Exception('connect socket failed')
        return str(error) or type(error).__name__
    finally:
        socket.setdefaulttimeout(previous)
    return '' if api.connected else 'not connected after connect()'


def connect(config: XArmConfig = XArmConfig(), api_factory=None,
            on_error_warn: Callable[[dict], None] | None = None) -> XArm:
    """Connect to the xArm at `config.robot_ip`; NotConnectedError naming the ip if it fails.

    `api_factory` builds the SDK object (`xarm.wrapper.XArmAPI` by default; tests pass a
    stand-in). As in the SDK's examples: built with do_not_open=True, the error/warning
    callback (`on_error_warn` gets the SDK's {'error_code', 'warn_code'} dict) registered,
    then `connect()`. Attempts repeat every CONNECT_RETRY_S until `connect_timeout_s`.
    """
    if api_factory is None:
        from xarm.wrapper import XArmAPI  # the one import of the SDK (arms/ layer only)
        api_factory = XArmAPI
    api = api_factory(config.robot_ip, is_radian=False, do_not_open=True)
    if on_error_warn is not None:
        api.register_error_warn_changed_callback(on_error_warn)
    deadline = time.monotonic() + config.connect_timeout_s
    while True:
        reason = _open(api)
        if not reason:
            return XArm(api, config)
        if time.monotonic() + CONNECT_RETRY_S > deadline:
            break
        time.sleep(CONNECT_RETRY_S)
    raise NotConnectedError(f'xArm at {config.robot_ip}: cannot connect ({reason}; '
                            f'XArmConfig.connect_timeout_s={config.connect_timeout_s})')
