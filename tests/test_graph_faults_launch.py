"""Graph faults through the embedded launcher, every node in its own process (own DDS domain).

xarm graph, no robot reachable (robot_ip 127.0.0.1, dry_run true), camera an image folder,
policy:=oracle so policy_node starts without a model: a missing calibration file, or one made for
another workspace (its table 0.2 m off), stops the graph at start-up with exit 1 and the
launcher's report names the file; so does a calibration for another image size than the
camera's frames (perception_node checks the first frame against the calibration).

sim graph with a tiny random LLaVA (greedy, 4 new tokens: it cannot write a whole step), two
episodes: every policy query is answered, each answer is counted as a parse failure in
PolicyStatus, no plan is published, and nothing reaches the arm. The sim arm's call log lives in
sim_node's process; what the graph exposes is watched from a listener in the same domain: no
ExecuteStep goal ever on `execute_step` (its action status topic, the only way from the policy
to the arm), no ExecutedStep on `executor/executed`, `sim/status` steps 0 throughout.
"""
import os
from pathlib import Path
import re
import threading
import time

from action_msgs.msg import GoalStatusArray
import cv2
from graph_launch import assert_every_node_stopped, domain_id, launcher_error, run_launcher
import numpy as np
import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_action_status_default

from llara_msgs.msg import ActionPlan, ExecutedStep, PolicyQuery, PolicyStatus, SimStatus
from llara_policy.geometry.calibration import pinhole_calibration, save_calibration
from llara_policy.geometry.transforms import CameraIntrinsics
from llara_policy.model.tiny_models import save_tiny_llava
from llara_policy.ros.perception_node import STATUS_QOS
from llara_policy.ros.policy_node import LATCHED_QOS
from llara_policy.ros.task_node import COMMAND_QOS
from llara_policy.sim.camera import front_camera

XARM_TIMEOUT_S = 180  # start-up errors come within seconds; the cap only bounds a hang
# Any reliability offered is received (a best-effort subscription matches both kinds), so "no
# message" cannot come from a QoS mismatch.
ANY_QOS = QoSProfile(depth=50, reliability=ReliabilityPolicy.BEST_EFFORT)


def _xarm_args(frames: Path, calibration: Path) -> tuple[str, ...]:
    return ('xarm.launch.py', f'camera:={frames}', f'calibration_file:={calibration}',
            'policy:=oracle', 'robot_ip:=127.0.0.1', 'dry_run:=true')


@pytest.fixture(scope='module')
def sim_calibration():
    """The sim front camera's calibration (256x128, fits the default Workspace)."""
    return front_camera().calibration()


@pytest.fixture
def frames(tmp_path, sim_calibration):
    """An image folder camera with frames of the calibration's size."""
    folder = tmp_path / 'frames'
    folder.mkdir()
    shape = (sim_calibration.image_height_px, sim_calibration.image_width_px, 3)
    for k in range(2):
        cv2.imwrite(str(folder / f'{k:03d}.png'), np.full(shape, 60 + 80 * k, np.uint8))
    return folder


# A node's entry in the launcher's report: 'executor_node (pid 12) exited with code 2; ...'.
EXITED = re.compile(r'^(?:llara_bringup\.launch: )?(\w+) \(pid \d+\) exited with code (\d+)')


def _assert_start_up_error_names(code: int, output: str, path: Path) -> str:
    """The launcher failed; each node its report names exited 2 with an error naming `path`."""
    report = launcher_error(output)
    assert code == 1 and report, output[-4000:]
    failed = dict(m.groups() for m in map(EXITED.match, report.splitlines()) if m)
    assert failed and set(failed) <= {'perception_node', 'executor_node'}, report
    assert set(failed.values()) == {'2'}, report  # run_node's start-up error exit
    for name in failed:
        errors = [line for line in report.splitlines()
                  if line.startswith(f'  [{name}]') and 'cannot start' in line]
        assert errors and all(str(path) in line for line in errors), report
    assert_every_node_stopped(output)
    return report


def test_xarm_graph_with_a_missing_calibration_stops_naming_the_file(tmp_path, frames):
    missing = tmp_path / 'nowhere' / 'calibration.yaml'
    code, output = run_launcher(*_xarm_args(frames, missing), timeout_s=XARM_TIMEOUT_S,
                                domain_seed=os.getpid() + 21)
    report = _assert_start_up_error_names(code, output, missing)
    assert 'cannot read calibration' in report


def test_xarm_graph_with_a_calibration_of_another_workspace_stops_naming_the_file(
        tmp_path, frames, sim_calibration):
    # The same camera, but its table 0.2 m above the executor's Workspace table (z = 0): a
    # calibration made on another set-up. Within the file's own limits (|table_z_m| <= 0.3 m).
    other = tmp_path / 'other_table.yaml'
    mapping = sim_calibration.mapping
    save_calibration(pinhole_calibration(
        sim_calibration.camera_id, mapping.intrinsics, mapping.base_from_camera, 0.2,
        sim_calibration.base_frame, sim_calibration.camera_frame), other)
    code, output = run_launcher(*_xarm_args(frames, other), timeout_s=XARM_TIMEOUT_S,
                                domain_seed=os.getpid() + 22)
    report = _assert_start_up_error_names(code, output, other)
    assert 'executor_node' in report.splitlines()[0]  # the workspace check is the executor's


def test_xarm_graph_with_a_calibration_for_another_image_size_stops_naming_the_file(
        tmp_path, frames, sim_calibration):
    # The sim camera at twice the resolution (512x256): consistent in itself, fits the
    # workspace, but the camera's frames are 256x128.
    bigger = tmp_path / 'calibration_512x256.yaml'
    k = sim_calibration.mapping.intrinsics
    double = CameraIntrinsics(width_px=2 * k.width_px, height_px=2 * k.height_px,
                              fx_px=2 * k.fx_px, fy_px=2 * k.fy_px, cx_px=2 * k.cx_px + 0.5,
                              cy_px=2 * k.cy_px + 0.5, distortion=k.distortion)
    save_calibration(pinhole_calibration(
        sim_calibration.camera_id, double, sim_calibration.mapping.base_from_camera,
        sim_calibration.table_z_m, sim_calibration.base_frame, sim_calibration.camera_frame),
        bigger)
    code, output = run_launcher(*_xarm_args(frames, bigger), timeout_s=XARM_TIMEOUT_S,
                                domain_seed=os.getpid() + 23)
    _assert_start_up_error_names(code, output, bigger)


class Listener:
    """A node in the launcher's DDS domain recording what the graph publishes."""

    def __init__(self, domain: int):
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=domain)
        self.node = Node('fault_test_listener', context=self.context)
        self.queries, self.statuses, self.plans, self.sim, self.executed = [], [], [], [], []
        self.goal_statuses = []
        subscribe = self.node.create_subscription
        subscribe(PolicyQuery, 'policy/query', self.queries.append, COMMAND_QOS)
        subscribe(PolicyStatus, 'policy/status', self.statuses.append, LATCHED_QOS)
        subscribe(ActionPlan, 'policy/plan', self.plans.append, ANY_QOS)
        subscribe(SimStatus, 'sim/status', self.sim.append, STATUS_QOS)
        subscribe(ExecutedStep, 'executor/executed', self.executed.append, ANY_QOS)
        # Every goal the ExecuteStep server accepts changes this (latched) status array.
        subscribe(GoalStatusArray, 'execute_step/_action/status', self.goal_statuses.append,
                  qos_profile_action_status_default)
        self.publishers_seen = {}
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()

    def note_publishers(self) -> None:
        """Remember the most publishers seen so far on the watched arm-side topics."""
        for topic in ('/execute_step/_action/status', '/executor/executed', '/sim/status'):
            self.publishers_seen[topic] = max(self.publishers_seen.get(topic, 0),
                                              self.node.count_publishers(topic))

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)


def test_tiny_random_vlm_answers_are_counted_unparseable_and_nothing_reaches_the_arm(tmp_path):
    model = save_tiny_llava(tmp_path / 'tiny_llava')
    episodes = 2
    seed = os.getpid() + 24
    listener = Listener(domain_id(seed))
    outcome = {}

    def launch():
        outcome['run'] = run_launcher(
            'sim.launch.py', f'policy:={model}', 'decoding:=greedy', 'max_new_tokens:=4',
            'device:=cpu', 'renderer:=tiny', f'episodes:={episodes}', 'policy_timeout_s:=15',
            timeout_s=300, domain_seed=seed)

    runner = threading.Thread(target=launch)
    try:
        runner.start()
        while runner.is_alive():
            listener.note_publishers()
            time.sleep(0.2)
        runner.join()
    finally:
        listener.close()
    code, output = outcome['run']
    lines = output.splitlines()
    assert code == 0, output[-4000:]
    assert lines[-1] == f'success: 0/{episodes}', output[-4000:]
    done = [line for line in lines if line.startswith('[launch] episode ')]
    assert len(done) == episodes and all('failure after 0 steps' in line for line in done)

    # Answers were produced for every query, and each was counted as unparseable.
    asked = [line for line in done if 'without a plan (parse_failure' in line]
    assert len(listener.queries) == len(asked) >= 1, output[-4000:]
    status = listener.statuses[-1]
    assert status.parse_failures == len(listener.queries), status
    assert status.plans_published == 0 and status.errors == 0, status
    assert 'unparseable' in status.last_error, status
    assert status.model_name == model.name
    assert listener.plans == []

    # Nothing reached the arm: the ExecuteStep server (in sim_node, beside the sim arm) was up
    # and watched, and never got a goal; no step was executed or scored.
    assert listener.publishers_seen['/execute_step/_action/status'] >= 1
    assert listener.publishers_seen['/sim/status'] >= 1
    assert [s for s in listener.goal_statuses if s.status_list] == []
    assert listener.executed == []
    assert listener.sim and all(s.steps == 0 for s in listener.sim)
