"""`VimaSession`: sim_node's session over VIMA-Bench; its env is the camera and the arm.

VIMA's env.step runs a whole pick-and-place (or push) itself, so the executor drives it as a
`TableActuator` (`VimaActuator`): the executor maps the model step through VIMA's fixed map,
checks the table action against `VIMA_WORKSPACE` (VIMA's action box: rejected, never clipped,
by us) and makes one call, which is one VIMA step. The session scores that step with VIMA's
own success, failure and done, and serves VIMA's front view (256x128) as the camera frame. One
VIMA env per process: another task closes the env before the new one is made.
"""
from collections.abc import Callable
from typing import Optional

from llara_policy.arms.executor_types import ExecutionResult, ExecutorConfig
from llara_policy.errors import ArmError, LlaraError, SimError
from llara_policy.execution import TableAction
from llara_policy.sim.env import StepResult
from llara_policy.sim.session import Drive, SimSession
from llara_policy.sim.vima_bench import VIMA_WORKSPACE, VimaBenchEnv, VimaEnvConfig
from llara_policy.types import Effector

# xarm-python-sdk's "end-effector error" (arms/base.py API_CODES): the step asks for a tool
# the task's arm does not carry.
_CODE_END_EFFECTOR = 102


class VimaActuator:
    """A `TableActuator` over one VimaBenchEnv: one `execute_table_action` is one VIMA step.

    The StepResult of the last call waits in `take_outcome()` for the session to score it.
    """

    def __init__(self, env: VimaBenchEnv):
        self.env = env
        self._outcome: Optional[StepResult] = None

    def execute_table_action(self, action: TableAction, effector: Effector) -> None:
        """Send the action to VIMA's env.step (VIMA clips to its bounds, as its scripts do).

        ArmError (code 102) for a step whose effector is not the task's; SimError when the
        episode is over or VIMA-Bench itself fails (its exception chained).
        """
        tool = self.env.info.effector
        if effector is not tool:
            raise ArmError(f'VIMA-Bench task {self.env.config.task!r} uses the {tool.value}; '
                           f'a {effector.value} step cannot run on it', _CODE_END_EFFECTOR)
        try:
            self._outcome = self.env.step(action)
        except LlaraError:
            raise
        except Exception as error:  # VIMA-Bench and pybullet raise untyped errors
            raise SimError(f'VIMA-Bench env.step failed: {type(error).__name__}: '
                           f'{error}') from error

    def take_outcome(self) -> Optional[StepResult]:
        """Return the last call's StepResult once (None when no step ran since)."""
        outcome, self._outcome = self._outcome, None
        return outcome

    def emergency_stop(self) -> None:
        """Nothing to halt: a VIMA step runs to its end inside one call.

        The executor's stop() faults it, so no further step runs until its reset.
        """


class VimaSession(SimSession):
    """One VimaBenchEnv episode at a time, shared by a camera and an executor."""

    def __init__(self, config: VimaEnvConfig,
                 make_env: Callable[[VimaEnvConfig], VimaBenchEnv] = VimaBenchEnv):
        super().__init__(config, make_env)
        self.actuator = VimaActuator(self.env)

    def _rebuild(self, config: VimaEnvConfig) -> None:
        super()._rebuild(config)
        self.actuator = VimaActuator(self.env)

    def drive(self, dry_run: bool) -> Drive:
        """Return what the executor drives: the actuator, VIMA's fixed map, VIMA's box."""
        return Drive(self.actuator, self.env.mapper, VIMA_WORKSPACE,
                     ExecutorConfig(dry_run=dry_run))

    def run_step(self, execute: Callable[[], ExecutionResult]) -> ExecutionResult:
        """Run the executor's step and score the VIMA step it made, if it made one.

        SimError before anything runs when the episode is over. A VIMA step is counted even
        when the executor raises after it (VIMA counted it); a dry run makes none.
        """
        with self.lock:
            if self._done:
                raise SimError('the episode is over (or not started): call sim/reset')
            self.actuator.take_outcome()
            try:
                return execute()
            finally:
                outcome = self.actuator.take_outcome()
                if outcome is not None:
                    self._frame = outcome.obs.rgb
                    self._steps, self._success, self._done = (outcome.steps, outcome.success,
                                                              outcome.done)
