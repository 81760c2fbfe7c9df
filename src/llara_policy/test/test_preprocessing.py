"""Model-frame preprocessing (crop + resize, LLaVA square pad): image ops and exact point maps."""
from hypothesis import given, settings
from hypothesis import strategies as st
import numpy as np
import pytest

from llara_policy.errors import ProjectionError, ValueRangeError
from llara_policy.geometry.preprocessing import (
    CLIP_MEAN_FILL_RGB,
    VISION_TOWER_SIZE_PX,
    FramePreprocess,
    SquarePad,
)
from llara_policy.types import ImagePoint

# The centroid of a smooth blob survives resampling to within this many output pixels.
CENTROID_TOLERANCE_PX = 0.05


def gaussian_blob(width_px, height_px, centre_uv, sigma_uv) -> np.ndarray:
    """A float32 (H, W) Gaussian centred at pixel coordinates centre_uv (integers = centres)."""
    u = np.exp(-0.5 * ((np.arange(width_px) - centre_uv[0]) / sigma_uv[0]) ** 2)
    v = np.exp(-0.5 * ((np.arange(height_px) - centre_uv[1]) / sigma_uv[1]) ** 2)
    return np.outer(v, u).astype(np.float32)


def centroid_uv(image: np.ndarray) -> np.ndarray:
    rows, columns = np.indices(image.shape[:2])
    mass = image.sum()
    return np.array([(columns * image).sum() / mass, (rows * image).sum() / mass])


@st.composite
def preprocesses(draw) -> FramePreprocess:
    """Crop boxes anywhere in the camera image, resized up or down (also anisotropically)."""
    model_w, model_h = draw(st.integers(48, 200)), draw(st.integers(48, 200))
    crop_w = max(1, round(model_w * draw(st.floats(0.5, 3.0))))
    crop_h = max(1, round(model_h * draw(st.floats(0.5, 3.0))))
    left, top = draw(st.integers(0, 40)), draw(st.integers(0, 40))
    camera_w = left + crop_w + draw(st.integers(0, 40))
    camera_h = top + crop_h + draw(st.integers(0, 40))
    return FramePreprocess(camera_w, camera_h, (left, top, crop_w, crop_h), model_w, model_h)


unit = st.floats(0.0, 1.0)


@settings(deadline=None, max_examples=200)
@given(preprocesses(), st.lists(st.tuples(unit, unit), min_size=1, max_size=6))
def test_point_maps_round_trip(pre, points):
    model_pixels = np.array(points) * [pre.model_width_px, pre.model_height_px]
    camera_pixels = pre.model_to_camera_pixels(model_pixels)
    np.testing.assert_allclose(pre.camera_to_model_pixels(camera_pixels), model_pixels,
                               atol=1e-9)
    for x_norm, y_norm in points:
        point = ImagePoint(x_norm, y_norm)
        again = pre.camera_pixel_to_model_point(pre.model_point_to_camera_pixel(point))
        assert again.x_norm == pytest.approx(x_norm, abs=1e-12)
        assert again.y_norm == pytest.approx(y_norm, abs=1e-12)


@settings(deadline=None, max_examples=60)
@given(preprocesses(), unit, unit)
def test_point_map_agrees_with_the_image_operation(pre, fx, fy):
    left, top, crop_w, crop_h = pre.crop_box_px
    shrink = np.array([crop_w / pre.model_width_px, crop_h / pre.model_height_px])
    # Wide enough to be smooth in both images, and fully inside the crop.
    sigma = 2.5 * np.maximum(1.0, shrink)
    margin = 4 * sigma
    dot = np.array([left + margin[0] + fx * (crop_w - 1 - 2 * margin[0]),
                    top + margin[1] + fy * (crop_h - 1 - 2 * margin[1])])
    image = gaussian_blob(pre.camera_width_px, pre.camera_height_px, dot, sigma)
    model_image = pre.apply(image)
    assert model_image.shape == (pre.model_height_px, pre.model_width_px)
    expected = pre.camera_to_model_pixels(dot)[0]
    np.testing.assert_allclose(centroid_uv(model_image), expected, atol=CENTROID_TOLERANCE_PX)


def test_dot_in_a_640x480_camera_found_in_the_256x128_model_frame():
    pre = FramePreprocess.centered_crop(640, 480)
    assert pre.crop_box_px == (0, 80, 640, 320)
    image = np.zeros((480, 640, 3), dtype=np.uint8)
    image[..., 1] = np.round(255 * gaussian_blob(640, 480, (401.3, 297.8), (6.0, 6.0)))
    model_image = pre.apply(image)
    assert model_image.shape == (128, 256, 3)
    found = centroid_uv(model_image[..., 1].astype(float))
    np.testing.assert_allclose(found, pre.camera_to_model_pixels((401.3, 297.8))[0], atol=0.05)
    point = pre.camera_pixel_to_model_point((401.3, 297.8))
    np.testing.assert_allclose(pre.model_point_to_camera_pixel(point), (401.3, 297.8))


def test_pixel_centre_convention_and_exact_identity():
    pre = FramePreprocess.full_frame(512, 256)
    # Pixel centres map to pixel centres: the 2x2 block centred on (0.5, 0.5) -> pixel (0, 0).
    np.testing.assert_allclose(pre.camera_to_model_pixels([[0.5, 0.5], [-0.5, -0.5]]),
                               [[0.0, 0.0], [-0.5, -0.5]])
    identity = FramePreprocess.full_frame(256, 128)
    assert identity.model_point_to_camera_pixel(ImagePoint(0.32, 0.547)).tolist() == [
        0.32 * 256, 0.547 * 128]


@pytest.mark.parametrize('camera, box', [
    ((640, 480), (0, 80, 640, 320)), ((1280, 720), (0, 40, 1280, 640)),
    ((200, 50), (50, 0, 100, 50)), ((256, 128), (0, 0, 256, 128)),
])
def test_centered_crop_keeps_the_model_aspect_ratio(camera, box):
    assert FramePreprocess.centered_crop(*camera).crop_box_px == box


@pytest.mark.parametrize('args', [
    (640, 480, (0, 0, 641, 480)), (640, 480, (-1, 0, 10, 10)), (640, 480, (0, 0, 0, 10)),
    (640, 480, (0, 0, 10)), (640, 480, (0.5, 0, 10, 10)), (0, 480, (0, 0, 1, 1)),
    (640, 480, (0, 0, 640, 480), 0, 128), (640, 480, (0, 0, 640, 480), 256, True),
])
def test_frame_preprocess_rejects_bad_boxes_and_sizes(args):
    with pytest.raises(ValueRangeError):
        FramePreprocess(*args)


def test_frame_preprocess_rejects_wrong_images_and_far_points():
    pre = FramePreprocess.full_frame(640, 480)
    with pytest.raises(ValueRangeError, match='640x480'):
        pre.apply(np.zeros((480, 641, 3), dtype=np.uint8))
    with pytest.raises(ProjectionError, match='outside'):
        pre.camera_pixel_to_model_point((700.0, 10.0))


def test_square_pad_matches_llava_expand2square():
    pad = SquarePad()
    assert CLIP_MEAN_FILL_RGB == (122, 116, 104)
    assert (pad.square_size_px, pad.offset_px, pad.output_size_px) == (256, (0, 64), 336)
    square = pad.pad(np.zeros((128, 256, 3), dtype=np.uint8))
    assert square[0, 0].tolist() == [122, 116, 104] and square[255, 255].tolist() == [122, 116,
                                                                                      104]
    assert square[64, 0].tolist() == [0, 0, 0] and square[191, 255].tolist() == [0, 0, 0]
    assert square[192, 0].tolist() == [122, 116, 104]
    assert pad.apply(np.zeros((128, 256, 3), dtype=np.uint8)).shape == (336, 336, 3)
    assert SquarePad(100, 300).offset_px == (100, 0)
    assert SquarePad(256, 127).offset_px == (0, 64)  # (max - min) // 2 rounds down


@st.composite
def square_pads(draw) -> SquarePad:
    return SquarePad(draw(st.integers(32, 300)), draw(st.integers(32, 300)),
                     draw(st.sampled_from([VISION_TOWER_SIZE_PX, 224, 160])))


@settings(deadline=None, max_examples=100)
@given(square_pads(), unit, unit)
def test_square_point_maps_round_trip(pad, x_norm, y_norm):
    point = ImagePoint(x_norm, y_norm)
    square_point = pad.frame_point_to_square_point(point)
    again = pad.square_point_to_frame_point(square_point)
    # Both ends clip the half pixel beyond the last pixel centre, so compare inside it.
    half_pixel = 0.5 / min(pad.frame_width_px, pad.frame_height_px)
    assert again.x_norm == pytest.approx(x_norm, abs=half_pixel)
    assert again.y_norm == pytest.approx(y_norm, abs=half_pixel)
    pixels = np.array([[x_norm * pad.frame_width_px, y_norm * pad.frame_height_px]])
    np.testing.assert_allclose(pad.square_to_frame_pixels(pad.frame_to_square_pixels(pixels)),
                               pixels, atol=1e-9)


@settings(deadline=None, max_examples=40)
@given(square_pads(), unit, unit)
def test_square_point_map_agrees_with_the_image_operation(pad, fx, fy):
    shrink = pad.square_size_px / pad.output_size_px
    sigma = 2.5 * max(1.0, shrink)
    margin = 4 * sigma
    if min(pad.frame_width_px, pad.frame_height_px) <= 2 * margin + 1:
        return
    dot = (margin + fx * (pad.frame_width_px - 1 - 2 * margin),
           margin + fy * (pad.frame_height_px - 1 - 2 * margin))
    blob = gaussian_blob(pad.frame_width_px, pad.frame_height_px, dot, (sigma, sigma))
    fill = np.array(pad.fill_rgb, dtype=np.float32)
    frame = fill + 100.0 * blob[..., None]
    output = pad.apply(frame)
    found = centroid_uv(output[..., 0] - fill[0])
    expected = pad.frame_to_square_pixels(dot)[0]
    np.testing.assert_allclose(found, expected, atol=CENTROID_TOLERANCE_PX)


def test_square_points_in_the_padding_have_no_frame_point():
    with pytest.raises(ProjectionError, match='outside'):
        SquarePad().square_point_to_frame_point(ImagePoint(0.5, 0.05))
    assert SquarePad().frame_point_to_square_point(ImagePoint(0.0, 0.0)).y_norm == pytest.approx(
        (64.5 * 336 / 256 - 0.5) / 336)


def test_square_pad_rejects_bad_settings_and_images():
    with pytest.raises(ValueRangeError, match='fill_rgb'):
        SquarePad(fill_rgb=(300, 0, 0))
    with pytest.raises(ValueRangeError, match='output_size_px'):
        SquarePad(output_size_px=0)
    with pytest.raises(ValueRangeError, match='RGB'):
        SquarePad().pad(np.zeros((128, 256), dtype=np.uint8))


def test_numpy_integers_are_accepted_and_stored_as_python_ints():
    pre = FramePreprocess(np.int64(640), np.int32(480), tuple(np.array([0, 60, 640, 320])),
                          np.int16(256), np.uint8(128))
    assert pre == FramePreprocess(640, 480, (0, 60, 640, 320))
    assert all(type(v) is int for v in (pre.camera_width_px, pre.model_height_px,
                                        *pre.crop_box_px))
    pad = SquarePad(np.int64(256), np.int64(128), np.int64(336), tuple(np.array([1, 2, 3])))
    assert pad.fill_rgb == (1, 2, 3) and type(pad.output_size_px) is int


@pytest.mark.parametrize('make, field', [
    (lambda: FramePreprocess(640, 480, (0, 0, 640, 480), np.bool_(True), 128),
     'model_width_px'),
    (lambda: FramePreprocess(640, 480, (False, 0, 640, 480)), r'crop_box_px\[0\]'),
    (lambda: SquarePad(fill_rgb=(True, 0, 0)), r'fill_rgb\[0\]'),
    (lambda: SquarePad(fill_rgb=(0, 0, 256)), r'fill_rgb\[2\]'),
    (lambda: SquarePad(output_size_px=336.0), 'output_size_px'),
])
def test_bools_and_floats_are_not_sizes(make, field):
    with pytest.raises(ValueRangeError, match=field):
        make()
