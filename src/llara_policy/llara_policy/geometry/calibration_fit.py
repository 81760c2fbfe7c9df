"""Fit a calibration from pixel <-> robot point pairs (touch-up points or markers on the table).

Two fits: a table-plane homography (normalized DLT refined by Gauss-Newton, after an optional
RANSAC inlier selection by cv2.findHomography) and the camera pose for known intrinsics
(cv2.solvePnP SQPnP, cv2.solvePnPRefineLM, then Gauss-Newton). Both reject degenerate input up
front, with a CalibrationError naming the problem, report their residuals in pixels and metres,
and record in the calibration's `method` what the code actually did.
"""
from dataclasses import dataclass
import datetime

import cv2
import numpy as np

from llara_policy.errors import CalibrationError, ProjectionError, ValueRangeError
from llara_policy.geometry.calibration import DEFAULT_BASE_FRAME, DEFAULT_CAMERA_FRAME, Calibration
from llara_policy.geometry.transforms import (
    CameraIntrinsics,
    PinholeCamera,
    RigidTransform,
    TableHomography,
)
from llara_policy.types import check_real

MIN_PAIRS = 4
# Points whose spread across their best-fit line is below this fraction of their extent are
# treated as collinear (a homography or a pose from them is not determined).
_COLLINEAR_RATIO = 1e-6
# Two points closer than this fraction of the point set's extent count as the same point.
_DUPLICATE_RATIO = 1e-9
# The DLT system of a determined homography has one null vector: its second-smallest singular
# value stays clear of zero (relative to the largest) unless the pairs are degenerate.
_DLT_RANK_RATIO = 1e-8
# solvePnPRefineLM can stop ~1e-5 px short of the optimum even on exact pairs; a few float64
# Gauss-Newton steps on the reprojection error finish the job.
_POLISH_ITERATIONS = 5


@dataclass(frozen=True)
class HomographyFit:
    """A fitted table homography with residuals over its inliers (metres and pixels).

    `pair_count` pairs were given; `inlier_count` of them were fitted (all of them unless
    RANSAC ran, i.e. `ransac_threshold_m` > 0).
    """

    homography: TableHomography
    rms_m: float
    rms_px: float
    inlier_count: int
    pair_count: int
    ransac_threshold_m: float = 0.0

    @property
    def method(self) -> str:
        """Say how the matrix was found, for the calibration file's `method` field."""
        fit = 'normalized DLT + Gauss-Newton on the table-plane error'
        if self.ransac_threshold_m == 0.0:
            return f'{fit}, {self.pair_count} point pairs'
        return (f'RANSAC inliers (cv2.findHomography, {self.ransac_threshold_m:g} m) + {fit}, '
                f'{self.inlier_count} of {self.pair_count} point pairs')


# What fit_pinhole_pose does, for the calibration file's `method` field.
PINHOLE_FIT_METHOD = 'cv2.solvePnP SQPnP + cv2.solvePnPRefineLM + Gauss-Newton on the pixel error'


@dataclass(frozen=True)
class PinholeFit:
    """A fitted camera pose with its residuals (pixels; metres on each point's own plane z)."""

    base_from_camera: RigidTransform
    rms_px: float
    rms_m: float
    point_count: int


def _check_points(points, columns: int, name: str) -> np.ndarray:
    array = np.asarray(points, dtype=float)
    if array.ndim != 2 or array.shape[1] != columns:
        raise CalibrationError(f'{name} must have shape (N, {columns}), got {array.shape}')
    bad = np.flatnonzero(~np.all(np.isfinite(array), axis=1))
    if bad.size:
        raise CalibrationError(f'{name}[{bad[0]}] is not finite: {array[bad[0]].tolist()}')
    if len(array) < MIN_PAIRS:
        raise CalibrationError(f'need at least {MIN_PAIRS} point pairs, got {len(array)}')
    extent = max(np.ptp(array, axis=0).max(), 1e-300)
    distances = np.linalg.norm(array[:, None] - array[None], axis=2)
    first, second = np.nonzero(np.triu(distances <= _DUPLICATE_RATIO * extent, k=1))
    if first.size:
        raise CalibrationError(f'{name}[{first[0]}] and {name}[{second[0]}] are the same point '
                               f'{array[first[0]].tolist()}')
    singular = np.linalg.svd(array - array.mean(axis=0), compute_uv=False)
    if singular[1] <= _COLLINEAR_RATIO * singular[0]:
        raise CalibrationError(f'{name} points are collinear; spread them over the table')
    return array


def _check_pairs(pixel_uv, points, columns: int, name: str) -> tuple[np.ndarray, np.ndarray]:
    pixels = _check_points(pixel_uv, 2, 'pixel_uv')
    targets = _check_points(points, columns, name)
    if len(pixels) != len(targets):
        raise CalibrationError(
            f'pixel_uv has {len(pixels)} points but {name} has {len(targets)}')
    return pixels, targets


def _normalizing_transform(points: np.ndarray) -> np.ndarray:
    """Hartley normalization: centroid to 0, mean distance sqrt(2)."""
    centre = points.mean(axis=0)
    scale = np.sqrt(2.0) / np.linalg.norm(points - centre, axis=1).mean()
    return np.array([[scale, 0.0, -scale * centre[0]], [0.0, scale, -scale * centre[1]],
                     [0.0, 0.0, 1.0]])


def _normalized_dlt(pixels: np.ndarray, table_xy: np.ndarray) -> np.ndarray:
    """Return H by the normalized direct linear transform; reject undetermined pair sets."""
    src_norm, dst_norm = _normalizing_transform(pixels), _normalizing_transform(table_xy)
    rows = []
    for (u, v), (x, y) in zip(_apply(src_norm, pixels), _apply(dst_norm, table_xy), strict=True):
        rows.append([u, v, 1.0, 0.0, 0.0, 0.0, -x * u, -x * v, -x])
        rows.append([0.0, 0.0, 0.0, u, v, 1.0, -y * u, -y * v, -y])
    _, singular, vt = np.linalg.svd(np.array(rows))
    # One null vector only: e.g. three of four points on a line leave a family of solutions.
    if singular[7] <= _DLT_RANK_RATIO * singular[0]:
        raise CalibrationError('point pairs do not determine a homography: three of four points '
                               'on a line? Add points spread over the table')
    matrix = np.linalg.inv(dst_norm) @ vt[-1].reshape(3, 3) @ src_norm
    return matrix / np.linalg.norm(matrix)


def _refine_homography(matrix: np.ndarray, pixels: np.ndarray, table_xy: np.ndarray,
                       iterations: int = 10) -> np.ndarray:
    """Gauss-Newton on the table-plane error (metres), in float64, from a DLT start."""
    h = matrix.reshape(-1)
    ones = np.ones(len(pixels))
    basis = np.column_stack([pixels, ones])  # (N, 3): u, v, 1
    for _ in range(iterations):
        w = basis @ h[6:]
        xy = np.column_stack([basis @ h[:3], basis @ h[3:6]]) / w[:, None]
        jacobian = np.zeros((2 * len(pixels), 9))
        jacobian[0::2, 0:3] = basis / w[:, None]
        jacobian[1::2, 3:6] = basis / w[:, None]
        jacobian[0::2, 6:9] = -xy[:, :1] * basis / w[:, None]
        jacobian[1::2, 6:9] = -xy[:, 1:] * basis / w[:, None]
        # lstsq's minimum-norm step ignores the free overall scale of h.
        step = np.linalg.lstsq(jacobian, (table_xy - xy).reshape(-1), rcond=None)[0]
        h = h + step
        h /= np.linalg.norm(h)
    return h.reshape(3, 3)


def _apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    homogeneous = np.column_stack([points, np.ones(len(points))]) @ matrix.T
    return homogeneous[:, :2] / homogeneous[:, 2:]


def _rms(errors: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.sum(errors ** 2, axis=1))))


def fit_homography(pixel_uv, table_xy_m, ransac_threshold_m: float = 0.0) -> HomographyFit:
    """Fit raw pixels (N, 2) -> table XY (N, 2) metres from N >= 4 pairs in general position.

    With `ransac_threshold_m` > 0, cv2.findHomography's RANSAC drops pairs whose table error
    exceeds it (in metres, the destination's unit); 0 keeps every pair. The matrix is then
    fitted to the kept pairs by a normalized DLT refined with Gauss-Newton in float64:
    cv2's own estimate leaves ~1e-5 px of error even on exact pairs.
    """
    pixels, table_xy = _check_pairs(pixel_uv, table_xy_m, 2, 'table_xy_m')
    pair_count = len(pixels)
    ransac_threshold_m = check_real('ransac_threshold_m', ransac_threshold_m, 0.0,
                                    error=CalibrationError)
    inliers = np.ones(len(pixels), dtype=bool)
    if ransac_threshold_m > 0.0:
        matrix, mask = cv2.findHomography(pixels, table_xy, cv2.RANSAC, ransac_threshold_m)
        if matrix is None:
            raise CalibrationError('cv2.findHomography found no homography for these pairs')
        inliers = mask.reshape(-1).astype(bool)
        if inliers.sum() < MIN_PAIRS:
            raise CalibrationError(f'only {inliers.sum()} pairs agree with the RANSAC fit; '
                                   f'check the pairs or raise ransac_threshold_m')
    pixels, table_xy = pixels[inliers], table_xy[inliers]
    matrix = _refine_homography(_normalized_dlt(pixels, table_xy), pixels, table_xy)
    try:
        homography = TableHomography(tuple(map(tuple, (matrix / matrix[2, 2]).tolist())))
        rms_m = _rms(homography.pixels_to_table_xy(pixels) - table_xy)
        rms_px = _rms(homography.table_xy_to_pixels(table_xy) - pixels)
    except (ProjectionError, ValueRangeError, ZeroDivisionError) as err:
        raise CalibrationError(f'fitted homography is degenerate: {err}') from None
    return HomographyFit(homography, rms_m, rms_px, len(pixels), pair_count, ransac_threshold_m)


def _polish_pose(points: np.ndarray, pixels: np.ndarray, intrinsics: CameraIntrinsics,
                 rvec: np.ndarray, tvec: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Newton on the pixel error over (rvec, tvec); keeps only steps that reduce it."""
    matrix, distortion = intrinsics.camera_matrix(), np.array(intrinsics.distortion)

    def residual_and_jacobian(r, t):
        projected, jacobian = cv2.projectPoints(points, r, t, matrix, distortion)
        return (pixels - projected.reshape(-1, 2)).reshape(-1), jacobian[:, :6]

    residual, jacobian = residual_and_jacobian(rvec, tvec)
    for _ in range(_POLISH_ITERATIONS):
        step = np.linalg.lstsq(jacobian, residual, rcond=None)[0]
        new_residual, new_jacobian = residual_and_jacobian(rvec + step[:3], tvec + step[3:])
        if new_residual @ new_residual >= residual @ residual:
            break
        rvec, tvec = rvec + step[:3], tvec + step[3:]
        residual, jacobian = new_residual, new_jacobian
    return rvec, tvec


def fit_pinhole_pose(pixel_uv, points_base_m, intrinsics: CameraIntrinsics) -> PinholeFit:
    """Fit `base_from_camera` from raw pixels (N, 2) of base points (N, 3) m, known intrinsics.

    SQPnP gives the global optimum (planar or not), then Levenberg-Marquardt and Gauss-Newton
    refine it.
    """
    pixels, points = _check_pairs(pixel_uv, points_base_m, 3, 'points_base_m')
    matrix, distortion = intrinsics.camera_matrix(), np.array(intrinsics.distortion)
    found, rvec, tvec = cv2.solvePnP(points, pixels, matrix, distortion,
                                     flags=cv2.SOLVEPNP_SQPNP)
    if not found:
        raise CalibrationError('cv2.solvePnP found no camera pose for these pairs')
    rvec, tvec = cv2.solvePnPRefineLM(points, pixels, matrix, distortion, rvec, tvec)
    rvec, tvec = _polish_pose(points, pixels, intrinsics, rvec.reshape(3), tvec.reshape(3))
    camera_from_base = RigidTransform.from_rotation(cv2.Rodrigues(rvec)[0], tvec.reshape(3))
    camera = PinholeCamera(intrinsics, camera_from_base.inverse())
    try:
        rms_px = _rms(camera.base_to_pixels(points) - pixels)
        on_planes = np.array([camera.pixels_to_base(pixel, z)[0]
                              for pixel, z in zip(pixels, points[:, 2], strict=True)])
    except ProjectionError as err:
        raise CalibrationError(f'fitted pose does not see every point: {err}') from None
    return PinholeFit(camera.base_from_camera, rms_px, _rms(on_planes - points), len(points))


def homography_calibration(
        camera_id: str, fit: HomographyFit, image_width_px: int, image_height_px: int,
        table_z_m: float, base_frame: str = DEFAULT_BASE_FRAME,
        camera_frame: str = DEFAULT_CAMERA_FRAME) -> Calibration:
    """Make a homography calibration from a fit, dated today."""
    return Calibration(
        camera_id=camera_id, image_width_px=image_width_px, image_height_px=image_height_px,
        mapping=fit.homography, table_z_m=table_z_m, date=datetime.date.today().isoformat(),
        method=fit.method, base_frame=base_frame,
        camera_frame=camera_frame, fit_rms_px=fit.rms_px, fit_rms_m=fit.rms_m)


def fitted_pinhole_calibration(
        camera_id: str, fit: PinholeFit, intrinsics: CameraIntrinsics, table_z_m: float,
        base_frame: str = DEFAULT_BASE_FRAME,
        camera_frame: str = DEFAULT_CAMERA_FRAME) -> Calibration:
    """Make a pinhole calibration from a pose fit and its intrinsics, dated today."""
    return Calibration(
        camera_id=camera_id, image_width_px=intrinsics.width_px,
        image_height_px=intrinsics.height_px,
        mapping=PinholeCamera(intrinsics, fit.base_from_camera), table_z_m=table_z_m,
        date=datetime.date.today().isoformat(), base_frame=base_frame,
        method=f'{PINHOLE_FIT_METHOD}, {fit.point_count} point pairs',
        camera_frame=camera_frame, fit_rms_px=fit.rms_px, fit_rms_m=fit.rms_m)
