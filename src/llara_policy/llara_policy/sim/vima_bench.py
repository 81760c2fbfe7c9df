"""`VimaBenchEnv`: the SimEnv interface over the real VIMA-Bench, when `vima_bench` is installed.

VIMA-Bench is not on PyPI (vimabench-spec C); `make vima` installs it. This adapter speaks its
public API (vimabench-spec A): `make(task, task_kwargs=PARTITION_TO_SPECS[...], modalities=['rgb',
'segm'], hide_arm_rgb=True)`, `env.seed(s)` before `reset()`, the front view, `env.prompt` /
`env.prompt_assets` turned into our TaskPrompt, `env.meta_info` for object names, actions as
VIMA's pose dicts. Two internals, both read by VIMA's own scripts: `task.goals` (its oracle
empties them when it gives up, which VIMA then reads as success: the adapter puts them back) and
the grasp result `task.primitive` returns to `env.step` (which does not report it). Model points
map through VIMA's fixed front-view map in `VimaEnvConfig.vima_mapping`'s convention. VIMA-Bench's
end effectors call pybullet without a client id, so one VIMA env per process (vimabench-spec
A.2): a second raises SimError. Actions are clipped to VIMA's own action-space bounds
(VIMA_X_RANGE_M / VIMA_Y_RANGE_M; its gym action space asserts them), not our safety envelope:
no arm of ours moves here.
"""
from dataclasses import dataclass, replace
import importlib
import math

import numpy as np
import pybullet as p

from llara_policy.errors import ConfigError, SimError
from llara_policy.execution import ModelFrameMapper, TableAction, table_action_from_step
from llara_policy.geometry.calibration import (
    vima_fixed_calibration,
)
from llara_policy.geometry.preprocessing import FramePreprocess
from llara_policy.geometry.vima_map import (
    VIMA_X_RANGE_M,
    VIMA_Y_RANGE_M,
    VimaFixedMap,
    check_vima_mapping,
    llara_rotation_from_yaw_delta,
    vima_table_to_model_point,
)
from llara_policy.sim.env import SimObservation, StepResult
from llara_policy.sim.episode import (
    EVAL_BONUS_STEPS,
    EpisodeInfo,
    OracleAction,
    Partition,
    Placeholder,
    PlaceholderKind,
    ReferenceImage,
    SceneObject,
    Split,
    TaskPrompt,
    object_boxes,
)
from llara_policy.types import ActionStep, Effector, check_int
from llara_policy.workspace import Workspace

INSTALL_HINT = ('VIMA-Bench is not installed (it is not on PyPI): git clone '
                'https://github.com/vimalabs/VIMABench, then make vima VIMA=<the clone>')
# VIMA's segmentation marks "no object" with 255 (vimabench-spec A.4).
_VIMA_SEGM_BACKGROUND = 255
# The spatula (sweep tasks) grasps nothing: a push "picked" when an object moved more than this.
_MOVED_M = 0.005
# VIMA-Bench's partitions and their tasks (vima_bench/tasks/partition_files/*.yaml, 97e0af1);
# the train split has the L1 tasks.
_L1_TASKS = ('follow_order', 'manipulate_old_neighbor', 'novel_adj', 'novel_noun',
             'pick_in_order_then_restore', 'rearrange', 'rearrange_then_restore', 'rotate',
             'same_shape', 'scene_understanding', 'sweep_without_exceeding', 'twist',
             'visual_manipulation')
VIMA_PARTITION_TASKS = {
    Partition.PLACEMENT: _L1_TASKS,
    Partition.COMBINATORIAL: _L1_TASKS,
    Partition.NOVEL_OBJECT: tuple(t for t in _L1_TASKS if t != 'sweep_without_exceeding'),
    Partition.NOVEL_TASK: ('follow_motion', 'novel_adj_and_noun', 'same_texture',
                           'sweep_without_touching'),
}
# The executor's envelope on VIMA-Bench: VIMA's action-position box (its gym action space) and
# no reach limit inside it. The executor rejects what lies outside; VIMA's own clip stays VIMA's.
VIMA_WORKSPACE = Workspace(
    x_min_m=VIMA_X_RANGE_M[0], x_max_m=VIMA_X_RANGE_M[1],
    y_min_m=VIMA_Y_RANGE_M[0], y_max_m=VIMA_Y_RANGE_M[1], reach_min_m=0.0,
    reach_max_m=math.hypot(VIMA_X_RANGE_M[1], max(abs(y) for y in VIMA_Y_RANGE_M)))
_open_envs = 0


def vima_bench_available() -> bool:
    """Whether `import vima_bench` works here."""
    return importlib.util.find_spec('vima_bench') is not None


@dataclass(frozen=True)
class VimaEnvConfig:
    """Task (VIMA name), partition, split, bonus steps and the model-point convention.

    Task kwargs come from VIMA's PARTITION_TO_SPECS; a task outside the partition is refused.
    `vima_mapping` (VIMA_MAPPINGS): 'unbiased' for our own data and models, 'llara' for LLaRA's
    released checkpoints (their arithmetic; picks land 3.8 mm toward -x/-y on average).
    """

    task: str = 'visual_manipulation'
    partition: Partition = Partition.PLACEMENT
    split: Split = Split.TEST
    bonus_steps: int = EVAL_BONUS_STEPS
    vima_mapping: str = 'unbiased'

    def __post_init__(self):
        for name, kind in (('partition', Partition), ('split', Split)):
            if not isinstance(getattr(self, name), kind):
                raise ConfigError(f'VimaEnvConfig.{name} must be a {kind.__name__}, '
                                  f'got {getattr(self, name)!r}')
        if self.split is Split.TRAIN and self.partition is not Partition.PLACEMENT:
            raise ConfigError(f'VIMA trains on its train specs, not {self.partition.value}')
        tasks = VIMA_PARTITION_TASKS[self.partition]
        if self.task not in tasks:
            raise ConfigError(f'VimaEnvConfig: task {self.task!r} is not in partition '
                              f'{self.partition.value} (its tasks: {", ".join(tasks)})')
        check_int('VimaEnvConfig.bonus_steps', self.bonus_steps, 0, error=ConfigError)
        check_vima_mapping('VimaEnvConfig.vima_mapping', self.vima_mapping)


class _GraspRecorder:
    """Wraps VIMA's task.primitive and keeps the grasp result env.step reads but does not report.

    VIMA's PickPlace returns (timeout, pick_success), pick_success being the suction's
    check_grasp() after lifting; the spatula's Push returns the timeout only.
    """

    def __init__(self, primitive):
        self.primitive = primitive
        self.grasped = None

    def __call__(self, *args, **kwargs):
        result = self.primitive(*args, **kwargs)
        if isinstance(result, tuple):
            self.grasped = bool(result[1])
        return result

    def __getattr__(self, name):
        return getattr(self.primitive, name)


def _hwc(chw: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.transpose(np.asarray(chw, dtype=np.uint8), (1, 2, 0)))


def _name(info) -> str:
    """Return LLaRA's object phrase 'TEXTURE NAME' (llara-spec 1.2), e.g. 'red letter R'.

    Prompt assets call the texture `obj_color`, meta_info `texture_name` (vimabench-spec A.5/6).
    """
    texture = info.get('obj_color', info.get('texture_name', ''))
    return f"{texture} {info['obj_name']}".strip()


class VimaBenchEnv:
    """reset(seed) -> SimObservation, step(TableAction) -> StepResult, over VIMA-Bench."""

    def __init__(self, config: VimaEnvConfig = VimaEnvConfig()):
        global _open_envs
        try:
            vima_bench = importlib.import_module('vima_bench')
        except ImportError:
            raise SimError(INSTALL_HINT) from None
        if _open_envs:
            raise SimError('VIMA-Bench allows one env per process (its end effectors use '
                           'pybullet client 0): close the other or use a subprocess')
        specs = vima_bench.PARTITION_TO_SPECS
        specs = specs['train'] if config.split is Split.TRAIN else specs['test'].get(
            config.partition.value, {})
        if config.task not in specs:
            raise ConfigError(f'VIMA-Bench has no task {config.task!r} in partition '
                              f'{config.partition.value} ({config.split.value} specs)')
        self.config = config
        self._env = vima_bench.make(config.task, task_kwargs=specs[config.task],
                                    modalities=['rgb', 'segm'], hide_arm_rgb=True)
        _open_envs += 1
        self._grasp = _GraspRecorder(self._env.task.primitive)
        self._env.task.primitive = self._grasp
        self.calibration = replace(vima_fixed_calibration(),
                                   mapping=VimaFixedMap(config.vima_mapping))
        self.mapper = ModelFrameMapper(self.calibration, FramePreprocess.full_frame(256, 128))
        self._obs = None
        self._steps = 0
        self._done = True

    def close(self) -> None:
        """Close the VIMA env (another may then be made in this process)."""
        global _open_envs
        if self._env is not None:
            self._env.close()
            self._env = None
            _open_envs -= 1

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @property
    def step_limit(self) -> int:
        """The task's oracle_max_steps plus the bonus steps."""
        return int(self._env.task.oracle_max_steps) + self.config.bonus_steps

    def reset(self, seed: int) -> SimObservation:
        """Seed VIMA's env and task generators, reset, and read prompt and object info."""
        self._env.seed(int(seed))
        self._obs = self._env.reset()
        self._steps = 0
        self._done = False
        meta = self._env.meta_info
        names = {int(i): _name(info) for i, info in meta['obj_id_to_info'].items()}
        objects = tuple(SceneObject(int(i), info['obj_name'], info.get('texture_name', ''),
                                    'object')
                        for i, info in sorted(meta['obj_id_to_info'].items()))
        effector = Effector.SPATULA if meta['end_effector_type'] == 'spatula' else (
            Effector.SUCTION)
        self.info = EpisodeInfo(
            task=self.config.task, partition=self.config.partition, seed=int(seed),
            prompt=self._prompt(), object_names=names, objects=objects,
            max_steps=int(self._env.task.oracle_max_steps), effector=effector)
        return self._observation(self._obs)

    def _prompt(self) -> TaskPrompt:
        """Return VIMA's template and its image placeholders, with names and boxes per asset."""
        placeholders = {}
        for key, asset in self._env.prompt_assets.items():
            segm = np.asarray(asset['segm']['front'], dtype=np.int32)
            info = asset['segm']['obj_info']
            infos = info if isinstance(info, list) else [info]
            names = {int(i['obj_id']): _name(i) for i in infos}
            kind = (PlaceholderKind.SCENE if asset['placeholder_type'] == 'scene'
                    else PlaceholderKind.OBJECT)
            reference = ReferenceImage(_hwc(asset['rgb']['front']), segm, names,
                                       object_boxes(segm, names))
            placeholders[key] = Placeholder(key, kind, tuple(names.values()), reference)
        return TaskPrompt(self._env.prompt, placeholders)

    def _observation(self, obs) -> SimObservation:
        segm = np.asarray(obs['segm']['front'], dtype=np.int32)
        keep = np.isin(segm, list(self.info.object_names)) & (segm != _VIMA_SEGM_BACKGROUND)
        return SimObservation(_hwc(obs['rgb']['front']), np.where(keep, segm, -1),
                              self.info.effector)

    def _positions(self) -> dict[int, np.ndarray]:
        return {i: np.array(p.getBasePositionAndOrientation(
            i, physicsClientId=self._env.client_id)[0]) for i in self.info.object_names}

    def step(self, action: TableAction) -> StepResult:
        """Send VIMA's action dict (place yaw from the change).

        Points are float32 and clipped to VIMA's own action-space bounds (VIMA_X_RANGE_M,
        VIMA_Y_RANGE_M), as the upstream scripts do; this is VIMA's contract, not a safety
        check (there is none to make: VIMA's simulated arm moves, not an arm of ours).
        """
        if self._done:
            raise SimError('the episode is over (or not started): call reset(seed)')
        half = math.radians(action.yaw_change_deg) / 2
        low = np.array([VIMA_X_RANGE_M[0], VIMA_Y_RANGE_M[0]], dtype=np.float32)
        high = np.array([VIMA_X_RANGE_M[1], VIMA_Y_RANGE_M[1]], dtype=np.float32)
        vima_action = {
            'pose0_position': np.clip(np.float32(action.pick_xy_m), low, high),
            'pose0_rotation': np.float32([0, 0, 0, 1]),
            'pose1_position': np.clip(np.float32(action.place_xy_m), low, high),
            'pose1_rotation': np.float32([0, 0, math.sin(half), math.cos(half)]),
        }
        before = self._positions()
        self._grasp.grasped = None
        self._obs, _, done, info = self._env.step(vima_action)
        picked = self._grasp.grasped
        if picked is None:  # the spatula: did the push move anything?
            after = self._positions()
            picked = any(np.linalg.norm(after[i] - before[i]) > _MOVED_M for i in before)
        self._steps += 1
        success, failure = bool(info['success']), bool(info['failure'])
        self._done = bool(done) or success or failure or self._steps >= self.step_limit
        return StepResult(self._observation(self._obs), success, failure, self._done, picked,
                          self._steps)

    def step_model(self, step: ActionStep) -> StepResult:
        """Map a model-frame step with the fixed VIMA map (as LLaRA's eval) and step."""
        return self.step(table_action_from_step(self.mapper, step))

    def oracle(self) -> OracleAction:
        """Return VIMA's own oracle step (`env.task.oracle(env).act`) in our frames.

        First retires the goals VIMA's own oracle loop would have (its scripts step with
        skip_oracle=False; `step` keeps VIMA's agent default, under which oracle-only goals such
        as rearrange's "move the distractor away" stay and the oracle later finds nothing to
        pick). Raises SimError when the oracle gives up (nothing to pick is visible); VIMA then
        empties the task's goals, which its success check reads as success, so they are put
        back: a later step succeeds only if it meets them.
        """
        if self._done:
            raise SimError('the episode is over (or not started): call reset(seed)')
        task = self._env.task
        task.update_goals(skip_oracle=False)
        goals = task.goals
        action = task.oracle(self._env).act(self._obs)
        if action is None:
            task.goals = goals
            raise SimError(f'the VIMA oracle found no visible object to pick '
                           f'({self.config.task}, step {self._steps + 1})')
        pick = tuple(float(v) for v in action['pose0_position'][:2])
        place = tuple(float(v) for v in action['pose1_position'][:2])
        yaw_change = math.degrees(_yaw(action['pose1_rotation']) - _yaw(action['pose0_rotation']))
        positions = self._positions()
        body = min(positions, key=lambda i: math.dist(positions[i][:2], pick))
        name = self.info.object_names[body]
        mapping = self.config.vima_mapping
        step = ActionStep(vima_table_to_model_point(*pick, mapping),
                          vima_table_to_model_point(*place, mapping),
                          llara_rotation_from_yaw_delta(yaw_change), object_text=name,
                          effector=self.info.effector)
        return OracleAction(TableAction(pick, place, yaw_change), step, name)


def _yaw(quat_xyzw) -> float:
    """Return the yaw (radians about +z) of a quaternion (x, y, z, w)."""
    x, y, z, w = (float(v) for v in quat_xyzw)
    return math.atan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z))
