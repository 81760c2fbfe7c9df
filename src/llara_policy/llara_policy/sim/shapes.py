"""Procedural object geometry: outlines built from convex pieces, extruded into prisms.

Every object of the vocabulary (blocks, letters, stars, bowls, ...) is a union of convex
prisms, so collision is exact (one convex hull per piece) while no asset file is needed. Shapes
are drawn in glyph coordinates (u to the right, v up, unit box [-0.5, 0.5]^2) and placed in the
object frame so that at yaw 0 a letter reads upright in the front camera, whose image up is the
base frame's -x and image right is +y. Lengths in metres.
"""
from dataclasses import dataclass
import math

import numpy as np

# Stroke width of letters and symbols, as a fraction of the glyph box.
STROKE = 0.24


@dataclass(frozen=True)
class Piece:
    """A convex prism: a counter-clockwise convex polygon (x, y) from z_min_m to z_max_m."""

    polygon_m: tuple[tuple[float, float], ...]
    z_min_m: float
    z_max_m: float

    def area_m2(self) -> float:
        """Area of the polygon."""
        xy = np.array(self.polygon_m)
        return 0.5 * float(np.sum(xy[:, 0] * np.roll(xy[:, 1], -1)
                                  - np.roll(xy[:, 0], -1) * xy[:, 1]))

    def centroid_m(self) -> np.ndarray:
        """Centroid (3,) of the prism."""
        xy = np.array(self.polygon_m)
        cross = xy[:, 0] * np.roll(xy[:, 1], -1) - np.roll(xy[:, 0], -1) * xy[:, 1]
        area = 0.5 * cross.sum()
        cx = np.sum((xy[:, 0] + np.roll(xy[:, 0], -1)) * cross) / (6.0 * area)
        cy = np.sum((xy[:, 1] + np.roll(xy[:, 1], -1)) * cross) / (6.0 * area)
        return np.array([cx, cy, 0.5 * (self.z_min_m + self.z_max_m)])

    def hull_vertices_m(self) -> list[tuple[float, float, float]]:
        """Corner points of the prism (collision: pybullet takes their convex hull)."""
        return ([(x, y, self.z_min_m) for x, y in self.polygon_m]
                + [(x, y, self.z_max_m) for x, y in self.polygon_m])


def _convex_ccw(points) -> tuple[tuple[float, float], ...]:
    """Return the points ordered counter-clockwise around their centroid."""
    xy = np.asarray(points, dtype=float)
    centre = xy.mean(axis=0)
    order = np.argsort(np.arctan2(xy[:, 1] - centre[1], xy[:, 0] - centre[0]))
    return tuple(map(tuple, xy[order]))


def rect(u0: float, v0: float, u1: float, v1: float) -> tuple:
    """Axis-aligned rectangle in glyph coordinates."""
    return ((u0, v0), (u1, v0), (u1, v1), (u0, v1))


def stroke(u0: float, v0: float, u1: float, v1: float, width: float = STROKE) -> tuple:
    """Return a straight stroke of `width` from (u0, v0) to (u1, v1), ends cut square."""
    direction = np.array([u1 - u0, v1 - v0])
    normal = np.array([-direction[1], direction[0]]) / np.linalg.norm(direction) * width / 2
    a, b = np.array([u0, v0]), np.array([u1, v1])
    return (tuple(a - normal), tuple(b - normal), tuple(b + normal), tuple(a + normal))


def regular_polygon(sides: int, radius: float, phase_rad: float = math.pi / 2,
                    centre=(0.0, 0.0)) -> tuple:
    """Regular polygon with a vertex at `phase_rad` (default: pointing up)."""
    return tuple((centre[0] + radius * math.cos(phase_rad + 2 * math.pi * k / sides),
                  centre[1] + radius * math.sin(phase_rad + 2 * math.pi * k / sides))
                 for k in range(sides))


def arc(radius_out: float, radius_in: float, start_deg: float, end_deg: float,
        segments: int, centre=(0.0, 0.0)) -> list[tuple]:
    """Return an annulus sector split into convex quads."""
    pieces = []
    angles = np.radians(np.linspace(start_deg, end_deg, segments + 1))
    for a0, a1 in zip(angles[:-1], angles[1:], strict=True):
        pieces.append(tuple((centre[0] + r * math.cos(a), centre[1] + r * math.sin(a))
                            for r, a in ((radius_in, a0), (radius_out, a0), (radius_out, a1),
                                         (radius_in, a1))))
    return pieces


_H = STROKE / 2
GLYPHS = {
    'square': [rect(-0.5, -0.5, 0.5, 0.5)],
    'L': [rect(-0.5, -0.5, -0.5 + STROKE, 0.5), rect(-0.5, -0.5, 0.5, -0.5 + STROKE)],
    'T': [rect(-0.5, 0.5 - STROKE, 0.5, 0.5), rect(-_H, -0.5, _H, 0.5 - STROKE)],
    'E': [rect(-0.4, -0.5, -0.4 + STROKE, 0.5), rect(-0.4, 0.5 - STROKE, 0.4, 0.5),
          rect(-0.4, -_H, 0.3, _H), rect(-0.4, -0.5, 0.4, -0.5 + STROKE)],
    'V': [stroke(-0.4, 0.5, 0.0, -0.45), stroke(0.4, 0.5, 0.0, -0.45)],
    'A': [stroke(0.0, 0.45, -0.4, -0.5), stroke(0.0, 0.45, 0.4, -0.5),
          rect(-0.25, -0.2, 0.25, -0.2 + STROKE * 0.8)],
    'M': [rect(-0.5, -0.5, -0.5 + STROKE, 0.5), rect(0.5 - STROKE, -0.5, 0.5, 0.5),
          stroke(-0.5 + _H, 0.45, 0.0, -0.05, STROKE * 0.9),
          stroke(0.5 - _H, 0.45, 0.0, -0.05, STROKE * 0.9)],
    'G': arc(0.5, 0.5 - STROKE, 30, 330, 7) + [rect(0.05, -0.2, 0.45, -0.2 + STROKE),
                                              rect(0.5 - STROKE, -0.45, 0.45, -0.05)],
    'R': [rect(-0.4, -0.5, -0.4 + STROKE, 0.5), rect(-0.4, 0.5 - STROKE, 0.1, 0.5),
          rect(-0.4, -0.05, 0.1, -0.05 + STROKE)]
    + arc(0.26, 0.26 - STROKE, -90, 90, 4, centre=(0.1, 0.21))
    + [stroke(-0.05, 0.0, 0.4, -0.5)],
    'cross': [rect(-0.5, -_H, 0.5, _H), rect(-_H, -0.5, _H, 0.5)],
    'triangle': [regular_polygon(3, 0.5)],
    'pentagon': [regular_polygon(5, 0.5)],
    'hexagon': [regular_polygon(6, 0.5, 0.0)],
    'diamond': [((0.0, 0.5), (-0.3, 0.0), (0.0, -0.5), (0.3, 0.0))],
    'round': [regular_polygon(24, 0.5)],
    'ring': arc(0.5, 0.5 - STROKE, 0, 360, 12),
    'star': [regular_polygon(5, 0.2, -math.pi / 2)] + [
        ((0.2 * math.cos(a - 0.63), 0.2 * math.sin(a - 0.63)), (0.5 * math.cos(a),
                                                                0.5 * math.sin(a)),
         (0.2 * math.cos(a + 0.63), 0.2 * math.sin(a + 0.63)))
        for a in (math.pi / 2 + 2 * math.pi * k / 5 for k in range(5))],
    'heart': [regular_polygon(16, 0.25, 0.0, (-0.24, 0.2)),
              regular_polygon(16, 0.25, 0.0, (0.24, 0.2)),
              ((-0.47, 0.12), (0.0, -0.5), (0.47, 0.12), (0.0, 0.25))],
    'flower': [regular_polygon(12, 0.2)] + [
        regular_polygon(12, 0.17, 0.0, (0.3 * math.cos(a), 0.3 * math.sin(a)))
        for a in (k * math.pi / 2 for k in range(4))],
}


def _centred(pieces: list[Piece]) -> tuple[Piece, ...]:
    """Shift pieces so the object's z extent is centred on 0 (the body origin)."""
    half = max(piece.z_max_m for piece in pieces) / 2
    return tuple(Piece(piece.polygon_m, piece.z_min_m - half, piece.z_max_m - half)
                 for piece in pieces)


def glyph_pieces(glyph: str, footprint_m: float, height_m: float) -> tuple[Piece, ...]:
    """Extrude a glyph scaled to `footprint_m`; object frame x = -v, y = u, z centred."""
    pieces = []
    for polygon in GLYPHS[glyph]:
        xy = [(-v * footprint_m, u * footprint_m) for u, v in polygon]
        pieces.append(Piece(_convex_ccw(xy), 0.0, height_m))
    return _centred(pieces)


def container_pieces(outline: str, size_m: float, wall_height_m: float, wall_m: float,
                     floor_m: float) -> tuple[Piece, ...]:
    """Return a floor plus walls along an outline of outer size `size_m`.

    `outline` is 'round', 'square' or 'three-sided' (a square open towards +x).
    """
    half = size_m / 2
    pieces = []
    if outline == 'round':
        floor = regular_polygon(24, half)
        walls = arc(half, half - wall_m, 0, 360, 16)
    else:
        floor = rect(-half, -half, half, half)
        walls = [rect(-half, -half, half, -half + wall_m), rect(-half, half - wall_m, half, half),
                 rect(-half, -half, -half + wall_m, half), rect(half - wall_m, -half, half, half)]
        if outline == 'three-sided':
            walls = walls[:3]
    if floor_m > 0:
        pieces.append(Piece(_convex_ccw(floor), 0.0, floor_m))
    pieces += [Piece(_convex_ccw(w), 0.0, wall_height_m) for w in walls]
    return _centred(pieces)
