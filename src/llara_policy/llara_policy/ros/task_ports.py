"""The ports of one RunTask goal: task_node's publishers, subscriptions and ExecuteStep client.

`GoalPorts` is the `TaskPorts` (task_loop) of one goal: it asks the policy (a PolicyQuery on
`policy/query`, waiting for the ActionPlan answering it, or for a policy/status saying no plan
will come), sends one step to `execute_step` and waits for its result, and waits for the
`sim/status` published after the step. Every wait is bounded and polls the goal's cancel flag;
a cancel while a step runs cancels the ExecuteStep goal. The node (task_node) owns the
entities, the condition the waits sleep on and the latest messages; this module owns the
protocol of one goal.
"""
from collections.abc import Sequence
import time
from typing import Optional

from rclpy.time import Time
from std_msgs.msg import Header

from llara_msgs.action import ExecuteStep, RunTask
from llara_msgs.msg import ActionPlan, PolicyQuery
from llara_policy.ros import convert
from llara_policy.task_loop import (
    EpisodeStatus,
    MissedPickError,
    RefusedStepError,
    StepFailedError,
    TaskCanceledError,
    TaskLoopError,
)
from llara_policy.types import ActionStep

_POLL_S = 0.05  # how often a wait looks at the cancel flag
# ExecuteStep results of a step refused before any motion (Executor.execute raises these
# errors before its first arm call; failure_of maps them to these codes).
REFUSED_CODES = frozenset((ExecuteStep.Result.ERROR_UNSAFE_TARGET,
                           ExecuteStep.Result.ERROR_CALIBRATION,
                           ExecuteStep.Result.ERROR_INVALID_GOAL))


def _policy_subscribed(node) -> bool:
    """Return whether a policy is up to answer policy/query.

    The node that publishes policy/plan must itself subscribe to policy/query, and every
    discovered subscriber of policy/query must be matched. Neither half alone will do: a
    recorder also subscribes to queries and never answers, and discovery may announce the
    policy's plan publisher before its query subscription.
    """
    answering = {(i.node_name, i.node_namespace)
                 for i in node.get_publishers_info_by_topic(node.plan_sub.topic_name)}
    subscribers = node.get_subscriptions_info_by_topic(node.query_pub.topic_name)
    return (any((i.node_name, i.node_namespace) in answering for i in subscribers)
            and node.query_pub.get_subscription_count() >= len(subscribers))


class GoalPorts:
    """`TaskPorts` for one RunTask goal, over the node's publishers, subscriptions and client."""

    def __init__(self, node, goal_handle):
        self.node, self.goal_handle = node, goal_handle
        self.config = node.config
        self.step_sent_ns = 0

    def cancel_requested(self) -> bool:
        """Return whether the RunTask goal is being canceled."""
        return self.goal_handle.is_cancel_requested

    def _wait(self, ready, timeout_s: float, what: str):
        """Poll `ready()` until not None; TaskCanceledError on cancel, TaskLoopError on timeout."""
        deadline = time.monotonic() + timeout_s
        with self.node.condition:
            while True:
                value = ready()
                if value is not None:
                    return value
                if self.cancel_requested():
                    raise TaskCanceledError(f'canceled while waiting for {what}')
                if time.monotonic() >= deadline:
                    raise TaskLoopError(f'no {what} within {timeout_s:g} s')
                self.node.condition.wait(_POLL_S)

    def ask_policy(self, instruction: str, history: Sequence) -> ActionPlan:
        """Publish a PolicyQuery (not_before = now) and wait for the plan answering it."""
        node = self.node
        deadline = time.monotonic() + self.config.policy_timeout_s
        self._wait(lambda: True if _policy_subscribed(node) else None,
                   self.config.policy_timeout_s, 'subscriber on policy/query (policy_node)')
        if self.config.success_source == 'sim':
            # A goal that arrives before the sim's latched status would otherwise ask for a
            # frame newer than "now", which the oracle's plan (stamped at the reset) never is.
            self._wait(lambda: node.sim_status, self.config.status_timeout_s,
                       'first sim/status (sim_node)')
        with node.condition:
            node.query_id += 1
            query_id = node.query_id
            node.plans.clear()
            node.pending_query_id = query_id
            status = node.sim_status
        now = node.get_clock().now().to_msg()
        # After the last motion: in sim, when the sim read the scene after it (the stamp of the
        # latest sim/status: the reset's or the last step's, which the oracle's plan shares);
        # on the robot, now (the ExecuteStep result came after the motion ended).
        not_before = status.header.stamp if status is not None else now
        node.query_pub.publish(PolicyQuery(header=Header(stamp=now), query_id=query_id,
                                           instruction=instruction,
                                           history=[convert.step_to_msg(s) for s in history],
                                           not_before=not_before))

        def plan_or_failure():
            plan = node.plans.pop(query_id, None)
            status = node.policy_status
            if plan is None and status is not None and status.last_query_id == query_id \
                    and status.last_outcome not in ('', 'plan'):
                # No plan will come for this query: end now rather than at policy_timeout_s.
                raise TaskLoopError(f'the policy answered query {query_id} without a plan '
                                    f'({status.last_outcome}: {status.last_error})')
            return plan

        return self._wait(plan_or_failure, max(deadline - time.monotonic(), _POLL_S),
                          f'plan for policy query {query_id} on policy/plan')

    def execute(self, step, plan: ActionPlan) -> ActionStep:
        """Send `step` as an ExecuteStep goal (model frame size from `plan`); wait for it.

        Returns the executor's executed step (core type; ValueRangeError for a malformed one).
        Raises MissedPickError with that step for an ERROR_GRASP result and RefusedStepError
        for a step refused before any motion (REFUSED_CODES; a warning is logged for both),
        StepFailedError for any other failed result.
        """
        client = self.node.execute_client
        if not client.wait_for_server(timeout_sec=self.config.server_timeout_s):
            raise TaskLoopError(f'no execute_step action server within '
                                f'{self.config.server_timeout_s:g} s')
        goal = ExecuteStep.Goal(step=step, model_image_width=plan.model_image_width,
                                model_image_height=plan.model_image_height,
                                dry_run=self.config.dry_run)
        self.step_sent_ns = self.node.get_clock().now().nanoseconds
        sent = client.send_goal_async(goal)
        handle = self._wait_future(sent, self.config.server_timeout_s, 'execute_step answer',
                                   on_cancel=None)
        if not handle.accepted:
            raise StepFailedError('execute_step rejected the goal')
        response = self._wait_future(handle.get_result_async(), self.config.step_timeout_s,
                                     'execute_step result', on_cancel=handle)
        result = response.result
        if not result.success:
            code = f'error_code {result.error_code}'
            if result.arm_code:
                code += f', arm_code {result.arm_code}'
            if result.error_code == ExecuteStep.Result.ERROR_GRASP:
                self.node.get_logger().warning(f'missed pick, the task goes on: '
                                               f'{result.message}')
                raise MissedPickError(f'{result.message} ({code})',
                                      convert.step_from_msg(result.executed_step))
            if result.error_code in REFUSED_CODES:
                self.node.get_logger().warning(f'step refused before any motion, the task '
                                               f'goes on: {result.message} ({code})')
                raise RefusedStepError(f'{result.message} ({code})')
            raise StepFailedError(f'{result.message} ({code})')
        return convert.step_from_msg(result.executed_step)

    def _wait_future(self, future, timeout_s: float, what: str, on_cancel):
        """Wait for a future; on a RunTask cancel or timeout cancel `on_cancel` (a goal handle)."""
        future.add_done_callback(lambda _: self.node.notify())
        try:
            self._wait(lambda: True if future.done() else None, timeout_s, what)
        except (TaskCanceledError, TaskLoopError):
            if on_cancel is not None:
                self._cancel_step(on_cancel)
            raise
        return future.result()

    def _cancel_step(self, handle) -> None:
        """Cancel the running ExecuteStep goal and wait (bounded) for the executor to stop it."""
        cancel = handle.cancel_goal_async()
        deadline = time.monotonic() + self.config.server_timeout_s
        while not cancel.done() and time.monotonic() < deadline:
            time.sleep(_POLL_S)

    def episode_status(self) -> Optional[EpisodeStatus]:
        """Wait for the sim/status published after the step (None with success_source none)."""
        if self.config.success_source == 'none':
            return None
        node = self.node

        def after_step():
            # The status the sim published after this step: stamped at or after the goal was
            # sent (a status from the previous step or the reset is stamped before that).
            status = node.sim_status
            if status is None or Time.from_msg(status.header.stamp).nanoseconds < \
                    self.step_sent_ns:
                return None
            return status

        status = self._wait(after_step, self.config.status_timeout_s,
                            'sim/status after the step')
        return EpisodeStatus(success=status.success, done=status.done, note=status.note)

    def feedback(self, step_number: int, plan, status: str) -> None:
        """Publish RunTask feedback for the step."""
        self.goal_handle.publish_feedback(RunTask.Feedback(
            step_number=step_number, plan=plan if plan is not None else ActionPlan(),
            status=status))
