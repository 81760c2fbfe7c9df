"""End to end: the embedded launcher runs sim.launch.py with record:=true (recorder_node starts
with the graph), two oracle episodes of pick_in_order_then_restore (several steps each, so the
history grows), and the bag it leaves is read back with `rosbags.highlevel.AnyReader` alone (no
ROS): camera frames decode to 256x128 RGB; per episode one task/result whose success is the
launcher's and whose steps are the episode's executor/executed steps in history form; the
executed steps' base-frame targets lie in the sim's workspace on the table and their model
points within a model pixel of the plan's first step; the history of the episode's query k is
its executed steps 1..k-1. The run gets a DDS domain of its own so other graphs on this machine
are not seen."""
import math
import os
from pathlib import Path
import re

from graph_launch import assert_every_node_stopped, run_launcher
import numpy as np
import pytest

from llara_policy.workspace import Workspace

for module in ('sim_node', 'policy_node', 'task_node', 'recorder_node'):
    pytest.importorskip(f'llara_policy.ros.{module}', reason=f'{module} not in this checkout')
highlevel = pytest.importorskip('rosbags.highlevel')

RUN_TIMEOUT_S = 300  # two oracle episodes take seconds; model-free start-up included
TASK, EPISODES = 'pick_in_order_then_restore', 2  # 3 oracle steps per episode
# sim_node's executor runs in the default envelope (Workspace's defaults are the sim's set-up).
WORKSPACE = Workspace()
MAX_OFFSET_PX = 1.0  # executed vs planned model point, per axis, model pixels
# The launcher's line per episode, e.g. "[launch] episode 1/2 rotate seed 1000000: success after
# 1 steps (success)".
EPISODE_LINE = re.compile(r'\[launch\] episode (\d+)/\d+ \S+ seed \d+: (success|failure) '
                          r'after (\d+) steps \((.*)\)$')


def read_bag(path: Path) -> dict[str, list]:
    """Every message of the bag, deserialized, by topic: (receive time ns, message) in order."""
    messages: dict[str, list] = {}
    with highlevel.AnyReader([path]) as reader:
        for connection, stamp_ns, raw in reader.messages():
            messages.setdefault(connection.topic.lstrip('/'), []).append(
                (stamp_ns, reader.deserialize(raw, connection.msgtype)))
    return messages


def step_fields(step) -> tuple:
    """An ActionStep message as a comparable tuple (rosbags messages have no ROS __eq__)."""
    return (step.step_number, step.effector, step.object_text, step.pick_x_norm,
            step.pick_y_norm, step.place_x_norm, step.place_y_norm, step.rotation_cw_deg)


def by_episode(stamped: list, ends_ns: list[int]) -> list[list]:
    """Split (stamp, message) pairs at the task results' receive times (one list per episode).

    Each episode's messages all precede its task/result: the executor publishes a step before
    its action result, task_node publishes the result after the last step's.
    """
    episodes, start = [], -1
    for end in ends_ns:
        episodes.append([m for stamp, m in stamped if start < stamp <= end])
        start = end
    assert sum(map(len, episodes)) == len(stamped), 'messages after the last task/result'
    return episodes


def check_executed_step(executed, plan) -> None:
    """One executor/executed message against the plan whose first step it executed."""
    assert (executed.mapped, executed.success, executed.error_code, executed.dry_run) == (
        True, True, 0, False), executed.message
    assert executed.header.frame_id  # the base frame of the targets
    assert step_fields(executed.requested) == step_fields(plan.steps[0])
    assert (executed.model_image_width, executed.model_image_height) == (
        plan.model_image_width, plan.model_image_height)
    for point in (executed.pick_in_base, executed.place_in_base):
        assert WORKSPACE.x_min_m <= point.x <= WORKSPACE.x_max_m, point
        assert WORKSPACE.y_min_m <= point.y <= WORKSPACE.y_max_m, point
        assert WORKSPACE.reach_min_m <= math.hypot(point.x, point.y) <= WORKSPACE.reach_max_m
        assert point.z == pytest.approx(WORKSPACE.table_z_m)  # targets on the table plane
    planned, done = plan.steps[0], executed.executed
    width, height = plan.model_image_width, plan.model_image_height
    for axis, size in (('pick_x_norm', width), ('pick_y_norm', height),
                       ('place_x_norm', width), ('place_y_norm', height)):
        offset_px = abs(getattr(done, axis) - getattr(planned, axis)) * size
        assert offset_px <= MAX_OFFSET_PX, (axis, offset_px)
    assert (done.step_number, done.effector) == (planned.step_number, planned.effector)


def test_record_true_records_oracle_episodes_readable_without_ros(tmp_path):
    bag = tmp_path / 'bag'
    code, output = run_launcher('sim.launch.py', 'policy:=oracle', f'task:={TASK}',
                                f'episodes:={EPISODES}', 'renderer:=tiny', 'record:=true',
                                f'record_dir:={bag}', timeout_s=RUN_TIMEOUT_S,
                                domain_seed=os.getpid() + 7)
    assert code == 0, output[-4000:]
    lines = output.splitlines()
    launched = [m.groups() for m in map(EPISODE_LINE.match, lines) if m]
    assert [int(number) for number, *_ in launched] == list(range(1, EPISODES + 1)), lines
    # The table ends with `success: K/N`; the recorder may log after it while stopping.
    wins = sum(outcome == 'success' for _, outcome, _, _ in launched)
    assert f'success: {wins}/{EPISODES}' in lines, output[-4000:]
    assert wins == EPISODES, output[-4000:]  # the oracle solves these seeds
    assert any(line.startswith('[recorder_node]') for line in lines), output[-4000:]
    assert_every_node_stopped(output)
    assert (bag / 'metadata.yaml').is_file(), output[-4000:]

    messages = read_bag(bag)
    images = [image for _, image in messages.get('camera/image', [])]
    assert images, sorted(messages)
    for image in images:
        assert image.encoding == 'rgb8'
        frame = np.frombuffer(image.data, np.uint8).reshape(image.height, image.step)
        frame = frame[:, :image.width * 3].reshape(image.height, image.width, 3)
        assert frame.shape == (128, 256, 3)  # height 128, width 256: a 256x128 RGB frame
    assert np.asarray(images[-1].data).any()  # not a blank frame
    statuses = [status for _, status in messages.get('sim/status', [])]
    assert sum(s.success for s in statuses) == EPISODES, [(s.steps, s.success) for s in statuses]
    assert all(s.task == TASK for s in statuses)

    # One task/result per episode, as the launcher saw it.
    results = messages.get('task/result', [])
    assert [(r.success, len(r.steps), r.message) for _, r in results] == [
        (outcome == 'success', int(steps), message) for _, outcome, steps, message in launched]
    ends_ns = [stamp for stamp, _ in results]
    executed = by_episode(messages.get('executor/executed', []), ends_ns)
    queries = by_episode(messages.get('policy/query', []), ends_ns)
    plans = {plan.query_id: plan for _, plan in messages.get('policy/plan', [])}
    for (_, result), steps, asked in zip(results, executed, queries, strict=True):
        # The result's steps are the episode's executed steps in history form, in order.
        assert [step_fields(s) for s in result.steps] == [step_fields(e.executed) for e in steps]
        assert len(steps) > 1  # a history to check
        # Query k (in query_id order) carries executed steps 1..k-1 and led to step k.
        asked = sorted(asked, key=lambda q: q.query_id)
        assert len(asked) == len(steps)
        for k, (query, step) in enumerate(zip(asked, steps, strict=True)):
            assert query.instruction == result.instruction
            assert [step_fields(s) for s in query.history] == [
                step_fields(e.executed) for e in steps[:k]]
            check_executed_step(step, plans[query.query_id])
