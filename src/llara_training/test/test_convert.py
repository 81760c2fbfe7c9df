"""The convert stage on disk: LLaVA JSON files + image folder, resume, mixtures, failures."""
import argparse
import json

import conversion_fixtures as fx
import numpy as np
from PIL import Image
import pytest

from llara_policy.errors import ConfigError, SimError
from llara_training import convert_cli
from llara_training.aux_datasets import AUX_PRESETS, AuxConfig, AuxName
from llara_training.conversations import BehaviourCloning, ConversationConfig, Sample
from llara_training.dataset_writer import OutputLayout
from llara_training.episode import LabelMapping

IDS = ['ep-a', 'ep-b', 'ep-c']
MIXTURE_B = ('D-inBC-text-multi_aux-obj_det_aux-obj_loc_aux-act_pred_aux-fut_pred'
             '0.5_1_1_2-train-front.json')


def episodes(ids=IDS, **kwargs):
    return {episode_id: fx.episode(episode_id, **kwargs) for episode_id in ids}


def run_convert(out, store, aux=AUX_PRESETS['B'], ratios=None, ids=None, fmt='D-inBC'):
    ratios = ratios or {AuxName.OBJ_DET: 0.5, AuxName.OBJ_LOC: 1.0, AuxName.ACT_PRED: 1.0,
                        AuxName.FUT_PRED: 2.0}
    writer = BehaviourCloning(ConversationConfig.from_format(fmt))
    return convert_cli.convert(ids or list(store), store.__getitem__, OutputLayout(out), writer,
                               AuxConfig(aux), {name: ratios[name] for name in aux}, 'train')


def load_json(path):
    with path.open() as file:
        return json.load(file)


def test_files_images_and_counts(tmp_path):
    summary = run_convert(tmp_path, episodes())
    assert summary['episodes'] == {'total': 3, 'converted': 3, 'resumed': 0, 'failed': {}}
    main = load_json(tmp_path / 'D-inBC-text-multi-train-front.json')
    # 2 steps per episode; per episode 6 obj_det, 13 obj_loc, 2 act_pred, 2 fut_pred.
    assert [s['id'] for s in main] == ['ep-a_0', 'ep-a_1', 'ep-b_0', 'ep-b_1', 'ep-c_0', 'ep-c_1']
    assert main == [s.to_json() for i in IDS for s in BehaviourCloning(
        ConversationConfig.from_format('D-inBC')).samples(fx.episode(i))]
    sizes = {name: len(load_json(tmp_path / f'aux-{name}-train-front.json'))
             for name in ('obj_det', 'obj_loc', 'act_pred', 'fut_pred')}
    assert sizes == {'obj_det': 18, 'obj_loc': 39, 'act_pred': 6, 'fut_pred': 6}
    mixture = load_json(tmp_path / MIXTURE_B)
    assert mixture[:6] == main
    kinds = [s['id'].split('/')[0] for s in mixture[6:]]
    # int(6 * 0.5) obj_det, 6 obj_loc, 6 act_pred, int(6 * 2) = 12 fut_pred but only 6 exist.
    assert [kinds.count(k) for k in ('obj_det', 'obj_loc', 'act_pred', 'fut_pred')] == \
        [3, 6, 6, 6]
    assert summary['mixture']['fut_pred'] == {'ratio': 2.0, 'requested': 12, 'taken': 6}
    assert len({s['id'] for s in mixture}) == len(mixture)
    skip = ('summary.json', 'convert_config.json')
    listed = {path for file in tmp_path.glob('*.json') if file.name not in skip
              for sample in load_json(file) for path in sample['image']}
    on_disk = {str(p.relative_to(tmp_path / 'images')) for p in
               (tmp_path / 'images').rglob('*') if p.is_file()}
    assert listed == on_disk and summary['images_written'] == len(on_disk)
    # frames 0-2 of each episode and the three reference images.
    assert len(on_disk) == 3 * (3 + 3)
    frame = Image.open(tmp_path / 'images' / 'ep-b' / 'rgb_front' / '2.jpg')
    assert frame.format == 'JPEG' and frame.size == (256, 128)
    assert np.abs(np.asarray(frame).astype(int) - 20).max() <= 2  # fixture frame 2 is all 20
    reference = Image.open(tmp_path / 'images' / 'ep-a' / 'rgb_front' / 'a_scene.png')
    assert reference.format == 'PNG' and (np.asarray(reference) == 200).all()
    assert load_json(tmp_path / 'summary.json') == summary


def test_rerun_resumes_and_reproduces(tmp_path):
    store = episodes()
    run_convert(tmp_path, store, ids=IDS[:2])
    again = run_convert(tmp_path, store)
    assert again['episodes'] == {'total': 3, 'converted': 1, 'resumed': 2, 'failed': {}}
    assert again['images_written'] == 6  # only the new episode's
    fresh = tmp_path / 'fresh'
    run_convert(fresh, store)
    for name in ('D-inBC-text-multi-train-front.json', MIXTURE_B,
                 'aux-obj_loc-train-front.json'):
        assert (tmp_path / name).read_bytes() == (fresh / name).read_bytes()
    # Only the merge changes with the ratios: nothing is converted again.
    ratios = dict.fromkeys(AUX_PRESETS['B'], 1.0)
    summary = run_convert(tmp_path, store, ratios=ratios)
    assert summary['episodes']['converted'] == 0
    assert (tmp_path / ('D-inBC-text-multi_aux-obj_det_aux-obj_loc_aux-act_pred_aux-fut_pred'
                        '1_1_1_1-train-front.json')).is_file()


def test_other_sample_options_are_refused_in_the_same_output(tmp_path):
    run_convert(tmp_path, episodes(IDS[:1]))
    with pytest.raises(ConfigError, match='aux'):
        run_convert(tmp_path, episodes(IDS[:1]), aux=AUX_PRESETS['D'],
                    ratios=dict.fromkeys(AuxName, 1.0))
    with pytest.raises(ConfigError, match='format'):
        run_convert(tmp_path, episodes(IDS[:1]), fmt='inBC')


def test_a_failing_episode_is_reported_and_retried(tmp_path):
    store = episodes()

    def load(episode_id):
        if episode_id == 'ep-b':
            raise SimError('episode ep-b is damaged')
        return store[episode_id]

    writer = BehaviourCloning(ConversationConfig.from_format('inBC'))
    summary = convert_cli.convert(IDS, load, OutputLayout(tmp_path), writer, AuxConfig(()), {},
                                  'train')
    assert summary['episodes']['failed'] == {'ep-b': 'SimError: episode ep-b is damaged'}
    assert [s['id'] for s in load_json(tmp_path / 'inBC-text-multi-train-front.json')] == \
        ['ep-a_0', 'ep-a_1', 'ep-c_0', 'ep-c_1']
    assert 'FAILED ep-b: SimError' in convert_cli.summary_text(summary)
    assert not list(tmp_path.glob('*aux*'))
    summary = convert_cli.convert(IDS, store.__getitem__, OutputLayout(tmp_path), writer,
                                  AuxConfig(()), {}, 'train')
    assert summary['episodes'] == {'total': 3, 'converted': 1, 'resumed': 2, 'failed': {}}


def test_rt2_on_calibrated_episodes_fails_per_episode(tmp_path):
    writer = BehaviourCloning(ConversationConfig.from_format('RT2'),
                              token_decoder=lambda ids: ' '.join(map(str, ids)))
    store = episodes(IDS[:1], label_mapping=LabelMapping.CALIBRATION)
    summary = convert_cli.convert(IDS[:1], store.__getitem__, OutputLayout(tmp_path), writer,
                                  AuxConfig(()), {}, 'train')
    assert 'I-RT2' in summary['episodes']['failed']['ep-a']


def test_sample_json_text_is_json_dumps():
    sample = Sample('a"b\\c', ('x/0.jpg', 'y/ä.png'), 'line\n"quoted"\ttab', 'ünï <p>x</p>')
    assert sample.json_text() == json.dumps(sample.to_json())


def parse(*argv):
    parser = argparse.ArgumentParser()
    convert_cli.add_arguments(parser)
    return parser.parse_args(['episodes', '--out', 'out', *argv])


def test_cli_arguments_build_the_configs():
    writer, aux, ratios = convert_cli.configs_from_args(parse(
        '--aux', 'D', '--aux-ratio', 'spa_rel=0.25', '--answers', 'single', '--quirk',
        'containig_typo=fix', '--quirk', 'single_step_number=replicate', '--seed', '5'))
    assert writer.config.stem == 'D-inBC-text-single'
    assert writer.config.single_step_number_quirk
    assert aux.datasets == tuple(AuxName) and aux.seed == 5
    assert not aux.quirks.containig_typo and aux.quirks.tmp_rel_slash_n
    assert ratios[AuxName.SPA_REL] == 0.25 and ratios[AuxName.TMP_REL] == 1.0
    with pytest.raises(ConfigError, match='quirk'):
        convert_cli.configs_from_args(parse('--quirk', 'typo=fix'))
    with pytest.raises(ConfigError, match='--tokenizer'):
        convert_cli.configs_from_args(parse('--format', 'RT2'))
    with pytest.raises(ConfigError, match='not among'):
        convert_cli.configs_from_args(parse('--aux-ratio', 'tmp_rel=1'))


def test_cli_converts_an_episode_store(tmp_path, capsys):
    from llara_training.__main__ import main
    from llara_training.episode_store import EpisodeStore

    store = EpisodeStore(tmp_path / 'store', create=True)
    scratch = store.partial_dir('test')
    for episode in episodes().values():
        store.write(episode, scratch)
    out = tmp_path / 'out'
    argv = ['convert', str(tmp_path / 'store'), '--out', str(out), '--aux', 'D', '--seed', '3']
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert 'convert: 3 episodes (3 converted, 0 from earlier runs, 0 failed)' in printed
    assert 'spa_rel' in printed and 'mixture tmp_rel: ratio 1 -> 6' in printed
    main_set = load_json(out / 'D-inBC-text-multi-train-front.json')
    assert main_set == [s.to_json() for i in IDS for s in BehaviourCloning(
        ConversationConfig.from_format('D-inBC')).samples(fx.episode(i))]
    assert len(load_json(out / 'aux-tmp_rel-train-front.json')) == 3 * 12
    assert (out / ('D-inBC-text-multi_aux-obj_det_aux-obj_loc_aux-act_pred_aux-fut_pred_'
                   'aux-spa_rel_aux-tmp_rel1_1_1_1_1_1-train-front.json')).is_file()
    assert main(argv) == 0
    assert '(0 converted, 3 from earlier runs, 0 failed)' in capsys.readouterr().out
    assert main(['convert', str(tmp_path / 'store'), '--out', str(out), '--aux', 'B']) == 2
    assert 'other options (aux' in capsys.readouterr().err
