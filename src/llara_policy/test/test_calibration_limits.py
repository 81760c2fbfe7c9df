"""Physically wrong calibration files are refused at load, naming the field (hand-written YAML).

Each file here is YAML text written in the test, not produced by save_calibration, so the
checks are tested against what a person (or another tool) would actually write.
"""
import logging
import math

import numpy as np
import pytest

from llara_policy.errors import CalibrationError, ConfigError
from llara_policy.geometry.calibration import load_calibration
from llara_policy.geometry.calibration_limits import CalibrationLimits

# A valid 256x128 pinhole calibration: a camera 0.9 m above the base looking straight down
# (180 degrees about x), table 13 mm above the base frame's z = 0.
PINHOLE_YAML = """\
version: 1
camera_id: front_cam
mapping: pinhole
image_width_px: 256
image_height_px: 128
base_frame: link_base
camera_frame: camera_color_optical_frame
table_z_m: 0.013
date: 2025-03-29
method: hand-written test file
fit_rms_px: 0.4
fit_rms_m: 0.001
pinhole:
  fx_px: 457.5
  fy_px: 457.5
  cx_px: 127.5
  cy_px: 63.5
  distortion: [0.0, 0.0, 0.0, 0.0, 0.0]
  base_from_camera:
    translation_m: [0.4, 0.0, 0.9]
    quat_xyzw: [1.0, 0.0, 0.0, 0.0]
"""

# A 640x480 homography at 2 mm per pixel: the image centre lands at (0.679, 0.339) m.
HOMOGRAPHY_YAML = """\
version: 1
camera_id: top_cam
mapping: homography
image_width_px: 640
image_height_px: 480
base_frame: link_base
camera_frame: camera_color_optical_frame
table_z_m: 0.0
date: '2025-03-29'
method: hand-written test file
fit_rms_px: 0.3
fit_rms_m: 0.0006
homography:
  base_xy_from_pixel:
  - [0.0, 0.002, 0.2]
  - [0.002, 0.0, -0.3]
  - [0.0, 0.0, 1.0]
"""


def write(tmp_path, text: str, old: str = '', new: str = ''):
    """Write `text` with `old` replaced by `new` (which must occur once) to calibration.yaml."""
    if old:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    path = tmp_path / 'calibration.yaml'
    path.write_text(text)
    return path


def load_error(path, limits=None) -> str:
    with pytest.raises(CalibrationError) as caught:
        load_calibration(path, limits or CalibrationLimits())
    message = str(caught.value)
    assert message.startswith(f'{path}: ')
    return message


def test_the_hand_written_files_load_as_written(tmp_path):
    cal = load_calibration(write(tmp_path, PINHOLE_YAML))
    assert cal.table_z_m == 0.013 and cal.notes == ()
    assert cal.mapping.base_from_camera.translation_m == (0.4, 0.0, 0.9)
    assert cal.mapping.intrinsics.cx_px == 127.5
    cal = load_calibration(write(tmp_path, HOMOGRAPHY_YAML))
    np.testing.assert_allclose(cal.mapping.pixels_to_table_xy((319.5, 239.5)), [[0.679, 0.339]])


def test_a_table_half_a_metre_below_the_base_is_refused(tmp_path):
    path = write(tmp_path, PINHOLE_YAML, 'table_z_m: 0.013', 'table_z_m: -0.5')
    message = load_error(path)
    assert 'table_z_m = -0.5 m' in message and 'max_abs_table_z_m = 0.3 m' in message


def test_the_table_limit_is_configurable(tmp_path):
    path = write(tmp_path, PINHOLE_YAML, 'table_z_m: 0.013', 'table_z_m: -0.5')
    assert load_calibration(path, CalibrationLimits(max_abs_table_z_m=0.6)).table_z_m == -0.5
    path = write(tmp_path, PINHOLE_YAML, 'table_z_m: 0.013', 'table_z_m: 0.25')
    message = load_error(path, CalibrationLimits(max_abs_table_z_m=0.2))
    assert 'max_abs_table_z_m = 0.2 m' in message


def test_a_translation_in_millimetres_is_refused_with_a_hint(tmp_path):
    path = write(tmp_path, PINHOLE_YAML, '[0.4, 0.0, 0.9]', '[1106.0, 0.0, 919.0]')
    message = load_error(path)
    assert 'pinhole.base_from_camera.translation_m' in message
    assert 'max_camera_distance_m = 5 m' in message and 'millimetres' in message


def test_a_far_camera_that_is_not_millimetres_gets_no_millimetre_hint(tmp_path):
    path = write(tmp_path, PINHOLE_YAML, '[0.4, 0.0, 0.9]', '[0.4, 0.0, 7000000.0]')
    message = load_error(path)
    assert 'pinhole.base_from_camera.translation_m' in message and 'millimetres' not in message


def test_a_homography_in_millimetres_is_refused_with_a_hint(tmp_path):
    text = HOMOGRAPHY_YAML.replace('[0.0, 0.002, 0.2]', '[0.0, 2.0, 200.0]')
    path = write(tmp_path, text, '[0.002, 0.0, -0.3]', '[2.0, 0.0, -300.0]')
    message = load_error(path)
    assert 'homography.base_xy_from_pixel' in message and 'millimetres' in message


@pytest.mark.parametrize('old, new, field', [
    ('cx_px: 127.5', 'cx_px: 5120.0', 'pinhole.cx_px'),  # 20x a 256 px image
    ('cx_px: 127.5', 'cx_px: -3.0', 'pinhole.cx_px'),
    ('cy_px: 63.5', 'cy_px: 2560.0', 'pinhole.cy_px'),
])
def test_a_principal_point_off_the_image_is_refused(tmp_path, old, new, field):
    message = load_error(write(tmp_path, PINHOLE_YAML, old, new))
    assert f'{field} must lie on the 256x128 image' in message


@pytest.mark.parametrize('old, new, key', [
    ('table_z_m: 0.013\n', 'table_z_m: 0.013\ntable_z_m: -0.013\n', 'table_z_m'),
    ('  fx_px: 457.5\n', '  fx_px: 457.5\n  fx_px: 600.0\n', 'fx_px'),
    ('    quat_xyzw: [1.0, 0.0, 0.0, 0.0]\n',
     '    quat_xyzw: [1.0, 0.0, 0.0, 0.0]\n    quat_xyzw: [0.0, 0.0, 0.0, 1.0]\n', 'quat_xyzw'),
])
def test_duplicate_keys_are_refused_naming_the_key(tmp_path, old, new, key):
    message = load_error(write(tmp_path, PINHOLE_YAML, old, new))
    assert f'duplicate key {key} (line' in message


# The sim camera's orientation as tf2_echo prints it (3 decimals): norm 1 - 0.00054.
TF2_ECHO_QUAT = '[-0.664, -0.664, 0.242, 0.242]'


def test_a_tf2_echo_quaternion_loads_normalized_with_a_note(tmp_path, caplog):
    path = write(tmp_path, PINHOLE_YAML, '[1.0, 0.0, 0.0, 0.0]', TF2_ECHO_QUAT)
    with caplog.at_level(logging.WARNING):
        cal = load_calibration(path)
    quat = np.array(cal.mapping.base_from_camera.quat_xyzw)
    assert np.linalg.norm(quat) == pytest.approx(1.0, abs=1e-12)
    raw = np.array([-0.664, -0.664, 0.242, 0.242])
    np.testing.assert_allclose(quat, raw / np.linalg.norm(raw), atol=1e-15)
    assert len(cal.notes) == 1 and 'normalized' in cal.notes[0]
    assert 'pinhole.base_from_camera.quat_xyzw' in cal.notes[0]
    assert any('normalized' in record.getMessage() for record in caplog.records)


def test_a_quaternion_far_from_unit_is_refused_saying_how_far(tmp_path):
    path = write(tmp_path, PINHOLE_YAML, '[1.0, 0.0, 0.0, 0.0]', '[0.99, 0.0, 0.0, 0.0]')
    message = load_error(path)
    assert 'pinhole.base_from_camera.quat_xyzw must have unit norm' in message
    assert 'got norm 0.99 (0.01 from 1)' in message and 'tf2_echo' in message


@pytest.mark.parametrize('old, new, message', [
    ('fit_rms_px: 0.4', 'fit_rms_px: 2.5', 'fit_rms_px = 2.5 px exceeds '
     'CalibrationLimits.max_fit_rms_px = 2 px'),
    ('fit_rms_m: 0.001', 'fit_rms_m: 0.006', 'fit_rms_m = 0.006 m exceeds '
     'CalibrationLimits.max_fit_rms_m = 0.005 m'),
])
def test_residuals_above_the_limits_are_refused(tmp_path, old, new, message):
    assert message in load_error(write(tmp_path, PINHOLE_YAML, old, new))


def test_residual_limits_are_configurable(tmp_path):
    path = write(tmp_path, HOMOGRAPHY_YAML, 'fit_rms_px: 0.3', 'fit_rms_px: 2.5')
    assert load_calibration(path, CalibrationLimits(max_fit_rms_px=3.0)).fit_rms_px == 2.5
    assert 'max_fit_rms_m = 0.0005 m' in load_error(path, CalibrationLimits(
        max_fit_rms_px=3.0, max_fit_rms_m=0.0005))


@pytest.mark.parametrize('field, value', [
    ('max_fit_rms_px', 0.0), ('max_fit_rms_m', -1.0), ('max_abs_table_z_m', math.nan),
    ('max_camera_distance_m', True), ('max_table_z_mismatch_m', '0.01'),
])
def test_limits_are_validated_by_name(field, value):
    with pytest.raises(ConfigError, match=f'CalibrationLimits.{field}'):
        CalibrationLimits(**{field: value})


def test_limits_accept_numpy_scalars_as_plain_floats():
    limits = CalibrationLimits(max_fit_rms_px=np.float32(1.5), max_camera_distance_m=np.int64(3))
    assert type(limits.max_fit_rms_px) is float and limits.max_camera_distance_m == 3.0
