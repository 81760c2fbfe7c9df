"""What every task shares: the partition's vocabulary, scene building, goals, oracle, scoring.

A task (ravens' habit, typed) builds a scene and declares its goals as `Placement`s; the one
oracle and the one success check below both read those goals, so how to solve and how to score
cannot drift apart. Scoring follows VIMA-Bench (`vima_bench/tasks/task_suite/base.py`): a goal
is met when the object is within the task's position tolerance (and yaw tolerance, modulo its
symmetry, where the task asks for a rotation); an episode fails when a goal object leaves the
workspace or a distractor is taken for a goal object or target.
"""
from dataclasses import dataclass, replace
import math

import numpy as np

from llara_policy.errors import SimError
from llara_policy.sim.camera import SimCamera
from llara_policy.sim.episode import (
    WORKSPACE_X_M,
    WORKSPACE_Y_M,
    Partition,
    Placeholder,
    PlaceholderKind,
    ReferenceImage,
    SceneObject,
    object_boxes,
)
from llara_policy.sim.objects import (
    COLOUR_SET_1,
    COLOUR_SET_2,
    NOVEL_ASYMMETRIC,
    NOVEL_BASES,
    NOVEL_DRAGGED,
    SAME_SHAPE_DRAGGED,
    TRAIN_ASYMMETRIC,
    TRAIN_BASES,
    TRAIN_DRAGGED,
    Role,
    colour,
    shape,
)
from llara_policy.sim.world import SimWorld
from llara_policy.types import Effector

# VIMA's tolerances scaled by our workspace (0.6 of VIMA's): position 0.1 m -> 0.06 m for most
# tasks (VIMA pos_eps), 15 degrees of yaw (VIMA rot_eps).
POSITION_TOLERANCE_M = 0.06
YAW_TOLERANCE_DEG = 15.0
# Free-space sampling: gap between object footprints, and attempts before giving up.
OBJECT_GAP_M = 0.012
_SAMPLING_ATTEMPTS = 200
# Where reference images show a single object (the workspace centre), as VIMA's placeholders
# render an object alone at the centre of its workspace.
REFERENCE_XY_M = (0.35, 0.0)


@dataclass(frozen=True)
class Vocabulary:
    """Shapes and colours a partition draws from (VIMA's partition files)."""

    dragged: tuple[str, ...]
    asymmetric: tuple[str, ...]
    same_shape_dragged: tuple[str, ...]
    bases: tuple[str, ...]
    dragged_colours: tuple[str, ...]
    base_colours: tuple[str, ...]


def vocabulary(partition: Partition) -> Vocabulary:
    """L1 trains' objects; L2 swaps the colour sets; L3 uses the held-out shapes."""
    if partition is Partition.COMBINATORIAL:
        return Vocabulary(TRAIN_DRAGGED, TRAIN_ASYMMETRIC, SAME_SHAPE_DRAGGED, TRAIN_BASES,
                          COLOUR_SET_2, COLOUR_SET_1)
    if partition is Partition.NOVEL_OBJECT:
        return Vocabulary(NOVEL_DRAGGED, NOVEL_ASYMMETRIC, SAME_SHAPE_DRAGGED + NOVEL_DRAGGED,
                          NOVEL_BASES, COLOUR_SET_1, COLOUR_SET_2)
    return Vocabulary(TRAIN_DRAGGED, TRAIN_ASYMMETRIC, SAME_SHAPE_DRAGGED, TRAIN_BASES,
                      COLOUR_SET_1, COLOUR_SET_2)


@dataclass(frozen=True)
class Placement:
    """A goal: `body_id` within `tolerance_m` of `xy_m` (and of `yaw_rad` if `check_yaw`).

    `oracle_only` goals are steps the oracle takes that an agent may skip (VIMA rearrange
    moving a distractor off a target spot); they do not count for success.
    """

    body_id: int
    xy_m: tuple[float, float]
    tolerance_m: float = POSITION_TOLERANCE_M
    yaw_rad: float = 0.0
    check_yaw: bool = False
    symmetry_deg: float = 360.0
    oracle_only: bool = False

    def reached(self, world: SimWorld) -> bool:
        """Whether the object is at the goal now."""
        position, yaw = world.object_pose(self.body_id)
        if math.dist(position[:2], self.xy_m) >= self.tolerance_m:
            return False
        return not self.check_yaw or yaw_error_deg(yaw, self.yaw_rad,
                                                   self.symmetry_deg) < YAW_TOLERANCE_DEG


def yaw_error_deg(yaw_rad: float, target_rad: float, symmetry_deg: float) -> float:
    """Smallest turn between two yaws modulo the shape's symmetry (0: every turn matches)."""
    if symmetry_deg <= 0:
        return 0.0
    error = math.degrees(abs(yaw_rad - target_rad)) % symmetry_deg
    return min(error, symmetry_deg - error)


def in_workspace(xy) -> bool:
    """Whether a point lies in the workspace rectangle."""
    return (WORKSPACE_X_M[0] <= xy[0] <= WORKSPACE_X_M[1]
            and WORKSPACE_Y_M[0] <= xy[1] <= WORKSPACE_Y_M[1])


@dataclass(frozen=True)
class TaskSetup:
    """A built episode: prompt, objects, goals (in order if `ordered`), distractor ids."""

    template: str
    placeholders: dict[str, Placeholder]
    objects: tuple[SceneObject, ...]
    goals: tuple[Placement, ...]
    distractors: tuple[SceneObject, ...] = ()
    ordered: bool = False
    check_distractors: bool = True


class TaskContext:
    """Scene building for one reset.

    Holds the rng and the vocabulary; samples free space, spawns objects and renders reference
    images (in a separate world, so the scene never shows in them).
    """

    def __init__(self, world: SimWorld, reference_world: SimWorld, camera: SimCamera,
                 rng: np.random.Generator, vocab: Vocabulary):
        self.world = world
        self.reference_world = reference_world
        self.camera = camera
        self.rng = rng
        self.vocab = vocab
        self.taken: list[tuple[tuple[float, float], float]] = []
        self.objects: list[SceneObject] = []

    def choice(self, options, exclude=()) -> str:
        """Pick one of `options` not in `exclude`."""
        pool = [o for o in options if o not in exclude]
        if not pool:
            raise SimError(f'nothing left to sample from {options} without {exclude}')
        return pool[int(self.rng.integers(len(pool)))]

    def free_xy(self, radius_m: float, taken=None) -> tuple[float, float]:
        """Return a random point where a disc of `radius_m` fits without overlaps."""
        circles = self.taken if taken is None else taken
        for _ in range(_SAMPLING_ATTEMPTS):
            xy = (float(self.rng.uniform(WORKSPACE_X_M[0] + radius_m,
                                         WORKSPACE_X_M[1] - radius_m)),
                  float(self.rng.uniform(WORKSPACE_Y_M[0] + radius_m,
                                         WORKSPACE_Y_M[1] - radius_m)))
            if all(math.dist(xy, c) > radius_m + r + OBJECT_GAP_M for c, r in circles):
                return xy
        raise SimError(f'no free space for an object of radius {radius_m:.3f} m')

    def random_yaw(self) -> float:
        """Return a uniform yaw in [0, 2 pi)."""
        return float(self.rng.uniform(0.0, 2.0 * math.pi))

    def spawn(self, shape_name: str, colour_name: str, role: str, xy=None,
              yaw_rad=None, z_m: float = 0.0) -> SceneObject:
        """Add an object (at a free random spot and yaw unless given) and record its space.

        `z_m` is the height of the surface it stands on (0: the table).
        """
        kind = shape(shape_name)
        xy = self.free_xy(kind.radius_m()) if xy is None else xy
        yaw = self.random_yaw() if yaw_rad is None else yaw_rad
        body = self.world.add_object(kind, colour(colour_name), (xy[0], xy[1], z_m), yaw)
        self.taken.append((xy, kind.radius_m()))
        obj = SceneObject(body, shape_name, colour_name, role)
        self.objects.append(obj)
        return obj

    def reference(self, items) -> ReferenceImage:
        """Render `items` [(shape, colour, xy, yaw)] alone on the table in the front view."""
        return self._render([(shape(s), c, xy, yaw) for s, c, xy, yaw in items])

    def _render(self, items) -> ReferenceImage:
        world = self.reference_world
        world.reset()
        names = {}
        for kind, colour_name, xy, yaw in items:
            body = world.add_object(kind, colour(colour_name), (*xy, 0.0), yaw)
            names[body] = f'{colour_name} {kind.name}'
        rgb, segm = world.render(self.camera)
        return ReferenceImage(rgb, segm, names, object_boxes(segm, names))

    def object_placeholder(self, key: str, obj: SceneObject, scale: float = 1.0) -> Placeholder:
        """Return a placeholder showing one object alone, upright at the workspace centre.

        `scale` enlarges tiny objects in the picture (VIMA draws its small blocks 7x).
        """
        kind = shape(obj.shape)
        if scale != 1.0:
            kind = replace(kind, footprint_m=kind.footprint_m * scale,
                           height_m=kind.height_m * scale)
        reference = self._render([(kind, obj.colour, REFERENCE_XY_M, 0.0)])
        return Placeholder(key, PlaceholderKind.OBJECT, (obj.name,), reference)

    def scene_placeholder(self, key: str, items) -> Placeholder:
        """Return a placeholder showing a whole scene [(shape, colour, xy, yaw)]."""
        reference = self.reference(items)
        names = tuple(f'{colour_name} {shape_name}' for shape_name, colour_name, _, _ in items)
        return Placeholder(key, PlaceholderKind.SCENE, names, reference)


@dataclass
class Progress:
    """Mutable scoring state of an episode (ordered goals advance one by one)."""

    next_goal: int = 0
    failed: bool = False
    steps: int = 0


class Task:
    """Base class: subclasses set `name`, `max_steps` (VIMA oracle_max_steps) and `build`."""

    name = ''
    max_steps = 3
    effector = Effector.SUCTION

    def build(self, ctx: TaskContext) -> TaskSetup:
        """Sample and spawn a scene; return its prompt and goals."""
        raise NotImplementedError

    def score(self, world: SimWorld, setup: TaskSetup, progress: Progress) -> tuple[bool, bool]:
        """Update `progress` after a step and return (success, failure)."""
        goals = [g for g in setup.goals if not g.oracle_only]
        for goal in goals:
            xy = world.object_pose(goal.body_id)[0][:2]
            if not in_workspace(xy):
                progress.failed = True
        if setup.ordered:
            self._advance(world, goals, progress)
            success = progress.next_goal >= len(goals)
        else:
            success = all(goal.reached(world) for goal in goals)
        if setup.check_distractors and self._distractor_confused(world, setup, goals):
            progress.failed = True
        return success and not progress.failed, progress.failed

    @staticmethod
    def _advance(world: SimWorld, goals: list[Placement], progress: Progress) -> None:
        """Ordered goals: the next one met advances; reaching a later intermediate one fails."""
        while progress.next_goal < len(goals) and goals[progress.next_goal].reached(world):
            progress.next_goal += 1
        for index in range(progress.next_goal + 1, len(goals) - 1):
            if goals[index].reached(world):
                progress.failed = True

    @staticmethod
    def _distractor_confused(world: SimWorld, setup: TaskSetup, goals) -> bool:
        """Return VIMA's check_distractors verdict.

        True when a distractor sits at a goal target, or a goal object sits on a distractor
        that is a container (next to a small distractor is no confusion: our objects may start
        closer together than VIMA's tolerance).
        """
        for distractor in setup.distractors:
            d_xy = world.object_pose(distractor.body_id)[0][:2]
            is_base = world.objects[distractor.body_id].role is Role.BASE
            for goal in goals:
                if math.dist(d_xy, goal.xy_m) < goal.tolerance_m:
                    return True
                g_xy = world.object_pose(goal.body_id)[0][:2]
                if is_base and math.dist(g_xy, d_xy) < goal.tolerance_m:
                    return True
        return False

    def oracle_goal(self, world: SimWorld, setup: TaskSetup, progress: Progress) -> Placement:
        """Return the goal the oracle works on next: oracle-only moves, then unmet goals.

        Ordered tasks take their next goal; others the unmet goal whose object is farthest
        from its target (VIMA's oracle order). Raises SimError when nothing is left to do.
        """
        if setup.ordered:
            goals = [g for g in setup.goals if not g.oracle_only]
            if progress.next_goal < len(goals):
                return goals[progress.next_goal]
            raise SimError('every goal is met')
        pending = [g for g in setup.goals if g.oracle_only and not g.reached(world)]
        if pending:
            return pending[0]
        unmet = [g for g in setup.goals if not g.oracle_only and not g.reached(world)]
        if not unmet:
            raise SimError('every goal is met')
        return max(unmet, key=lambda g: math.dist(world.object_pose(g.body_id)[0][:2], g.xy_m))
