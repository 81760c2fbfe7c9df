"""Recorded sessions as episodes: the embedded launcher records two oracle episodes of
pick_in_order_then_restore (record:=true); the reader (rosbags only, no ROS) gives one episode
per task/result whose steps are the bag's executor/executed steps, and whose frames are the
scenes the sim showed (checked by replaying the steps on a fresh SimEnv with the same seed:
same pixels). The expectations are read from the bag here with rosbags' AnyReader."""
import json
import os
from pathlib import Path
import re
import sys
from types import SimpleNamespace

import numpy as np
import pytest

from llara_policy.sim.env import SimEnv, SimEnvConfig
from llara_policy.sim.episode import Split
from llara_training.__main__ import main
from llara_training.episode import EpisodeSource, LabelMapping
from llara_training.episode_store import EpisodeStore
from llara_training.sources import rosbag as rosbag_source
from llara_training.sources.rosbag import read_bag

highlevel = pytest.importorskip('rosbags.highlevel')
TESTS = Path(__file__).resolve().parents[3] / 'tests'
TASK, EPISODES = 'pick_in_order_then_restore', 2  # 3 oracle steps each
EPISODE_LINE = re.compile(r'\[launch\] episode (\d+)/\d+ (\S+) seed (\d+): (success|failure) ')


@pytest.fixture(scope='module')
def recording(tmp_path_factory) -> tuple[Path, list[tuple[str, int, bool]]]:
    """A bag of two oracle episodes and the launcher's (task, seed, success) per episode."""
    for module in ('sim_node', 'policy_node', 'task_node', 'recorder_node'):
        pytest.importorskip(f'llara_policy.ros.{module}', reason=f'{module} not in this checkout')
    if not (TESTS / 'graph_launch.py').is_file():
        pytest.skip('tests/graph_launch.py (the repository checkout) is not next to this package')
    sys.path.insert(0, str(TESTS))
    from graph_launch import run_launcher

    bag = tmp_path_factory.mktemp('recording') / 'session'
    code, output = run_launcher('sim.launch.py', 'policy:=oracle', f'task:={TASK}',
                                f'episodes:={EPISODES}', 'renderer:=tiny', 'record:=true',
                                f'record_dir:={bag}', timeout_s=300,
                                domain_seed=os.getpid() + 11)
    assert code == 0 and (bag / 'metadata.yaml').is_file(), output[-4000:]
    episodes = [(m.group(2), int(m.group(3)), m.group(4) == 'success')
                for m in map(EPISODE_LINE.match, output.splitlines()) if m]
    assert len(episodes) == EPISODES, output[-4000:]
    return bag, episodes


def bag_messages(bag: Path) -> dict[str, list]:
    """(receive time ns, message) by topic, read with rosbags alone."""
    messages: dict[str, list] = {}
    with highlevel.AnyReader([bag]) as reader:
        for connection, received, raw in reader.messages():
            messages.setdefault(connection.topic.strip('/'), []).append(
                (received, reader.deserialize(raw, connection.msgtype)))
    return messages


def executed_per_task(messages) -> list[list]:
    """The executor/executed messages of each task (received up to its task/result)."""
    ends = [received for received, _ in messages['task/result']]
    groups, start = [], -1
    for end in ends:
        groups.append([m for received, m in messages['executor/executed']
                       if start < received <= end])
        start = end
    return groups


def test_one_episode_per_task_with_the_executed_steps_of_the_bag(recording):
    bag, launched = recording
    messages = bag_messages(bag)
    items = list(read_bag(bag))
    assert [(i.reason, i.note) for i in items] == [('', '')] * EPISODES
    results = [result for _, result in messages['task/result']]
    for item, executed, result, (task, seed, success) in zip(
            items, executed_per_task(messages), results, launched, strict=True):
        episode = item.episode
        assert (episode.source, episode.task, episode.seed) == (EpisodeSource.ROSBAG, task, seed)
        assert episode.success == success == result.success
        assert episode.prompt.template == result.instruction and not episode.prompt.placeholders
        assert episode.label_mapping is LabelMapping.CALIBRATION  # the sim camera's projection
        assert episode.transitions == len(executed) == 3
        for k, (step, message) in enumerate(zip(episode.steps, executed, strict=True), start=1):
            done = message.executed
            assert (step.pick.x_norm, step.pick.y_norm, step.place.x_norm, step.place.y_norm,
                    step.rotation_cw_deg, step.effector.value) == (
                done.pick_x_norm, done.pick_y_norm, done.place_x_norm, done.place_y_norm,
                done.rotation_cw_deg, ('suction', 'spatula')[done.effector])
            assert step.step_number == k == done.step_number
            # The executor reports no object phrase; the plan's (the oracle's) is kept.
            assert done.object_text in ('', step.object_text)
            assert step.object_text == message.requested.object_text != ''
        assert all(not f.has_segmentation and f.rgb.shape == (128, 256, 3)
                   for f in episode.frames)
    assert len({i.episode_id for i in items}) == EPISODES


def test_frames_are_the_scenes_the_policy_saw(recording):
    bag, _ = recording
    for item in read_bag(bag):
        episode = item.episode
        # sim_node's session: the test split for seeds >= 1000000, TinyRenderer (renderer:=tiny).
        with SimEnv(SimEnvConfig(episode.task, split=Split.TEST, renderer='tiny')) as env:
            observation = env.reset(episode.seed)
            assert np.array_equal(observation.rgb, episode.frames[0].rgb)
            for k, step in enumerate(episode.steps, start=1):
                result = env.step_model(step)
                assert np.array_equal(result.obs.rgb, episode.frames[k].rgb), k
            assert result.success == episode.success


def test_import_bag_is_resumable_and_reports_what_is_not_a_recording(recording, tmp_path):
    bag, _ = recording
    out = tmp_path / 'store'
    assert main(['episodes', 'import-bag', str(bag), '--out', str(out)]) == 0
    store = EpisodeStore(out)
    assert len(store) == EPISODES
    stored = store.read(store.episode_ids()[0])
    first = next(read_bag(bag)).episode
    assert stored == first and all(np.array_equal(a.rgb, b.rgb)
                                   for a, b in zip(stored.frames, first.frames, strict=True))
    not_a_bag = tmp_path / 'empty'
    not_a_bag.mkdir()
    assert main(['episodes', 'import-bag', str(bag), str(not_a_bag), '--out', str(out)]) == 1
    summary = json.loads((out / 'summary-import-bag.json').read_text())
    assert (summary['written'], summary['skipped'], summary['rejected']) == (0, EPISODES, 1)
    assert 'not a readable rosbag2 recording' in store.rejected()['bag-empty']


def _copy_bag(source: Path, target: Path, keep) -> None:
    """Copy a bag, message by message, keeping those for which keep(topic, index) is true."""
    from rosbags.rosbag2 import StoragePlugin, Writer

    counts: dict[str, int] = {}
    with highlevel.AnyReader([source]) as reader, Writer(
            target, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        connections = {c.id: writer.add_connection(c.topic, c.msgtype,
                                                   typestore=reader.typestore)
                       for c in reader.connections}
        for connection, received, raw in reader.messages():
            index = counts[connection.topic] = counts.get(connection.topic, -1) + 1
            if keep(connection.topic.strip('/'), index):
                writer.write(connections[connection.id], received, raw)


def test_a_task_cut_off_by_the_end_of_the_recording_is_reported(recording, tmp_path):
    bag, _ = recording
    cut = tmp_path / 'cut'
    _copy_bag(bag, cut, lambda topic, index: not (topic == 'task/result' and index == 1))
    items = list(read_bag(cut))
    assert [bool(i.episode) for i in items] == [True, False]
    assert items[1].reason == ('recording ended before the task finished (3 executed step(s), '
                               'no task/result)')


def test_a_lost_executed_message_rejects_the_task_not_the_recording(recording, tmp_path):
    bag, _ = recording
    lossy = tmp_path / 'lossy'
    _copy_bag(bag, lossy, lambda topic, index: not (topic == 'executor/executed' and index == 4))
    items = list(read_bag(lossy))
    assert bool(items[0].episode) and items[1].episode is None
    assert 'disagrees with task/result' in items[1].reason


def test_camera_images_become_model_frames_as_policy_node_cuts_them():
    # A 512x256 bgr8 camera with 2x2 blocks of one colour and padded rows: the model frame is
    # the blocks' colours, channels swapped to RGB.
    rng = np.random.default_rng(1)
    model = rng.integers(0, 256, (128, 256, 3), dtype=np.uint8)
    camera_bgr = np.repeat(np.repeat(model[:, :, ::-1], 2, axis=0), 2, axis=1)
    padded = np.zeros((256, 512 * 3 + 4), np.uint8)
    padded[:, :512 * 3] = camera_bgr.reshape(256, -1)
    message = SimpleNamespace(encoding='bgr8', width=512, height=256, step=512 * 3 + 4,
                              data=padded.reshape(-1))
    assert np.array_equal(rosbag_source._model_frame(message, 256, 128), model)
    same_size = SimpleNamespace(encoding='rgb8', width=256, height=128, step=768,
                                data=model.reshape(-1))
    assert np.array_equal(rosbag_source._model_frame(same_size, 256, 128), model)
