"""The demo's recording read back: each policy/plan with its camera frame, outcome and episode.

A plan's camera frame is the camera/image whose capture stamp equals the plan's stamp
(ActionPlan.header.stamp is the capture time of the frame the policy planned on). Episodes end at
their task/result (task_node publishes it after the episode's last executor/executed); a plan's
task and seed are those of the newest sim/status before it (sim_node publishes one per reset).
Its outcome is the first executor/executed after it that requested its first step: executed, a
missed pick (ERROR_GRASP with mapped true: it ran and held nothing), refused (before any motion:
the task went on), or not executed (a fault, busy, arm error or cancel). Nothing is left out
silently: plans whose frame is not in the bag, and queries that got no plan (with the
policy/status outcome that says why), are listed.
"""
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rosbags.highlevel import AnyReader, AnyReaderError
from rosbags.rosbag2 import ReaderError

from llara_msgs.action import ExecuteStep
from llara_policy.model.serving import to_model_frame
from llara_policy.ros.convert import step_from_msg
from llara_policy.ros.image_conversion import image_to_numpy
from llara_policy.ros.task_ports import REFUSED_CODES

TOPICS = ('camera/image', 'policy/query', 'policy/plan', 'policy/status', 'sim/status',
          'executor/executed', 'task/result')


class BagError(Exception):
    """The recording cannot be read or lacks a topic the demo needs; the message says which."""


@dataclass(frozen=True)
class PlanView:
    """One policy/plan as the GIF shows it.

    `model_rgb` is the model frame the plan was made on (policy_node's cut of the camera
    frame); when `frame_found` is false the bag lacks that frame and `model_rgb` is blank.
    `step` counts the episode's plans from 1; `episode_end` is how the episode ended ('' when
    a later plan of the same episode follows).
    """

    query_id: int
    task: str
    seed: int
    step: int
    instruction: str
    steps: tuple
    inference_time_s: float
    model_rgb: np.ndarray
    frame_found: bool
    outcome: str
    episode_end: str


@dataclass(frozen=True)
class Recording:
    """The plans of a bag in order, plus what could not be shown (one line each)."""

    plans: tuple[PlanView, ...]
    missing_frames: tuple[str, ...]
    queries_without_plan: tuple[str, ...]


def _ns(stamp) -> int:
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def _step_fields(step) -> tuple:
    return (step.step_number, step.effector, step.object_text, step.pick_x_norm,
            step.pick_y_norm, step.place_x_norm, step.place_y_norm, step.rotation_cw_deg)


def read_messages(bag: Path) -> dict[str, list]:
    """Every message of TOPICS but the camera pixels: topic -> [(receive ns, message)].

    camera/image holds (receive ns, capture stamp ns) only; `read_frames` decodes the pixels.
    """
    messages: dict[str, list] = {topic: [] for topic in TOPICS}
    try:
        with AnyReader([Path(bag)]) as reader:
            wanted = [c for c in reader.connections if c.topic.strip('/') in messages]
            for connection, received_ns, raw in reader.messages(connections=wanted):
                message = reader.deserialize(raw, connection.msgtype)
                if connection.topic.strip('/') == 'camera/image':
                    message = _ns(message.header.stamp)
                messages[connection.topic.strip('/')].append((received_ns, message))
    except (AnyReaderError, ReaderError, OSError) as error:
        raise BagError(f'{bag}: not a readable rosbag2 recording ({error})') from None
    return messages


def read_frames(bag: Path, stamps_ns: set[int]) -> dict[int, np.ndarray]:
    """Model frames (RGB, policy_node's cut) of the camera images captured at `stamps_ns`."""
    frames = {}
    with AnyReader([Path(bag)]) as reader:
        wanted = [c for c in reader.connections if c.topic.strip('/') == 'camera/image']
        for connection, _, raw in reader.messages(connections=wanted):
            image = reader.deserialize(raw, connection.msgtype)
            stamp_ns = _ns(image.header.stamp)
            if stamp_ns in stamps_ns and stamp_ns not in frames:
                frames[stamp_ns] = to_model_frame(image_to_numpy(image, 'rgb8'))
    return frames


def _outcome(plan, received_ns: int, next_plan_ns: float, executed: list) -> str:
    """Say what the executor did with the plan's first step (before the next plan)."""
    wanted = _step_fields(plan.steps[0])
    for stamp_ns, step in executed:
        if received_ns <= stamp_ns < next_plan_ns and _step_fields(step.requested) == wanted:
            if step.success:
                return 'executed (dry run)' if step.dry_run else 'executed'
            if step.error_code == ExecuteStep.Result.ERROR_GRASP and step.mapped:
                return f'missed pick (ran, held nothing): {step.message}'
            if step.error_code in REFUSED_CODES:
                return f'refused (nothing moved): {step.message}'
            return f'not executed: {step.message}'
    return 'not executed: no executor/executed message for this step'


def _episode_end(received_ns: int, next_plan_ns: float, results: list) -> str:
    """How the episode ended, when its task/result comes before the next plan; else ''."""
    for stamp_ns, result in results:
        if stamp_ns >= received_ns:
            if stamp_ns > next_plan_ns:
                return ''
            return 'SUCCESS' if result.success else f'FAILURE: {result.message}'
    if next_plan_ns < float('inf'):
        return ''
    return 'episode end not recorded (no task/result after this plan)'


def _newest_before(items: list, received_ns: int):
    """Return the newest message received at or before `received_ns`, else None."""
    found = None
    for stamp_ns, message in items:
        if stamp_ns > received_ns:
            break
        found = message
    return found


def _queries_without_plan(messages: dict[str, list]) -> tuple[str, ...]:
    """One line per policy/query that got no policy/plan, with policy/status's outcome."""
    planned = {plan.query_id for _, plan in messages['policy/plan']}
    lines = []
    for _, query in messages['policy/query']:
        if query.query_id in planned:
            continue
        said = [s for _, s in messages['policy/status'] if s.last_query_id == query.query_id]
        why = (f'{said[-1].last_outcome}: {said[-1].last_error}'.rstrip(': ') if said
               else 'policy/status never reported it')
        lines.append(f'query {query.query_id} ({query.instruction!r}, step '
                     f'{len(query.history) + 1}): no plan ({why})')
    return tuple(lines)


def read_recording(bag: Path) -> Recording:
    """Every policy/plan of `bag` with its frame, task, seed, step, outcome and episode end."""
    messages = read_messages(bag)
    if not any(messages[t] for t in ('policy/query', 'policy/plan')):
        raise BagError(f'{bag} has no policy/query and no policy/plan (was it recorded by '
                       'recorder_node with the sim graph?)')
    plans = messages['policy/plan']
    frames = read_frames(bag, {_ns(plan.header.stamp) for _, plan in plans})
    results = messages['task/result']
    views, missing, step = [], [], 0
    for index, (received_ns, plan) in enumerate(plans):
        next_plan_ns = plans[index + 1][0] if index + 1 < len(plans) else float('inf')
        # A task/result between the previous plan and this one started a new episode.
        previous_ns = plans[index - 1][0] if index else -1
        step = 1 if any(previous_ns <= t < received_ns for t, _ in results) else step + 1
        status = _newest_before(messages['sim/status'], received_ns)
        stamp_ns = _ns(plan.header.stamp)
        frame = frames.get(stamp_ns)
        if frame is None:
            missing.append(f"query {plan.query_id}: camera frame {stamp_ns} ns (the plan's "
                           'stamp) is not in the bag')
            frame = np.zeros((plan.model_image_height, plan.model_image_width, 3), np.uint8)
        views.append(PlanView(
            plan.query_id, status.task if status else 'unknown task',
            int(status.seed) if status else -1, step, plan.instruction,
            tuple(step_from_msg(s) for s in plan.steps), float(plan.inference_time_s), frame,
            stamp_ns in frames, _outcome(plan, received_ns, next_plan_ns,
                                         messages['executor/executed']),
            _episode_end(received_ns, next_plan_ns, results)))
    return Recording(tuple(views), tuple(missing), _queries_without_plan(messages))
