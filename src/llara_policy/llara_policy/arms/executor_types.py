"""The executor's contract (ROS-free): its config, results, states, errors and result codes.

ExecuteStep.action's ERROR_* and PHASE_* constants (`ErrorCode`, `Phase`), the executor's
states and errors, `ExecutorConfig`, what a step returns (`ExecutionResult`, `MappedStep`) and
`failure_of`, which turns any error into ExecuteStep's result codes so that `executor_node`
only converts messages. The executor itself is `arms.executor`.
"""
from dataclasses import dataclass
import enum
from typing import Optional

from llara_policy.arms.primitives import PickPlaceConfig, SweepConfig
from llara_policy.errors import (
    ArmError,
    CalibrationError,
    ConfigError,
    ControllerError,
    LlaraError,
    NothingPickedError,
    ParseError,
    ProjectionError,
    UnsafeTargetError,
    ValueRangeError,
)
from llara_policy.execution import TableAction
from llara_policy.types import ActionStep, Effector, check_real


class ErrorCode(enum.IntEnum):
    """ExecuteStep.action's result ERROR_* constants (a test parses the .action file)."""

    NONE = 0
    FAULTED = 1
    INVALID_GOAL = 2
    UNSAFE_TARGET = 3
    CALIBRATION = 4
    ARM = 5
    GRASP = 6
    CANCELED = 7
    BUSY = 8


class Phase(enum.IntEnum):
    """ExecuteStep.action's feedback PHASE_* constants; `name.lower()` is the phase_name."""

    VALIDATING = 0
    APPROACH = 1
    DESCEND = 2
    GRASP = 3
    LIFT = 4
    TRANSFER = 5
    PLACE = 6
    RELEASE = 7
    RETREAT = 8


class ExecutorState(enum.Enum):
    """IDLE: goals accepted; BUSY: a step is running; FAULTED: goals refused until reset()."""

    IDLE = 'idle'
    BUSY = 'busy'
    FAULTED = 'faulted'


class ExecutorFaultedError(LlaraError):
    """The executor is FAULTED: no goal runs until reset(). `cause` is the fault's error."""

    def __init__(self, cause: BaseException):
        self.cause = cause
        super().__init__(f'executor is faulted ({type(cause).__name__}: {cause}); '
                         f'call reset (ResetExecutor) first')


class ExecutionCanceledError(LlaraError):
    """A step was canceled between phases, or the motion was halted by stop()."""


class ExecutorBusyError(LlaraError):
    """Another step is executing (one at a time), or reset() came while one runs."""


@dataclass(frozen=True)
class ExecutorConfig:
    """How the executor turns a checked step into motion (metres above the table, seconds).

    `dry_run` (default True): map and check every step, move nothing and never enable the arm;
    on a real robot nothing moves until the user sets it False. Picks are commanded at
    `Workspace.table_z_m + pick_support_m` (the suction probes down from there + approach_mm to
    find the object); places and sweeps assume a support `place_support_m` above the table
    under every place (the tallest base of the object set plus a margin, measured once; the
    sim's 'table' path uses `SimEnv.table_support_m`) and `sweep_support_m` under a push.
    """

    dry_run: bool = True
    pick_support_m: float = 0.0
    place_support_m: float = 0.0
    sweep_support_m: float = 0.0
    pick_place: PickPlaceConfig = PickPlaceConfig()
    sweep: SweepConfig = SweepConfig()

    def __post_init__(self):
        if not isinstance(self.dry_run, bool):
            raise ConfigError(f'ExecutorConfig.dry_run must be a bool, got {self.dry_run!r}')
        for name in ('pick_support_m', 'place_support_m', 'sweep_support_m'):
            object.__setattr__(self, name, check_real(f'ExecutorConfig.{name}',
                                                      getattr(self, name), 0.0, 0.5,
                                                      error=ConfigError))
        for name, kind in (('pick_place', PickPlaceConfig), ('sweep', SweepConfig)):
            if not isinstance(getattr(self, name), kind):
                raise ConfigError(f'ExecutorConfig.{name} must be a {kind.__name__}, '
                                  f'got {getattr(self, name)!r}')


@dataclass(frozen=True)
class ExecutionResult:
    """A step executed (or fully checked, when `dry_run`).

    `action` is the base-frame table action (metres, yaw change in degrees about +z);
    `executed` the action projected back into the model frame (`execution.executed_step`: the
    step's entry in LLaRA's history);
    `pick_xyz_mm` / `place_xyz_mm` the primitive's targets (z: the assumed support);
    `phases` the phases reported, in order; `grip_height_mm` the cup's height above the pick
    support when it gripped (None for a sweep, a dry run or a missed pick).
    `missed_pick`: the suction held nothing; it was turned off, the cup retreated above the
    pick and the arm went home (when `return_home`; phases VALIDATING..GRASP, then RETREAT).
    The step ran and did nothing: in LLaRA's protocol it still enters the history (`executed`
    as for any step); ExecuteStep reports it as ERROR_GRASP, and the executor stays IDLE.
    """

    step: ActionStep
    action: TableAction
    executed: ActionStep
    pick_xyz_mm: tuple[float, float, float]
    place_xyz_mm: tuple[float, float, float]
    phases: tuple[Phase, ...]
    grip_height_mm: Optional[float]
    dry_run: bool
    missed_pick: bool = False

    def __post_init__(self):
        if not isinstance(self.missed_pick, bool):
            raise ValueRangeError(f'ExecutionResult.missed_pick must be a bool, '
                                  f'got {self.missed_pick!r}')
        if self.missed_pick and (self.dry_run or self.grip_height_mm is not None
                                 or self.step.effector is not Effector.SUCTION):
            raise ValueRangeError('ExecutionResult: a missed pick is a moving suction step '
                                  'that gripped nothing (no dry run, no grip height)')


@dataclass(frozen=True)
class MappedStep:
    """A step mapped into the base frame: reported before the safety checks and any motion.

    `action` is the base-frame table action; `executed` the action projected back into the
    model frame (`execution.executed_step`, the step's history form); `table_z_m` the height
    of the table plane the targets lie on (the calibration's). A node reports it for a step
    that then fails (an unsafe target, an arm error) as well as for one that succeeds.
    """

    action: TableAction
    executed: ActionStep
    table_z_m: float


@dataclass(frozen=True)
class ExecutionFailure:
    """What a node reports for an error: ExecuteStep's error_code, arm_code and message."""

    error_code: ErrorCode
    arm_code: int
    message: str


def failure_of(error: BaseException) -> ExecutionFailure:
    """Map an error to ExecuteStep's result: ERROR_* code, arm code (ERROR_ARM only), message.

    NothingPickedError (a miss whose recovery ran; `execute` itself returns that as a result
    with `missed_pick`) is ERROR_GRASP; another ArmError is ERROR_ARM with the controller's
    error code for a ControllerError (e.g. 35) and the SDK return code otherwise: a miss
    whose recovery failed too is ERROR_ARM with arm code 41. An error of no known kind is
    ERROR_ARM with arm code 0. The message carries the error's notes (e.g. that recovery).
    """
    message = '; '.join((f'{type(error).__name__}: {error}',
                         *getattr(error, '__notes__', ())))
    if isinstance(error, ExecutorFaultedError):
        return ExecutionFailure(ErrorCode.FAULTED, 0, message)
    if isinstance(error, ExecutorBusyError):
        return ExecutionFailure(ErrorCode.BUSY, 0, message)
    if isinstance(error, ExecutionCanceledError):
        return ExecutionFailure(ErrorCode.CANCELED, 0, message)
    if isinstance(error, UnsafeTargetError):
        return ExecutionFailure(ErrorCode.UNSAFE_TARGET, 0, message)
    if isinstance(error, (ProjectionError, CalibrationError)):
        return ExecutionFailure(ErrorCode.CALIBRATION, 0, message)
    if isinstance(error, NothingPickedError):
        return ExecutionFailure(ErrorCode.GRASP, 0, message)
    if isinstance(error, ArmError):
        code = error.error_code if isinstance(error, ControllerError) else error.code
        return ExecutionFailure(ErrorCode.ARM, int(code), message)
    if isinstance(error, (ValueRangeError, ParseError, ConfigError)):
        return ExecutionFailure(ErrorCode.INVALID_GOAL, 0, message)
    return ExecutionFailure(ErrorCode.ARM, 0, message)
