"""The demo's per-plan outcome labels read from executor/executed: an executed step, a missed pick
(ERROR_GRASP, mapped: it ran and held nothing), a step refused before any motion (the task went
on) and a step that was not executed (fault, busy, arm error) are each named as what they were."""
import pytest

from llara_bringup.demo_bag import _outcome
from llara_msgs.action import ExecuteStep
from llara_msgs.msg import ActionPlan, ActionStep, ExecutedStep

Result = ExecuteStep.Result
STEP = ActionStep(step_number=1, object_text='red block', pick_x_norm=0.25, pick_y_norm=0.5,
                  place_x_norm=0.75, place_y_norm=0.5)
PLAN = ActionPlan(query_id=1, steps=[STEP])
PLAN_NS, NEXT_PLAN_NS = 1_000, 2_000  # receive times of this plan and the next one


def label(**executed) -> str:
    """The outcome of PLAN given one ExecutedStep for its step, received between the plans."""
    message = ExecutedStep(requested=STEP, message='what happened', **executed)
    return _outcome(PLAN, PLAN_NS, NEXT_PLAN_NS, [(PLAN_NS + 10, message)])


def test_an_executed_step_and_a_dry_run():
    assert label(success=True, mapped=True) == 'executed'
    assert label(success=True, mapped=True, dry_run=True) == 'executed (dry run)'


def test_a_missed_pick_ran_and_is_not_reported_as_not_executed():
    assert label(error_code=Result.ERROR_GRASP, mapped=True) == \
        'missed pick (ran, held nothing): what happened'


@pytest.mark.parametrize('code', [Result.ERROR_UNSAFE_TARGET, Result.ERROR_CALIBRATION,
                                  Result.ERROR_INVALID_GOAL])
def test_a_step_refused_before_motion_is_refused(code):
    # An unsafe target is mapped (its targets are known) yet refused; the others are not.
    for mapped in (True, False):
        assert label(error_code=code, mapped=mapped) == 'refused (nothing moved): what happened'


@pytest.mark.parametrize('code', [Result.ERROR_FAULTED, Result.ERROR_BUSY, Result.ERROR_ARM,
                                  Result.ERROR_CANCELED])
def test_faults_and_arm_errors_are_not_executed(code):
    assert label(error_code=code, mapped=code == Result.ERROR_ARM) == \
        'not executed: what happened'


def test_a_grasp_error_without_a_mapping_is_not_a_missed_pick():
    # ERROR_GRASP always comes with its mapping; without one nothing says the step ran.
    assert label(error_code=Result.ERROR_GRASP, mapped=False) == 'not executed: what happened'


def test_an_executed_message_outside_the_plan_window_or_for_another_step_is_not_its_outcome():
    other = ExecutedStep(requested=ActionStep(step_number=1, pick_x_norm=0.1), success=True)
    late = ExecutedStep(requested=STEP, success=True)
    assert _outcome(PLAN, PLAN_NS, NEXT_PLAN_NS, [(PLAN_NS + 1, other),
                                                  (NEXT_PLAN_NS, late)]) == \
        'not executed: no executor/executed message for this step'
