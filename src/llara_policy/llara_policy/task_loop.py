"""The closed task loop of LLaRA's single-step mode, free of ROS: plan, execute, remember, repeat.

`TaskLoop.run` asks the policy for a plan given the instruction and the history, executes the
plan's first step, appends the step as executed to the history, and stops on success (reported
by the environment), the step limit, a failed step, an error or cancel. The step limit counts
policy queries, as LLaRA's evaluation (`llara_training` eval_episode) counts iterations. Two
step outcomes are not failed steps, as in LLaRA's evaluation: a missed pick (the suction held
nothing, MissedPickError) did nothing, enters the history and the loop goes on; a refused step
(the executor refused it before any motion: unsafe target, unmappable, malformed;
RefusedStepError) was not executed, stays out of the history (the evaluator's `rejected`
actions add no history entry), is reported as 'refused: <reason>', uses up its query, and
the loop goes on without asking the environment (nothing changed there). The outcome counts
both (`missed_picks`, `refused_steps`; its message says so). The history holds what
the executor reports it executed, projected back into the model frame, not the step as sent:
LLaRA's evaluation rebuilds its history from the executed actions (llara-spec 3.4), and a
step the executor moved differs from the model's text by the mapping's rounding. The ROS node
(`ros/task_node.py`) supplies the ports: a policy query, a step execution, the episode status
and feedback. Plans and steps are opaque here (a plan has a non-empty `steps` sequence).
"""
from collections.abc import Sequence
from dataclasses import dataclass
import enum
from typing import Any, Optional, Protocol

from llara_policy.errors import ConfigError, LlaraError, ValueRangeError
from llara_policy.types import check_int

# LLaRA's VIMA evaluation caps an episode at 8 policy queries (eval/eval-llara.py, max_steps):
# the one home of the protocol's step budget (the evaluator, task_node and the launch files'
# max_steps default read it from here).
LLARA_MAX_STEPS = 8
SUCCESS_SOURCES = ('sim', 'none')


@dataclass(frozen=True)
class TaskLoopConfig:
    """Parameters of the task loop (task_node's ROS parameters).

    Args:
        max_steps: Steps per task when a goal asks for 0, refused steps included (LLaRA's
            evaluation: 8).
        policy_timeout_s: Longest wait for the plan answering one policy query, seconds.
        step_timeout_s: Longest wait for one ExecuteStep goal to finish, seconds.
        server_timeout_s: Longest wait for the execute_step action server, seconds.
        status_timeout_s: Longest wait for the episode status after a step, seconds.
        success_source: 'sim' (sim/status reports success after each step) or 'none'
            (no environment reports success: the loop runs to the step limit).
        dry_run: Ask the executor for dry runs (compute and check, move nothing).
    """

    max_steps: int = LLARA_MAX_STEPS
    policy_timeout_s: float = 30.0
    step_timeout_s: float = 120.0
    server_timeout_s: float = 10.0
    status_timeout_s: float = 10.0
    success_source: str = 'sim'
    dry_run: bool = False

    def __post_init__(self):
        check_int('TaskLoopConfig.max_steps', self.max_steps, 1, error=ConfigError)
        for name in ('policy_timeout_s', 'step_timeout_s', 'server_timeout_s',
                     'status_timeout_s'):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ConfigError(f'TaskLoopConfig.{name} must be a positive number of '
                                  f'seconds, got {value!r}')
        if self.success_source not in SUCCESS_SOURCES:
            raise ConfigError(f'TaskLoopConfig.success_source must be one of '
                              f'{SUCCESS_SOURCES}, got {self.success_source!r}')


class TaskEnd(enum.Enum):
    """Why a task ended; the value is RunTask's result message for the plain endings."""

    SUCCESS = 'success'
    STEP_LIMIT = 'step_limit'
    CANCELED = 'canceled'
    FAILURE = 'failure'
    ERROR = 'error'


class TaskLoopError(LlaraError):
    """A port could not do its part (no plan in time, no executor, no episode status)."""


class StepFailedError(LlaraError):
    """The executor reported the step as not executed; the message says why."""


class MissedPickError(StepFailedError):
    """The step ran but its pick held nothing (ExecuteStep ERROR_GRASP); the arm is ready.

    `executed` is the step as executed, in history form (as `TaskPorts.execute` returns for a
    success): the loop appends it and goes on. A StepFailedError, so a caller that knows no
    missed picks still sees the step as not done.
    """

    def __init__(self, message: str, executed: Any):
        super().__init__(message)
        self.executed = executed


class RefusedStepError(StepFailedError):
    """The executor refused the step before any motion; nothing moved, the executor is ready.

    ExecuteStep ERROR_UNSAFE_TARGET, ERROR_CALIBRATION or ERROR_INVALID_GOAL. The loop counts
    it against the step budget, leaves it out of the history and goes on, as LLaRA's
    evaluation does with a rejected action. A StepFailedError, so a caller that knows no
    refused steps still sees the step as not done.
    """


class TaskCanceledError(LlaraError):
    """The goal was canceled while a port was waiting."""


@dataclass(frozen=True)
class EpisodeStatus:
    """The environment's view after a step: goal reached, episode over, and why.

    `note` says why the episode ended when neither the goal nor the step limit ended it ('').
    """

    success: bool
    done: bool
    note: str = ''


@dataclass(frozen=True)
class TaskOutcome:
    """How a task ended: success, the executed steps in order, the end and its message.

    `steps` are what `TaskPorts.execute` returned (or a MissedPickError carried): the history
    the policy saw. `missed_picks` counts the steps among them whose pick held nothing;
    `refused_steps` the steps the executor refused before any motion (not in `steps`). When
    there are any, the message ends with e.g. '(1 missed pick, 2 refused steps)'.
    """

    success: bool
    steps: tuple
    end: TaskEnd
    message: str
    missed_picks: int = 0
    refused_steps: int = 0

    def __post_init__(self):
        check_int('TaskOutcome.missed_picks', self.missed_picks, 0, len(self.steps),
                  error=ValueRangeError)
        check_int('TaskOutcome.refused_steps', self.refused_steps, 0, error=ValueRangeError)


class TaskPorts(Protocol):
    """What the loop needs from its environment (the node implements it with ROS)."""

    def ask_policy(self, instruction: str, history: Sequence[Any]) -> Any:
        """Return the plan for a frame taken now; TaskLoopError when none comes in time."""

    def execute(self, step: Any, plan: Any) -> Any:
        """Execute `step` (the plan's first); return the step as executed, in history form.

        Raises MissedPickError (carrying the step as executed) when the step ran but its pick
        held nothing; RefusedStepError when the executor refused it before any motion;
        StepFailedError, TaskCanceledError or TaskLoopError when it was not executed.
        """

    def episode_status(self) -> Optional[EpisodeStatus]:
        """Return the status after the step just executed, or None without an environment."""

    def feedback(self, step_number: int, plan: Any, status: str) -> None:
        """Report progress of step `step_number` (1-based)."""

    def cancel_requested(self) -> bool:
        """Return True once the task was asked to stop."""


class TaskLoop:
    """Runs one task at a time through `ports`; see the module docstring."""

    def __init__(self, config: TaskLoopConfig, ports: TaskPorts):
        self.config = config
        self.ports = ports

    def step_limit(self, requested: int) -> int:
        """Return the goal's step limit: `requested`, or the configured default for 0."""
        return int(requested) if requested else self.config.max_steps

    def run(self, instruction: str, max_steps: int = 0) -> TaskOutcome:
        """Run the loop until an ending; never raises a LlaraError (it becomes the outcome)."""
        history: list = []
        missed = refused = 0

        def outcome(end: TaskEnd, message: Optional[str] = None, success: bool = False):
            return TaskOutcome(success, tuple(history), end,
                               (message or end.value) + _counts_text(missed, refused), missed,
                               refused)

        for number in range(1, self.step_limit(max_steps) + 1):
            if self.ports.cancel_requested():
                return outcome(TaskEnd.CANCELED)
            plan = None
            try:
                plan = self.ports.ask_policy(instruction, tuple(history))
                if not plan.steps:
                    raise TaskLoopError('the policy sent a plan without steps')
                self.ports.feedback(number, plan, 'executing')
                executed, done = self.ports.execute(plan.steps[0], plan), 'done'
            except MissedPickError as miss:  # ran, did nothing: LLaRA's protocol goes on
                executed, done = miss.executed, f'missed pick: {miss}'
                missed += 1
            except RefusedStepError as refusal:  # not executed, the query is used up
                refused += 1
                self.ports.feedback(number, plan, f'refused: {refusal}')
                continue
            except TaskCanceledError:
                return outcome(TaskEnd.CANCELED)
            except StepFailedError as err:
                self.ports.feedback(number, plan, f'failed: {err}')
                return outcome(TaskEnd.FAILURE, f'step {number} failed: {err}')
            except LlaraError as err:
                return outcome(TaskEnd.ERROR, f'step {number}: {err}')
            history.append(executed)
            self.ports.feedback(number, plan, done)
            try:
                status = self.ports.episode_status()
            except LlaraError as err:
                return outcome(TaskEnd.ERROR, f'step {number}: {err}')
            if status is not None and status.success:
                return outcome(TaskEnd.SUCCESS, success=True)
            if status is not None and status.done:
                return outcome(TaskEnd.FAILURE,
                               f'the episode ended after step {number} without success'
                               + (f' ({status.note})' if status.note else ''))
        return outcome(TaskEnd.STEP_LIMIT)


def _counts_text(missed: int, refused: int) -> str:
    """' (1 missed pick, 2 refused steps)': the step outcomes that did not end the task."""
    counts = [f'{count} {name}{"s" if count > 1 else ""}'
              for count, name in ((missed, 'missed pick'), (refused, 'refused step')) if count]
    return f' ({", ".join(counts)})' if counts else ''
