"""`SimSession`: the embedded sim as one world that is both camera and arm (sim_node's core).

It owns a `SimEnv` and one lock that serialises every use of its pybullet world: a reset, a
step moved by an outside driver (the ROS executor over `env.arm`) and its bookkeeping
(`SimEnv.finish_step`), and the camera's frame, which is rendered after each reset and step and
handed out from under the lock. A frame asked for during a motion therefore waits for the
motion to end and shows the new scene. `drive()` names what the executor drives (the env's
SimArm); `sim.vima_session.VimaSession` is the same over VIMA-Bench. An oracle that gives up
(SimError, as VIMA's does) ends the episode as a failure, never a success. ROS-free: sim_node
wraps it.
"""
from collections.abc import Callable
from dataclasses import dataclass, replace
import threading
from typing import Any, Optional

import numpy as np

from llara_policy.arms.executor_types import ExecutionResult, ExecutorConfig
from llara_policy.errors import LlaraError, SimError
from llara_policy.execution import ModelFrameMapper
from llara_policy.sim.env import SIM_PICK_PLACE, SIM_SWEEP, SimEnv, SimEnvConfig
from llara_policy.sim.episode import SEED_RANGES, Split, check_seed
from llara_policy.text import prompting
from llara_policy.types import ActionStep
from llara_policy.workspace import Workspace


@dataclass(frozen=True)
class EpisodeState:
    """The current episode as SimStatus reports it.

    `note` says why an episode ended that neither the task nor the step limit ended (the
    oracle gave up); '' otherwise.
    """

    task: str
    partition: str
    seed: int
    steps: int
    max_steps: int
    success: bool
    done: bool
    note: str = ''


@dataclass(frozen=True)
class OraclePlan:
    """The oracle's next step as a perfect LLaRA model would answer it (parsed back)."""

    steps: tuple[ActionStep, ...]
    raw_text: str


@dataclass(frozen=True)
class Drive:
    """What an executor drives in a session.

    An `Arm` or a `TableActuator`, the mapper of the session's camera, the workspace and the
    executor's config defaults there.
    """

    arm: Any
    mapper: ModelFrameMapper
    workspace: Workspace
    defaults: ExecutorConfig


def split_of(seed: int) -> Split:
    """Return the split whose seed range holds `seed` (test seeds start at 1,000,000)."""
    return Split.TEST if seed in SEED_RANGES[Split.TEST] else Split.TRAIN


class SimSession:
    """One SimEnv episode at a time, shared by a camera and an executor in other threads."""

    def __init__(self, config: SimEnvConfig,
                 make_env: Callable[[SimEnvConfig], SimEnv] = SimEnv):
        self.lock = threading.RLock()
        self._make_env = make_env
        self.env = make_env(config)
        self._seed = -1
        self._steps, self._success, self._done = 0, False, True
        self._note = ''
        self._frame: Optional[np.ndarray] = None
        self.instruction = ''

    def close(self) -> None:
        """Release the world."""
        with self.lock:
            self.env.close()

    def drive(self, dry_run: bool) -> Drive:
        """Return what the executor drives now: the env's SimArm with the sim's primitives."""
        env = self.env
        return Drive(env.arm, env.mapper, env.config.workspace, ExecutorConfig(
            dry_run=dry_run, place_support_m=env.table_support_m, pick_place=SIM_PICK_PLACE,
            sweep=SIM_SWEEP))

    def reset(self, seed: int, task: str = '') -> bool:
        """Start an episode (task '' keeps the current one); True when the env was rebuilt.

        The env is rebuilt when the task or the seed's split changes (an arm, a world and a
        mapper of its own: drivers must take the new `drive()`). ConfigError for a seed the
        partition does not allow, or a task not in it, before anything is closed.
        """
        with self.lock:
            split = split_of(seed)
            check_seed(split, self.env.config.partition, seed)  # before the env is rebuilt
            config = replace(self.env.config, task=task or self.env.config.task, split=split)
            rebuilt = config != self.env.config
            if rebuilt:
                self._done = True
                self._rebuild(config)
            self._frame = self.env.reset(seed).rgb
            self._seed = int(seed)
            self._steps, self._success, self._done, self._note = 0, False, False, ''
            prompt = self.env.info.prompt
            self.instruction = prompting.build_task_text(
                prompt.template, prompt.references(), prompting.DescriptionMode.NAMES)
            return rebuilt

    def _rebuild(self, config) -> None:
        """Close the env, make one for `config`; if that fails, the old task's again (locked).

        One world at a time (VIMA-Bench allows one env per process), so the old one is closed
        first; the error is re-raised once the old task is served again.
        """
        old = self.env.config
        self.env.close()
        try:
            self.env = self._make_env(config)
        except LlaraError:
            self.env = self._make_env(old)
            raise

    def frame(self) -> np.ndarray:
        """Return the current scene's frame (model frame RGB); waits while the world moves."""
        with self.lock:
            if self._frame is None:
                raise SimError('no episode yet: call sim/reset first')
            return self._frame

    def run_step(self, execute: Callable[[], ExecutionResult]) -> ExecutionResult:
        """Run a driver's step on `env.arm` and score it (SimEnv.finish_step) if it moved.

        SimError before any motion when the episode is over. A step that raises after moving
        the arm is not counted, but the frame is rendered again so the camera shows the truth.
        A missed pick (`result.missed_pick`) is counted as a step that gripped nothing, as
        `SimEnv.step` and LLaRA's evaluation count it.
        """
        with self.lock:
            if self._done:
                raise SimError('the episode is over (or not started): call sim/reset')
            calls = len(getattr(self.env.arm, 'calls', ()))
            try:
                result = execute()
            except BaseException:
                if len(getattr(self.env.arm, 'calls', ())) != calls:
                    self._frame = self.env.observe().rgb
                raise
            if not result.dry_run:
                outcome = self.env.finish_step(picked=not result.missed_pick)
                self._frame = outcome.obs.rgb
                self._steps, self._success, self._done = (outcome.steps, outcome.success,
                                                          outcome.done)
            return result

    def state(self) -> EpisodeState:
        """Return the episode's task, seed, steps and outcome so far."""
        with self.lock:
            config = self.env.config
            return EpisodeState(config.task, config.partition.value, self._seed, self._steps,
                                self.env.step_limit, self._success, self._done, self._note)

    def oracle_plan(self) -> Optional[OraclePlan]:
        """Return the oracle's next step in LLaRA's text (Step k, k = steps + 1); None if done.

        An oracle that gives up (SimError: VIMA's finds nothing to pick) ends the episode as a
        failure, as VIMA's own oracle loop does; `state().note` says so. No later step runs,
        so none can be reported as a success.
        """
        with self.lock:
            if self._done:
                return None
            try:
                oracle = self.env.oracle()
            except SimError as error:
                self._done, self._success = True, False
                self._note = f'the oracle gave up, the episode ends as a failure: {error}'
                return None
            step = replace(oracle.step, step_number=self._steps + 1)
        raw_text = prompting.format_answer([step])
        return OraclePlan(prompting.parse_answer(raw_text).steps, raw_text)
