"""VIMA's fixed front-view map (LLaRA eval/vima_utils.py) and LLaRA's rotation convention."""
import math

from hypothesis import given, settings
from hypothesis import strategies as st
import numpy as np
import pytest

from llara_policy.errors import ValueRangeError
from llara_policy.geometry.transforms import CameraIntrinsics, PinholeCamera, RigidTransform
from llara_policy.geometry.vima_map import (
    VimaFixedMap,
    llara_rotation_from_yaw_delta,
    llara_rotation_to_yaw_delta_rad,
    vima_model_point_to_table,
    vima_pixels_to_table_xy,
    vima_table_to_model_point,
    vima_table_xy_to_pixels,
)
from llara_policy.types import ImagePoint


def test_workspace_corners_land_on_the_documented_pixels():
    # llara-spec 2.2: the workspace covers rows 34-123 and columns 3-254 of the 256x128 view.
    pixels = vima_table_xy_to_pixels([[0.25, -0.5], [0.75, 0.5], [0.25, 0.5], [0.75, -0.5]])
    assert pixels.tolist() == [[3.0, 34.0], [254.0, 123.0], [254.0, 34.0], [3.0, 123.0]]
    assert vima_table_to_model_point(0.25, -0.5) == ImagePoint(3 / 256, 34 / 128)
    assert vima_table_to_model_point(0.75, 0.5) == ImagePoint(254 / 256, 123 / 128)


def test_forward_map_truncates_toward_zero():
    # (y + 0.5) * 251 + 3 = 100.9 -> column 100; a column of -0.5 truncates to 0, not -1.
    y_m = (100.9 - 3) / 251 - 0.5
    x_m = (70.99 - 34) / 178 + 0.25
    assert vima_table_xy_to_pixels([x_m, y_m]).tolist() == [[100.0, 70.0]]
    assert vima_table_xy_to_pixels([0.25, -0.5 - 3.5 / 251]).tolist() == [[0.0, 34.0]]


@settings(deadline=None, max_examples=300)
@given(st.floats(0.25, 0.75), st.floats(-0.5, 0.5))
def test_labels_are_whole_pixels_and_map_back_within_one_pixel(x_m, y_m):
    point = vima_table_to_model_point(x_m, y_m)
    assert (point.x_norm * 256).is_integer() and (point.y_norm * 128).is_integer()
    back_x, back_y = vima_model_point_to_table(point)
    # Truncation loses under one pixel: 1/178 m along x, 1/251 m along y, always toward -.
    assert -1e-12 <= x_m - back_x < 1 / 178 + 1e-12
    assert -1e-12 <= y_m - back_y < 1 / 251 + 1e-12


def test_inverse_map_matches_the_spec_formula_on_a_released_answer():
    # llara-spec 2.1: 'Pick up the <p>polka dot letter A</p> at <b>(0.320,  0.547)</b>, ...'
    x_m, y_m = vima_model_point_to_table(ImagePoint(0.320, 0.547))
    assert y_m == (0.320 * 256 - 3) / 251 - 0.5
    assert x_m == (0.547 * 128 - 34) / 178 + 0.25


def test_inverse_map_clips_to_vima_action_bounds():
    assert vima_model_point_to_table(ImagePoint(0.0, 0.0)) == (0.25, -0.5)
    assert vima_model_point_to_table(ImagePoint(1.0, 1.0)) == (0.75, 0.5)
    np.testing.assert_array_equal(vima_pixels_to_table_xy([[-100.0, 500.0]]), [[0.75, -0.5]])


def test_forward_map_rejects_points_off_the_front_view():
    with pytest.raises(ValueRangeError, match='outside'):
        vima_table_to_model_point(2.0, 0.0)


def test_fixed_map_object_matches_the_functions():
    fixed = VimaFixedMap()
    np.testing.assert_array_equal(fixed.pixels_to_table_xy([81.92, 70.016]),
                                  vima_pixels_to_table_xy([81.92, 70.016]))
    np.testing.assert_array_equal(fixed.table_xy_to_pixels([0.4, 0.1]),
                                  vima_table_xy_to_pixels([0.4, 0.1]))


def test_fixed_map_is_an_affine_model_of_vimas_front_camera():
    # vimabench-spec A.10: a near-orthographic camera ~1414 m away at 45 degrees, focal
    # 64e4 // 1.80 px, at (1000.41, 0, 1000); its table rays agree with the map within 1 cm.
    focal_px = 64e4 // 1.80
    camera = PinholeCamera(CameraIntrinsics(256, 128, focal_px, focal_px, 127.5, 63.5),
                           RigidTransform.look_at((1000.41, 0.0, 1000.0), (0.41, 0.0, 0.0)))
    columns, rows = np.meshgrid(np.arange(3.0, 255.0, 10.0), np.arange(34.0, 124.0, 5.0))
    pixels = np.column_stack([columns.ravel(), rows.ravel()])
    from_camera = camera.pixels_to_base(pixels, 0.0)[:, :2]
    assert np.max(np.abs(from_camera - vima_pixels_to_table_xy(pixels))) < 0.01


def test_llara_rotation_convention():
    # eval/eval-llara.py parse_bc: place rotation about z by -r degrees.
    assert llara_rotation_to_yaw_delta_rad(90) == -math.pi / 2
    assert llara_rotation_to_yaw_delta_rad(-116) == math.radians(116)
    # convert_vima.ipynb get_action_info: text = -int(yaw_place - yaw_pick).
    assert llara_rotation_from_yaw_delta(45.7) == -45
    assert llara_rotation_from_yaw_delta(-45.7) == 45
    assert llara_rotation_from_yaw_delta(0.4) == 0
    with pytest.raises(ValueRangeError):
        llara_rotation_from_yaw_delta(math.nan)


@given(st.integers(-359, 359))
def test_llara_rotation_round_trips_whole_degrees(rotation_cw_deg):
    yaw_delta_deg = math.degrees(llara_rotation_to_yaw_delta_rad(rotation_cw_deg))
    assert llara_rotation_from_yaw_delta(round(yaw_delta_deg)) == rotation_cw_deg
