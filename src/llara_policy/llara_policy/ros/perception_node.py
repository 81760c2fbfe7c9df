"""perception_node: camera frames as sensor_msgs/Image (+ CameraInfo) at a set rate.

Parameters are the fields of `camera.CameraConfig`. Publishes `camera/image` (rgb8) and
`camera/camera_info` with sensor-data QoS, stamped with the capture time and `frame_id`, and
`camera/status` (std_msgs/String holding JSON; reliable, transient local) whenever the camera's
state changes. A lost camera is logged once per loss, counted, reopened with backoff by
`CameraSource`, and never makes the node republish an old frame or exit.

With a `calibration_file`, frames must have the calibration's image size: the executor maps
points with that calibration, so a frame of another size would send the arm to wrong targets.
The first frame is read at start-up and a mismatch is a start-up error naming the file (exit
2); a mismatch found later (the camera was lost at start, or changed its mode) publishes no
frame and stops the node with the same error.
"""
from collections.abc import Callable
import json
from typing import Optional

import numpy as np
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from rclpy.time import Time
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header, String

from llara_policy.camera import (
    CameraConfig,
    CameraEndedError,
    CameraLostError,
    CameraSource,
    Frame,
)
from llara_policy.errors import CalibrationError, ConfigError
from llara_policy.geometry.calibration import Calibration, load_calibration
from llara_policy.geometry.transforms import CameraIntrinsics, PinholeCamera
from llara_policy.ros.image_conversion import camera_info_message, numpy_to_image
from llara_policy.ros.params import declare_config
from llara_policy.ros.run import run_node

NODE_NAME = 'perception_node'
IMAGE_TOPIC = 'camera/image'
CAMERA_INFO_TOPIC = 'camera/camera_info'
STATUS_TOPIC = 'camera/status'
# Late joiners (a monitor, the policy node) get the current state at once.
STATUS_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                        durability=DurabilityPolicy.TRANSIENT_LOCAL)


def intrinsics_of(calibration: Calibration) -> Optional[CameraIntrinsics]:
    """Pinhole intrinsics of a calibration, or None for a mapping without them."""
    mapping = calibration.mapping
    return mapping.intrinsics if isinstance(mapping, PinholeCamera) else None


def check_frame_size(frame: Frame, calibration: Calibration, path: str) -> None:
    """Raise CalibrationError naming `path` unless the frame has the calibration's size."""
    height, width = frame.rgb.shape[:2]
    if (width, height) != (calibration.image_width_px, calibration.image_height_px):
        raise CalibrationError(
            f'{path}: the calibration is for {calibration.image_width_px}x'
            f'{calibration.image_height_px} images but the camera delivers {width}x{height} '
            'frames; calibrate this camera mode (or set width_px/height_px to the '
            "calibration's size)")


class PerceptionNode(Node):
    """Publishes the frames of one `CameraSource`; reports and survives camera loss.

    `frame_provider` (a callable returning RGB uint8) feeds the 'sim' source in-process and
    `intrinsics` then gives its CameraInfo; `capture_factory` replaces OpenCV (tests).
    """

    def __init__(self, frame_provider: Optional[Callable[[], np.ndarray]] = None,
                 intrinsics: Optional[CameraIntrinsics] = None, capture_factory=None, **kwargs):
        super().__init__(NODE_NAME, **kwargs)
        self.config = declare_config(self, CameraConfig)
        path = self.config.calibration_file
        # The calibration whose image size every frame must have (none without a file).
        self.calibration: tuple[Calibration, ...] = (load_calibration(path),) if path else ()
        if intrinsics is None and self.calibration:
            intrinsics = intrinsics_of(self.calibration[0])
            if intrinsics is None:
                self.get_logger().warning(f'{self.config.calibration_file} has no pinhole '
                                       'intrinsics: no CameraInfo is published')
        if intrinsics is not None and self.config.width_px and (
                (intrinsics.width_px, intrinsics.height_px)
                != (self.config.width_px, self.config.height_px)):
            raise ConfigError(f'intrinsics (calibration_file {self.config.calibration_file!r}) '
                              f'are for {intrinsics.width_px}x{intrinsics.height_px} frames, '
                              f'width_px/height_px ask for {self.config.width_px}x'
                              f'{self.config.height_px}')
        self.intrinsics = intrinsics
        self.source = CameraSource(self.config, frame_provider, capture_factory,
                                   clock_ns=lambda: self.get_clock().now().nanoseconds)
        self.image_pub = self.create_publisher(Image, IMAGE_TOPIC, qos_profile_sensor_data)
        self.info_pub = self.create_publisher(CameraInfo, CAMERA_INFO_TOPIC,
                                              qos_profile_sensor_data)
        self.status_pub = self.create_publisher(String, STATUS_TOPIC, STATUS_QOS)
        self._state = 'starting'
        self._size_warned = False
        self._first: list[Frame] = []  # the start-up frame, published at the first tick
        self._publish_status()
        if self.calibration:
            self._check_first_frame()
        # Its own group: a slow camera read never holds up other callbacks of the executor.
        self.timer = self.create_timer(1.0 / self.config.rate_hz, self.on_timer,
                                       callback_group=MutuallyExclusiveCallbackGroup())
        self.get_logger().info(f'camera {self.config.source!r} ({self.source.kind.value}) at '
                               f'{self.config.rate_hz} Hz on {self.image_pub.topic_name}')

    def _check_first_frame(self) -> None:
        """Read a frame now and refuse to start if its size is not the calibration's."""
        try:
            frame = self.source.read()
        except (CameraLostError, CameraEndedError) as err:
            self.get_logger().warning(f'no frame at start-up ({err}); the calibration size '
                                      'is checked on the first frame')
            return
        self._check_size(frame)
        self._first.append(frame)

    def _check_size(self, frame: Frame) -> None:
        if self.calibration:
            try:
                check_frame_size(frame, self.calibration[0], self.config.calibration_file)
            except CalibrationError:
                self._set_state('calibration_mismatch')
                raise

    def on_timer(self) -> None:
        """Read one frame and publish it; on loss publish nothing but the status."""
        try:
            frame = self._first.pop() if self._first else self.source.read()
        except CameraLostError as err:
            if err.episode_started:
                self.get_logger().warning(f'camera lost ({self.source.health.loss_episodes} '
                                       f'so far): {err}')
            self._set_state('lost')
            return
        except CameraEndedError as err:
            if self._state != 'ended':
                self.get_logger().info(f'{err}; no more frames (loop is off)')
            self._set_state('ended')
            self.timer.cancel()
            return
        self._check_size(frame)  # raises: run_node stops the node with the error
        header = Header(stamp=Time(nanoseconds=frame.stamp_ns).to_msg(),
                        frame_id=self.config.frame_id)
        self.image_pub.publish(numpy_to_image(frame.rgb, 'rgb8', header))
        self._publish_camera_info(header, frame.rgb.shape)
        if self._state == 'lost':
            self.get_logger().info(f'camera {self.config.source!r} is back')
        self._set_state('streaming')

    def _publish_camera_info(self, header: Header, shape) -> None:
        if self.intrinsics is None:
            return
        if (self.intrinsics.height_px, self.intrinsics.width_px) != tuple(shape[:2]):
            if not self._size_warned:
                self._size_warned = True
                self.get_logger().warning(
                    f'frames are {shape[1]}x{shape[0]} but the intrinsics are for '
                    f'{self.intrinsics.width_px}x{self.intrinsics.height_px}: no CameraInfo')
            return
        self.info_pub.publish(camera_info_message(self.intrinsics, header))

    def _set_state(self, state: str) -> None:
        if state != self._state:
            self._state = state
            self._publish_status()

    def _publish_status(self) -> None:
        health = self.source.health
        self.status_pub.publish(String(data=json.dumps({
            'state': self._state, 'source': self.config.source, 'frames': health.frames,
            'loss_episodes': health.loss_episodes, 'failed_opens': health.failed_opens,
            'last_error': health.last_error})))

    def destroy_node(self):
        """Release the camera with the node."""
        self.source.close()
        return super().destroy_node()


def main(args=None) -> int:
    """Entry point of `perception_node`."""
    return run_node(PerceptionNode, args=args, multithreaded=True)


if __name__ == '__main__':
    raise SystemExit(main())
