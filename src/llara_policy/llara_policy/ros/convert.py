"""Message <-> core type conversions of the ROS layer (llara_msgs <-> types / executor results).

Every node converts through here, so a field's unit and convention is written down once: the
ActionStep message's normalized model-frame points are `types.ActionStep`'s, an
`ExecutionResult`'s millimetre targets become metre `PointStamped`s in the calibration's base
frame, and any error becomes ExecuteStep's result codes through `arms.executor.failure_of`.
"""
from collections.abc import Sequence
from typing import Optional

from builtin_interfaces.msg import Time
from geometry_msgs.msg import Point, PointStamped
from std_msgs.msg import Header

from llara_msgs.action import ExecuteStep
from llara_msgs.msg import ActionPlan, ExecutedStep
from llara_msgs.msg import ActionStep as ActionStepMsg
from llara_policy.arms.executor_types import (
    ErrorCode,
    ExecutionFailure,
    ExecutionResult,
    MappedStep,
    Phase,
    failure_of,
)
from llara_policy.errors import SimError, ValueRangeError
from llara_policy.types import ActionStep, Effector, ImagePoint

# ActionStep.msg's EFFECTOR_* constants.
EFFECTOR_CODES = {Effector.SUCTION: ActionStepMsg.EFFECTOR_SUCTION,
                  Effector.SPATULA: ActionStepMsg.EFFECTOR_SPATULA}
EFFECTORS = {code: effector for effector, code in EFFECTOR_CODES.items()}


def step_from_msg(msg: ActionStepMsg) -> ActionStep:
    """Return the core step of a message; ValueRangeError for a point outside [0, 1] etc."""
    if msg.effector not in EFFECTORS:
        raise ValueRangeError(f'ActionStep.effector must be one of {sorted(EFFECTORS)}, '
                              f'got {msg.effector}')
    return ActionStep(ImagePoint(msg.pick_x_norm, msg.pick_y_norm),
                      ImagePoint(msg.place_x_norm, msg.place_y_norm), msg.rotation_cw_deg,
                      object_text=msg.object_text, effector=EFFECTORS[msg.effector],
                      step_number=msg.step_number)


def step_to_msg(step: ActionStep) -> ActionStepMsg:
    """Return the message of a core step."""
    return ActionStepMsg(step_number=step.step_number, effector=EFFECTOR_CODES[step.effector],
                         object_text=step.object_text,
                         pick_x_norm=float(step.pick.x_norm), pick_y_norm=float(step.pick.y_norm),
                         place_x_norm=float(step.place.x_norm),
                         place_y_norm=float(step.place.y_norm),
                         rotation_cw_deg=int(step.rotation_cw_deg))


def plan_msg(steps: Sequence[ActionStep], raw_text: str, instruction: str, header: Header,
             model_size_px: tuple[int, int], query_id: int = 0) -> ActionPlan:
    """Return an ActionPlan of parsed steps and their text; `model_size_px` is (width, height)."""
    return ActionPlan(header=header, instruction=instruction, raw_text=raw_text,
                      steps=[step_to_msg(step) for step in steps],
                      model_image_width=int(model_size_px[0]),
                      model_image_height=int(model_size_px[1]), query_id=int(query_id))


def feedback_msg(phase: Phase, fraction: float) -> ExecuteStep.Feedback:
    """Return ExecuteStep's feedback for a phase that starts with `fraction` of the step done."""
    return ExecuteStep.Feedback(phase=int(phase), phase_name=phase.name.lower(),
                                progress=float(fraction))


def _point_m(xyz_mm, frame_id: str, stamp: Time) -> PointStamped:
    x, y, z = (float(v) / 1000.0 for v in xyz_mm)
    return PointStamped(header=Header(stamp=stamp, frame_id=frame_id), point=Point(x=x, y=y, z=z))


MISSED_PICK_MESSAGE = ('the suction held nothing at the pick; it is off and the arm retreated '
                       '(the step ran and did nothing; the executor is not faulted)')


def result_msg(result: ExecutionResult, base_frame: str, stamp: Time) -> ExecuteStep.Result:
    """Return the result of an executed (or dry-run) step; targets in metres.

    A missed pick (`result.missed_pick`) is success false, ERROR_GRASP, with the targets and
    `executed_step` filled as for a success: the step ran, and enters LLaRA's history.
    """
    if result.missed_pick:
        success, code, message = False, ErrorCode.GRASP, MISSED_PICK_MESSAGE
    elif result.dry_run:
        success, code, message = True, ErrorCode.NONE, 'dry run: mapped and checked, nothing moved'
    else:
        success, code, message = True, ErrorCode.NONE, 'executed'
    return ExecuteStep.Result(
        success=success, error_code=int(code), arm_code=0, message=message,
        pick_in_base=_point_m(result.pick_xyz_mm, base_frame, stamp),
        place_in_base=_point_m(result.place_xyz_mm, base_frame, stamp),
        yaw_change_deg=float(result.action.yaw_change_deg),
        executed_step=step_to_msg(result.executed), dry_run=result.dry_run)


def failure(error: BaseException) -> ExecutionFailure:
    """Return ExecuteStep's code for an error (`failure_of`; SimError: ERROR_INVALID_GOAL).

    A SimError comes before any motion: the sim episode is over or not started.
    """
    if isinstance(error, SimError):
        return ExecutionFailure(ErrorCode.INVALID_GOAL, 0, f'{type(error).__name__}: {error}')
    return failure_of(error)


def failure_msg(failed: ExecutionFailure, dry_run: bool) -> ExecuteStep.Result:
    """Return the result of a step that was refused or failed."""
    return ExecuteStep.Result(success=False, error_code=int(failed.error_code),
                              arm_code=int(failed.arm_code), message=failed.message,
                              dry_run=dry_run)


def executed_msg(goal: ExecuteStep.Goal, mapped: Optional[MappedStep],
                 result: ExecuteStep.Result, base_frame: str, stamp: Time) -> ExecutedStep:
    """Return the ExecutedStep of one handled goal: the request, the mapping, the outcome.

    `mapped` is None for a goal refused before mapping (mapped = false); otherwise its targets
    (on the table plane, metres) and history form are filled in. The outcome fields are the
    result's, so the topic and the action result never disagree.
    """
    msg = ExecutedStep(
        header=Header(stamp=stamp, frame_id=base_frame), requested=goal.step,
        model_image_width=goal.model_image_width, model_image_height=goal.model_image_height,
        mapped=mapped is not None, success=result.success, error_code=result.error_code,
        arm_code=result.arm_code, message=result.message, dry_run=result.dry_run)
    if mapped is not None:
        msg.executed = step_to_msg(mapped.executed)
        for name, (x_m, y_m) in (('pick_in_base', mapped.action.pick_xy_m),
                                 ('place_in_base', mapped.action.place_xy_m)):
            setattr(msg, name, Point(x=float(x_m), y=float(y_m), z=float(mapped.table_z_m)))
        msg.yaw_change_deg = float(mapped.action.yaw_change_deg)
    return msg
