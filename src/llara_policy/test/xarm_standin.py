"""`XArmStandIn`: an object shaped like xarm-python-sdk's `XArmAPI` that records every call.

It stands in for the SDK in the adapter's tests (no robot, no socket). Its SDK-named methods
and properties have the installed `XArmAPI`'s exact signatures (test_xarm.py checks them with
`inspect`); its answers mirror the SDK 1.18.4 source where the adapter depends on them:
`connect()` raises a bare Exception when the socket fails, a disconnected SDK answers -1 to a
setter and (-1, 'xArm is not connect') to a getter, `set_fence_mode` returns the controller's
whole reply as a list. Test hooks (names in HOOKS) queue codes and faults.
"""
from dataclasses import dataclass, field

NOT_CONNECTED = -1
HAS_ERROR = 1
NOT_CONNECTED_TEXT = 'xArm is not connect'  # the SDK's own spelling (x3/decorator.py)
# Attributes that are test hooks, not SDK API (everything else public must match XArmAPI).
HOOKS = ('calls', 'fail', 'refuse_connects', 'drop_connection', 'called', 'motion_calls',
         'vacuum_states', 'init_args')
# The SDK's moving calls: what "no motion" means in a test.
MOTION_METHODS = ('set_position', 'set_vacuum_gripper', 'motion_enable', 'set_state',
                  'set_mode', 'set_tcp_offset', 'set_tcp_load')


@dataclass(frozen=True)
class Call:
    """One call the stand-in received: method name, positional and keyword arguments."""

    name: str
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)


class XArmStandIn:
    """Records calls, answers with configurable codes, keeps a minimal controller state."""

    def __init__(self, port=None, is_radian=False, do_not_open=False, **kwargs):
        self.init_args = Call('__init__', (port,), dict(is_radian=is_radian,
                                                        do_not_open=do_not_open, **kwargs))
        self.calls: list[Call] = []
        self.refuse_connects = 0  # how many connect() attempts raise, as a dead socket does
        self.vacuum_states = [1]  # get_vacuum_gripper answers, in order; the last repeats
        self._faults: list[tuple[str, int, int]] = []
        self._connected = False
        self._error_code = 0
        self._warn_code = 0
        self._state = 4
        self._mode = 0
        self._position = [201.5, 0.0, 140.5, 180.0, 0.0, 0.0]  # the SDK's initial pose, deg
        if not do_not_open:
            self.connect()

    # ---- hooks -----------------------------------------------------------------------------

    def fail(self, method: str, code: int, error_code: int = 0, times: int = 1) -> None:
        """Make the next `times` calls of `method` return `code` (and set the controller error)."""
        self._faults.extend([(method, code, error_code)] * times)

    def drop_connection(self) -> None:
        """The socket dies: from now on calls answer as a disconnected SDK does."""
        self._connected = False

    def called(self) -> list[str]:
        """Names of the calls received, in order."""
        return [call.name for call in self.calls]

    def motion_calls(self) -> list[Call]:
        """The calls that could move the arm or its tool."""
        return [call for call in self.calls if call.name in MOTION_METHODS]

    def _answer(self, name: str, *args, **kwargs) -> int:
        self.calls.append(Call(name, args, kwargs))
        if not self._connected:
            return NOT_CONNECTED
        for index, (method, code, error_code) in enumerate(self._faults):
            if method == name:
                del self._faults[index]
                if error_code:
                    self._error_code = error_code
                    self._state = 4
                return code
        return 0

    # ---- connection ------------------------------------------------------------------------

    @property
    def connected(self):
        return self._connected

    def connect(self, port=None, baudrate=None, timeout=None, axis=None, **kwargs):
        self.calls.append(Call('connect', (), dict(port=port)))
        if self.refuse_connects > 0:
            self.refuse_connects -= 1
            raise Exception('connect socket failed')
        self._connected = True

    def disconnect(self):
        self.calls.append(Call('disconnect'))
        self._connected = False

    def register_error_warn_changed_callback(self, callback=None):
        self.calls.append(Call('register_error_warn_changed_callback', (callback,)))
        return True

    # ---- status ----------------------------------------------------------------------------

    @property
    def error_code(self):
        return self._error_code

    @property
    def warn_code(self):
        return self._warn_code

    @property
    def state(self):
        return self._state

    @property
    def mode(self):
        return self._mode

    def get_state(self):
        code = self._answer('get_state')
        return (code, self._state) if code != NOT_CONNECTED else (code, NOT_CONNECTED_TEXT)

    def get_err_warn_code(self, show=False, lang='en'):
        code = self._answer('get_err_warn_code', show=show, lang=lang)
        if code == NOT_CONNECTED:
            return code, NOT_CONNECTED_TEXT
        return code, [self._error_code, self._warn_code]

    # ---- enable, mode, state, errors --------------------------------------------------------

    def motion_enable(self, enable=True, servo_id=None):
        return self._answer('motion_enable', enable=enable, servo_id=servo_id)

    def set_mode(self, mode=0, detection_param=0):
        code = self._answer('set_mode', mode=mode, detection_param=detection_param)
        if code == 0:
            self._mode = mode
        return code

    def set_state(self, state=0):
        code = self._answer('set_state', state=state)
        if code == 0:
            self._state = 4 if state in (4, 6) else (2 if not self._error_code else self._state)
        return code

    def clean_error(self):
        code = self._answer('clean_error')
        if code == 0:
            self._error_code = 0
        return code

    def clean_warn(self):
        code = self._answer('clean_warn')
        if code == 0:
            self._warn_code = 0
        return code

    def emergency_stop(self):
        self.calls.append(Call('emergency_stop'))
        self._state = 4

    # ---- motion and tool --------------------------------------------------------------------

    def set_position(self, x=None, y=None, z=None, roll=None, pitch=None, yaw=None, radius=None,
                     speed=None, mvacc=None, mvtime=None, relative=False, is_radian=None,
                     wait=False, timeout=None, **kwargs):
        code = self._answer('set_position', x=x, y=y, z=z, roll=roll, pitch=pitch, yaw=yaw,
                            radius=radius, speed=speed, mvacc=mvacc, mvtime=mvtime,
                            relative=relative, is_radian=is_radian, wait=wait, timeout=timeout,
                            **kwargs)
        if code == 0:
            self._position = [old if new is None else float(new) for old, new in
                              zip(self._position, (x, y, z, roll, pitch, yaw), strict=True)]
        return code

    def get_position(self, is_radian=None):
        code = self._answer('get_position', is_radian=is_radian)
        return (code, list(self._position)) if code != NOT_CONNECTED else (
            code, NOT_CONNECTED_TEXT)

    def set_vacuum_gripper(self, on, wait=False, timeout=3, delay_sec=None, sync=True,
                           hardware_version=1):
        return self._answer('set_vacuum_gripper', on, wait=wait, timeout=timeout,
                            delay_sec=delay_sec, sync=sync, hardware_version=hardware_version)

    def get_vacuum_gripper(self, hardware_version=1):
        code = self._answer('get_vacuum_gripper', hardware_version=hardware_version)
        if code == NOT_CONNECTED:
            return code, NOT_CONNECTED_TEXT
        state = self.vacuum_states.pop(0) if len(self.vacuum_states) > 1 else (
            self.vacuum_states[0])
        return code, state

    # ---- controller-side configuration ------------------------------------------------------

    def set_tcp_offset(self, offset, is_radian=None, wait=True, **kwargs):
        return self._answer('set_tcp_offset', offset, is_radian=is_radian, wait=wait, **kwargs)

    def set_tcp_load(self, weight, center_of_gravity, wait=False, **kwargs):
        return self._answer('set_tcp_load', weight, center_of_gravity, wait=wait, **kwargs)

    def set_collision_sensitivity(self, value, wait=True):
        return self._answer('set_collision_sensitivity', value, wait=wait)

    def set_reduced_tcp_boundary(self, boundary):
        return self._answer('set_reduced_tcp_boundary', boundary)

    def set_reduced_mode(self, on):
        return self._answer('set_reduced_mode', on)

    def set_reduced_max_tcp_speed(self, speed):
        return self._answer('set_reduced_max_tcp_speed', speed)

    def set_fence_mode(self, on):
        code = self._answer('set_fence_mode', on)
        # The SDK returns the controller's whole reply; its decorator answers a bare -1.
        return code if code == NOT_CONNECTED else [code]
