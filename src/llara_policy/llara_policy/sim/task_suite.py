"""The VIMA-Bench tasks the sim speaks: names, prompt templates, scenes and goals.

Each class follows its VIMA counterpart (vimalabs/VIMABench vima_bench/tasks/task_suite/...):
same task name, prompt template, oracle_max_steps, object counts and placeholder names; goals
use VIMA's tolerances scaled to our workspace (task_base.POSITION_TOLERANCE_M). Scenes are
sampled from the partition's vocabulary with the episode's own random generator.
"""
import math

from llara_policy.sim.episode import WORKSPACE_X_M, WORKSPACE_Y_M
from llara_policy.sim.objects import shape
from llara_policy.sim.task_base import Placement, Task, TaskContext, TaskSetup

# VIMA's scale (0.5 x 1 m workspace) to ours (0.3 x 0.6 m), for its tolerances.
_SCALE = 0.6


def _distractor_combo(ctx: TaskContext, shapes, colours, used) -> tuple[str, str]:
    """Return a (shape, colour) pair that is not one of `used` (VIMA's distractors)."""
    combos = [(s, c) for s in shapes for c in colours if (s, c) not in used]
    return combos[int(ctx.rng.integers(len(combos)))]


class VisualManipulation(Task):
    """'Put the {dragged_obj_1} into the {base_obj}.' (simple_manipulation.py)."""

    name = 'visual_manipulation'
    max_steps = 3

    def build(self, ctx: TaskContext) -> TaskSetup:
        """One base, one dragged object, one distractor of another shape/colour combination."""
        v = ctx.vocab
        base = ctx.spawn(ctx.choice(v.bases), ctx.choice(v.base_colours), 'base')
        dragged = ctx.spawn(ctx.choice(v.dragged), ctx.choice(v.dragged_colours), 'dragged')
        shape_name, colour_name = _distractor_combo(
            ctx, v.dragged + v.bases, v.dragged_colours + v.base_colours,
            {(base.shape, base.colour), (dragged.shape, dragged.colour)})
        distractor = ctx.spawn(shape_name, colour_name, 'distractor')
        placeholders = {'dragged_obj_1': ctx.object_placeholder('dragged_obj_1', dragged),
                        'base_obj': ctx.object_placeholder('base_obj', base)}
        base_xy = tuple(ctx.world.object_pose(base.body_id)[0][:2])
        return TaskSetup('Put the {dragged_obj_1} into the {base_obj}.', placeholders,
                         tuple(ctx.objects), (Placement(dragged.body_id, base_xy),),
                         (distractor,))


class Rotate(Task):
    """'Rotate the {dragged_obj} N degrees.' clockwise in the front view (rotate.py)."""

    name = 'rotate'
    max_steps = 3
    # VIMA: 1/6 pi .. 5/6 pi in steps of 1/6 pi.
    ANGLES_DEG = (30, 60, 90, 120, 150)

    def build(self, ctx: TaskContext) -> TaskSetup:
        """Spawn an asymmetric object to turn in place, and a distractor of another colour."""
        v = ctx.vocab
        dragged = ctx.spawn(ctx.choice(v.asymmetric), ctx.choice(v.dragged_colours), 'dragged')
        distractor = ctx.spawn(ctx.choice(v.asymmetric),
                               ctx.choice(v.dragged_colours, exclude=(dragged.colour,)),
                               'distractor')
        angle = self.ANGLES_DEG[int(ctx.rng.integers(len(self.ANGLES_DEG)))]
        position, yaw = ctx.world.object_pose(dragged.body_id)
        # Clockwise in the image (seen from above) is a negative turn about +z.
        goal = Placement(dragged.body_id, tuple(position[:2]), yaw_rad=yaw - math.radians(angle),
                         check_yaw=True, symmetry_deg=shape(dragged.shape).symmetry_deg)
        placeholders = {'dragged_obj': ctx.object_placeholder('dragged_obj', dragged)}
        return TaskSetup(f'Rotate the {{dragged_obj}} {angle} degrees.', placeholders,
                         tuple(ctx.objects), (goal,), (distractor,))


class SceneUnderstanding(Task):
    """'Put the {colour} object in {scene} into the {colour} object.' (scene_understanding.py)."""

    name = 'scene_understanding'
    max_steps = 3  # num_dragged_obj + 2

    def build(self, ctx: TaskContext) -> TaskSetup:
        """Show the dragged object and a distractor in the scene; name both ends by colour."""
        v = ctx.vocab
        base = ctx.spawn(ctx.choice(v.bases), ctx.choice(v.base_colours), 'base')
        dragged = ctx.spawn(ctx.choice(v.dragged), ctx.choice(v.dragged_colours), 'dragged')
        # The reference scene: the dragged object and one distractor of another colour.
        other_shape = ctx.choice(v.dragged + v.bases)
        other_colour = ctx.choice(v.dragged_colours + v.base_colours,
                                  exclude=(dragged.colour,))
        scene_taken = []
        items = []
        for shape_name, colour_name in ((dragged.shape, dragged.colour),
                                        (other_shape, other_colour)):
            radius = shape(shape_name).radius_m()
            xy = ctx.free_xy(radius, scene_taken)
            scene_taken.append((xy, radius))
            items.append((shape_name, colour_name, xy, ctx.random_yaw()))
        # Workspace distractor: same colour, other shape; or the base's shape, other colour.
        if ctx.rng.random() < 0.5:
            distractor = ctx.spawn(ctx.choice(v.dragged, exclude=(dragged.shape,)),
                                   dragged.colour, 'distractor')
        else:
            distractor = ctx.spawn(base.shape, ctx.choice(v.base_colours + v.dragged_colours,
                                                          exclude=(base.colour,)), 'distractor')
        placeholders = {'scene': ctx.scene_placeholder('scene', items)}
        base_xy = tuple(ctx.world.object_pose(base.body_id)[0][:2])
        template = f'Put the {dragged.colour} object in {{scene}} into the {base.colour} object.'
        return TaskSetup(template, placeholders, tuple(ctx.objects),
                         (Placement(dragged.body_id, base_xy),), (distractor,))


class Rearrange(Task):
    """'Rearrange to this {scene}.' (rearrangement/rearrange.py)."""

    name = 'rearrange'
    max_steps = 5

    def build(self, ctx: TaskContext) -> TaskSetup:
        """1-3 objects away from their targets; one distractor, half the time on a target."""
        v = ctx.vocab
        count = int(ctx.rng.choice([1, 2, 3], p=[0.4, 0.4, 0.2]))
        kinds = [(ctx.choice(v.dragged), ctx.choice(v.dragged_colours)) for _ in range(count)]
        targets, target_circles = [], []
        for shape_name, _ in kinds:
            radius = shape(shape_name).radius_m()
            xy = ctx.free_xy(radius, target_circles)
            target_circles.append((xy, radius))
            targets.append((xy, radius, ctx.random_yaw()))
        ctx.taken.extend(target_circles)  # objects start away from every target
        dragged = [ctx.spawn(s, c, 'dragged') for s, c in kinds]
        goals = [Placement(obj.body_id, xy) for obj, (xy, _, _) in zip(dragged, targets,
                                                                        strict=True)]
        distractors = ()
        if count == 1:
            shape_name = ctx.choice(v.dragged)
            colour_name = ctx.choice(v.dragged_colours)
            if ctx.rng.random() < 0.5:
                # On the target spot: the oracle first moves it out of the way.
                spot = targets[0][0]
                distractor = ctx.spawn(shape_name, colour_name, 'distractor', xy=spot)
                away = ctx.free_xy(shape(shape_name).radius_m())
                ctx.taken.append((away, shape(shape_name).radius_m()))
                goals.insert(0, Placement(distractor.body_id, away, oracle_only=True))
            else:
                distractor = ctx.spawn(shape_name, colour_name, 'distractor')
            distractors = (distractor,)
        items = [(s, c, xy, yaw) for (s, c), (xy, _, yaw) in zip(kinds, targets, strict=True)]
        placeholders = {'scene': ctx.scene_placeholder('scene', items)}
        return TaskSetup('Rearrange to this {scene}.', placeholders, tuple(ctx.objects),
                         tuple(goals), distractors, check_distractors=False)


class PickInOrderThenRestore(Task):
    """'Put {dragged_obj} into {base_obj_1} then {base_obj_2}. Finally restore it ...'.

    require_memory/pick_in_order_then_restore.py: a 2 x 3 array of same-shape bases.
    """

    name = 'pick_in_order_then_restore'
    max_steps = 4  # num_target_base_obj + 2
    TOLERANCE_M = 0.05 * _SCALE

    def build(self, ctx: TaskContext) -> TaskSetup:
        """Start the object in one base; it visits two others in order, then returns."""
        v = ctx.vocab
        depth = WORKSPACE_X_M[1] - WORKSPACE_X_M[0]
        width = WORKSPACE_Y_M[1] - WORKSPACE_Y_M[0]
        cells = [(WORKSPACE_X_M[0] + depth * fx, WORKSPACE_Y_M[0] + width * (k + 1) / 4)
                 for fx in (0.25, 0.75) for k in range(3)]
        order = ctx.rng.permutation(len(cells))
        base_shape = ctx.choice(v.bases)
        colours = [v.base_colours[int(i)] for i in ctx.rng.permutation(len(v.base_colours))]
        bases = [ctx.spawn(base_shape, colours[k], 'base', xy=cells[int(cell)], yaw_rad=0.0)
                 for k, cell in enumerate(order)]
        start_xy = cells[int(order[0])]
        support = ctx.world.surface_height(start_xy)
        dragged = ctx.spawn(ctx.choice(v.dragged), ctx.choice(v.dragged_colours), 'dragged',
                            xy=start_xy, z_m=support)
        goals = tuple(Placement(dragged.body_id, cells[int(order[k])], self.TOLERANCE_M)
                      for k in (1, 2, 0))
        placeholders = {'dragged_obj': ctx.object_placeholder('dragged_obj', dragged),
                        'base_obj_1': ctx.object_placeholder('base_obj_1', bases[1]),
                        'base_obj_2': ctx.object_placeholder('base_obj_2', bases[2])}
        template = ('Put {dragged_obj} into {base_obj_1} then {base_obj_2}. '
                    'Finally restore it into its original container.')
        return TaskSetup(template, placeholders, tuple(ctx.objects), goals, ordered=True)


class SameShape(Task):
    """'Put all objects with the same profile as {base_obj} into it.' (same_profile.py)."""

    name = 'same_shape'
    max_steps = 4
    # VIMA same_color.py: pos_eps 0.125, or 1.75 x 0.05 for a bowl.
    TOLERANCE_M = 0.125 * _SCALE
    BOWL_TOLERANCE_M = 1.75 * 0.05 * _SCALE

    def build(self, ctx: TaskContext) -> TaskSetup:
        """Two objects share the base's profile (square- or circle-like), one does not."""
        v = ctx.vocab
        base = ctx.spawn(ctx.choice(v.bases), ctx.choice(v.base_colours), 'base')
        profile = shape(base.shape).profile
        same = [s for s in v.same_shape_dragged if shape(s).profile is profile]
        other = [s for s in v.same_shape_dragged if shape(s).profile is not profile]
        dragged = [ctx.spawn(ctx.choice(same), ctx.choice(v.dragged_colours), 'dragged')
                   for _ in range(2)]
        distractor = ctx.spawn(ctx.choice(other), ctx.choice(
            v.dragged_colours, exclude=tuple(d.colour for d in dragged)), 'distractor')
        base_xy = tuple(ctx.world.object_pose(base.body_id)[0][:2])
        tolerance = self.BOWL_TOLERANCE_M if base.shape == 'bowl' else self.TOLERANCE_M
        goals = tuple(Placement(d.body_id, base_xy, tolerance) for d in dragged)
        placeholders = {'base_obj': ctx.object_placeholder('base_obj', base)}
        return TaskSetup('Put all objects with the same profile as {base_obj} into it.',
                         placeholders, tuple(ctx.objects), goals, (distractor,))
