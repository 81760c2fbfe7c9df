"""The one episode type every source produces and every converter reads.

An `Episode` is what LLaRA's converters need from a trajectory (llara-spec sections 1 and 4):
the task prompt (template + placeholders with reference images, so inBC and D-inBC text can both
be written), T observations in the model frame (RGB and, where known, a segmentation with object
boxes for the auxiliary datasets), and the T-1 expert steps that were executed between them, in
LLaRA's model-frame form (`ActionStep`, object phrase = the manipulated object's name). The
sources (`sources/`: the embedded sim's oracle, VIMA-Data folders, recorded rosbag2 sessions)
differ only in how they fill it; `episode_store` writes and reads it on disk.
"""
from collections.abc import Mapping
from dataclasses import dataclass, field
import enum

import numpy as np

from llara_policy.errors import ConfigError
from llara_policy.sim.episode import TaskPrompt
from llara_policy.types import ActionStep, Effector, ObjectDescription


class EpisodeSource(enum.Enum):
    """Where an episode came from."""

    SIM = 'sim'              # the embedded sim's oracle rollouts (sources/sim_rollouts.py)
    VIMA_DATA = 'vima_data'  # VIMA-Data trajectory folders (sources/vima_data.py)
    ROSBAG = 'rosbag'        # recorded sessions of the ROS graph (sources/rosbag.py)


class LabelMapping(enum.Enum):
    """How the steps' model points were made from table positions (geometry/vima_map.py).

    LLARA: int()-truncated pixels (LLaRA's arithmetic; VIMA-Data converted for released
    checkpoints); UNBIASED: pixel centres (our default); CALIBRATION: a real camera's calibration
    (recorded robot sessions).
    """

    LLARA = 'llara'
    UNBIASED = 'unbiased'
    CALIBRATION = 'calibration'


@dataclass(frozen=True)
class Frame:
    """One observation in the model frame.

    `rgb` is (H, W, 3) uint8; `segm` is (H, W) int32 body ids with -1 for background, or an
    array of shape (0, 0) when the source has no segmentation (recordings); `objects` are the
    named, visible objects' boxes (LLaRA's rule, `llara_policy.sim.episode.object_boxes`), empty
    without a segmentation unless a detector filled them.
    """

    rgb: np.ndarray = field(compare=False, repr=False)
    segm: np.ndarray = field(compare=False, repr=False)
    objects: tuple[ObjectDescription, ...] = ()

    def __post_init__(self):
        rgb, segm = np.asarray(self.rgb), np.asarray(self.segm)
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ConfigError(f'Frame.rgb must be (H, W, 3) uint8, got {rgb.shape} {rgb.dtype}')
        if segm.size and segm.shape != rgb.shape[:2]:
            raise ConfigError(f'Frame.segm must be {rgb.shape[:2]} (or empty), got {segm.shape}')

    @property
    def has_segmentation(self) -> bool:
        """Whether `segm` is a real segmentation (boxes can be computed from it)."""
        return bool(np.asarray(self.segm).size)


@dataclass(frozen=True)
class Episode:
    """One trajectory: prompt, T frames and the T-1 steps executed between them.

    Args:
        episode_id: Unique, file-name safe id (e.g. 'sim-rotate-0000123'); samples are named
            '<episode_id>_<i>' as LLaRA names them '<episode>_<i>'.
        source: The EpisodeSource.
        task: VIMA task name (e.g. 'rotate'), or the recording's task label.
        seed: The seed that generated the episode; a recording's episode index.
        prompt: The task prompt; a recording without placeholders has its instruction as the
            template and no placeholders.
        effector: Suction (pick and place) or spatula (sweep), for the whole episode.
        frames: The T >= 2 observations, frames[i] before steps[i].
        steps: The T-1 executed expert steps in the model frame; `object_text` is the
            manipulated object's name ('' when unknown), `step_number` is i + 1.
        success: Whether the episode reached its goal.
        label_mapping: How the steps' points were labelled (LabelMapping).
        object_names: Segmentation body id -> object name, for boxes in every frame.
    """

    episode_id: str
    source: EpisodeSource
    task: str
    seed: int
    prompt: TaskPrompt
    effector: Effector
    frames: tuple[Frame, ...]
    steps: tuple[ActionStep, ...]
    success: bool
    label_mapping: LabelMapping = LabelMapping.UNBIASED
    object_names: Mapping[int, str] = field(default_factory=dict)

    def __post_init__(self):
        if not self.episode_id or any(c in self.episode_id for c in '/\\ \n'):
            raise ConfigError(f'Episode.episode_id must be a non-empty file-name-safe string, '
                              f'got {self.episode_id!r}')
        for name, kind in (('source', EpisodeSource), ('effector', Effector),
                           ('label_mapping', LabelMapping)):
            if not isinstance(getattr(self, name), kind):
                raise ConfigError(f'Episode.{name} must be a {kind.__name__}, '
                                  f'got {getattr(self, name)!r}')
        object.__setattr__(self, 'frames', tuple(self.frames))
        object.__setattr__(self, 'steps', tuple(self.steps))
        if len(self.frames) != len(self.steps) + 1 or not self.steps:
            raise ConfigError(f'Episode {self.episode_id}: needs T >= 2 frames and T-1 steps, '
                              f'got {len(self.frames)} frames and {len(self.steps)} steps')

    @property
    def transitions(self) -> int:
        """The number of executed steps (T - 1)."""
        return len(self.steps)
