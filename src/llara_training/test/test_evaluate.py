"""`llara_training evaluate`: LLaRA's closed loop, its results files, resume, parse failures.

The oracle (the sim's scripted expert answering in LLaRA text) must solve every episode it is
given; the results JSON must carry the fields llara-spec 5.1 lists, recomputed here from the
entries, and the markdown table and chart must be written. A tiny random model answers within
a token budget too small for any step, so every query is a recorded parse failure followed by
LLaRA's random action. VIMA-Bench runs in a subprocess (one VIMA env per process).
"""
import json
import os
from pathlib import Path
import re
import subprocess
import sys

from PIL import Image
import pytest

from llara_policy.errors import ConfigError
from llara_policy.model.tiny_models import TINY, save_tiny_llava
from llara_policy.sim.episode import Partition
from llara_policy.sim.vima_bench import vima_bench_available
from llara_policy.text import prompting
from llara_policy.types import ActionStep, Effector, ImagePoint
from llara_policy.workspace import Workspace
from llara_training import eval_agents
from llara_training.__main__ import main
from llara_training.eval_config import EvalConfig, PromptMode
from llara_training.evaluate import evaluate

TEST_SEED = 1_000_000  # the sim's first test seed (sim/episode.py SEED_RANGES)
# llara-spec 5.1: the fields of every `<partition>/<task>/<seed>` entry.
LLARA_FIELDS = {'tid': str, 'level': str, 'task': str, 'seed': int, 'prompt': str,
                'lm_prompt_hist': list, 'lm_answer_hist': list, 'step': int, 'success': bool,
                'failure': bool}
PACKAGE_ROOT = Path(__file__).resolve().parents[1]


def read_results(out: Path) -> tuple[dict, dict]:
    data = json.loads((out / 'results.json').read_text())
    return data['global'], {key: value for key, value in data.items() if key != 'global'}


def check_llara_entry(entry: dict, max_steps: int) -> None:
    for name, kind in LLARA_FIELDS.items():
        assert isinstance(entry[name], kind), f'{entry["tid"]}: {name} is {entry[name]!r}'
    assert entry['tid'] == f"{entry['level']}/{entry['task']}/{entry['seed']}"
    assert '{' in entry['prompt']  # VIMA's raw template, placeholders unfilled
    assert len(entry['lm_prompt_hist']) == len(entry['lm_answer_hist']) >= 1
    assert all(p.startswith('<image0>\n<task>') for p in entry['lm_prompt_hist'])
    assert 1 <= entry['step'] <= max_steps


def test_oracle_solves_every_episode_with_two_workers_and_writes_json_markdown_png(tmp_path):
    out = tmp_path / 'oracle'
    tasks, seeds = ('visual_manipulation', 'rotate'), range(TEST_SEED, TEST_SEED + 3)
    status = main(['evaluate', '--policy', 'oracle', '--tasks', ','.join(tasks),
                   '--partition', 'L1', '--episodes', '3', '--workers', '2', '--renderer',
                   'tiny', '--out', str(out), '--no-progress'])
    assert status == 0
    global_args, entries = read_results(out)
    assert set(entries) == {f'placement_generalization/{t}/{s}' for t in tasks for s in seeds}
    assert global_args['model_path'] == 'oracle' and global_args['prompt_mode'] == 'hso'
    assert global_args['max_length'] == 8 and global_args['num_env'] == 3
    assert global_args['workers'] == 2
    for entry in entries.values():
        check_llara_entry(entry, 8)
        assert entry['success'] and not entry['failure'], entry['tid']
        assert entry['parse_failures'] == [] and entry['random_actions'] == 0
        # The oracle answers one step per query, each executed: step = queries.
        assert entry['step'] == len(entry['lm_answer_hist']) == len(entry['actions'])
    table = (out / 'results.md').read_text()
    for task in tasks:
        assert re.search(rf'^\| L1 \| {task} \| 100\.0 \(3/3\) \|', table, re.M), table
    assert re.search(r'^\| L1 \| \*\*all\*\* \| 100\.0 \(6/6\) \|', table, re.M), table
    with Image.open(out / 'success.png') as chart:
        assert chart.format == 'PNG' and chart.width > 100 and chart.height > 100
    assert json.loads((out / 'errors.json').read_text()) == []


def oracle_config(out: Path, **changes) -> EvalConfig:
    values = dict(policy='oracle', out=str(out), tasks=('visual_manipulation',),
                  episodes=1, seed=TEST_SEED, renderer='tiny')
    values.update(changes)
    return EvalConfig(**values)


def test_resume_skips_episodes_in_the_results_file_and_refuses_another_protocol(
        tmp_path, monkeypatch):
    calls = []
    act = eval_agents.OracleAgent.act

    def counted(self, *args, **kwargs):
        calls.append(1)
        return act(self, *args, **kwargs)

    monkeypatch.setattr(eval_agents.OracleAgent, 'act', counted)
    out = tmp_path / 'resume'
    first = evaluate(oracle_config(out, episodes=1), progress=False)
    assert (first.ran, first.resumed) == (1, 0)
    _, entries = read_results(out)
    first_entry = entries[f'placement_generalization/visual_manipulation/{TEST_SEED}']
    assert len(calls) == first_entry['queries'] >= 1
    calls.clear()
    second = evaluate(oracle_config(out, episodes=2), progress=False)
    assert (second.ran, second.resumed) == (1, 1)
    _, entries = read_results(out)
    new_entry = entries[f'placement_generalization/visual_manipulation/{TEST_SEED + 1}']
    assert len(calls) == new_entry['queries']  # only the new seed queried the policy
    assert entries[first_entry['tid']] == first_entry  # the earlier entry is kept as it was
    calls.clear()
    third = evaluate(oracle_config(out, episodes=2), progress=False)
    assert (third.ran, third.resumed, len(calls)) == (0, 2, 0)
    with pytest.raises(ConfigError, match='prompt_mode'):
        evaluate(oracle_config(out, prompt_mode=PromptMode('hs')), progress=False)


@pytest.fixture(scope='module')
def tiny_model(tmp_path_factory) -> Path:
    return save_tiny_llava(tmp_path_factory.mktemp('tiny') / 'model', TINY)


def test_tiny_random_model_answers_are_recorded_as_parse_failures_then_random_actions(
        tiny_model, tmp_path):
    budget = 16
    # A step sentence is longer than the budget in this tokenizer, so no answer can parse.
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    shortest = prompting.format_answer([ActionStep(ImagePoint(0.0, 0.0), ImagePoint(0.0, 0.0),
                                                   0, 'a', Effector.SUCTION, 1)])
    assert len(tokenizer(shortest, add_special_tokens=False)['input_ids']) > budget
    out = tmp_path / 'tiny'
    config = EvalConfig(policy=str(tiny_model), out=str(out), tasks=('visual_manipulation',),
                        episodes=1, seed=TEST_SEED, max_steps=3, prompt_mode=PromptMode('hs'),
                        max_new_tokens=budget, renderer='tiny', device='cpu', dtype='float32')
    summary = evaluate(config, progress=False)
    assert summary.errors == {}
    _, entries = read_results(out)
    (entry,) = entries.values()
    check_llara_entry(entry, 3)
    queries = len(entry['lm_answer_hist'])
    assert [f['query'] for f in entry['parse_failures']] == list(range(queries))
    assert all(f['reason'].startswith('ParseError') for f in entry['parse_failures'])
    assert [a['source'] for a in entry['actions']] == ['random'] * queries
    assert entry['random_actions'] == queries == entry['step']
    box = Workspace()  # the sim's envelope, where LLaRA's fallback draws its points
    for action in entry['actions']:
        assert action['executed'] and action['yaw_change_deg'] == 0.0
        for x_m, y_m in (action['pick_xy_m'], action['place_xy_m']):
            assert box.x_min_m <= x_m <= box.x_max_m and box.y_min_m <= y_m <= box.y_max_m
    if queries > 1:  # h: the executed random action is the history of the next query
        assert '\nYou have finished: Step 1: Pick up the object at <b>(' in \
            entry['lm_prompt_hist'][1]


def test_parse_failure_can_stop_the_episode_instead(tiny_model, tmp_path):
    out = tmp_path / 'stop'
    config = EvalConfig(policy=str(tiny_model), out=str(out), tasks=('visual_manipulation',),
                        episodes=1, seed=TEST_SEED, max_new_tokens=8, renderer='tiny',
                        on_parse_failure='stop', device='cpu', dtype='float32')
    evaluate(config, progress=False)
    _, entries = read_results(out)
    (entry,) = entries.values()
    assert entry['step'] == 1 and entry['actions'] == [] and not entry['success']
    assert entry['stopped'] and len(entry['parse_failures']) == 1


def test_bad_options_exit_2_with_the_reason(tmp_path, capsys):
    out = str(tmp_path / 'bad')
    assert main(['evaluate', '--policy', 'oracle', '--partition', 'L4', '--out', out]) == 2
    assert 'no partition' in capsys.readouterr().err
    assert main(['evaluate', '--policy', 'oracle', '--decoder', 'rt2', '--out', out]) == 2
    assert 'oracle answers in LLaRA text' in capsys.readouterr().err
    assert main(['evaluate', '--policy', 'oracle', '--prompt-mode', 'hsv', '--out', out]) == 2
    assert "'v'" in capsys.readouterr().err
    assert main(['evaluate', '--policy', 'oracle', '--seed', '5', '--out', out]) == 2
    assert 'test seeds' in capsys.readouterr().err
    assert main(['evaluate', '--policy', str(tmp_path / 'missing'), '--out', out]) == 2
    assert 'neither' in capsys.readouterr().err


@pytest.mark.skipif(not vima_bench_available(), reason='VIMA-Bench is not installed (make vima)')
def test_oracle_on_one_vima_bench_seed(tmp_path):
    out = tmp_path / 'vima'
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(PACKAGE_ROOT), os.environ.get('PYTHONPATH', '')]))
    done = subprocess.run(
        [sys.executable, '-m', 'llara_training', 'evaluate', '--policy', 'oracle', '--env',
         'vima', '--partition', 'L1', '--tasks', 'visual_manipulation', '--episodes', '1',
         '--out', str(out), '--no-progress'], env=env, capture_output=True, text=True,
        timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    global_args, entries = read_results(out)
    assert global_args['env'] == 'vima' and global_args['seed'] == 200_000  # LLaRA's seeds
    (entry,) = entries.values()
    assert entry['tid'] == f'{Partition.PLACEMENT.value}/visual_manipulation/200000'
    check_llara_entry(entry, 8)
    assert entry['success'] and not entry['failure']
    assert '<b>(' in entry['task_text']  # hso: the reference objects with their boxes
