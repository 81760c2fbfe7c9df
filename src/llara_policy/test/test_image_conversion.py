"""Image <-> numpy: round trips, row padding, byte order, colour conversion, refusals, CameraInfo,
and (where cv_bridge is installed) equality with cv_bridge."""
import itertools
import sys

import cv2
import numpy as np
import pytest
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from llara_policy.geometry.transforms import CameraIntrinsics
from llara_policy.ros.image_conversion import (
    ENCODINGS,
    ImageConversionError,
    camera_info_message,
    image_to_numpy,
    numpy_to_image,
)

RNG = np.random.default_rng(7)


def random_image(encoding: str, height=5, width=7) -> np.ndarray:
    dtype, channels = ENCODINGS[encoding]
    shape = (height, width) if channels == 1 else (height, width, channels)
    if dtype.startswith('float'):
        return RNG.normal(size=shape).astype(dtype)
    return RNG.integers(0, np.iinfo(dtype).max, size=shape, endpoint=True).astype(dtype)


@pytest.mark.parametrize('encoding', sorted(ENCODINGS))
def test_round_trip_keeps_pixels_shape_and_dtype(encoding):
    array = random_image(encoding)
    header = Header(frame_id='cam')
    msg = numpy_to_image(array, encoding, header)
    assert (msg.height, msg.width, msg.encoding, msg.header.frame_id) == (5, 7, encoding, 'cam')
    assert msg.step == 7 * array.itemsize * (1 if array.ndim == 2 else array.shape[2])
    assert len(msg.data) == msg.step * msg.height
    back = image_to_numpy(msg)
    assert back.dtype == array.dtype and back.shape == array.shape
    np.testing.assert_array_equal(back, array)


def test_passthrough_names_the_opencv_type():
    assert numpy_to_image(np.zeros((2, 3, 3), np.uint8)).encoding == '8UC3'
    assert numpy_to_image(np.zeros((2, 3), np.float32)).encoding == '32FC1'
    assert numpy_to_image(np.zeros((2, 3), np.uint16)).encoding == '16UC1'


def test_padded_rows_are_read_through_step():
    array = random_image('rgb8', 4, 5)
    padded = np.full((4, 5 * 3 + 9), 0xEE, np.uint8)  # 9 bytes of padding per row
    padded[:, :15] = array.reshape(4, 15)
    msg = Image(height=4, width=5, encoding='rgb8', step=24, data=padded.tobytes())
    back = image_to_numpy(msg)
    np.testing.assert_array_equal(back, array)
    assert back.flags.c_contiguous and back.flags.writeable


def test_big_endian_messages_are_read_in_native_order():
    values = np.array([[1, 258, 65535], [4096, 0, 513]], np.uint16)
    msg = Image(height=2, width=3, encoding='mono16', is_bigendian=1, step=6,
                data=values.astype('>u2').tobytes())
    back = image_to_numpy(msg)
    np.testing.assert_array_equal(back, values)
    assert back.dtype == np.dtype('=u2')
    msg_be = numpy_to_image(values.astype('>u2'), 'mono16')
    assert msg_be.is_bigendian == 1
    np.testing.assert_array_equal(image_to_numpy(msg_be), values)
    assert numpy_to_image(values, 'mono16').is_bigendian == int(sys.byteorder == 'big')


COLOUR = ('rgb8', 'bgr8', 'rgba8', 'bgra8', 'mono8')
CV_NAME = {'rgb8': 'RGB', 'bgr8': 'BGR', 'rgba8': 'RGBA', 'bgra8': 'BGRA', 'mono8': 'GRAY'}


@pytest.mark.parametrize('source,target', list(itertools.permutations(COLOUR, 2)))
def test_colour_conversions_match_opencv(source, target):
    array = random_image(source)
    got = image_to_numpy(numpy_to_image(array, source), target)
    want = cv2.cvtColor(array, getattr(cv2, f'COLOR_{CV_NAME[source]}2{CV_NAME[target]}'))
    np.testing.assert_array_equal(got, want)


def test_rgb_to_bgr_reverses_channels_and_generic_types_read_as_same_layout():
    array = random_image('rgb8')
    np.testing.assert_array_equal(image_to_numpy(numpy_to_image(array, 'rgb8'), 'bgr8'),
                                  array[..., ::-1])
    np.testing.assert_array_equal(image_to_numpy(numpy_to_image(array), 'bgr8'), array)


@pytest.mark.parametrize('array,encoding,match', [
    (np.zeros((2, 3, 3), np.float32), 'rgb8', 'needs uint8'),
    (np.zeros((2, 3), np.uint8), 'rgb8', '3 channel'),
    (np.zeros((2, 3, 4), np.uint8), 'bgr8', '3 channel'),
    (np.zeros((2, 3, 3), np.uint8), 'yuv422', 'unsupported image encoding'),
    (np.zeros((2, 3, 3), np.int64), 'passthrough', 'no image encoding'),
    (np.zeros((2,), np.uint8), 'mono8', r'\(H, W\)'),
    (np.zeros((0, 3), np.uint8), 'mono8', r'\(H, W\)'),
])
def test_arrays_that_do_not_fit_the_encoding_are_refused(array, encoding, match):
    with pytest.raises(ImageConversionError, match=match):
        numpy_to_image(array, encoding)


def test_messages_that_do_not_fit_are_refused():
    good = numpy_to_image(random_image('rgb8'), 'rgb8')
    short = Image(height=good.height, width=good.width, encoding='rgb8', step=good.step,
                  data=bytes(good.data)[:-1])
    with pytest.raises(ImageConversionError, match='bytes'):
        image_to_numpy(short)
    narrow = Image(height=good.height, width=good.width, encoding='rgb8', step=good.step - 1,
                   data=bytes(good.data))
    with pytest.raises(ImageConversionError, match='step'):
        image_to_numpy(narrow)
    unknown = Image(height=1, width=1, encoding='bayer_rggb8', step=1, data=b'\0')
    with pytest.raises(ImageConversionError, match='bayer_rggb8'):
        image_to_numpy(unknown)
    with pytest.raises(ImageConversionError, match='cannot convert mono16 to rgb8'):
        image_to_numpy(numpy_to_image(random_image('mono16'), 'mono16'), 'rgb8')
    assert isinstance(ImageConversionError('x'), ValueError)


def test_camera_info_carries_the_intrinsics():
    k = CameraIntrinsics(640, 480, 600.0, 610.0, 320.5, 240.25, (0.1, -0.2, 0.001, 0.002, 0.03))
    msg = camera_info_message(k, Header(frame_id='cam'))
    assert (msg.width, msg.height, msg.header.frame_id) == (640, 480, 'cam')
    assert msg.distortion_model == 'plumb_bob'
    np.testing.assert_allclose(msg.d, k.distortion)
    np.testing.assert_allclose(np.reshape(msg.k, (3, 3)), k.camera_matrix())
    np.testing.assert_allclose(np.reshape(msg.p, (3, 4))[:, :3], k.camera_matrix())
    np.testing.assert_allclose(np.reshape(msg.r, (3, 3)), np.eye(3))


def test_equal_to_cv_bridge_where_installed():
    cv_bridge = pytest.importorskip(
        'cv_bridge', reason="cv_bridge is not installed (PyPI wheels have none; a robot's ROS "
        'install has it): equality with cv_bridge not checked here')
    bridge = cv_bridge.CvBridge()
    for encoding in ('rgb8', 'bgr8', 'mono8', 'mono16', '16UC1', '32FC1', 'bgra8'):
        array = random_image(encoding)
        ours, theirs = numpy_to_image(array, encoding), bridge.cv2_to_imgmsg(array, encoding)
        for field in ('height', 'width', 'encoding', 'step', 'is_bigendian'):
            assert getattr(ours, field) == getattr(theirs, field), (encoding, field)
        assert bytes(ours.data) == bytes(theirs.data)
        np.testing.assert_array_equal(image_to_numpy(theirs), bridge.imgmsg_to_cv2(theirs))
    assert bridge.cv2_to_imgmsg(np.zeros((2, 3, 3), np.uint8)).encoding == \
        numpy_to_image(np.zeros((2, 3, 3), np.uint8)).encoding
    for source, target in itertools.permutations(COLOUR, 2):
        msg = numpy_to_image(random_image(source), source)
        np.testing.assert_array_equal(image_to_numpy(msg, target),
                                      bridge.imgmsg_to_cv2(msg, target), err_msg=f'{source}')
