"""Frames, pinhole ray-plane geometry, homography maps and image-rotation -> yaw."""
import math

from hypothesis import given, settings
from hypothesis import strategies as st
import numpy as np
import pytest
from synthetic_cameras import TABLE_Z_M, cameras, fractions, inner_pixels, straight_down_camera

from llara_policy.errors import ProjectionError, ValueRangeError
from llara_policy.geometry.transforms import (
    BasePoint,
    CameraIntrinsics,
    PinholeCamera,
    RigidTransform,
    TableHomography,
    image_direction_to_yaw_rad,
    image_rotation_to_yaw_delta_rad,
    quat_xyzw_from_matrix,
    quat_xyzw_from_yaw,
)
from llara_policy.geometry.vima_map import vima_pixels_to_table_xy

unit_quaternions = st.lists(st.floats(-1.0, 1.0), min_size=4, max_size=4).filter(
    lambda q: np.linalg.norm(q) > 0.1).map(lambda q: tuple(np.array(q) / np.linalg.norm(q)))
translations = st.tuples(*[st.floats(-2.0, 2.0)] * 3)


def wrap(angle_rad: float) -> float:
    return (angle_rad + math.pi) % (2 * math.pi) - math.pi


@settings(deadline=None, max_examples=200)
@given(translations, unit_quaternions)
def test_transform_matrix_round_trips(translation, quat):
    transform = RigidTransform(translation, quat)
    again = RigidTransform.from_matrix(transform.matrix())
    np.testing.assert_allclose(again.matrix(), transform.matrix(), atol=1e-12)
    rotation = transform.rotation_matrix()
    np.testing.assert_allclose(rotation @ rotation.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(rotation) == pytest.approx(1.0)


@settings(deadline=None, max_examples=100)
@given(translations, unit_quaternions, translations, unit_quaternions)
def test_transform_inverse_and_composition(t1, q1, t2, q2):
    a_from_b, b_from_c = RigidTransform(t1, q1), RigidTransform(t2, q2)
    np.testing.assert_allclose((a_from_b @ a_from_b.inverse()).matrix(), np.eye(4), atol=1e-12)
    points = np.array([[0.1, -0.2, 0.3], [1.0, 2.0, -3.0]])
    np.testing.assert_allclose((a_from_b @ b_from_c).apply(points),
                               a_from_b.apply(b_from_c.apply(points)), atol=1e-12)


def test_transform_conventions():
    quarter_turn = RigidTransform((1.0, 2.0, 3.0), quat_xyzw_from_yaw(math.pi / 2))
    np.testing.assert_allclose(quarter_turn.apply([1.0, 0.0, 0.0]), [[1.0, 3.0, 3.0]],
                               atol=1e-15)
    assert quat_xyzw_from_matrix(np.eye(3)) == (0.0, 0.0, 0.0, 1.0)
    assert RigidTransform.identity().matrix().tolist() == np.eye(4).tolist()


@pytest.mark.parametrize('kwargs', [
    {'translation_m': (0.0, 0.0), 'quat_xyzw': (0.0, 0.0, 0.0, 1.0)},
    {'translation_m': (0.0, 0.0, math.nan), 'quat_xyzw': (0.0, 0.0, 0.0, 1.0)},
    {'translation_m': (0.0, 0.0, 0.0), 'quat_xyzw': (0.0, 0.0, 0.0, 2.0)},
    {'translation_m': (0.0, 0.0, 0.0), 'quat_xyzw': (0.0, 0.0, 1.0)},
    {'translation_m': 'abc', 'quat_xyzw': (0.0, 0.0, 0.0, 1.0)},
    {'translation_m': ('1', '2', '3'), 'quat_xyzw': (0.0, 0.0, 0.0, 1.0)},
    {'translation_m': (0.0, 0.0, 0.0), 'quat_xyzw': (False, False, False, True)},
])
def test_transform_rejects_bad_values(kwargs):
    with pytest.raises(ValueRangeError):
        RigidTransform(**kwargs)


def test_from_rotation_rejects_reflections_and_look_at_rejects_degenerate_views():
    with pytest.raises(ValueRangeError, match='determinant'):
        RigidTransform.from_rotation(np.diag([1.0, 1.0, -1.0]), (0.0, 0.0, 0.0))
    with pytest.raises(ValueRangeError, match='parallel'):
        RigidTransform.look_at((0.0, 0.0, 1.0), (0.0, 0.0, 0.0))


def test_look_at_builds_an_optical_frame():
    base_from_camera = RigidTransform.look_at((1.0, 0.0, 1.0), (0.0, 0.0, 0.0))
    rotation = base_from_camera.rotation_matrix()
    np.testing.assert_allclose(rotation[:, 2], np.array([-1.0, 0.0, -1.0]) / math.sqrt(2),
                               atol=1e-15)
    np.testing.assert_allclose(rotation[:, 0], [0.0, 1.0, 0.0], atol=1e-15)  # +x right
    assert rotation[2, 1] < 0  # +y (image down) points down in the world


@pytest.mark.parametrize('field, value', [
    ('width_px', 0), ('height_px', -1), ('width_px', 640.0), ('width_px', True),
    ('fx_px', -3.0), ('fy_px', 0.0), ('cx_px', math.inf), ('cy_px', 'a'),
    ('distortion', (0.0,) * 4), ('distortion', (0.0, 0.0, 0.0, 0.0, math.nan)),
])
def test_intrinsics_reject_bad_fields_by_name(field, value):
    fields = dict(width_px=640, height_px=480, fx_px=500.0, fy_px=500.0, cx_px=320.0,
                  cy_px=240.0)
    fields[field] = value
    with pytest.raises(ValueRangeError, match=field):
        CameraIntrinsics(**fields)


@settings(deadline=None, max_examples=150)
@given(cameras(), st.lists(fractions, min_size=1, max_size=5), st.floats(0.0, 0.1))
def test_robot_pixel_robot_round_trip_under_half_a_millimetre(camera, where, height_m):
    plane_z = TABLE_Z_M + height_m
    robot = camera.pixels_to_base(inner_pixels(camera, where), plane_z)
    np.testing.assert_allclose(robot[:, 2], plane_z, atol=1e-12)
    again = camera.pixels_to_base(camera.base_to_pixels(robot), plane_z)
    assert np.max(np.linalg.norm(again - robot, axis=1)) < 0.5e-3


@settings(deadline=None, max_examples=100)
@given(cameras(), st.lists(fractions, min_size=1, max_size=5))
def test_pixel_robot_pixel_round_trip(camera, where):
    pixels = inner_pixels(camera, where)
    again = camera.base_to_pixels(camera.pixels_to_base(pixels, TABLE_Z_M))
    np.testing.assert_allclose(again, pixels, atol=1e-6)


def test_ray_plane_rejects_parallel_rays_and_planes_behind_the_camera():
    camera = straight_down_camera(0.0)
    with pytest.raises(ProjectionError, match='behind'):
        camera.pixels_to_base([320.0, 240.0], plane_z_m=5.0)
    level = PinholeCamera(camera.intrinsics,
                          RigidTransform.look_at((0.0, 0.0, 1.0), (1.0, 0.0, 1.0)))
    principal = (level.intrinsics.cx_px, level.intrinsics.cy_px)
    with pytest.raises(ProjectionError, match='parallel'):
        level.pixels_to_base(principal, plane_z_m=0.0)
    with pytest.raises(ProjectionError, match='behind'):
        camera.base_to_pixels([0.4, 0.0, 2.0])


def test_object_height_moves_the_point_along_the_ray():
    camera = PinholeCamera(straight_down_camera(0.0).intrinsics,
                           RigidTransform.look_at((0.0, 0.0, 1.0), (0.5, 0.0, 0.0)))
    on_table = camera.pixels_to_base([400.0, 300.0], 0.0)[0]
    on_top = camera.pixels_to_base([400.0, 300.0], 0.1)[0]
    assert on_top[2] == pytest.approx(0.1)
    # Same ray: the camera, the raised point and the table point are collinear.
    origin = np.array(camera.base_from_camera.translation_m)
    direction = on_table - origin
    np.testing.assert_allclose(on_top, origin + direction * (1.0 - 0.1) / 1.0, atol=1e-12)


def test_base_point_array():
    assert BasePoint(0.1, 0.2, 0.3).as_array().tolist() == [0.1, 0.2, 0.3]


def test_homography_maps_both_ways_and_rejects_singular_matrices():
    matrix = ((0.002, 0.0001, -0.5), (-0.0003, 0.0021, 0.1), (1e-5, 2e-5, 1.0))
    homography = TableHomography(matrix)
    pixels = np.array([[10.0, 20.0], [600.0, 400.0]])
    np.testing.assert_allclose(
        homography.table_xy_to_pixels(homography.pixels_to_table_xy(pixels)), pixels, atol=1e-9)
    with pytest.raises(ValueRangeError, match='invertible'):
        TableHomography(((1.0, 2.0, 3.0), (2.0, 4.0, 6.0), (0.0, 0.0, 1.0)))
    with pytest.raises(ValueRangeError, match='base_xy_from_pixel'):
        TableHomography(((1.0, 0.0), (0.0, 1.0)))


def test_homography_rejects_points_on_the_horizon():
    homography = TableHomography(((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 1.0, -100.0)))
    with pytest.raises(ProjectionError, match='infinity'):
        homography.pixels_to_table_xy([5.0, 100.0])


@settings(deadline=None, max_examples=100)
@given(st.floats(-math.pi, math.pi), st.integers(-359, 359), fractions)
def test_straight_down_camera_rotation_maps_to_negative_yaw(camera_yaw, rotation_cw_deg, where):
    camera = straight_down_camera(camera_yaw)
    pixel = inner_pixels(camera, [where])[0]

    def to_table(pixels):
        return camera.pixels_to_base(pixels, TABLE_Z_M)

    # The image's +u axis lies along the camera's yaw; clockwise on screen is negative yaw.
    assert wrap(image_direction_to_yaw_rad(to_table, pixel, 0.0) - camera_yaw) == pytest.approx(
        0.0, abs=1e-9)
    direction = image_direction_to_yaw_rad(to_table, pixel, rotation_cw_deg)
    expected = camera_yaw - math.radians(rotation_cw_deg)
    assert wrap(direction - expected) == pytest.approx(0.0, abs=1e-9)
    delta = image_rotation_to_yaw_delta_rad(to_table, pixel, rotation_cw_deg)
    assert delta == pytest.approx(-math.radians(rotation_cw_deg), abs=1e-9)


def test_rotation_through_vima_map_shears_angles():
    # VIMA's map scales columns by 1/251 m and rows by 1/178 m (and image rows run along +x),
    # so an on-screen 45-degree turn is not a 45-degree yaw there; LLaRA uses yaw = -r instead.
    delta = image_rotation_to_yaw_delta_rad(vima_pixels_to_table_xy, (128.0, 64.0), 45.0)
    expected = -(math.pi / 2 - math.atan2(1 / 251, 1 / 178))
    assert delta == pytest.approx(expected, abs=1e-9)


def test_rotation_rejects_directions_that_collapse():
    with pytest.raises(ProjectionError, match='single point'):
        image_direction_to_yaw_rad(lambda pixels: np.zeros((2, 2)), (0.0, 0.0), 0.0)


def test_numpy_scalars_are_accepted_and_stored_as_python_numbers():
    intrinsics = CameraIntrinsics(np.int64(640), np.int32(480), np.float32(500.0),
                                  np.float64(500.0), np.float32(319.5), np.float64(239.5),
                                  tuple(np.zeros(5, dtype=np.float32)))
    assert type(intrinsics.width_px) is int and type(intrinsics.fx_px) is float
    assert intrinsics == CameraIntrinsics(640, 480, 500.0, 500.0, 319.5, 239.5)
    pose = RigidTransform((np.float32(0.5), np.int64(0), 1.0), tuple(np.array([0.0, 0, 0, 1])))
    assert pose.translation_m == (0.5, 0.0, 1.0) and type(pose.quat_xyzw[3]) is float


@pytest.mark.parametrize('field, value', [
    ('width_px', np.bool_(True)), ('fx_px', True), ('cx_px', np.bool_(False)),
    ('distortion', (0.0, 0.0, 0.0, 0.0, False)),
])
def test_bools_are_not_numbers(field, value):
    fields = dict(width_px=640, height_px=480, fx_px=500.0, fy_px=500.0, cx_px=319.5,
                  cy_px=239.5)
    fields[field] = value
    with pytest.raises(ValueRangeError, match=field):
        CameraIntrinsics(**fields)
    with pytest.raises(ValueRangeError, match='translation_m'):
        RigidTransform((True, 0.0, 0.0), (0.0, 0.0, 0.0, 1.0))


@pytest.mark.parametrize('field, value', [
    ('cx_px', 640.0), ('cx_px', -0.6), ('cy_px', 480.0), ('cy_px', 20 * 480.0)])
def test_the_principal_point_must_lie_on_the_image(field, value):
    fields = dict(width_px=640, height_px=480, fx_px=500.0, fy_px=500.0, cx_px=319.5,
                  cy_px=239.5)
    fields[field] = value
    with pytest.raises(ValueRangeError, match=f'{field} must lie on the 640x480 image'):
        CameraIntrinsics(**fields)
    fields[field] = -0.5  # the left / top edge of the first pixel is still on the image
    assert getattr(CameraIntrinsics(**fields), field) == -0.5
