"""`SimEnv`: a VIMA-style task in the sim world, stepped through the same arm code as the robot.

`reset(seed)` builds a task scene and returns the first front-camera frame; `step(action)` checks
the action against the safety envelope (`SimEnvConfig.workspace`), runs
`arms.primitives.pick_and_place` on a `SimArm` (the executor's code path with a simulated arm)
and scores the task. By default a place knows only the table height, as a real executor does.
`step_model` takes LLaRA's model-frame `ActionStep` and maps it through the sim camera's
calibration exactly as the executor maps a real camera's points; `oracle()` gives
the scripted expert's next step in both frames. One env owns two pybullet clients (scene and
reference images), so several envs run side by side in one process.
"""
from dataclasses import dataclass, field
import math

import numpy as np

from llara_policy.arms.base import CODE_SUCTION_TIMEOUT, STATE_READY
from llara_policy.arms.primitives import (
    PickPlaceConfig,
    SweepConfig,
    enable,
    go_home,
    pick_and_place,
    sweep,
)
from llara_policy.errors import ArmError, ConfigError, SimError
from llara_policy.execution import ModelFrameMapper, TableAction, table_action_from_step
from llara_policy.geometry.calibration_checks import check_workspace_fit
from llara_policy.geometry.preprocessing import FramePreprocess
from llara_policy.geometry.transforms import BasePoint
from llara_policy.geometry.vima_map import llara_rotation_from_yaw_delta
from llara_policy.sim.arm import SimArm, SimArmConfig
from llara_policy.sim.camera import front_camera
from llara_policy.sim.episode import (
    EVAL_BONUS_STEPS,
    EpisodeInfo,
    OracleAction,
    Partition,
    Split,
    TaskPrompt,
    check_seed,
)
from llara_policy.sim.objects import COLOURS, Role, shape
from llara_policy.sim.task_base import Progress, TaskContext, vocabulary
from llara_policy.sim.tasks import TASKS, make_task
from llara_policy.sim.world import SimWorld, WorldConfig
from llara_policy.types import (
    MODEL_FRAME_HEIGHT_PX,
    MODEL_FRAME_WIDTH_PX,
    ActionStep,
    Effector,
    ImagePoint,
    check_int,
)
from llara_policy.workspace import Workspace, check_table_action

# A scene whose random layout found no room is re-drawn (same rng, so still deterministic).
_BUILD_ATTEMPTS = 5
# The sim's primitive speeds: simulated time costs physics steps, not wall time, so the sim arm
# moves at speeds an xArm6 can do (<= 1000 mm/s) but faster than a careful real set-up.
SIM_PICK_PLACE = PickPlaceConfig(travel_speed_mm_s=600.0, approach_speed_mm_s=300.0,
                                 probe_speed_mm_s=120.0)
SIM_SWEEP = SweepConfig(travel_speed_mm_s=600.0, approach_speed_mm_s=300.0,
                        push_speed_mm_s=120.0)
# An object that moved more than this during a push was swept.
_MOVED_M = 0.005
# Where a place's support height comes from: the table alone (what a real executor knows) or
# the simulator's ground truth (the surface under the place point, objects included).
PLACE_HEIGHTS = ('table', 'ground_truth')
# Added to the object set's tallest support (place_height='table'): 1 mm to spare.
SUPPORT_MARGIN_M = 0.001


@dataclass(frozen=True)
class SimEnvConfig:
    """Which task, partition and seed split; renderer; safety envelope; arm and primitives.

    The step limit is the task's VIMA oracle_max_steps plus `bonus_steps` (VIMA's evaluation
    allows 2; LLaRA's evaluation caps episodes at 8 steps instead). `workspace` is the safety
    envelope every action is checked against (defaults: the sim's task area). `place_height`
    says what a place knows of the support under it: 'table' (default; the executor's view:
    the table height plus the tallest support of the partition's object set, the same for
    every place; see `SimEnv.table_support_m`) or 'ground_truth' (the simulator's surface
    height under the place point in the current scene).
    """

    task: str = 'visual_manipulation'
    partition: Partition = Partition.PLACEMENT
    split: Split = Split.TRAIN
    renderer: str = 'auto'
    bonus_steps: int = EVAL_BONUS_STEPS
    settle_steps: int = 480
    workspace: Workspace = Workspace()
    place_height: str = 'table'
    pick_place: PickPlaceConfig = SIM_PICK_PLACE
    sweep: SweepConfig = SIM_SWEEP
    arm: SimArmConfig = SimArmConfig()

    def __post_init__(self):
        for name, allowed in (('task', tuple(sorted(TASKS))),
                              ('renderer', ('auto', 'egl', 'tiny')),
                              ('place_height', PLACE_HEIGHTS)):
            if getattr(self, name) not in allowed:
                raise ConfigError(f'SimEnvConfig.{name} must be one of {allowed}, '
                                  f'got {getattr(self, name)!r}')
        for name, kind in (('partition', Partition), ('split', Split), ('workspace', Workspace),
                           ('pick_place', PickPlaceConfig), ('sweep', SweepConfig),
                           ('arm', SimArmConfig)):
            if not isinstance(getattr(self, name), kind):
                raise ConfigError(f'SimEnvConfig.{name} must be a {kind.__name__}, '
                                  f'got {getattr(self, name)!r}')
        if self.partition is Partition.NOVEL_TASK:  # L4's tasks exist in VIMA-Bench only
            raise ConfigError(f'SimEnvConfig: task {self.task!r} is not in partition '
                              f'{self.partition.value} (the embedded sim has no L4 task)')
        check_int('SimEnvConfig.bonus_steps', self.bonus_steps, 0, error=ConfigError)
        check_int('SimEnvConfig.settle_steps', self.settle_steps, 0, error=ConfigError)


@dataclass(frozen=True)
class SimObservation:
    """The policy's view of one moment.

    `rgb` is the model frame (H, W, 3) uint8; `segm` its segmentation (H, W) int32 of body ids
    (-1: none; `EpisodeInfo.object_names` names them); `effector` the end effector.
    """

    rgb: np.ndarray = field(compare=False, repr=False)
    segm: np.ndarray = field(compare=False, repr=False)
    effector: Effector = Effector.SUCTION


@dataclass(frozen=True)
class StepResult:
    """The outcome of one step.

    The new frame, VIMA's success/failure, whether the episode is over, whether the suction
    gripped something, and the number of steps taken so far.
    """

    obs: SimObservation
    success: bool
    failure: bool
    done: bool
    picked: bool
    steps: int


class SimEnv:
    """A task episode in the sim: reset(seed) -> observation, step(action) -> result."""

    def __init__(self, config: SimEnvConfig = SimEnvConfig()):
        self.config = config
        self.task = make_task(config.task)
        self.camera = front_camera()
        self.calibration = self.camera.calibration()
        preprocess = FramePreprocess.full_frame(MODEL_FRAME_WIDTH_PX, MODEL_FRAME_HEIGHT_PX)
        self.mapper = ModelFrameMapper(self.calibration, preprocess)
        # The start-up check a real executor makes, before any world exists: a camera that
        # cannot see the workspace, or a table height that disagrees with it, is refused.
        self.workspace_fit = check_workspace_fit(self.calibration, config.workspace, preprocess)
        self.world = SimWorld(WorldConfig(config.renderer, effector=self.task.effector))
        # Reference images always use TinyRenderer: the EGL plugin is one per process, and the
        # scene's frames have the better claim to it.
        self._reference_world = SimWorld(WorldConfig('tiny', with_robot=False))
        self.arm = SimArm(self.world, config.arm)
        self.table_support_m = tallest_support_m(self._reference_world,
                                                 vocabulary(config.partition).bases)
        self._setup = None
        self._progress = Progress()
        self._done = True

    @property
    def info(self) -> EpisodeInfo:
        """Return the current episode's prompt, objects and limits (after reset)."""
        if self._setup is None:
            raise SimError('no episode yet: call reset(seed) first')
        return self._info

    @property
    def step_limit(self) -> int:
        """Return the steps allowed per episode: the task's max_steps plus the bonus steps."""
        return self.task.max_steps + self.config.bonus_steps

    def close(self) -> None:
        """Release both pybullet clients."""
        self.world.close()
        self._reference_world.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def reset(self, seed: int) -> SimObservation:
        """Build the task's scene for `seed` (same seed, same scene and pixels); first frame."""
        check_seed(self.config.split, self.config.partition, seed)
        rng = np.random.default_rng(seed)
        for attempt in range(_BUILD_ATTEMPTS):
            self.world.reset()
            self.arm.world_was_reset()
            ctx = TaskContext(self.world, self._reference_world, self.camera, rng,
                              vocabulary(self.config.partition))
            try:
                self._setup = self.task.build(ctx)
                break
            except SimError:
                if attempt == _BUILD_ATTEMPTS - 1:
                    raise
        self.world.settle(self.config.settle_steps)
        if self.arm.state != STATE_READY or self.arm.error_code:
            enable(self.arm, self.config.workspace)
        self._progress = Progress()
        self._done = False
        setup = self._setup
        self._info = EpisodeInfo(
            task=self.task.name, partition=self.config.partition, seed=int(seed),
            prompt=TaskPrompt(setup.template, setup.placeholders),
            object_names={obj.body_id: obj.name for obj in setup.objects},
            objects=setup.objects, max_steps=self.task.max_steps, effector=self.task.effector)
        return self.observe()

    def observe(self) -> SimObservation:
        """Render the front camera now (the arm is at home, out of view, between steps)."""
        rgb, segm = self.world.render(self.camera)
        names = self._info.object_names if self._setup is not None else {}
        segm = np.where(np.isin(segm, list(names)), segm, -1).astype(np.int32)
        return SimObservation(rgb, segm, self.task.effector)

    def step(self, action: TableAction) -> StepResult:
        """Execute one pick-and-place (or push) after checking it against the workspace.

        An action outside the envelope (`check_table_action`: pick or place outside the box or
        the reach, a yaw change over the limit) raises UnsafeTargetError before the arm moves;
        nothing is clipped. A rejected action is not a step: the step count, the episode and
        the scene stay as they were, and the caller may send another action.
        """
        if self._done:
            raise SimError('the episode is over (or not started): call reset(seed)')
        check_table_action(self.config.workspace, action)
        pick, place = action.pick_xy_m, action.place_xy_m
        if self.task.effector is Effector.SPATULA:
            picked = self._sweep(pick, place)
        else:
            picked = self._pick_and_place(pick, place, action.yaw_change_deg)
        return self.finish_step(picked)

    def finish_step(self, picked: bool = True) -> StepResult:
        """Settle the objects, count one step and score the task: `step` after its motion.

        A driver that moves `self.arm` itself (the ROS executor, through the Arm protocol)
        calls this after each motion to learn success, failure and whether the episode is over.
        """
        if self._done:
            raise SimError('the episode is over (or not started): call reset(seed)')
        self.world.settle(self.config.settle_steps)
        self._progress.steps += 1
        success, failure = self.task.score(self.world, self._setup, self._progress)
        self._done = success or failure or self._progress.steps >= self.step_limit
        return StepResult(self.observe(), success, failure, self._done, picked,
                          self._progress.steps)

    def place_support_m(self, pick_xy_m, place_xy_m) -> float:
        """Return the support height (m) a place assumes, by `SimEnvConfig.place_height`.

        'table': the table height plus `table_support_m`, the same everywhere (a real executor
        knows no more). 'ground_truth': the simulator's highest surface under the held object's
        footprint at the place, the picked object itself excluded.
        """
        table_z = self.config.workspace.table_z_m
        if self.config.place_height == 'table':
            return table_z + self.table_support_m
        picked_body = self.world.top_body(pick_xy_m)
        held = self.world.objects.get(picked_body)
        radius = held.radius_m() if held is not None and held.role is Role.DRAGGED else 0.0
        return table_z + self.world.surface_height(place_xy_m, radius, exclude=(picked_body,))

    def _pick_and_place(self, pick, place, yaw_change_deg: float) -> bool:
        """Run the suction primitive; return whether it gripped (a miss is not an error).

        A miss (code 41) leaves the primitive's own recovery (suction off, cup lifted above
        the pick) and the env sends the arm home, out of the camera's view, for the next frame.
        """
        table_mm = self.config.workspace.table_z_m * 1000
        place_mm = self.place_support_m(pick, place) * 1000
        try:
            pick_and_place(self.arm, self.config.workspace,
                           (pick[0] * 1000, pick[1] * 1000, table_mm),
                           (place[0] * 1000, place[1] * 1000, place_mm),
                           yaw_change_deg, self.config.pick_place)
        except ArmError as error:
            if error.code != CODE_SUCTION_TIMEOUT:
                raise
            go_home(self.arm, self.config.workspace, self.config.pick_place)
            return False
        return True

    def _sweep(self, start, end) -> bool:
        """Run the spatula push; return whether it moved an object."""
        before = {b: self.world.object_pose(b)[0] for b in self.world.objects}
        table_mm = self.config.workspace.table_z_m * 1000
        if math.dist(start, end) > 1e-6:
            sweep(self.arm, self.config.workspace, (start[0] * 1000, start[1] * 1000, table_mm),
                  (end[0] * 1000, end[1] * 1000, table_mm), self.config.sweep)
        return any(np.linalg.norm(self.world.object_pose(b)[0] - before[b]) > _MOVED_M
                   for b in before)

    def step_model(self, step: ActionStep) -> StepResult:
        """Execute LLaRA's model-frame step through the calibration (the executor's path).

        As `step`: a step whose base-frame mapping leaves the workspace raises
        UnsafeTargetError with no motion and is not counted.
        """
        return self.step(table_action_from_step(self.mapper, step))

    def model_point(self, xy_m) -> ImagePoint:
        """Return the normalized model-frame point of a table point (z = 0)."""
        return self.mapper.base_to_model_point(BasePoint(float(xy_m[0]), float(xy_m[1]), 0.0))

    def oracle(self) -> OracleAction:
        """Return the scripted expert's next step, robot frame and LLaRA's ActionStep."""
        if self._done:
            raise SimError('the episode is over (or not started): call reset(seed)')
        goal = self.task.oracle_goal(self.world, self._setup, self._progress)
        position, yaw = self.world.object_pose(goal.body_id)
        kind = self.world.objects[goal.body_id]
        grasp = np.array(kind.grasp_xy_m())
        yaw_change = 0.0
        if goal.check_yaw:
            # Rounded to 0.1 degree: settling jitter must not turn a 90 degree turn into
            # 89.9995, which LLaRA's truncating label would write as 89.
            yaw_change = round(math.degrees(math.remainder(goal.yaw_rad - yaw, 2 * math.pi)), 1)
        pick = position[:2] + _rotate(grasp, yaw)
        place = np.array(goal.xy_m) + _rotate(grasp, yaw + math.radians(yaw_change))
        action = TableAction((float(pick[0]), float(pick[1])), (float(place[0]), float(place[1])),
                             yaw_change)
        name = self._info.object_names[goal.body_id]
        step = ActionStep(self.model_point(pick), self.model_point(place),
                          llara_rotation_from_yaw_delta(yaw_change), object_text=name,
                          effector=self.task.effector)
        return OracleAction(action, step, name)


def tallest_support_m(world: SimWorld, base_names) -> float:
    """Return the tallest support above the table an object of the set offers, plus the margin.

    What a real executor is configured with once for its object set (measured with a ruler):
    each base is measured alone on a bare table at its centre (its floor, or the pallet's top),
    never in a scene. With place_height='table' every release assumes this support, so a held
    object never meets a support before it is released; on the bare table it drops this much
    more than with ground truth. The world is reset afterwards.
    """
    tallest = 0.0
    for name in base_names:
        world.reset()
        world.add_object(shape(name), COLOURS['red'], (0.35, 0.0, 0.0), 0.0)
        tallest = max(tallest, world.surface_height((0.35, 0.0)))
    world.reset()
    return tallest + SUPPORT_MARGIN_M


def _rotate(xy: np.ndarray, yaw_rad: float) -> np.ndarray:
    c, s = math.cos(yaw_rad), math.sin(yaw_rad)
    return np.array([c * xy[0] - s * xy[1], s * xy[0] + c * xy[1]])
