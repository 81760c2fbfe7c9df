"""perception_node in-process: folder replay published pixel-exact with stamps and frame id,
CameraInfo from a calibration file, camera loss reported without stale frames, recovery, the sim
provider; the executable's startup error."""
import json
import os
from pathlib import Path
import shutil
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import qos_profile_sensor_data
import ros_harness
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import String

from llara_policy.errors import CalibrationError
from llara_policy.geometry.calibration import save_calibration
from llara_policy.ros.image_conversion import image_to_numpy
from llara_policy.ros.perception_node import STATUS_QOS, PerceptionNode
from llara_policy.sim.camera import front_camera


class Harness(ros_harness.Harness):
    """The shared harness plus a listener node collecting the node's topics."""

    def __init__(self):
        super().__init__()
        self.listener = self.add(Node('listener', context=self.context))
        self.images, self.infos, self.statuses = [], [], []
        self.listener.create_subscription(Image, 'camera/image', self.images.append,
                                          qos_profile_sensor_data)
        self.listener.create_subscription(CameraInfo, 'camera/camera_info', self.infos.append,
                                          qos_profile_sensor_data)
        self.listener.create_subscription(
            String, 'camera/status', lambda m: self.statuses.append(json.loads(m.data)),
            STATUS_QOS)

    def perception(self, **params) -> PerceptionNode:
        provider = params.pop('frame_provider', None)
        intrinsics = params.pop('intrinsics', None)
        overrides = [Parameter(k, value=v) for k, v in params.items()]
        return self.add(PerceptionNode(provider, intrinsics, context=self.context,
                                       parameter_overrides=overrides))



@pytest.fixture
def harness():
    with Harness() as h:
        yield h


def write_frames(folder: Path, count: int, height=128, width=256, offset=0) -> list[np.ndarray]:
    """Distinct noisy RGB frames 000.png, 001.png, ... (PNG: lossless)."""
    folder.mkdir(exist_ok=True)
    rng = np.random.default_rng(offset)
    frames = []
    for i in range(count):
        rgb = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        cv2.imwrite(str(folder / f'{offset + i:03d}.png'), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        frames.append(rgb)
    return frames


def index_of(msg: Image, frames: list[np.ndarray]) -> int:
    pixels = image_to_numpy(msg, 'rgb8')
    matches = [i for i, frame in enumerate(frames) if np.array_equal(pixels, frame)]
    assert len(matches) == 1, 'a published image equals none of the source frames'
    return matches[0]


def stamp_ns(msg) -> int:
    return msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec


def test_folder_replay_is_published_pixel_exact_in_order_with_stamps_and_frame_id(
        harness, tmp_path):
    frames = write_frames(tmp_path / 'replay', 4)
    calibration = tmp_path / 'calibration.yaml'
    save_calibration(front_camera().calibration(), calibration)
    harness.perception(source=str(tmp_path / 'replay'), rate_hz=50.0, frame_id='cam_test',
                       calibration_file=str(calibration))
    harness.wait(lambda: len(harness.images) >= 8, '8 images')
    indices = [index_of(msg, frames) for msg in harness.images]
    # Sorted-name order, looping; best-effort QoS may drop one but never repeats a frame.
    assert all((b - a) % len(frames) != 0 for a, b in zip(indices[:-1], indices[1:], strict=True))
    assert sum((b - a) % len(frames) == 1 for a, b in zip(indices[:-1], indices[1:],
                                                          strict=True)) >= len(indices) // 2
    stamps = [stamp_ns(msg) for msg in harness.images]
    assert all(a < b for a, b in zip(stamps[:-1], stamps[1:], strict=True))
    # capture time on the ROS clock
    assert abs(stamps[-1] / 1e9 - time.time()) < ros_harness.WAIT_S
    assert {msg.header.frame_id for msg in harness.images} == {'cam_test'}
    assert {msg.encoding for msg in harness.images} == {'rgb8'}
    harness.wait(lambda: harness.infos, 'CameraInfo')
    info = harness.infos[-1]
    k = front_camera().intrinsics
    assert (info.width, info.height, info.header.frame_id) == (256, 128, 'cam_test')
    np.testing.assert_allclose(np.reshape(info.k, (3, 3)), k.camera_matrix())
    assert stamp_ns(info) in stamps or stamp_ns(info) > stamps[0]
    harness.wait(lambda: harness.statuses and harness.statuses[-1]['state'] == 'streaming',
                       'status streaming')


def test_lost_camera_is_reported_publishes_no_stale_frame_and_recovers(harness, tmp_path):
    folder = tmp_path / 'replay'
    frames = write_frames(folder, 3)
    node = harness.perception(source=str(folder), rate_hz=50.0, reconnect_initial_s=0.05,
                              reconnect_max_s=0.2)
    harness.wait(lambda: len(harness.images) >= 3, 'first images')
    # The camera goes away.
    aside = tmp_path / 'aside'
    shutil.move(folder, aside)
    folder.mkdir()
    harness.wait(lambda: harness.statuses and harness.statuses[-1]['state'] == 'lost',
                       'status lost')
    lost = harness.statuses[-1]
    assert lost['loss_episodes'] == 1 and 'camera' in lost['last_error']
    harness.spin_for(0.1)  # let anything published before the loss arrive
    count = len(harness.images)
    harness.spin_for(0.5)  # 25 timer periods without a camera
    assert len(harness.images) == count, 'an image was published while the camera was lost'
    assert node.source.health.failed_opens >= 2  # it keeps trying, with backoff
    # The camera comes back with new frames.
    new_frames = write_frames(folder, 2, offset=10)
    last_before = stamp_ns(harness.images[-1])
    harness.wait(lambda: len(harness.images) >= count + 3, 'images after recovery')
    after = harness.images[count:]
    assert all(stamp_ns(msg) > last_before for msg in after)
    for msg in after:
        index_of(msg, new_frames)  # only the new camera's frames, never an old one
    harness.wait(lambda: harness.statuses[-1]['state'] == 'streaming', 'status streaming')
    assert harness.statuses[-1]['loss_episodes'] == 1
    assert [s['state'] for s in harness.statuses].count('lost') == 1  # reported once
    del frames


def test_frames_of_another_size_than_the_calibration_are_a_start_up_error(harness, tmp_path):
    write_frames(tmp_path / 'replay', 2, height=256, width=512)  # the calibration: 256x128
    calibration = tmp_path / 'calibration.yaml'
    save_calibration(front_camera().calibration(), calibration)
    with pytest.raises(CalibrationError, match=f'{calibration}: the calibration is for 256x128 '
                       'images but the camera delivers 512x256 frames'):
        harness.perception(source=str(tmp_path / 'replay'), calibration_file=str(calibration))


def test_a_size_mismatch_found_after_start_up_publishes_nothing_and_stops(harness, tmp_path):
    folder = tmp_path / 'replay'
    folder.mkdir()  # no frame at start-up: the check waits for the first frame
    calibration = tmp_path / 'calibration.yaml'
    save_calibration(front_camera().calibration(), calibration)
    # Not spun by the harness: the error a tick raises stops run_node's spin, not a test thread.
    node = PerceptionNode(context=harness.context, parameter_overrides=[
        Parameter('source', value=str(folder)), Parameter('rate_hz', value=1.0),
        Parameter('calibration_file', value=str(calibration)),
        Parameter('reconnect_initial_s', value=0.01), Parameter('reconnect_max_s', value=0.01)])
    try:
        write_frames(folder, 1, height=64, width=128)
        time.sleep(0.05)  # past the reopen backoff
        with pytest.raises(CalibrationError, match='delivers 128x64 frames'):
            for _ in range(20):  # the folder is reopened after the backoff, then read
                node.on_timer()
                time.sleep(0.02)
        harness.spin_for(0.3)
        assert harness.images == []
        harness.wait(lambda: harness.statuses and
                     harness.statuses[-1]['state'] == 'calibration_mismatch', 'status')
    finally:
        node.destroy_node()


def test_sim_provider_frames_and_intrinsics(harness, world):
    camera = front_camera()
    rgb = world.render(camera)[0]
    harness.perception(source='sim', rate_hz=30.0, frame_id='sim_front_optical_frame',
                       frame_provider=lambda: world.render(camera)[0],
                       intrinsics=camera.intrinsics)
    harness.wait(lambda: harness.images and harness.infos, 'a sim image and CameraInfo')
    np.testing.assert_array_equal(image_to_numpy(harness.images[0]), rgb)
    assert harness.infos[0].header.frame_id == 'sim_front_optical_frame'
    assert harness.infos[0].width == rgb.shape[1]


def test_executable_reports_a_bad_parameter_in_one_line_and_exits_2():
    env = dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST')
    result = subprocess.run(
        [sys.executable, '-m', 'llara_policy.ros.perception_node', '--ros-args',
         '-p', 'rate_hz:=-1.0', '-p', 'source:=sim'],
        capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 2, result.stderr
    assert 'rate_hz' in result.stderr and 'Traceback' not in result.stderr
    result = subprocess.run(
        [sys.executable, '-m', 'llara_policy.ros.perception_node', '--ros-args',
         '-p', 'source:=sim'], capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 2 and 'provider' in result.stderr, result.stderr
