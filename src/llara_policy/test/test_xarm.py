"""The xArm adapter over a recording stand-in of `XArmAPI`, checked against the installed SDK.

The stand-in's SDK-named methods must have the installed SDK's signatures (so it cannot drift),
and the adapter may call only those. Then: connecting (failure names the ip), the start-up's
order and arguments, every non-zero code as its typed error, units (mm, degrees), a whole
pick-and-place as the exact SDK calls, no call at all for a target outside the workspace, and
a shutdown that reports instead of raising, also with the connection gone.
"""
import inspect
import math
from pathlib import Path
import re
import socket

import pytest
from xarm.wrapper import XArmAPI
from xarm_standin import HOOKS, Call, XArmStandIn

from llara_policy.arms.base import ERROR_SAFETY_BOUNDARY, VACUUM_OFF, Arm
from llara_policy.arms.primitives import pick_and_place
from llara_policy.arms.xarm import XArm, XArmConfig, connect
from llara_policy.errors import (
    ArmError,
    ConfigError,
    ControllerError,
    NotConnectedError,
    UnsafeTargetError,
)
from llara_policy.workspace import Workspace

ADAPTER_SOURCE = Path(__file__).resolve().parents[1] / 'llara_policy' / 'arms' / 'xarm.py'
IP = '192.168.1.185'
WS = Workspace()
# The start-up calls with default settings, in order (ros2-anchors.md section 1.1).
START_UP = ['clean_warn', 'clean_error', 'set_reduced_tcp_boundary', 'set_fence_mode',
            'motion_enable', 'set_mode', 'set_state', 'set_collision_sensitivity',
            'set_state', 'get_err_warn_code', 'get_state']


def standin_api() -> list[str]:
    """The stand-in's public attributes that claim to be SDK API (its test hooks excluded)."""
    return [name for name in vars(XArmStandIn)
            if (not name.startswith('_') or name == '__init__') and name not in HOOKS]


QUICK = XArmConfig(connect_timeout_s=0.0)  # one connection attempt


def connected(config: XArmConfig = QUICK):
    """Return (adapter, stand-in) after connect()."""
    made = []

    def factory(*args, **kwargs):
        made.append(XArmStandIn(*args, **kwargs))
        return made[-1]

    return connect(config, api_factory=factory), made[0]


def started(config: XArmConfig = QUICK):
    """Return (adapter, stand-in) after start-up, with the stand-in's call log emptied."""
    arm, api = connected(config)
    arm.start_up(WS)
    api.calls.clear()
    return arm, api


# ---- the stand-in cannot drift from the SDK -------------------------------------------------

@pytest.mark.parametrize('name', standin_api())
def test_standin_signature_equals_installed_sdk(name):
    ours = inspect.getattr_static(XArmStandIn, name)
    theirs = inspect.getattr_static(XArmAPI, name, None)
    assert theirs is not None, f'XArmAPI has no {name}'
    if isinstance(ours, property):
        assert isinstance(theirs, property), f'XArmAPI.{name} is not a property'
        return
    shape = [(p.name, p.kind, p.default) for p in inspect.signature(ours).parameters.values()]
    sdk_shape = [(p.name, p.kind, p.default)
                 for p in inspect.signature(theirs).parameters.values()]
    assert shape == sdk_shape


def test_adapter_calls_only_sdk_api_the_standin_has():
    used = set(re.findall(r'\b_?api\.(\w+)', ADAPTER_SOURCE.read_text()))
    assert {'connect', 'set_position', 'set_collision_sensitivity'} <= used
    assert used <= set(standin_api()), used - set(standin_api())


def test_adapter_satisfies_the_arm_protocol():
    arm, _ = connected()
    assert isinstance(arm, Arm)


# ---- connect --------------------------------------------------------------------------------

def test_connect_builds_the_sdk_object_in_degrees_then_opens_it():
    callback = print
    made = []
    arm = connect(XArmConfig(robot_ip='10.0.0.7', connect_timeout_s=0.0),
                  api_factory=lambda *a, **k: made.append(XArmStandIn(*a, **k)) or made[-1],
                  on_error_warn=callback)
    api = made[0]
    assert api.init_args == Call('__init__', ('10.0.0.7',),
                                 {'is_radian': False, 'do_not_open': True})
    assert api.calls == [Call('register_error_warn_changed_callback', (callback,)),
                         Call('connect', (), {'port': None})]
    assert arm.connected


def test_connect_failure_raises_not_connected_naming_the_ip():
    def refusing(*args, **kwargs):
        api = XArmStandIn(*args, **kwargs)
        api.refuse_connects = 99
        return api

    with pytest.raises(NotConnectedError) as raised:
        connect(XArmConfig(robot_ip='10.0.0.9', connect_timeout_s=0.0), api_factory=refusing)
    assert '10.0.0.9' in str(raised.value)
    assert 'connect socket failed' in str(raised.value)
    assert raised.value.code == -1


def test_connect_retries_until_the_socket_answers():
    apis = []

    def flaky(*args, **kwargs):
        apis.append(XArmStandIn(*args, **kwargs))
        apis[-1].refuse_connects = 2
        return apis[-1]

    arm = connect(XArmConfig(connect_timeout_s=3.0), api_factory=flaky)
    assert arm.connected
    assert apis[0].called() == ['connect'] * 3


def test_connect_with_the_real_sdk_to_a_closed_loopback_port():
    if Path('/tmp/xarmcontroller_uds_502').exists():
        pytest.skip('a local xArm controller socket exists on this machine')
    before = socket.getdefaulttimeout()
    with pytest.raises(NotConnectedError) as raised:
        connect(XArmConfig(robot_ip='127.0.0.1', connect_timeout_s=0.0))
    assert '127.0.0.1' in str(raised.value)
    # The SDK sets the process-wide default socket timeout; connect() puts it back.
    assert socket.getdefaulttimeout() == before


# ---- start-up -------------------------------------------------------------------------------

def test_start_up_order_and_arguments():
    arm, api = connected()
    arm.start_up(WS)
    assert api.called() == ['register_error_warn_changed_callback', 'connect'][1:] + START_UP
    by_name = {}
    for call in api.calls:
        by_name.setdefault(call.name, []).append(call)
    assert by_name['set_reduced_tcp_boundary'][0].args == ([500.0, 200.0, 300.0, -300.0,
                                                            500.0, 0.0],)
    assert by_name['set_fence_mode'][0].args == (True,)
    assert by_name['motion_enable'][0].kwargs == {'enable': True, 'servo_id': None}
    assert by_name['set_mode'][0].kwargs['mode'] == 0
    assert [c.kwargs['state'] for c in by_name['set_state']] == [0, 0]
    assert by_name['set_collision_sensitivity'][0].args == (3,)
    assert 'set_reduced_mode' not in by_name  # left as the controller has it
    assert api.state == 2


def test_start_up_applies_configured_tcp_and_reduced_mode():
    config = XArmConfig(connect_timeout_s=0.0, collision_sensitivity=4, reduced_mode=True,
                        reduced_max_tcp_speed_mm_s=600.0,
                        tcp_offset_mm_deg=(0, 0, 120, 0, 0, 90), tcp_load=(0.3, 0, 0, 40))
    arm, api = connected(config)
    arm.start_up(WS)
    tail = api.calls[api.called().index('set_collision_sensitivity'):]
    assert tail[:6] == [
        Call('set_collision_sensitivity', (4,), {'wait': True}),
        Call('set_tcp_offset', ([0.0, 0.0, 120.0, 0.0, 0.0, 90.0],),
             {'is_radian': False, 'wait': True}),
        Call('set_tcp_load', (0.3, [0.0, 0.0, 40.0]), {'wait': True}),
        Call('set_reduced_max_tcp_speed', (600.0,)),
        Call('set_reduced_mode', (True,)),
        Call('set_state', (), {'state': 0})]


def test_reduced_speed_below_the_workspace_speed_is_refused_before_any_call():
    arm, api = connected(XArmConfig(connect_timeout_s=0.0, reduced_mode=True,
                                    reduced_max_tcp_speed_mm_s=250.0))
    api.calls.clear()
    with pytest.raises(ConfigError, match='max_speed_mm_s'):
        arm.start_up(WS)
    assert api.calls == []


START_UP_SETTERS = sorted(set(START_UP) - {'get_err_warn_code', 'get_state'})


@pytest.mark.parametrize('method', START_UP_SETTERS)
@pytest.mark.parametrize('code', [3, -2, 9, 100])
def test_start_up_api_code_becomes_arm_error_and_stops_there(method, code):
    arm, api = connected()
    api.fail(method, code)
    with pytest.raises(ArmError) as raised:
        arm.start_up(WS)
    assert raised.value.code == code
    assert not isinstance(raised.value, ControllerError)
    assert api.calls[-1].name == method  # nothing after the failing call


@pytest.mark.parametrize('method', START_UP_SETTERS)
def test_start_up_controller_error_carries_the_controller_code(method):
    arm, api = connected()
    api.fail(method, 1, error_code=ERROR_SAFETY_BOUNDARY)
    with pytest.raises(ControllerError) as raised:
        arm.start_up(WS)
    assert raised.value.error_code == ERROR_SAFETY_BOUNDARY
    assert raised.value.code == 1


def test_start_up_finds_an_error_the_sdk_answered_zero_to():
    # The SDK answers 0 to non-motion calls while the controller holds an error (x3/base.py
    # _check_code): an E-stop (C1) arriving during start-up must still stop it.
    arm, api = connected()
    api.fail('motion_enable', 0, error_code=1)
    with pytest.raises(ControllerError) as raised:
        arm.start_up(WS)
    assert raised.value.error_code == 1
    assert api.called()[-1] == 'get_err_warn_code'  # and so no get_state


def test_start_up_on_a_dropped_connection_raises_not_connected():
    arm, api = connected()
    api.drop_connection()
    with pytest.raises(NotConnectedError):
        arm.start_up(WS)
    assert api.called()[-1] == 'clean_warn'


# ---- units and shapes -------------------------------------------------------------------------

def test_moves_and_reads_in_mm_and_degrees():
    arm, api = started()
    assert arm.set_position(x=300.5, y=-20.0, z=150.0, roll=180.0, pitch=0.0, yaw=45.0,
                            speed=100.0, wait=True) == 0
    move = api.calls[-1]
    assert move.kwargs['is_radian'] is False
    assert [move.kwargs[k] for k in ('x', 'y', 'z', 'roll', 'pitch', 'yaw', 'speed')] == [
        300.5, -20.0, 150.0, 180.0, 0.0, 45.0, 100.0]
    assert arm.get_position() == (0, [300.5, -20.0, 150.0, 180.0, 0.0, 45.0])
    assert api.calls[-1].kwargs == {'is_radian': False}
    assert arm.set_tcp_offset([0, 0, 100, 0, 0, 0]) == 0
    assert api.calls[-1].kwargs['is_radian'] is False


def test_sdk_results_are_normalized_to_the_protocol_shapes():
    arm, api = started(XArmConfig(connect_timeout_s=0.0, vacuum_hardware_version=2))
    assert arm.set_fence_mode(True) == 0  # the SDK returns the reply list [0]
    assert arm.get_vacuum_gripper() == (0, 1)
    assert api.calls[-1].kwargs == {'hardware_version': 2}
    arm.set_vacuum_gripper(True)
    assert api.calls[-1].kwargs['hardware_version'] == 2
    api.drop_connection()
    assert arm.set_fence_mode(False) == -1
    assert arm.get_vacuum_gripper() == (-1, VACUUM_OFF)
    code, pose = arm.get_position()
    assert code == -1 and len(pose) == 6 and all(math.isnan(v) for v in pose)
    assert arm.get_err_warn_code() == (-1, [0, 0])
    assert arm.get_state() == (-1, api.state)


# ---- pick and place through the adapter -------------------------------------------------------

def move(x, y, z, yaw, speed):
    """The set_position call the adapter must send for one primitive move (tool down)."""
    return Call('set_position', (), dict(
        x=x, y=y, z=z, roll=180.0, pitch=0.0, yaw=yaw, radius=None, speed=speed, mvacc=None,
        mvtime=None, relative=False, is_radian=False, wait=True, timeout=None))


def vacuum(on, wait=False, timeout=3):
    return Call('set_vacuum_gripper', (on,), dict(wait=wait, timeout=timeout, delay_sec=None,
                                                  sync=True, hardware_version=1))


READ_VACUUM = Call('get_vacuum_gripper', (), {'hardware_version': 1})


def test_pick_and_place_sends_exactly_the_expected_sdk_calls():
    arm, api = started()
    api.vacuum_states = [0, 1]  # nothing at the approach height, picked one probe step lower
    result = pick_and_place(arm, WS, (320.0, -100.0, 0.0), (420.0, 150.0, 0.0), 30.0)
    # PickPlaceConfig defaults: travel 200 mm, approach 70 mm, probe 6 mm steps, release 8 mm
    # above the place support plus the grip height; speeds 250 / 120 / 40 mm/s; home.
    assert result.grip_height_mm == 64.0
    assert api.calls == [
        move(320.0, -100.0, 200.0, 0.0, 250.0),
        move(320.0, -100.0, 70.0, 0.0, 120.0),
        vacuum(True),
        READ_VACUUM,
        move(320.0, -100.0, 64.0, 0.0, 40.0),
        READ_VACUUM,
        vacuum(True, wait=True, timeout=1.0),
        move(320.0, -100.0, 200.0, 0.0, 120.0),
        move(420.0, 150.0, 200.0, 30.0, 250.0),
        move(420.0, 150.0, 72.0, 30.0, 120.0),
        vacuum(False),
        move(420.0, 150.0, 200.0, 30.0, 120.0),
        move(220.0, 0.0, 350.0, 0.0, 250.0),
    ]


def test_target_outside_the_workspace_makes_no_sdk_call():
    arm, api = started()
    with pytest.raises(UnsafeTargetError):
        pick_and_place(arm, WS, (600.0, 0.0, 0.0), (420.0, 150.0, 0.0), 0.0)
    assert api.calls == []
    assert api.motion_calls() == []


def test_controller_error_during_a_move_carries_the_controller_code():
    arm, api = started()
    api.fail('set_position', 1, error_code=ERROR_SAFETY_BOUNDARY)
    with pytest.raises(ControllerError) as raised:
        pick_and_place(arm, WS, (320.0, -100.0, 0.0), (420.0, 150.0, 0.0), 0.0)
    assert raised.value.error_code == ERROR_SAFETY_BOUNDARY
    assert api.called() == ['set_position', 'get_err_warn_code']


def test_suction_timeout_code_reaches_the_caller():
    arm, api = started()
    api.vacuum_states = [0]
    api.fail('set_vacuum_gripper', 0)
    api.fail('set_vacuum_gripper', 41)
    with pytest.raises(ArmError) as raised:
        pick_and_place(arm, WS, (320.0, -100.0, 0.0), (420.0, 150.0, 0.0), 0.0)
    assert raised.value.code == 41


# ---- shutdown ---------------------------------------------------------------------------------

def test_shutdown_stops_then_disconnects():
    arm, api = started()
    assert arm.shutdown() == ()
    assert api.calls == [Call('set_state', (), {'state': 4}), Call('disconnect')]
    assert not arm.connected


def test_shutdown_can_switch_the_suction_off_at_once():
    arm, api = started(XArmConfig(connect_timeout_s=0.0, vacuum_off_on_shutdown=True))
    assert arm.shutdown() == ()
    assert api.calls[1] == Call('set_vacuum_gripper', (False,), dict(
        wait=False, timeout=3, delay_sec=None, sync=False, hardware_version=1))
    assert api.called() == ['set_state', 'set_vacuum_gripper', 'disconnect']


def test_shutdown_after_the_connection_dropped_reports_and_does_not_raise():
    arm, api = started(XArmConfig(robot_ip='10.1.2.3', connect_timeout_s=0.0,
                                  vacuum_off_on_shutdown=True))
    api.drop_connection()
    problems = arm.shutdown()
    assert len(problems) == 1 and '10.1.2.3' in problems[0]
    assert api.called() == ['disconnect']


def test_shutdown_reports_failures_and_still_disconnects():
    arm, api = started()
    api.fail('set_state', 3)

    def broken():
        raise Exception('socket closed')

    api.disconnect = broken
    problems = arm.shutdown()
    assert len(problems) == 2
    assert 'code 3' in problems[0]
    assert 'socket closed' in problems[1]


# ---- configuration ----------------------------------------------------------------------------

@pytest.mark.parametrize('field, value', [
    ('robot_ip', '/dev/ttyUSB0'), ('robot_ip', 'xarm.local'), ('robot_ip', 192),
    ('connect_timeout_s', -1.0), ('connect_timeout_s', math.nan),
    ('collision_sensitivity', 0), ('collision_sensitivity', 6), ('collision_sensitivity', 3.0),
    ('collision_sensitivity', True), ('reduced_max_tcp_speed_mm_s', 1500.0),
    ('reduced_mode', 1), ('vacuum_off_on_shutdown', 'yes'), ('vacuum_hardware_version', 3),
    ('tcp_offset_mm_deg', (0, 0, 100)), ('tcp_offset_mm_deg', (0, 0, math.inf, 0, 0, 0)),
    ('tcp_load', (6.0, 0, 0, 0)), ('tcp_load', (0.5,)),
])
def test_config_refuses_bad_values_naming_the_field(field, value):
    with pytest.raises(ConfigError, match=f'XArmConfig.{field}'):
        XArmConfig(**{field: value})


def test_config_defaults_and_normalized_tuples():
    config = XArmConfig(tcp_offset_mm_deg=[0, 0, 100, 0, 0, 0])
    assert config.tcp_offset_mm_deg == (0.0, 0.0, 100.0, 0.0, 0.0, 0.0)
    assert XArmConfig().collision_sensitivity == 3
    assert XArmConfig().reduced_mode is False
    assert isinstance(connected()[0], XArm)
