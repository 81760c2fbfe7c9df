"""Calibration file (version 1): round trips, validation naming the bad field, and the mapper."""
import copy
import dataclasses
import math

from hypothesis import given, settings
from hypothesis import strategies as st
import numpy as np
import pytest
from synthetic_cameras import TABLE_Z_M, cameras, straight_down_camera
import yaml

from llara_policy.errors import CalibrationError, ProjectionError
from llara_policy.execution import ModelFrameMapper, RotationConvention, model_point_to_base
from llara_policy.geometry.calibration import (
    Calibration,
    calibration_to_dict,
    load_calibration,
    pinhole_calibration,
    save_calibration,
    vima_fixed_calibration,
)
from llara_policy.geometry.preprocessing import FramePreprocess
from llara_policy.geometry.transforms import (
    BasePoint,
    CameraIntrinsics,
    PinholeCamera,
    RigidTransform,
    TableHomography,
)
from llara_policy.geometry.vima_map import vima_model_point_to_table, vima_table_to_model_point
from llara_policy.types import ImagePoint

INTRINSICS = CameraIntrinsics(640, 480, 610.5, 608.25, 321.7, 238.1,
                              (0.08, -0.12, 0.0007, -0.0004, 0.03))
POSE = RigidTransform.look_at((0.9, 0.25, 0.75), (0.42, -0.03, 0.0))
HOMOGRAPHY = TableHomography(((2.1e-4, 1.3e-3, 0.11), (1.2e-3, -1.7e-4, -0.37),
                              (1.1e-6, 3.0e-5, 1.0)))


def pinhole() -> Calibration:
    return pinhole_calibration('front_cam', INTRINSICS, POSE, table_z_m=0.013)


def homography() -> Calibration:
    return Calibration(camera_id='front_cam', image_width_px=640, image_height_px=480,
                       mapping=HOMOGRAPHY, table_z_m=-0.002, date='2025-03-29',
                       method='normalized DLT + Gauss-Newton, 12 point pairs', fit_rms_px=0.41,
                       fit_rms_m=0.0012)


@pytest.mark.parametrize('make', [pinhole, homography, vima_fixed_calibration])
def test_save_and_load_round_trip_exactly(tmp_path, make):
    cal = make()
    path = tmp_path / 'calibration.yaml'
    save_calibration(cal, path)
    loaded = load_calibration(path)
    assert loaded == cal
    save_calibration(loaded, tmp_path / 'again.yaml')
    assert (tmp_path / 'again.yaml').read_text() == path.read_text()


@settings(deadline=None, max_examples=50)
@given(cameras(), st.floats(-0.3, 0.3), st.floats(0.0, 2.0), st.dates().map(str))
def test_random_pinhole_calibrations_round_trip(tmp_path_factory, camera, table_z_m, rms, date):
    cal = dataclasses.replace(
        pinhole_calibration('cam', camera.intrinsics, camera.base_from_camera, table_z_m),
        fit_rms_px=rms, date=date)
    path = tmp_path_factory.mktemp('cal') / 'calibration.yaml'
    save_calibration(cal, path)
    assert load_calibration(path) == cal


def test_file_layout_is_versioned_and_readable(tmp_path):
    save_calibration(pinhole(), tmp_path / 'c.yaml')
    data = yaml.safe_load((tmp_path / 'c.yaml').read_text())
    assert list(data)[:3] == ['version', 'camera_id', 'mapping']
    assert data['version'] == 1 and data['mapping'] == 'pinhole'
    assert set(data['pinhole']) == {'fx_px', 'fy_px', 'cx_px', 'cy_px', 'distortion',
                                    'base_from_camera'}
    assert 'homography' not in data


def test_unquoted_yaml_dates_are_accepted(tmp_path):
    text = (tmp_path / 'c.yaml')
    save_calibration(homography(), text)
    text.write_text(text.read_text().replace("'2025-03-29'", '2025-03-29'))
    assert load_calibration(text).date == '2025-03-29'


def put(*keys_and_value):
    """A corruption that sets data[k1][k2]... = value."""
    *keys, value = keys_and_value

    def corrupt(data):
        target = data
        for key in keys[:-1]:
            target = target[key]
        target[keys[-1]] = value
    return corrupt


def drop(*keys):
    def corrupt(data):
        target = data
        for key in keys[:-1]:
            target = target[key]
        del target[keys[-1]]
    return corrupt


PINHOLE_CORRUPTIONS = [
    (drop('version'), 'version must be 1'),
    (put('version', 2), 'version must be 1, got 2'),
    (put('version', True), 'version must be 1'),
    (put('mapping', 'fisheye'), 'mapping must be one of'),
    (put('colour', 'red'), 'unknown key colour'),
    (drop('camera_id'), 'missing key camera_id'),
    (put('camera_id', ''), 'camera_id'),
    (put('camera_id', 7), 'camera_id'),
    (put('image_width_px', 0), 'image_width_px must be an integer in [1, inf], got 0'),
    (put('image_width_px', 640.5), 'image_width_px'),
    (put('image_width_px', '640'), 'image_width_px'),
    (put('image_height_px', -480), 'image_height_px'),
    (put('base_frame', ''), 'base_frame'),
    (put('base_frame', '/link_base'), 'base_frame'),
    (put('camera_frame', 'camera optical'), 'camera_frame'),
    (put('table_z_m', 'low'), 'table_z_m'),
    (put('table_z_m', math.nan), 'table_z_m'),
    (put('table_z_m', math.inf), 'table_z_m'),
    (put('date', '2025-13-01'), 'date must be an ISO date'),
    (put('date', 'yesterday'), 'date'),
    (put('date', 20250329), 'date'),
    (put('method', ''), 'method'),
    (put('fit_rms_px', -1.0), 'fit_rms_px must be a finite number in [0.0, inf], got -1.0'),
    (put('fit_rms_m', math.nan), 'fit_rms_m'),
    (drop('pinhole'), 'missing key pinhole'),
    (put('homography', {'base_xy_from_pixel': [[1, 0, 0], [0, 1, 0], [0, 0, 1]]}),
     'unknown key homography'),
    (put('pinhole', 'yes'), 'pinhole must be a mapping'),
    (put('pinhole', 'fx_px', -3), 'pinhole.fx_px must be > 0, got -3'),
    (put('pinhole', 'fy_px', 0.0), 'pinhole.fy_px must be > 0'),
    (put('pinhole', 'fx_px', True), 'pinhole.fx_px'),
    (put('pinhole', 'cx_px', 'centre'), 'pinhole.cx_px'),
    (put('pinhole', 'cy_px', math.nan), 'pinhole.cy_px'),
    (put('pinhole', 'distortion', [0.0, 0.0, 0.0, 0.0]), 'pinhole.distortion'),
    (put('pinhole', 'distortion', 'none'), 'pinhole.distortion'),
    (put('pinhole', 'distortion', ['0', '0', '0', '0', '0']), 'pinhole.distortion'),
    (put('pinhole', 'distortion', [0.0, 0.0, 0.0, 0.0, math.inf]), 'pinhole.distortion'),
    (put('pinhole', 'k1', 0.1), 'unknown key pinhole.k1'),
    (drop('pinhole', 'cx_px'), 'missing key pinhole.cx_px'),
    (put('pinhole', 'base_from_camera', [0, 0, 0]), 'pinhole.base_from_camera must be a mapping'),
    (put('pinhole', 'base_from_camera', 'translation_m', [0.0, 0.0]),
     'pinhole.base_from_camera.translation_m'),
    (put('pinhole', 'base_from_camera', 'translation_m', '0 0 0'),
     'pinhole.base_from_camera.translation_m'),
    (put('pinhole', 'base_from_camera', 'quat_xyzw', [0.0, 0.0, 0.0, 2.0]),
     'pinhole.base_from_camera.quat_xyzw must have unit norm'),
    (drop('pinhole', 'base_from_camera', 'quat_xyzw'),
     'missing key pinhole.base_from_camera.quat_xyzw'),
    (put('pinhole', 'base_from_camera', 'rpy', [0, 0, 0]),
     'unknown key pinhole.base_from_camera.rpy'),
]

HOMOGRAPHY_CORRUPTIONS = [
    (put('homography', 'base_xy_from_pixel', [[1, 2, 3], [2, 4, 6], [0, 0, 1]]),
     'homography.base_xy_from_pixel must be an invertible'),
    (put('homography', 'base_xy_from_pixel', [[1, 0, 0], [0, 1, 0]]),
     'homography.base_xy_from_pixel must be 3 rows of 3'),
    (put('homography', 'base_xy_from_pixel', [[1, 0, 0], [0, 1, 0], [0, 'x', 1]]),
     'homography.base_xy_from_pixel'),
    (put('homography', 'base_xy_from_pixel', [[1, 0, 0], [0, 1, 0], [0, 0, True]]),
     'homography.base_xy_from_pixel'),
    (put('homography', 'extra', 1), 'unknown key homography.extra'),
    (drop('homography'), 'missing key homography'),
    (put('pinhole', {}), 'unknown key pinhole'),
]

VIMA_CORRUPTIONS = [
    (put('image_width_px', 640), 'vima_fixed needs image size 256x128'),
    (put('homography', {}), 'unknown key homography'),
]


def corrupted_file(tmp_path, cal, corrupt):
    data = copy.deepcopy(calibration_to_dict(cal))
    corrupt(data)
    path = tmp_path / 'calibration.yaml'
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.mark.parametrize('make, corrupt, message', (
    [(pinhole, c, m) for c, m in PINHOLE_CORRUPTIONS]
    + [(homography, c, m) for c, m in HOMOGRAPHY_CORRUPTIONS]
    + [(vima_fixed_calibration, c, m) for c, m in VIMA_CORRUPTIONS]))
def test_every_invalid_field_is_named(tmp_path, make, corrupt, message):
    path = corrupted_file(tmp_path, make(), corrupt)
    with pytest.raises(CalibrationError) as caught:
        load_calibration(path)
    assert str(caught.value).startswith(f'{path}: ')
    assert message in str(caught.value)


def test_spec_example_message(tmp_path):
    path = corrupted_file(tmp_path, pinhole(), put('pinhole', 'fx_px', -3))
    with pytest.raises(CalibrationError) as caught:
        load_calibration(path)
    assert str(caught.value) == f'{path}: pinhole.fx_px must be > 0, got -3'


@pytest.mark.parametrize('text', ['version: [1\n', '- 1\n- 2\n', ''])
def test_unreadable_files_are_calibration_errors(tmp_path, text):
    path = tmp_path / 'calibration.yaml'
    path.write_text(text)
    with pytest.raises(CalibrationError, match=str(path)):
        load_calibration(path)
    with pytest.raises(CalibrationError, match='cannot read'):
        load_calibration(tmp_path / 'missing.yaml')


def test_constructor_validates_too():
    with pytest.raises(CalibrationError, match='intrinsics are for 640x480'):
        dataclasses.replace(pinhole(), image_width_px=1280)
    with pytest.raises(CalibrationError, match='mapping must be one of'):
        dataclasses.replace(pinhole(), mapping='pinhole')
    assert pinhole().kind == 'pinhole' and vima_fixed_calibration().kind == 'vima_fixed'


@pytest.mark.parametrize('field, value', [
    ('table_z_m', True), ('fit_rms_px', np.bool_(False)), ('image_width_px', np.bool_(True))])
def test_bools_are_not_calibration_numbers(field, value):
    with pytest.raises(CalibrationError, match=field):
        dataclasses.replace(homography(), **{field: value})


def test_numpy_scalars_are_stored_as_plain_numbers(tmp_path):
    cal = dataclasses.replace(homography(), table_z_m=np.float32(0.25),
                              image_width_px=np.int64(640), fit_rms_m=np.float64(0.001))
    assert type(cal.table_z_m) is float and type(cal.image_width_px) is int
    save_calibration(cal, tmp_path / 'c.yaml')
    assert load_calibration(tmp_path / 'c.yaml') == cal


def test_mapper_rejects_a_preprocess_for_another_camera_size():
    with pytest.raises(CalibrationError, match='1280x720'):
        ModelFrameMapper(pinhole(), FramePreprocess.centered_crop(1280, 720))


@settings(deadline=None, max_examples=60)
@given(cameras(), st.floats(0.2, 0.8), st.floats(0.2, 0.8), st.floats(0.0, 0.1))
def test_pinhole_mapper_round_trips_model_points(camera, x_norm, y_norm, height_m):
    cal = pinhole_calibration('cam', camera.intrinsics, camera.base_from_camera, TABLE_Z_M)
    pre = FramePreprocess.centered_crop(camera.intrinsics.width_px, camera.intrinsics.height_px)
    mapper = ModelFrameMapper(cal, pre)
    base = mapper.model_point_to_base(ImagePoint(x_norm, y_norm), height_m)
    assert base.z_m == pytest.approx(TABLE_Z_M + height_m)
    again = mapper.base_to_model_point(base)
    assert (again.x_norm, again.y_norm) == pytest.approx((x_norm, y_norm), abs=1e-9)
    model_pixel = mapper.base_to_model_pixels(base.as_array())[0]
    np.testing.assert_allclose(model_pixel, (x_norm * 256, y_norm * 128), atol=1e-7)
    assert model_point_to_base(cal, pre, ImagePoint(x_norm, y_norm), height_m) == base


def test_vima_mapper_is_exactly_llaras_map():
    mapper = ModelFrameMapper(vima_fixed_calibration(), FramePreprocess.full_frame(256, 128))
    for point in (ImagePoint(0.320, 0.547), ImagePoint(0.543, 0.836), ImagePoint(0.0, 1.0)):
        base = mapper.model_point_to_base(point)
        assert (base.x_m, base.y_m) == vima_model_point_to_table(point) and base.z_m == 0.0
    assert mapper.base_to_model_point(BasePoint(0.5, 0.1, 0.0)) == vima_table_to_model_point(
        0.5, 0.1)
    with pytest.raises(ProjectionError, match='height_m must be 0'):
        mapper.model_point_to_base(ImagePoint(0.5, 0.5), height_m=0.05)


def test_homography_and_pinhole_of_one_undistorted_camera_agree():
    camera = PinholeCamera(dataclasses.replace(INTRINSICS, distortion=(0.0,) * 5), POSE)
    table = np.array([[0.3, -0.2], [0.6, -0.15], [0.55, 0.2], [0.3, 0.25]])
    pixels = camera.base_to_pixels(np.column_stack([table, np.zeros(4)]))
    from llara_policy.geometry.calibration_fit import (
        fit_homography,  # the fit is tested on its own
    )
    plane = dataclasses.replace(homography(), table_z_m=0.0,
                                mapping=fit_homography(pixels, table).homography)
    ray = pinhole_calibration('cam', camera.intrinsics, POSE, table_z_m=0.0)
    pre = FramePreprocess.centered_crop(640, 480)
    for point in (ImagePoint(0.5, 0.5), ImagePoint(0.1, 0.9), ImagePoint(0.95, 0.05)):
        a = model_point_to_base(plane, pre, point).as_array()
        b = model_point_to_base(ray, pre, point).as_array()
        np.testing.assert_allclose(a, b, atol=1e-9)
    with pytest.raises(ProjectionError, match='only the table plane'):
        model_point_to_base(plane, pre, ImagePoint(0.5, 0.5), height_m=0.1)


@pytest.mark.parametrize('camera_yaw_deg', [0.0, 30.0, -120.0, 180.0])
@pytest.mark.parametrize('rotation_cw_deg', [0, 45, -90, 170, 270, -359])
def test_rotation_conventions_on_a_straight_down_camera(camera_yaw_deg, rotation_cw_deg):
    camera = straight_down_camera(math.radians(camera_yaw_deg))
    cal = pinhole_calibration('top', camera.intrinsics, camera.base_from_camera, TABLE_Z_M)
    # The centred 2:1 crop keeps square pixels, so on-screen angles are table angles.
    mapper = ModelFrameMapper(cal, FramePreprocess.centered_crop(640, 480))
    point = ImagePoint(0.3, 0.7)
    expected = -math.radians(rotation_cw_deg)
    image_plane = mapper.rotation_to_yaw_delta_rad(point, rotation_cw_deg,
                                                   RotationConvention.IMAGE_PLANE)
    assert image_plane == pytest.approx(expected, abs=1e-9)
    assert mapper.rotation_to_yaw_delta_rad(point, rotation_cw_deg) == expected


def test_anisotropic_preprocess_changes_image_plane_angles():
    camera = straight_down_camera(0.0)
    cal = pinhole_calibration('top', camera.intrinsics, camera.base_from_camera, TABLE_Z_M)
    # 640x480 squeezed into 256x128: model pixels are 2.5 x 3.75 camera pixels.
    mapper = ModelFrameMapper(cal, FramePreprocess.full_frame(640, 480))
    delta = mapper.rotation_to_yaw_delta_rad(ImagePoint(0.5, 0.5), 45,
                                             RotationConvention.IMAGE_PLANE)
    assert delta == pytest.approx(-math.atan2(3.75, 2.5), abs=1e-9)
