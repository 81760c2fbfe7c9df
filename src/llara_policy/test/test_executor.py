"""Executor core: model steps run through the sim camera's calibration onto a SimArm.

Everything is asserted through the SimArm's call log, its state and the sim's own scoring: an
oracle step succeeds, a dry run makes no arm call, unsafe targets are refused before any call
without a fault, arm errors fault the executor until reset, a missed pick (a pick on bare
table) does not (unless its way back fails), stop and cancel halt the sequence, and the error /
phase codes are ExecuteStep.action's.
"""
from pathlib import Path
import re

import pytest
from sim_points import missing_step

from llara_policy.arms.base import (
    CODE_HAS_ERROR,
    CODE_OK,
    ERROR_COLLISION,
    STATE_READY,
    STATE_STOPPED,
    VACUUM_OFF,
)
from llara_policy.arms.executor import Executor
from llara_policy.arms.executor_types import (
    ErrorCode,
    ExecutionCanceledError,
    ExecutorBusyError,
    ExecutorConfig,
    ExecutorFaultedError,
    ExecutorState,
    Phase,
    failure_of,
)
from llara_policy.arms.primitives import PICK_PLACE_PHASES, SWEEP_PHASES
from llara_policy.errors import (
    ArmError,
    CalibrationError,
    ConfigError,
    ControllerError,
    NothingPickedError,
    ProjectionError,
    UnsafeTargetError,
    ValueRangeError,
)
from llara_policy.sim.arm import Fault
from llara_policy.sim.env import SIM_PICK_PLACE, SIM_SWEEP, SimEnv, SimEnvConfig
from llara_policy.types import ActionStep, Effector, ImagePoint
from llara_policy.workspace import Workspace

ACTION_FILE = (Path(__file__).resolve().parents[2] / 'llara_msgs' / 'action'
               / 'ExecuteStep.action')
PICK_PLACE_SEQUENCE = (Phase.VALIDATING, Phase.APPROACH, Phase.DESCEND, Phase.GRASP, Phase.LIFT,
                       Phase.TRANSFER, Phase.PLACE, Phase.RELEASE, Phase.RETREAT)
# Model point (0.5, 0.02) maps to x = 0.10 m on the sim table, in front of Workspace.x_min_m.
OUTSIDE = ImagePoint(0.5, 0.02)


@pytest.fixture(scope='module')
def envs():
    opened = {}

    def get(task='visual_manipulation'):
        if task not in opened:
            opened[task] = SimEnv(SimEnvConfig(task=task, renderer='tiny'))
        return opened[task]

    yield get
    for env in opened.values():
        env.close()


def live_config(env, **options) -> ExecutorConfig:
    """The executor set up as the sim's 'table' place path: support + sim speeds, moving."""
    options = {'dry_run': False, **options}
    return ExecutorConfig(place_support_m=env.table_support_m, pick_place=SIM_PICK_PLACE,
                          sweep=SIM_SWEEP, **options)


def start(envs, task='visual_manipulation', seed=0, workspace=None, **options):
    env = envs(task)
    env.reset(seed)
    executor = Executor(env.arm, workspace or env.config.workspace, env.mapper,
                        live_config(env, **options))
    return env, executor


def calls_since(arm, index: int, method: str = None):
    return [c for c in arm.calls[index:] if method is None or c.method == method]


def parse_constants(prefix: str) -> dict:
    pattern = re.compile(rf'^\s*uint8\s+{prefix}_([A-Z_]+)\s*=\s*(\d+)', re.MULTILINE)
    return {name: int(value) for name, value in pattern.findall(ACTION_FILE.read_text())}


def test_error_codes_and_phases_are_the_action_files_constants():
    errors, phases = parse_constants('ERROR'), parse_constants('PHASE')
    assert len(errors) == 9 and len(phases) == 9
    assert {e.name: e.value for e in ErrorCode} == errors
    assert {p.name: p.value for p in Phase} == phases


def test_every_primitive_phase_is_an_action_phase_in_order():
    for names in (PICK_PLACE_PHASES, SWEEP_PHASES):
        values = [Phase[name.upper()].value for name in names]
        assert values == sorted(values) and Phase.VALIDATING.value < values[0]


def test_oracle_step_executes_succeeds_and_reports_every_phase(envs):
    env, executor = start(envs)
    oracle = env.oracle()
    seen = []
    result = executor.execute(oracle.step, progress=lambda phase, f: seen.append((phase, f)))
    assert env.finish_step().success
    assert result.phases == PICK_PLACE_SEQUENCE == tuple(phase for phase, _ in seen)
    fractions = [f for _, f in seen]
    assert fractions[0] == 0.0 and fractions == sorted(fractions) and fractions[-1] < 1.0
    assert not result.dry_run and executor.state is ExecutorState.IDLE
    assert result.action.pick_xy_m == pytest.approx(oracle.action.pick_xy_m, abs=2e-3)
    assert result.action.place_xy_m == pytest.approx(oracle.action.place_xy_m, abs=2e-3)
    assert result.pick_xyz_mm[2] == 0.0
    assert result.place_xyz_mm[2] == pytest.approx(1000 * env.table_support_m)
    assert result.pick_xyz_mm[:2] == pytest.approx([1000 * v for v in result.action.pick_xy_m])
    assert 0.0 < result.grip_height_mm < SIM_PICK_PLACE.approach_mm
    assert env.arm.get_vacuum_gripper()[1] == VACUUM_OFF and env.arm.held_body == -1


def test_sweep_oracle_executes_with_the_spatula_phases(envs):
    env, executor = start(envs, 'sweep_without_exceeding')
    for _ in range(env.step_limit):
        result = executor.execute(env.oracle().step)
        assert result.phases == (Phase.VALIDATING, Phase.APPROACH, Phase.GRASP,
                                 Phase.TRANSFER, Phase.RELEASE, Phase.RETREAT)
        assert result.grip_height_mm is None
        outcome = env.finish_step()
        if outcome.done:
            break
    assert outcome.success


def test_dry_run_is_the_default_and_never_calls_the_arm(envs):
    env = envs()
    env.reset(0)
    before = len(env.arm.calls)
    executor = Executor(env.arm, env.config.workspace, env.mapper)
    assert ExecutorConfig().dry_run and executor.config.dry_run
    result = executor.execute(env.oracle().step)
    assert result.dry_run and result.phases == (Phase.VALIDATING,)
    assert result.grip_height_mm is None
    assert result.action.pick_xy_m == pytest.approx(env.oracle().action.pick_xy_m, abs=2e-3)
    executor.stop()
    executor.reset()
    assert len(env.arm.calls) == before  # not even enable(), stop() or reset()


def test_a_goal_asking_for_a_dry_run_moves_nothing_on_a_live_executor(envs):
    env, executor = start(envs)
    before = len(env.arm.calls)
    result = executor.execute(env.oracle().step, dry_run=True)
    assert result.dry_run and calls_since(env.arm, before) == []
    assert executor.execute(env.oracle().step).dry_run is False
    assert env.finish_step().success


def test_target_outside_the_workspace_is_rejected_before_any_arm_call_without_fault(envs):
    env, executor = start(envs)
    good = env.oracle().step
    before = len(env.arm.calls)
    with pytest.raises(UnsafeTargetError) as caught:
        executor.execute(ActionStep(OUTSIDE, good.place, 0))
    assert caught.value.limit == 'x'
    assert failure_of(caught.value).error_code is ErrorCode.UNSAFE_TARGET
    assert calls_since(env.arm, before) == []
    assert executor.state is ExecutorState.IDLE and executor.fault is None
    executor.execute(good)
    assert env.finish_step().success


def test_the_mapped_step_is_reported_before_the_checks_and_matches_the_result(envs):
    env, executor = start(envs)
    good = env.oracle().step
    unsafe = ActionStep(OUTSIDE, good.place, 0)
    mapped = []
    with pytest.raises(UnsafeTargetError):
        executor.execute(unsafe, on_mapped=mapped.append)
    assert len(mapped) == 1  # the refused step's targets: OUTSIDE is 0.10 m out
    assert mapped[0].action.pick_xy_m[0] == pytest.approx(0.10, abs=0.01)
    assert mapped[0].table_z_m == env.calibration.table_z_m
    assert mapped[0].executed.pick.x_norm == pytest.approx(OUTSIDE.x_norm, abs=1e-6)
    result = executor.execute(good, on_mapped=mapped.append)
    assert len(mapped) == 2
    assert (mapped[1].action, mapped[1].executed) == (result.action, result.executed)
    assert env.finish_step().success
    executor.stop()
    with pytest.raises(ExecutorFaultedError):
        executor.execute(good, on_mapped=mapped.append)
    assert len(mapped) == 2  # refused before mapping: nothing reported
    executor.reset()


@pytest.mark.parametrize('dry_run', [True, False])
def test_the_primitives_whole_plan_is_checked_even_in_a_dry_run(envs, dry_run):
    # Table points inside the box, but the travel height (200 mm) is above this z_max.
    workspace = Workspace(z_max_m=0.15)
    env, executor = start(envs, workspace=workspace, dry_run=dry_run)
    before = len(env.arm.calls)
    with pytest.raises(UnsafeTargetError) as caught:
        executor.execute(env.oracle().step)
    assert caught.value.limit == 'z' and calls_since(env.arm, before) == []
    assert executor.state is ExecutorState.IDLE


def test_a_goal_for_another_model_frame_size_is_invalid_and_moves_nothing(envs):
    env, executor = start(envs)
    before = len(env.arm.calls)
    with pytest.raises(ValueRangeError) as caught:
        executor.execute(env.oracle().step, model_size_px=(336, 336))
    assert failure_of(caught.value).error_code is ErrorCode.INVALID_GOAL
    assert calls_since(env.arm, before) == [] and executor.state is ExecutorState.IDLE


@pytest.mark.parametrize('fault, arm_code, error_type', [
    (Fault('set_position', CODE_HAS_ERROR, error_code=ERROR_COLLISION), ERROR_COLLISION,
     ControllerError),
    (Fault('set_position', -7), -7, ArmError),
])
def test_an_arm_error_faults_keeps_its_code_and_rejects_goals_until_reset(envs, fault, arm_code,
                                                                          error_type):
    env, executor = start(envs)
    step = env.oracle().step
    env.arm.inject_fault(fault)
    with pytest.raises(error_type) as caught:
        executor.execute(step)
    assert executor.state is ExecutorState.FAULTED and executor.fault is caught.value
    assert failure_of(caught.value).error_code is ErrorCode.ARM
    assert failure_of(caught.value).arm_code == arm_code
    before = len(env.arm.calls)
    with pytest.raises(ExecutorFaultedError) as rejected:
        executor.execute(step)
    assert rejected.value.cause is caught.value
    assert failure_of(rejected.value).error_code is ErrorCode.FAULTED
    assert calls_since(env.arm, before) == []
    executor.reset()
    methods = [c.method for c in calls_since(env.arm, before)]
    assert {'clean_error', 'clean_warn', 'motion_enable', 'set_state'} <= set(methods)
    assert env.arm.error_code == 0 and env.arm.state == STATE_READY
    assert executor.state is ExecutorState.IDLE and executor.fault is None
    executor.execute(step)
    assert env.finish_step().success


def test_a_reset_the_arm_refuses_leaves_the_executor_faulted(envs):
    env, executor = start(envs)
    executor.stop()
    env.arm.inject_fault(Fault('clean_error', 3))
    with pytest.raises(ArmError):
        executor.reset()
    assert executor.state is ExecutorState.FAULTED and executor.fault.code == 3
    executor.reset()
    assert executor.state is ExecutorState.IDLE


def test_a_missed_pick_is_a_step_that_did_nothing_and_the_next_goal_runs(envs):
    env, executor = start(envs)
    step = missing_step(env, env.oracle().step)  # the pick lands on bare table: a real miss
    planned = executor.execute(step, dry_run=True)
    before = len(env.arm.calls)
    seen = []
    result = executor.execute(step, progress=lambda phase, f: seen.append(phase))
    assert result.missed_pick and not result.dry_run and result.grip_height_mm is None
    # Stopped in the grasp; then the arm goes home as a step ends (RETREAT), and no fault.
    assert result.phases == (*PICK_PLACE_SEQUENCE[:4], Phase.RETREAT) == tuple(seen)
    assert executor.state is ExecutorState.IDLE and executor.fault is None
    assert failure_of(NothingPickedError('x', 41)).error_code is ErrorCode.GRASP
    # The step as executed is its history form, as the dry run of the same step maps it.
    assert (result.executed, result.action) == (planned.executed, planned.action)
    assert env.arm.get_vacuum_gripper()[1] == VACUUM_OFF and env.arm.held_body == -1
    moves = calls_since(env.arm, before, 'set_position')
    assert (moves[-1].kwargs['x'], moves[-1].kwargs['y'], moves[-1].kwargs['z']) == \
        pytest.approx(SIM_PICK_PLACE.home_xyz_mm)
    # The next goal is accepted and runs: the oracle's step still solves the task.
    assert executor.execute(env.oracle().step).missed_pick is False
    assert env.finish_step().success


def test_a_miss_whose_retreat_fails_faults_as_an_arm_error_with_code_41():
    with SimEnv(SimEnvConfig(renderer='tiny')) as env:  # its own: the cup leaks for good
        env.reset(0)
        executor = Executor(env.arm, env.config.workspace, env.mapper, live_config(env))
        env.arm.fail_suction(times=1000)

        def progress(phase, _fraction):
            if phase is Phase.GRASP:  # suction on, on and wait (41) pass; off fails (code 3)
                env.arm.inject_fault(Fault('set_vacuum_gripper', CODE_OK, times=2))
                env.arm.inject_fault(Fault('set_vacuum_gripper', 3))

        with pytest.raises(ArmError) as caught:
            executor.execute(env.oracle().step, progress=progress)
        assert caught.value.code == 41 and not isinstance(caught.value, NothingPickedError)
        assert executor.state is ExecutorState.FAULTED and executor.fault is caught.value
        failed = failure_of(caught.value)
        assert (failed.error_code, failed.arm_code) == (ErrorCode.ARM, 41)
        assert 'recovery after the failed grip failed too' in failed.message
        with pytest.raises(ExecutorFaultedError):
            executor.execute(env.oracle().step)


def test_a_miss_whose_way_home_fails_faults(envs):
    env, executor = start(envs)

    def progress(phase, _fraction):
        if phase is Phase.RETREAT:
            env.arm.inject_fault(Fault('set_position', CODE_HAS_ERROR,
                                       error_code=ERROR_COLLISION))

    with pytest.raises(ControllerError) as caught:
        executor.execute(missing_step(env, env.oracle().step), progress=progress)
    assert caught.value.error_code == ERROR_COLLISION
    assert executor.state is ExecutorState.FAULTED and executor.fault is caught.value
    with pytest.raises(ExecutorFaultedError):
        executor.execute(env.oracle().step)
    executor.reset()
    assert executor.execute(env.oracle().step).missed_pick is False


def test_stop_during_a_sequence_halts_the_arm_and_faults(envs):
    env, executor = start(envs)
    marks = {}

    def progress(phase, fraction):
        if phase is Phase.TRANSFER:
            marks['stop'] = len(env.arm.calls)
            executor.stop()

    with pytest.raises(ExecutionCanceledError) as caught:
        executor.execute(env.oracle().step, progress=progress)
    after = calls_since(env.arm, marks['stop'])
    assert [(c.method, c.args) for c in after] == [('set_state', (4,))]
    assert env.arm.state == STATE_STOPPED and env.arm.held_body >= 0  # holds, never drops
    assert executor.state is ExecutorState.FAULTED
    assert failure_of(caught.value).error_code is ErrorCode.CANCELED
    with pytest.raises(ExecutorFaultedError):
        executor.execute(env.oracle().step)
    executor.reset()
    assert env.arm.state == STATE_READY and executor.state is ExecutorState.IDLE
    env.arm.set_vacuum_gripper(False)


def test_a_stop_during_a_motion_lets_no_later_motion_run(envs):
    # The stop service's call while set_position runs (another thread on a real arm): a
    # tick listener calls stop() during the retreat; the controller refuses the move home.
    env, executor = start(envs)
    marks = {'armed': False}

    def progress(phase, fraction):
        marks['armed'] = phase is Phase.RETREAT

    def on_tick(sim_time_s):
        if marks.pop('armed', False):
            marks['stop'] = len(env.arm.calls)
            executor.stop()

    env.arm.add_tick_listener(on_tick)
    with pytest.raises(ExecutionCanceledError) as caught:
        executor.execute(env.oracle().step, progress=progress)
    assert 'stop' in marks and isinstance(caught.value.__cause__, ArmError)
    moves = calls_since(env.arm, marks['stop'], 'set_position')
    assert moves[0].code == CODE_OK  # the retreat the stop came in (the sim finishes it)
    assert len(moves) == 2 and moves[1].code != CODE_OK  # home: refused by the stopped arm
    assert executor.state is ExecutorState.FAULTED
    assert failure_of(caught.value).error_code is ErrorCode.CANCELED
    executor.reset()


def test_cancel_stops_before_the_next_phases_motion(envs):
    env, executor = start(envs)
    before = len(env.arm.calls)

    def progress(phase, fraction):
        if phase is Phase.DESCEND:
            executor.cancel()

    with pytest.raises(ExecutionCanceledError) as caught:
        executor.execute(env.oracle().step, progress=progress)
    moves = calls_since(env.arm, before, 'set_position')
    assert len(moves) == 1 and moves[0].kwargs['z'] == pytest.approx(
        SIM_PICK_PLACE.travel_height_mm + 1000 * env.table_support_m)  # above pick only
    assert failure_of(caught.value).error_code is ErrorCode.CANCELED
    assert executor.state is ExecutorState.FAULTED  # the arm stopped mid-sequence
    executor.reset()
    executor.execute(env.oracle().step)  # the cancel does not carry over to the next goal
    assert env.finish_step().success


def test_cancel_while_validating_moves_nothing_and_does_not_fault(envs):
    env, executor = start(envs)
    before = len(env.arm.calls)
    with pytest.raises(ExecutionCanceledError):
        executor.execute(env.oracle().step, progress=lambda phase, f: executor.cancel())
    assert calls_since(env.arm, before) == [] and executor.state is ExecutorState.IDLE


def test_one_step_at_a_time(envs):
    env, executor = start(envs)
    refused = []

    def progress(phase, fraction):
        if phase is Phase.LIFT:
            for call in (lambda: executor.execute(env.oracle().step), executor.reset):
                with pytest.raises(ExecutorBusyError) as caught:
                    call()
                refused.append(failure_of(caught.value).error_code)

    executor.execute(env.oracle().step, progress=progress)
    assert refused == [ErrorCode.BUSY, ErrorCode.BUSY]
    assert env.finish_step().success and executor.state is ExecutorState.IDLE


def test_a_calibration_that_misses_the_workspace_is_a_startup_error_naming_it(envs):
    env = envs()
    before = len(env.arm.calls)
    with pytest.raises(CalibrationError, match=r"cal\.yaml: calibration 'sim_front'"):
        Executor(env.arm, Workspace(table_z_m=0.2, z_max_m=0.6), env.mapper,
                 live_config(env), calibration_source='cal.yaml')
    assert calls_since(env.arm, before) == []


def test_config_is_validated():
    for options in ({'dry_run': 1}, {'place_support_m': -0.01}, {'pick_support_m': 'a'},
                    {'sweep_support_m': float('nan')}, {'pick_place': None},
                    {'sweep': SIM_PICK_PLACE}):
        with pytest.raises(ConfigError):
            ExecutorConfig(**options)


def test_failure_codes_of_mapping_errors():
    assert failure_of(ProjectionError('ray misses')).error_code is ErrorCode.CALIBRATION
    assert failure_of(ValueRangeError('x_norm')).error_code is ErrorCode.INVALID_GOAL
    arm = failure_of(ArmError('set_position failed', 9))
    assert (arm.error_code, arm.arm_code) == (ErrorCode.ARM, 9)
    assert 'set_position failed' in arm.message


def test_spatula_steps_use_the_spatula_primitive(envs):
    env = envs('sweep_without_exceeding')
    env.reset(0)
    step = env.oracle().step
    assert step.effector is Effector.SPATULA
    result = Executor(env.arm, env.config.workspace, env.mapper).execute(step)
    assert result.pick_xyz_mm[2] == result.place_xyz_mm[2] == 0.0
