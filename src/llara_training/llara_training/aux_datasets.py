"""LLaRA's six auxiliary datasets from one episode, and their mixture with the main set (spec 4).

obj_det (scene of every image), obj_loc (each object of every image), act_pred (frame t plus
frame t+1's scene -> step t), fut_pred (frame t plus step t -> frame t+1's scene), spa_rel
(ordered object pairs of every image) and tmp_rel (ordered pairs across a step). Images are the
episode's frames and, unless `limited`, its prompt's reference images (`aux-limited_` files).
Questions are drawn from prompt_pools with a random.Random per (seed, episode, dataset), so a
sample's text does not depend on which other datasets or episodes are converted. Texts follow
LLaRA `datasets/convert_vima.ipynb` ("Step 3"); its quirks are listed in `Quirks` and replicated
by default (the text of the released Aux-B/Aux-D data). Relation answers: `aux_relations`.
"""
from collections.abc import Sequence
from dataclasses import dataclass, field
import enum
import random

from llara_policy.errors import ConfigError
from llara_policy.text.prompt_pools import ACT_PRED_PROMPTS, FUT_PRED_PROMPTS
from llara_policy.text.prompting import (
    ACTION_INSTRUCTIONS,
    ActionSpacing,
    detection_question,
    format_object_description,
    format_scene,
    format_step,
    localization_question,
)
from llara_policy.types import ObjectDescription
from llara_training.aux_relations import Quirks, spatial_samples, temporal_samples
from llara_training.conversations import (
    VIEW,
    Sample,
    frame_image_path,
    reference_image_path,
)
from llara_training.episode import Episode

IMAGE_TOKEN = '<image>'  # auxiliary samples use the plain token (spec 1.1)


class AuxName(enum.Enum):
    """The six auxiliary datasets, in the spec's order."""

    OBJ_DET = 'obj_det'
    OBJ_LOC = 'obj_loc'
    ACT_PRED = 'act_pred'
    FUT_PRED = 'fut_pred'
    SPA_REL = 'spa_rel'
    TMP_REL = 'tmp_rel'


# Maintainer, LostXine/LLaRA#10: Aux-B = obj_det + obj_loc + act_pred + fut_pred; Aux-D = all six.
AUX_PRESETS: dict[str, tuple[AuxName, ...]] = {
    'B': (AuxName.OBJ_DET, AuxName.OBJ_LOC, AuxName.ACT_PRED, AuxName.FUT_PRED),
    'D': tuple(AuxName),
    'none': (),
}
# Sets whose `limited` variant leaves out the reference images (the notebook's only_trajectory).
_LIMITABLE = (AuxName.OBJ_DET, AuxName.OBJ_LOC, AuxName.SPA_REL)


@dataclass(frozen=True)
class AuxConfig:
    """Which auxiliary datasets to write and how.

    `datasets` in output order; `limited`: trajectory frames only for obj_det/obj_loc/spa_rel;
    `spacing`: act_pred's step sentence whitespace (as the main set's); `seed`: question draws.
    """

    datasets: tuple[AuxName, ...] = AUX_PRESETS['D']
    limited: bool = False
    spacing: ActionSpacing = ActionSpacing.RELEASED
    quirks: Quirks = field(default_factory=Quirks)
    seed: int = 0

    def __post_init__(self):
        datasets = tuple(self.datasets)
        if any(not isinstance(name, AuxName) for name in datasets) or \
                len(set(datasets)) != len(datasets):
            raise ConfigError(f'AuxConfig.datasets must be distinct AuxNames, got {datasets!r}')
        object.__setattr__(self, 'datasets', datasets)
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            raise ConfigError(f'AuxConfig.seed must be an integer, got {self.seed!r}')

    def file_name(self, name: AuxName, split: str) -> str:
        """`aux-{limited_}<name>-<split>-front.json` (the notebook's write_dataset)."""
        limited = 'limited_' if self.limited and name in _LIMITABLE else ''
        return f'aux-{limited}{name.value}-{split}-{VIEW}.json'


@dataclass
class AuxCounts:
    """What the auxiliary sets could not use, so nothing is left out silently.

    images_without_objects: frames with neither a segmentation nor detected boxes (no obj_det,
    obj_loc, spa_rel sample); transitions_without_objects: steps whose frame t or t+1 has none
    (no act_pred, fut_pred, tmp_rel sample); duplicate_names: objects hidden from spa_rel and
    tmp_rel by another object of the same name (the notebook keys objects by phrase);
    objects_not_in_both_frames: objects left out of a tmp_rel transition (visible in one frame).
    """

    images_without_objects: int = 0
    transitions_without_objects: int = 0
    duplicate_names: int = 0
    objects_not_in_both_frames: int = 0


def aux_samples(episode: Episode, config: AuxConfig) -> tuple[dict[AuxName, list[Sample]],
                                                               AuxCounts]:
    """Return every configured auxiliary set's samples for one episode, and what was left out."""
    view = _EpisodeView(episode, config)
    result = {}
    for name in config.datasets:
        rng = random.Random(f'{config.seed}/{episode.episode_id}/{name.value}')
        result[name] = _SETS[name](view, rng)
    return result, view.counts


# (image path, objects, is a reference image)
_Image = tuple[str, tuple[ObjectDescription, ...], bool]
# (t, objects of frame t, objects of frame t + 1)
_Transition = tuple[int, tuple[ObjectDescription, ...], tuple[ObjectDescription, ...]]


class _EpisodeView:
    """One episode as the auxiliary sets read it: usable images and transitions, scene texts."""

    def __init__(self, episode: Episode, config: AuxConfig):
        self.episode, self.config, self.counts = episode, config, AuxCounts()
        self._scenes: dict[int, str] = {}
        self.images: list[_Image] = []
        for t, frame in enumerate(episode.frames):
            if frame.objects or frame.has_segmentation:
                self.images.append((frame_image_path(episode.episode_id, t), frame.objects,
                                    False))
            else:
                self.counts.images_without_objects += 1
        if not config.limited:
            self.images.extend((reference_image_path(episode.episode_id, key),
                                placeholder.reference.objects, True)
                               for key, placeholder in episode.prompt.placeholders.items())
        self.transitions: list[_Transition] = []
        for t in range(episode.transitions):
            before, after = episode.frames[t], episode.frames[t + 1]
            if (before.objects or before.has_segmentation) and \
                    (after.objects or after.has_segmentation):
                self.transitions.append((t, before.objects, after.objects))
            else:
                self.counts.transitions_without_objects += 1

    def scene(self, objects: tuple[ObjectDescription, ...]) -> str:
        """Return format_scene(objects), once per objects tuple (frames share them)."""
        key = id(objects)
        if key not in self._scenes:
            self._scenes[key] = format_scene(objects)
        return self._scenes[key]


def object_detection(view: _EpisodeView, rng: random.Random) -> list[Sample]:
    """obj_det: a detection question per image, answered with its scene description."""
    return [Sample(f'obj_det/{path}', (path,), detection_question(rng), view.scene(objects))
            for path, objects, _ in view.images]


def object_localization(view: _EpisodeView, rng: random.Random) -> list[Sample]:
    """obj_loc: per object of every image, `<p>NAME</p> at <b>(cx, cy), {w, h}</b>.`."""
    return [Sample(f'obj_loc/{path}#{k}', (path,), localization_question(obj.name, rng),
                   format_object_description(obj) + '.')
            for path, objects, _ in view.images for k, obj in enumerate(objects)]


def action_prediction(view: _EpisodeView, rng: random.Random) -> list[Sample]:
    """act_pred: frame t and frame t+1's scene in the question; step t's sentence answers.

    The question ends with the action-format instruction of the episode's effector (the
    notebook reads the first step's flag) and the answer has no `Step k:` prefix.
    """
    episode = view.episode
    instruction = ACTION_INSTRUCTIONS[episode.effector]
    samples = []
    for t, _, after in view.transitions:
        path = frame_image_path(episode.episode_id, t)
        question = '\n'.join((IMAGE_TOKEN, rng.choice(ACT_PRED_PROMPTS).replace(
            '{scene}', view.scene(after)), instruction))
        samples.append(Sample(f'act_pred/{path}', (path,), question,
                              format_step(episode.steps[t], view.config.spacing)))
    return samples


def future_prediction(view: _EpisodeView, rng: random.Random) -> list[Sample]:
    """fut_pred: frame t and step t (as a clause) in the question; frame t+1's scene answers.

    The clause is the step sentence without its final period, first word lower-cased and
    whitespace runs collapsed to one space (the notebook splits and re-joins the words).
    """
    episode = view.episode
    samples = []
    for t, _, after in view.transitions:
        path = frame_image_path(episode.episode_id, t)
        words = format_step(episode.steps[t], view.config.spacing)[:-1].split()
        words[0] = words[0].lower()
        question = IMAGE_TOKEN + '\n' + rng.choice(FUT_PRED_PROMPTS).replace(
            '{pick up and drop}', ' '.join(words))
        samples.append(Sample(f'fut_pred/{path}', (path,), question, view.scene(after)))
    return samples


def spatial_relationship(view: _EpisodeView, rng: random.Random) -> list[Sample]:
    """spa_rel: every ordered pair of distinctly named objects in every image."""
    samples = []
    for path, objects, _ in view.images:
        pairs = spatial_samples(objects, rng, view.config.quirks)
        view.counts.duplicate_names += _duplicates(objects)
        samples.extend(Sample(f'spa_rel/{path}#{k}', (path,), question, answer)
                       for k, (question, answer) in enumerate(pairs))
    return samples


def temporal_relationship(view: _EpisodeView, rng: random.Random) -> list[Sample]:
    """tmp_rel: every ordered pair of objects across step t (frame t+1 given as text)."""
    samples = []
    for t, before, after in view.transitions:
        path = frame_image_path(view.episode.episode_id, t)
        pairs, left_out = temporal_samples(before, after, view.scene(after), rng,
                                           view.config.quirks)
        view.counts.objects_not_in_both_frames += left_out
        view.counts.duplicate_names += _duplicates(before)
        samples.extend(Sample(f'tmp_rel/{path}#{k}', (path,), question, answer)
                       for k, (question, answer) in enumerate(pairs))
    return samples


def _duplicates(objects: Sequence[ObjectDescription]) -> int:
    return len(objects) - len({obj.name for obj in objects})


_SETS = {AuxName.OBJ_DET: object_detection, AuxName.OBJ_LOC: object_localization,
         AuxName.ACT_PRED: action_prediction, AuxName.FUT_PRED: future_prediction,
         AuxName.SPA_REL: spatial_relationship, AuxName.TMP_REL: temporal_relationship}


def parse_ratios(items: Sequence[str], datasets: Sequence[AuxName]) -> dict[AuxName, float]:
    """`name=ratio` strings -> ratio per dataset (default 1.0, the notebook's example)."""
    ratios = dict.fromkeys(datasets, 1.0)
    for item in items:
        name, _, value = item.partition('=')
        try:
            aux, ratio = AuxName(name), float(value)
        except ValueError:
            raise ConfigError(f'--aux-ratio must be NAME=RATIO with NAME one of '
                              f'{[a.value for a in AuxName]}, got {item!r}') from None
        if aux not in ratios:
            raise ConfigError(f'--aux-ratio {item!r}: {name} is not among the chosen '
                              f'datasets {[a.value for a in datasets]}')
        if not 0.0 <= ratio < float('inf'):
            raise ConfigError(f'--aux-ratio {item!r}: the ratio must be a finite number >= 0')
        ratios[aux] = ratio
    return ratios


def mixture_name(main_stem: str, aux_stems: Sequence[str], ratios: Sequence[float],
                 split: str) -> str:
    """Name a mixture file as merge_dts does: `D-inBC-text-multi_aux-obj_det1-train-front.json`.

    Names joined by '_', then the ratios joined by '_' with no separator before them (as
    merge_dts writes it); a ratio prints as `1` or `0.5` (`:g`).
    """
    names = '_'.join((main_stem, *aux_stems))
    return f"{names}{'_'.join(f'{ratio:g}' for ratio in ratios)}-{split}-{VIEW}.json"


def mixture_picks(name: AuxName, main_samples: int, set_samples: int, ratio: float,
                  seed: int) -> tuple[int, set[int]]:
    """Choose one aux set's samples for a mixture, as merge_dts does: int(ratio * main) of them.

    Returns the requested count and the chosen indices into the set, drawn with
    random.Random(f'{seed}/mix/<name>'); a set shorter than requested is used whole.
    """
    requested = int(main_samples * ratio)
    rng = random.Random(f'{seed}/mix/{name.value}')
    return requested, set(rng.sample(range(set_samples), min(requested, set_samples)))
