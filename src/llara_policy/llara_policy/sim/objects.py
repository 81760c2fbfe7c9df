"""The object vocabulary: shapes x colours with readable names, split like VIMA-Bench's partitions.

Names follow VIMA's (`vimalabs/VIMABench vima_bench/tasks/components/encyclopedia/objects.py`):
"letter A", "L-shaped block", "bowl", ...; an object's name is "<colour> <shape>", e.g.
"red block". Sizes are ours, scaled to a 0.3 x 0.6 m workspace that an xArm6 reaches (VIMA's
is 0.5 x 1 m). Held-out shapes for the novel-object partition (L3) are VIMA's: letter R,
diamond, hexagon, round, star (dragged) and pallet, pan (bases); train shapes are VIMA's
train.yaml lists. Colour sets 1 and 2 play VIMA's color_set_1 / color_set_2.
"""
from dataclasses import dataclass
import enum

from llara_policy.errors import SimError
from llara_policy.sim.shapes import Piece, container_pieces, glyph_pieces, rect


class Role(enum.Enum):
    """What a shape is for: picked up and moved, or a container things go into."""

    DRAGGED = 'dragged'
    BASE = 'base'


class Profile(enum.Enum):
    """VIMA's object profile, the same_shape task's notion of 'same shape'."""

    SQUARE = 'square-like'
    CIRCLE = 'circle-like'
    OTHER = 'other'


@dataclass(frozen=True)
class ShapeKind:
    """One shape of the vocabulary.

    `symmetry_deg` is the smallest turn that maps the shape onto itself (0: every turn, as for
    a disc; 360: none). `footprint_m` is the side of its square bounding box, `height_m` its
    height. Bases are static bodies, as VIMA's 'fixed' objects are; markings on the table
    (`solid=False`, e.g. a line) are drawn but do not collide.
    """

    name: str
    role: Role
    profile: Profile
    symmetry_deg: float
    footprint_m: float
    height_m: float
    recipe: tuple
    solid: bool = True

    def pieces(self) -> tuple[Piece, ...]:
        """Return the convex pieces of this shape in its object frame (origin at the centre)."""
        kind, *args = self.recipe
        if kind == 'glyph':
            return glyph_pieces(args[0], self.footprint_m, self.height_m)
        if kind == 'container':
            outline, wall_m, floor_m = args
            return container_pieces(outline, self.footprint_m, self.height_m, wall_m, floor_m)
        if kind == 'line':
            half_x, half_y = args[0] / 2, self.footprint_m / 2
            return (Piece(rect(-half_x, -half_y, half_x, half_y), -self.height_m / 2,
                          self.height_m / 2),)
        if kind == 'pallet':
            half_x, half_y = self.footprint_m * 0.4, self.footprint_m / 2
            return (Piece(rect(-half_x, -half_y, half_x, half_y), -self.height_m / 2,
                          self.height_m / 2),)
        if kind == 'pan':
            body = container_pieces('round', self.footprint_m * 0.7, self.height_m, 0.005, 0.004)
            z1 = body[-1].z_max_m
            handle_y = self.footprint_m * 0.35
            return body + (Piece(rect(-0.008, handle_y - 0.004, 0.008, self.footprint_m / 2),
                                 z1 - 0.008, z1),)
        raise SimError(f'unknown shape recipe {self.recipe!r}')

    def grasp_xy_m(self) -> tuple[float, float]:
        """Return where the oracle grips: the centroid of the largest piece (object frame).

        Unlike the centroid of a ring or a letter, it always lies on the material.
        """
        largest = max(self.pieces(), key=lambda piece: piece.area_m2())
        x, y, _ = largest.centroid_m()
        return float(x), float(y)

    def radius_m(self) -> float:
        """Radius of a disc around the origin that holds the whole footprint."""
        return max((x * x + y * y) ** 0.5 for piece in self.pieces()
                   for x, y in piece.polygon_m)


def _letter(name: str, glyph: str, symmetry: float = 360.0,
            profile: Profile = Profile.OTHER, footprint: float = 0.06) -> ShapeKind:
    return ShapeKind(name, Role.DRAGGED, profile, symmetry, footprint, 0.02, ('glyph', glyph))


SHAPES = {s.name: s for s in (
    ShapeKind('block', Role.DRAGGED, Profile.SQUARE, 90.0, 0.045, 0.045, ('glyph', 'square')),
    ShapeKind('shorter block', Role.DRAGGED, Profile.SQUARE, 90.0, 0.045, 0.022,
              ('glyph', 'square')),
    _letter('L-shaped block', 'L'),
    _letter('letter A', 'A'),
    _letter('letter E', 'E'),
    _letter('letter G', 'G'),
    _letter('letter M', 'M'),
    _letter('letter T', 'T'),
    _letter('letter V', 'V'),
    _letter('letter R', 'R'),
    _letter('cross', 'cross', 90.0),
    _letter('triangle', 'triangle', 120.0),
    _letter('flower', 'flower', 90.0),
    _letter('heart', 'heart'),
    _letter('ring', 'ring', 0.0, Profile.CIRCLE),
    _letter('pentagon', 'pentagon', 72.0),
    _letter('diamond', 'diamond', 180.0),
    _letter('hexagon', 'hexagon', 60.0),
    _letter('round', 'round', 0.0, Profile.CIRCLE),
    _letter('star', 'star', 72.0),
    ShapeKind('bowl', Role.BASE, Profile.CIRCLE, 0.0, 0.12, 0.025,
              ('container', 'round', 0.006, 0.004)),
    ShapeKind('container', Role.BASE, Profile.SQUARE, 90.0, 0.12, 0.03,
              ('container', 'square', 0.006, 0.004)),
    ShapeKind('square', Role.BASE, Profile.SQUARE, 90.0, 0.12, 0.012,
              ('container', 'square', 0.008, 0.0)),
    ShapeKind('frame', Role.BASE, Profile.SQUARE, 90.0, 0.13, 0.004,
              ('container', 'square', 0.014, 0.0)),
    ShapeKind('pallet', Role.BASE, Profile.SQUARE, 180.0, 0.13, 0.012, ('pallet',)),
    ShapeKind('pan', Role.BASE, Profile.CIRCLE, 360.0, 0.17, 0.02, ('pan',)),
    # sweep_without_exceeding (VIMA: small block, three-sided rectangle, line).
    ShapeKind('small block', Role.DRAGGED, Profile.SQUARE, 90.0, 0.018, 0.018,
              ('glyph', 'square')),
    ShapeKind('three-sided rectangle', Role.BASE, Profile.OTHER, 360.0, 0.16, 0.002,
              ('container', 'three-sided', 0.008, 0.0), solid=False),
    ShapeKind('line', Role.BASE, Profile.OTHER, 180.0, 0.2, 0.001, ('line', 0.024),
              solid=False),
)}

# VIMA train.yaml `dragged_obj`, `dragged_obj_asymmetric`, `base_obj`; the held-out shapes of
# novel_object_generalization.yaml.
TRAIN_DRAGGED = ('letter A', 'letter E', 'letter G', 'letter M', 'letter T', 'letter V', 'block',
                 'cross', 'triangle', 'flower', 'heart', 'ring', 'pentagon', 'L-shaped block')
TRAIN_ASYMMETRIC = ('letter A', 'letter E', 'letter G', 'letter M', 'letter T', 'letter V',
                    'heart', 'L-shaped block')
TRAIN_BASES = ('bowl', 'frame', 'container', 'square')
NOVEL_DRAGGED = ('letter R', 'diamond', 'hexagon', 'round', 'star')
NOVEL_ASYMMETRIC = ('letter R',)
NOVEL_BASES = ('pallet', 'pan')
# same_shape's train list swaps 'block' for 'shorter block' (VIMA train.yaml same_shape).
SAME_SHAPE_DRAGGED = tuple('shorter block' if n == 'block' else n for n in TRAIN_DRAGGED)


@dataclass(frozen=True)
class Colour:
    """A named surface colour, RGBA in [0, 1]."""

    name: str
    rgba: tuple[float, float, float, float]


def _rgb(name: str, r: int, g: int, b: int) -> Colour:
    return Colour(name, (r / 255, g / 255, b / 255, 1.0))


COLOURS = {c.name: c for c in (
    _rgb('red', 214, 48, 49), _rgb('green', 46, 160, 67), _rgb('yellow', 240, 200, 30),
    _rgb('orange', 245, 130, 32), _rgb('pink', 250, 140, 190), _rgb('lime', 160, 220, 60),
    _rgb('blue', 40, 90, 220), _rgb('purple', 140, 70, 170), _rgb('cyan', 40, 200, 210),
    _rgb('olive', 128, 128, 40), _rgb('brown', 130, 80, 40), _rgb('white', 245, 245, 245),
)}
COLOUR_SET_1 = ('red', 'green', 'yellow', 'orange', 'pink', 'lime')
COLOUR_SET_2 = ('blue', 'purple', 'cyan', 'olive', 'brown', 'white')


def shape(name: str) -> ShapeKind:
    """Look up a shape by name; SimError names the known ones."""
    if name not in SHAPES:
        raise SimError(f'unknown shape {name!r}; known: {", ".join(sorted(SHAPES))}')
    return SHAPES[name]


def colour(name: str) -> Colour:
    """Look up a colour by name; SimError names the known ones."""
    if name not in COLOURS:
        raise SimError(f'unknown colour {name!r}; known: {", ".join(sorted(COLOURS))}')
    return COLOURS[name]
