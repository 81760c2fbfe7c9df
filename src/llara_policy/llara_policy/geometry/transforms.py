"""Frames and camera geometry: rigid transforms, pinhole projection, table-plane homography.

The executor is the only place that turns image points into robot points; this module holds the
maths it uses, with no ROS import. Pixel coordinates `pixel_uv` follow OpenCV: u right, v down,
integer values at pixel centres, (0, 0) the centre of the top-left pixel. The camera frame is the
optical frame (REP-103 `_optical`: +x right, +y down, +z forward); the base frame is the robot's
(e.g. xArm `link_base`: x forward, y left, z up). Lengths are metres.
"""
from dataclasses import dataclass
import math

import cv2
import numpy as np

from llara_policy.errors import ProjectionError, ValueRangeError
from llara_policy.types import check_int, check_real

# A ray whose direction has a z component below this (unit-vector) size runs parallel to a
# horizontal plane for any practical purpose: the intersection would lie kilometres away.
_MIN_RAY_Z = 1e-9
# How far a quaternion's norm may stray from 1 (float32 sources such as pybullet give ~1e-7).
QUAT_NORM_TOLERANCE = 1e-6
# Stop rule for cv2.undistortPoints' fixed-point iteration: the default (5 iterations) leaves
# sub-pixel errors with k1 ~ 0.1; 100 iterations down to 1e-12 px converge for mild distortion.
_UNDISTORT_CRITERIA = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 100, 1e-12)


def _leaves(values) -> list:
    """Flatten nested lists, tuples and arrays into their scalar leaves."""
    if isinstance(values, np.ndarray):
        return list(values.reshape(-1))
    if isinstance(values, (list, tuple)):
        return [leaf for value in values for leaf in _leaves(value)]
    return [values]


def _finite_floats(name: str, values, length: int) -> tuple[float, ...]:
    """Return `values` (possibly nested) as `length` finite Python floats or raise.

    Each leaf follows the one numeric rule (types.check_real): numpy scalars are accepted,
    strings and booleans are not, even where numpy would convert them ('1', True).
    """
    leaves = _leaves(values)
    if len(leaves) != length:
        raise ValueRangeError(f'{name} must be {length} finite numbers, got {values!r}')
    try:
        return tuple(check_real(f'{name}[{i}]', v) for i, v in enumerate(leaves))
    except ValueRangeError as err:
        raise ValueRangeError(f'{name} must be {length} finite numbers, got {values!r} '
                              f'({err})') from None


def _positive_real(name: str, value) -> float:
    """Return `value` as a finite float > 0 (types.check_real, then the strict bound)."""
    number = check_real(name, value)
    if number <= 0.0:
        raise ValueRangeError(f'{name} must be > 0, got {value!r}')
    return number


def as_points(points, columns: int, name: str = 'points') -> np.ndarray:
    """Return `points` as a float (N, columns) array of finite values (one point may be flat)."""
    array = np.asarray(points, dtype=float)
    if array.ndim == 1:
        array = array.reshape(1, -1)
    if array.ndim != 2 or array.shape[1] != columns:
        raise ValueRangeError(f'{name} must have shape (N, {columns}), got {np.shape(points)}')
    if not np.all(np.isfinite(array)):
        raise ValueRangeError(f'{name} must be finite, got {array.tolist()}')
    return array


@dataclass(frozen=True)
class BasePoint:
    """A point in the robot base frame, metres."""

    x_m: float
    y_m: float
    z_m: float

    def as_array(self) -> np.ndarray:
        """Return the point as a (3,) float array."""
        return np.array([self.x_m, self.y_m, self.z_m])


def quat_xyzw_from_matrix(rotation: np.ndarray) -> tuple[float, float, float, float]:
    """Return the unit quaternion (x, y, z, w), w >= 0, of a 3x3 rotation matrix."""
    r = np.asarray(rotation, dtype=float)
    trace = r[0, 0] + r[1, 1] + r[2, 2]
    # Shepperd's method: divide by the largest of the four 4q^2 terms for numerical stability.
    if trace > max(r[0, 0], r[1, 1], r[2, 2]):
        s = 2.0 * math.sqrt(1.0 + trace)
        q = (r[2, 1] - r[1, 2]) / s, (r[0, 2] - r[2, 0]) / s, (r[1, 0] - r[0, 1]) / s, s / 4
    elif r[0, 0] >= r[1, 1] and r[0, 0] >= r[2, 2]:
        s = 2.0 * math.sqrt(1.0 + r[0, 0] - r[1, 1] - r[2, 2])
        q = s / 4, (r[0, 1] + r[1, 0]) / s, (r[0, 2] + r[2, 0]) / s, (r[2, 1] - r[1, 2]) / s
    elif r[1, 1] >= r[2, 2]:
        s = 2.0 * math.sqrt(1.0 + r[1, 1] - r[0, 0] - r[2, 2])
        q = (r[0, 1] + r[1, 0]) / s, s / 4, (r[1, 2] + r[2, 1]) / s, (r[0, 2] - r[2, 0]) / s
    else:
        s = 2.0 * math.sqrt(1.0 + r[2, 2] - r[0, 0] - r[1, 1])
        q = (r[0, 2] + r[2, 0]) / s, (r[1, 2] + r[2, 1]) / s, s / 4, (r[1, 0] - r[0, 1]) / s
    quat = np.array(q) / np.linalg.norm(q)
    if quat[3] < 0:
        quat = -quat
    return tuple(float(v) for v in quat)


def quat_xyzw_from_yaw(yaw_rad: float) -> tuple[float, float, float, float]:
    """Return the quaternion (x, y, z, w) of a rotation by `yaw_rad` about +z."""
    return (0.0, 0.0, math.sin(yaw_rad / 2.0), math.cos(yaw_rad / 2.0))


@dataclass(frozen=True)
class RigidTransform:
    """A rigid transform `parent_from_child`: p_parent = R @ p_child + translation_m.

    Named after what it maps, e.g. `base_from_camera` takes camera-frame points to the base frame
    (the pose of the camera in the base frame, as a TF `base -> camera` lookup returns it).
    """

    translation_m: tuple[float, float, float]
    quat_xyzw: tuple[float, float, float, float]

    def __post_init__(self):
        object.__setattr__(
            self, 'translation_m', _finite_floats('translation_m', self.translation_m, 3))
        quat = _finite_floats('quat_xyzw', self.quat_xyzw, 4)
        norm = math.sqrt(sum(v * v for v in quat))
        if abs(norm - 1.0) > QUAT_NORM_TOLERANCE:
            raise ValueRangeError(f'quat_xyzw must have unit norm, got norm {norm!r}')
        object.__setattr__(self, 'quat_xyzw', quat)

    @classmethod
    def identity(cls) -> 'RigidTransform':
        """Return the identity transform."""
        return cls((0.0, 0.0, 0.0), (0.0, 0.0, 0.0, 1.0))

    @classmethod
    def from_rotation(cls, rotation, translation_m) -> 'RigidTransform':
        """Build from a 3x3 rotation matrix and a translation in metres."""
        r = np.asarray(rotation, dtype=float)
        if r.shape != (3, 3) or not np.all(np.isfinite(r)):
            raise ValueRangeError(f'rotation must be a finite 3x3 matrix, got shape {r.shape}')
        if not np.allclose(r @ r.T, np.eye(3), atol=1e-6) or np.linalg.det(r) < 0:
            raise ValueRangeError('rotation must be orthonormal with determinant +1')
        return cls(translation_m, quat_xyzw_from_matrix(r))

    @classmethod
    def from_matrix(cls, matrix) -> 'RigidTransform':
        """Build from a 4x4 homogeneous matrix [[R, t], [0, 0, 0, 1]]."""
        m = np.asarray(matrix, dtype=float)
        if m.shape != (4, 4) or not np.allclose(m[3], (0.0, 0.0, 0.0, 1.0)):
            raise ValueRangeError(f'matrix must be 4x4 with last row (0, 0, 0, 1), got {m}')
        return cls.from_rotation(m[:3, :3], m[:3, 3])

    @classmethod
    def look_at(cls, eye_m, target_m, up=(0.0, 0.0, 1.0)) -> 'RigidTransform':
        """Return `base_from_camera` of an optical frame at `eye_m` looking at `target_m`.

        The image's up direction (-y of the optical frame) leans towards `up`; `up` must not be
        parallel to the viewing direction (for a camera looking straight down use from_rotation).
        """
        eye = as_points(eye_m, 3, 'eye_m')[0]
        forward = as_points(target_m, 3, 'target_m')[0] - eye
        right = np.cross(forward, as_points(up, 3, 'up')[0])
        if np.linalg.norm(forward) < 1e-12 or np.linalg.norm(right) < 1e-9 * np.linalg.norm(
                forward):
            raise ValueRangeError('look_at needs target != eye and up not parallel to the view')
        z_axis = forward / np.linalg.norm(forward)
        x_axis = right / np.linalg.norm(right)
        y_axis = np.cross(z_axis, x_axis)
        return cls.from_rotation(np.column_stack([x_axis, y_axis, z_axis]), eye)

    def rotation_matrix(self) -> np.ndarray:
        """Return the 3x3 rotation matrix R."""
        x, y, z, w = np.array(self.quat_xyzw) / np.linalg.norm(self.quat_xyzw)
        return np.array([
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ])

    def matrix(self) -> np.ndarray:
        """Return the 4x4 homogeneous matrix."""
        m = np.eye(4)
        m[:3, :3] = self.rotation_matrix()
        m[:3, 3] = self.translation_m
        return m

    def inverse(self) -> 'RigidTransform':
        """Return the inverse transform (`camera_from_base` for `base_from_camera`)."""
        x, y, z, w = self.quat_xyzw
        translation = -self.rotation_matrix().T @ np.array(self.translation_m)
        return RigidTransform(translation, (-x, -y, -z, w))

    def __matmul__(self, other: 'RigidTransform') -> 'RigidTransform':
        """Compose: `a_from_b @ b_from_c` is `a_from_c`."""
        return RigidTransform.from_matrix(self.matrix() @ other.matrix())

    def apply(self, points) -> np.ndarray:
        """Map child-frame points (N, 3) into the parent frame."""
        return as_points(points, 3) @ self.rotation_matrix().T + np.array(self.translation_m)


@dataclass(frozen=True)
class CameraIntrinsics:
    """Pinhole intrinsics as in sensor_msgs/CameraInfo: K from fx, fy, cx, cy and plumb_bob D.

    `distortion` is (k1, k2, p1, p2, k3), OpenCV's order. Valid for images of exactly
    `width_px` x `height_px` (the calibration resolution).
    """

    width_px: int
    height_px: int
    fx_px: float
    fy_px: float
    cx_px: float
    cy_px: float
    distortion: tuple[float, float, float, float, float] = (0.0,) * 5

    def __post_init__(self):
        for name in ('width_px', 'height_px'):
            object.__setattr__(self, name, check_int(name, getattr(self, name), 1))
        for name in ('fx_px', 'fy_px'):
            object.__setattr__(self, name, _positive_real(name, getattr(self, name)))
        # The principal point lies on the image: u in [-0.5, W - 0.5] spans it (pixel centres
        # are integers). A point far off the image is a unit or resolution mix-up.
        for name, size in (('cx_px', self.width_px), ('cy_px', self.height_px)):
            object.__setattr__(self, name, check_real(name, getattr(self, name)))
            if not -0.5 <= getattr(self, name) <= size - 0.5:
                raise ValueRangeError(
                    f'{name} must lie on the {self.width_px}x{self.height_px} image, in '
                    f'[-0.5, {size - 0.5}], got {getattr(self, name)!r}')
        object.__setattr__(self, 'distortion', _finite_floats('distortion', self.distortion, 5))

    def camera_matrix(self) -> np.ndarray:
        """Return K, the 3x3 camera matrix."""
        return np.array([[self.fx_px, 0.0, self.cx_px], [0.0, self.fy_px, self.cy_px],
                         [0.0, 0.0, 1.0]])

    def undistort(self, pixel_uv) -> np.ndarray:
        """Map raw pixels (N, 2) to normalized image coordinates (x/z, y/z), (N, 2)."""
        pixels = as_points(pixel_uv, 2, 'pixel_uv')
        normalized = cv2.undistortPoints(
            pixels.reshape(-1, 1, 2), self.camera_matrix(), np.array(self.distortion),
            criteria=_UNDISTORT_CRITERIA)
        return normalized.reshape(-1, 2)

    def project(self, points_camera_m) -> np.ndarray:
        """Project camera-frame points (N, 3) with z > 0 to raw pixels (N, 2)."""
        points = as_points(points_camera_m, 3, 'points_camera_m')
        if np.any(points[:, 2] <= 0.0):
            raise ProjectionError(f'points behind the camera (z <= 0): {points.tolist()}')
        pixels, _ = cv2.projectPoints(
            points.reshape(-1, 1, 3), np.zeros(3), np.zeros(3), self.camera_matrix(),
            np.array(self.distortion))
        return pixels.reshape(-1, 2)


@dataclass(frozen=True)
class PinholeCamera:
    """A calibrated camera: intrinsics plus its pose `base_from_camera` (optical frame)."""

    intrinsics: CameraIntrinsics
    base_from_camera: RigidTransform

    def pixels_to_base(self, pixel_uv, plane_z_m: float) -> np.ndarray:
        """Intersect the rays of raw pixels (N, 2) with the plane z = plane_z_m; (N, 3) metres.

        Raises ProjectionError when a ray runs parallel to the plane or meets it behind the camera.
        """
        normalized = self.intrinsics.undistort(pixel_uv)
        rays_camera = np.column_stack([normalized, np.ones(len(normalized))])
        rays_base = rays_camera @ self.base_from_camera.rotation_matrix().T
        rays_base /= np.linalg.norm(rays_base, axis=1, keepdims=True)
        origin = np.array(self.base_from_camera.translation_m)
        if np.any(np.abs(rays_base[:, 2]) < _MIN_RAY_Z):
            raise ProjectionError(f'pixel ray parallel to the plane z = {plane_z_m} m')
        distance_m = (plane_z_m - origin[2]) / rays_base[:, 2]
        if np.any(distance_m <= 0.0):
            raise ProjectionError(
                f'plane z = {plane_z_m} m lies behind the camera for pixels '
                f'{np.asarray(pixel_uv).tolist()}')
        return origin + distance_m[:, None] * rays_base

    def base_to_pixels(self, points_base_m) -> np.ndarray:
        """Project base-frame points (N, 3) to raw pixels (N, 2); ProjectionError if behind."""
        camera_points = self.base_from_camera.inverse().apply(points_base_m)
        return self.intrinsics.project(camera_points)


@dataclass(frozen=True)
class TableHomography:
    """A planar homography from raw pixels to table-plane XY (base frame, metres).

    `base_xy_from_pixel` is the 3x3 matrix H, row-major: [x, y, 1] ~ H @ [u, v, 1]. It is valid
    only on the plane it was fitted on, and folds lens distortion into its fit residual.
    """

    base_xy_from_pixel: tuple[tuple[float, float, float], ...]

    def __post_init__(self):
        flat = _finite_floats('base_xy_from_pixel', self.base_xy_from_pixel, 9)
        matrix = np.array(flat).reshape(3, 3)
        # Relative test: the determinant scales with H's overall magnitude cubed.
        if abs(np.linalg.det(matrix)) <= 1e-12 * np.linalg.norm(matrix) ** 3:
            raise ValueRangeError('base_xy_from_pixel must be an invertible 3x3 matrix')
        object.__setattr__(self, 'base_xy_from_pixel', tuple(map(tuple, matrix.tolist())))

    def matrix(self) -> np.ndarray:
        """Return H as a 3x3 array."""
        return np.array(self.base_xy_from_pixel)

    def pixels_to_table_xy(self, pixel_uv) -> np.ndarray:
        """Map raw pixels (N, 2) to table XY (N, 2) metres."""
        return _apply_homography(self.matrix(), as_points(pixel_uv, 2, 'pixel_uv'))

    def table_xy_to_pixels(self, table_xy_m) -> np.ndarray:
        """Map table XY (N, 2) metres to raw pixels (N, 2)."""
        xy = as_points(table_xy_m, 2, 'table_xy_m')
        return _apply_homography(np.linalg.inv(self.matrix()), xy)


def _apply_homography(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    homogeneous = np.column_stack([points, np.ones(len(points))]) @ matrix.T
    if np.any(np.abs(homogeneous[:, 2]) < 1e-12 * np.abs(homogeneous[:, :2]).max(initial=1.0)):
        raise ProjectionError(f'points map to the line at infinity: {points.tolist()}')
    return homogeneous[:, :2] / homogeneous[:, 2:]


def image_direction_to_yaw_rad(pixels_to_xy, pixel_uv, direction_cw_deg: float,
                               step_px: float = 4.0) -> float:
    """Return the base-frame yaw of the image direction `direction_cw_deg` at `pixel_uv`.

    The direction is measured clockwise on screen from the image's +u axis (v points down, so
    clockwise is the positive angle in (u, v)). `pixels_to_xy` maps pixels (N, 2) to base
    points whose first two columns are XY; the pixel and one `step_px` along the direction are
    mapped and the yaw is atan2 of their difference, so this holds for any camera.
    """
    start = as_points(pixel_uv, 2, 'pixel_uv')[0]
    angle = math.radians(direction_cw_deg)
    end = start + step_px * np.array([math.cos(angle), math.sin(angle)])
    xy = np.asarray(pixels_to_xy(np.stack([start, end])))[:, :2]
    delta = xy[1] - xy[0]
    if np.linalg.norm(delta) < 1e-12:
        raise ProjectionError(f'image direction at {start.tolist()} maps to a single point')
    return math.atan2(delta[1], delta[0])


def image_rotation_to_yaw_delta_rad(pixels_to_xy, pixel_uv, rotation_cw_deg: float,
                                    step_px: float = 4.0) -> float:
    """Return the base yaw change for an on-screen clockwise turn of `rotation_cw_deg` at a pixel.

    Maps the +u direction and the rotated one (image_direction_to_yaw_rad) and takes the
    difference. Among the equivalent angles (2 pi apart) it returns the one nearest -rotation,
    the value for a camera above the table looking down, so turns past 180 degrees keep their
    sense (on screen clockwise seen from above is negative yaw about +z up).
    """
    reference = image_direction_to_yaw_rad(pixels_to_xy, pixel_uv, 0.0, step_px)
    rotated = image_direction_to_yaw_rad(pixels_to_xy, pixel_uv, rotation_cw_deg, step_px)
    delta = rotated - reference
    nominal = -math.radians(rotation_cw_deg)
    return delta + 2.0 * math.pi * round((nominal - delta) / (2.0 * math.pi))
