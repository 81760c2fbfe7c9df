"""SimArm keeps the xArm SDK's contract; the primitives turn its codes into typed errors.

Every primitive here runs under the default `Workspace`; the envelope's own rejections are in
test_primitives.py.
"""
import math

import numpy as np
import pytest

from llara_policy.arms.base import (
    CODE_HAS_ERROR,
    CODE_NOT_CONNECTED,
    CODE_OK,
    CODE_STATE_NOT_READY,
    CODE_SUCTION_TIMEOUT,
    CODE_WAIT_TIMEOUT,
    ERROR_COLLISION,
    ERROR_NO_IK,
    ERROR_SAFETY_BOUNDARY,
    VACUUM_NOT_PICKED,
    VACUUM_OFF,
    VACUUM_PICKED,
    Arm,
    check_code,
)
from llara_policy.arms.primitives import (
    HOME_XYZ_MM,
    PickPlaceConfig,
    SweepConfig,
    enable,
    pick_and_place,
    sweep,
)
from llara_policy.errors import (
    ArmError,
    ControllerError,
    NotConnectedError,
    NothingPickedError,
    ValueRangeError,
)
from llara_policy.sim.arm import Fault, SimArm
from llara_policy.sim.kinematics import ArmKinematics, rotation_from_rpy
from llara_policy.sim.objects import COLOURS, SHAPES
from llara_policy.sim.world import SimWorld, WorldConfig
from llara_policy.types import Effector
from llara_policy.workspace import Workspace

DOWN = dict(roll=180.0, pitch=0.0, yaw=0.0)
FAST = PickPlaceConfig(travel_speed_mm_s=600.0, approach_speed_mm_s=300.0,
                       probe_speed_mm_s=120.0)
WS = Workspace()



def block(world, xy=(0.32, -0.1)):
    body = world.add_object(SHAPES['block'], COLOURS['red'], (*xy, 0.0), 0.0)
    world.settle()
    return body


def position(arm):
    code, pose = arm.get_position()
    assert code == CODE_OK
    return np.array(pose)


def test_sim_arm_satisfies_the_arm_protocol(arm):
    assert isinstance(arm, Arm)


def test_moves_are_refused_until_the_startup_sequence_ran(world):
    world.reset()
    fresh = SimArm(world)
    assert fresh.set_position(x=300, y=0, z=200, **DOWN, wait=True) == CODE_STATE_NOT_READY
    enable(fresh, WS)
    assert fresh.set_position(x=300, y=0, z=200, **DOWN, wait=True) == CODE_OK


def test_set_position_reaches_the_pose_in_mm_and_degrees(arm):
    assert arm.set_position(x=350, y=120, z=150, roll=180, pitch=0, yaw=45, speed=400,
                            wait=True) == CODE_OK
    x, y, z, roll, pitch, yaw = position(arm)
    assert np.allclose([x, y, z], [350, 120, 150], atol=0.01)
    assert abs(abs(roll) - 180) < 0.01 and abs(pitch) < 0.01 and abs(yaw - 45) < 0.01


def test_relative_move_adds_to_the_current_pose(arm):
    before = position(arm)
    assert arm.set_position(z=-50, relative=True, wait=True) == CODE_OK
    assert np.allclose(position(arm)[:3], before[:3] + [0, 0, -50], atol=0.01)


def test_target_outside_the_boundary_raises_c35_without_moving(arm):
    assert arm.set_reduced_tcp_boundary([500, 150, 300, -300, 400, -10]) == CODE_OK
    assert arm.set_fence_mode(True) == CODE_OK
    before = position(arm)
    code = arm.set_position(x=600, y=0, z=200, **DOWN, wait=True)
    assert code == CODE_HAS_ERROR and arm.error_code == ERROR_SAFETY_BOUNDARY
    assert np.allclose(position(arm), before)
    with pytest.raises(ControllerError) as raised:
        check_code(code, 'set_position', arm)
    assert raised.value.error_code == ERROR_SAFETY_BOUNDARY and raised.value.code == 1
    # Until cleared and re-enabled, nothing moves; then targets inside the box work again.
    assert arm.set_position(x=300, y=0, z=200, **DOWN, wait=True) == CODE_HAS_ERROR
    enable(arm, WS)
    assert arm.set_position(x=300, y=0, z=200, **DOWN, wait=True) == CODE_OK


def test_enable_hands_the_workspace_box_to_the_controller(arm):
    # Reachable, but outside the default workspace's box (x_max 0.5 m): the controller's own
    # boundary, set by enable() from the same Workspace, refuses it with C35.
    before = position(arm)
    assert arm.set_position(x=560, y=0, z=200, **DOWN, wait=True) == CODE_HAS_ERROR
    assert arm.error_code == ERROR_SAFETY_BOUNDARY
    assert np.allclose(position(arm), before)
    methods = [call.method for call in arm.calls]
    assert methods.index('set_reduced_tcp_boundary') < methods.index('motion_enable')
    boundary = next(c for c in arm.calls if c.method == 'set_reduced_tcp_boundary').args[0]
    assert boundary == tuple(WS.tcp_boundary_mm())
    assert any(c.method == 'set_fence_mode' and c.args == (True,) for c in arm.calls)


def test_unreachable_target_raises_c40_without_moving(arm):
    assert arm.set_fence_mode(False) == CODE_OK  # the boundary would answer first (C35)
    before = position(arm)
    assert arm.set_position(x=1200, y=0, z=100, **DOWN, wait=True) == CODE_HAS_ERROR
    assert arm.error_code == ERROR_NO_IK
    assert np.allclose(position(arm), before)


def test_suction_pick_reports_picked_and_carries_the_object(arm, world):
    body = block(world)
    assert arm.get_vacuum_gripper() == (CODE_OK, VACUUM_OFF)
    assert arm.set_position(x=320, y=-100, z=100, **DOWN, speed=300, wait=True) == CODE_OK
    assert arm.set_vacuum_gripper(True) == CODE_OK
    assert arm.get_vacuum_gripper() == (CODE_OK, VACUUM_NOT_PICKED)
    # The block's top is at 45 mm; the cup catches it within 8 mm.
    assert arm.set_position(x=320, y=-100, z=50, **DOWN, wait=True) == CODE_OK
    assert arm.get_vacuum_gripper() == (CODE_OK, VACUUM_PICKED)
    assert arm.set_vacuum_gripper(True, wait=True) == CODE_OK
    assert arm.set_position(x=320, y=-100, z=200, **DOWN, wait=True) == CODE_OK
    assert world.object_pose(body)[0][2] > 0.15
    assert arm.set_vacuum_gripper(False) == CODE_OK
    world.settle()
    assert world.object_pose(body)[0][2] < 0.03


def test_pick_and_place_moves_and_turns_the_object(arm, world):
    body = block(world)
    result = pick_and_place(arm, WS, (320, -100, 0), (420, 150, 0), 30.0, FAST)
    world.settle()
    xy, yaw = world.object_pose(body)
    assert np.allclose(xy[:2], [0.42, 0.15], atol=0.003)
    assert abs(math.degrees(yaw) - 30.0) < 1.0
    assert 37 < result.grip_height_mm < 53
    assert np.allclose(position(arm)[:3], HOME_XYZ_MM, atol=0.1)


def test_a_failed_grip_releases_the_vacuum_retreats_above_the_table_and_raises(arm, world):
    body = block(world)
    arm.fail_suction(times=100)
    table_mm = 0.0
    with pytest.raises(ArmError) as raised:
        pick_and_place(arm, WS, (320, -100, table_mm), (420, 150, table_mm), 0.0, FAST)
    assert raised.value.code == CODE_SUCTION_TIMEOUT
    assert isinstance(raised.value, NothingPickedError)  # recovered: not an arm fault
    # The primitive's last calls: suction off, then the retreat; nothing moved after it.
    assert [c.method for c in arm.calls[-2:]] == ['set_vacuum_gripper', 'set_position']
    assert arm.calls[-2].args == (False,)
    assert arm.calls[-1].kwargs['z'] == pytest.approx(table_mm + FAST.travel_height_mm)
    assert arm.get_vacuum_gripper() == (CODE_OK, VACUUM_OFF)
    # The retreat is relative to the pick's support (the table), not an absolute height.
    assert np.allclose(position(arm)[:3], [320, -100, table_mm + FAST.travel_height_mm],
                       atol=0.1)
    assert np.allclose(world.object_pose(body)[0][:2], [0.32, -0.1], atol=0.003)


def test_a_failed_grip_on_a_raised_support_retreats_relative_to_that_support(arm, world):
    world.add_object(SHAPES['block'], COLOURS['red'], (0.32, -0.1, 0.0), 0.0)
    world.settle()
    arm.fail_suction(times=100)
    support_mm = 45.0  # e.g. picking from the top of another object
    with pytest.raises(ArmError):
        pick_and_place(arm, WS, (320, -100, support_mm), (420, 150, 0), 0.0, FAST)
    assert np.allclose(position(arm)[:3], [320, -100, support_mm + FAST.travel_height_mm],
                       atol=0.1)
    assert arm.get_vacuum_gripper() == (CODE_OK, VACUUM_OFF)


def test_a_miss_whose_recovery_fails_re_raises_the_miss_itself_with_a_note(arm, world):
    block(world)
    arm.fail_suction(times=100)
    # Suction on (no wait) and on (wait: 41) pass as usual; the recovery's 'off' fails.
    arm.inject_fault(Fault('set_vacuum_gripper', CODE_OK, times=2))
    arm.inject_fault(Fault('set_vacuum_gripper', 3))
    with pytest.raises(ArmError) as raised:
        pick_and_place(arm, WS, (320, -100, 0), (420, 150, 0), 0.0, FAST)
    assert raised.value.code == CODE_SUCTION_TIMEOUT
    assert not isinstance(raised.value, NothingPickedError)  # the arm is not in a known state
    assert any('recovery after the failed grip failed too' in note and '(code 3)' in note
               for note in raised.value.__notes__)
    assert arm.calls[-1].method == 'set_vacuum_gripper'  # no retreat after the failed 'off'


def test_injected_controller_fault_surfaces_as_its_code_and_nothing_moves_after(arm, world):
    block(world)
    arm.inject_fault(Fault('set_position', CODE_HAS_ERROR, error_code=ERROR_COLLISION))
    calls_before = len(arm.calls)
    with pytest.raises(ControllerError) as raised:
        pick_and_place(arm, WS, (320, -100, 0), (420, 150, 0), 0.0, FAST)
    assert raised.value.error_code == ERROR_COLLISION
    made = [call.method for call in arm.calls[calls_before:]]
    assert made == ['set_position']  # the first move failed; the primitive stopped there
    assert arm.get_err_warn_code() == (CODE_OK, [ERROR_COLLISION, 0])


def test_injected_api_code_is_returned_once(arm):
    arm.inject_fault(Fault('set_vacuum_gripper', 102))
    assert arm.set_vacuum_gripper(True) == 102
    assert arm.set_vacuum_gripper(True) == CODE_OK


def test_wait_timeout_and_disconnection_codes(arm):
    assert arm.set_position(x=400, y=200, z=100, **DOWN, speed=50, wait=True,
                            timeout=0.5) == CODE_WAIT_TIMEOUT
    arm.disconnect()
    assert arm.set_position(x=300, y=0, z=200, **DOWN) == CODE_NOT_CONNECTED
    with pytest.raises(NotConnectedError):
        check_code(arm.get_position(), 'get_position', arm)


def test_emergency_stop_stops_until_state_is_set_again(arm):
    arm.emergency_stop()
    assert arm.set_position(x=300, y=0, z=200, **DOWN) == CODE_STATE_NOT_READY
    assert arm.set_state(0) == CODE_OK
    assert arm.set_position(x=300, y=0, z=200, **DOWN, wait=True) == CODE_OK


def test_tcp_offset_changes_the_reported_pose(arm):
    before = position(arm)
    assert arm.set_tcp_offset([0, 0, 0, 0, 0, 0]) == CODE_OK  # back to the bare flange
    # Tool pointing down: the flange is the tool's 60 mm above the cup.
    assert np.allclose(position(arm)[:3], before[:3] + [0, 0, 60], atol=0.01)


def test_ik_solves_to_micrometres_from_a_nearby_seed(world):
    kinematics: ArmKinematics = world.kinematics
    target = np.eye(4)
    target[:3, :3] = rotation_from_rpy(math.pi, 0.0, 0.7)
    target[:3, 3] = (0.45, 0.2, 0.03)
    joints = kinematics.solve(target, world.home_joints_rad)
    assert np.linalg.norm(kinematics.tcp_pose(joints)[:3, 3] - target[:3, 3]) < 1e-5


def test_spatula_push_moves_a_block_and_zero_length_is_refused():
    with SimWorld(WorldConfig('tiny', effector=Effector.SPATULA)) as world:
        body = world.add_object(SHAPES['small block'], COLOURS['red'], (0.45, 0.0, 0.0), 0.4)
        world.settle()
        arm = SimArm(world)
        enable(arm, WS)
        config = SweepConfig(travel_speed_mm_s=600, approach_speed_mm_s=300,
                             push_speed_mm_s=120)
        sweep(arm, WS, (450, 0, 0), (330, 40, 0), config)
        world.settle()
        assert np.allclose(world.object_pose(body)[0][:2], [0.33, 0.04], atol=0.01)
        assert arm.set_vacuum_gripper(True, wait=True) == CODE_SUCTION_TIMEOUT  # no suction
        with pytest.raises(ValueRangeError):
            sweep(arm, WS, (400, 0, 0), (400, 0, 0), config)
