"""executor_node in-process over the sim's SimArm: ExecuteStep through a real action client.

Asserted through the action results and the SimArm's call log: an oracle step succeeds with its
base-frame targets and phase feedback; an unsafe target is refused before any arm call; an arm
error aborts with its code and faults until executor/reset; a missed pick aborts with ERROR_GRASP
and its executed step, without a fault; stop and cancel during a motion; a
second goal while busy; dry run without an arm; startup errors naming the calibration file.
Every goal handled is published once on executor/executed (ExecutedStep), mapped or not.
"""
import os
from pathlib import Path
import subprocess
import sys
import threading

from action_msgs.msg import GoalStatus
import pytest
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from ros_harness import WAIT_S, Harness
from sim_points import missing_step

from llara_msgs.action import ExecuteStep
from llara_msgs.msg import ExecutedStep
from llara_msgs.srv import ResetExecutor, StopExecutor
from llara_policy.arms.base import CODE_HAS_ERROR, ERROR_COLLISION, STATE_READY
from llara_policy.arms.executor_types import ErrorCode, ExecutorConfig, ExecutorState, Phase
from llara_policy.errors import CalibrationError, ConfigError
from llara_policy.geometry.calibration import save_calibration
from llara_policy.ros.convert import step_to_msg
from llara_policy.ros.executor_node import EXECUTED_TOPIC, ExecutorNode
from llara_policy.sim.arm import Fault
from llara_policy.sim.env import SIM_PICK_PLACE, SIM_SWEEP, SimEnv, SimEnvConfig
from llara_policy.types import ActionStep, ImagePoint

# Model point (0.5, 0.02) maps to x = 0.10 m on the sim table, in front of Workspace.x_min_m.
OUTSIDE = ImagePoint(0.5, 0.02)


@pytest.fixture(scope='module')
def env():
    with SimEnv(SimEnvConfig(renderer='tiny')) as env:
        yield env


@pytest.fixture
def harness():
    with Harness() as h:
        yield h


class Gate:
    """Holds the arm's next motion at its first physics tick until opened (a long motion)."""

    def __init__(self, arm):
        self.reached, self.opened, self.armed = threading.Event(), threading.Event(), True
        arm.add_tick_listener(self.on_tick)

    def on_tick(self, _sim_time_s):
        if self.armed:
            self.reached.set()
            self.opened.wait(WAIT_S)
            self.armed = False

    def open(self):
        self.opened.set()


def start(harness, env, seed=0, **params) -> ExecutorNode:
    env.reset(seed)
    defaults = ExecutorConfig(dry_run=False, place_support_m=env.table_support_m,
                              pick_place=SIM_PICK_PLACE, sweep=SIM_SWEEP)
    overrides = [Parameter(k, value=v) for k, v in params.items()]
    return harness.add(ExecutorNode(env.arm, env.mapper, env.config.workspace, defaults,
                                    context=harness.context, parameter_overrides=overrides))


def goal_of(step: ActionStep, dry_run=False) -> ExecuteStep.Goal:
    return ExecuteStep.Goal(step=step_to_msg(step), model_image_width=256,
                            model_image_height=128, dry_run=dry_run)


def listen(harness, node) -> list:
    """Subscribe to executor/executed (reliable) and wait until the node's publisher sees it."""
    heard = []
    harness.client.create_subscription(
        ExecutedStep, EXECUTED_TOPIC, heard.append,
        QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
    harness.wait(lambda: node.executed_pub.get_subscription_count() > 0, 'executed subscriber')
    return heard


def heard_once_more(harness, heard: list, before: int) -> ExecutedStep:
    """Wait for one more ExecutedStep, check that no second one follows, return it."""
    harness.wait(lambda: len(heard) > before, 'an ExecutedStep')
    harness.spin_for(0.3)
    assert len(heard) == before + 1
    return heard[-1]


def test_oracle_step_succeeds_with_base_targets_and_phase_feedback(harness, env):
    node = start(harness, env)
    oracle = env.oracle()
    feedback = []
    status, result = harness.execute(goal_of(oracle.step),
                                     lambda msg: feedback.append(msg.feedback))
    assert status == GoalStatus.STATUS_SUCCEEDED
    assert result.success and result.error_code == ErrorCode.NONE and not result.dry_run
    assert (result.pick_in_base.point.x, result.pick_in_base.point.y) == pytest.approx(
        oracle.action.pick_xy_m, abs=2e-3)
    assert (result.place_in_base.point.x, result.place_in_base.point.y) == pytest.approx(
        oracle.action.place_xy_m, abs=2e-3)
    assert result.place_in_base.point.z == pytest.approx(env.table_support_m)
    assert result.pick_in_base.header.frame_id == env.calibration.base_frame
    assert result.yaw_change_deg == pytest.approx(oracle.action.yaw_change_deg, abs=1.0)
    harness.wait(lambda: len(feedback) == len(Phase), 'feedback of every phase')
    assert [f.phase for f in feedback] == list(Phase)
    assert [f.phase_name for f in feedback][-1] == 'retreat'
    assert [f.progress for f in feedback] == sorted(f.progress for f in feedback)
    assert env.finish_step().success and node.core.state is ExecutorState.IDLE


def test_unsafe_target_is_rejected_before_any_arm_call(harness, env):
    node = start(harness, env)
    before = len(env.arm.calls)
    good = env.oracle().step
    status, result = harness.execute(goal_of(ActionStep(OUTSIDE, good.place, 0)))
    assert status == GoalStatus.STATUS_ABORTED and not result.success
    assert result.error_code == ErrorCode.UNSAFE_TARGET and 'x' in result.message
    assert env.arm.calls[before:] == [] and node.core.state is ExecutorState.IDLE
    status, result = harness.execute(goal_of(good))
    assert result.success


def test_invalid_goals_are_refused_and_the_node_keeps_serving(harness, env):
    start(harness, env)
    before = len(env.arm.calls)
    bad_point = goal_of(env.oracle().step)
    bad_point.step.pick_x_norm = 1.5
    bad_size = goal_of(env.oracle().step)
    bad_size.model_image_width = 336
    for goal in (bad_point, bad_size):
        status, result = harness.execute(goal)
        assert status == GoalStatus.STATUS_ABORTED
        assert result.error_code == ErrorCode.INVALID_GOAL
    assert env.arm.calls[before:] == []
    assert harness.execute(goal_of(env.oracle().step))[1].success


def test_arm_error_aborts_with_its_code_and_faults_until_reset(harness, env):
    node = start(harness, env)
    step = env.oracle().step
    env.arm.inject_fault(Fault('set_position', CODE_HAS_ERROR, error_code=ERROR_COLLISION))
    status, result = harness.execute(goal_of(step))
    assert status == GoalStatus.STATUS_ABORTED
    assert (result.error_code, result.arm_code) == (ErrorCode.ARM, ERROR_COLLISION)
    before = len(env.arm.calls)
    status, result = harness.execute(goal_of(step))
    assert status == GoalStatus.STATUS_ABORTED and result.error_code == ErrorCode.FAULTED
    assert env.arm.calls[before:] == []
    reset = harness.call(ResetExecutor, 'executor/reset', ResetExecutor.Request())
    assert reset.success and node.core.state is ExecutorState.IDLE
    assert env.arm.state == STATE_READY and env.arm.error_code == 0
    status, result = harness.execute(goal_of(env.oracle().step))
    assert status == GoalStatus.STATUS_SUCCEEDED


def test_stop_during_a_motion_aborts_the_goal_and_a_second_goal_is_busy(harness, env):
    node = start(harness, env)
    gate = Gate(env.arm)
    handle = harness.send_step(goal_of(env.oracle().step))
    harness.wait(gate.reached.is_set, 'the first motion')
    status, busy = harness.execute(goal_of(env.oracle().step))
    assert status == GoalStatus.STATUS_ABORTED and busy.error_code == ErrorCode.BUSY
    refused = harness.call(ResetExecutor, 'executor/reset', ResetExecutor.Request())
    assert not refused.success and 'executing' in refused.message
    mark = len(env.arm.calls)
    stop = harness.call(StopExecutor, 'executor/stop', StopExecutor.Request(emergency=False))
    assert stop.success
    assert [(c.method, c.args) for c in env.arm.calls[mark:]] == [('set_state', (4,))]
    gate.open()
    status, result = harness.result_of(handle)
    assert status == GoalStatus.STATUS_ABORTED and result.error_code == ErrorCode.CANCELED
    assert node.core.state is ExecutorState.FAULTED
    assert harness.execute(goal_of(env.oracle().step))[1].error_code == ErrorCode.FAULTED
    assert harness.call(ResetExecutor, 'executor/reset', ResetExecutor.Request()).success
    env.arm.set_vacuum_gripper(False)


def test_cancel_during_a_motion_cancels_the_goal(harness, env):
    start(harness, env)
    gate = Gate(env.arm)
    handle = harness.send_step(goal_of(env.oracle().step))
    harness.wait(gate.reached.is_set, 'the first motion')
    cancel = handle.cancel_goal_async()
    harness.wait(cancel.done, 'cancel response')
    assert len(cancel.result().goals_canceling) == 1
    gate.open()
    status, result = harness.result_of(handle)
    assert status == GoalStatus.STATUS_CANCELED and result.error_code == ErrorCode.CANCELED
    approach = [c for c in env.arm.calls if c.method == 'set_position']
    assert approach  # the approach ran; the cancel stopped the sequence after it
    assert harness.call(ResetExecutor, 'executor/reset', ResetExecutor.Request()).success


def test_dry_run_goal_moves_nothing(harness, env):
    start(harness, env)
    before = len(env.arm.calls)
    status, result = harness.execute(goal_of(env.oracle().step, dry_run=True))
    assert status == GoalStatus.STATUS_SUCCEEDED and result.dry_run and result.success
    assert env.arm.calls[before:] == []


def test_real_robot_parameters_without_an_arm_dry_run(harness, env, tmp_path):
    calibration = tmp_path / 'cal.yaml'
    save_calibration(env.calibration, calibration)
    env.reset(0)
    node = harness.add(ExecutorNode(context=harness.context, parameter_overrides=[
        Parameter('calibration_file', value=str(calibration)), Parameter('arm', value='none')]))
    assert node.config.dry_run  # the default on the real robot
    status, result = harness.execute(goal_of(env.oracle().step))
    assert status == GoalStatus.STATUS_SUCCEEDED and result.dry_run
    stop = harness.call(StopExecutor, 'executor/stop', StopExecutor.Request(emergency=True))
    assert stop.success and 'dry run' in stop.message
    assert harness.call(ResetExecutor, 'executor/reset', ResetExecutor.Request()).success


def test_startup_errors_name_the_calibration_file(harness, env, tmp_path):
    def build(**params):
        return ExecutorNode(context=harness.context, parameter_overrides=[
            Parameter(k, value=v) for k, v in {'arm': 'none', **params}.items()])

    with pytest.raises(ConfigError, match='calibration_file is required'):
        build()
    missing = str(tmp_path / 'missing.yaml')
    with pytest.raises(CalibrationError, match='missing.yaml'):
        build(calibration_file=missing)
    calibration = tmp_path / 'cal.yaml'
    save_calibration(env.calibration, calibration)
    with pytest.raises(CalibrationError, match='cal.yaml'):  # a table 0.2 m off the workspace's
        build(calibration_file=str(calibration), **{'workspace.table_z_m': 0.2,
                                                    'workspace.z_max_m': 0.6})
    with pytest.raises(ConfigError, match='dry_run'):
        build(calibration_file=str(calibration), dry_run=False)


def test_the_executable_exits_2_naming_a_missing_calibration_file(tmp_path):
    missing = tmp_path / 'nowhere.yaml'
    done = subprocess.run(
        [sys.executable, '-m', 'llara_policy.ros.executor_node', '--ros-args',
         '-p', f'calibration_file:={missing}', '-p', 'arm:=none'],
        capture_output=True, text=True, timeout=60, env=dict(os.environ))
    assert done.returncode == 2
    assert str(missing) in done.stderr + done.stdout
    assert 'Traceback' not in done.stderr


def test_entry_points_are_declared():
    setup = (Path(__file__).resolve().parents[1] / 'setup.py').read_text()
    for name in ('executor_node', 'sim_node'):
        assert f"'{name} = llara_policy.ros.{name}:main'" in setup


def test_the_executor_undoes_the_crop_policy_node_applies():
    # policy_node cuts camera frames with model.serving.to_model_frame; the executor's default
    # preprocess must map a point of that model frame back to the same camera pixel.
    import numpy as np

    from llara_policy.geometry.preprocessing import FramePreprocess
    from llara_policy.model.serving import to_model_frame
    from llara_policy.ros.executor_params import CalibrationParams

    camera = np.zeros((480, 640, 3), np.uint8)
    camera[200:206, 500:506] = 255  # a bright dot at camera pixel (502.5, 202.5)
    model = to_model_frame(camera)
    rows, cols = np.nonzero(model[:, :, 0] > 100)
    model_uv = (cols.mean() + 0.5, rows.mean() + 0.5)  # pixel-centre convention
    preprocess = getattr(FramePreprocess, CalibrationParams().preprocess)(640, 480)
    back = preprocess.model_to_camera_pixels(model_uv)[0]
    assert np.allclose(back, (503.0, 203.0), atol=2.0)


def test_a_success_publishes_its_executed_step(harness, env):
    node = start(harness, env)
    heard = listen(harness, node)
    goal = goal_of(env.oracle().step)
    status, result = harness.execute(goal)
    assert status == GoalStatus.STATUS_SUCCEEDED
    executed = heard_once_more(harness, heard, 0)
    assert executed.mapped and executed.success and not executed.dry_run
    assert executed.error_code == ErrorCode.NONE and executed.message == result.message
    assert executed.requested == goal.step
    assert (executed.model_image_width, executed.model_image_height) == (256, 128)
    assert executed.executed == result.executed_step
    # The history form is the targets projected back: the sim camera round trip is exact
    # to float precision, and the rotation is the whole-degree one sent.
    sent = goal.step
    assert (executed.executed.pick_x_norm, executed.executed.pick_y_norm) == pytest.approx(
        (sent.pick_x_norm, sent.pick_y_norm), abs=1e-6)
    assert (executed.executed.place_x_norm, executed.executed.place_y_norm) == pytest.approx(
        (sent.place_x_norm, sent.place_y_norm), abs=1e-6)
    assert executed.executed.rotation_cw_deg == sent.rotation_cw_deg
    assert executed.executed.object_text == ''
    assert executed.header.frame_id == env.calibration.base_frame
    for on_table, commanded in ((executed.pick_in_base, result.pick_in_base.point),
                                (executed.place_in_base, result.place_in_base.point)):
        assert (on_table.x, on_table.y) == pytest.approx((commanded.x, commanded.y), abs=1e-9)
        assert on_table.z == env.calibration.table_z_m
    assert executed.yaw_change_deg == result.yaw_change_deg
    assert env.finish_step().success


def test_a_dry_run_publishes_a_mapped_executed_step(harness, env):
    node = start(harness, env)
    heard = listen(harness, node)
    status, result = harness.execute(goal_of(env.oracle().step, dry_run=True))
    executed = heard_once_more(harness, heard, 0)
    assert executed.dry_run and executed.success and executed.mapped
    assert executed.executed == result.executed_step


def test_an_unsafe_target_publishes_its_mapped_targets_without_an_arm_call(harness, env):
    node = start(harness, env)
    heard = listen(harness, node)
    before = len(env.arm.calls)
    good = env.oracle().step
    goal = goal_of(ActionStep(OUTSIDE, good.place, 30))
    status, result = harness.execute(goal)
    assert status == GoalStatus.STATUS_ABORTED and env.arm.calls[before:] == []
    executed = heard_once_more(harness, heard, 0)
    assert executed.mapped and not executed.success
    assert executed.error_code == ErrorCode.UNSAFE_TARGET == result.error_code
    assert executed.message == result.message and executed.requested == goal.step
    # OUTSIDE lies 0.10 m from the base on the sim table (in front of the workspace).
    assert executed.pick_in_base.x == pytest.approx(0.10, abs=0.01)
    assert executed.pick_in_base.z == env.calibration.table_z_m
    assert executed.yaw_change_deg == pytest.approx(-30.0)
    assert (executed.executed.pick_x_norm, executed.executed.pick_y_norm) == pytest.approx(
        (OUTSIDE.x_norm, OUTSIDE.y_norm), abs=1e-6)
    assert executed.executed.rotation_cw_deg == 30


def test_an_arm_error_and_a_faulted_executor_each_publish_one_executed_step(harness, env):
    node = start(harness, env)
    heard = listen(harness, node)
    step = env.oracle().step
    env.arm.inject_fault(Fault('set_position', CODE_HAS_ERROR, error_code=ERROR_COLLISION))
    status, failed = harness.execute(goal_of(step))
    arm_error = heard_once_more(harness, heard, 0)
    assert arm_error.mapped and not arm_error.success  # mapped, then the arm failed
    assert (arm_error.error_code, arm_error.arm_code) == (ErrorCode.ARM, ERROR_COLLISION)
    assert arm_error.message == failed.message
    status, refused = harness.execute(goal_of(step))
    assert refused.error_code == ErrorCode.FAULTED
    faulted = heard_once_more(harness, heard, 1)
    assert not faulted.mapped and not faulted.success
    assert faulted.error_code == ErrorCode.FAULTED and faulted.message == refused.message
    assert faulted.requested == goal_of(step).step
    assert faulted.executed == refused.executed_step  # both empty: nothing was mapped
    assert faulted.pick_in_base.x == faulted.pick_in_base.y == 0.0
    assert harness.call(ResetExecutor, 'executor/reset', ResetExecutor.Request()).success
    env.arm.set_vacuum_gripper(False)


def test_a_missed_pick_reports_grasp_with_its_executed_step_and_the_next_goal_runs(
        harness, env):
    node = start(harness, env)
    heard = listen(harness, node)
    goal = goal_of(missing_step(env, env.oracle().step))  # pick on bare table: a real miss
    status, result = harness.execute(goal)
    assert status == GoalStatus.STATUS_ABORTED and not result.success
    assert (result.error_code, result.arm_code) == (ErrorCode.GRASP, 0)
    assert 'held nothing' in result.message and node.core.state is ExecutorState.IDLE
    # The step ran: its history form is filled (the sim camera's round trip is exact).
    sent = goal.step
    assert (result.executed_step.pick_x_norm, result.executed_step.pick_y_norm) == \
        pytest.approx((sent.pick_x_norm, sent.pick_y_norm), abs=1e-6)
    assert (result.executed_step.place_x_norm, result.executed_step.place_y_norm) == \
        pytest.approx((sent.place_x_norm, sent.place_y_norm), abs=1e-6)
    missed = heard_once_more(harness, heard, 0)
    assert missed.mapped and not missed.success and missed.error_code == ErrorCode.GRASP
    assert missed.executed == result.executed_step and missed.message == result.message
    assert (missed.pick_in_base.x, missed.pick_in_base.y) == pytest.approx(
        (result.pick_in_base.point.x, result.pick_in_base.point.y), abs=1e-9)
    # No executor/reset: the next goal runs and the oracle's step still solves the task.
    status, result = harness.execute(goal_of(env.oracle().step))
    assert status == GoalStatus.STATUS_SUCCEEDED and result.success
    assert env.finish_step().success
