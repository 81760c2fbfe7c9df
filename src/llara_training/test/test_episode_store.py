"""episode_store: exact round trip, atomic writes (a killed writer leaves nothing that counts),
the index of done/rejected items, and merging stores without duplicates."""
import json
import os

import numpy as np
import pytest

from llara_policy.errors import ConfigError
from llara_policy.sim.episode import Placeholder, PlaceholderKind, ReferenceImage, TaskPrompt
from llara_policy.types import ActionStep, Effector, ImageBox, ImagePoint, ObjectDescription
from llara_training import episode_store
from llara_training.episode import Episode, EpisodeSource, Frame, LabelMapping
from llara_training.episode_store import EpisodeStore, merge_stores


def _box(name, x, y, w, h):
    return ObjectDescription(name, ImageBox(ImagePoint(x, y), w, h))


def make_episode(episode_id='sim-rotate-0000042', seed=42, value=0) -> Episode:
    """Random pixels and ids, awkward floats, both placeholder kinds, one frame without segm."""
    rng = np.random.default_rng(seed + value)
    rgb = [rng.integers(0, 256, (128, 256, 3), dtype=np.uint8) for _ in range(3)]
    segm = [rng.integers(-1, 9, (128, 256)).astype(np.int32) for _ in range(2)]
    segm.append(np.zeros((0, 0), np.int32))  # a frame without segmentation
    objects = (_box('red block', 0.1 + 1e-9, 1 / 3, 0.0625, 0.125),
               _box('red block', 2 / 3, 0.5, 0.1, 0.2))  # two objects, one name
    ref_a = ReferenceImage(rng.integers(0, 256, (128, 256, 3), dtype=np.uint8),
                           rng.integers(-1, 3, (128, 256)).astype(np.int32), {5: 'red block'},
                           (objects[0],))
    ref_b = ReferenceImage(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8),
                           np.full((64, 64), -1, np.int32), {5: 'red block', 7: 'blue bowl'},
                           objects)
    prompt = TaskPrompt('Put the {dragged_obj} into {scene}. Rotate 30 degrees.', {
        'dragged_obj': Placeholder('dragged_obj', PlaceholderKind.OBJECT, ('red block',), ref_a),
        'scene': Placeholder('scene', PlaceholderKind.SCENE, ('red block', 'blue bowl'), ref_b)})
    steps = (ActionStep(ImagePoint(0.1 + 1e-12, 0.7), ImagePoint(1.0, 0.0), -359, 'red block',
                        Effector.SPATULA, 1),
             ActionStep(ImagePoint(0.5, 0.25), ImagePoint(1 / 7, 3 / 11), 359, '',
                        Effector.SPATULA, 2))
    frames = (Frame(rgb[0], segm[0], objects), Frame(rgb[1], segm[1], ()),
              Frame(rgb[2], segm[2], objects[:1]))
    return Episode(episode_id, EpisodeSource.VIMA_DATA, 'rotate', seed, prompt,
                   Effector.SPATULA, frames, steps, False, LabelMapping.LLARA,
                   {5: 'red block', 7: 'blue bowl', -3: 'odd id'})


def assert_same(read: Episode, written: Episode):
    assert read == written  # every field but the arrays (they do not take part in ==)
    for a, b in zip(read.frames, written.frames, strict=True):
        for x, y in ((a.rgb, b.rgb), (a.segm, b.segm)):
            assert x.dtype == y.dtype and x.shape == y.shape and np.array_equal(x, y)
    for key, placeholder in written.prompt.placeholders.items():
        mine = read.prompt.placeholders[key].reference
        assert np.array_equal(mine.rgb, placeholder.reference.rgb)
        assert mine.segm.dtype == np.int32
        assert np.array_equal(mine.segm, placeholder.reference.segm)
    assert list(read.prompt.placeholders) == list(written.prompt.placeholders)


def test_write_then_read_is_exact(tmp_path):
    store = EpisodeStore(tmp_path / 'store', create=True)
    episode = make_episode()
    assert store.write(episode, store.partial_dir('test'))
    assert store.episode_ids() == [episode.episode_id] and episode.episode_id in store
    read = EpisodeStore(tmp_path / 'store').read(episode.episode_id)
    assert_same(read, episode)
    assert read.steps[0].pick.x_norm == 0.1 + 1e-12  # floats exact, not rounded
    assert read.object_names == {5: 'red block', 7: 'blue bowl', -3: 'odd id'}
    files = {p.relative_to(store.path(episode.episode_id)).as_posix()
             for p in store.path(episode.episode_id).rglob('*') if p.is_file()}
    assert files == {'episode.json', 'segm_front.npz', 'rgb_front/0.png', 'rgb_front/1.png',
                     'rgb_front/2.png', 'rgb_front/a_dragged_obj.png', 'rgb_front/a_scene.png'}


def test_an_existing_episode_is_not_rewritten(tmp_path):
    store = EpisodeStore(tmp_path, create=True)
    scratch = store.partial_dir('test')
    assert store.write(make_episode(value=0), scratch)
    assert not store.write(make_episode(value=1), scratch)  # same id, other pixels
    assert_same(store.read('sim-rotate-0000042'), make_episode(value=0))


def test_a_writer_killed_mid_episode_leaves_nothing_that_counts(tmp_path, monkeypatch):
    store = EpisodeStore(tmp_path, create=True)
    scratch = store.partial_dir('shard-a')

    def die(*args, **kwargs):
        raise KeyboardInterrupt  # the process dies while writing the segmentation file

    monkeypatch.setattr(episode_store.np, 'savez_compressed', die)
    with pytest.raises(KeyboardInterrupt):
        store.write(make_episode(), scratch)
    monkeypatch.undo()
    assert any(scratch.iterdir())  # the half-written episode is there ...
    assert store.episode_ids() == [] and store.done_ids() == set()  # ... and does not count
    assert 'sim-rotate-0000042' not in store
    store.clear_partials('shard-a')  # what the next run of that writer does first
    assert not scratch.exists()
    assert store.write(make_episode(), store.partial_dir('shard-a'))
    assert_same(store.read('sim-rotate-0000042'), make_episode())


def test_rejections_are_recorded_with_reasons_and_count_as_done(tmp_path):
    store = EpisodeStore(tmp_path, create=True)
    store.write(make_episode('sim-rotate-0000001'), store.partial_dir('w'))
    store.reject('sim-rotate-0000002', 'not solved within 3 steps', seed=2)
    assert store.rejected() == {'sim-rotate-0000002': 'not solved within 3 steps'}
    assert store.done_ids() == {'sim-rotate-0000001', 'sim-rotate-0000002'}
    assert store.episode_ids() == ['sim-rotate-0000001']
    record = json.loads((tmp_path / 'rejected' / 'sim-rotate-0000002.json').read_text())
    assert record['seed'] == 2
    with pytest.raises(ConfigError, match='reason'):
        store.reject('sim-rotate-0000003', '')


def test_a_directory_without_store_json_is_refused(tmp_path):
    with pytest.raises(ConfigError, match='not an episode store'):
        EpisodeStore(tmp_path)
    with pytest.raises(ConfigError, match='not in the store'):
        EpisodeStore(tmp_path, create=True).read('sim-rotate-0000009')


def test_merge_copies_each_episode_once_and_names_conflicts(tmp_path):
    a = EpisodeStore(tmp_path / 'a', create=True)
    b = EpisodeStore(tmp_path / 'b', create=True)
    a.write(make_episode('sim-rotate-0000001', seed=1), a.partial_dir('w'))
    a.write(make_episode('sim-rotate-0000002', seed=2), a.partial_dir('w'))
    a.reject('sim-rotate-0000005', 'oracle gave up')
    b.write(make_episode('sim-rotate-0000002', seed=2), b.partial_dir('w'))  # identical
    b.write(make_episode('sim-rotate-0000003', seed=3), b.partial_dir('w'))
    b.write(make_episode('sim-rotate-0000005', seed=5), b.partial_dir('w'))  # rejected in a
    seed_4 = make_episode('sim-rotate-0000004', seed=4)
    a.write(seed_4, a.partial_dir('w'))
    b.write(make_episode('sim-rotate-0000004', seed=44), b.partial_dir('w'))  # differs
    report = merge_stores([tmp_path / 'a', tmp_path / 'b'], tmp_path / 'merged')
    merged = EpisodeStore(tmp_path / 'merged')
    assert merged.episode_ids() == [f'sim-rotate-000000{i}' for i in (1, 2, 3, 4)]
    assert merged.rejected() == {'sim-rotate-0000005': 'oracle gave up'}
    assert (report.copied, report.rejected_copied, report.duplicates) == (4, 1, 1)
    assert report.conflicts == ('sim-rotate-0000004', 'sim-rotate-0000005')
    assert_same(merged.read('sim-rotate-0000004'), seed_4)  # the first store's is kept
    assert not any((tmp_path / 'merged' / '.partial').iterdir())
    again = merge_stores([tmp_path / 'a', tmp_path / 'b'], tmp_path / 'merged')
    assert again.copied == 0 and len(merged) == 4
    with pytest.raises(ConfigError, match='itself'):
        merge_stores([tmp_path / 'a'], tmp_path / 'a')


def test_episodes_iterates_in_id_order(tmp_path):
    store = EpisodeStore(tmp_path, create=True)
    for seed in (3, 1, 2):
        store.write(make_episode(f'sim-rotate-000000{seed}', seed=seed), store.partial_dir('w'))
    assert [e.seed for e in store.episodes()] == [1, 2, 3]
    assert os.listdir(tmp_path / 'episodes') and len(store) == 3
