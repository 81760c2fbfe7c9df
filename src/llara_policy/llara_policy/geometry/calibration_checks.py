"""Start-up check that a camera calibration and the safety `Workspace` fit together.

The executor maps each model point through the calibration to the base frame, then refuses
targets outside the `Workspace`. If the camera misses part of the workspace, the policy cannot
point there; if little of the model frame lands inside it, most answers are refused. This check
runs the same ModelFrameMapper the executor uses and reports both, with a CLI:

    python -m llara_policy.geometry.calibration_checks --calibration calibration.yaml
"""
import argparse
from dataclasses import dataclass
import sys
from typing import Optional

import numpy as np

from llara_policy.errors import CalibrationError, ProjectionError, UnsafeTargetError
from llara_policy.execution import ModelFrameMapper
from llara_policy.geometry.calibration import Calibration, load_calibration
from llara_policy.geometry.calibration_limits import DEFAULT_CALIBRATION_LIMITS, CalibrationLimits
from llara_policy.geometry.preprocessing import FramePreprocess
from llara_policy.workspace import Workspace, check_xy_m

# Model-frame sample grid for the fraction (cell centres): 4 x 4 model pixels per sample at
# 256x128, fine enough for a percentage, cheap enough for every start-up.
GRID_COLUMNS = 64
GRID_ROWS = 32
# Points per model-frame edge when measuring the table area the frame covers.
_EDGE_SAMPLES = 65


@dataclass(frozen=True)
class CornerProjection:
    """A workspace table corner (x, y) m and its normalized model point, unclipped.

    `model_xy_norm` is (u / width, v / height) of the model frame, None when the corner is
    behind the camera. The corner is inside when both lie in [0, 1].
    """

    xy_m: tuple[float, float]
    model_xy_norm: Optional[tuple[float, float]]

    @property
    def inside(self) -> bool:
        """Whether the corner lands on the model frame."""
        return self.model_xy_norm is not None and all(0.0 <= v <= 1.0 for v in self.model_xy_norm)

    def describe(self) -> str:
        """Return e.g. 'corner (0.200, -0.300) m -> model point (0.012, 0.874)'."""
        corner = f'corner ({self.xy_m[0]:.3f}, {self.xy_m[1]:.3f}) m'
        if self.model_xy_norm is None:
            return f'{corner} -> outside the image (behind the camera)'
        point = f'({self.model_xy_norm[0]:.3f}, {self.model_xy_norm[1]:.3f})'
        if self.inside:
            return f'{corner} -> model point {point}'
        return f'{corner} -> outside the image (model point {point})'


@dataclass(frozen=True)
class WorkspaceFitReport:
    """How a calibration's model frame and a workspace overlap; `problems` is empty when fine.

    `fraction_inside` is the share of a GRID_COLUMNS x GRID_ROWS grid over the model frame
    whose table points pass the workspace check (box and reach). `frame_x_range_m` /
    `frame_y_range_m` bound the table area the model frame covers (NaN when none of it
    meets the table plane).
    """

    camera_id: str
    workspace: Workspace
    corners: tuple[CornerProjection, ...]
    fraction_inside: float
    frame_x_range_m: tuple[float, float]
    frame_y_range_m: tuple[float, float]
    table_z_mismatch_m: float
    problems: tuple[str, ...]

    @property
    def all_corners_inside(self) -> bool:
        """Whether every workspace corner lands on the model frame."""
        return all(corner.inside for corner in self.corners)

    @property
    def ok(self) -> bool:
        """Whether the calibration and the workspace fit together (no problems)."""
        return not self.problems

    def summary(self) -> str:
        """Return one line: corners inside, the fraction, and the table area the frame covers."""
        w = self.workspace
        inside = sum(corner.inside for corner in self.corners)
        (x0, x1), (y0, y1) = self.frame_x_range_m, self.frame_y_range_m
        return (f'calibration {self.camera_id!r} vs workspace x {w.x_min_m:g}..{w.x_max_m:g} m, '
                f'y {w.y_min_m:g}..{w.y_max_m:g} m: {inside}/{len(self.corners)} corners in '
                f'the model frame, {100.0 * self.fraction_inside:.1f} % of the model frame maps '
                f'inside the workspace (the frame covers x {x0:.3f}..{x1:.3f} m, '
                f'y {y0:.3f}..{y1:.3f} m)')

    def text(self) -> str:
        """Return the summary, one line per corner, and the problems (or 'OK')."""
        lines = [self.summary()] + [f'  {corner.describe()}' for corner in self.corners]
        lines += [f'  problem: {problem}' for problem in self.problems] or ['  OK']
        return '\n'.join(lines)


def _project_corner(mapper: ModelFrameMapper, xy_m, table_z_m: float) -> CornerProjection:
    point = np.array([[xy_m[0], xy_m[1], table_z_m]])
    try:
        u, v = mapper.base_to_model_pixels(point)[0]
    except ProjectionError:
        return CornerProjection(tuple(xy_m), None)
    pre = mapper.preprocess
    return CornerProjection(tuple(xy_m), (float(u / pre.model_width_px),
                                          float(v / pre.model_height_px)))


def _map_to_table(mapper: ModelFrameMapper, model_pixels: np.ndarray) -> np.ndarray:
    """Map model pixels (N, 2) to table points (N, 3); NaN rows where a ray misses the table."""
    try:
        return mapper.model_pixels_to_base(model_pixels)
    except ProjectionError:
        rows = []
        for pixel in model_pixels:
            try:
                rows.append(mapper.model_pixels_to_base(pixel)[0])
            except ProjectionError:
                rows.append(np.full(3, np.nan))
        return np.array(rows)


def _fraction_inside(mapper: ModelFrameMapper, workspace: Workspace) -> float:
    pre = mapper.preprocess
    u = (np.arange(GRID_COLUMNS) + 0.5) * pre.model_width_px / GRID_COLUMNS
    v = (np.arange(GRID_ROWS) + 0.5) * pre.model_height_px / GRID_ROWS
    grid = np.stack(np.meshgrid(u, v), axis=-1).reshape(-1, 2)
    inside = 0
    for x_m, y_m, _ in _map_to_table(mapper, grid):
        try:
            check_xy_m(workspace, (x_m, y_m), 'model frame sample')
            inside += 1
        except UnsafeTargetError:
            pass  # outside the workspace, or NaN where the ray misses the table
    return inside / len(grid)


def _frame_ranges_m(mapper: ModelFrameMapper) -> tuple[tuple[float, float], ...]:
    """Return the x and y ranges (m) of the table area under the model frame (its boundary)."""
    pre = mapper.preprocess
    u = np.linspace(0.0, pre.model_width_px, _EDGE_SAMPLES)
    v = np.linspace(0.0, pre.model_height_px, _EDGE_SAMPLES)
    edges = np.concatenate([np.column_stack([u, np.zeros_like(u)]),
                            np.column_stack([u, np.full_like(u, pre.model_height_px)]),
                            np.column_stack([np.zeros_like(v), v]),
                            np.column_stack([np.full_like(v, pre.model_width_px), v])])
    xy = _map_to_table(mapper, edges)[:, :2]
    if np.all(np.isnan(xy)):
        return (np.nan, np.nan), (np.nan, np.nan)
    low, high = np.nanmin(xy, axis=0), np.nanmax(xy, axis=0)
    return (float(low[0]), float(high[0])), (float(low[1]), float(high[1]))


def workspace_fit_report(calibration: Calibration, workspace: Workspace,
                         preprocess: FramePreprocess,
                         limits: CalibrationLimits = DEFAULT_CALIBRATION_LIMITS
                         ) -> WorkspaceFitReport:
    """Project the workspace into the model frame and the model frame onto the table.

    Corners are projected at `workspace.table_z_m`; the model frame is mapped onto the
    calibration's table plane, as the executor maps the model's points. Problems: a corner
    outside the model frame, no model point inside the workspace, or table heights further
    apart than `limits.max_table_z_mismatch_m`.
    """
    mapper = ModelFrameMapper(calibration, preprocess)
    corners = tuple(_project_corner(mapper, xy, workspace.table_z_m)
                    for xy in workspace.corners_xy_m())
    fraction = _fraction_inside(mapper, workspace)
    mismatch_m = abs(calibration.table_z_m - workspace.table_z_m)
    problems = [f'workspace {c.describe()}' for c in corners if not c.inside]
    if fraction == 0.0:
        problems.append('no point of the model frame maps inside the workspace')
    if mismatch_m > limits.max_table_z_mismatch_m:
        problems.append(
            f'calibration table_z_m = {calibration.table_z_m:g} m but Workspace.table_z_m = '
            f'{workspace.table_z_m:g} m: {mismatch_m:.3g} m apart, more than '
            f'CalibrationLimits.max_table_z_mismatch_m = {limits.max_table_z_mismatch_m:g} m')
    x_range, y_range = _frame_ranges_m(mapper)
    return WorkspaceFitReport(calibration.camera_id, workspace, corners, fraction, x_range,
                              y_range, mismatch_m, tuple(problems))


def check_workspace_fit(calibration: Calibration, workspace: Workspace,
                        preprocess: FramePreprocess,
                        limits: CalibrationLimits = DEFAULT_CALIBRATION_LIMITS
                        ) -> WorkspaceFitReport:
    """Return the fit report, or raise CalibrationError listing its problems (for start-up)."""
    report = workspace_fit_report(calibration, workspace, preprocess, limits)
    if not report.ok:
        raise CalibrationError(f'calibration {calibration.camera_id!r} does not fit the '
                               f'workspace: {"; ".join(report.problems)}')
    return report


def main(argv=None) -> int:
    """Print the fit report of a calibration file against the default Workspace; 1 on problems."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--calibration', required=True, help='calibration YAML file')
    parser.add_argument('--preprocess', choices=('centered_crop', 'full_frame'),
                        default='centered_crop',
                        help='how camera images become the model frame (default centered_crop)')
    args = parser.parse_args(argv)
    try:
        calibration = load_calibration(args.calibration)
        preprocess = getattr(FramePreprocess, args.preprocess)(
            calibration.image_width_px, calibration.image_height_px)
        report = workspace_fit_report(calibration, Workspace(), preprocess)
    except CalibrationError as err:
        print(f'error: {err}', file=sys.stderr)
        return 1
    print(report.text())
    return 0 if report.ok else 1


if __name__ == '__main__':
    sys.exit(main())
