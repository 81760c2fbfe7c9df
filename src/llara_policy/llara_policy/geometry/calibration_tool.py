"""`llara_calibrate`: fit a camera calibration from pixel <-> robot point pairs, and check it.

    llara_calibrate fit --pairs pairs.csv --mapping homography --image-size 1280x720 \
        --camera-id front --out calibration.yaml
    llara_calibrate verify --calibration calibration.yaml --image frame.png --out verify.png
    llara_calibrate collect --camera 0 --pairs pairs.csv

Fitting uses the core fits (calibration_fit) and the executor's own checks: the written file is
loaded back through load_calibration and checked against the Workspace (calibration_checks).
Exit codes: 0 ok; 1 fit refused or a verify problem; 2 bad input (file, row, option, display).
"""
import argparse
import math
import os
from pathlib import Path
import sys
import tempfile

import cv2
import numpy as np

from llara_policy.camera import CameraConfig, CameraError, CameraSource
from llara_policy.errors import CalibrationError, ConfigError, LlaraError
from llara_policy.geometry.calibration import (
    DEFAULT_BASE_FRAME,
    DEFAULT_CAMERA_FRAME,
    Calibration,
    load_calibration,
    save_calibration,
)
from llara_policy.geometry.calibration_checks import workspace_fit_report
from llara_policy.geometry.calibration_fit import (
    fit_homography,
    fit_pinhole_pose,
    fitted_pinhole_calibration,
    homography_calibration,
)
from llara_policy.geometry.calibration_limits import DEFAULT_CALIBRATION_LIMITS
from llara_policy.geometry.calibration_overlay import draw_workspace_overlay
from llara_policy.geometry.calibration_pairs import (
    PAIR_COLUMNS,
    Z_COLUMN,
    BadInputError,
    PointPairs,
    parse_image_size,
    parse_workspace,
    read_intrinsics,
    read_pairs,
)
from llara_policy.geometry.preprocessing import FramePreprocess
from llara_policy.geometry.transforms import PinholeCamera

EXIT_OK, EXIT_REFUSED, EXIT_BAD_INPUT = 0, 1, 2
# A homography holds on one plane only: pair points further than this from the table height
# are refused (at 5 mm, the perspective error is already about the residual limit).
HOMOGRAPHY_PLANE_TOLERANCE_M = 0.005
# How many of the worst pairs a refusal lists.
WORST_PAIRS_SHOWN = 3
DEFAULT_VERIFY_PNG = 'calibration_verify.png'


def pair_residuals(calibration: Calibration, pairs: PointPairs) -> tuple[np.ndarray, ...]:
    """Per-pair errors (N,) in pixels and metres through `calibration` (inf if unmappable).

    Pinhole: the point's projection vs its pixel, and the pixel's ray on the point's own z vs
    the point. Homography: the table point's pixel vs the pixel, and the pixel's table XY vs
    the point.
    """
    mapping = calibration.mapping
    err_px, err_m = np.full(len(pairs.lines), np.inf), np.full(len(pairs.lines), np.inf)
    for i, (uv, point) in enumerate(zip(pairs.pixel_uv, pairs.points_m, strict=True)):
        try:
            if isinstance(mapping, PinholeCamera):
                err_px[i] = np.linalg.norm(mapping.base_to_pixels([point])[0] - uv)
                err_m[i] = np.linalg.norm(mapping.pixels_to_base(uv, point[2])[0] - point)
            else:
                err_px[i] = np.linalg.norm(mapping.table_xy_to_pixels(point[:2])[0] - uv)
                err_m[i] = np.linalg.norm(mapping.pixels_to_table_xy(uv)[0] - point[:2])
        except LlaraError:
            pass  # stays inf: the fit does not map this pair at all
    return err_px, err_m


def residual_table(pairs: PointPairs, err_px, err_m, outlier_m: float = math.inf) -> str:
    """Return the per-pair residuals as a text table (file line, pair, errors)."""
    lines = [f'{"line":>6} {"u_px":>9} {"v_px":>9} {"x_m":>8} {"y_m":>8} {"z_m":>8} '
             f'{"err_px":>8} {"err_mm":>8}']
    for i, line in enumerate(pairs.lines):
        (u, v), (x, y, z) = pairs.pixel_uv[i], pairs.points_m[i]
        flag = '  beyond the RANSAC threshold' if err_m[i] > outlier_m else ''
        lines.append(f'{line:>6} {u:>9.2f} {v:>9.2f} {x:>8.4f} {y:>8.4f} {z:>8.4f} '
                     f'{err_px[i]:>8.3f} {1000.0 * err_m[i]:>8.2f}{flag}')
    return '\n'.join(lines)


def _fit(args, pairs: PointPairs, image_size) -> Calibration:
    """Run the chosen core fit; BadInputError for option problems, CalibrationError if refused."""
    frames = dict(base_frame=args.base_frame, camera_frame=args.camera_frame)
    if not math.isfinite(args.ransac) or args.ransac < 0.0:
        raise BadInputError(f'--ransac must be a threshold in metres >= 0, got {args.ransac}')
    if args.mapping == 'homography':
        if args.intrinsics:
            raise BadInputError('--intrinsics is for --mapping pinhole (a homography needs '
                                'none; undistort the pixels first if the lens distorts)')
        if image_size is None:
            raise BadInputError('--mapping homography needs --image-size WxH')
        off = np.abs(pairs.points_m[:, 2] - args.table_z)
        if off.max() > HOMOGRAPHY_PLANE_TOLERANCE_M:
            worst = int(np.argmax(off))
            raise BadInputError(
                f'{pairs.path} line {pairs.lines[worst]}: z_m is {off[worst]:.4f} m off the '
                f'table (--table-z {args.table_z:g}); a homography holds on the table plane '
                f'only (tolerance {HOMOGRAPHY_PLANE_TOLERANCE_M:g} m): use --mapping pinhole')
        fit = fit_homography(pairs.pixel_uv, pairs.points_m[:, :2], args.ransac)
        return homography_calibration(args.camera_id, fit, *image_size, args.table_z, **frames)
    if args.ransac:
        raise BadInputError('--ransac is for --mapping homography; for pinhole remove the '
                            'worst pairs from the file')
    if not args.intrinsics:
        raise BadInputError('--mapping pinhole needs --intrinsics (camera_info.yaml or '
                            'fx,fy,cx,cy[,k1,k2,p1,p2,k3])')
    intrinsics = read_intrinsics(args.intrinsics, image_size)
    fit = fit_pinhole_pose(pairs.pixel_uv, pairs.points_m, intrinsics)
    return fitted_pinhole_calibration(args.camera_id, fit, intrinsics, args.table_z, **frames)


def _residual_problems(calibration: Calibration) -> list[str]:
    limits = DEFAULT_CALIBRATION_LIMITS
    problems = []
    for field, limit_name, unit in (('fit_rms_px', 'max_fit_rms_px', 'px'),
                                    ('fit_rms_m', 'max_fit_rms_m', 'm')):
        value, limit = getattr(calibration, field), getattr(limits, limit_name)
        if value > limit:
            problems.append(f'{field} = {value:.4g} {unit} exceeds CalibrationLimits.'
                            f'{limit_name} = {limit:g} {unit}')
    return problems


def _refusal(problems, pairs: PointPairs, err_px, err_m, mapping: str) -> str:
    order = np.argsort(-np.nan_to_num(err_m, posinf=np.finfo(float).max))[:WORST_PAIRS_SHOWN]
    worst = ', '.join(f'line {pairs.lines[i]} ({err_px[i]:.3g} px, {1000 * err_m[i]:.3g} mm)'
                      for i in order)
    hint = ('refit with --ransac THRESHOLD_M (e.g. --ransac 0.01) to drop outliers, or '
            'remove them from the file' if mapping == 'homography'
            else 'remove them from the file (or re-measure them) and fit again')
    return (f'fit refused: {"; ".join(problems)}.\n  worst pairs: {worst}\n'
            f'  outliers? {hint}')


def _write_checked(calibration: Calibration, out: Path) -> Calibration:
    """Save through a temporary file, load it back with the executor's checks, then rename."""
    out.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(suffix='.yaml', dir=out.parent)
    os.close(handle)
    try:
        save_calibration(calibration, temp)
        loaded = load_calibration(temp)
        os.replace(temp, out)
    finally:
        if os.path.exists(temp):
            os.unlink(temp)
    return loaded


def run_fit(args) -> int:
    """`fit`: pairs -> core fit -> limits -> written, reloaded file -> workspace summary."""
    image_size = parse_image_size(args.image_size) if args.image_size else None
    workspace = parse_workspace(args.workspace)
    pairs = read_pairs(args.pairs, args.table_z)
    try:
        calibration = _fit(args, pairs, image_size)
    except CalibrationError as err:
        print(f'fit refused: {err}', file=sys.stderr)
        return EXIT_REFUSED
    err_px, err_m = pair_residuals(calibration, pairs)
    print(f'{calibration.kind} fit of {len(pairs.lines)} pairs from {pairs.path}: '
          f'{calibration.method}')
    print(residual_table(pairs, err_px, err_m, args.ransac or math.inf))
    print(f'rms over the fitted pairs: {calibration.fit_rms_px:.4g} px, '
          f'{1000 * calibration.fit_rms_m:.4g} mm')
    problems = _residual_problems(calibration)
    if problems:
        print(_refusal(problems, pairs, err_px, err_m, args.mapping), file=sys.stderr)
        return EXIT_REFUSED
    try:
        loaded = _write_checked(calibration, Path(args.out))
        preprocess = getattr(FramePreprocess, args.preprocess)(
            loaded.image_width_px, loaded.image_height_px)
        report = workspace_fit_report(loaded, workspace, preprocess)
    except CalibrationError as err:
        print(f'fit refused: {err}', file=sys.stderr)
        return EXIT_REFUSED
    print(f'wrote {args.out} (loaded back through load_calibration: OK)')
    for note in loaded.notes:
        print(f'  note: {note}')
    print(report.text())
    if not report.ok:
        print(f'the calibration was written, but the executor will refuse it with this '
              f'workspace: {"; ".join(report.problems)}', file=sys.stderr)
        return EXIT_REFUSED
    return EXIT_OK


def display_problem() -> str:
    """Return why no OpenCV window can be shown here, or '' when one can."""
    if sys.platform.startswith('linux') and not (
            os.environ.get('DISPLAY') or os.environ.get('WAYLAND_DISPLAY')):
        return 'no display (DISPLAY and WAYLAND_DISPLAY are unset)'
    gui = [line for line in cv2.getBuildInformation().splitlines()
           if line.strip().startswith('GUI:')]
    if gui and gui[0].split(':', 1)[1].strip().upper() == 'NONE':
        return 'this OpenCV build has no HighGUI (opencv-python-headless)'
    return ''


def grab_rgb(args) -> np.ndarray:
    """Return the image to draw on: --image file or one frame of --camera, RGB (H, W, 3)."""
    if args.image:
        bgr = cv2.imread(args.image, cv2.IMREAD_COLOR)
        if bgr is None:
            raise BadInputError(f'{args.image}: cannot read the image')
        return bgr[..., ::-1]
    try:
        source = CameraSource(CameraConfig(source=args.camera, loop=False))
        try:
            return source.read().rgb
        finally:
            source.close()
    except (CameraError, ConfigError) as err:
        raise BadInputError(f'--camera {args.camera}: {err}') from None


def run_verify(args) -> int:
    """`verify`: draw the workspace through the calibration on the current image."""
    workspace = parse_workspace(args.workspace)
    try:
        calibration = load_calibration(args.calibration)
    except CalibrationError as err:
        raise BadInputError(str(err)) from None
    rgb = grab_rgb(args)
    size = (calibration.image_width_px, calibration.image_height_px)
    if (rgb.shape[1], rgb.shape[0]) != size:
        print(f'verify problem: the image is {rgb.shape[1]}x{rgb.shape[0]} but calibration '
              f'{calibration.camera_id!r} is for {size[0]}x{size[1]} images', file=sys.stderr)
        return EXIT_REFUSED
    image, corners = draw_workspace_overlay(rgb, calibration, workspace, args.grid)
    for corner in corners:
        print(f'  workspace {corner.describe()}')
    preprocess = getattr(FramePreprocess, args.preprocess)(*size)
    report = workspace_fit_report(calibration, workspace, preprocess)
    print(report.text())
    out = args.out
    if out is None and not display_problem():
        cv2.imshow('llara_calibrate verify', np.ascontiguousarray(image[..., ::-1]))
        print('press any key in the window to close it')
        cv2.waitKey(0)
        cv2.destroyAllWindows()
    else:
        out = out or DEFAULT_VERIFY_PNG
        if not cv2.imwrite(str(out), np.ascontiguousarray(image[..., ::-1])):
            raise BadInputError(f'{out}: cannot write the PNG')
        print(f'wrote {out}')
    missing = [c for c in corners if not c.on_image]
    if missing or not report.ok:
        print(f'verify problem: {len(missing)} workspace corner(s) off the image; '
              f'{len(report.problems)} workspace-fit problem(s)', file=sys.stderr)
        return EXIT_REFUSED
    return EXIT_OK


def _ask_robot_point(pixel_uv) -> tuple[float, ...]:
    """Ask on the terminal for the base-frame point under the arm tip; () to skip."""
    while True:
        text = input(f'pixel ({pixel_uv[0]:.1f}, {pixel_uv[1]:.1f}): robot point '
                     f'"x_m y_m [z_m]" (blank skips): ').replace(',', ' ').split()
        if not text:
            return ()
        try:
            values = tuple(float(v) for v in text)
        except ValueError:
            values = ()
        if len(values) in (2, 3) and all(math.isfinite(v) for v in values):
            return values if len(values) == 3 else values + (0.0,)
        print('  need 2 or 3 numbers in metres, e.g. 0.35 -0.12 0.0')


def run_collect(args) -> int:
    """`collect`: click the arm tip on the live image, type its base point, append a pair."""
    problem = display_problem()
    if problem:
        print(f'error: collect needs an OpenCV window, but there is {problem}. Run it on the '
              f"robot computer's desktop (or ssh -X), or write {args.pairs} by hand: a "
              f'header u_px,v_px,x_m,y_m,z_m then one pair per line', file=sys.stderr)
        return EXIT_BAD_INPUT
    path = Path(args.pairs)
    if path.exists() and path.stat().st_size:
        if not read_pairs(path).has_z:
            raise BadInputError(f'{path}: collect appends u_px,v_px,x_m,y_m,z_m rows; this '
                                'file has no z_m column')
    else:
        path.write_text(f'{",".join(PAIR_COLUMNS + (Z_COLUMN,))}\n', encoding='utf-8')
    source = CameraSource(CameraConfig(source=args.camera))
    window, clicks, collected = 'llara_calibrate collect', [], []
    cv2.namedWindow(window)
    cv2.setMouseCallback(window, lambda event, u, v, *_: event == cv2.EVENT_LBUTTONDOWN
                         and clicks.append((float(u), float(v))))
    print('click the arm tip in the window, then type its robot point here; q or Esc quits')
    try:
        while True:
            try:
                bgr = np.ascontiguousarray(source.read().rgb[..., ::-1])
            except CameraError as err:
                print(f'camera: {err}', file=sys.stderr)
                if cv2.waitKey(500) & 0xFF in (ord('q'), 27):
                    break
                continue
            for u, v in collected:
                cv2.circle(bgr, (round(u), round(v)), 4, (255, 0, 255), -1)
            cv2.imshow(window, bgr)
            if cv2.waitKey(30) & 0xFF in (ord('q'), 27):
                break
            if clicks:
                pixel = clicks.pop()
                point = _ask_robot_point(pixel)
                clicks.clear()
                if point:
                    with path.open('a', encoding='utf-8') as handle:
                        handle.write(f'{pixel[0]:.2f},{pixel[1]:.2f},'
                                     f'{",".join(f"{c:.5f}" for c in point)}\n')
                    collected.append(pixel)
                    print(f'  {len(collected)} pair(s) added to {path}')
    finally:
        source.close()
        cv2.destroyAllWindows()
    return EXIT_OK


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog='llara_calibrate', description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest='command', required=True)
    fit = commands.add_parser('fit', help='fit a calibration file from a pairs file')
    fit.add_argument('--pairs', required=True,
                     help='CSV (header u_px,v_px,x_m,y_m[,z_m]) or YAML list of pairs')
    fit.add_argument('--mapping', choices=('homography', 'pinhole'), required=True)
    fit.add_argument('--intrinsics', help='pinhole: camera_info.yaml or fx,fy,cx,cy[,k1..k3]')
    fit.add_argument('--image-size', help='WxH of the camera images the pixels come from')
    fit.add_argument('--camera-id', required=True, help="the camera's name in the file")
    fit.add_argument('--out', required=True, help='calibration YAML to write')
    fit.add_argument('--table-z', type=float, default=0.0,
                     help='table height in the base frame, m (default 0; z of pairs without '
                          'a z_m column)')
    fit.add_argument('--ransac', type=float, default=0.0, metavar='THRESHOLD_M',
                     help='homography: drop pairs whose table error exceeds this (m)')
    fit.add_argument('--base-frame', default=DEFAULT_BASE_FRAME)
    fit.add_argument('--camera-frame', default=DEFAULT_CAMERA_FRAME)
    verify = commands.add_parser('verify', help='draw the workspace on the current image')
    verify.add_argument('--calibration', required=True)
    source = verify.add_mutually_exclusive_group(required=True)
    source.add_argument('--image', help='an image file from the calibrated camera')
    source.add_argument('--camera', help='camera source: device index, path, URL, folder')
    verify.add_argument('--out', help=f'PNG to write (default: a window if there is a display, '
                                      f'else {DEFAULT_VERIFY_PNG})')
    verify.add_argument('--grid', type=float, default=0.05, help='grid step, m (0: no grid)')
    for sub in (fit, verify):
        sub.add_argument('--workspace', help='x_min,x_max,y_min,y_max[,table_z] m '
                                             '(default: the Workspace defaults)')
        sub.add_argument('--preprocess', choices=('centered_crop', 'full_frame'),
                         default='centered_crop', help='camera image -> model frame')
    collect = commands.add_parser('collect', help='click pairs on the live image (display)')
    collect.add_argument('--camera', required=True, help='camera source (as for verify)')
    collect.add_argument('--pairs', required=True, help='CSV file to append pairs to')
    return parser


def main(argv=None) -> int:
    """Run `llara_calibrate`; return 0 ok, 1 refused / verify problem, 2 bad input."""
    args = _parser().parse_args(argv)
    run = {'fit': run_fit, 'verify': run_verify, 'collect': run_collect}[args.command]
    try:
        return run(args)
    except BadInputError as err:
        print(f'error: {err}', file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == '__main__':
    sys.exit(main())
