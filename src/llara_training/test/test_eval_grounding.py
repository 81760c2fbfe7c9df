"""Closed-loop grounding: what a model step's pick and place land on, recorded and reported.

Expected objects are found independently of the code under test: a pixel deep inside an
object's mask in the env's own segmentation (turned into a model point by the preprocess's
camera -> model map), or an object's known position projected through the sim camera's
calibration (`SimEnv.model_point`); the expected relation follows from the role the task gave
the object. Report and curve tests count hand-built entries.
"""
import csv
from dataclasses import replace
import json
import re
from types import SimpleNamespace

import cv2
import numpy as np
from PIL import Image
import pytest

from llara_policy.sim.env import SimEnv, SimEnvConfig
from llara_policy.sim.episode import Partition, Split
from llara_policy.text import prompting
from llara_policy.types import ActionStep, Effector, ImagePoint
from llara_training.eval_agents import Reply, decode_llara
from llara_training.eval_config import EvalConfig, PromptMode
from llara_training.eval_episode import run_episode
from llara_training.eval_grounding import (
    GroundingScene,
    episode_fields,
    grounding_scene,
    step_fields,
)
from llara_training.eval_report import aggregate, markdown
from llara_training.recipe_report import curve_rows, write_curve
from llara_training.recipe_runs import eval_rows

TEST_SEED = 1_000_000  # first test seed: a container base, a letter V, a square distractor
HOLLOW_SEED = 1_000_001  # its base is a frame: the table shows inside it
TASK = 'visual_manipulation'


@pytest.fixture(scope='module')
def env():
    with SimEnv(SimEnvConfig(task=TASK, split=Split.TEST, renderer='tiny')) as sim:
        yield sim


def by_role(env, role: str):
    (obj,) = [o for o in env.info.objects if o.role == role]
    return obj


def deep_pixel(mask: np.ndarray) -> tuple[int, int]:
    """(column, row) of the mask pixel farthest from the mask's edge."""
    distance = cv2.distanceTransform(np.pad(mask, 1).astype(np.uint8), cv2.DIST_L2, 3)[1:-1,
                                                                                       1:-1]
    row, column = np.unravel_index(np.argmax(distance), distance.shape)
    assert distance[row, column] >= 2, 'no pixel 2 px inside the mask'
    return int(column), int(row)


def point_of(env, mask: np.ndarray) -> ImagePoint:
    return env.mapper.preprocess.camera_pixel_to_model_point(deep_pixel(mask))


def step(pick: ImagePoint, place: ImagePoint, number: int = 1) -> ActionStep:
    return ActionStep(pick, place, 0, 'object', Effector.SUCTION, number)


def test_picks_and_places_on_pixels_of_the_target_distractor_base_and_table(env):
    obs = env.reset(TEST_SEED)
    dragged, base, distractor = (by_role(env, r) for r in ('dragged', 'base', 'distractor'))
    scene = grounding_scene(env, obs.segm)
    point = {o.role: point_of(env, obs.segm == o.body_id) for o in env.info.objects}
    table = point_of(env, obs.segm == -1)
    fields = step_fields(scene, step(point['dragged'], point['base']))
    assert fields == {'pick_object': dragged.name, 'pick_relation': 'target',
                      'place_object': base.name, 'place_relation': 'target'}
    fields = step_fields(scene, step(point['distractor'], table))
    assert fields == {'pick_object': distractor.name, 'pick_relation': 'other',
                      'place_object': '', 'place_relation': 'none'}
    fields = step_fields(scene, step(table, point['distractor']))
    assert (fields['pick_relation'], fields['place_object'], fields['place_relation']) == (
        'none', distractor.name, 'other')
    fields = step_fields(scene, step(point['base'], point['dragged']))  # the base, picked
    assert (fields['pick_object'], fields['pick_relation'], fields['place_relation']) == (
        base.name, 'other', 'other')
    assert episode_fields(env.info) == {'pick_targets': [dragged.name],
                                        'place_targets': [base.name], 'roles': 'task'}


def test_object_positions_projected_through_the_calibration_land_on_them(env):
    env.reset(TEST_SEED)
    scene = grounding_scene(env, env.observe().segm)
    dragged, base = by_role(env, 'dragged'), by_role(env, 'base')
    # The oracle's grasp point on the dragged object (a letter V's origin lies in its notch)
    # and the base's position, both on the table and projected through the calibration.
    grasp = env.model_point(env.oracle().action.pick_xy_m)
    base_centre = env.model_point(env.world.object_pose(base.body_id)[0][:2])
    fields = step_fields(scene, step(grasp, base_centre))
    assert (fields['pick_object'], fields['pick_relation']) == (dragged.name, 'target')
    assert (fields['place_object'], fields['place_relation']) == (base.name, 'target')


def test_a_place_inside_a_hollow_base_is_on_it_a_pick_there_is_not(env):
    obs = env.reset(HOLLOW_SEED)
    base = by_role(env, 'base')
    assert base.shape == 'frame'
    centre = env.model_point(env.world.object_pose(base.body_id)[0][:2])
    column, row = np.floor(env.mapper.preprocess.model_point_to_camera_pixel(centre) + 0.5)
    assert obs.segm[int(row), int(column)] == -1  # the table shows at the frame's centre
    fields = step_fields(grounding_scene(env, obs.segm), step(centre, centre))
    assert (fields['pick_relation'], fields['place_object'], fields['place_relation']) == (
        'none', base.name, 'target')


def test_objects_without_task_roles_or_frames_without_segmentation_are_unknown(env):
    obs = env.reset(TEST_SEED)
    dragged = by_role(env, 'dragged')
    objects = tuple(replace(o, role='object') for o in env.info.objects)  # VIMA-Bench's roles
    scene = GroundingScene(obs.segm, env.mapper.preprocess, objects)
    target, table = point_of(env, obs.segm == dragged.body_id), point_of(env, obs.segm == -1)
    fields = step_fields(scene, step(target, table))
    assert fields == {'pick_object': dragged.name, 'pick_relation': 'unknown',
                      'place_object': '', 'place_relation': 'none'}
    assert episode_fields(replace(env.info, objects=objects))['roles'].startswith('unknown')
    blind = GroundingScene(np.zeros((4, 4), np.int32), env.mapper.preprocess, env.info.objects)
    assert set(step_fields(blind, step(target, table)).values()) == {'', 'unknown'}


class ScriptedAgent:
    """Answers from the env's current segmentation, one plan per query (prompt mode hs).

    1: the distractor onto an empty table spot; 2: a point off the workspace (rejected);
    3: no step (LLaRA's random fallback); 4: the target into the base.
    """

    name = 'scripted'

    def __init__(self):
        self.env, self.queries = None, 0

    def start_episode(self, env) -> None:
        self.env, self.queries = env, 0

    def act(self, observation, user_turn, executed, first_step) -> Reply:
        self.queries += 1
        segm = self.env.observe().segm
        point = {o.role: point_of(self.env, segm == o.body_id) for o in self.env.info.objects}
        plans = {1: (point['distractor'], self.env.model_point(free_table_xy(self.env))),
                 2: (ImagePoint(0.0, 0.0), ImagePoint(0.0, 0.0)),
                 4: (point['dragged'], point['base'])}
        if self.queries not in plans:
            return Reply('I cannot tell.', (), 'ParseError: no step')
        text = prompting.format_answer([step(*plans[self.queries], number=first_step)])
        return decode_llara(text)

    def describe(self, placeholder, question):
        raise AssertionError('prompt mode hs asks no description')

    def token_text(self, token_ids):
        raise AssertionError('LLaRA text has no action tokens')


def free_table_xy(env) -> tuple[float, float]:
    """The workspace grid point farthest from every object (at least 0.1 m away)."""
    box = env.config.workspace
    centres = [env.world.object_pose(o.body_id)[0][:2] for o in env.info.objects]
    grid = [(x, y) for x in np.linspace(box.x_min_m + 0.03, box.x_max_m - 0.03, 7)
            for y in np.linspace(box.y_min_m + 0.03, box.y_max_m - 0.03, 13)]
    best = max(grid, key=lambda xy: min(np.hypot(*(np.array(xy) - c)) for c in centres))
    assert min(np.hypot(*(np.array(best) - c)) for c in centres) > 0.1
    return float(best[0]), float(best[1])


def test_the_evaluator_records_each_steps_grounding(env, tmp_path):
    config = EvalConfig(policy='oracle', out=str(tmp_path), tasks=(TASK,), episodes=1,
                        seed=TEST_SEED, renderer='tiny', prompt_mode=PromptMode('hs'),
                        max_steps=4)
    entry = run_episode(config, env, ScriptedAgent(), Partition.PLACEMENT, TASK, TEST_SEED)
    seen = [(a['source'], a['executed'], a['pick_relation'], a['place_relation'])
            for a in entry['actions']]
    assert seen == [('model', True, 'other', 'none'), ('model', False, 'none', 'none'),
                    ('random', True, 'random', 'random'), ('model', True, 'target', 'target')]
    assert entry['actions'][1]['rejected']
    assert entry['actions'][3]['pick_object'] == by_role(env, 'dragged').name
    assert entry['grounding']['place_targets'] == [by_role(env, 'base').name]
    assert entry['success']


def action(source='model', pick='', place='', executed=True, rejected='') -> dict:
    record = {'source': source, 'executed': executed, 'rejected': rejected}
    if pick:
        record.update(pick_object='x', pick_relation=pick, place_object='y',
                      place_relation=place)
    return record


def entry(level, task, seed, actions, place_targets=('base',), old=False,
          roles='task') -> dict:
    values = {'tid': f'{level}/{task}/{seed}', 'level': level, 'task': task, 'seed': seed,
              'success': False, 'lm_answer_hist': ['a'], 'actions': actions}
    if not old:
        values['grounding'] = {'pick_targets': ['t'], 'place_targets': list(place_targets),
                               'roles': roles}
    return values


L1 = Partition.PLACEMENT.value
L2 = Partition.COMBINATORIAL.value
ENTRIES = [
    entry(L1, TASK, 1, [action(pick='target', place='target'), action(pick='other', place='none'),
                        action(pick='none', place='none', executed=False, rejected='Unsafe'),
                        action('random', 'random', 'random')]),
    entry(L1, TASK, 2, [action(pick='target', place='other'),
                        action(pick='none', place='target')]),
    entry(L1, TASK, 3, [action(), action('random')], old=True),  # written before grounding
    entry(L1, TASK, 4, [action(pick='none', place='none', executed=False, rejected='Unsafe'),
                        action('random'), action(pick='none', place='target')]),
    entry(L1, 'rotate', 1, [action(pick='target', place='other')], place_targets=()),
    entry(L2, TASK, 1, [action(pick='unknown', place='none')], place_targets=(),
          roles='unknown: the env gives no task roles'),  # as VIMA-Bench's
    entry(L2, 'rotate', 1, [action()], old=True),
]


def grounding_row(table: str, level: str, task: str) -> list[str]:
    lines = table.split('## Grounding')[1].splitlines()
    (line,) = [x for x in lines if x.startswith(f'| {level} | {task} |')]
    return [cell.strip() for cell in line.strip('|').split('|')][2:]


def test_the_report_counts_executed_model_steps_and_reads_old_entries():
    task_rows, partition_rows = aggregate(ENTRIES)
    table = markdown(task_rows, partition_rows, {
        'policy': 'p', 'env': 'sim', 'prompt_mode': 'hs', 'prompt_id': -1, 'decoder': 'llara',
        'decoding': 'greedy', 'max_steps': 8, 'on_parse_failure': 'random'})
    # 5 executed model steps with fields (seeds 1, 2, 4), 1 without (seed 3), 2 rejected;
    # first answers: each episode's first executed model step (seed 4: its third record).
    assert grounding_row(table, 'L1', TASK) == [
        '5', '40.0 (2/5)', '20.0 (1/5)', '40.0 (2/5)', '60.0 (3/5)', '20.0 (1/5)', '20.0 (1/5)',
        '0 / 0', '1', '2', '66.7 (2/3)', '66.7 (2/3)']
    assert grounding_row(table, 'L1', 'rotate')[4:7] == ['no base', '100.0 (1/1)', '0.0 (0/1)']
    assert grounding_row(table, 'L1', 'rotate')[10:] == ['100.0 (1/1)', 'no base']
    assert grounding_row(table, 'L2', TASK)[:5] == ['1', '0.0 (0/1)', '0.0 (0/1)', '0.0 (0/1)',
                                                    '0.0 (0/1)']  # no roles: no 'no base'
    assert grounding_row(table, 'L2', TASK)[7] == '1 / 0'
    assert grounding_row(table, 'L2', 'rotate') == ['0'] + ['not recorded'] * 6 + [
        '0 / 0', '1', '0'] + ['not recorded'] * 2
    assert grounding_row(table, 'L1', '**all**')[:2] == [
        '6', '50.0 (3/6)']
    assert re.search(r'^\| L1 \| visual_manipulation \| 0\.0 \(0/4\) \|', table, re.M)


def write_results(directory, entries) -> None:
    directory.mkdir(parents=True)
    data = {'global': {}, **{e['tid']: e for e in entries}}
    (directory / 'results.json').write_text(json.dumps(data))


def test_the_curve_adds_picks_on_the_named_object_and_a_second_panel(tmp_path):
    plans, results = [], []
    for arm, size, entries in (('aux', 1, ENTRIES[:2]), ('noaux', 1, ENTRIES[2:3])):
        run = tmp_path / f'{arm}-n{size}'
        write_results(run / 'eval', entries)
        stage = SimpleNamespace(train=SimpleNamespace(max_steps=5), samples=20)
        plans.append(SimpleNamespace(arm=arm, episode_ids=('e0', 'e1'), episodes_per_task=size,
                                     stages=(stage,)))
        results.append({'eval': eval_rows(run / 'eval')})
    rows = curve_rows(plans, results)
    assert [(r['picks_on_target'], r['places_on_target'], r['model_steps'])
            for r in rows] == [(2, 2, 4), (0, 0, 0)]
    paths = write_curve(tmp_path / 'curve', rows)
    with open(paths[0], newline='') as handle:
        reader = csv.DictReader(handle)
        assert reader.fieldnames[:4] == ['samples', 'aux', 'success', 'episodes']
        assert reader.fieldnames[-3:] == ['picks_on_target', 'model_steps', 'places_on_target']
        assert [(r['picks_on_target'], r['places_on_target'], r['model_steps'])
                for r in reader] == [('2', '2', '4'), ('0', '0', '0')]
    text = paths[2].read_text()
    assert '| picks on the named object | places on the named base |' in text
    assert '| 50.0 (2/4) | 50.0 (2/4) |' in text  # the aux row: picks, places
    assert '| no model step recorded | no model step recorded |' in text  # noaux: none
    with Image.open(paths[1]) as chart:  # two panels side by side: twice as wide as tall
        assert chart.width >= 2 * chart.height
