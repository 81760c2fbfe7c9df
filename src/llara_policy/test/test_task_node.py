"""task_node in-process against small fake policy, executor and sim nodes written here: success
from sim/status, history = the executor's executed steps (not the steps as sent), step limit,
failed step, a missed pick (ERROR_GRASP) that enters the history while the task goes on, a step
refused before any motion (UNSAFE_TARGET, CALIBRATION, INVALID_GOAL) that uses up its step but
stays out of the history while the task goes on, silent policy, cancel, one task/result per
goal; and the ROS-free TaskLoop's endings and history."""
import itertools
import os
import threading
import time

import pytest
import rclpy
from rclpy.action import ActionClient, ActionServer, CancelResponse, GoalResponse
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.executors import MultiThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from std_msgs.msg import Header

from llara_msgs.action import ExecuteStep, RunTask
from llara_msgs.msg import (
    ActionPlan,
    ActionStep,
    PolicyQuery,
    PolicyStatus,
    SimStatus,
    TaskResult,
)
from llara_policy.errors import ConfigError
from llara_policy.ros.task_node import COMMAND_QOS, STATUS_QOS, TaskNode
from llara_policy.task_loop import (
    LLARA_MAX_STEPS,
    EpisodeStatus,
    MissedPickError,
    RefusedStepError,
    StepFailedError,
    TaskEnd,
    TaskLoop,
    TaskLoopConfig,
)

WAIT_S = 15.0  # bound of every wait; the tests normally take well under a second each
_NAMESPACES = itertools.count()
MODEL_W, MODEL_H = 256, 128  # the fake policy's model frame, pixels


def executed_of(step: ActionStep, off_frame: bool = False) -> ActionStep:
    """What the fake executor reports as executed for `step`: as a real executor's projection
    back from the base frame, it differs from the step as sent (points moved by one model
    pixel, rotation by one degree, the object phrase dropped); `off_frame` moves the pick
    point out of the model frame (a malformed result)."""
    return ActionStep(step_number=step.step_number, effector=step.effector, object_text='',
                      pick_x_norm=1.5 if off_frame else step.pick_x_norm + 1 / MODEL_W,
                      pick_y_norm=step.pick_y_norm - 1 / MODEL_H,
                      place_x_norm=step.place_x_norm - 1 / MODEL_W,
                      place_y_norm=step.place_y_norm + 1 / MODEL_H,
                      rotation_cw_deg=step.rotation_cw_deg + 1)


class FakeGraph:
    """Policy, executor and sim stand-ins in one namespace of a fresh context."""

    def __init__(self, answer=True, succeed_after=2, fail_code=0, hold_step=False,
                 initial_status=True, off_frame=False, fail_answer='', misses=0, refusals=0,
                 refusal_code=ExecuteStep.Result.ERROR_UNSAFE_TARGET):
        self.answer, self.succeed_after, self.off_frame = answer, succeed_after, off_frame
        self.misses = misses  # the first `misses` steps are missed picks (ERROR_GRASP)
        # The first `refusals` goals are refused before any motion with `refusal_code`.
        self.refusals, self.refusal_code = refusals, refusal_code
        self.fail_answer = fail_answer  # an outcome: report it in policy/status, no plan
        self.fail_code, self.hold_step = fail_code, hold_step  # fail_code: every step fails
        # A namespace of our own: other tests on this machine may run the real graph.
        self.namespace = f'/task_test_{os.getpid()}_{next(_NAMESPACES)}'
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        # Enough threads for two blocking action callbacks (ours and the fake executor's) plus
        # the cancel and result traffic, whatever the machine's CPU count.
        self.executor = MultiThreadedExecutor(num_threads=8, context=self.context)
        self.nodes = []
        self.queries, self.goals, self.feedback, self.statuses = [], [], [], []
        self.task_results = []
        self.step_canceled = threading.Event()
        self.steps_done = 0
        fake = self.add(Node('fakes', namespace=self.namespace, context=self.context))
        group = ReentrantCallbackGroup()
        self.plan_pub = fake.create_publisher(ActionPlan, 'policy/plan', COMMAND_QOS)
        self.policy_status_pub = fake.create_publisher(PolicyStatus, 'policy/status',
                                                       STATUS_QOS)
        self.status_pub = fake.create_publisher(SimStatus, 'sim/status', STATUS_QOS)
        fake.create_subscription(PolicyQuery, 'policy/query', self.on_query, COMMAND_QOS,
                                 callback_group=group)
        fake.create_subscription(TaskResult, 'task/result', self.task_results.append,
                                 COMMAND_QOS, callback_group=group)
        self.server = ActionServer(fake, ExecuteStep, 'execute_step', self.on_step,
                                   goal_callback=lambda _: GoalResponse.ACCEPT,
                                   cancel_callback=lambda _: CancelResponse.ACCEPT,
                                   callback_group=group)
        self.fake = fake
        if initial_status:
            self.publish_status()  # the reset's status, stamped before any step

    def add(self, node):
        self.nodes.append(node)
        self.executor.add_node(node)
        return node

    def start(self, **params):
        overrides = [Parameter(k, value=v) for k, v in params.items()]
        self.task_node = self.add(TaskNode(namespace=self.namespace, context=self.context,
                                           parameter_overrides=overrides))
        self.client = ActionClient(self.fake, RunTask, 'run_task')
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()
        assert self.client.wait_for_server(timeout_sec=WAIT_S)
        return self

    def publish_status(self):
        self.statuses.append(SimStatus(
            header=Header(stamp=self.fake.get_clock().now().to_msg()),
            steps=self.steps_done, success=self.steps_done >= self.succeed_after,
            done=self.steps_done >= self.succeed_after))
        self.status_pub.publish(self.statuses[-1])

    def on_query(self, query: PolicyQuery):
        self.queries.append(query)
        if self.fail_answer:
            # As policy_node: how the call for this query ended, and no plan. A failure of
            # another query first: it must not end this one.
            for query_id in (query.query_id + 1000, query.query_id):
                self.policy_status_pub.publish(PolicyStatus(
                    last_query_id=query_id, last_outcome=self.fail_answer,
                    last_error=f'answer to {query_id} has no step'))
                time.sleep(0.3)
            return
        if not self.answer:
            return
        step = ActionStep(step_number=1, object_text=f'block {query.query_id}',
                          pick_x_norm=0.25, pick_y_norm=0.5, place_x_norm=0.75,
                          place_y_norm=0.5, rotation_cw_deg=len(query.history) * 10)
        # A stale answer to an older query first: it must be ignored.
        self.plan_pub.publish(ActionPlan(query_id=query.query_id + 1000, steps=[step]))
        self.plan_pub.publish(ActionPlan(query_id=query.query_id, steps=[step],
                                         instruction=query.instruction,
                                         model_image_width=MODEL_W,
                                         model_image_height=MODEL_H))

    def on_step(self, goal_handle):
        self.goals.append(goal_handle.request)
        if self.hold_step:
            deadline = time.monotonic() + WAIT_S
            while not goal_handle.is_cancel_requested and time.monotonic() < deadline:
                time.sleep(0.01)
            self.step_canceled.set()
            goal_handle.canceled()
            return ExecuteStep.Result(success=False, error_code=7, message='canceled')
        if self.fail_code:
            goal_handle.abort()
            return ExecuteStep.Result(success=False, error_code=self.fail_code, arm_code=-7,
                                      message='the arm stopped')
        if len(self.goals) <= self.refusals:  # as the real executor: nothing moved, no step
            goal_handle.abort()
            return ExecuteStep.Result(success=False, error_code=self.refusal_code,
                                      message='target outside the workspace')
        self.steps_done += 1
        missed = self.steps_done <= self.misses
        self.publish_status()
        executed = executed_of(goal_handle.request.step, self.off_frame)
        if missed:  # as the real executor: the step ran, held nothing, and is reported
            goal_handle.abort()
            return ExecuteStep.Result(success=False, error_code=6, executed_step=executed,
                                      message='the suction held nothing at the pick')
        goal_handle.succeed()
        return ExecuteStep.Result(success=True, executed_step=executed)

    def run_task(self, instruction='put the red block in the bowl', max_steps=0,
                 cancel=False):
        sent = self.client.send_goal_async(RunTask.Goal(instruction=instruction,
                                                        max_steps=max_steps),
                                           feedback_callback=self.feedback.append)
        handle = wait_for(sent)
        assert handle.accepted
        result = handle.get_result_async()
        if cancel:  # once the step is running
            deadline = time.monotonic() + WAIT_S
            while not self.goals and time.monotonic() < deadline:
                time.sleep(0.01)
            wait_for(handle.cancel_goal_async())
        return wait_for(result)

    def wait_task_results(self, count: int) -> list:
        """The task/result messages once `count` came (bounded), after a short grace for more."""
        deadline = time.monotonic() + WAIT_S
        while len(self.task_results) < count:
            assert time.monotonic() < deadline, f'{len(self.task_results)} of {count} results'
            time.sleep(0.01)
        time.sleep(0.2)  # a second result for the same goal would arrive meanwhile
        return list(self.task_results)

    def close(self):
        self.executor.shutdown()
        for node in self.nodes:
            node.destroy_node()
        rclpy.try_shutdown(context=self.context)


def wait_for(future):
    deadline = time.monotonic() + WAIT_S
    while not future.done():
        assert time.monotonic() < deadline, 'future not done in time'
        time.sleep(0.01)
    return future.result()


@pytest.fixture
def graph(request):
    graphs = []

    def make(params=None, **kwargs):
        graphs.append(FakeGraph(**kwargs).start(**(params or {})))
        return graphs[-1]
    yield make
    for g in graphs:
        g.close()


def test_runs_until_sim_reports_success_with_executed_history(graph):
    g = graph(succeed_after=2)
    response = g.run_task()
    result = response.result
    assert response.status == 4  # SUCCEEDED
    assert result.success and result.message == 'success'
    assert len(result.steps) == 2 and len(g.goals) == 2
    # Each query carries the steps executed so far as the executor reported them (projected
    # back into the model frame), not as sent; the result's steps are the same.
    executed = [executed_of(goal.step) for goal in g.goals]
    assert executed[0] != g.goals[0].step
    assert [list(q.history) for q in g.queries] == [[], executed[:1]]
    assert list(result.steps) == executed
    assert g.queries[1].query_id > g.queries[0].query_id
    # not_before: when the sim read the scene after the last motion (the latest sim/status).
    assert [q.not_before for q in g.queries] == [s.header.stamp for s in g.statuses[:2]]
    assert all(q.instruction == 'put the red block in the bowl' for q in g.queries)
    # The plan's first step with the plan's model frame size went to the executor.
    assert g.goals[1].step.rotation_cw_deg == 10
    assert (g.goals[0].model_image_width, g.goals[0].model_image_height) == (256, 128)
    statuses = [(f.feedback.step_number, f.feedback.status) for f in g.feedback]
    assert statuses == [(1, 'executing'), (1, 'done'), (2, 'executing'), (2, 'done')]
    # One task/result, the same as the action's result.
    (published,) = g.wait_task_results(1)
    assert (published.instruction, published.max_steps, published.success,
            published.message) == ('put the red block in the bowl', LLARA_MAX_STEPS, True,
                                   'success')
    assert list(published.steps) == executed


def test_a_goal_sent_before_the_first_sim_status_waits_for_it(graph):
    # The sim's latched status may reach task_node after the first goal; the first query must
    # still ask for frames after the scene read (the status stamp), not after "now".
    g = graph(succeed_after=1, initial_status=False)
    threading.Timer(0.5, g.publish_status).start()
    response = g.run_task()
    assert response.status == 4 and response.result.success
    assert g.queries[0].not_before == g.statuses[0].header.stamp


def test_step_limit_from_goal_and_from_parameter(graph):
    g = graph(params={'max_steps': 2}, succeed_after=99)
    result = g.run_task(max_steps=3).result
    assert not result.success and result.message == 'step_limit' and len(result.steps) == 3
    result = g.run_task(max_steps=0).result
    assert not result.success and result.message == 'step_limit' and len(result.steps) == 2
    # One task/result per goal, with the limit each ran under; the history restarts per task.
    published = g.wait_task_results(2)
    assert [(r.max_steps, r.success, r.message, len(r.steps)) for r in published] == [
        (3, False, 'step_limit', 3), (2, False, 'step_limit', 2)]
    assert [len(q.history) for q in g.queries] == [0, 1, 2, 0, 1]


def test_without_sim_runs_to_the_step_limit(graph):
    g = graph(params={'success_source': 'none'}, succeed_after=1)
    result = g.run_task(max_steps=2).result
    assert result.message == 'step_limit' and len(result.steps) == 2
    # Without a sim the query's not_before is when it was made (after the last motion).
    assert all(q.not_before == q.header.stamp for q in g.queries)


@pytest.mark.parametrize('code', [ExecuteStep.Result.ERROR_ARM, ExecuteStep.Result.ERROR_FAULTED,
                                  ExecuteStep.Result.ERROR_BUSY])
def test_failed_step_aborts_with_the_executor_message(graph, code):
    g = graph(fail_code=code)
    response = g.run_task()
    assert response.status == 6  # ABORTED
    assert not response.result.success and not response.result.steps
    assert 'the arm stopped' in response.result.message
    assert f'(error_code {code}, arm_code -7)' in response.result.message
    assert g.feedback[-1].feedback.status.startswith('failed: ')
    assert len(g.goals) == len(g.queries) == 1  # the task ended at the failed step
    (published,) = g.wait_task_results(1)
    assert (published.success, published.message, list(published.steps)) == (
        False, response.result.message, [])


def test_a_missed_pick_enters_the_history_and_the_task_goes_on(graph):
    # LLaRA's protocol: a pick that holds nothing did nothing; the next query follows.
    g = graph(misses=1, succeed_after=2)
    response = g.run_task()
    result = response.result
    assert response.status == 4 and result.success  # SUCCEEDED at step 2
    assert result.message == 'success (1 missed pick)'
    executed = [executed_of(goal.step) for goal in g.goals]
    assert len(executed) == 2 and list(result.steps) == executed
    assert [list(q.history) for q in g.queries] == [[], executed[:1]]
    statuses = [(f.feedback.step_number, f.feedback.status) for f in g.feedback]
    assert statuses[:2] == [(1, 'executing'),
                            (1, 'missed pick: the suction held nothing at the pick '
                                '(error_code 6)')]
    assert statuses[2:] == [(2, 'executing'), (2, 'done')]
    (published,) = g.wait_task_results(1)
    assert (published.success, published.message) == (True, 'success (1 missed pick)')


@pytest.mark.parametrize('code', [ExecuteStep.Result.ERROR_UNSAFE_TARGET,
                                  ExecuteStep.Result.ERROR_CALIBRATION,
                                  ExecuteStep.Result.ERROR_INVALID_GOAL])
def test_a_step_refused_before_motion_uses_its_step_and_the_task_goes_on(graph, code):
    # LLaRA's evaluation: a rejected action uses up the query, adds no history entry, and the
    # episode goes on. The sim did not step, so no sim/status is awaited after the refusal.
    g = graph(refusals=1, refusal_code=code, succeed_after=1)
    response = g.run_task()
    result = response.result
    assert response.status == 4 and result.success  # SUCCEEDED at step 2
    assert result.message == 'success (1 refused step)'
    assert len(g.goals) == 2 and list(result.steps) == [executed_of(g.goals[1].step)]
    assert [list(q.history) for q in g.queries] == [[], []]  # the refused step is not history
    statuses = [(f.feedback.step_number, f.feedback.status) for f in g.feedback]
    assert statuses == [(1, 'executing'),
                        (1, f'refused: target outside the workspace (error_code {code})'),
                        (2, 'executing'), (2, 'done')]
    (published,) = g.wait_task_results(1)
    assert (published.success, published.message, len(published.steps)) == (
        True, 'success (1 refused step)', 1)


def test_steps_refused_until_the_default_budget_end_at_the_step_limit(graph):
    # LLaRA's protocol: 8 queries per episode (eval/eval-llara.py max_steps), refused or not.
    g = graph(refusals=99, succeed_after=99)
    response = g.run_task()
    result = response.result
    assert response.status == 6 and not result.success
    assert result.message == 'step_limit (8 refused steps)' and not result.steps
    assert len(g.queries) == len(g.goals) == 8
    assert all(not q.history for q in g.queries)
    assert g.steps_done == 0  # nothing ran
    (published,) = g.wait_task_results(1)
    assert (published.max_steps, published.message) == (8, 'step_limit (8 refused steps)')


def test_an_executed_step_off_the_model_frame_ends_the_task_with_an_error(graph):
    # A malformed executed step is refused (never clipped into the frame and never used as
    # history): the goal aborts naming the bad value, after the one step.
    g = graph(off_frame=True, succeed_after=99)
    response = g.run_task()
    assert response.status == 6
    assert 'step 1' in response.result.message and 'x_norm' in response.result.message
    assert len(g.goals) == 1 and len(g.queries) == 1 and not response.result.steps
    (published,) = g.wait_task_results(1)
    assert published.message == response.result.message and not published.success


def test_silent_policy_aborts_with_a_message(graph):
    g = graph(params={'policy_timeout_s': 0.5}, answer=False)
    response = g.run_task()
    assert response.status == 6
    assert 'no plan for policy query' in response.result.message
    assert not g.goals


@pytest.mark.parametrize('outcome', ['parse_failure', 'stale_frame'])
def test_a_query_answered_without_a_plan_ends_the_task_at_once(graph, outcome):
    g = graph(params={'policy_timeout_s': 30.0}, fail_answer=outcome)
    start = time.monotonic()
    response = g.run_task()
    assert time.monotonic() - start < 10.0  # not the 30 s policy timeout
    assert response.status == 6  # ABORTED
    assert (f'the policy answered query {g.queries[0].query_id} without a plan ({outcome}: '
            f'answer to {g.queries[0].query_id} has no step)') in response.result.message
    assert len(g.queries) == 1 and not g.goals  # nothing reached the executor
    (published,) = g.wait_task_results(1)
    assert not published.success and outcome in published.message


def test_cancel_cancels_the_running_step(graph):
    g = graph(hold_step=True)
    response = g.run_task(cancel=True)
    assert response.status == 5  # CANCELED
    assert response.result.message == 'canceled' and not response.result.success
    assert g.step_canceled.wait(WAIT_S)
    (published,) = g.wait_task_results(1)
    assert (published.success, published.message) == (False, 'canceled')


class ScriptedPorts:
    """TaskPorts over lists, for the ROS-free loop: plan k's first step is ('sent', k); the
    executor reports ('executed', k) for it (what it moved differs from what was sent)."""

    def __init__(self, statuses, fail_at=None, miss_at=(), refuse_at=()):
        self.statuses, self.fail_at, self.miss_at = list(statuses), fail_at, set(miss_at)
        self.refuse_at = set(refuse_at)
        self.histories, self.sent, self.feedbacks = [], [], []

    def ask_policy(self, instruction, history):
        self.histories.append(history)
        return type('Plan', (), {'steps': (('sent', len(self.histories)), ('sent', -1))})()

    def execute(self, step, plan):
        if step[1] == self.fail_at:
            raise StepFailedError('grasp failed')
        if step[1] in self.refuse_at:
            raise RefusedStepError('target outside the workspace')
        self.sent.append(step)
        if step[1] in self.miss_at:
            raise MissedPickError('nothing held', ('executed', step[1]))
        return ('executed', step[1])

    def episode_status(self):
        return self.statuses.pop(0)

    def feedback(self, step_number, plan, status):
        self.feedbacks.append((step_number, status))

    def cancel_requested(self):
        return False


def test_loop_endings_without_ros():
    done = EpisodeStatus(success=False, done=True)
    running = EpisodeStatus(success=False, done=False)
    outcome = TaskLoop(TaskLoopConfig(), ScriptedPorts([running, done])).run('x')
    assert (outcome.end, outcome.steps) == (TaskEnd.FAILURE, (('executed', 1), ('executed', 2)))
    assert outcome.message == 'the episode ended after step 2 without success'
    gave_up = EpisodeStatus(success=False, done=True, note='the oracle gave up')
    outcome = TaskLoop(TaskLoopConfig(), ScriptedPorts([gave_up])).run('x')
    assert outcome.message == ('the episode ended after step 1 without success '
                               '(the oracle gave up)')
    outcome = TaskLoop(TaskLoopConfig(), ScriptedPorts([running], fail_at=2)).run('x')
    assert outcome.end is TaskEnd.FAILURE and 'grasp failed' in outcome.message
    assert outcome.steps == (('executed', 1),)
    outcome = TaskLoop(TaskLoopConfig(max_steps=3), ScriptedPorts([None] * 3)).run('x')
    assert (outcome.end, len(outcome.steps)) == (TaskEnd.STEP_LIMIT, 3)


def test_history_is_the_executed_steps_not_the_steps_sent():
    ports = ScriptedPorts([None] * 3)
    outcome = TaskLoop(TaskLoopConfig(max_steps=3), ports).run('x')
    # Only each plan's first step was sent; the next query's history is what execute returned.
    assert ports.sent == [('sent', 1), ('sent', 2), ('sent', 3)]
    assert ports.histories == [(), (('executed', 1),), (('executed', 1), ('executed', 2))]
    assert outcome.steps == (('executed', 1), ('executed', 2), ('executed', 3))


@pytest.mark.parametrize('field,value', [('max_steps', 0), ('policy_timeout_s', 0.0),
                                         ('success_source', 'vima')])
def test_config_rejects_bad_values(field, value):
    with pytest.raises(ConfigError, match=field):
        TaskLoopConfig(**{field: value})


def test_a_missed_pick_then_success_is_a_success_with_both_steps_in_the_history():
    running, won = EpisodeStatus(success=False, done=False), EpisodeStatus(True, True)
    ports = ScriptedPorts([running, won], miss_at={1})
    outcome = TaskLoop(TaskLoopConfig(), ports).run('x')
    assert (outcome.end, outcome.success) == (TaskEnd.SUCCESS, True)
    assert outcome.steps == (('executed', 1), ('executed', 2)) and outcome.missed_picks == 1
    assert outcome.message == 'success (1 missed pick)'
    assert ports.histories == [(), (('executed', 1),)]  # the miss is in the next query's history
    assert ports.feedbacks == [(1, 'executing'), (1, 'missed pick: nothing held'),
                               (2, 'executing'), (2, 'done')]


def test_missed_picks_until_the_step_limit_end_at_the_step_limit():
    ports = ScriptedPorts([EpisodeStatus(False, False)] * 3, miss_at={1, 2, 3})
    outcome = TaskLoop(TaskLoopConfig(max_steps=3), ports).run('x')
    assert (outcome.end, outcome.success, outcome.missed_picks) == (TaskEnd.STEP_LIMIT, False, 3)
    assert outcome.steps == (('executed', 1), ('executed', 2), ('executed', 3))
    assert outcome.message == 'step_limit (3 missed picks)'


def test_a_missed_pick_that_ends_the_episode_ends_the_task_and_other_failures_still_end_it():
    # The episode status is read after a miss as after any step: a sim episode that ends, ends.
    ports = ScriptedPorts([EpisodeStatus(False, True)], miss_at={1})
    outcome = TaskLoop(TaskLoopConfig(), ports).run('x')
    assert outcome.end is TaskEnd.FAILURE and outcome.steps == (('executed', 1),)
    assert outcome.message == 'the episode ended after step 1 without success (1 missed pick)'
    ports = ScriptedPorts([EpisodeStatus(False, False)], miss_at={1}, fail_at=2)
    outcome = TaskLoop(TaskLoopConfig(), ports).run('x')
    assert outcome.end is TaskEnd.FAILURE and outcome.steps == (('executed', 1),)
    assert outcome.message == 'step 2 failed: grasp failed (1 missed pick)'


def test_a_refused_step_then_success_keeps_the_refused_step_out_of_the_history():
    # Only the executed step reads the episode status: after the refusal nothing changed, so
    # the one status (success) must be the one read after step 2.
    ports = ScriptedPorts([EpisodeStatus(True, True)], refuse_at={1})
    outcome = TaskLoop(TaskLoopConfig(), ports).run('x')
    assert (outcome.end, outcome.success) == (TaskEnd.SUCCESS, True)
    assert outcome.steps == (('executed', 2),) and outcome.refused_steps == 1
    assert outcome.message == 'success (1 refused step)'
    assert ports.histories == [(), ()]
    assert ports.feedbacks == [(1, 'executing'), (1, 'refused: target outside the workspace'),
                               (2, 'executing'), (2, 'done')]


def test_refused_steps_until_the_step_limit_end_at_the_step_limit_with_no_history():
    ports = ScriptedPorts([], refuse_at={1, 2, 3})
    outcome = TaskLoop(TaskLoopConfig(max_steps=3), ports).run('x')
    assert (outcome.end, outcome.success, outcome.steps) == (TaskEnd.STEP_LIMIT, False, ())
    assert (outcome.refused_steps, outcome.missed_picks) == (3, 0)
    assert outcome.message == 'step_limit (3 refused steps)'
    assert ports.histories == [(), (), ()] and ports.sent == []
    # The default budget is LLaRA's 8 queries (eval/eval-llara.py max_steps).
    ports = ScriptedPorts([], refuse_at=set(range(1, 20)))
    outcome = TaskLoop(TaskLoopConfig(), ports).run('x')
    assert len(ports.histories) == outcome.refused_steps == 8


def test_refused_steps_count_against_the_budget_between_executed_steps_and_misses():
    running = EpisodeStatus(False, False)
    ports = ScriptedPorts([running] * 2, refuse_at={2}, miss_at={3})
    outcome = TaskLoop(TaskLoopConfig(max_steps=3), ports).run('x')
    assert outcome.end is TaskEnd.STEP_LIMIT
    assert outcome.steps == (('executed', 1), ('executed', 3))
    assert ports.histories == [(), (('executed', 1),), (('executed', 1),)]
    assert outcome.message == 'step_limit (1 missed pick, 1 refused step)'
    # A failure that is not a refusal still ends the task after a refusal.
    ports = ScriptedPorts([], refuse_at={1}, fail_at=2)
    outcome = TaskLoop(TaskLoopConfig(), ports).run('x')
    assert outcome.end is TaskEnd.FAILURE and outcome.steps == ()
    assert outcome.message == 'step 2 failed: grasp failed (1 refused step)'
