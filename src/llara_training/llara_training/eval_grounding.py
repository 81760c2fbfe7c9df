"""Closed-loop grounding: which object each model step's pick and place points land on.

Success alone cannot show whether a weak policy is learning to ground objects (a model that
always picks the named object but places it beside the base scores 0). For every model step the
evaluator runs (executed, or parsed and then rejected), both points are looked up in the
segmentation of the frame the answer was made on: the model point goes to a camera pixel
through the env's own preprocess (`FramePreprocess.model_point_to_camera_pixel`, the inverse of
what made the model frame), and that pixel's body id names the object. A place also lands on
an object when the pixel lies within the object's outline (the convex hull of its pixels; the
smallest when several hold it): the inside of a frame, a square or a pallet shows the table,
and a place there is a place into that base. A pick counts only on the object's own pixels
(suction there grips nothing).

The relation to the task comes from the roles the task gave its objects when it built the scene
(`SceneObject.role`), never from names: a pick is 'target' on an object the task moves (role
'dragged': the prompt's {dragged_obj}), a place is 'target' on a base (role 'base': the prompt's
{base_obj}); 'other' is any other object (a distractor, or the base when picking), 'none' the
table. 'unknown': the object has no task role (the VIMA-Bench adapter gives every object role
'object': its segmentation names objects but not their part in the task) or the frame has no
segmentation of the camera's size. 'random': LLaRA's fallback action, not the model's. Tasks
without a base (rotate, rearrange) have no place target; pick_in_order_then_restore counts any
of its bases, sweep_without_exceeding its bounds and its constraint line alike.
"""
from collections.abc import Iterable
from dataclasses import dataclass, field

import cv2
import numpy as np

from llara_policy.errors import ConfigError
from llara_policy.geometry.preprocessing import FramePreprocess
from llara_policy.sim.episode import EpisodeInfo, SceneObject
from llara_policy.types import ActionStep, ImagePoint

TARGET, OTHER, NONE, UNKNOWN, RANDOM = 'target', 'other', 'none', 'unknown', 'random'
RELATIONS = (TARGET, OTHER, NONE, UNKNOWN)  # of a model step; RANDOM marks the fallback
PICK_ROLES = ('dragged',)  # what the task moves
PLACE_ROLES = ('base',)  # where it goes
TASK_ROLES = ('dragged', 'base', 'distractor')  # roles the embedded sim's tasks give
STEP_FIELDS = ('pick_object', 'pick_relation', 'place_object', 'place_relation')
NO_SEGMENTATION = 'unknown: the frame has no segmentation of the camera image size'


@dataclass(frozen=True)
class GroundingScene:
    """One answer's frame: its segmentation (body ids, -1 none), preprocess and objects."""

    segm: np.ndarray = field(compare=False, repr=False)
    preprocess: FramePreprocess
    objects: tuple[SceneObject, ...]

    def __post_init__(self):
        if not isinstance(self.preprocess, FramePreprocess):
            raise ConfigError(f'GroundingScene.preprocess must be a FramePreprocess, '
                              f'got {self.preprocess!r}')
        object.__setattr__(self, 'segm', np.asarray(self.segm))
        object.__setattr__(self, 'objects', tuple(self.objects))

    @property
    def has_segmentation(self) -> bool:
        """Whether the segmentation is (H, W) of the camera image the preprocess expects."""
        return self.segm.shape == (self.preprocess.camera_height_px,
                                   self.preprocess.camera_width_px)

    def body_at(self, point: ImagePoint) -> int:
        """Return the body id under a model point (the camera pixel whose centre is nearest)."""
        u, v = self.preprocess.model_point_to_camera_pixel(point)
        height, width = self.segm.shape
        column = min(max(int(np.floor(u + 0.5)), 0), width - 1)  # a point on the frame's
        row = min(max(int(np.floor(v + 0.5)), 0), height - 1)  # edge is its last pixel
        return int(self.segm[row, column])

    def body_within(self, point: ImagePoint) -> int:
        """Return the body under a model point, else the one whose outline holds it (-1: none)."""
        body = self.body_at(point)
        if body >= 0:
            return body
        u, v = (float(c) for c in self.preprocess.model_point_to_camera_pixel(point))
        holding = []
        for candidate in self.objects:
            rows, columns = np.nonzero(self.segm == candidate.body_id)
            if rows.size < 3:
                continue
            hull = cv2.convexHull(np.column_stack([columns, rows]).astype(np.float32))
            if cv2.pointPolygonTest(hull, (u, v), False) >= 0:
                holding.append((cv2.contourArea(hull), candidate.body_id))
        return min(holding)[1] if holding else -1

    def ground(self, point: ImagePoint, target_roles: tuple[str, ...],
               within: bool = False) -> tuple[str, str]:
        """(object name or '', relation) of a point for targets of `target_roles`.

        `within`: an object's outline counts too (places), not only its pixels (picks).
        """
        if not self.has_segmentation:
            return '', UNKNOWN
        body = self.body_within(point) if within else self.body_at(point)
        hit = next((o for o in self.objects if o.body_id == body), None)
        if hit is None:  # -1, or a body that is no object (the env masks those to -1)
            return '', NONE
        if hit.role not in TASK_ROLES:
            return hit.name, UNKNOWN
        return hit.name, TARGET if hit.role in target_roles else OTHER


def grounding_scene(env, segm) -> GroundingScene:
    """Return `env`'s current scene with the segmentation of the answer's frame."""
    return GroundingScene(segm, env.mapper.preprocess, env.info.objects)


def step_fields(scene: GroundingScene, step: ActionStep) -> dict:
    """Return a model step's record fields: what its pick and its place land on."""
    pick_object, pick_relation = scene.ground(step.pick, PICK_ROLES)
    place_object, place_relation = scene.ground(step.place, PLACE_ROLES, within=True)
    return {'pick_object': pick_object, 'pick_relation': pick_relation,
            'place_object': place_object, 'place_relation': place_relation}


def random_fields() -> dict:
    """Return the record fields of LLaRA's random fallback (not the model's, not counted)."""
    return {'pick_object': '', 'pick_relation': RANDOM, 'place_object': '',
            'place_relation': RANDOM}


def episode_fields(info: EpisodeInfo) -> dict:
    """Return the entry's summary: the task's pick and place targets, whether roles are known."""
    known = all(o.role in TASK_ROLES for o in info.objects)
    return {'pick_targets': [o.name for o in info.objects if o.role in PICK_ROLES],
            'place_targets': [o.name for o in info.objects if o.role in PLACE_ROLES],
            'roles': 'task' if known else 'unknown: the env gives no task roles'}


@dataclass(frozen=True)
class GroundingCounts:
    """Relations of the executed model steps of some entries.

    `picks`/`places` count each relation of the `model_steps` steps that recorded them;
    `not_recorded` are executed model steps without the fields (results written before they
    existed); `rejected` are model steps the envelope rejected (recorded, not counted here);
    `place_target` says whether any entry's task named a place target (or could not tell).
    `first_steps`, `first_picks`, `first_places`: the same for each episode's first executed
    model step alone (its first answer on the scene as the task set it; the later ones answer
    after a miss or a wrong move, with the history in the prompt).
    """

    model_steps: int
    picks: dict
    places: dict
    not_recorded: int
    rejected: int
    place_target: bool
    first_steps: int = 0
    first_picks: dict = field(default_factory=lambda: dict.fromkeys(RELATIONS, 0))
    first_places: dict = field(default_factory=lambda: dict.fromkeys(RELATIONS, 0))


def count_grounding(entries: Iterable[dict]) -> GroundingCounts:
    """Count the relations of the executed model steps of `entries` (old entries too)."""
    picks, places = dict.fromkeys(RELATIONS, 0), dict.fromkeys(RELATIONS, 0)
    first_picks, first_places = dict.fromkeys(RELATIONS, 0), dict.fromkeys(RELATIONS, 0)
    steps = not_recorded = rejected = first_steps = 0
    place_target = False
    for entry in entries:
        grounding = entry.get('grounding', {})  # an env without roles may have a target
        place_target |= bool(grounding.get('place_targets')) or grounding.get(
            'roles', 'task') != 'task'
        first = True
        for record in entry.get('actions', ()):
            if record.get('source') != 'model':
                continue
            if not record.get('executed'):
                rejected += bool(record.get('rejected'))
                continue
            if 'pick_relation' not in record:
                not_recorded += 1
                continue
            relations = (record['pick_relation'], record.get('place_relation'))
            if not set(relations) <= set(RELATIONS):
                raise ConfigError(f"{entry.get('tid', '?')} iteration "
                                  f"{record.get('iteration', '?')}: grounding {relations} is "
                                  f"not one of {RELATIONS}")
            steps += 1
            picks[relations[0]] += 1
            places[relations[1]] += 1
            if first:
                first, first_steps = False, first_steps + 1
                first_picks[relations[0]] += 1
                first_places[relations[1]] += 1
    return GroundingCounts(steps, picks, places, not_recorded, rejected, place_target,
                           first_steps, first_picks, first_places)
