"""VIMA-Data reader on trajectories written by VIMA-Bench's own data generator
(scripts/data_generation/run.py, vimabench-spec D), run here for rotate (2 seeds) and
follow_order (1 seed, two steps). Expected labels are computed in the test from the folder's
own action.pkl with LLaRA's arithmetic as llara-spec 2.2/2.3 write it (pos2pix_front, scipy's
Euler angles), not by the reader's helpers."""
import importlib.util
import json
import math
from pathlib import Path
import pickle
import subprocess
import sys

import numpy as np
from PIL import Image
import pytest

from llara_policy.types import Effector
from llara_training import episodes_cli
from llara_training.__main__ import main
from llara_training.episode import EpisodeSource, LabelMapping
from llara_training.episode_store import EpisodeStore
from llara_training.sources import vima_data
from llara_training.sources.vima_data import read_trajectory

GENERATED = {'rotate': 2, 'follow_order': 1}
# Runs VIMA-Bench's generator function with the arguments its own main() passes (conf.yaml:
# modalities rgb+segm, success_only, 6-digit folders, seed 0, the task's train kwargs).
GENERATOR = """
import importlib.util, sys
import vima_bench
spec = importlib.util.spec_from_file_location('vima_data_generation', sys.argv[1])
generator = importlib.util.module_from_spec(spec)
spec.loader.exec_module(generator)
task = sys.argv[3]
generator._generate_data_for_one_task(
    task_name=task, task_kwargs=vima_bench.PARTITION_TO_SPECS['train'][task],
    modalities=['rgb', 'segm'], num_episodes=int(sys.argv[4]), success_only=True,
    save_path=sys.argv[2], num_save_digits=6, seed=0)
"""


@pytest.fixture(scope='module')
def vima_root(tmp_path_factory) -> Path:
    """Trajectory folders <task>/<000000..> made by VIMA-Bench's generator, one process/task."""
    spec = importlib.util.find_spec('vima_bench')
    if spec is None:
        pytest.skip('vima_bench is not importable (make vima installs VIMA-Bench)')
    script = Path(spec.origin).parents[1] / 'scripts' / 'data_generation' / 'run.py'
    if not script.is_file():
        pytest.skip(f'VIMA-Bench data generator not found next to vima_bench ({script.name})')
    root = tmp_path_factory.mktemp('vima_data')
    # One VIMA env per process (vimabench-spec A.2), so one generator process per task.
    runs = [subprocess.Popen([sys.executable, '-c', GENERATOR, str(script), str(root), task,
                              str(count)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True, cwd=root)
            for task, count in GENERATED.items()]
    for process in runs:
        output, _ = process.communicate(timeout=300)
        assert process.returncode == 0, output[-3000:]
    return root


def keys() -> list[str]:
    return [f'{task}/{i:06d}' for task, count in GENERATED.items() for i in range(count)]


def load(folder: Path, name: str):
    with open(folder / name, 'rb') as file:
        return pickle.load(file)


def pos2pix_front(x_m: float, y_m: float) -> tuple[int, int]:
    """LLaRA eval/vima_utils.py pos2pix_front, as llara-spec 2.2 writes it: (column, row)."""
    return int((y_m + 0.5) * 251 + 3), int((x_m - 0.25) * 178 + 34)


def pix2pos_front(column: float, row: float) -> tuple[float, float]:
    """LLaRA's inverse (llara-spec 2.2), clipped: (x, y) metres."""
    y, x = (column - 3) / 251 - 0.5, (row - 34) / 178 + 0.25
    return min(max(x, 0.25), 0.75), min(max(y, -0.5), 0.5)


def llara_rotation(quat_pick, quat_place) -> int:
    """-int(yaw_place - yaw_pick), yaw from scipy's extrinsic xyz Euler angles (spec 2.3)."""
    from scipy.spatial.transform import Rotation

    yaw = [Rotation.from_quat(np.asarray(q, np.float64)).as_euler('xyz', degrees=True)[-1]
           for q in (quat_pick, quat_place)]
    return -int(yaw[1] - yaw[0])


def test_every_step_round_trips_through_llaras_pixel_mapping(vima_root):
    checked = 0
    for key in keys():
        episode = read_trajectory(vima_root / key, key).episode
        action = load(vima_root / key, 'action.pkl')
        assert episode.transitions == len(action['pose0_position'])
        for t, step in enumerate(episode.steps):
            assert step.step_number == t + 1
            for point, position in ((step.pick, action['pose0_position'][t]),
                                    (step.place, action['pose1_position'][t])):
                x_m, y_m = float(position[0]), float(position[1])
                column, row = pos2pix_front(x_m, y_m)
                assert (point.x_norm, point.y_norm) == (column / 256, row / 128)
                # Back through pix2pos_front: int() truncation loses under one pixel, always
                # toward -x / -y (1/178 m along the table, 1/251 m across).
                back_x, back_y = pix2pos_front(point.x_norm * 256, point.y_norm * 128)
                assert x_m - 1 / 178 - 1e-9 <= back_x <= x_m + 1e-9
                assert y_m - 1 / 251 - 1e-9 <= back_y <= y_m + 1e-9
            expected = llara_rotation(action['pose0_rotation'][t], action['pose1_rotation'][t])
            assert step.rotation_cw_deg == expected
            # Executed as LLaRA does (place yaw = -r degrees about z), the label turns the
            # object by the generator's own yaw change to within the truncated degree.
            yaw_pick = math.degrees(2 * math.atan2(action['pose0_rotation'][t][2],
                                                   action['pose0_rotation'][t][3]))
            yaw_place = math.degrees(2 * math.atan2(action['pose1_rotation'][t][2],
                                                    action['pose1_rotation'][t][3]))
            error = math.remainder(-step.rotation_cw_deg - (yaw_place - yaw_pick), 360)
            assert abs(error) < 1
            checked += 1
    assert checked >= 4  # rotate: 1 step each, follow_order: 2 or more


def test_frames_prompt_and_objects_convert_without_loss(vima_root):
    for key in keys():
        folder = vima_root / key
        episode = read_trajectory(folder, key).episode
        obs, trajectory = load(folder, 'obs.pkl'), load(folder, 'trajectory.pkl')
        task, index = key.split('/')
        assert (episode.episode_id, episode.task) == (f'vima-{task}-{index}', task)
        assert episode.source is EpisodeSource.VIMA_DATA and episode.success
        assert episode.label_mapping is LabelMapping.LLARA
        assert episode.seed == trajectory['seed']
        assert episode.effector is Effector.SUCTION
        names = {i: f"{info['texture_name']} {info['obj_name']}"
                 for i, info in trajectory['obj_id_to_info'].items()}
        assert dict(episode.object_names) == names
        segms = obs['segm']['front']
        assert len(episode.frames) == len(segms) == len(list((folder / 'rgb_front').iterdir()))
        for t, frame in enumerate(episode.frames):
            assert np.array_equal(frame.rgb, np.asarray(Image.open(folder / f'rgb_front/{t}.jpg')))
            objects = np.isin(segms[t], list(names))
            assert np.array_equal(frame.segm[objects], segms[t][objects])
            assert np.all(frame.segm[~objects] == -1)
            visible = [names[i] for i in names if (segms[t] == i).any()]
            assert [o.name for o in frame.objects] == visible
        assert episode.prompt.template == trajectory['prompt']
        assets = trajectory['prompt_assets']
        assert list(episode.prompt.placeholders) == list(assets)
        for name, placeholder in episode.prompt.placeholders.items():
            asset = assets[name]
            assert placeholder.kind.value == asset['placeholder_type']
            assert np.array_equal(placeholder.reference.rgb,
                                  np.transpose(asset['rgb']['front'], (1, 2, 0)))
            infos = asset['segm']['obj_info']
            infos = infos if isinstance(infos, list) else [infos]
            assert placeholder.object_names == tuple(
                f"{i['obj_color']} {i['obj_name']}" for i in infos)


def _box_centre(segm, body):
    rows, cols = np.nonzero(segm == body)
    return np.array([(cols.min() + cols.max()) / 2, (rows.min() + rows.max()) / 2])


def test_the_step_object_is_the_object_that_moved(vima_root):
    for key in keys():
        folder = vima_root / key
        episode = read_trajectory(folder, key).episode
        segms, trajectory = load(folder, 'obs.pkl')['segm']['front'], load(folder,
                                                                           'trajectory.pkl')
        for t, step in enumerate(episode.steps):
            moves = {}
            for body in trajectory['obj_id_to_info']:
                if (segms[t] == body).any() and (segms[t + 1] == body).any():
                    moves[body] = np.linalg.norm(_box_centre(segms[t + 1], body)
                                                 - _box_centre(segms[t], body))
            assert step.object_text == episode.object_names[max(moves, key=moves.get)]
        if key.startswith('rotate/'):  # the prompt's dragged object is the one rotated
            info = trajectory['prompt_assets']['dragged_obj']['segm']['obj_info']
            assert episode.steps[0].object_text == f"{info['obj_color']} {info['obj_name']}"


def test_unbiased_labels_are_the_centres_of_llaras_pixels(vima_root):
    key = keys()[0]
    llara = read_trajectory(vima_root / key, key).episode
    unbiased = read_trajectory(vima_root / key, key, LabelMapping.UNBIASED).episode
    assert unbiased.label_mapping is LabelMapping.UNBIASED
    for a, b in zip(llara.steps, unbiased.steps, strict=True):
        assert b.pick.x_norm == a.pick.x_norm + 0.5 / 256
        assert b.place.y_norm == a.place.y_norm + 0.5 / 128
        assert b.rotation_cw_deg == a.rotation_cw_deg


def test_import_by_split_list_is_resumable_and_names_missing_folders(vima_root, tmp_path):
    split_list = tmp_path / 'vima-test.json'
    split_list.write_text(json.dumps({'train': keys() + ['rotate/000099'], 'val': keys()[:1]}))
    out = tmp_path / 'store'
    argv = ['episodes', 'import-vima', str(vima_root), '--split-list', str(split_list),
            '--out', str(out)]
    assert main(argv) == 1  # one key has no folder: rejected, and the exit status says so
    store = EpisodeStore(out)
    assert store.episode_ids() == sorted(vima_data.episode_id_for(k) for k in keys())
    assert list(store.rejected()) == ['vima-rotate-000099']
    assert 'not a VIMA-Data trajectory folder' in store.rejected()['vima-rotate-000099']
    for key in keys():  # the stored episode is the one read from the folder
        read = read_trajectory(vima_root / key, key).episode
        stored = store.read(vima_data.episode_id_for(key))
        assert stored == read
        assert all(np.array_equal(a.rgb, b.rgb) and np.array_equal(a.segm, b.segm)
                   for a, b in zip(stored.frames, read.frames, strict=True))
    summary = json.loads((out / 'summary-import-vima.json').read_text())
    assert (summary['written'], summary['rejected']) == (len(keys()), 1)
    # Again: the episodes are skipped, the missing folder is looked for again (still missing).
    assert main(argv) == 1
    summary = json.loads((out / 'summary-import-vima.json').read_text())
    assert (summary['written'], summary['skipped'], summary['rejected']) == (0, len(keys()), 1)
    assert list(store.rejected()) == ['vima-rotate-000099']
    assert 'rejected x1' in episodes_cli.summary_text({**summary, 'rejected': 1,
                                                       'seconds': 0})


def test_pickles_naming_missing_vima_classes_still_load(tmp_path):
    # Released VIMA-Data pickles name `vimasim` classes; without them the reader's unpickler
    # gives stand-ins. Protocol-0 bytes for {'profile': vimasim.tasks.Profile(3)}.
    data = (b'(dp0\nVprofile\np1\ncvimasim.no_such_module\nProfile\np2\n(I3\ntp3\nRp4\ns.')
    path = tmp_path / 'meta.pkl'
    path.write_bytes(data)
    with pytest.raises(ImportError):
        pickle.loads(data)
    loaded = vima_data._load_pickle(path)
    assert type(loaded['profile']).__name__ == 'Profile' and loaded['profile'].args == (3,)
