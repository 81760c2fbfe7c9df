"""VIMA-Data trajectory folders as episodes, labelled the way LLaRA's converter labels them.

A trajectory folder (vimabench-spec D; VIMA-Bench's scripts/data_generation/run.py writes
them, and VIMA-Data is 650K of them under `vima_v6/<task>/<6-digit index>`) holds
`rgb_front/<t>.jpg` (T+1 frames, 256x128), `obs.pkl` (`segm` per view, T+1 each; `ee`),
`action.pkl` (`pose0_position`, `pose0_rotation`, `pose1_position`, `pose1_rotation`, T each,
metres and xyzw quaternions) and `trajectory.pkl` (meta_info: `obj_id_to_info`,
`end_effector_type`, `seed`, ...; `prompt`, `prompt_assets`, `steps`, `success`).

Labels (llara-spec 1.2, 2.2, 2.3; LostXine/LLaRA datasets/convert_vima.ipynb
`get_image_corr_action`, `get_obj_info_from_action`):
- pick/place: pos2pix_front, column = int((y + 0.5) * 251 + 3), row = int((x - 0.25) * 178 + 34),
  divided by 256 / 128 (LabelMapping.LLARA, the default; UNBIASED takes pixel centres instead);
- rotation: R = int(yaw(pose1) - yaw(pose0)) in degrees (yaw = the z of extrinsic xyz Euler
  angles), written as -R;
- OBJ: the object minimising |pick - c_before| + |place - c_after| - |c_before - c_after| over
  the episode's objects, c = the floor-midpoint of the object's mask box in the front
  segmentation before / after the step (normalised); ties go to the first in obj_id_to_info.
  LLaRA's code asserts every object is visible in both frames; here an object missing from
  either is not a candidate, and a step with no candidate gets no object text (counted).

Pickles name VIMA-Bench's classes (the released data an older `vimasim`); without VIMA-Bench
installed those load as opaque stand-ins, which is all the reader needs. Pickles run code when
loaded: read only data you trust, as with VIMA's own loader.
"""
from collections.abc import Callable, Iterator
from dataclasses import dataclass
import json
import math
from pathlib import Path
import pickle

import numpy as np
from PIL import Image

from llara_policy.errors import ConfigError, LlaraError
from llara_policy.geometry.vima_map import (
    llara_rotation_from_yaw_delta,
    vima_table_to_model_point,
)
from llara_policy.sim.episode import (
    Placeholder,
    PlaceholderKind,
    ReferenceImage,
    TaskPrompt,
    object_boxes,
)
from llara_policy.types import ActionStep, Effector, ImagePoint
from llara_training.episode import Episode, EpisodeSource, Frame, LabelMapping
from llara_training.episode_store import EpisodeStore
from llara_training.sources.sim_rollouts import Outcome

VIMA_MAPPINGS = {LabelMapping.LLARA: 'llara', LabelMapping.UNBIASED: 'unbiased'}
_FILES = ('obs.pkl', 'action.pkl', 'trajectory.pkl')


class _Opaque:
    """Stand-in for a VIMA-Bench class or function a pickle names when VIMA-Bench is absent."""

    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs

    def __setstate__(self, state):
        self.state = state


class _VimaUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        try:
            return super().find_class(module, name)
        except (ImportError, AttributeError):
            if module.split('.')[0] not in ('vima_bench', 'vimasim'):
                raise
            return type(name, (_Opaque,), {'__module__': module})


def _load_pickle(path: Path):
    with open(path, 'rb') as file:
        return _VimaUnpickler(file).load()


def object_phrase(info: dict) -> str:
    """Return LLaRA's object text 'TEXTURE NAME' (obj_format: obj_color, else texture_name)."""
    texture = info['obj_color'] if 'obj_color' in info else info.get('texture_name', '')
    return f"{texture} {info['obj_name']}".strip()


def yaw_deg(quat_xyzw) -> float:
    """Return the yaw in degrees: z of the extrinsic xyz Euler angles (scipy's as_euler('xyz'))."""
    x, y, z, w = np.asarray(quat_xyzw, dtype=np.float64) / np.linalg.norm(quat_xyzw)
    return math.degrees(math.atan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z)))


def episode_id_for(key: str) -> str:
    """Return the episode id of a VIMA key: 'vima_v6/rotate/000123' -> 'vima-rotate-000123'."""
    parts = [p for p in key.strip('/').split('/') if p]
    if len(parts) < 2:
        raise ConfigError(f'a VIMA-Data key is <task>/<index> (under vima_v6/), got {key!r}')
    return f'vima-{parts[-2]}-{parts[-1]}'


def _box_centre(segm: np.ndarray, body: int) -> tuple[float, float] | None:
    rows, cols = np.nonzero(segm == body)
    if rows.size == 0:
        return None
    height, width = segm.shape
    return (float((cols.min() + cols.max()) // 2) / width,
            float((rows.min() + rows.max()) // 2) / height)


def manipulated_object(before: np.ndarray, after: np.ndarray, pick: ImagePoint,
                       place: ImagePoint, body_ids) -> int | None:
    """Return LLaRA's guess of the object a step moved (module docstring), None if none seen."""
    best, best_score = None, math.inf
    for body in body_ids:
        c1, c2 = _box_centre(before, body), _box_centre(after, body)
        if c1 is None or c2 is None:
            continue
        score = (math.dist((pick.x_norm, pick.y_norm), c1)
                 + math.dist((place.x_norm, place.y_norm), c2) - math.dist(c1, c2))
        if score < best_score:
            best, best_score = body, score
    return best


def _hwc(chw) -> np.ndarray:
    return np.ascontiguousarray(np.transpose(np.asarray(chw, dtype=np.uint8), (1, 2, 0)))


def _only(segm, names) -> np.ndarray:
    segm = np.asarray(segm).astype(np.int32)
    return np.where(np.isin(segm, list(names)), segm, -1).astype(np.int32)


def _prompt(trajectory: dict) -> TaskPrompt:
    placeholders = {}
    for key, asset in trajectory['prompt_assets'].items():
        info = asset['segm']['obj_info']
        names = {int(i['obj_id']): object_phrase(i) for i in
                 (info if isinstance(info, list) else [info])}
        segm = _only(asset['segm']['front'], names)
        kind = (PlaceholderKind.SCENE if asset['placeholder_type'] == 'scene'
                else PlaceholderKind.OBJECT)
        reference = ReferenceImage(_hwc(asset['rgb']['front']), segm, names,
                                   object_boxes(segm, names))
        placeholders[key] = Placeholder(key, kind, tuple(names.values()), reference)
    return TaskPrompt(str(trajectory['prompt']), placeholders)


@dataclass(frozen=True)
class VimaEpisode:
    """An episode read from a trajectory folder and its steps without an object guess."""

    episode: Episode
    steps_without_object: int


def read_trajectory(path: Path, key: str = '',
                    mapping: LabelMapping = LabelMapping.LLARA) -> VimaEpisode:
    """Read one trajectory folder; `key` (default: <task>/<folder>) names the episode."""
    path = Path(path)
    if mapping not in VIMA_MAPPINGS:
        raise ConfigError(f'VIMA-Data labels are {[m.value for m in VIMA_MAPPINGS]}, '
                          f'got {mapping}')
    missing = [name for name in _FILES if not (path / name).is_file()]
    if missing:
        raise ConfigError(f'{path} is not a VIMA-Data trajectory folder (no {missing})')
    obs, action = _load_pickle(path / 'obs.pkl'), _load_pickle(path / 'action.pkl')
    trajectory = _load_pickle(path / 'trajectory.pkl')
    key = key or f'{path.parent.name}/{path.name}'
    task = key.strip('/').split('/')[-2]
    names = {int(i): object_phrase(info) for i, info in trajectory['obj_id_to_info'].items()}
    count = len(action['pose0_position'])
    segms = np.asarray(obs['segm']['front'])
    jpgs = sorted((path / 'rgb_front').glob('*.jpg'))
    if count < 1 or len(segms) != count + 1 or len(jpgs) != count + 1:
        raise ConfigError(f'{path}: {count} actions need {count + 1} frames, found '
                          f'{len(jpgs)} rgb_front JPEGs and {len(segms)} front segmentations')
    frames = []
    for t in range(count + 1):
        with Image.open(path / 'rgb_front' / f'{t}.jpg') as image:
            rgb = np.asarray(image.convert('RGB'))
        segm = _only(segms[t], names)
        frames.append(Frame(rgb, segm, object_boxes(segm, names)))
    effector = (Effector.SPATULA if trajectory['end_effector_type'] == 'spatula'
                else Effector.SUCTION)
    steps, unknown = [], 0
    for t in range(count):
        pick = vima_table_to_model_point(*map(float, action['pose0_position'][t][:2]),
                                         VIMA_MAPPINGS[mapping])
        place = vima_table_to_model_point(*map(float, action['pose1_position'][t][:2]),
                                          VIMA_MAPPINGS[mapping])
        rotation = llara_rotation_from_yaw_delta(
            int(yaw_deg(action['pose1_rotation'][t]) - yaw_deg(action['pose0_rotation'][t])))
        body = manipulated_object(segms[t], segms[t + 1], pick, place, names)
        unknown += body is None
        steps.append(ActionStep(pick, place, rotation, names.get(body, ''), effector, t + 1))
    seed = trajectory.get('seed')
    episode = Episode(
        episode_id_for(key), EpisodeSource.VIMA_DATA, task,
        int(seed) if isinstance(seed, (int, np.integer)) else int(path.name),
        _prompt(trajectory), effector, tuple(frames), tuple(steps),
        bool(trajectory.get('success', False)), mapping, names)
    return VimaEpisode(episode, unknown)


def split_keys(split_list: Path, split: str = 'train') -> list[str]:
    """Return the keys of `split` in a LLaRA split list ({"train": [...], "val": [...]})."""
    data = json.loads(Path(split_list).read_text())
    if not isinstance(data, dict) or split not in data:
        raise ConfigError(f'{split_list} has no {split!r} list (it has: '
                          f'{", ".join(data) if isinstance(data, dict) else type(data).__name__})')
    return [str(k) for k in data[split]]


def discover(root: Path) -> list[str]:
    """Return the keys '<task>/<index>' of every trajectory folder under `root`, sorted."""
    return sorted(str(p.parent.relative_to(root)) for p in Path(root).glob('**/trajectory.pkl'))


def import_vima(root: Path, keys: list[str], store_root: Path,
                mapping: LabelMapping = LabelMapping.LLARA,
                on_total: Callable[[int], None] = lambda n: None) -> Iterator[Outcome]:
    """Read `keys` under `root` into the store; yield each key's outcome (resumable).

    A key whose folder is missing or unreadable is rejected with the reason; episodes already
    in the store are skipped, earlier rejections are tried again (the input may be fixed).
    """
    store = EpisodeStore(store_root, create=True)
    scratch = store.partial_dir('vima-data')
    done = set(store.episode_ids())
    on_total(len(keys))
    for key in keys:
        name = episode_id_for(key)
        if name in done:
            yield Outcome(name, 'skipped')
            continue
        try:
            result = read_trajectory(Path(root) / key, key, mapping)
        except (LlaraError, OSError, pickle.UnpicklingError, KeyError, ValueError) as error:
            store.reject(name, f'{type(error).__name__}: {error}', key=key)
            yield Outcome(name, 'rejected', f'{type(error).__name__}: {error}')
            continue
        written = store.write(result.episode, scratch)
        store.clear_rejection(name)
        note = (f'{result.steps_without_object} step(s) without a visible moved object'
                if result.steps_without_object else '')
        yield Outcome(name, 'written' if written else 'skipped', note,
                      result.episode.transitions)
    store.clear_partials('vima-data')
