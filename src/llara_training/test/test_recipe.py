"""`llara_training recipe` end to end on a tiny config, then resumed, shipped and refused.

One run of the whole command (3 visual_manipulation episodes, the tiny preset, stages of 2-3
steps, the first on the first 2 episodes only, 1 evaluation episode, the curve at 1 and 2
episodes with --jobs 2) is shared by the tests; expected values come from the episode store,
the conversion's documented layout (inBC: one sample per episode step; a mixture takes
int(ratio x main) of each aux set) and the config, never from the recipe's own reports.
"""
import contextlib
import csv
import io
import json
from pathlib import Path
import time

import pytest
import yaml

from llara_policy.errors import ConfigError
from llara_training.__main__ import main
from llara_training.episode_store import EpisodeStore
from llara_training.recipe_config import recipe_from_dict

TASK = 'visual_manipulation'
EVAL_SEED = 1_000_000
CONFIG = {
    'episodes': {'tasks': [TASK], 'seeds': '0:3', 'renderer': 'tiny'},
    'convert': {'format': 'inBC', 'aux': 'B',
                'aux_ratio': {'obj_det': 1, 'obj_loc': 1, 'act_pred': 0, 'fut_pred': 0}},
    'model': {'preset': 'tiny', 'squash': True, 'sincos_positions': True, 'frame_mean': 'data',
              'vision_feature_layer': -1},
    'stages': [
        {'name': 'align', 'data': 'aux', 'episodes_per_task': 2,
         'train': {'prompt_format': 'plain', 'max_steps': 2, 'per_device_batch_size': 4}},
        {'name': 'tune', 'data': 'mixture', 'missed_attempts': 1,
         'train': {'prompt_format': 'vicuna_v1', 'max_steps': 3, 'per_device_batch_size': 2}}],
    'train_defaults': {'mode': 'full', 'freeze_vision_tower': False, 'pad_to_square': False,
                       'device': 'cpu', 'cpu_threads': 1, 'bf16': False,
                       'gradient_checkpointing': False, 'learning_rate': 1e-3,
                       'warmup_ratio': 0.0, 'lr_scheduler': 'constant', 'logging_steps': 1},
    'evaluate': {'tasks': [TASK], 'partitions': ['placement_generalization'], 'episodes': 1,
                 'seed': EVAL_SEED, 'max_steps': 2, 'max_new_tokens': 48},
    'curve': {'episodes_per_task': [1, 2], 'evaluate_episodes': 1},
}
SHIPPED_MODEL = {'config.json', 'generation_config.json', 'model.safetensors',
                 'tokenizer.json', 'tokenizer_config.json', 'processor_config.json',
                 'chat_template.jinja', 'training_config.yaml'}


def recipe(*args: str) -> tuple[int, str, float]:
    """Run `llara_training recipe ARGS` in this process: (status, output, seconds)."""
    output = io.StringIO()
    start = time.monotonic()
    with contextlib.redirect_stdout(output), contextlib.redirect_stderr(output):
        status = main(['recipe', *args])
    return status, output.getvalue(), time.monotonic() - start


@pytest.fixture(scope='module')
def done(tmp_path_factory):
    """The whole recipe with the curve, --jobs 2 and --ship: (work dir, output, seconds)."""
    root = tmp_path_factory.mktemp('recipe')
    config = root / 'tiny_recipe.yaml'
    config.write_text(yaml.safe_dump(CONFIG))
    status, output, seconds = recipe('--config', str(config), '--out', str(root / 'out'),
                                     '--curve', '--jobs', '2', '--ship', str(root / 'ship'))
    assert status == 0, output[-4000:]
    print(f'tiny recipe with curve: {seconds:.1f} s')
    return root, output, seconds


def records(path: str) -> list[dict]:
    return json.loads(Path(path).read_text())


def episode_of(record: dict) -> str:
    return record['image'][0].split('/')[0]  # images are <episode>/rgb_front/<file>


def stage_config(run: Path, stage: str) -> dict:
    return yaml.safe_load((run / stage / 'training_config.yaml').read_text())


def training_episodes(root: Path, per_task: int) -> dict[str, int]:
    """The first `per_task` episodes by seed, read from the store: episode id -> steps."""
    store = EpisodeStore(root / 'out' / 'episodes')
    episodes = sorted((store.read(name) for name in store.episode_ids()),
                      key=lambda episode: episode.seed)
    return {e.episode_id: e.transitions for e in episodes[:per_task]}


def test_stages_chain_and_train_on_their_data(done):
    root, _, _ = done
    run = root / 'out' / 'run'
    align, tune = stage_config(run, 'align'), stage_config(run, 'tune')
    assert align['model_path'] == str(root / 'out' / 'model')
    assert tune['model_path'] == align['output_dir'] == str(run / 'align')
    assert (align['prompt_format'], tune['prompt_format']) == ('plain', 'vicuna_v1')
    assert (align['max_steps'], tune['max_steps']) == (2, 3)
    steps = training_episodes(root, 3)
    aux = records(align['data_path'])
    assert {r['id'].split('/')[0] for r in aux} == {'obj_det', 'obj_loc'}
    assert {episode_of(r) for r in aux} == set(training_episodes(root, 2))  # its 2 first
    mixture = records(tune['data_path'])
    main_records = [r for r in mixture if '/' not in r['id'] and '_miss' not in r['id']]
    assert len(main_records) == sum(steps.values())  # inBC: one sample per step
    for name in ('obj_det', 'obj_loc'):  # ratio 1: as many as main samples
        assert sum(r['id'].startswith(name + '/') for r in mixture) == len(main_records)
    # missed_attempts 1: one more sample per main sample, its history ending in missed picks
    missed = {r['id']: r for r in mixture if '_miss' in r['id']}
    assert sorted(missed) == sorted(f"{r['id']}_miss0" for r in main_records)
    for record in main_records:
        twin = missed[f"{record['id']}_miss0"]
        assert twin['image'] == record['image']
        question = twin['conversations'][0]['value']
        assert question.startswith(record['conversations'][0]['value'] + '\n')
        assert 'You have finished: Step 1: Pick up the object at' in question
    assert len(mixture) == 4 * len(main_records)
    assert {episode_of(r) for r in mixture} <= set(steps)
    for stage in ('align', 'tune'):
        assert (run / stage / 'model.safetensors').is_file()


def test_the_final_weights_are_evaluated_on_the_configured_episodes(done):
    root, output, _ = done
    results = json.loads((root / 'out' / 'run' / 'eval' / 'results.json').read_text())
    assert results.pop('global')['policy'] == str(root / 'out' / 'run' / 'tune')
    assert set(results) == {f'placement_generalization/{TASK}/{EVAL_SEED}'}
    summary = json.loads((root / 'out' / 'run' / 'recipe_summary.json').read_text())
    assert [s['name'] for s in summary['stages']] == ['align', 'tune']
    assert summary['machine']['torch_threads'] == [1]
    assert set(summary['seconds']['phases']) >= {'episodes', 'convert', 'model', 'runs'}
    assert 'recipe summary' in output and f'L1 {TASK}: ' in output


def test_curve_arms_take_equal_steps_on_the_first_episodes_by_seed(done):
    root, _, _ = done
    curve = root / 'out' / 'curve'
    with open(curve / 'aux_curve.csv', newline='') as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0])[:4] == ['samples', 'aux', 'success', 'episodes']
    assert sorted((int(r['train_episodes_per_task']), r['aux']) for r in rows) == [
        (1, 'false'), (1, 'true'), (2, 'false'), (2, 'true')]
    for row in rows:
        size, arm = int(row['train_episodes_per_task']), 'aux' if row['aux'] == 'true' \
            else 'noaux'
        assert int(row['episodes']) == CONFIG['curve']['evaluate_episodes']
        run = curve / f'{arm}-n{size}'
        stages = ['align', 'tune'] if arm == 'aux' else ['tune']
        configs = [stage_config(run, stage) for stage in stages]
        assert int(row['samples_seen']) == sum(c['max_steps'] * c['per_device_batch_size']
                                               for c in configs)
        assert sum(c['max_steps'] for c in configs) == 2 + 3  # both arms: the same steps
        selected = training_episodes(root, size)
        assert int(row['samples']) == len(selected)  # the data-size axis: trajectories
        for config in configs:  # align's own 2 episodes are capped by the curve's size
            data = records(config['data_path'])
            assert {episode_of(r) for r in data} == set(selected)
        if arm == 'noaux':  # the main (inBC) set alone (and its missed attempts, as the
            assert configs[0]['prompt_format'] == 'vicuna_v1'  # last stage), served format
            data = records(configs[0]['data_path'])
            assert all('/' not in r['id'] for r in data)
            assert sum('_miss' in r['id'] for r in data) == len(data) / 2
        evaluated = json.loads((run / 'eval' / 'results.json').read_text())
        assert set(evaluated) - {'global'} == {f'placement_generalization/{TASK}/{EVAL_SEED}'}
    assert (curve / 'aux_curve.png').stat().st_size > 0
    assert (curve / 'aux_curve.md').read_text().count('\n| ') == 1 + len(rows)


def test_the_model_normalizes_frames_with_the_training_frames_mean(done):
    import cv2
    import numpy as np

    root, output, _ = done
    first = training_episodes(root, 2)  # the first stage's episodes: the model is made for them
    frames = sorted(f for name in first
                    for f in (root / 'out' / 'data' / 'images' / name).rglob('*.jpg'))
    assert frames
    # Independently: every pixel of every training camera frame, RGB in [0, 1].
    pixels = np.concatenate([cv2.imread(str(f))[:, :, ::-1].reshape(-1, 3) for f in frames])
    expected = pixels.mean(0) / 255.0
    processor = json.loads((root / 'ship' / 'processor_config.json').read_text())
    mean = processor.get('image_processor', processor)['image_mean']
    assert np.allclose(mean, expected, atol=2e-3), (mean, expected)
    assert not np.allclose(mean, [0.4815, 0.4578, 0.4082], atol=0.02)  # not CLIP's
    config = json.loads((root / 'ship' / 'config.json').read_text())
    assert config['vision_feature_layer'] == -1
    assert "frames mean (R, G, B) of the 2 episodes of stage 'align'" in output


def test_ship_copies_only_the_model_and_the_reports(done):
    root, output, _ = done
    ship = root / 'ship'
    shipped = {str(p.relative_to(ship)) for p in ship.rglob('*') if p.is_file()}
    assert shipped == SHIPPED_MODEL | {
        'recipe_config.yaml', 'recipe_summary.json', 'aux_curve.csv', 'aux_curve.png',
        'aux_curve.md', 'eval/results.json', 'eval/results.md', 'eval/success.png',
        'eval/errors.json'}
    final = root / 'out' / 'run' / 'tune'
    assert (ship / 'model.safetensors').read_bytes() == (final / 'model.safetensors').read_bytes()
    assert 'MB of the 25 MB budget' in output


def test_a_rerun_skips_what_is_done_and_ship_refuses_weights_over_the_budget(done):
    root, _, first_seconds = done
    weights = root / 'out' / 'run' / 'tune' / 'model.safetensors'
    before = weights.stat().st_mtime_ns
    summary = root / 'out' / 'run' / 'recipe_summary.json'
    first = json.loads(summary.read_text())['seconds']
    assert first['eval'] > 0 and all(value > 0 for value in first['stages'].values())
    curve_summary = root / 'out' / 'curve' / 'aux-n1' / 'recipe_summary.json'
    curve_first = json.loads(curve_summary.read_text())['seconds']['stages']
    curve_summary.unlink()  # its stages' own records still say what they cost
    status, output, seconds = recipe('--config', str(root / 'tiny_recipe.yaml'), '--out',
                                     str(root / 'out'), '--curve', '--ship',
                                     str(root / 'ship2'), '--ship-limit-mb', '0.01')
    assert status == 2
    assert 'over the 0.01 MB budget; nothing shipped' in output
    assert not (root / 'ship2').exists()
    assert weights.stat().st_mtime_ns == before
    for run, stages in (('run', ('align', 'tune')), ('curve/aux-n1', ('align', 'tune')),
                        ('curve/noaux-n2', ('tune',))):
        for stage in stages:
            assert f'{run}: {stage}: final weights exist' in output and 'skipped' in output
        assert f'{run}: eval: ' in output and 'holds every episode: skipped' in output
    assert 'training 2 steps' not in output and seconds < first_seconds
    # The rerun skipped everything: the summary still says what training and evaluation cost.
    again = json.loads(summary.read_text())['seconds']
    assert again['eval'] == first['eval'] and again['stages'] == first['stages']
    assert json.loads(curve_summary.read_text())['seconds']['stages'] == curve_first


def rerun_changed(root: Path, tmp_path: Path, change) -> tuple[int, str]:
    """Rerun the recipe in the fixture's directory with CONFIG as `change(config)` leaves it."""
    changed = json.loads(json.dumps(CONFIG))
    change(changed)
    config = tmp_path / 'changed.yaml'
    config.write_text(yaml.safe_dump(changed))
    status, output, _ = recipe('--config', str(config), '--out', str(root / 'out'))
    return status, output


def test_a_rerun_with_other_stage_settings_is_refused_naming_them(done, tmp_path):
    status, output = rerun_changed(done[0], tmp_path, lambda config: config['stages'][1][
        'train'].update(max_steps=4))
    assert status == 2 and 'trained with other settings (max_steps)' in output


def test_a_rerun_with_other_stage_episodes_is_refused(done, tmp_path):
    status, output = rerun_changed(done[0], tmp_path, lambda config: config['stages'][0].update(
        episodes_per_task=1))
    assert status == 2 and 'the training episodes) than the recipe now asks' in output


def test_an_evaluation_of_other_weights_is_not_taken_for_the_final_ones(done, tmp_path):
    import os
    import shutil

    root, _, _ = done
    run = root / 'out' / 'run'
    results = run / 'eval' / 'results.json'
    report = results.read_bytes()
    more = {'name': 'more', 'data': 'mixture', 'train': {
        'prompt_format': 'vicuna_v1', 'max_steps': 1, 'per_device_batch_size': 2}}
    try:  # a stage added: the final weights move
        status, output = rerun_changed(root, tmp_path, lambda config: config['stages'].append(
            more))
        assert status == 2 and 'holds results of another protocol' in output, output[-2000:]
        assert f"policy '{run / 'tune'}' -> '{run / 'more'}'" in output
        assert 'move' in output and 'aside' in output
        assert results.read_bytes() == report
    finally:
        shutil.rmtree(run / 'more', ignore_errors=True)
    # The same final weights retrained after their evaluation: refused too.
    weights = run / 'tune' / 'model.safetensors'
    before = weights.stat()
    later = results.stat().st_mtime + 60
    os.utime(weights, (later, later))
    try:
        status, output = rerun_changed(root, tmp_path, lambda config: None)
        assert status == 2 and 'retrained since' in output, output[-2000:]
    finally:
        os.utime(weights, ns=(before.st_atime_ns, before.st_mtime_ns))


@pytest.mark.parametrize('change, named', [
    ({'evaluation': {}}, 'evaluation'),
    ({'evaluate': {'episodes': 1, 'episode': 2}}, 'episode'),
    ({'stages': [{'name': 'a', 'data': 'main', 'train': {'max_step': 2}}]}, 'max_step'),
    ({'stages': [{'name': 'a', 'data': 'main', 'train': {'output_dir': 'x'}}]}, 'output_dir'),
    ({'stages': [{'name': 'a', 'data': 'main',
                  'train': {'prompt_format': 'plain', 'max_steps': 2}}]}, 'plain'),
    ({'stages': [{'name': 'a', 'data': 'main', 'train': {}}]}, 'max_steps'),
    ({'model': {'preset': 'tiny', 'frame_mean': 'imagenet'}}, 'frame_mean'),
    ({'stages': [{'name': 'a', 'data': 'main', 'episodes_per_task': -1,
                  'train': {'max_steps': 2}}]}, 'episodes_per_task must be >= 0'),
    ({'stages': [{'name': 'a', 'data': 'main', 'episodes_per_task': 4,
                  'train': {'max_steps': 2}}]}, 'episodes_per_task 4 exceeds the 3 seeds'),
    ({'model': {'preset': 'tiny', 'vision_feature_layer': 0}}, 'vision_feature_layer'),
    ({'stages': [{'name': 'a', 'data': 'aux', 'missed_attempts': 1,
                  'train': {'max_steps': 2}}]}, 'aux data has no steps to miss'),
    ({'stages': [{'name': 'a', 'data': 'main', 'missed_attempts': -0.5,
                  'train': {'max_steps': 2}}]}, 'missed_attempts is a ratio'),
])
def test_config_errors_name_the_key(change, named):
    with pytest.raises(ConfigError, match=named):
        recipe_from_dict({**CONFIG, **change})


def test_the_demo_recipe_config_loads_and_an_unknown_key_fails_the_command(tmp_path):
    from llara_training.recipe_config import load_recipe

    demo = load_recipe(Path(__file__).resolve().parents[1] / 'configs' / 'demo_recipe.yaml')
    assert [(s.name, s.episodes_per_task, s.missed_attempts) for s in demo.stages] == [
        ('align', 2000, 0), ('tune', 2000, 0), ('more', 0, 0), ('anneal', 0, 0),
        ('retry', 0, 1), ('retry2', 0, 2)]
    config = tmp_path / 'bad.yaml'
    config.write_text(yaml.safe_dump({**CONFIG, 'model': {'preset': 'tiny', 'sqush': True}}))
    status, output, _ = recipe('--config', str(config), '--out', str(tmp_path / 'out'))
    assert status == 2 and 'sqush' in output and not (tmp_path / 'out').exists()
