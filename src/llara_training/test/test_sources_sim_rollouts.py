"""Sim oracle rollouts: shards partition the seeds, generation is deterministic per (task, seed)
whatever the shard or worker count, shards merge without duplicates, a killed run resumes
without redoing finished episodes, failed oracle episodes are reported (or kept on request)."""
import json
import os
from pathlib import Path
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from llara_policy.errors import ConfigError, SimError
from llara_policy.execution import TableAction
from llara_policy.sim.env import SimEnv, SimEnvConfig
from llara_policy.sim.episode import OracleAction
from llara_policy.types import ImagePoint
from llara_training.episode import EpisodeSource, LabelMapping
from llara_training.episode_store import EpisodeStore, merge_stores
from llara_training.sources.sim_rollouts import (
    RolloutConfig,
    Shard,
    generate,
    label_point,
    parse_seeds,
)

TASKS = ('rotate', 'visual_manipulation')


def config(shard: Shard | None = None) -> RolloutConfig:
    return RolloutConfig(TASKS, range(3), shard or Shard(), renderer='tiny')


def run(cfg, root, workers=1):
    return list(generate(cfg, root, workers))


@pytest.mark.parametrize('seeds', [range(10), range(7, 8), range(3, 100), range(5, 9)])
@pytest.mark.parametrize('count', [1, 2, 3, 5])
def test_shards_cut_the_seed_range_into_contiguous_disjoint_blocks(seeds, count):
    blocks = [Shard(k, count).seeds(seeds) for k in range(count)]
    assert [s for block in blocks for s in block] == list(seeds)  # in order, each once
    sizes = [len(b) for b in blocks]
    assert max(sizes) - min(sizes) <= 1


def test_shard_and_seed_syntax():
    assert Shard.parse('1/4') == Shard(1, 4) and parse_seeds('5:9') == range(5, 9)
    for bad in ('4/4', '-1/2', '1', 'a/b', '0/0'):
        with pytest.raises(ConfigError):
            Shard.parse(bad)
    for bad in ('5', '9:5', '5:5', 'a:b'):
        with pytest.raises(ConfigError):
            parse_seeds(bad)
    with pytest.raises(ConfigError, match='tasks'):
        RolloutConfig(('no_such_task',), range(2))
    with pytest.raises(ConfigError, match='seeds'):
        RolloutConfig(TASKS, range(999_999, 1_000_001))  # crosses into the test seeds


def test_labels_are_pixel_centres_or_llaras_whole_pixels():
    # u = 100.7 columns, v = 31.2 rows of the 256x128 frame.
    point = ImagePoint(100.7 / 256, 31.2 / 128)
    assert label_point(point, LabelMapping.UNBIASED) == ImagePoint(100.5 / 256, 31.5 / 128)
    assert label_point(point, LabelMapping.LLARA) == ImagePoint(100 / 256, 31 / 128)
    edge = ImagePoint(1.0, 1.0)  # the frame's far edge stays inside the last pixel
    assert label_point(edge, LabelMapping.UNBIASED) == ImagePoint(255.5 / 256, 127.5 / 128)
    rng = np.random.default_rng(0)
    errors = []
    for x, y in rng.uniform(0, 1, (2000, 2)):
        label = label_point(ImagePoint(x, y), LabelMapping.UNBIASED)
        errors.append((label.x_norm * 256 - x * 256, label.y_norm * 128 - y * 128))
    errors = np.array(errors)
    assert np.abs(errors).max() <= 0.5 and np.abs(errors.mean(axis=0)).max() < 0.03


def _files(store: EpisodeStore, episode_id: str) -> dict[str, bytes]:
    root = store.path(episode_id)
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob('*')) if p.is_file()}


def test_shards_are_deterministic_and_merge_into_the_unsharded_run(tmp_path):
    first = run(config(shard=Shard(0, 2)), tmp_path / 'a')
    second = run(config(shard=Shard(1, 2)), tmp_path / 'b')
    whole = run(config(), tmp_path / 'whole', workers=2)
    assert {o.status for o in first + second + whole} == {'written'}
    report = merge_stores([tmp_path / 'a', tmp_path / 'b'], tmp_path / 'merged')
    assert (report.duplicates, report.conflicts) == (0, ())
    merged, reference = EpisodeStore(tmp_path / 'merged'), EpisodeStore(tmp_path / 'whole')
    ids = [f'sim-{task}-{seed:07d}' for task in TASKS for seed in range(3)]
    assert merged.episode_ids() == reference.episode_ids() == sorted(ids)
    for episode_id in ids:  # same bytes, whichever shard and process made them
        assert _files(merged, episode_id) == _files(reference, episode_id)
    for episode in reference.episodes():
        assert episode.source is EpisodeSource.SIM and episode.success
        assert episode.label_mapping is LabelMapping.UNBIASED
        assert episode.transitions >= 1 and len(episode.frames) == episode.transitions + 1
        for k, step in enumerate(episode.steps, start=1):
            assert step.step_number == k and step.object_text in episode.object_names.values()
            for point in (step.pick, step.place):  # pixel centres
                assert (point.x_norm * 256 - 0.5).is_integer()
                assert (point.y_norm * 128 - 0.5).is_integer()
        if episode.task == 'rotate':  # 'Rotate the {dragged_obj} 120 degrees.' -> [120]
            degrees = int(re.search(r'(\d+) degrees', episode.prompt.template).group(1))
            assert [s.rotation_cw_deg for s in episode.steps] == [degrees]
        assert all(f.objects and f.has_segmentation for f in episode.frames)
    # A second merge of the same shards adds nothing.
    again = merge_stores([tmp_path / 'a', tmp_path / 'b'], tmp_path / 'merged')
    assert (again.copied, again.duplicates) == (0, 6)


def _cli(out, seeds='0:6', **popen):
    command = [sys.executable, '-m', 'llara_training', 'episodes', 'generate', '--out',
               str(out), '--tasks', 'rotate', '--seeds', seeds, '--renderer', 'tiny']
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True, **popen)


def test_a_killed_run_resumes_without_redoing_finished_episodes(tmp_path):
    out = tmp_path / 'store'
    process = _cli(out)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if len(list((out / 'episodes').glob('*'))) >= 2:
            break
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    store = EpisodeStore(out)
    before = {name: os.stat(store.path(name)).st_ino for name in store.episode_ids()}
    assert 2 <= len(before) < 6 and not list((out / 'shards').glob('*.json'))
    for name in before:  # the finished ones are whole
        assert store.read(name).success

    resumed = _cli(out)
    output, _ = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, output
    summary = json.loads((out / 'summary-generate.json').read_text())
    assert summary['skipped'] == len(before)
    assert summary['written'] + summary['rejected'] == 6 - len(before)
    assert {n: os.stat(store.path(n)).st_ino for n in before} == before  # not rewritten
    assert len(store.done_ids()) == 6 and not any((out / '.partial').iterdir())

    finished = _cli(out)
    output, _ = finished.communicate(timeout=120)
    assert finished.returncode == 0, output
    summary = json.loads((out / 'summary-generate.json').read_text())
    assert (summary['skipped'], summary['written']) == (6, 0), output


def _wrong_rotation(real_oracle):
    def oracle(self):
        answer = real_oracle(self)
        action = answer.action
        return OracleAction(TableAction(action.pick_xy_m, action.place_xy_m, 0.0),
                            answer.step, answer.object_name)
    return oracle


def test_failed_oracle_episodes_are_rejected_with_a_reason_or_kept_on_request(
        tmp_path, monkeypatch):
    monkeypatch.setattr(SimEnv, 'oracle', _wrong_rotation(SimEnv.oracle))
    cfg = RolloutConfig(('rotate',), range(2), renderer='tiny')
    outcomes = run(cfg, tmp_path / 'dropped')
    with SimEnv(SimEnvConfig('rotate', renderer='tiny', bonus_steps=0)) as env:
        limit = env.step_limit
    assert [o.status for o in outcomes] == ['rejected', 'rejected']
    store = EpisodeStore(tmp_path / 'dropped')
    assert store.episode_ids() == []
    assert store.rejected() == {f'sim-rotate-000000{s}': f'not solved within {limit} steps'
                                for s in (0, 1)}
    # The same store again, keeping failures: the rejected episodes are generated and kept.
    kept = run(RolloutConfig(('rotate',), range(2), renderer='tiny', keep_failed=True),
               tmp_path / 'dropped')
    assert [o.status for o in kept] == ['written', 'written']
    assert store.rejected() == {}
    episodes = list(store.episodes())
    assert [e.success for e in episodes] == [False, False]
    assert all(e.transitions == limit for e in episodes)


def test_an_oracle_error_is_a_rejection_naming_the_step(tmp_path, monkeypatch):
    def gives_up(self):
        raise SimError('nothing visible to pick')

    monkeypatch.setattr(SimEnv, 'oracle', gives_up)
    outcomes = run(RolloutConfig(('rotate',), range(3, 4), renderer='tiny', keep_failed=True),
                   tmp_path)
    assert [(o.status, o.reason) for o in outcomes] == [
        ('rejected', 'step 1: SimError: nothing visible to pick')]
    assert EpisodeStore(tmp_path).rejected() == {
        'sim-rotate-0000003': 'step 1: SimError: nothing visible to pick'}
    assert len(EpisodeStore(tmp_path).done_ids()) == 1


def test_outputs_never_hold_absolute_paths_of_this_machine(tmp_path):
    run(RolloutConfig(('rotate',), range(1), renderer='tiny'), tmp_path)
    for path in Path(tmp_path).rglob('*.json'):
        assert str(tmp_path) not in path.read_text()
