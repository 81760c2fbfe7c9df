r"""Converted datasets on disk: LLaVA JSON files plus one image folder, written resumably.

Layout of the output directory (train with `--data_path OUT/<file>.json --image_folder
OUT/images`):
  images/<episode>/rgb_front/<t>.jpg       observation t (JPEG, quality JPEG_QUALITY)
  images/<episode>/rgb_front/a_<key>.png   a prompt's reference image (PNG)
  parts/<episode>.jsonl                    one episode's samples; written last and atomically,
                                           so an episode with a part file is done (resume)
  convert_config.json                      the conversion options; other options are refused
  <main>.json, aux-<name>-....json, <mixture>.json, summary.json   written by `merge`
Only images that some sample lists are written, each once. Part files hold a header line
(sample counts) and one `<set>\t<sample JSON>` line per sample, so `merge` streams them into
the output files without holding a dataset in memory.
"""
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
import json
import os
from pathlib import Path

import numpy as np

from llara_policy.errors import ConfigError
from llara_training.aux_datasets import (
    AuxConfig,
    AuxCounts,
    AuxName,
    aux_samples,
    mixture_name,
    mixture_picks,
)
from llara_training.conversations import (
    BehaviourCloning,
    Sample,
    frame_image_path,
    reference_image_path,
)
from llara_training.episode import Episode

JPEG_QUALITY = 95
MAIN = 'main'  # the behaviour-cloning set's name in part files and summaries


@dataclass(frozen=True)
class EpisodeConversion:
    """One episode's samples: the main set, each auxiliary set, and what aux left out."""

    episode_id: str
    main: list[Sample]
    aux: dict[AuxName, list[Sample]]
    left_out: AuxCounts = field(default_factory=AuxCounts)

    def part_text(self) -> str:
        r"""Return the part file's text: a header line, then `<set>\t<sample JSON>` lines."""
        sets = {MAIN: self.main, **{name.value: samples for name, samples in self.aux.items()}}
        header = {'episode_id': self.episode_id,
                  'counts': {name: len(samples) for name, samples in sets.items()},
                  'left_out': vars(self.left_out)}
        lines = [json.dumps(header)]
        for name, samples in sets.items():
            lines.extend(f'{name}\t{sample.json_text()}' for sample in samples)
        return '\n'.join(lines) + '\n'

    def image_paths(self) -> set[str]:
        """Every relative image path a sample lists."""
        samples = [*self.main, *(s for group in self.aux.values() for s in group)]
        return {path for sample in samples for path in sample.images}


def convert_episode(episode: Episode, behaviour_cloning: BehaviourCloning,
                    aux: AuxConfig) -> EpisodeConversion:
    """All samples of one episode (pure: no files touched)."""
    aux_sets, left_out = aux_samples(episode, aux) if aux.datasets else ({}, AuxCounts())
    return EpisodeConversion(episode.episode_id, behaviour_cloning.samples(episode), aux_sets,
                             left_out)


@dataclass(frozen=True)
class OutputLayout:
    """Paths under one conversion's output directory."""

    root: Path

    @property
    def images_dir(self) -> Path:
        """The training image folder; sample image paths are relative to it."""
        return self.root / 'images'

    def part_path(self, episode_id: str) -> Path:
        """Where an episode's part file goes."""
        return self.root / 'parts' / f'{episode_id}.jsonl'

    def is_done(self, episode_id: str) -> bool:
        """Whether the episode was converted by an earlier run."""
        return self.part_path(episode_id).is_file()

    def claim(self, options: Mapping) -> None:
        """Record the conversion options, or refuse ones that differ from a previous run's."""
        path = self.root / 'convert_config.json'
        if path.is_file():
            previous = json.loads(path.read_text())
            changed = sorted(key for key in {*previous, *options}
                             if previous.get(key) != options.get(key))
            if changed:
                raise ConfigError(
                    f'{self.root} holds a conversion with other options ({", ".join(changed)}: '
                    f'{[previous.get(k) for k in changed]} there, '
                    f'{[options.get(k) for k in changed]} now); use another --out')
            return
        self.root.mkdir(parents=True, exist_ok=True)
        _write_atomic(path, json.dumps(dict(options), indent=2) + '\n')


def write_images(episode: Episode, paths: set[str], layout: OutputLayout) -> int:
    """Write the episode's images that `paths` lists and that are not there yet; return count."""
    arrays = {frame_image_path(episode.episode_id, t): frame.rgb
              for t, frame in enumerate(episode.frames)}
    arrays.update({reference_image_path(episode.episode_id, key): placeholder.reference.rgb
                   for key, placeholder in episode.prompt.placeholders.items()})
    from PIL import Image  # only the writing of images needs Pillow

    written = 0
    for relative in sorted(paths):
        target = layout.images_dir / relative
        if target.is_file():
            continue
        if relative not in arrays:
            raise ConfigError(f'episode {episode.episode_id!r}: no image for {relative!r}')
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_name(f'.{target.name}.tmp')
        image = Image.fromarray(np.ascontiguousarray(arrays[relative], dtype=np.uint8))
        if relative.endswith('.jpg'):
            image.save(temporary, format='JPEG', quality=JPEG_QUALITY)
        else:
            image.save(temporary, format='PNG')
        os.replace(temporary, target)
        written += 1
    return written


def write_part(conversion: EpisodeConversion, layout: OutputLayout) -> None:
    """Write the episode's part file (atomically: it marks the episode done)."""
    path = layout.part_path(conversion.episode_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_atomic(path, conversion.part_text())


@dataclass(frozen=True)
class DatasetFile:
    """One output file and the number of samples written to it."""

    name: str
    file_name: str
    samples: int


@dataclass(frozen=True)
class MergeResult:
    """The files `merge` wrote, the mixture's make-up and the auxiliary sets' left-out counts."""

    files: list[DatasetFile]
    mixture: dict[str, dict]
    left_out: dict[str, int]


def merge(layout: OutputLayout, episode_ids: Sequence[str], main_file: str,
          aux_files: Mapping[AuxName, str], ratios: Mapping[AuxName, float], seed: int,
          mixture_file: str) -> MergeResult:
    """Stream the episodes' part files into the dataset files.

    The main file holds every main sample, each aux file its whole set (episode order). The
    mixture (merge_dts, written when there are aux sets) is the main set followed by each aux
    set's `mixture_picks` (int(ratio * main) samples, all of a shorter set; reported).
    """
    totals = dict.fromkeys([MAIN, *(name.value for name in aux_files)], 0)
    left_out = vars(AuxCounts()).copy()
    for episode_id in episode_ids:
        with layout.part_path(episode_id).open() as part:
            header = json.loads(part.readline())
        for name in totals:
            totals[name] += header['counts'].get(name, 0)
        for name, count in header['left_out'].items():
            left_out[name] += count
    chosen, mixture = {}, {}
    for name in aux_files:
        requested, picks = mixture_picks(name, totals[MAIN], totals[name.value], ratios[name],
                                         seed)
        chosen[name.value] = picks
        mixture[name.value] = {'ratio': ratios[name], 'requested': requested,
                               'taken': len(picks)}
    files = {MAIN: _JsonListWriter(layout.root / main_file)}
    files.update({name.value: _JsonListWriter(layout.root / file_name)
                  for name, file_name in aux_files.items()})
    mixed = _JsonListWriter(layout.root / mixture_file) if aux_files else None
    try:
        for name, text in _part_lines(layout, episode_ids):
            files[name].add(text)
            if mixed is not None and name == MAIN:
                mixed.add(text)
        for name, picks in chosen.items():  # the mixture: main set first, then each subset
            index = 0
            for line_name, text in _part_lines(layout, episode_ids):
                if line_name == name:
                    if index in picks:
                        mixed.add(text)
                    index += 1
        written = [DatasetFile(name, writer.path.name, writer.close())
                   for name, writer in files.items()]
        if mixed is not None:
            written.append(DatasetFile('mixture', mixed.path.name, mixed.close()))
    finally:
        for writer in [*files.values(), *([mixed] if mixed else [])]:
            writer.discard()
    return MergeResult(written, mixture, left_out)


def write_sets(layout: OutputLayout, episode_ids: Sequence[str], sets: Sequence[str],
               path: Path) -> int:
    """Stream the named sets' samples (MAIN, aux names) of the episodes into one JSON list.

    Episode order, within an episode the part file's order; returns the number of samples.
    For training on a subset of a conversion (e.g. only its auxiliary samples) without
    converting again.
    """
    writer = _JsonListWriter(Path(path))
    try:
        for name, text in _part_lines(layout, episode_ids):
            if name in sets:
                writer.add(text)
        return writer.close()
    finally:
        writer.discard()


def _part_lines(layout: OutputLayout, episode_ids: Sequence[str]):
    """Yield (set name, sample JSON text) of every part file's samples, in episode order."""
    for episode_id in episode_ids:
        with layout.part_path(episode_id).open() as part:
            part.readline()  # the header
            for line in part:
                name, _, text = line.rstrip('\n').partition('\t')
                yield name, text


class _JsonListWriter:
    """Writes a JSON list one pre-serialised item per line into a temporary file."""

    def __init__(self, path: Path):
        self.path = path
        self._temporary = path.with_name(f'.{path.name}.tmp')
        self._file = self._temporary.open('w')
        self._count = 0

    def add(self, item_json: str) -> None:
        self._file.write(('[\n' if self._count == 0 else ',\n') + item_json)
        self._count += 1

    def close(self) -> int:
        """Finish the list, move it into place; return the number of items."""
        self._file.write('[]\n' if self._count == 0 else '\n]\n')
        self._file.close()
        os.replace(self._temporary, self.path)
        return self._count

    def discard(self) -> None:
        """Remove an unfinished temporary file (no-op after close)."""
        if not self._file.closed:
            self._file.close()
        self._temporary.unlink(missing_ok=True)


def _write_atomic(path: Path, text: str) -> None:
    temporary = path.with_name(f'.{path.name}.tmp')
    temporary.write_text(text)
    os.replace(temporary, path)


def mixture_file_name(main_stem: str, aux: AuxConfig, ratios: Mapping[AuxName, float],
                      split: str) -> str:
    """Return the mixture's file name from the dataset file names, as merge_dts builds it."""
    aux_stems = [aux.file_name(name, split).split(f'-{split}-')[0] for name in aux.datasets]
    return mixture_name(main_stem, aux_stems, [ratios[name] for name in aux.datasets], split)
