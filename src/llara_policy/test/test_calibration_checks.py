"""Start-up check that a calibration and the Workspace fit: corners, fraction, report, CLI."""
import subprocess
import sys

import numpy as np
import pytest
from synthetic_cameras import TABLE_Z_M, straight_down_camera

from llara_policy.errors import CalibrationError
from llara_policy.geometry.calibration import pinhole_calibration, save_calibration
from llara_policy.geometry.calibration_checks import (
    check_workspace_fit,
    main,
    workspace_fit_report,
)
from llara_policy.geometry.calibration_limits import CalibrationLimits
from llara_policy.geometry.preprocessing import FramePreprocess
from llara_policy.geometry.transforms import CameraIntrinsics, PinholeCamera, RigidTransform
from llara_policy.sim.camera import front_camera
from llara_policy.workspace import Workspace

# The task area of issue 8 (x forward, y left, metres), on the synthetic cameras' table.
BOX = dict(x_min_m=0.2, x_max_m=0.5, y_min_m=-0.3, y_max_m=0.3)
WORKSPACE = Workspace(**BOX, table_z_m=TABLE_Z_M)


def down_calibration(centre_xy=(0.4, 0.0)):
    """A 640x480, f = 500 px camera 1 m above the table, image +u along base +x."""
    camera = straight_down_camera(0.0, centre_xy=centre_xy)
    return pinhole_calibration('down', camera.intrinsics, camera.base_from_camera, TABLE_Z_M)


FULL_FRAME = FramePreprocess.full_frame(640, 480)


def test_sim_camera_sees_all_corners_and_part_of_its_frame_is_outside_the_workspace():
    camera = front_camera()
    report = check_workspace_fit(camera.calibration(), Workspace(**BOX), camera.preprocess())
    assert report.ok and report.all_corners_inside
    assert [c.xy_m for c in report.corners] == list(Workspace(**BOX).corners_xy_m())
    # Issue 8's measurement: the sim's model frame covers x 0.089-0.532 m, y -0.379-0.381 m.
    assert report.frame_x_range_m == pytest.approx((0.089, 0.532), abs=1e-3)
    assert report.frame_y_range_m == pytest.approx((-0.379, 0.381), abs=1e-3)
    assert 0.3 < report.fraction_inside < 0.9
    assert '4/4 corners' in report.summary() and 'x 0.089..0.532 m' in report.summary()


def test_sim_camera_fits_the_default_workspace():
    camera = front_camera()
    assert check_workspace_fit(camera.calibration(), Workspace(), camera.preprocess()).ok


def test_straight_down_camera_matches_the_pinhole_geometry_by_hand():
    report = check_workspace_fit(down_calibration(), WORKSPACE, FULL_FRAME)
    # The frame covers 640 x 480 px * (1 m / 500 px) = 1.28 m (x) by 0.96 m (y) around
    # (0.4, 0); the box is 0.3 m x 0.6 m of it.
    assert report.fraction_inside == pytest.approx(0.3 * 0.6 / (1.28 * 0.96), abs=2e-3)
    # Model u in [0, 256] is camera u = (u + 0.5) * 2.5 - 0.5 in [0.75, 640.75] (pixel centres).
    x_edges_m = [0.4 + ((u + 0.5) * 2.5 - 0.5 - 319.5) / 500.0 for u in (0.0, 256.0)]
    assert report.frame_x_range_m == pytest.approx(x_edges_m, abs=1e-9)
    for corner in report.corners:
        x_m, y_m = corner.xy_m
        u_px = 319.5 + 500.0 * (x_m - 0.4)  # camera pixel: +u along +x, +v along -y
        v_px = 239.5 - 500.0 * y_m
        expected = (((u_px + 0.5) * 0.4 - 0.5) / 256, ((v_px + 0.5) * 128 / 480 - 0.5) / 128)
        assert corner.model_xy_norm == pytest.approx(expected, abs=1e-9)
        assert 'model point' in corner.describe() and 'outside' not in corner.describe()


def test_a_camera_that_misses_part_of_the_workspace_is_refused():
    # Centred at x = 0.9 m, it sees x >= 0.26 m only: the two x = 0.2 corners are off the image.
    calibration = down_calibration((0.9, 0.0))
    report = workspace_fit_report(calibration, WORKSPACE, FULL_FRAME)
    assert not report.ok and not report.all_corners_inside
    assert [c.inside for c in report.corners] == [False, True, True, False]
    assert 0.0 < report.fraction_inside < 0.5
    with pytest.raises(CalibrationError) as caught:
        check_workspace_fit(calibration, WORKSPACE, FULL_FRAME)
    message = str(caught.value)
    assert "calibration 'down' does not fit the workspace" in message
    assert message.count('outside the image') == 2 and 'corner (0.200, -0.300) m' in message


def test_a_camera_that_sees_none_of_the_workspace_reports_a_zero_fraction():
    report = workspace_fit_report(down_calibration((2.0, 0.0)), WORKSPACE, FULL_FRAME)
    assert report.fraction_inside == 0.0
    assert 'no point of the model frame maps inside the workspace' in report.problems
    assert len(report.problems) == 5


def test_corners_behind_the_camera_and_rays_above_the_horizon_are_handled():
    # Low camera looking out along +x, 17 degrees down: the x = 0.2 m corners are behind it,
    # the top rows of its image never meet the table, the bottom ones see x >= 0.43 m.
    pose = RigidTransform.look_at((0.3, 0.0, 0.12 + TABLE_Z_M), (0.7, 0.0, TABLE_Z_M))
    camera = PinholeCamera(CameraIntrinsics(640, 480, 500.0, 500.0, 319.5, 239.5), pose)
    calibration = pinhole_calibration('low', camera.intrinsics, pose, TABLE_Z_M)
    report = workspace_fit_report(calibration, WORKSPACE, FULL_FRAME)
    behind = [c for c in report.corners if c.model_xy_norm is None]
    assert [c.xy_m[0] for c in behind] == [0.2, 0.2]
    assert 'behind the camera' in behind[0].describe()
    assert 0.0 < report.fraction_inside < 1.0 and np.isfinite(report.frame_x_range_m).all()


def test_a_table_height_mismatch_is_a_problem():
    workspace = Workspace(**BOX, table_z_m=TABLE_Z_M + 0.05)
    report = workspace_fit_report(down_calibration(), workspace, FULL_FRAME)
    assert report.table_z_mismatch_m == pytest.approx(0.05)
    assert len(report.problems) == 1 and 'max_table_z_mismatch_m = 0.01 m' in report.problems[0]
    relaxed = CalibrationLimits(max_table_z_mismatch_m=0.1)
    assert check_workspace_fit(down_calibration(), workspace, FULL_FRAME, relaxed).ok


def test_cli_prints_the_report_and_exits_zero_when_it_fits(tmp_path, capsys):
    path = tmp_path / 'sim.yaml'
    save_calibration(front_camera().calibration(), path)
    assert main(['--calibration', str(path)]) == 0
    out = capsys.readouterr().out
    assert "calibration 'sim_front'" in out and out.count('-> model point') == 4
    assert out.rstrip().endswith('OK')


def test_cli_exits_one_on_a_camera_that_misses_the_workspace(tmp_path, capsys):
    camera = straight_down_camera(0.0, centre_xy=(0.9, 0.0), height_m=1.0 - TABLE_Z_M)
    path = tmp_path / 'far.yaml'
    save_calibration(pinhole_calibration('far', camera.intrinsics, camera.base_from_camera,
                                         0.0), path)
    assert main(['--calibration', str(path), '--preprocess', 'full_frame']) == 1
    out = capsys.readouterr().out
    assert out.count('problem: workspace corner') == 2


def test_cli_reports_a_bad_file_as_an_error(tmp_path, capsys):
    path = tmp_path / 'bad.yaml'
    path.write_text('version: 1\nversion: 1\n')
    assert main(['--calibration', str(path)]) == 1
    assert 'duplicate key version' in capsys.readouterr().err


def test_cli_runs_as_a_module(tmp_path):
    path = tmp_path / 'sim.yaml'
    save_calibration(front_camera().calibration(), path)
    result = subprocess.run(
        [sys.executable, '-m', 'llara_policy.geometry.calibration_checks', '--calibration',
         str(path)], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert '% of the model frame maps inside the workspace' in result.stdout
