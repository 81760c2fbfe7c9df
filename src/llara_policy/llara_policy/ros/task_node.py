"""task_node: the `run_task` action (RunTask) closing the loop policy -> executor -> history.

Parameters are the fields of `task_loop.TaskLoopConfig`. Per step it publishes a PolicyQuery on
`policy/query` (not_before = after the last motion), waits for the ActionPlan with that
query_id on `policy/plan`, sends the plan's first step to the `execute_step` action and, with
`success_source:=sim`, waits for the `sim/status` published after that step. The history of the
next query is the executed steps (ExecuteStep.Result.executed_step: the executed targets
projected back into the model frame), not the plans' steps. A step whose result is ERROR_GRASP
(a missed pick: it ran, held nothing, and the executor is ready) is logged as a warning and
enters the history like any executed step; the task goes on (LLaRA's protocol), and the result
message counts the misses. A step the executor refused before any motion (ERROR_UNSAFE_TARGET,
ERROR_CALIBRATION, ERROR_INVALID_GOAL: nothing moved, the executor is ready) is logged as a
warning and reported as 'refused: <reason>'; it stays out of the history, uses up its step and
the task goes on, as LLaRA's evaluation goes on after a rejected action (no sim/status is
awaited: the sim did not step). Any other failed step (fault, busy, arm error, cancel) ends the
task. Every wait is bounded; a cancel of
the RunTask goal cancels the running ExecuteStep goal. One task at a time. Every finished goal,
whatever its ending, is also published as a TaskResult on `task/result` (for recorders and
monitors: the action's result travels on a hidden topic). The protocol of one goal (queries,
steps, waits) is `task_ports.GoalPorts`.
"""
import threading
from typing import Optional

from rclpy.action import ActionClient, ActionServer, CancelResponse, GoalResponse
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import Header

from llara_msgs.action import ExecuteStep, RunTask
from llara_msgs.msg import ActionPlan, PolicyQuery, PolicyStatus, SimStatus, TaskResult
from llara_policy.ros import convert
from llara_policy.ros.params import declare_config
from llara_policy.ros.run import run_node
from llara_policy.ros.task_ports import GoalPorts
from llara_policy.task_loop import TaskEnd, TaskLoop, TaskLoopConfig

NODE_NAME = 'task_node'
COMMAND_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
STATUS_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                        durability=DurabilityPolicy.TRANSIENT_LOCAL)
# task/result: COMMAND_QOS, not latched. A result is an event of one episode; a recorder or
# monitor started later must not take an old task's result for one of its own episodes.
RESULT_TOPIC = 'task/result'


class TaskNode(Node):
    """Serves `run_task`; see the module docstring."""

    def __init__(self, **kwargs):
        super().__init__(NODE_NAME, **kwargs)
        self.config = declare_config(self, TaskLoopConfig)
        self.condition = threading.Condition()
        self.query_id = 0
        self.pending_query_id = 0
        self.plans: dict[int, ActionPlan] = {}
        self.sim_status: Optional[SimStatus] = None
        self.policy_status: Optional[PolicyStatus] = None
        self.busy = False
        group = ReentrantCallbackGroup()
        self.query_pub = self.create_publisher(PolicyQuery, 'policy/query', COMMAND_QOS)
        self.result_pub = self.create_publisher(TaskResult, RESULT_TOPIC, COMMAND_QOS)
        self.plan_sub = self.create_subscription(
            ActionPlan, 'policy/plan', self.on_plan, COMMAND_QOS, callback_group=group)
        self.create_subscription(PolicyStatus, 'policy/status', self.on_policy_status,
                                 STATUS_QOS, callback_group=group)
        if self.config.success_source == 'sim':
            self.create_subscription(SimStatus, 'sim/status', self.on_sim_status, STATUS_QOS,
                                     callback_group=group)
        self.execute_client = ActionClient(self, ExecuteStep, 'execute_step',
                                           callback_group=group)
        self.server = ActionServer(self, RunTask, 'run_task', self.execute_goal,
                                   goal_callback=self.on_goal,
                                   cancel_callback=lambda _: CancelResponse.ACCEPT,
                                   callback_group=group)
        self.get_logger().info(f'run_task ready (success from {self.config.success_source}, '
                               f'default max_steps {self.config.max_steps})')

    def notify(self) -> None:
        """Wake the goal's waits."""
        with self.condition:
            self.condition.notify_all()

    def on_plan(self, plan: ActionPlan) -> None:
        """Keep the plan answering the pending query; plans for older queries are dropped."""
        with self.condition:
            if plan.query_id and plan.query_id == self.pending_query_id:
                self.plans[plan.query_id] = plan
                self.condition.notify_all()

    def on_policy_status(self, status: PolicyStatus) -> None:
        """Remember the policy's latest status (how its last query ended)."""
        with self.condition:
            self.policy_status = status
            self.condition.notify_all()

    def on_sim_status(self, status: SimStatus) -> None:
        """Remember the latest episode status."""
        with self.condition:
            self.sim_status = status
            self.condition.notify_all()

    def on_goal(self, goal) -> GoalResponse:
        """Accept one task at a time."""
        with self.condition:
            if self.busy:
                self.get_logger().warning('run_task goal rejected: a task is running')
                return GoalResponse.REJECT
            self.busy = True
        return GoalResponse.ACCEPT

    def execute_goal(self, goal_handle) -> RunTask.Result:
        """Run the task loop for one goal; the result's message says why it ended."""
        request = goal_handle.request
        try:
            loop = TaskLoop(self.config, GoalPorts(self, goal_handle))
            max_steps = loop.step_limit(request.max_steps)
            self.get_logger().info(f'task {request.instruction!r} (max_steps {max_steps})')
            outcome = loop.run(request.instruction, request.max_steps)
        finally:
            with self.condition:
                self.busy = False
                self.pending_query_id = 0
        steps = [convert.step_to_msg(step) for step in outcome.steps]
        # Before the goal's status changes: whoever waits for the action result (the launcher
        # stopping a recording) finds task/result already sent.
        self.result_pub.publish(TaskResult(
            header=Header(stamp=self.get_clock().now().to_msg()),
            instruction=request.instruction, max_steps=max_steps, success=outcome.success,
            message=outcome.message, steps=steps))
        if outcome.end is TaskEnd.SUCCESS:
            goal_handle.succeed()
        elif outcome.end is TaskEnd.CANCELED and goal_handle.is_cancel_requested:
            goal_handle.canceled()
        else:
            goal_handle.abort()
        summary = f'task ended after {len(outcome.steps)} steps: {outcome.message}'
        if outcome.success:
            self.get_logger().info(summary)
        else:
            self.get_logger().warning(summary)
        return RunTask.Result(success=outcome.success, steps=steps, message=outcome.message)


def main(args=None) -> int:
    """Entry point of `task_node`."""
    return run_node(TaskNode, args=args, multithreaded=True)


if __name__ == '__main__':
    raise SystemExit(main())
