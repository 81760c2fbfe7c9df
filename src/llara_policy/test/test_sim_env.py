"""SimEnv: every task's oracle succeeds, scenes are reproducible and isolated.

Frames hide the arm, and LLaRA's model-frame steps run through the sim camera's calibration.
Every action passes the safety envelope first: outside it, nothing moves and nothing counts.
"""
import math

import numpy as np
import pytest

from llara_policy.arms.primitives import pick_and_place
from llara_policy.errors import CalibrationError, ConfigError, SimError, UnsafeTargetError
from llara_policy.execution import TableAction
from llara_policy.geometry.calibration import load_calibration, save_calibration
from llara_policy.geometry.transforms import BasePoint
from llara_policy.sim.env import PLACE_HEIGHTS, SimEnv, SimEnvConfig
from llara_policy.sim.episode import (
    SEED_RANGES,
    WORKSPACE_X_M,
    WORKSPACE_Y_M,
    Partition,
    PlaceholderKind,
    Split,
)
from llara_policy.sim.objects import (
    COLOUR_SET_1,
    COLOUR_SET_2,
    COLOURS,
    NOVEL_BASES,
    NOVEL_DRAGGED,
    SHAPES,
    Role,
)
from llara_policy.sim.tasks import TASKS
from llara_policy.sim.world import SimWorld, WorldConfig
from llara_policy.text import prompting
from llara_policy.types import ActionStep, ImagePoint
from llara_policy.workspace import Workspace

TEST_SEED = SEED_RANGES[Split.TEST].start


@pytest.fixture(scope='module')
def envs():
    opened = {}

    def get(task, renderer='tiny', partition=Partition.PLACEMENT, split=Split.TRAIN,
            **options):
        key = (task, renderer, partition, split, *sorted(options.items()))
        if key not in opened:
            opened[key] = SimEnv(SimEnvConfig(task=task, renderer=renderer,
                                              partition=partition, split=split, **options))
        return opened[key]

    yield get
    for env in opened.values():
        env.close()


def run_oracle(env):
    while True:
        result = env.step(env.oracle().action)
        if result.done:
            return result


@pytest.mark.parametrize('task', sorted(TASKS))
@pytest.mark.parametrize('seed', [0, 1])
@pytest.mark.parametrize('place_height', PLACE_HEIGHTS)
def test_every_task_oracle_succeeds(envs, task, seed, place_height):
    env = envs(task, place_height=place_height)
    env.reset(seed)
    result = run_oracle(env)
    assert result.success and not result.failure
    assert result.steps <= env.info.max_steps


def test_observation_is_the_model_frame_with_named_segmentation(envs):
    env = envs('visual_manipulation')
    obs = env.reset(3)
    assert obs.rgb.shape == (128, 256, 3) and obs.rgb.dtype == np.uint8
    assert obs.segm.shape == (128, 256) and obs.segm.dtype == np.int32
    ids = set(np.unique(obs.segm)) - {-1}
    assert ids and ids <= set(env.info.object_names)
    assert len(env.info.objects) == 3 and env.info.max_steps == 3 and env.step_limit == 5


def test_frames_never_show_the_arm(envs):
    env = envs('rearrange')
    env.reset(5)
    run_oracle(env)  # after the episode the arm is back home
    _, raw = env.world.render(env.camera)
    assert env.world.robot_id not in raw and env.world.tool_id not in raw


@pytest.mark.parametrize('renderer', ['tiny', 'auto'])
def test_the_arm_out_of_view_leaves_no_trace(envs, renderer):
    env = envs('visual_manipulation', renderer)
    env.reset(6)
    at_home, _ = env.world.render(env.camera)
    # Teleport the arm (no physics step, so nothing else moves) to another pose above the view.
    pose = np.eye(4)
    pose[:3, :3] = np.diag([1.0, -1.0, -1.0])
    pose[:3, 3] = (0.12, 0.15, 0.42)
    env.world.set_arm_joints(env.world.kinematics.solve(pose, env.world.home_joints_rad))
    elsewhere, segm = env.world.render(env.camera)
    env.world.set_arm_joints(env.world.home_joints_rad)
    assert env.world.robot_id not in segm and env.world.tool_id not in segm
    changed = np.any(at_home != elsewhere, axis=2).sum()
    # TinyRenderer: identical. EGL draws shadows from a shadow map fitted to the whole scene,
    # arm included, so a few shadow-edge pixels of the objects may shift (frames are always
    # taken with the arm at home, so observations stay reproducible).
    assert changed == 0 if not env.world.uses_egl else changed < 0.001 * at_home[..., 0].size


@pytest.mark.parametrize('renderer', ['tiny', 'auto'])
def test_same_seed_gives_the_same_scene_and_pixels(envs, renderer):
    env = envs('rearrange', renderer)
    first = env.reset(11)
    poses = {b: env.world.object_pose(b)[0].tolist() for b in env.info.object_names}
    other = env.reset(12)
    again = env.reset(11)
    assert np.array_equal(first.rgb, again.rgb) and np.array_equal(first.segm, again.segm)
    assert poses == {b: env.world.object_pose(b)[0].tolist() for b in env.info.object_names}
    assert not np.array_equal(first.rgb, other.rgb)


def test_interleaved_envs_do_not_interfere():
    def episode(env, seed, frames):
        frames.append(env.reset(seed).rgb)
        frames.append(env.step(env.oracle().action).obs.rgb)

    alone_a, alone_b, mixed_a, mixed_b = [], [], [], []
    with SimEnv(SimEnvConfig('visual_manipulation', renderer='tiny')) as a:
        episode(a, 21, alone_a)
    with SimEnv(SimEnvConfig('rotate', renderer='tiny')) as b:
        episode(b, 22, alone_b)
    with SimEnv(SimEnvConfig('visual_manipulation', renderer='tiny')) as a, \
            SimEnv(SimEnvConfig('rotate', renderer='tiny')) as b:
        mixed_a.append(a.reset(21).rgb)
        mixed_b.append(b.reset(22).rgb)
        mixed_a.append(a.step(a.oracle().action).obs.rgb)
        mixed_b.append(b.step(b.oracle().action).obs.rgb)
    assert all(np.array_equal(x, y) for x, y in zip(alone_a, mixed_a, strict=True))
    assert all(np.array_equal(x, y) for x, y in zip(alone_b, mixed_b, strict=True))


def test_model_frame_steps_run_through_the_calibration_file(envs, tmp_path):
    env = envs('rotate')
    env.reset(4)
    path = tmp_path / 'sim_front.yaml'
    save_calibration(env.calibration, path)
    assert load_calibration(path) == env.calibration
    oracle = env.oracle()
    # The oracle's model-frame step maps back to its robot-frame action (exact projection).
    pick = env.mapper.model_point_to_base(oracle.step.pick)
    assert np.allclose((pick.x_m, pick.y_m), oracle.action.pick_xy_m, atol=1e-9)
    # LLaRA's text rounds points to 3 decimals: the step still succeeds from the parsed text.
    parsed = prompting.parse_answer(prompting.format_answer([oracle.step])).steps[0]
    result = env.step_model(parsed)
    assert result.success


def test_camera_projection_matches_the_rendered_pixels(envs):
    env = envs('visual_manipulation')
    obs = env.reset(7)
    for body in env.info.object_names:
        rows, cols = np.nonzero(obs.segm == body)
        position, _ = env.world.object_pose(body)
        top = env.world.objects[body].height_m / 2
        point = env.mapper.base_to_model_point(
            BasePoint(position[0], position[1], position[2] + top))
        u, v = point.x_norm * 256, point.y_norm * 128
        assert cols.min() - 1 <= u <= cols.max() + 1 and rows.min() - 1 <= v <= rows.max() + 1


def test_prompt_has_reference_images_with_boxes(envs):
    env = envs('pick_in_order_then_restore')
    env.reset(2)
    prompt = env.info.prompt
    assert set(prompt.placeholders) == {'dragged_obj', 'base_obj_1', 'base_obj_2'}
    for placeholder in prompt.placeholders.values():
        assert placeholder.kind is PlaceholderKind.OBJECT
        assert placeholder.reference.rgb.shape == (128, 256, 3)
        assert [o.name for o in placeholder.reference.objects] == list(placeholder.object_names)
    text = prompting.build_task_text(prompt.template, prompt.references())
    assert text.count('<b>(') == 3 and 'Finally restore it' in text
    assert '{' not in prompt.instruction()


def test_scene_placeholder_lists_every_object(envs):
    env = envs('scene_understanding')
    env.reset(3)
    scene = env.info.prompt.placeholders['scene']
    assert scene.kind is PlaceholderKind.SCENE and len(scene.object_names) == 2
    assert len(scene.reference.objects) == 2


def test_partitions_swap_colours_and_hold_out_shapes(envs):
    l2 = envs('visual_manipulation', partition=Partition.COMBINATORIAL, split=Split.TEST)
    l2.reset(TEST_SEED)
    roles = {o.role: o for o in l2.info.objects}
    assert roles['dragged'].colour in COLOUR_SET_2 and roles['base'].colour in COLOUR_SET_1
    l3 = envs('visual_manipulation', partition=Partition.NOVEL_OBJECT, split=Split.TEST)
    l3.reset(TEST_SEED)
    roles = {o.role: o for o in l3.info.objects}
    assert roles['dragged'].shape in NOVEL_DRAGGED and roles['base'].shape in NOVEL_BASES


def test_train_and_test_seeds_are_disjoint(envs):
    assert not set(SEED_RANGES[Split.TRAIN]) & set(SEED_RANGES[Split.TEST])
    with pytest.raises(ConfigError):
        envs('rotate').reset(TEST_SEED)
    with pytest.raises(ConfigError):
        SimEnv(SimEnvConfig('rotate', partition=Partition.NOVEL_OBJECT, renderer='tiny')).reset(0)


def test_a_pick_on_empty_table_is_a_wasted_step_not_a_crash(envs):
    env = envs('visual_manipulation')
    env.reset(8)
    empty = (WORKSPACE_X_M[1] - 0.01, WORKSPACE_Y_M[0] + 0.01)
    assert env.world.top_body(empty) < 0
    result = env.step(TableAction(empty, empty, 0.0))
    assert not result.picked and not result.done and result.steps == 1
    assert run_oracle(env).success  # the arm recovered and the oracle still solves it


def test_stepping_a_finished_episode_is_an_error(envs):
    env = envs('rotate')
    env.reset(9)
    run_oracle(env)
    with pytest.raises(SimError):
        env.step(TableAction((0.3, 0.0), (0.3, 0.0), 0.0))
    with pytest.raises(SimError):
        env.oracle()


def test_oracle_rotation_follows_llara_convention(envs):
    env = envs('rotate')
    env.reset(10)
    oracle = env.oracle()
    angle = int(env.info.prompt.template.split('}')[1].split()[0])
    # 'Rotate ... N degrees' is clockwise on screen: yaw change -N, LLaRA text r = N.
    assert oracle.action.yaw_change_deg == pytest.approx(-angle, abs=0.01)
    assert oracle.step.rotation_cw_deg == angle
    assert isinstance(oracle.step.pick, ImagePoint)
    assert oracle.step.object_text == oracle.object_name


def test_an_executor_driving_the_arm_itself_gets_scored(envs):
    # The ROS executor's path: model point -> calibration -> pick_and_place on the Arm.
    env = envs('visual_manipulation')
    env.reset(13)
    step = env.oracle().step
    pick = env.mapper.model_point_to_base(step.pick)
    place = env.mapper.model_point_to_base(step.place)
    yaw_deg = -step.rotation_cw_deg  # LLaRA: yaw change = -r
    pick_and_place(env.arm, env.config.workspace,
                   (pick.x_m * 1000, pick.y_m * 1000, pick.z_m * 1000),
                   (place.x_m * 1000, place.y_m * 1000, place.z_m * 1000), yaw_deg,
                   env.config.pick_place)
    result = env.finish_step()
    assert result.success and result.done and result.steps == 1


def _inside(workspace: Workspace, x_m: float, y_m: float) -> bool:
    """The workspace's rule, written out from its numbers (independent of workspace.py)."""
    return (workspace.x_min_m <= x_m <= workspace.x_max_m
            and workspace.y_min_m <= y_m <= workspace.y_max_m
            and workspace.reach_min_m <= math.hypot(x_m, y_m) <= workspace.reach_max_m)


def _moves(env, since: int) -> int:
    return sum(call.method == 'set_position' for call in env.arm.calls[since:])


def test_model_frame_grid_outside_the_workspace_is_rejected_inside_is_executed():
    # Long episodes (bonus steps) so one scene serves the whole grid; short settling.
    config = SimEnvConfig('visual_manipulation', renderer='tiny', bonus_steps=200,
                          settle_steps=48)
    with SimEnv(config) as env:
        workspace = env.config.workspace
        seed = 17
        env.reset(seed)
        place = env.model_point((0.3, 0.0))
        counts = {'inside': 0, 'outside': 0}
        for y_norm in np.linspace(0.0, 1.0, 9):
            for x_norm in np.linspace(0.0, 1.0, 9):
                pick = ImagePoint(float(x_norm), float(y_norm))
                base = env.mapper.model_point_to_base(pick)
                calls_before = len(env.arm.calls)
                step = ActionStep(pick, place, 0)
                if not _inside(workspace, base.x_m, base.y_m):
                    counts['outside'] += 1
                    with pytest.raises(UnsafeTargetError) as raised:
                        env.step_model(step)
                    assert raised.value.limit in ('x', 'y', 'reach')
                    assert env.arm.calls[calls_before:] == [], (x_norm, y_norm)
                    continue
                counts['inside'] += 1
                result = env.step_model(step)
                assert _moves(env, calls_before) >= 4, (x_norm, y_norm)
                if result.done:
                    seed += 1
                    env.reset(seed)
    # The sim camera sees beyond the workspace on every side (issue 8: x 0.089-0.532 m).
    assert counts['inside'] >= 20 and counts['outside'] >= 20


def test_a_rejected_action_is_not_a_step_and_changes_nothing(envs):
    env = envs('visual_manipulation')
    env.reset(14)
    poses = {b: env.world.object_pose(b)[0].tolist() for b in env.info.object_names}
    calls_before = len(env.arm.calls)
    oracle = env.oracle().action
    with pytest.raises(UnsafeTargetError) as raised:
        env.step(TableAction(oracle.pick_xy_m, (0.7, 0.0), oracle.yaw_change_deg))
    assert raised.value.limit == 'x' and raised.value.value == pytest.approx(0.7)
    assert env.arm.calls[calls_before:] == []
    assert poses == {b: env.world.object_pose(b)[0].tolist() for b in env.info.object_names}
    result = env.step(oracle)  # the episode goes on; the first accepted step is step 1
    assert result.steps == 1 and result.success


def test_a_yaw_change_over_the_workspace_limit_is_rejected(envs):
    env = envs('rotate', workspace=Workspace(max_yaw_change_deg=20.0))
    env.reset(10)
    oracle = env.oracle().action
    assert abs(oracle.yaw_change_deg) > 20.0
    calls_before = len(env.arm.calls)
    with pytest.raises(UnsafeTargetError) as raised:
        env.step(oracle)
    assert raised.value.limit == 'yaw change' and env.arm.calls[calls_before:] == []


@pytest.mark.parametrize('workspace,problem', [
    (Workspace(x_min_m=0.2, x_max_m=0.7), 'outside the image'),  # beyond the far edge
    (Workspace(table_z_m=0.05), 'table_z_m'),  # disagrees with the calibration's table
])
def test_a_workspace_the_camera_cannot_cover_is_refused_at_start_up(workspace, problem):
    with pytest.raises(CalibrationError, match=problem):
        SimEnv(SimEnvConfig(task='rotate', renderer='tiny', workspace=workspace))


def test_the_start_up_report_of_the_default_workspace():
    env = SimEnv(SimEnvConfig(task='rotate', renderer='tiny'))
    try:
        assert env.workspace_fit.ok
        assert 0.5 < env.workspace_fit.fraction_inside < 0.7  # issue 8: frame x 0.089-0.532 m
    finally:
        env.close()


@pytest.mark.parametrize('field,value', [
    ('split', 'test'), ('partition', 'placement_generalization'), ('workspace', None),
    ('place_height', 'probe'), ('renderer', 'opengl'), ('settle_steps', 4.5),
    ('bonus_steps', True), ('pick_place', {})])
def test_wrong_typed_config_fields_fail_at_construction_naming_the_field(field, value):
    with pytest.raises(ConfigError, match=f'SimEnvConfig.{field}'):
        SimEnvConfig(**{field: value})


def test_table_place_height_ignores_what_lies_under_the_place(envs):
    table = envs('visual_manipulation')
    truth = envs('visual_manipulation', place_height='ground_truth')
    for seed in range(15, 60):  # the first scene whose base has a floor (bowl, container)
        for env in (table, truth):
            env.reset(seed)
        base = next(o for o in table.info.objects if o.role == 'base')
        if base.shape in ('bowl', 'container'):
            break
    dragged = next(o for o in table.info.objects if o.role == 'dragged')
    base_xy = tuple(table.world.object_pose(base.body_id)[0][:2])
    dragged_xy = tuple(table.world.object_pose(dragged.body_id)[0][:2])
    allowance = table.table_support_m
    # Table path: the same assumed support over the base and over the bare table.
    assert table.place_support_m(dragged_xy, base_xy) == pytest.approx(allowance)
    assert table.place_support_m(dragged_xy, (0.45, -0.25)) == pytest.approx(allowance)
    # Ground truth: the surface actually there (the base's 4 mm floor, as the ray meets its
    # collision mesh, vs the bare table).
    assert truth.place_support_m(dragged_xy, (0.45, -0.25)) == 0.0
    assert 0.003 < truth.place_support_m(dragged_xy, base_xy) < allowance


@pytest.mark.parametrize('partition,expected_m', [
    # Bowl, container (L1/L2) and pan (L3) floors: 4 mm, met by a ray at 5 mm (the collision
    # margin); the L3 pallet's top: 12 mm, met at 13 mm. Plus the 1 mm margin.
    (Partition.PLACEMENT, 0.006), (Partition.COMBINATORIAL, 0.006),
    (Partition.NOVEL_OBJECT, 0.014)])
def test_the_table_path_support_is_the_object_sets_tallest(partition, expected_m):
    split = Split.TRAIN if partition is Partition.PLACEMENT else Split.TEST
    with SimEnv(SimEnvConfig(partition=partition, split=split, renderer='tiny')) as env:
        assert env.table_support_m == pytest.approx(expected_m, abs=2e-4)
        # ... and it covers every base of the set, each measured in its own world here.
        with SimWorld(WorldConfig('tiny', with_robot=False)) as world:
            for name, kind in SHAPES.items():
                if kind.role is not Role.BASE or (
                        partition is not Partition.NOVEL_OBJECT and name in NOVEL_BASES):
                    continue
                world.reset()
                world.add_object(kind, COLOURS['red'], (0.3, 0.1, 0.0), 0.7)
                for dx, dy in ((0, 0), (0.01, 0.0), (0.0, -0.01)):
                    assert world.surface_height((0.3 + dx, 0.1 + dy)) < env.table_support_m, name
