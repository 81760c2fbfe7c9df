"""executor_node: the `execute_step` action server around `arms.executor.Executor`.

Goal -> core ActionStep -> Executor.execute (map through the calibration, check the safety
envelope, run the primitive) -> result. Feedback per phase; cancel -> Executor.cancel();
`executor/stop` and `executor/reset` run while a goal executes (own callback groups on a
MultiThreadedExecutor). One goal at a time: a second one is aborted with ERROR_BUSY. Every
LlaraError ends as a result with its code and one log line; the node keeps running. A missed
pick (the suction held nothing; the arm retreated) is aborted with ERROR_GRASP and a warning,
its targets and executed step filled as for a success; it does not fault the executor, so the
next goal runs (LLaRA's protocol: the step did nothing and enters the history). Every goal
handled is also published as an ExecutedStep on `executor/executed` (succeeded, dry run, missed
pick, refused or failed; with the base targets and history form once mapped) for recorders and
the task loop.
"""
from collections.abc import Callable
from contextlib import contextmanager
import threading
from typing import Optional

from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy

from llara_msgs.action import ExecuteStep
from llara_msgs.msg import ExecutedStep
from llara_msgs.srv import ResetExecutor, StopExecutor
from llara_policy.arms.executor import Executor
from llara_policy.arms.executor_types import (
    ErrorCode,
    ExecutionResult,
    ExecutorBusyError,
    ExecutorConfig,
    MappedStep,
)
from llara_policy.errors import LlaraError
from llara_policy.execution import ModelFrameMapper
from llara_policy.ros import convert
from llara_policy.ros.executor_params import declare_backend, declare_executor_config
from llara_policy.ros.run import run_node
from llara_policy.workspace import Workspace

NODE_NAME = 'executor_node'
ACTION_NAME = 'execute_step'
RESET_SERVICE = 'executor/reset'
STOP_SERVICE = 'executor/stop'
EXECUTED_TOPIC = 'executor/executed'
# Every handled goal, reliably: a recording must not lose a step.
EXECUTED_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
# Runs one step; the sim wraps it (world lock, bookkeeping after the motion).
StepRunner = Callable[[Callable[[], ExecutionResult]], ExecutionResult]


class ExecutorNode(Node):
    """Serves ExecuteStep over one Executor; arm, mapper and workspace may be injected (sim)."""

    def __init__(self, arm=None, mapper: Optional[ModelFrameMapper] = None,
                 workspace: Optional[Workspace] = None,
                 config_defaults: Optional[ExecutorConfig] = None,
                 step_runner: Optional[StepRunner] = None, node_name: str = NODE_NAME,
                 **kwargs):
        super().__init__(node_name, **kwargs)
        # Set first: if start-up fails below, rclpy may still destroy the node at shutdown.
        self._shutdown_arm = lambda: ()
        self.config = declare_executor_config(self, config_defaults or ExecutorConfig())
        backend = declare_backend(self, self.config, arm, mapper, workspace)
        self._busy = threading.Lock()  # one goal (or sim reset) at a time
        self._run_step = step_runner or (lambda execute: execute())
        self._shutdown_arm = backend.shutdown
        self.set_backend(backend.arm, backend.mapper, backend.workspace,
                         backend.calibration_source)
        self.executed_pub = self.create_publisher(ExecutedStep, EXECUTED_TOPIC, EXECUTED_QOS)
        goals = ReentrantCallbackGroup()  # a second goal must run to be told ERROR_BUSY
        self.server = ActionServer(self, ExecuteStep, ACTION_NAME, self.on_execute,
                                   goal_callback=lambda _goal: GoalResponse.ACCEPT,
                                   cancel_callback=self.on_cancel, callback_group=goals)
        commands = MutuallyExclusiveCallbackGroup()
        self.create_service(ResetExecutor, RESET_SERVICE, self.on_reset, callback_group=commands)
        self.create_service(StopExecutor, STOP_SERVICE, self.on_stop,
                            callback_group=MutuallyExclusiveCallbackGroup())
        self.get_logger().info(
            f'{ACTION_NAME} ready ({"DRY RUN: nothing moves" if self.config.dry_run else "LIVE"}'
            f', calibration {backend.calibration_source or self.mapper.calibration.camera_id})')

    def set_backend(self, arm, mapper: ModelFrameMapper, workspace: Workspace,
                    calibration_source: str = '') -> None:
        """Build a fresh Executor (IDLE) over an arm; the caller holds `exclusive()` or is init."""
        self.arm, self.mapper, self.workspace = arm, mapper, workspace
        self.core = Executor(arm, workspace, mapper, self.config, calibration_source)

    @contextmanager
    def exclusive(self):
        """Yield True while no goal runs (goals meanwhile get ERROR_BUSY), False if one does."""
        acquired = self._busy.acquire(blocking=False)
        try:
            yield acquired
        finally:
            if acquired:
                self._busy.release()

    def on_execute(self, goal_handle) -> ExecuteStep.Result:
        """Convert the goal, execute it on the core Executor, convert the outcome back.

        Whatever the outcome, the goal's ExecutedStep is published before the result is set.
        A missed pick's goal is aborted (success false, ERROR_GRASP) but not an error.
        """
        request = goal_handle.request
        dry_run = bool(request.dry_run or self.config.dry_run)
        mapped: list[MappedStep] = []  # filled by the core once the step is mapped
        with self.exclusive() as free:
            try:
                if not free:
                    raise ExecutorBusyError('another step (or a sim reset) is executing')
                step = convert.step_from_msg(request.step)
                size = (request.model_image_width, request.model_image_height)
                result = self._run_step(lambda: self.core.execute(
                    step, lambda phase, fraction: goal_handle.publish_feedback(
                        convert.feedback_msg(phase, fraction)),
                    dry_run=request.dry_run, model_size_px=size, on_mapped=mapped.append))
            except LlaraError as error:
                failed = convert.failure(error)
                self.get_logger().error(f'step refused or failed ({failed.error_code.name}): '
                                        f'{failed.message}')
                response = convert.failure_msg(failed, dry_run)
                self._publish_executed(request, mapped, response)
                if failed.error_code is ErrorCode.CANCELED and goal_handle.is_cancel_requested:
                    goal_handle.canceled()
                else:
                    goal_handle.abort()
                return response
        response = convert.result_msg(result, self.mapper.calibration.base_frame,
                                      self.get_clock().now().to_msg())
        self._publish_executed(request, mapped, response)
        if result.missed_pick:
            self.get_logger().warning(f'missed pick (ERROR_GRASP, executor ready): '
                                      f'{response.message}')
            goal_handle.abort()
        else:
            goal_handle.succeed()
        return response

    def _publish_executed(self, goal: ExecuteStep.Goal, mapped: list[MappedStep],
                          response: ExecuteStep.Result) -> None:
        """Publish the goal's ExecutedStep (mapped = false unless the core reported a mapping)."""
        self.executed_pub.publish(convert.executed_msg(
            goal, mapped[-1] if mapped else None, response, self.mapper.calibration.base_frame,
            self.get_clock().now().to_msg()))

    def on_cancel(self, _goal_handle) -> CancelResponse:
        """Accept every cancel: the arm stops before the next phase's motion."""
        self.core.cancel()
        return CancelResponse.ACCEPT

    def on_reset(self, _request, response: ResetExecutor.Response) -> ResetExecutor.Response:
        """Clear the fault (the arm's recovery sequence); refused while a step executes."""
        try:
            self.core.reset()
        except LlaraError as error:
            response.success, response.message = False, f'{type(error).__name__}: {error}'
            self.get_logger().error(f'reset failed: {response.message}')
            return response
        response.success, response.message = True, 'executor ready'
        self.get_logger().info('executor reset: ready for goals')
        return response

    def on_stop(self, request: StopExecutor.Request,
                response: StopExecutor.Response) -> StopExecutor.Response:
        """Halt the arm now (emergency: the controller's emergency stop first); fault."""
        try:
            if request.emergency and not self.config.dry_run:
                self.arm.emergency_stop()
            self.core.stop()
        except Exception as error:  # the SDK raises bare Exceptions on a dead socket
            response.success, response.message = False, f'{type(error).__name__}: {error}'
            self.get_logger().error(f'stop failed: {response.message}')
            return response
        kind = 'emergency stop' if request.emergency else 'stop'
        response.success = True
        response.message = (f'{kind}: {"dry run, no arm call; " if self.config.dry_run else ""}'
                            'executor faulted until executor/reset')
        self.get_logger().warning(response.message)
        return response

    def destroy_node(self):
        """Stop and disconnect a real arm this node connected (never raises)."""
        for problem in self._shutdown_arm():
            self.get_logger().error(f'arm shutdown: {problem}')
        return super().destroy_node()


def main(args=None) -> int:
    """Entry point of `executor_node`."""
    return run_node(ExecutorNode, args=args, multithreaded=True, num_threads=4)


if __name__ == '__main__':
    raise SystemExit(main())
