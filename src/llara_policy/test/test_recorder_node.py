"""recorder_node in-process: what is published comes back from the bag, read by `rosbags` alone
(AnyReader with no typestore, so the llara_msgs definitions must be inside the bag); a used
output_dir is refused with exit 2; Ctrl-C finishes a readable bag. Executed steps
(executor/executed, base-frame targets) and task results (task/result) come back too."""
from datetime import datetime
import json
import os
from pathlib import Path
import signal
import subprocess
import sys
import time

from ament_index_python.packages import get_package_share_directory
from geometry_msgs.msg import Point
import numpy as np
import pytest
from rclpy.parameter import Parameter
from rclpy.qos import qos_profile_sensor_data
import ros_harness
from rosbags.highlevel import AnyReader
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from llara_msgs.msg import ActionPlan, ActionStep, ExecutedStep, SimStatus, TaskResult
from llara_policy.errors import ConfigError
from llara_policy.recording import resolve_output_dir
from llara_policy.ros.recorder_node import (
    LATCHED_QOS,
    RECORDED_TOPICS,
    RELIABLE_QOS,
    RecorderNode,
)


def read_bag(path: Path) -> dict[str, list]:
    """Topic -> [(timestamp_ns, message)] with rosbags only (no ROS, no typestore given)."""
    messages: dict[str, list] = {}
    with AnyReader([path]) as reader:
        for connection in reader.connections:
            messages.setdefault(connection.topic, [])
        for connection, timestamp, raw in reader.messages():
            messages[connection.topic].append(
                (timestamp, reader.deserialize(raw, connection.msgtype)))
    return messages


def frame(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (6, 8, 3), dtype=np.uint8)


def step_fields(step) -> tuple:
    return (step.step_number, step.effector, step.object_text, step.pick_x_norm,
            step.pick_y_norm, step.place_x_norm, step.place_y_norm, step.rotation_cw_deg)


def image_message(pixels: np.ndarray) -> Image:
    height, width, _ = pixels.shape
    return Image(header=Header(frame_id='camera'), height=height, width=width, encoding='rgb8',
                 step=width * 3, data=pixels.tobytes())


def plan_message(query_id: int) -> ActionPlan:
    steps = [ActionStep(step_number=k + 1, effector=ActionStep.EFFECTOR_SUCTION,
                        object_text=f'red block {query_id}', pick_x_norm=0.125 * k,
                        pick_y_norm=0.5, place_x_norm=0.75, place_y_norm=0.25 + 0.01 * query_id,
                        rotation_cw_deg=-90 + k) for k in range(2)]
    return ActionPlan(instruction='put the red block in the bowl', raw_text=f'Step 1: {query_id}',
                      steps=steps, model_image_width=256, model_image_height=128,
                      inference_time_s=0.5, generated_tokens=42, query_id=query_id)


@pytest.fixture
def harness():
    h = ros_harness.Harness()
    try:
        yield h
    finally:
        h.close()


def start_recorder(h, output_dir: Path) -> RecorderNode:
    # Not h.add: the test destroys it itself (that is what finishes the bag).
    node = RecorderNode(context=h.context,
                        parameter_overrides=[Parameter('output_dir', value=str(output_dir))])
    h.executor.add_node(node)
    return node


def stop_recorder(h, node: RecorderNode) -> None:
    h.executor.remove_node(node)
    node.destroy_node()


def publish_and_wait(h, recorder, publisher, message, topic: str) -> None:
    before = recorder.recorder.counts[topic]
    h.wait(lambda: publisher.get_subscription_count() > 0, f'recorder on {topic}')
    publisher.publish(message)
    h.wait(lambda: recorder.recorder.counts[topic] > before, f'{topic} recorded')


def test_published_images_plans_and_status_come_back_from_the_bag(harness, tmp_path):
    h, bag = harness, tmp_path / 'episode'
    recorder = start_recorder(h, bag)
    image_pub = h.client.create_publisher(Image, 'camera/image', qos_profile_sensor_data)
    plan_pub = h.client.create_publisher(ActionPlan, 'policy/plan', RELIABLE_QOS)
    status_pub = h.client.create_publisher(SimStatus, 'sim/status', LATCHED_QOS)
    frames = [frame(seed) for seed in range(3)]
    plans = [plan_message(query_id) for query_id in (1, 2)]
    status = SimStatus(task='rotate', partition='placement_generalization', seed=-7, steps=2,
                       max_steps=3, success=True, done=True)
    start_ns = time.time_ns()
    for pixels in frames:
        publish_and_wait(h, recorder, image_pub, image_message(pixels), '/camera/image')
    for plan in plans:
        publish_and_wait(h, recorder, plan_pub, plan, '/policy/plan')
    publish_and_wait(h, recorder, status_pub, status, '/sim/status')
    h.spin_for(0.2)  # nothing else may arrive
    stop_recorder(h, recorder)
    end_ns = time.time_ns()

    assert (bag / 'metadata.yaml').is_file() and list(bag.glob('*.mcap'))
    messages = read_bag(bag)
    # Every topic of the contract is declared, even the silent ones.
    assert set(messages) == {'/' + topic for topic, _, _ in RECORDED_TOPICS}
    assert {t: len(m) for t, m in messages.items() if m} == {
        '/camera/image': 3, '/policy/plan': 2, '/sim/status': 1}
    stamps = [stamp for m in messages.values() for stamp, _ in m]
    assert all(start_ns <= stamp <= end_ns for stamp in stamps)  # receive times
    images = messages['/camera/image']
    assert [stamp for stamp, _ in images] == sorted(stamp for stamp, _ in images)
    for pixels, (_, image) in zip(frames, images, strict=True):
        assert (image.height, image.width, image.encoding, image.header.frame_id) == (
            6, 8, 'rgb8', 'camera')
        np.testing.assert_array_equal(np.asarray(image.data).reshape(6, 8, 3), pixels)
    for sent, (_, got) in zip(plans, messages['/policy/plan'], strict=True):
        assert type(got).__msgtype__ == 'llara_msgs/msg/ActionPlan'
        assert (got.instruction, got.raw_text, got.query_id, got.model_image_width,
                got.model_image_height, got.generated_tokens, got.inference_time_s) == (
            sent.instruction, sent.raw_text, sent.query_id, 256, 128, 42, 0.5)
        assert [step_fields(s) for s in got.steps] == [step_fields(s) for s in sent.steps]
    (_, got_status), = messages['/sim/status']
    assert (got_status.task, got_status.partition, got_status.seed, got_status.steps,
            got_status.max_steps, got_status.success, got_status.done) == (
        'rotate', 'placement_generalization', -7, 2, 3, True, True)


def test_executed_steps_and_task_results_come_back_from_the_bag(harness, tmp_path):
    h, bag = harness, tmp_path / 'episode'
    recorder = start_recorder(h, bag)
    executed_pub = h.client.create_publisher(ExecutedStep, 'executor/executed', RELIABLE_QOS)
    result_pub = h.client.create_publisher(TaskResult, 'task/result', RELIABLE_QOS)
    sent = plan_message(3).steps[0]
    moved = ActionStep(step_number=1, pick_x_norm=0.126, pick_y_norm=0.5,
                       place_x_norm=0.75, place_y_norm=0.28, rotation_cw_deg=89)
    executed = ExecutedStep(
        header=Header(frame_id='link_base'), requested=sent, model_image_width=256,
        model_image_height=128, mapped=True, executed=moved,
        pick_in_base=Point(x=0.31, y=-0.12, z=0.0), place_in_base=Point(x=0.42, y=0.2, z=0.0),
        yaw_change_deg=-89.0, success=True, message='executed')
    refused = ExecutedStep(requested=sent, mapped=False, error_code=3, message='outside')
    result = TaskResult(instruction='put the red block in the bowl', max_steps=8,
                        success=True, message='success', steps=[moved])
    for message in (executed, refused):
        publish_and_wait(h, recorder, executed_pub, message, '/executor/executed')
    publish_and_wait(h, recorder, result_pub, result, '/task/result')
    stop_recorder(h, recorder)

    messages = read_bag(bag)
    got = [m for _, m in messages['/executor/executed']]
    assert [type(m).__msgtype__ for m in got] == ['llara_msgs/msg/ExecutedStep'] * 2
    assert (got[0].header.frame_id, got[0].mapped, got[0].success, got[0].yaw_change_deg,
            got[0].model_image_width, got[0].model_image_height) == (
        'link_base', True, True, -89.0, 256, 128)
    assert (got[0].pick_in_base.x, got[0].pick_in_base.y, got[0].place_in_base.x,
            got[0].place_in_base.y) == (0.31, -0.12, 0.42, 0.2)
    assert step_fields(got[0].requested) == step_fields(sent)
    assert step_fields(got[0].executed) == step_fields(moved)
    assert (got[1].mapped, got[1].success, got[1].error_code, got[1].message) == (
        False, False, 3, 'outside')
    (_, task), = messages['/task/result']
    assert (task.instruction, task.max_steps, task.success, task.message) == (
        'put the red block in the bowl', 8, True, 'success')
    assert [step_fields(s) for s in task.steps] == [step_fields(moved)]


def test_bag_type_hashes_match_the_built_llara_msgs(harness, tmp_path):
    # rosidl's own hashes (the .json next to the built .msg): a bag whose definitions drift
    # from the installed interfaces would be refused by `ros2 bag play`.
    recorder = start_recorder(harness, tmp_path / 'bag')
    stop_recorder(harness, recorder)
    share = Path(get_package_share_directory('llara_msgs')) / 'msg'
    with AnyReader([tmp_path / 'bag']) as reader:
        hashes = {c.msgtype: c.digest for c in reader.connections}
    for msgtype in ('llara_msgs/msg/ActionPlan', 'llara_msgs/msg/PolicyQuery',
                    'llara_msgs/msg/SimStatus', 'llara_msgs/msg/PolicyStatus',
                    'llara_msgs/msg/ExecutedStep', 'llara_msgs/msg/TaskResult'):
        description = share / (msgtype.rsplit('/', 1)[1] + '.json')
        expected = json.loads(description.read_text())['type_hashes'][0]['hash_string']
        assert hashes[msgtype] == expected, msgtype


def test_non_empty_output_dir_is_refused(harness, tmp_path):
    (tmp_path / 'old.mcap').write_bytes(b'x')
    with pytest.raises(ConfigError, match='not empty'):
        RecorderNode(context=harness.context,
                     parameter_overrides=[Parameter('output_dir', value=str(tmp_path))])
    assert [p.name for p in tmp_path.iterdir()] == ['old.mcap']


def test_default_output_dir_is_a_timestamped_folder_under_recordings(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = resolve_output_dir('', now=datetime(2026, 1, 2, 3, 4, 5))
    assert path == Path('recordings/20260102-030405') and not path.exists()
    (tmp_path / 'empty').mkdir()
    assert resolve_output_dir(str(tmp_path / 'empty')) == tmp_path / 'empty'


def run_recorder(*params: str) -> subprocess.Popen:
    env = dict(os.environ, ROS_DOMAIN_ID=str(ros_harness.TEST_DOMAIN_ID))
    args = [a for p in params for a in ('-p', p)]
    return subprocess.Popen([sys.executable, '-m', 'llara_policy.ros.recorder_node',
                             '--ros-args', *args], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def test_process_exits_2_on_a_used_output_dir(tmp_path):
    (tmp_path / 'metadata.yaml').write_text('old')
    process = run_recorder(f'output_dir:={tmp_path}')
    out, _ = process.communicate(timeout=ros_harness.WAIT_S)
    assert process.returncode == 2, out
    assert 'cannot start' in out and 'not empty' in out


def test_ctrl_c_finishes_a_readable_bag(tmp_path):
    bag = tmp_path / 'bag'
    process = run_recorder(f'output_dir:={bag}')
    try:
        end = time.monotonic() + ros_harness.WAIT_S
        lines = []
        while not any('recording' in line for line in lines):
            assert time.monotonic() < end and process.poll() is None, lines
            lines.append(process.stdout.readline())
        process.send_signal(signal.SIGINT)
        out, _ = process.communicate(timeout=ros_harness.WAIT_S)
    finally:
        if process.poll() is None:
            process.kill()
    # (Its 'closed' log line may be lost: rclpy's SIGINT handler has shut logging down.)
    assert process.returncode == 0, out
    assert set(read_bag(bag)) == {'/' + topic for topic, _, _ in RECORDED_TOPICS}
