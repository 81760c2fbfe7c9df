"""Draw the workspace box, a table grid and the base axes on a camera image via a calibration.

`llara_calibrate verify` uses it: if the drawn box does not sit on the taped workspace (or the
touch-up points) in the real image, the calibration is wrong, whatever its residuals say.
Table points go through the calibration's own mapping (pinhole: the full camera model at the
workspace's table height; homography and VIMA's fixed map: their table plane).
"""
from dataclasses import dataclass
import math
from typing import Optional

import cv2
import numpy as np

from llara_policy.errors import ProjectionError
from llara_policy.geometry.calibration import Calibration
from llara_policy.geometry.transforms import PinholeCamera
from llara_policy.workspace import Workspace

# RGB colours of the overlay. Corners are drawn last, so the pixel under each projected corner
# is exactly CORNER_RGB.
CORNER_RGB = (255, 0, 255)
BOX_RGB = (255, 255, 0)
GRID_RGB = (0, 170, 255)
X_AXIS_RGB = (255, 0, 0)
Y_AXIS_RGB = (0, 255, 0)
# Samples per box edge or grid line, so lens distortion bends the drawn lines as it should.
_SAMPLES_PER_LINE = 64
# Segments with an end further than this many image sizes off the image are not drawn (cv2's
# fixed-point coordinates overflow on points near the horizon).
_MAX_OFFSET_IMAGES = 4.0
# Length of the drawn base axes (metres on the table).
AXIS_LENGTH_M = 0.1
# Sub-pixel drawing: coordinates are passed to cv2 multiplied by 2**_SHIFT.
_SHIFT = 4


@dataclass(frozen=True)
class CornerPixel:
    """A workspace corner (x, y) m and its camera pixel (u, v); None when it does not project."""

    xy_m: tuple[float, float]
    pixel_uv: Optional[tuple[float, float]]
    width_px: int
    height_px: int

    @property
    def on_image(self) -> bool:
        """Whether the corner lands on the image (pixel centres span [-0.5, size - 0.5])."""
        if self.pixel_uv is None:
            return False
        u, v = self.pixel_uv
        return -0.5 <= u <= self.width_px - 0.5 and -0.5 <= v <= self.height_px - 0.5

    def describe(self) -> str:
        """Return e.g. 'corner (0.200, -0.300) m -> pixel (12.3, 45.6)'."""
        corner = f'corner ({self.xy_m[0]:.3f}, {self.xy_m[1]:.3f}) m'
        if self.pixel_uv is None:
            return f'{corner} -> does not project (behind the camera)'
        where = '' if self.on_image else ' OUTSIDE the image'
        return f'{corner} -> pixel ({self.pixel_uv[0]:.1f}, {self.pixel_uv[1]:.1f}){where}'


def project_table_points(calibration: Calibration, xy_m, table_z_m: float) -> np.ndarray:
    """Map table points (N, 2) m at height `table_z_m` to camera pixels (N, 2); NaN if none."""
    xy = np.asarray(xy_m, dtype=float).reshape(-1, 2)
    mapping = calibration.mapping
    pixels = np.full((len(xy), 2), np.nan)
    for i, point in enumerate(xy):
        try:
            if isinstance(mapping, PinholeCamera):
                pixels[i] = mapping.base_to_pixels([[point[0], point[1], table_z_m]])[0]
            else:
                pixels[i] = mapping.table_xy_to_pixels(point)[0]
        except ProjectionError:
            pass  # behind the camera or on the homography's line at infinity: not drawn
    return pixels


def workspace_corner_pixels(calibration: Calibration,
                            workspace: Workspace) -> tuple[CornerPixel, ...]:
    """Return the workspace's four table corners and where they land in the camera image."""
    corners = workspace.corners_xy_m()
    pixels = project_table_points(calibration, corners, workspace.table_z_m)
    return tuple(
        CornerPixel(xy, None if np.isnan(uv).any() else (float(uv[0]), float(uv[1])),
                    calibration.image_width_px, calibration.image_height_px)
        for xy, uv in zip(corners, pixels, strict=True))


def _polyline(image: np.ndarray, pixels: np.ndarray, rgb, thickness: int) -> None:
    """Draw consecutive samples as segments, skipping any with an end missing or far off."""
    height, width = image.shape[:2]
    limit = _MAX_OFFSET_IMAGES * max(width, height)
    fixed = np.round(np.nan_to_num(pixels, nan=1e9) * (1 << _SHIFT)).clip(-2**30, 2**30)
    ok = np.all(np.isfinite(pixels), axis=1) & np.all(np.abs(pixels) < limit, axis=1)
    for i in range(len(pixels) - 1):
        if ok[i] and ok[i + 1]:
            cv2.line(image, tuple(int(c) for c in fixed[i]), tuple(int(c) for c in fixed[i + 1]),
                     rgb, thickness, cv2.LINE_AA, _SHIFT)


def _table_line(calibration, start_xy, end_xy, table_z_m) -> np.ndarray:
    steps = np.linspace(0.0, 1.0, _SAMPLES_PER_LINE)[:, None]
    xy = np.asarray(start_xy, dtype=float) + steps * (np.subtract(end_xy, start_xy))
    return project_table_points(calibration, xy, table_z_m)


def _grid_values(low: float, high: float, step: float) -> np.ndarray:
    first = math.ceil(low / step - 1e-9) * step
    return np.arange(first, high + 1e-9, step)


def draw_workspace_overlay(rgb: np.ndarray, calibration: Calibration, workspace: Workspace,
                           grid_m: float = 0.05) -> tuple[np.ndarray, tuple[CornerPixel, ...]]:
    """Return a copy of `rgb` (H, W, 3) with the overlay drawn, and the corners' pixels.

    Drawn: a table grid every `grid_m` metres inside the box, the box edges, the base +x (red)
    and +y (green) axes from the box centre, and a filled disc on each corner.
    """
    image = np.ascontiguousarray(rgb, dtype=np.uint8).copy()
    w, z = workspace, workspace.table_z_m
    size = min(image.shape[:2])
    thickness = max(1, round(size / 400))
    if grid_m > 0.0:
        for x in _grid_values(w.x_min_m, w.x_max_m, grid_m):
            _polyline(image, _table_line(calibration, (x, w.y_min_m), (x, w.y_max_m), z),
                      GRID_RGB, thickness)
        for y in _grid_values(w.y_min_m, w.y_max_m, grid_m):
            _polyline(image, _table_line(calibration, (w.x_min_m, y), (w.x_max_m, y), z),
                      GRID_RGB, thickness)
    corners = w.corners_xy_m()
    for start, end in zip(corners, corners[1:] + corners[:1], strict=True):
        _polyline(image, _table_line(calibration, start, end, z), BOX_RGB, 2 * thickness)
    centre = ((w.x_min_m + w.x_max_m) / 2.0, (w.y_min_m + w.y_max_m) / 2.0)
    for axis, rgb_axis, label in (((AXIS_LENGTH_M, 0.0), X_AXIS_RGB, '+x'),
                                  ((0.0, AXIS_LENGTH_M), Y_AXIS_RGB, '+y')):
        tip = (centre[0] + axis[0], centre[1] + axis[1])
        _polyline(image, _table_line(calibration, centre, tip, z), rgb_axis, 2 * thickness)
        tip_px = project_table_points(calibration, [tip], z)[0]
        if np.all(np.isfinite(tip_px)) and np.all(np.abs(tip_px) < 4 * max(image.shape)):
            cv2.putText(image, label, (int(tip_px[0]) + 3, int(tip_px[1]) - 3),
                        cv2.FONT_HERSHEY_SIMPLEX, max(0.3, size / 800), rgb_axis, thickness,
                        cv2.LINE_AA)
    corner_pixels = workspace_corner_pixels(calibration, workspace)
    radius = max(3, round(size / 80))
    for corner in corner_pixels:
        if corner.pixel_uv is not None and all(abs(c) < 4 * max(image.shape)
                                               for c in corner.pixel_uv):
            centre_fixed = tuple(int(round(c * (1 << _SHIFT))) for c in corner.pixel_uv)
            cv2.circle(image, centre_fixed, radius << _SHIFT, CORNER_RGB, -1, cv2.LINE_8,
                       _SHIFT)
    return image, corner_pixels
