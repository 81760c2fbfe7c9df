"""Visual meshes of the procedural shapes, written once as Wavefront OBJ files.

pybullet's EGL renderer draws only meshes it reads from files (a programmatic `GEOM_MESH`
visual renders as nothing there), so each shape's triangles go to an OBJ file. Files are
content-addressed (the name is a hash of the text) in one folder under the system temp
directory: identical shapes share a file across worlds and processes, and a file never changes
once written (written to a temporary name, then renamed).
"""
from dataclasses import dataclass
import hashlib
import math
import os
from pathlib import Path
import tempfile

from llara_policy.sim.shapes import Piece

MESH_DIR = Path(tempfile.gettempdir()) / f'llara_sim_meshes_{os.getuid()}'


@dataclass(frozen=True)
class VisualMesh:
    """Flat-shaded triangle mesh: per-vertex positions, normals and uvs, and triangles."""

    vertices: tuple
    normals: tuple
    uvs: tuple
    triangles: tuple


def visual_mesh(pieces: tuple[Piece, ...], uv_scale_m: float) -> VisualMesh:
    """Return the triangles of every prism face, each face with its own vertices."""
    vertices, normals, uvs, triangles = [], [], [], []

    def face(points, normal):
        start = len(vertices)
        for x, y, z in points:
            vertices.append((x, y, z))
            normals.append(normal)
            # Planar texture coordinates; side faces use the horizontal run and the height.
            if abs(normal[2]) > 0.5:
                uvs.append((x / uv_scale_m + 0.5, y / uv_scale_m + 0.5))
            else:
                uvs.append(((x + y) / uv_scale_m, z / uv_scale_m))
        triangles.extend((start, start + k, start + k + 1) for k in range(1, len(points) - 1))

    for piece in pieces:
        poly, z0, z1 = piece.polygon_m, piece.z_min_m, piece.z_max_m
        face([(x, y, z1) for x, y in poly], (0.0, 0.0, 1.0))
        face([(x, y, z0) for x, y in reversed(poly)], (0.0, 0.0, -1.0))
        for (xa, ya), (xb, yb) in zip(poly, poly[1:] + poly[:1], strict=True):
            length = math.hypot(xb - xa, yb - ya)
            normal = ((yb - ya) / length, -(xb - xa) / length, 0.0)
            face([(xa, ya, z0), (xb, yb, z0), (xb, yb, z1), (xa, ya, z1)], normal)
    return VisualMesh(tuple(vertices), tuple(normals), tuple(uvs), tuple(triangles))


def obj_text(mesh: VisualMesh) -> str:
    """Return the mesh as Wavefront OBJ text (1-based indices, v/vt/vn per corner)."""
    lines = [f'v {x:.6f} {y:.6f} {z:.6f}' for x, y, z in mesh.vertices]
    lines += [f'vt {u:.6f} {v:.6f}' for u, v in mesh.uvs]
    lines += [f'vn {x:.6f} {y:.6f} {z:.6f}' for x, y, z in mesh.normals]
    lines += ['f ' + ' '.join(f'{i + 1}/{i + 1}/{i + 1}' for i in triangle)
              for triangle in mesh.triangles]
    return '\n'.join(lines) + '\n'


def mesh_file(pieces: tuple[Piece, ...], uv_scale_m: float) -> str:
    """Return the path of an OBJ file holding the pieces' visual mesh (written if missing)."""
    return _stored(obj_text(visual_mesh(pieces, uv_scale_m)))


def grid_file(half_x_m: float, half_y_m: float, cells: int) -> str:
    """Return an OBJ file of a flat z = 0 rectangle split into cells x cells squares.

    The EGL renderer lights a large two-triangle face unevenly (a dark wedge across the
    table); a finely split face is lit evenly.
    """
    vertices, uvs, triangles = [], [], []
    for iy in range(cells + 1):
        for ix in range(cells + 1):
            vertices.append((-half_x_m + 2 * half_x_m * ix / cells,
                             -half_y_m + 2 * half_y_m * iy / cells, 0.0))
            uvs.append((ix / cells, iy / cells))
    for iy in range(cells):
        for ix in range(cells):
            a = iy * (cells + 1) + ix
            triangles += [(a, a + 1, a + cells + 2), (a, a + cells + 2, a + cells + 1)]
    mesh = VisualMesh(tuple(vertices), ((0.0, 0.0, 1.0),) * len(vertices), tuple(uvs),
                      tuple(triangles))
    return _stored(obj_text(mesh))


def _stored(text: str) -> str:
    """Write OBJ text under its content hash unless already there; return the path."""
    path = MESH_DIR / f'{hashlib.sha1(text.encode()).hexdigest()[:20]}.obj'
    if not path.exists():
        MESH_DIR.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=MESH_DIR, suffix='.tmp')
        with os.fdopen(handle, 'w') as stream:
            stream.write(text)
        os.replace(temporary, path)
    return str(path)
