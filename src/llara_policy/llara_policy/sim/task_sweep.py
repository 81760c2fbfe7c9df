"""sweep_without_exceeding: push N small blocks into a marked area without crossing a line.

Follows VIMA-Bench (constraint_satisfaction/without_exceeding.py and base.py), scaled to our
workspace: a three-sided rectangle open towards the camera marks the area, a line across it
is the limit; 1-3 small blocks (probabilities .5/.25/.25) lie in a pile in front and as many
distractor blocks of another colour in a second pile; "Sweep {det} {swept_obj} into {bounds}
without exceeding {constraint}." with det one/two/three/all. Success: exactly that many blocks
wholly between the line and the opening; failure: more, a block touching the line, a
distractor in the area, or a block leaving the workspace. The spatula pushes (arms.primitives
.sweep); VIMA checks the line during the motion, we check it after each push (a push cannot
pull a block back across the line).
"""
from dataclasses import dataclass
import math

import numpy as np

from llara_policy.errors import SimError
from llara_policy.sim.episode import WORKSPACE_X_M, WORKSPACE_Y_M, SceneObject
from llara_policy.sim.objects import shape
from llara_policy.sim.task_base import (
    Placement,
    Progress,
    Task,
    TaskContext,
    TaskSetup,
    in_workspace,
)
from llara_policy.sim.world import SimWorld
from llara_policy.types import Effector

_SCALE = 0.6  # VIMA's workspace (0.5 x 1 m) to ours (0.3 x 0.6 m)
# VIMA without_exceeding.py / constraint_satisfaction/base.py, scaled.
DETERMINERS = {'one': 1, 'two': 2, 'three': 3}
COUNT_PROBABILITIES = (0.5, 0.25, 0.25)  # 1, 2, 3 blocks ("easy")
CONSTRAINT_RANGE = (0.25, 0.6)  # where the line lies across the area, fraction of its depth
AREA_X_M = WORKSPACE_X_M[0] + 0.16 * _SCALE
PILES_M = ((WORKSPACE_X_M[0] + 0.32 * _SCALE, WORKSPACE_Y_M[0] + 0.28 * _SCALE),
           (WORKSPACE_X_M[0] + 0.33 * _SCALE, WORKSPACE_Y_M[0] + 0.53 * _SCALE))
PILE_SPREAD_M = 0.18 * _SCALE
DISTRACTOR_SPREAD_M = 0.09 * _SCALE
# Blocks in a pile keep this far apart (VIMA lets them overlap and pop apart).
_BLOCK_SPACING_M = 0.03
# An object whose centre comes this close to the blade's path (its half-width plus a block's
# half-diagonal and a margin) or to the pushed block's path (two half-diagonals and a margin)
# would be pushed along; the blade starts this far behind the block (SweepConfig.back_off_mm).
_BLADE_REACH_M = 0.028 + 0.013 + 0.006
_BLOCK_REACH_M = 0.013 + 0.013 + 0.006
_BACK_OFF_M = 0.016


@dataclass(frozen=True)
class SweepSetup(TaskSetup):
    """A sweep episode: the area and line rectangles (x0, x1, y0, y1) and the block counts."""

    area_m: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
    line_m: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
    swept: tuple[SceneObject, ...] = ()
    target_count: int = 1


def _corners(world: SimWorld, body: int) -> np.ndarray:
    """Return the footprint corners and the centre (5, 2) of a square block."""
    position, yaw = world.object_pose(body)
    half = world.objects[body].footprint_m / 2
    c, s = math.cos(yaw), math.sin(yaw)
    local = np.array([(half, half), (-half, half), (-half, -half), (half, -half), (0.0, 0.0)])
    return position[:2] + local @ np.array([[c, s], [-s, c]])


def _inside(points: np.ndarray, box) -> np.ndarray:
    x0, x1, y0, y1 = box
    return ((points[:, 0] >= x0) & (points[:, 0] <= x1)
            & (points[:, 1] >= y0) & (points[:, 1] <= y1))


class SweepWithoutExceeding(Task):
    """VIMA's 'Sweep {det} {swept_obj} into {bounds} without exceeding {constraint}.'."""

    name = 'sweep_without_exceeding'
    max_steps = 8
    effector = Effector.SPATULA

    def build(self, ctx: TaskContext) -> TaskSetup:
        """Lay out the area, the line and two piles; pick the determiner and the targets."""
        v, rng = ctx.vocab, ctx.rng
        count = int(rng.choice([1, 2, 3], p=COUNT_PROBABILITIES))
        swept_colour = ctx.choice(v.dragged_colours)
        distractor_colour = ctx.choice(v.dragged_colours, exclude=(swept_colour,))
        area_colour = ctx.choice(v.base_colours)
        line_colour = ctx.choice(v.base_colours, exclude=(area_colour,))
        area = ctx.spawn('three-sided rectangle', area_colour, 'base', xy=(AREA_X_M, 0.0),
                         yaw_rad=0.0)
        size = shape('three-sided rectangle').footprint_m
        line_x = AREA_X_M + float(rng.uniform(CONSTRAINT_RANGE[0] - 0.5,
                                              CONSTRAINT_RANGE[1] - 0.5)) * size
        line = ctx.spawn('line', line_colour, 'base', xy=(line_x, 0.0), yaw_rad=0.0)
        line_half_width = shape('line').recipe[1] / 2
        inner = size / 2 - shape('three-sided rectangle').recipe[2]
        area_box = (line_x + line_half_width, AREA_X_M + size / 2, -inner, inner)
        line_box = (line_x - line_half_width, line_x + line_half_width,
                    -shape('line').footprint_m / 2, shape('line').footprint_m / 2)
        piles = [PILES_M[int(i)] for i in rng.permutation(2)]
        swept = self._pile(ctx, swept_colour, count, piles[0], PILE_SPREAD_M, 'dragged')
        distractors = self._pile(ctx, distractor_colour, count, piles[1], DISTRACTOR_SPREAD_M,
                                 'distractor')
        determiners = [d for d, n in DETERMINERS.items() if n <= count] + ['all']
        determiner = determiners[int(rng.integers(len(determiners)))]
        target = DETERMINERS.get(determiner, count)
        goals = self._goals(ctx.world, swept, target, area_box)
        placeholders = {
            'swept_obj': ctx.object_placeholder('swept_obj', swept[0], scale=4.0),
            'bounds': ctx.object_placeholder('bounds', area),
            'constraint': ctx.object_placeholder('constraint', line)}
        template = (f'Sweep {determiner} {{swept_obj}} into {{bounds}} without exceeding '
                    '{constraint}.')
        return SweepSetup(template, placeholders, tuple(ctx.objects), goals,
                          tuple(distractors), area_m=area_box, line_m=line_box,
                          swept=tuple(swept), target_count=target)

    @staticmethod
    def _pile(ctx: TaskContext, colour: str, count: int, corner, spread: float,
              role: str) -> list[SceneObject]:
        blocks, placed = [], []
        margin = shape('small block').radius_m() + 0.005  # keep the pile in the workspace
        while len(blocks) < count:
            xy = (min(corner[0] + float(ctx.rng.random()) * spread, WORKSPACE_X_M[1] - margin),
                  min(corner[1] + float(ctx.rng.random()) * spread, WORKSPACE_Y_M[1] - margin))
            if all(math.dist(xy, other) > _BLOCK_SPACING_M for other in placed):
                placed.append(xy)
                blocks.append(ctx.spawn('small block', colour, role, xy=xy))
        return blocks

    @staticmethod
    def _goals(world: SimWorld, swept, target: int, area_box) -> tuple[Placement, ...]:
        """Return goals: the `target` blocks nearest the area, each to its own slot in it."""
        centre_x = (area_box[0] + area_box[1]) / 2
        chosen = sorted(swept, key=lambda o: world.object_pose(o.body_id)[0][0])[:target]
        chosen = sorted(chosen, key=lambda o: world.object_pose(o.body_id)[0][1])
        slots = np.linspace(-0.035, 0.035, target) if target > 1 else [0.0]
        return tuple(Placement(o.body_id, (centre_x, float(y)))
                     for o, y in zip(chosen, slots, strict=True))

    def score(self, world: SimWorld, setup: SweepSetup, progress: Progress) -> tuple[bool, bool]:
        """Count blocks wholly in the area; any touching the line or a distractor in it fails."""
        inside = 0
        for block in setup.swept:
            points = _corners(world, block.body_id)
            if np.any(_inside(points, setup.line_m)) or not in_workspace(points[-1]):
                progress.failed = True
            inside += bool(np.all(_inside(points, setup.area_m)))
        for distractor in setup.distractors:
            if np.any(_inside(_corners(world, distractor.body_id), setup.area_m)):
                progress.failed = True
        if inside > setup.target_count:
            progress.failed = True
        return inside == setup.target_count and not progress.failed, progress.failed

    def oracle_goal(self, world: SimWorld, setup: SweepSetup, progress: Progress) -> Placement:
        """Return the next push: a target block to a free spot in the area.

        For every (block, spot) pair the blade's path and the block's path are checked against
        the other blocks; the oracle takes the pair with the most room (which also spreads the
        blocks out, leaving clear paths for the next pushes).
        """
        pending = [g.body_id for g in setup.goals
                   if not np.all(_inside(_corners(world, g.body_id), setup.area_m))]
        if not pending:
            raise SimError('every goal is met')
        bodies = [o.body_id for o in setup.swept + setup.distractors]
        xy = {body: world.object_pose(body)[0][:2] for body in bodies}
        best, best_key = None, None
        for body in pending:
            others = [xy[b] for b in bodies if b != body]
            for spot in _spots(setup.area_m):
                push = spot - xy[body]
                if np.linalg.norm(push) < 1e-6:
                    continue
                back = push / np.linalg.norm(push) * _BACK_OFF_M
                room = min([_segment_distance(o, xy[body] - back, spot - back) - _BLADE_REACH_M
                            for o in others]
                           + [_segment_distance(o, xy[body], spot) - _BLOCK_REACH_M
                              for o in others], default=1.0)
                key = -room
                if best_key is None or key < best_key:
                    best, best_key = Placement(body, (float(spot[0]), float(spot[1]))), key
        return best


def _spots(area_m) -> list[np.ndarray]:
    """Candidate end points for a block in the area: rows across it, clear of its edges."""
    x0, x1, y0, y1 = area_m
    margin = _BLOCK_REACH_M / 2 + 0.004
    rows = [(x0 + x1) / 2]
    if x1 - x0 > 4 * margin:
        rows = [x0 + (x1 - x0) / 3, x0 + 2 * (x1 - x0) / 3]
    columns = np.linspace(y0 + margin, y1 - margin, 9)
    return [np.array([x, y]) for x in rows for y in columns]


def _segment_distance(point, start, end) -> float:
    """Distance from a point to the segment start-end (2-D)."""
    direction = np.asarray(end) - np.asarray(start)
    length2 = float(direction @ direction)
    t = 0.0 if length2 == 0 else float(np.clip((point - start) @ direction / length2, 0, 1))
    return float(np.linalg.norm(point - (start + t * direction)))
