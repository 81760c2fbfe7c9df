"""Prompt-mode flags, prompt ids, open-loop queues and RT-2 decoding of `evaluate` (spec 3.3-3.6).

Expected texts are built here from the documented rules: boxes from the reference segmentation
by LLaRA's rule (spec 2.2), the history prefix and step layout (spec 3.4), LLaRA's user prompt
sentences and instructions, RT-2's 256 bins (spec 1.3).
"""
import json
import math
from pathlib import Path
import random
import re

import numpy as np
import pytest

from llara_policy.errors import ConfigError
from llara_policy.execution import TableAction
from llara_policy.geometry.vima_map import vima_model_point_to_table
from llara_policy.sim.env import SimEnv, SimEnvConfig
from llara_policy.sim.episode import Partition, Split
from llara_policy.text import prompting
from llara_policy.text.action_tokens import ACTION_TOKEN_START, encode_actions
from llara_policy.text.prompt_pools import (
    ACTION_PROMPTS,
    DETECTION_PROMPTS,
    LOCALIZATION_PROMPTS,
)
from llara_policy.types import ActionStep, Effector, ImageBox, ImagePoint, ObjectDescription
from llara_training.eval_agents import Reply, decode_llara, decode_rt2, make_env
from llara_training.eval_config import EvalConfig, PromptMode
from llara_training.eval_episode import run_episode
from llara_training.eval_prompts import Detection, TurnWriter
from llara_training.evaluate import evaluate

SEED = 1_000_000
MULTI_STEP = ('pick_in_order_then_restore', 1_000_003)  # an oracle episode of several steps
HISTORY = '\nYou have finished: '
SUCTION_INSTRUCTION = prompting.ACTION_INSTRUCTIONS[Effector.SUCTION]


def run_mode(tmp_path: Path, name: str, task: str = 'visual_manipulation', seed: int = SEED,
             **changes) -> dict:
    out = tmp_path / name
    config = EvalConfig(policy='oracle', out=str(out), tasks=(task,), episodes=1, seed=seed,
                        renderer='tiny', **changes)
    evaluate(config, progress=False)
    data = json.loads((out / 'results.json').read_text())
    return data[f'placement_generalization/{task}/{seed}']


def scene_info(task: str, seed: int):
    with SimEnv(SimEnvConfig(task=task, split=Split.TEST, renderer='tiny')) as env:
        env.reset(seed)
        return env.info


def llara_box(segm: np.ndarray, body: int) -> str:
    """`<b>(cx, cy), {w, h}</b>` of a mask: min/max, floor of the midpoints, no +1 (spec 2.2)."""
    rows, cols = np.nonzero(segm == body)
    height, width = segm.shape
    x1, x2, y1, y2 = cols.min(), cols.max(), rows.min(), rows.max()
    return (f'<b>({(x1 + x2) // 2 / width:.3f}, {(y1 + y2) // 2 / height:.3f}), '
            f'{{{(x2 - x1) / width:.3f}, {(y2 - y1) / height:.3f}}}</b>')


def object_box(placeholder) -> str:
    reference = placeholder.reference
    (body,) = [b for b, n in reference.object_names.items() if n == placeholder.object_names[0]]
    return llara_box(reference.segm, body)


def test_o_puts_reference_boxes_into_the_task_text_and_no_flag_names_only(tmp_path):
    info = scene_info('visual_manipulation', SEED)
    placeholders = info.prompt.placeholders
    boxed = run_mode(tmp_path, 'o', prompt_mode=PromptMode('hso'))
    expected = info.prompt.template.format(**{
        key: f'<p>{p.object_names[0]}</p> at {object_box(p)}' for key, p in placeholders.items()})
    assert boxed['task_text'] == expected
    assert f'<task>{expected}</task>' in boxed['lm_prompt_hist'][0]
    named = run_mode(tmp_path, 'names', prompt_mode=PromptMode('hs'))
    assert named['task_text'] == info.prompt.template.format(**{
        key: f'<p>{p.object_names[0]}</p>' for key, p in placeholders.items()})
    assert '<b>' not in named['lm_prompt_hist'][0].split('</task>')[0]


def test_h_adds_the_executed_steps_from_the_second_query_on(tmp_path):
    task, seed = MULTI_STEP
    entry = run_mode(tmp_path, 'h', task, seed, prompt_mode=PromptMode('hso'))
    prompts = entry['lm_prompt_hist']
    assert entry['success'] and len(prompts) >= 2
    assert HISTORY not in prompts[0]
    step_line = re.compile(r'Step (\d+): Pick up the object at <b>\(([\d.]+),  ([\d.]+)\)</b>, '
                           r'rotate <r>\[(-?\d+)\]</r> degrees, and drop it at '
                           r'<b>\(([\d.]+), ([\d.]+)\)</b>\.')
    for k, prompt in enumerate(prompts[1:], start=1):
        lines = prompt.split(HISTORY)[1].split('\n')
        assert len(lines) == k
        for number, line in enumerate(lines, start=1):
            match = step_line.fullmatch(line)
            assert match and int(match[1]) == number, line
            # The executed step projected back lands within a model pixel of the answer's.
            said = prompting.parse_answer(entry['lm_answer_hist'][number - 1]).steps[0]
            for value, commanded in zip(map(float, match.group(2, 3, 5, 6)),
                                        (said.pick.x_norm, said.pick.y_norm,
                                         said.place.x_norm, said.place.y_norm), strict=True):
                assert abs(value - commanded) <= 1 / 128 + 1e-9
    without = run_mode(tmp_path, 'no-h', task, seed, prompt_mode=PromptMode('so'))
    assert len(without['lm_prompt_hist']) >= 2
    assert not any(HISTORY in prompt for prompt in without['lm_prompt_hist'])


@pytest.mark.parametrize('prompt_id', [15, 3, -1])
def test_prompt_id_chooses_omits_or_draws_the_user_prompt(tmp_path, prompt_id):
    entry = run_mode(tmp_path, f'id{prompt_id}', prompt_id=prompt_id)
    for prompt in entry['lm_prompt_hist']:
        lines = prompt.split('\n')
        if prompt_id == 15:
            assert lines[2] == SUCTION_INSTRUCTION
        elif prompt_id == 3:
            assert lines[2] == ACTION_PROMPTS[3] and lines[3] == SUCTION_INSTRUCTION
        else:
            assert lines[2] in ACTION_PROMPTS and lines[3] == SUCTION_INSTRUCTION
    if prompt_id < 0:  # drawn with the episode seed: the same in a second run
        again = run_mode(tmp_path, 'again', prompt_id=prompt_id)
        assert again['lm_prompt_hist'] == entry['lm_prompt_hist']


def test_d_asks_the_policy_about_each_reference_and_inserts_its_answers(tmp_path):
    info = scene_info('visual_manipulation', SEED)
    entry = run_mode(tmp_path, 'd', prompt_mode=PromptMode('hsd'))
    queries = {q['placeholder']: q for q in entry['description_queries']}
    assert set(queries) == set(info.prompt.placeholders)
    texts = {}
    for key, placeholder in info.prompt.placeholders.items():
        phrase = f'<p>{placeholder.object_names[0]}</p>'
        question = queries[key]['question']
        assert question.startswith('<image>\n')
        assert question[len('<image>\n'):] in [p.replace('{object}', phrase)
                                               for p in LOCALIZATION_PROMPTS]
        # The oracle answers as an obj_loc sample: the phrase, its box and a period.
        assert queries[key]['answer'] == f'{phrase} at {object_box(placeholder)}.'
        texts[key] = queries[key]['answer'][:-1]  # LLaRA drops the final period
    assert entry['task_text'] == info.prompt.template.format(**texts)
    scene = run_mode(tmp_path, 'd-scene', 'rearrange', prompt_mode=PromptMode('hsd'))
    (query,) = scene['description_queries']
    assert query['question'][len('<image>\n'):] in DETECTION_PROMPTS
    # The oracle answers as an obj_det sample; every object of it stays in the task text.
    info = scene_info('rearrange', SEED)
    reference = info.prompt.placeholders['scene'].reference
    lines = [f'<p>{name}</p> at {llara_box(reference.segm, body)}.'
             for body, name in reference.object_names.items()]
    assert query['answer'] == '<scene>' + '\n'.join(lines) + '</scene>'
    assert scene['task_text'] == f'Rearrange to this {query["answer"]}.'


DETECTIONS: list[Detection] = []  # what `detector` returns; set by the test (one process)


def detector(rgb: np.ndarray) -> list[Detection]:
    """The `e`-mode hook of the test: fixed detections for any (H, W, 3) image."""
    assert rgb.ndim == 3 and rgb.shape[2] == 3
    return list(DETECTIONS)


def detected(name: str, score: float, x: float = 0.5) -> Detection:
    return Detection(ObjectDescription(name, ImageBox(ImagePoint(x, 0.5), 0.1, 0.2)), score)


def test_e_uses_the_detector_hook_with_llaras_rules_and_is_refused_without_one(tmp_path):
    with pytest.raises(ConfigError, match='--detector'):
        EvalConfig(policy='oracle', out=str(tmp_path / 'x'), prompt_mode=PromptMode('hse'))
    info = scene_info('visual_manipulation', SEED)
    dragged, base = (info.prompt.placeholders[k].object_names[0]
                     for k in ('dragged_obj_1', 'base_obj'))
    found = detected(dragged.upper(), 0.9, 0.25)  # matched case-insensitively
    DETECTIONS[:] = [detected('red block', 0.95), found, detected(base, 0.3)]  # base: too low
    entry = run_mode(tmp_path, 'e', prompt_mode=PromptMode('hse'),
                     detector=f'{__name__}:detector')
    expected_dragged = f'<p>{dragged.upper()}</p> at <b>(0.250, 0.500), {{0.100, 0.200}}</b>'
    assert entry['task_text'] == info.prompt.template.format(
        dragged_obj_1=expected_dragged, base_obj=f'<p>{base}</p>')
    assert len(entry['notes']) == 1 and base in entry['notes'][0]
    DETECTIONS[:] = [detected('red block', 0.95, 0.25), detected('blue bowl', 0.59),
                     detected('green star', 0.6, 0.75)]
    scene = run_mode(tmp_path, 'e-scene', 'rearrange', prompt_mode=PromptMode('hse'),
                     detector=f'{__name__}:detector')
    assert scene['task_text'] == (
        'Rearrange to this <scene><p>red block</p> at <b>(0.250, 0.500), {0.100, 0.200}</b>\n'
        '<p>green star</p> at <b>(0.750, 0.500), {0.100, 0.200}</b></scene>.')


class TwoStepAgent:
    """Answers every query with the same two no-op steps (pick and place at one table point)."""

    def __init__(self):
        self.queries = 0

    def start_episode(self, env) -> None:
        point = env.model_point((0.45, 0.25))
        self.text = prompting.format_answer([ActionStep(point, point, 0, 'thing', step_number=k)
                                             for k in (1, 2)])

    def act(self, observation, user_turn, executed, first_step) -> Reply:
        self.queries += 1
        return decode_llara(self.text)

    def describe(self, placeholder, question) -> str:
        raise AssertionError('no description queries in hs / h modes')

    def token_text(self, token_ids) -> str:
        raise AssertionError('no RT-2 tokens')


@pytest.mark.parametrize('letters,queries', [('h', 2), ('hs', 3)])
def test_without_s_every_parsed_step_runs_before_the_next_query(tmp_path, letters, queries):
    config = EvalConfig(policy='oracle', out=str(tmp_path), tasks=('visual_manipulation',),
                        max_steps=3, prompt_mode=PromptMode(letters), renderer='tiny')
    agent = TwoStepAgent()
    env = make_env(config, Partition.PLACEMENT, 'visual_manipulation')
    try:
        entry = run_episode(config, env, agent, Partition.PLACEMENT, 'visual_manipulation', SEED)
    finally:
        env.close()
    assert agent.queries == len(entry['lm_answer_hist']) == queries
    assert entry['step'] == 3 and [a['executed'] for a in entry['actions']] == [True] * 3
    expected = [0, 0, 1] if letters == 'h' else [0, 1, 2]
    assert [a['query'] for a in entry['actions']] == expected


def test_rt2_tokens_decode_to_steps_in_vima_metres_or_image_coordinates():
    action = TableAction((0.4, -0.2), (0.6, 0.3), -90.0)
    ids = encode_actions([action])
    noise = [5, 17]  # text tokens around the action tokens are skipped, as eval-rt2.py does
    reply = decode_rt2('', [*noise, *ids, *ids[:2]], 'rt2', Effector.SUCTION, 1)
    (step,) = reply.steps
    assert reply.failure == '' and len(reply.issues) == 1  # 2 trailing tokens dropped
    bin_m = (0.5 / 255, 1.0 / 255)  # one of 256 bins of VIMA's 0.5 x 1.0 m box
    for point, (x_m, y_m) in ((step.pick, action.pick_xy_m), (step.place, action.place_xy_m)):
        got_x, got_y = vima_model_point_to_table(point)
        assert abs(got_x - x_m) <= bin_m[0] / 2 + 1e-9
        assert abs(got_y - y_m) <= bin_m[1] / 2 + 1e-9
    assert abs(-step.rotation_cw_deg - action.yaw_change_deg) <= 360 / 255 / 2 + 0.5
    image = decode_rt2('', [ACTION_TOKEN_START + v for v in (0, 255, 51, 102, 128)],
                       'rt2_image', Effector.SPATULA, 2)
    (step,) = image.steps
    assert (step.pick, step.place) == (ImagePoint(0.0, 1.0), ImagePoint(0.2, 0.4))
    assert step.rotation_cw_deg == -round(128 / 255 * 360 - 180)
    assert step.effector is Effector.SPATULA and step.step_number == 2
    assert decode_rt2('Step 1: nothing', [5, 6], 'rt2', Effector.SUCTION, 1).failure


def test_rt2_turns_write_history_as_action_tokens_without_the_instruction():
    step = ActionStep(ImagePoint(0.5, 0.5), ImagePoint(0.25, 0.75), 90)
    writer = TurnWriter('Put the <p>red block</p> into the <p>bowl</p>.', Effector.SUCTION, 15,
                        random.Random(0), True, prompting.ActionSpacing.RELEASED, 'rt2',
                        token_text=lambda ids: ' '.join(map(str, ids)))
    turn = writer.turn([step])
    assert SUCTION_INSTRUCTION not in turn
    pick, place = vima_model_point_to_table(step.pick), vima_model_point_to_table(step.place)
    expected = encode_actions([TableAction(pick, place, -90.0)])
    assert turn == ('<image0>\n<task>Put the <p>red block</p> into the <p>bowl</p>.</task>'
                    f'{HISTORY}Step 1: ' + ' '.join(map(str, expected)))
    assert math.isclose(pick[0], 0.25 + (64 - 34) / 178)
