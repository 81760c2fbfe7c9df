"""The executor core (ROS-free): one LLaRA step, model frame -> base frame -> checked motion.

`Executor.execute` maps a model-frame `ActionStep` through the calibration
(`execution.table_action_from_step`), checks it against the `Workspace` and the primitive's whole
plan before any arm call, then runs the suction pick-and-place or the spatula sweep, reporting
ExecuteStep.action's phases. Any failure after the first arm call leaves the executor FAULTED:
goals are refused until `reset()`. One outcome is not a failure of the arm: a missed pick (the
suction held nothing, and the primitive turned it off and retreated: NothingPickedError) is a
step that did nothing, as in LLaRA's and VIMA-Bench's protocol; the arm goes home and `execute`
returns its result with `missed_pick` set, the executor stays IDLE and the step enters the
history. Its config, results, states, errors and result codes (`failure_of`) are
`arms.executor_types`.
"""
from collections.abc import Callable
from dataclasses import dataclass, field
import threading
from typing import Optional, Union

from llara_policy.arms.base import Arm, TableActuator
from llara_policy.arms.executor_types import (
    ExecutionCanceledError,
    ExecutionResult,
    ExecutorBusyError,
    ExecutorConfig,
    ExecutorFaultedError,
    ExecutorState,
    MappedStep,
    Phase,
)
from llara_policy.arms.primitives import (
    PICK_PLACE_PHASES,
    SWEEP_PHASES,
    check_pick_and_place,
    check_sweep,
    enable,
    go_home,
    pick_and_place,
    sweep,
)
from llara_policy.errors import ArmError, CalibrationError, NothingPickedError, ValueRangeError
from llara_policy.execution import (
    ModelFrameMapper,
    TableAction,
    executed_step,
    table_action_from_step,
)
from llara_policy.geometry.calibration_checks import check_workspace_fit
from llara_policy.types import ActionStep, Effector
from llara_policy.workspace import Workspace, check_table_action

DEFAULT_CONFIG = ExecutorConfig()  # frozen: one shared default
ProgressCallback = Optional[Callable[[Phase, float], None]]
MappedCallback = Optional[Callable[[MappedStep], None]]


def _phase_fractions(effector: Effector) -> dict[Phase, float]:
    """Return each phase's progress fraction (share of the step done when it starts)."""
    names = PICK_PLACE_PHASES if effector is Effector.SUCTION else SWEEP_PHASES
    phases = (Phase.VALIDATING, *(Phase[name.upper()] for name in names))
    return {phase: index / len(phases) for index, phase in enumerate(phases)}


@dataclass
class _Run:
    """The bookkeeping of one execute() call."""

    progress: ProgressCallback
    fractions: dict
    on_mapped: MappedCallback
    phases: list = field(default_factory=list)
    moved: bool = False


class Executor:
    """Executes LLaRA steps on an `Arm` within a `Workspace`, through one calibration.

    Construction checks that the calibration fits the workspace (CalibrationError naming the
    calibration) and, unless `config.dry_run`, enables the arm (`primitives.enable`: start-up
    sequence, controller boundary and fence). `execute` runs one step at a time; `stop`,
    `cancel` and `reset` may come from other threads. A `TableActuator` (VIMA-Bench) gets the
    same mapping and `check_table_action` before its one call per step; it is not enabled, and
    stop/reset make no arm call (its action is atomic: the fault refuses the next goal).
    """

    def __init__(self, arm: Union[Arm, TableActuator], workspace: Workspace,
                 mapper: ModelFrameMapper, config: ExecutorConfig = DEFAULT_CONFIG,
                 calibration_source: str = ''):
        self.arm = arm
        self.actuator = arm if isinstance(arm, TableActuator) else None
        self.workspace = workspace
        self.mapper = mapper
        self.config = config
        try:
            check_workspace_fit(mapper.calibration, workspace, mapper.preprocess)
        except CalibrationError as error:
            if not calibration_source:
                raise
            raise CalibrationError(f'{calibration_source}: {error}') from None
        self._lock = threading.Lock()  # guards _state and _fault
        self._state = ExecutorState.IDLE
        self._fault: Optional[BaseException] = None
        self._cancel = threading.Event()
        self._stopped = threading.Event()
        if not config.dry_run and self.actuator is None:
            enable(arm, workspace)

    @property
    def state(self) -> ExecutorState:
        """IDLE, BUSY or FAULTED."""
        return self._state

    @property
    def fault(self) -> Optional[BaseException]:
        """The error that faulted the executor (None unless FAULTED)."""
        return self._fault

    def execute(self, step: ActionStep, progress: ProgressCallback = None,
                dry_run: bool = False, model_size_px: Optional[tuple[int, int]] = None,
                on_mapped: MappedCallback = None) -> ExecutionResult:
        """Map, check and (unless dry run) execute one step; returns what was done.

        `progress(phase, fraction)` hears each phase as it starts. `dry_run` forces a dry run
        for this goal (config.dry_run forces it for all). `model_size_px` (width, height), the
        goal's model frame, must match the mapper's (ValueRangeError otherwise).
        `on_mapped(MappedStep)` hears the mapped step once the step is mapped and projected
        back, before the safety checks (so a step refused as unsafe has its targets). Raises
        ExecutorFaultedError / ExecutorBusyError without doing anything; UnsafeTargetError,
        ProjectionError, ValueRangeError before any arm call (no fault); after the first arm
        call any error faults the executor and is re-raised (ExecutionCanceledError when
        canceled or stopped). A missed pick is no error: the result has `missed_pick` set and
        the executor stays IDLE (a failure while the arm retreats from it faults, as above).
        """
        with self._lock:
            if self._state is ExecutorState.FAULTED:
                raise ExecutorFaultedError(self._fault)
            if self._state is ExecutorState.BUSY:
                raise ExecutorBusyError('another step is executing')
            self._state = ExecutorState.BUSY
            self._cancel.clear()
        run = _Run(progress, _phase_fractions(step.effector), on_mapped)
        try:
            return self._execute(step, run, dry_run or self.config.dry_run, model_size_px)
        except BaseException as error:
            if self._stopped.is_set() and not isinstance(error, ExecutionCanceledError):
                raise ExecutionCanceledError(f'motion halted by stop(): {error}') from error
            if run.moved:
                self._set_fault(error)
            raise
        finally:
            with self._lock:
                if self._state is ExecutorState.BUSY:
                    self._state = ExecutorState.IDLE

    def _execute(self, step: ActionStep, run: _Run, dry_run: bool,
                 model_size_px) -> ExecutionResult:
        self._enter(run, Phase.VALIDATING)
        pre = self.mapper.preprocess
        if model_size_px is not None and tuple(model_size_px) != (pre.model_width_px,
                                                                  pre.model_height_px):
            raise ValueRangeError(f'goal model frame {model_size_px[0]}x{model_size_px[1]} px '
                                  f"is not the executor's {pre.model_width_px}x"
                                  f'{pre.model_height_px}')
        action = table_action_from_step(self.mapper, step)
        executed = executed_step(self.mapper, step, action)
        if run.on_mapped is not None:
            run.on_mapped(MappedStep(action, executed, self.mapper.calibration.table_z_m))
        check_table_action(self.workspace, action)
        table_mm = 1000.0 * self.workspace.table_z_m
        c = self.config
        if step.effector is Effector.SPATULA:
            pick_z, place_z = (table_mm + 1000.0 * c.sweep_support_m,) * 2
        else:
            pick_z = table_mm + 1000.0 * c.pick_support_m
            place_z = table_mm + 1000.0 * c.place_support_m
        pick = (1000.0 * action.pick_xy_m[0], 1000.0 * action.pick_xy_m[1], pick_z)
        place = (1000.0 * action.place_xy_m[0], 1000.0 * action.place_xy_m[1], place_z)
        if self.actuator is not None:
            pass  # the actuator's own motion: only the table action above is ours to check
        elif step.effector is Effector.SPATULA:
            check_sweep(self.workspace, pick, place, c.sweep)
        else:
            check_pick_and_place(self.workspace, pick, place, action.yaw_change_deg,
                                 c.pick_place)
        grip_height_mm, missed_pick = None, False
        if not dry_run:
            def on_phase(name: str) -> None:
                self._enter(run, Phase[name.upper()])
                run.moved = True  # the primitive's next call moves the arm

            if self.actuator is not None:
                self._actuate(step, action, run)
            elif step.effector is Effector.SPATULA:
                sweep(self.arm, self.workspace, pick, place, c.sweep, on_phase=on_phase)
            else:
                try:
                    grip_height_mm = pick_and_place(self.arm, self.workspace, pick, place,
                                                    action.yaw_change_deg, c.pick_place,
                                                    on_phase=on_phase).grip_height_mm
                except NothingPickedError:
                    self._leave_missed_pick(run)
                    missed_pick = True
        return ExecutionResult(step, action, executed, pick, place, tuple(run.phases),
                               grip_height_mm, dry_run, missed_pick)

    def _leave_missed_pick(self, run: _Run) -> None:
        """After a miss (suction off, cup above the pick): home, as a step ends (RETREAT).

        As `SimEnv` does after a miss, so the next frame shows the scene without the arm. An
        ArmError here (or a cancel or stop before it) propagates and faults the executor.
        """
        if self.config.pick_place.return_home:
            self._enter(run, Phase.RETREAT)
            go_home(self.arm, self.workspace, self.config.pick_place)

    def _actuate(self, step: ActionStep, action: TableAction, run: _Run) -> None:
        """Run a checked action on the TableActuator; its phases happen inside the one call.

        The first motion phase is entered before the call (the last point a cancel or stop is
        heard); the others are reported as done once the call returns.
        """
        names = SWEEP_PHASES if step.effector is Effector.SPATULA else PICK_PLACE_PHASES
        phases = [Phase[name.upper()] for name in names]
        self._enter(run, phases[0])
        run.moved = True
        self.actuator.execute_table_action(action, step.effector)
        for phase in phases[1:]:
            run.phases.append(phase)
            if run.progress is not None:
                run.progress(phase, run.fractions[phase])

    def _enter(self, run: _Run, phase: Phase) -> None:
        """Report a phase, then refuse to go on if a cancel or stop came in."""
        run.phases.append(phase)
        if run.progress is not None:
            run.progress(phase, run.fractions.get(phase, 0.0))
        if self._stopped.is_set():
            raise ExecutionCanceledError(f'motion halted by stop() before {phase.name.lower()}')
        if self._cancel.is_set():
            raise ExecutionCanceledError(f'canceled before {phase.name.lower()}')

    def _set_fault(self, error: BaseException) -> None:
        with self._lock:
            if self._fault is None:
                self._fault = error
            self._state = ExecutorState.FAULTED

    def cancel(self) -> None:
        """Ask the running step to stop before its next phase's motion (no-op when idle)."""
        self._cancel.set()

    def stop(self) -> None:
        """Halt the arm now (state 4) and fault the executor until reset().

        `set_state(4)` leaves the controller stopped, so it refuses further motion until reset;
        the SDK's `emergency_stop()` (used only if set_state fails) re-enables state 0 at once.
        In a dry-run executor, or over a TableActuator, no arm call is made. The vacuum is left
        as it is.
        """
        self._stopped.set()
        cause = ExecutionCanceledError('stopped by stop()')
        if not self.config.dry_run and self.actuator is None:
            try:
                code = self.arm.set_state(state=4)
            except Exception as error:  # the SDK may raise on a dead socket; stop anyway
                code = error
            if code != 0:
                self.arm.emergency_stop()
                cause.add_note(f'set_state(4) returned {code!r}; emergency_stop() used')
        self._set_fault(cause)

    def reset(self) -> None:
        """Clear the fault: the SDK's recovery (clean warn/error, enable, mode 0, state 0).

        Runs `primitives.enable` again (it also restores the controller boundary and fence);
        no motion, and the vacuum is untouched. Raises ExecutorBusyError while a step runs,
        and the ArmError (staying FAULTED with it) if the arm refuses.
        """
        with self._lock:
            if self._state is ExecutorState.BUSY:
                raise ExecutorBusyError('cannot reset while a step is executing; stop it first')
        if not self.config.dry_run and self.actuator is None:
            try:
                enable(self.arm, self.workspace)
            except ArmError as error:
                with self._lock:
                    self._fault = error
                    self._state = ExecutorState.FAULTED
                raise
        with self._lock:
            self._fault = None
            self._state = ExecutorState.IDLE
            self._stopped.clear()
            self._cancel.clear()

