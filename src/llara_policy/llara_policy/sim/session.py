"""`SimSession`: the embedded sim as one world that is both camera and arm (sim_node's core).

It owns a `SimEnv` and one lock that serialises every use of its pybullet world: a reset, a
step moved by an outside driver (the ROS executor over `env.arm`) and its bookkeeping
(`SimEnv.finish_step`), and the camera's frame, which is rendered after each reset and step and
handed out from under the lock. A frame asked for during a motion therefore waits for the
motion to end and shows the new scene. ROS-free: sim_node wraps it.
"""
from collections.abc import Callable
from dataclasses import dataclass, replace
import threading
from typing import Optional

import numpy as np

from llara_policy.arms.executor import ExecutionResult
from llara_policy.errors import SimError
from llara_policy.sim.env import SimEnv, SimEnvConfig
from llara_policy.sim.episode import SEED_RANGES, Split, check_seed
from llara_policy.text import prompting
from llara_policy.types import ActionStep


@dataclass(frozen=True)
class EpisodeState:
    """The current episode as SimStatus reports it."""

    task: str
    partition: str
    seed: int
    steps: int
    max_steps: int
    success: bool
    done: bool


@dataclass(frozen=True)
class OraclePlan:
    """The oracle's next step as a perfect LLaRA model would answer it (parsed back)."""

    steps: tuple[ActionStep, ...]
    raw_text: str


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
        self._frame: Optional[np.ndarray] = None
        self.instruction = ''

    def close(self) -> None:
        """Release the world."""
        with self.lock:
            self.env.close()

    def reset(self, seed: int, task: str = '') -> bool:
        """Start an episode (task '' keeps the current one); True when the env was rebuilt.

        The env is rebuilt when the task or the seed's split changes (an arm, a world and a
        mapper of its own: drivers must take the new `env.arm`). ConfigError for a seed the
        partition does not allow.
        """
        with self.lock:
            config = replace(self.env.config, task=task or self.env.config.task,
                             split=split_of(seed))
            check_seed(config.split, config.partition, seed)  # before the env is rebuilt
            rebuilt = config != self.env.config
            if rebuilt:
                self.env.close()
                self._done = True
                self.env = self._make_env(config)
            self._frame = self.env.reset(seed).rgb
            self._seed = int(seed)
            self._steps, self._success, self._done = 0, False, False
            prompt = self.env.info.prompt
            self.instruction = prompting.build_task_text(
                prompt.template, prompt.references(), prompting.DescriptionMode.NAMES)
            return rebuilt

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
                outcome = self.env.finish_step(picked=True)
                self._frame = outcome.obs.rgb
                self._steps, self._success, self._done = (outcome.steps, outcome.success,
                                                          outcome.done)
            return result

    def state(self) -> EpisodeState:
        """Return the episode's task, seed, steps and outcome so far."""
        with self.lock:
            config = self.env.config
            return EpisodeState(config.task, config.partition.value, self._seed, self._steps,
                                self.env.step_limit, self._success, self._done)

    def oracle_plan(self) -> Optional[OraclePlan]:
        """Return the oracle's next step in LLaRA's text (Step k, k = steps + 1); None if done."""
        with self.lock:
            if self._done:
                return None
            step = replace(self.env.oracle().step, step_number=self._steps + 1)
        raw_text = prompting.format_answer([step])
        return OraclePlan(prompting.parse_answer(raw_text).steps, raw_text)
