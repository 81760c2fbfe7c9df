"""Fitting calibrations from pixel <-> robot point pairs: accuracy, residuals, degenerate input."""
import math

import cv2
from hypothesis import given, settings
from hypothesis import strategies as st
import numpy as np
import pytest
from synthetic_cameras import TABLE_Z_M, cameras, inner_pixels

from llara_policy.errors import CalibrationError
from llara_policy.geometry.calibration import load_calibration, save_calibration
from llara_policy.geometry.calibration_fit import (
    fit_homography,
    fit_pinhole_pose,
    fitted_pinhole_calibration,
    homography_calibration,
)
from llara_policy.geometry.transforms import CameraIntrinsics, PinholeCamera, RigidTransform

CAMERA = PinholeCamera(CameraIntrinsics(640, 480, 600.0, 600.0, 319.5, 239.5),
                       RigidTransform.look_at((0.9, 0.3, 0.8), (0.4, 0.0, TABLE_Z_M)))
# A 4x3 grid of table points (metres) and their exact pixels.
GRID_XY = np.array([[x, y] for x in (0.25, 0.4, 0.55, 0.7) for y in (-0.25, 0.0, 0.25)])
GRID_BASE = np.column_stack([GRID_XY, np.full(len(GRID_XY), TABLE_Z_M)])
GRID_PIXELS = CAMERA.base_to_pixels(GRID_BASE)


def spread_pixels(camera, extra) -> np.ndarray:
    """Four pixels near the image corners plus `extra` inside: never three on a line."""
    corners = [(0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0)]
    return inner_pixels(camera, corners + list(extra))


# Extra points strictly inside the corners and at least 1 % of the image apart.
inside = st.tuples(st.floats(0.05, 0.95), st.floats(0.05, 0.95))
extras = st.lists(inside, max_size=8, unique_by=lambda f: (round(f[0], 2), round(f[1], 2)))


@settings(deadline=None, max_examples=60)
@given(cameras(distorted=False), extras)
def test_homography_from_exact_pairs_reproduces_them(camera, extra):
    pixels = spread_pixels(camera, extra)
    table_xy = camera.pixels_to_base(pixels, TABLE_Z_M)[:, :2]
    fit = fit_homography(pixels, table_xy)
    assert fit.rms_px < 1e-6 and fit.rms_m < 1e-9
    assert fit.inlier_count == len(pixels)
    reproduced = fit.homography.table_xy_to_pixels(table_xy)
    assert np.max(np.abs(reproduced - pixels)) < 1e-6


def test_ransac_drops_a_wrong_pair_and_reports_inlier_residuals():
    wrong = GRID_XY.copy()
    wrong[5] += (0.05, -0.03)
    plain = fit_homography(GRID_PIXELS, wrong)
    assert plain.rms_m > 0.005 and plain.inlier_count == len(GRID_XY)
    robust = fit_homography(GRID_PIXELS, wrong, ransac_threshold_m=0.003)
    assert robust.inlier_count == len(GRID_XY) - 1
    assert robust.rms_m < 1e-9 and robust.rms_px < 1e-6


def test_homography_residuals_match_the_noise():
    rng = np.random.default_rng(7)
    xs, ys = np.meshgrid(np.linspace(0.25, 0.7, 8), np.linspace(-0.3, 0.3, 8))
    table = np.column_stack([xs.ravel(), ys.ravel()])
    pixels = CAMERA.base_to_pixels(np.column_stack([table, np.full(len(table), TABLE_Z_M)]))
    fit = fit_homography(pixels + rng.normal(0.0, 0.5, pixels.shape), table)
    # 0.5 px per axis is about 0.7 px of 2-D error; the fit absorbs a little of it.
    assert 0.4 < fit.rms_px < 0.8
    assert 0.0003 < fit.rms_m < 0.003


@settings(deadline=None, max_examples=40)
@given(cameras(), extras.filter(lambda e: len(e) >= 2), st.booleans())
def test_pinhole_pose_from_exact_pairs_is_recovered(camera, extra, raised):
    pixels = spread_pixels(camera, extra)
    heights = np.linspace(0.0, 0.15, len(pixels)) if raised else np.zeros(len(pixels))
    points = np.array([camera.pixels_to_base(p, TABLE_Z_M + h)[0]
                       for p, h in zip(pixels, heights, strict=True)])
    fit = fit_pinhole_pose(pixels, points, camera.intrinsics)
    assert fit.rms_px < 1e-6 and fit.rms_m < 1e-6 and fit.point_count == len(pixels)
    np.testing.assert_allclose(fit.base_from_camera.matrix(), camera.base_from_camera.matrix(),
                               atol=1e-6)


def test_pinhole_fit_residuals_match_the_noise():
    rng = np.random.default_rng(3)
    noisy = GRID_PIXELS + rng.normal(0.0, 0.3, GRID_PIXELS.shape)
    fit = fit_pinhole_pose(noisy, GRID_BASE, CAMERA.intrinsics)
    assert 0.1 < fit.rms_px < 0.6
    assert fit.rms_m < 0.003
    error_m = np.linalg.norm(np.subtract(fit.base_from_camera.translation_m,
                                         CAMERA.base_from_camera.translation_m))
    assert error_m < 0.02


BAD_PAIRS = [
    ('fewer than 4', GRID_PIXELS[:3], GRID_XY[:3], 'at least 4 point pairs, got 3'),
    ('nan pixel', np.where(np.arange(12)[:, None] == 2, math.nan, GRID_PIXELS), GRID_XY,
     'pixel_uv[2] is not finite'),
    ('inf target', GRID_PIXELS, np.where(np.arange(12)[:, None] == 4, math.inf, GRID_XY),
     '[4] is not finite'),
    ('duplicate pixel', np.vstack([GRID_PIXELS[:4], GRID_PIXELS[1]]), GRID_XY[:5],
     'pixel_uv[1] and pixel_uv[4] are the same point'),
    ('duplicate target', GRID_PIXELS[:5], np.vstack([GRID_XY[:4], GRID_XY[0]]),
     '[0] and ', ),
    ('collinear pixels', np.column_stack([np.linspace(0, 300, 6), np.linspace(10, 160, 6)]),
     GRID_XY[:6], 'pixel_uv points are collinear'),
    ('collinear targets', GRID_PIXELS[:4], GRID_XY[[0, 3, 6, 9]], 'points are collinear'),
    ('length mismatch', GRID_PIXELS[:6], GRID_XY[:5], 'pixel_uv has 6 points but'),
    ('wrong shape', GRID_PIXELS[:, :1], GRID_XY, 'must have shape (N, 2)'),
]


@pytest.mark.parametrize('name, pixels, targets, message', BAD_PAIRS,
                         ids=[bad[0] for bad in BAD_PAIRS])
def test_degenerate_pairs_are_rejected_by_both_fits(name, pixels, targets, message):
    with pytest.raises(CalibrationError) as caught:
        fit_homography(pixels, targets)
    assert message in str(caught.value)
    if targets.shape[1] == 2:
        targets = np.column_stack([targets, np.zeros(len(targets))])
    with pytest.raises(CalibrationError) as caught:
        fit_pinhole_pose(pixels, targets, CAMERA.intrinsics)
    assert message in str(caught.value)


def spy(monkeypatch, name):
    """Record the calls of cv2.<name> (still calling it) in the returned list."""
    calls, original = [], getattr(cv2, name)

    def recorded(*args, **kwargs):
        calls.append(name)
        return original(*args, **kwargs)
    monkeypatch.setattr(cv2, name, recorded)
    return calls


def test_homography_method_names_what_ran_without_ransac(monkeypatch):
    calls = spy(monkeypatch, 'findHomography')
    fit = fit_homography(GRID_PIXELS, GRID_XY)
    assert calls == []
    assert 'findHomography' not in fit.method and 'RANSAC' not in fit.method
    assert fit.method == 'normalized DLT + Gauss-Newton on the table-plane error, 12 point pairs'


def test_homography_method_names_ransac_and_the_pairs_it_kept(monkeypatch):
    calls = spy(monkeypatch, 'findHomography')
    wrong = GRID_XY.copy()
    wrong[5] += (0.05, -0.03)
    fit = fit_homography(GRID_PIXELS, wrong, ransac_threshold_m=0.003)
    assert calls == ['findHomography']
    assert fit.method == ('RANSAC inliers (cv2.findHomography, 0.003 m) + normalized DLT + '
                          'Gauss-Newton on the table-plane error, 11 of 12 point pairs')
    cal = homography_calibration('front', fit, 640, 480, TABLE_Z_M)
    assert cal.method == fit.method


def test_pinhole_method_names_the_three_stages_that_ran(monkeypatch):
    calls = [spy(monkeypatch, name) for name in ('solvePnP', 'solvePnPRefineLM')]
    fit = fit_pinhole_pose(GRID_PIXELS, GRID_BASE, CAMERA.intrinsics)
    assert calls == [['solvePnP'], ['solvePnPRefineLM']]
    cal = fitted_pinhole_calibration('front', fit, CAMERA.intrinsics, TABLE_Z_M)
    assert cal.method == ('cv2.solvePnP SQPnP + cv2.solvePnPRefineLM + Gauss-Newton on the '
                          'pixel error, 12 point pairs')


def test_three_of_four_on_a_line_do_not_determine_a_homography():
    pixels = np.array([[0.0, 0.0], [100.0, 0.0], [200.0, 0.0], [50.0, 120.0]])
    table = np.array([[0.3, 0.1], [0.4, 0.1], [0.5, 0.1], [0.35, 0.0]])
    with pytest.raises(CalibrationError, match='do not determine a homography'):
        fit_homography(pixels, table)


def test_ransac_threshold_must_not_be_negative():
    with pytest.raises(CalibrationError, match='ransac_threshold_m'):
        fit_homography(GRID_PIXELS, GRID_XY, ransac_threshold_m=-1.0)


def test_fitted_calibrations_save_and_load(tmp_path):
    plane = homography_calibration('front', fit_homography(GRID_PIXELS, GRID_XY), 640, 480,
                                   TABLE_Z_M)
    assert plane.method == ('normalized DLT + Gauss-Newton on the table-plane error, '
                            '12 point pairs')
    pose_fit = fit_pinhole_pose(GRID_PIXELS, GRID_BASE, CAMERA.intrinsics)
    ray = fitted_pinhole_calibration('front', pose_fit, CAMERA.intrinsics, TABLE_Z_M)
    assert ray.fit_rms_px == pose_fit.rms_px and 'solvePnP' in ray.method
    for cal in (plane, ray):
        save_calibration(cal, tmp_path / 'c.yaml')
        assert load_calibration(tmp_path / 'c.yaml') == cal
