"""sensor_msgs/Image <-> numpy with cv_bridge's semantics, without cv_bridge.

`image_to_numpy(msg, desired_encoding)` and `numpy_to_image(array, encoding, header)` behave like
`CvBridge.imgmsg_to_cv2` / `cv2_to_imgmsg` (ros-perception/vision_opencv cv_bridge/core.py): rows
are read through `step` (padding dropped), the message's byte order is honoured, 'passthrough'
keeps the data as sent, colour conversions among the 8-bit colour encodings use OpenCV's, and an
image whose dtype or channel count does not fit the encoding is refused. It needs only numpy
and OpenCV, so it works with the PyPI wheels (no cv_bridge there) and on a robot's ROS install.
"""
import sys

import cv2
import numpy as np
from sensor_msgs.msg import CameraInfo, Image

from llara_policy.errors import LlaraError

# encoding -> (numpy dtype, channels); names as in sensor_msgs/image_encodings.hpp.
ENCODINGS = {
    'rgb8': ('uint8', 3), 'bgr8': ('uint8', 3), 'rgba8': ('uint8', 4), 'bgra8': ('uint8', 4),
    'mono8': ('uint8', 1), 'mono16': ('uint16', 1),
    'rgb16': ('uint16', 3), 'bgr16': ('uint16', 3),
    '8UC1': ('uint8', 1), '8UC3': ('uint8', 3), '8UC4': ('uint8', 4),
    '16UC1': ('uint16', 1), '32FC1': ('float32', 1), '64FC1': ('float64', 1),
}
# OpenCV's type names for 'passthrough' (cv_bridge's numpy_type_to_cvtype).
_CV_DEPTH = {'uint8': '8U', 'uint16': '16U', 'float32': '32F', 'float64': '64F'}
_CV_COLOUR = {'rgb8': 'RGB', 'bgr8': 'BGR', 'rgba8': 'RGBA', 'bgra8': 'BGRA', 'mono8': 'GRAY'}


class ImageConversionError(LlaraError, ValueError):
    """An Image message or array does not fit its encoding, or a conversion is unsupported."""


def _layout(encoding: str) -> tuple[np.dtype, int]:
    try:
        dtype, channels = ENCODINGS[encoding]
    except KeyError:
        raise ImageConversionError(f'unsupported image encoding {encoding!r}; supported: '
                                   f'{", ".join(ENCODINGS)}') from None
    return np.dtype(dtype), channels


def image_to_numpy(msg: Image, desired_encoding: str = 'passthrough') -> np.ndarray:
    """Return the pixels of `msg` as (H, W) or (H, W, C) in native byte order (a fresh array).

    `desired_encoding` converts between the 8-bit colour encodings (e.g. 'rgb8' from a 'bgr8'
    message); 'passthrough' or the message's own encoding returns the data as sent.
    """
    dtype, channels = _layout(msg.encoding)
    dtype = dtype.newbyteorder('>' if msg.is_bigendian else '<')
    row_bytes = msg.width * channels * dtype.itemsize
    if msg.step < row_bytes:
        raise ImageConversionError(f'Image step {msg.step} is shorter than a row of {msg.width} '
                                   f'{msg.encoding} pixels ({row_bytes} bytes)')
    if len(msg.data) < msg.step * msg.height:
        raise ImageConversionError(f'Image data has {len(msg.data)} bytes, {msg.height} rows of '
                                   f'step {msg.step} need {msg.step * msg.height}')
    raw = np.frombuffer(msg.data, dtype=np.uint8, count=msg.step * msg.height)
    rows = raw.reshape(msg.height, msg.step)[:, :row_bytes]
    shape = (msg.height, msg.width) if channels == 1 else (msg.height, msg.width, channels)
    array = np.ascontiguousarray(rows).view(dtype).reshape(shape)
    array = array.astype(dtype.newbyteorder('='))  # native order, and a copy we own
    return convert_encoding(array, msg.encoding, desired_encoding)


def convert_encoding(array: np.ndarray, encoding: str, desired_encoding: str) -> np.ndarray:
    """Convert pixels in `encoding` to `desired_encoding` as cv_bridge's cvtColor2 does."""
    if desired_encoding in ('passthrough', encoding):
        return array
    source_layout, target_layout = _layout(encoding), _layout(desired_encoding)
    if encoding in _CV_COLOUR and desired_encoding in _CV_COLOUR:
        code = getattr(cv2, f'COLOR_{_CV_COLOUR[encoding]}2{_CV_COLOUR[desired_encoding]}')
        return cv2.cvtColor(array, code)
    if source_layout == target_layout and (encoding[0].isdigit() or desired_encoding[0].isdigit()):
        return array  # a generic type (8UC3) read as an encoding of the same dtype and channels
    raise ImageConversionError(f'cannot convert {encoding} to {desired_encoding}')


def numpy_to_image(array: np.ndarray, encoding: str = 'passthrough', header=None) -> Image:
    """Build an Image from (H, W) or (H, W, C) pixels; `encoding` must fit dtype and channels.

    'passthrough' names the OpenCV type ('8UC3', '32FC1'). No colour conversion happens here
    (as in cv_bridge): pass the array in the order the encoding names.
    """
    array = np.asarray(array)
    if array.ndim not in (2, 3) or array.size == 0:
        raise ImageConversionError(f'an image must be (H, W) or (H, W, C), got {array.shape}')
    channels = 1 if array.ndim == 2 else array.shape[2]
    depth = _CV_DEPTH.get(array.dtype.name)
    if encoding == 'passthrough':
        if depth is None:
            raise ImageConversionError(f'no image encoding for dtype {array.dtype}')
        encoding = f'{depth}C{channels}'
    dtype, expected = _layout(encoding)
    if array.dtype.newbyteorder('=') != dtype.newbyteorder('=') or channels != expected:
        raise ImageConversionError(f'encoding {encoding} needs {dtype} with {expected} '
                                   f'channel(s), got {array.dtype} with shape {array.shape}')
    msg = Image()
    if header is not None:
        msg.header = header
    msg.height, msg.width = int(array.shape[0]), int(array.shape[1])
    msg.encoding = encoding
    big = array.dtype.byteorder == '>' or (array.dtype.byteorder == '=' and
                                           sys.byteorder == 'big')
    msg.is_bigendian = int(big and array.dtype.itemsize > 1)
    msg.step = msg.width * channels * array.dtype.itemsize
    msg.data = np.ascontiguousarray(array).tobytes()
    return msg


def camera_info_message(intrinsics, header=None) -> CameraInfo:
    """CameraInfo of pinhole `intrinsics` (geometry.transforms.CameraIntrinsics), plumb_bob.

    No rectification: R is the identity and P is K with a zero fourth column (monocular).
    """
    msg = CameraInfo()
    if header is not None:
        msg.header = header
    msg.width, msg.height = intrinsics.width_px, intrinsics.height_px
    msg.distortion_model = 'plumb_bob'
    msg.d = [float(value) for value in intrinsics.distortion]
    k = intrinsics.camera_matrix()
    msg.k = k.reshape(-1).tolist()
    msg.r = np.eye(3).reshape(-1).tolist()
    msg.p = np.hstack([k, np.zeros((3, 1))]).reshape(-1).tolist()
    return msg
