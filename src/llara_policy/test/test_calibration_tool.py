"""llara_calibrate: fit from pairs files, refusals, bad input, verify's drawing, collect headless.

Pairs come from a known camera (the sim's front camera, scaled to 640x320), projected here by
plain pinhole arithmetic, so no test checks the tool against its own output.
"""
import subprocess
import sys

import cv2
import numpy as np
import pytest
import yaml

from llara_policy.geometry.calibration import load_calibration, save_calibration
from llara_policy.geometry.calibration_overlay import CORNER_RGB
from llara_policy.geometry.calibration_tool import main
from llara_policy.geometry.transforms import PinholeCamera
from llara_policy.sim.camera import front_camera
from llara_policy.workspace import Workspace

WIDTH, HEIGHT = 640, 320
CAMERA = front_camera().scaled(WIDTH, HEIGHT)


def project(points_base_m) -> np.ndarray:
    """Project base points (N, 3) with the known camera: x_c = R^T (p - t), u = fx x/z + cx."""
    rotation = CAMERA.base_from_camera.rotation_matrix()
    camera = (np.asarray(points_base_m, float) - CAMERA.base_from_camera.translation_m) @ rotation
    k = CAMERA.intrinsics
    return np.column_stack([k.fx_px * camera[:, 0] / camera[:, 2] + k.cx_px,
                            k.fy_px * camera[:, 1] / camera[:, 2] + k.cy_px])


def table_grid(nx=5, ny=5, z_m=0.0) -> np.ndarray:
    xs, ys = np.meshgrid(np.linspace(0.2, 0.5, nx), np.linspace(-0.28, 0.28, ny))
    return np.column_stack([xs.ravel(), ys.ravel(), np.full(xs.size, z_m)])


def held_out_points(count=20, seed=1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.column_stack([rng.uniform(0.22, 0.48, count), rng.uniform(-0.27, 0.27, count),
                            np.zeros(count)])


def write_csv(path, pixels, points, with_z=True):
    header = 'u_px,v_px,x_m,y_m,z_m' if with_z else 'u_px,v_px,x_m,y_m'
    columns = 3 if with_z else 2
    rows = [','.join(repr(float(c)) for c in (u, v, *p[:columns]))
            for (u, v), p in zip(pixels, points, strict=True)]
    path.write_text('# pixel <-> robot pairs (test)\n' + header + '\n' + '\n'.join(rows) + '\n')
    return path


def fit_args(pairs, out, *extra):
    return ['fit', '--pairs', str(pairs), '--image-size', f'{WIDTH}x{HEIGHT}',
            '--camera-id', 'front', '--out', str(out), *extra]


def test_homography_fit_maps_held_out_points_of_the_known_camera(tmp_path, capsys):
    points = table_grid()
    pairs = write_csv(tmp_path / 'pairs.csv', project(points), points, with_z=False)
    out = tmp_path / 'cal.yaml'
    assert main(fit_args(pairs, out, '--mapping', 'homography')) == 0
    printed = capsys.readouterr().out
    assert printed.count('\n') > len(points) and 'loaded back through load_calibration' in printed
    assert printed.rstrip().endswith('OK')  # the workspace-fit summary
    calibration = load_calibration(out)
    assert calibration.kind == 'homography' and 'RANSAC' not in calibration.method
    assert calibration.fit_rms_m < 1e-6
    truth = held_out_points()
    xy = calibration.mapping.pixels_to_table_xy(project(truth))
    np.testing.assert_allclose(xy, truth[:, :2], atol=1e-5)


def test_pinhole_fit_from_a_yaml_pairs_file_and_camera_info_recovers_the_pose(tmp_path):
    # Arm-tip points at three heights: a pose fit does not need them on the table.
    points = np.concatenate([table_grid(4, 4, 0.0), table_grid(3, 3, 0.05),
                             table_grid(3, 3, 0.12)])
    pixels = project(points)
    pairs = tmp_path / 'pairs.yaml'
    pairs.write_text(yaml.safe_dump({'pairs': [
        dict(u_px=float(u), v_px=float(v), x_m=float(p[0]), y_m=float(p[1]), z_m=float(p[2]))
        for (u, v), p in zip(pixels, points, strict=True)]}))
    k = CAMERA.intrinsics
    info = tmp_path / 'camera_info.yaml'
    info.write_text(yaml.safe_dump({
        'image_width': WIDTH, 'image_height': HEIGHT, 'camera_name': 'front',
        'camera_matrix': {'rows': 3, 'cols': 3,
                          'data': [k.fx_px, 0.0, k.cx_px, 0.0, k.fy_px, k.cy_px, 0, 0, 1]},
        'distortion_model': 'plumb_bob',
        'distortion_coefficients': {'rows': 1, 'cols': 5, 'data': [0.0] * 5}}))
    out = tmp_path / 'cal.yaml'
    assert main(fit_args(pairs, out, '--mapping', 'pinhole', '--intrinsics', str(info))) == 0
    calibration = load_calibration(out)
    assert isinstance(calibration.mapping, PinholeCamera)
    assert calibration.method.startswith('cv2.solvePnP SQPnP')
    np.testing.assert_allclose(calibration.mapping.base_from_camera.translation_m,
                               CAMERA.base_from_camera.translation_m, atol=1e-5)
    truth = held_out_points(seed=2)
    np.testing.assert_allclose(calibration.mapping.pixels_to_base(project(truth), 0.0), truth,
                               atol=1e-5)


def noisy_pairs_with_an_outlier(tmp_path):
    """25 table pairs with 0.2 px noise; pair 7 (file line 7 + 2) is 40 px off."""
    points = table_grid()
    pixels = project(points) + np.random.default_rng(0).normal(0.0, 0.2, (len(points), 2))
    pixels[7] += (30.0, -25.0)
    return write_csv(tmp_path / 'pairs.csv', pixels, points), 7 + 3  # comment, header


def test_an_outlier_is_refused_naming_the_worst_pair_and_no_file_is_written(tmp_path, capsys):
    pairs, outlier_line = noisy_pairs_with_an_outlier(tmp_path)
    out = tmp_path / 'cal.yaml'
    assert main(fit_args(pairs, out, '--mapping', 'homography')) == 1
    err = capsys.readouterr().err
    assert 'fit refused' in err and 'exceeds CalibrationLimits.max_fit_rms' in err
    worst = err.split('worst pairs:')[1]
    assert worst.strip().startswith(f'line {outlier_line} ')
    assert '--ransac' in err
    assert not out.exists()


def test_ransac_drops_the_outlier_and_the_fit_is_accepted(tmp_path, capsys):
    pairs, outlier_line = noisy_pairs_with_an_outlier(tmp_path)
    out = tmp_path / 'cal.yaml'
    assert main(fit_args(pairs, out, '--mapping', 'homography', '--ransac', '0.01')) == 0
    table = capsys.readouterr().out
    flagged = [row for row in table.splitlines() if 'beyond the RANSAC threshold' in row]
    assert [int(row.split()[0]) for row in flagged] == [outlier_line]
    calibration = load_calibration(out)
    assert 'RANSAC' in calibration.method and '24 of 25' in calibration.method
    truth = held_out_points(seed=3)
    xy = calibration.mapping.pixels_to_table_xy(project(truth))
    assert np.abs(xy - truth[:, :2]).max() < 0.002


@pytest.mark.parametrize('rows, line, words', [
    ('u_px,v_px,x_m,y_m\n1,2,0.3,0.1\n1,2,abc,0.1\n', 3, "x_m 'abc' is not a number"),
    ('u_px,v_px,x_m,y_m\n1,2,0.3,0.1\n\n# note\n1,2,0.3\n', 5, 'expected 4 values'),
    ('u_px,v_px,x_mm,y_m\n1,2,3,4\n', 1, 'the header must name'),
    ('u_px,v_px,x_m,y_m\n1,2,nan,0.1\n', 2, 'is not finite'),
])
def test_bad_rows_exit_two_naming_the_line(tmp_path, capsys, rows, line, words):
    pairs = tmp_path / 'pairs.csv'
    pairs.write_text(rows)
    assert main(fit_args(pairs, tmp_path / 'c.yaml', '--mapping', 'homography')) == 2
    err = capsys.readouterr().err
    assert f'pairs.csv line {line}:' in err and words in err


def test_a_bad_yaml_pair_names_its_line(tmp_path, capsys):
    pairs = tmp_path / 'pairs.yaml'
    pairs.write_text('pairs:\n  - {u_px: 1, v_px: 2, x_m: 0.3, y_m: 0.1}\n'
                     '  - {u_px: 1, v_px: 2, x_m: 0.3}\n')
    assert main(fit_args(pairs, tmp_path / 'c.yaml', '--mapping', 'homography')) == 2
    assert 'pairs.yaml line 3:' in capsys.readouterr().err


def test_off_table_points_for_a_homography_and_missing_intrinsics_are_bad_input(tmp_path,
                                                                              capsys):
    points = table_grid(3, 3, 0.05)
    pairs = write_csv(tmp_path / 'pairs.csv', project(points), points)
    assert main(fit_args(pairs, tmp_path / 'c.yaml', '--mapping', 'homography')) == 2
    assert 'line 3: z_m is 0.0500 m off the table' in capsys.readouterr().err
    assert main(fit_args(pairs, tmp_path / 'c.yaml', '--mapping', 'pinhole')) == 2
    assert '--mapping pinhole needs --intrinsics' in capsys.readouterr().err


def read_rgb(path) -> np.ndarray:
    return cv2.imread(str(path), cv2.IMREAD_COLOR)[..., ::-1]


def test_verify_draws_the_workspace_corners_where_the_known_camera_sees_them(tmp_path, capsys):
    calibration_file = tmp_path / 'cal.yaml'
    save_calibration(CAMERA.calibration(), calibration_file)
    image = tmp_path / 'frame.png'
    cv2.imwrite(str(image), np.full((HEIGHT, WIDTH, 3), 40, np.uint8))
    out = tmp_path / 'verify.png'
    assert main(['verify', '--calibration', str(calibration_file), '--image', str(image),
                 '--out', str(out)]) == 0
    assert 'wrote' in capsys.readouterr().out
    drawn = read_rgb(out)
    corners = np.array([(x, y, 0.0) for x, y in Workspace().corners_xy_m()])
    expected = project(corners)
    for u, v in np.round(expected).astype(int):
        assert tuple(drawn[v, u]) == CORNER_RGB
    # Every pure corner-coloured pixel lies on one of the four discs, nowhere else.
    rows, cols = np.nonzero(np.all(drawn == CORNER_RGB, axis=2))
    distance = np.linalg.norm(np.column_stack([cols, rows])[:, None] - expected[None], axis=2)
    assert distance.min(axis=1).max() < 6.0
    # The box edge between two corners is drawn (not the background) at its midpoint.
    mid = np.round(project([[0.35, -0.3, 0.0]])[0]).astype(int)
    assert tuple(drawn[mid[1], mid[0]]) != (40, 40, 40)


def test_verify_reads_a_camera_source_and_reports_corners_off_the_image(tmp_path, capsys):
    calibration_file = tmp_path / 'cal.yaml'
    save_calibration(CAMERA.calibration(), calibration_file)
    folder = tmp_path / 'frames'
    folder.mkdir()
    cv2.imwrite(str(folder / '000.png'), np.full((HEIGHT, WIDTH, 3), 40, np.uint8))
    out = tmp_path / 'verify.png'
    wide = '0.2,0.5,-0.6,0.6'
    assert main(['verify', '--calibration', str(calibration_file), '--camera', str(folder),
                 '--workspace', wide, '--out', str(out)]) == 1
    captured = capsys.readouterr()
    assert captured.out.count('OUTSIDE the image') == 4 and 'verify problem' in captured.err
    assert out.exists()  # drawn anyway, to see how far off it is


def test_verify_refuses_an_image_of_another_size(tmp_path, capsys):
    calibration_file = tmp_path / 'cal.yaml'
    save_calibration(CAMERA.calibration(), calibration_file)
    image = tmp_path / 'frame.png'
    cv2.imwrite(str(image), np.zeros((480, 640, 3), np.uint8))
    assert main(['verify', '--calibration', str(calibration_file), '--image', str(image),
                 '--out', str(tmp_path / 'v.png')]) == 1
    assert 'is 640x480 but calibration' in capsys.readouterr().err


def test_verify_of_a_bad_calibration_file_is_bad_input(tmp_path, capsys):
    bad = tmp_path / 'bad.yaml'
    bad.write_text('version: 1\nversion: 1\n')
    assert main(['verify', '--calibration', str(bad), '--image', 'x.png']) == 2
    assert 'duplicate key version' in capsys.readouterr().err


def test_collect_without_a_display_exits_two_with_the_reason(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv('DISPLAY', raising=False)
    monkeypatch.delenv('WAYLAND_DISPLAY', raising=False)
    pairs = tmp_path / 'pairs.csv'
    assert main(['collect', '--camera', '0', '--pairs', str(pairs)]) == 2
    err = capsys.readouterr().err
    assert 'collect needs an OpenCV window' in err and 'no display' in err
    assert not pairs.exists()


def test_the_module_runs_as_a_command(tmp_path):
    pairs = tmp_path / 'pairs.csv'
    pairs.write_text('u_px,v_px,x_m,y_m\n1,2,0.3\n')
    result = subprocess.run(
        [sys.executable, '-m', 'llara_policy.geometry.calibration_tool', *fit_args(
            pairs, tmp_path / 'c.yaml', '--mapping', 'homography')],
        capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 2 and 'pairs.csv line 2: expected 4 values' in result.stderr
