"""Episodes on disk: one directory per episode, written atomically, and the store's index.

A store is a directory every source writes into and every converter reads from:

    store.json                      what the directory is (format and version)
    episodes/<episode_id>/          one finished episode (see below)
    rejected/<episode_id>.json      an item a source could not turn into an episode, with why
    shards/<tag>.json               a finished generation shard: its parameters and counts
    .partial/<writer>/              episodes being written (never read; see below)

An episode directory holds `episode.json` (metadata, prompt with the placeholders' names and
boxes, the steps, the frames' boxes), `rgb_front/<i>.png` (frame i), `rgb_front/a_<key>.png`
(placeholder key's reference image) and `segm_front.npz` (arrays '<i>' and 'a_<key>', int32
body ids, -1 for none; shape (0, 0) when a frame has no segmentation). PNG and JSON floats
round-trip exactly, so `read(write(e)) == e` array for array.

Atomic: an episode is written under `.partial/<writer>/` and renamed into `episodes/` when
complete, so a killed run never leaves a half episode that counts as done; the index is what
`episodes/` and `rejected/` hold. A writer clears its own `.partial/<writer>/` when it starts
(a shard is run by one process group at a time), never another writer's.
"""
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
import json
import os
from pathlib import Path
import shutil
import tempfile

import numpy as np
from PIL import Image

from llara_policy.errors import ConfigError
from llara_policy.sim.episode import (
    Placeholder,
    PlaceholderKind,
    ReferenceImage,
    TaskPrompt,
)
from llara_policy.types import ActionStep, Effector, ImageBox, ImagePoint, ObjectDescription
from llara_training.episode import Episode, EpisodeSource, Frame, LabelMapping

FORMAT = 'llara_training.episodes'
VERSION = 1
EPISODE_FILE = 'episode.json'
SEGM_FILE = 'segm_front.npz'
RGB_DIR = 'rgb_front'


class EpisodeStore:
    """A store directory: write and read episodes, record rejected items, list what is done."""

    def __init__(self, root: Path, create: bool = False):
        self.root = Path(root)
        marker = self.root / 'store.json'
        if create:
            for name in ('episodes', 'rejected', 'shards', '.partial'):
                (self.root / name).mkdir(parents=True, exist_ok=True)
            if not marker.exists():
                _write_json_atomic(marker, {'format': FORMAT, 'version': VERSION})
        if not marker.is_file():
            raise ConfigError(f'{str(self.root)!r} is not an episode store (no store.json); '
                              'write one with `llara_training episodes ...`')
        meta = json.loads(marker.read_text())
        if meta.get('format') != FORMAT or meta.get('version') != VERSION:
            raise ConfigError(f'{marker} is {meta}, expected format {FORMAT!r} version {VERSION}')

    # -- index -------------------------------------------------------------------------------

    def episode_ids(self) -> list[str]:
        """Return the finished episodes' ids, sorted."""
        return sorted(_names(self.root / 'episodes'))

    def rejected(self) -> dict[str, str]:
        """Return rejected item id -> reason, sorted by id."""
        return {item_id: record['reason'] for item_id, record in self.rejections().items()}

    def rejections(self) -> dict[str, dict]:
        """Return rejected item id -> its whole record (reason and the source's details)."""
        return {path.stem: json.loads(path.read_text())
                for path in sorted((self.root / 'rejected').glob('*.json'))}

    def done_ids(self) -> set[str]:
        """Return every id with a known outcome (an episode or a rejection): skip these."""
        return set(_names(self.root / 'episodes')) | {
            p.stem for p in (self.root / 'rejected').glob('*.json')}

    def __contains__(self, episode_id: str) -> bool:
        return (self.root / 'episodes' / episode_id / EPISODE_FILE).is_file()

    def __len__(self) -> int:
        return len(_names(self.root / 'episodes'))

    def path(self, episode_id: str) -> Path:
        """Return the directory of a finished episode."""
        return self.root / 'episodes' / episode_id

    # -- writing -----------------------------------------------------------------------------

    def partial_dir(self, writer: str) -> Path:
        """Return `writer`'s scratch directory, emptied (its episodes from a killed run)."""
        if not writer or '/' in writer or writer.startswith('.'):
            raise ConfigError(f'writer name must be a plain file name, got {writer!r}')
        path = self.root / '.partial' / writer
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True)
        return path

    def clear_partials(self, writer_prefix: str) -> None:
        """Remove the scratch directories of writers named `writer_prefix`* (a killed run's)."""
        for path in (self.root / '.partial').glob(f'{writer_prefix}*'):
            shutil.rmtree(path, ignore_errors=True)

    def write(self, episode: Episode, scratch: Path) -> bool:
        """Write `episode` under `scratch` (a `partial_dir`) and rename it into the store.

        Returns False (and writes nothing) when the id is already in the store.
        """
        final = self.path(episode.episode_id)
        if final.exists():
            return False
        work = Path(tempfile.mkdtemp(prefix=episode.episode_id + '.', dir=scratch))
        write_episode_dir(episode, work)
        try:
            os.rename(work, final)
        except OSError:
            shutil.rmtree(work, ignore_errors=True)
            if final.exists():  # another writer finished the same id first
                return False
            raise
        return True

    def reject(self, item_id: str, reason: str, **details) -> None:
        """Record that `item_id` gave no episode, and why (atomic; replaces an older record)."""
        if not reason:
            raise ConfigError(f'a rejection of {item_id!r} needs a reason')
        _write_json_atomic(self.root / 'rejected' / f'{item_id}.json',
                           {'id': item_id, 'reason': reason, **details})

    def clear_rejection(self, item_id: str) -> None:
        """Forget an earlier rejection of `item_id` (it has been read after all)."""
        (self.root / 'rejected' / f'{item_id}.json').unlink(missing_ok=True)

    def read(self, episode_id: str) -> Episode:
        """Read a finished episode."""
        path = self.path(episode_id)
        if not (path / EPISODE_FILE).is_file():
            raise ConfigError(f'episode {episode_id!r} is not in the store {str(self.root)!r}')
        return read_episode_dir(path)

    def episodes(self) -> Iterator[Episode]:
        """Yield every finished episode, by id."""
        for episode_id in self.episode_ids():
            yield self.read(episode_id)

    # -- shard manifests ---------------------------------------------------------------------

    def shard_manifest(self, tag: str) -> dict | None:
        """Return a finished shard's manifest, or None when the shard has not finished."""
        path = self.root / 'shards' / f'{tag}.json'
        return json.loads(path.read_text()) if path.is_file() else None

    def finish_shard(self, tag: str, manifest: dict) -> None:
        """Record that shard `tag` finished (its parameters and counts)."""
        _write_json_atomic(self.root / 'shards' / f'{tag}.json', manifest)


@dataclass(frozen=True)
class MergeReport:
    """What `merge_stores` did: episodes and rejections copied, same-id items found.

    `duplicates` are ids already in the destination with identical episode.json (the same
    (task, seed) generated twice: deterministic, so nothing is lost by skipping); `conflicts`
    are ids whose contents differ, or that are an episode on one side and a rejection on the
    other: the destination keeps its own, and they are listed here, never silently dropped.
    """

    copied: int
    rejected_copied: int
    duplicates: int
    conflicts: tuple[str, ...]
    shards: tuple[str, ...]


def merge_stores(sources: Sequence[Path], dest: Path) -> MergeReport:
    """Merge several stores (e.g. one per shard, from several machines) into `dest`."""
    target = EpisodeStore(dest, create=True)
    scratch = target.partial_dir(f'merge-{os.getpid()}')
    copied = rejected_copied = duplicates = 0
    conflicts, shards = [], []
    for source in (EpisodeStore(s) for s in sources):
        if source.root.resolve() == target.root.resolve():
            raise ConfigError(f'cannot merge {str(source.root)!r} into itself')
        rejected_here = set(target.rejected())
        for episode_id in source.episode_ids():
            src, final = source.path(episode_id), target.path(episode_id)
            if final.exists():
                same = ((src / EPISODE_FILE).read_bytes()
                        == (final / EPISODE_FILE).read_bytes())
                duplicates += same
                if not same:
                    conflicts.append(episode_id)
                continue
            if episode_id in rejected_here:
                conflicts.append(episode_id)
                continue
            work = scratch / episode_id
            shutil.copytree(src, work)
            os.rename(work, final)
            copied += 1
        done = set(target.done_ids())
        for item_id in source.rejected():
            record = source.root / 'rejected' / f'{item_id}.json'
            mine = target.root / 'rejected' / f'{item_id}.json'
            if mine.is_file():
                duplicates += 1
            elif item_id in done:
                conflicts.append(item_id)
            else:
                _write_json_atomic(mine, json.loads(record.read_text()))
                rejected_copied += 1
        for path in sorted((source.root / 'shards').glob('*.json')):
            if target.shard_manifest(path.stem) is None:
                target.finish_shard(path.stem, json.loads(path.read_text()))
                shards.append(path.stem)
    shutil.rmtree(scratch, ignore_errors=True)
    return MergeReport(copied, rejected_copied, duplicates, tuple(sorted(set(conflicts))),
                       tuple(shards))


def _names(directory: Path) -> list[str]:
    try:
        return [entry.name for entry in os.scandir(directory) if entry.is_dir()]
    except FileNotFoundError:
        return []


def _write_json_atomic(path: Path, data) -> None:
    tmp = path.with_name(f'.{path.name}.{os.getpid()}.tmp')
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


# -- one episode directory -------------------------------------------------------------------

def write_episode_dir(episode: Episode, path: Path) -> None:
    """Write `episode` into the (existing, empty) directory `path`."""
    (path / RGB_DIR).mkdir()
    arrays = {}
    for i, frame in enumerate(episode.frames):
        Image.fromarray(np.asarray(frame.rgb)).save(path / RGB_DIR / f'{i}.png')
        arrays[str(i)] = np.asarray(frame.segm, dtype=np.int32)
    for key, placeholder in episode.prompt.placeholders.items():
        if not key or '/' in key:
            raise ConfigError(f'{episode.episode_id}: placeholder key {key!r} is not file-safe')
        reference = placeholder.reference
        Image.fromarray(np.asarray(reference.rgb, dtype=np.uint8)).save(
            path / RGB_DIR / f'a_{key}.png')
        arrays[f'a_{key}'] = np.asarray(reference.segm, dtype=np.int32)
    np.savez_compressed(path / SEGM_FILE, **arrays)
    (path / EPISODE_FILE).write_text(json.dumps(episode_to_json(episode), indent=1))


def read_episode_dir(path: Path) -> Episode:
    """Read an episode directory written by `write_episode_dir`."""
    data = json.loads((path / EPISODE_FILE).read_text())
    if data.get('format') != FORMAT or data.get('version') != VERSION:
        raise ConfigError(f'{path / EPISODE_FILE}: format {data.get("format")!r} version '
                          f'{data.get("version")!r}, expected {FORMAT!r} {VERSION}')
    with np.load(path / SEGM_FILE) as npz:
        segms = {key: npz[key] for key in npz.files}

    def rgb(name: str) -> np.ndarray:
        with Image.open(path / RGB_DIR / f'{name}.png') as image:
            return np.asarray(image.convert('RGB'))

    frames = tuple(Frame(rgb(str(i)), segms[str(i)], _objects(f['objects']))
                   for i, f in enumerate(data['frames']))
    placeholders = {}
    for item in data['prompt']['placeholders']:
        key = item['name']
        reference = ReferenceImage(rgb(f'a_{key}'), segms[f'a_{key}'],
                                   _int_keys(item['reference']['object_names']),
                                   _objects(item['reference']['objects']))
        placeholders[key] = Placeholder(key, PlaceholderKind(item['kind']),
                                        tuple(item['object_names']), reference)
    return Episode(
        episode_id=data['episode_id'], source=EpisodeSource(data['source']), task=data['task'],
        seed=data['seed'], prompt=TaskPrompt(data['prompt']['template'], placeholders),
        effector=Effector(data['effector']), frames=frames,
        steps=tuple(_step(s) for s in data['steps']), success=data['success'],
        label_mapping=LabelMapping(data['label_mapping']),
        object_names=_int_keys(data['object_names']))


def episode_to_json(episode: Episode) -> dict:
    """Return everything of `episode` but the images, as JSON-ready data."""
    return {
        'format': FORMAT, 'version': VERSION,
        'episode_id': episode.episode_id, 'source': episode.source.value,
        'task': episode.task, 'seed': int(episode.seed), 'effector': episode.effector.value,
        'success': bool(episode.success), 'label_mapping': episode.label_mapping.value,
        'object_names': {str(k): v for k, v in episode.object_names.items()},
        'prompt': {
            'template': episode.prompt.template,
            'placeholders': [
                {'name': key, 'kind': p.kind.value, 'object_names': list(p.object_names),
                 'reference': {
                     'object_names': {str(k): v for k, v in p.reference.object_names.items()},
                     'objects': [_object_json(o) for o in p.reference.objects]}}
                for key, p in episode.prompt.placeholders.items()]},
        'steps': [_step_json(s) for s in episode.steps],
        'frames': [{'objects': [_object_json(o) for o in f.objects]} for f in episode.frames],
    }


def _step_json(step: ActionStep) -> dict:
    return {'pick': [step.pick.x_norm, step.pick.y_norm],
            'place': [step.place.x_norm, step.place.y_norm],
            'rotation_cw_deg': step.rotation_cw_deg, 'object_text': step.object_text,
            'effector': step.effector.value, 'step_number': step.step_number}


def _step(data: dict) -> ActionStep:
    return ActionStep(ImagePoint(*data['pick']), ImagePoint(*data['place']),
                      data['rotation_cw_deg'], data['object_text'], Effector(data['effector']),
                      data['step_number'])


def _object_json(obj: ObjectDescription) -> dict:
    box = obj.box
    return {'name': obj.name, 'center': [box.center.x_norm, box.center.y_norm],
            'size': [box.width_norm, box.height_norm]}


def _objects(items: list) -> tuple[ObjectDescription, ...]:
    return tuple(ObjectDescription(o['name'], ImageBox(ImagePoint(*o['center']), *o['size']))
                 for o in items)


def _int_keys(names: dict) -> dict[int, str]:
    return {int(k): v for k, v in names.items()}
