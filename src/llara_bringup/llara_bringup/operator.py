"""`llara_task`: the operator's client of a running graph (robot or sim); no `ros2` CLI needed.

    llara_task run "INSTRUCTION" [--max-steps N]   one RunTask goal: each step's plan and
                                                   outcome as it happens, then the result
    llara_task stop [--emergency]                  executor/stop: halt the arm now (the
                                                   executor refuses goals until reset)
    llara_task reset                               executor/reset: clear the fault after
                                                   checking the robot

Ctrl-C during `run` cancels the task; task_node then cancels the executing step, and the arm
stops before its next phase. Exit codes: 0 success, 1 the task or command failed, 2 the graph
did not answer (nothing was sent) or bad usage. On a full ROS 2 install the same is
`ros2 action send_goal /run_task llara_msgs/action/RunTask ...` and `ros2 service call
/executor/stop llara_msgs/srv/StopExecutor ...`.
"""
import argparse
from collections.abc import Sequence
import sys
from typing import Optional

from rclpy.action import ActionClient

from llara_bringup.client import ClientNode, wait_for
from llara_msgs.action import RunTask
from llara_msgs.srv import ResetExecutor, StopExecutor

CONNECT_TIMEOUT_S = 10.0
SERVICE_TIMEOUT_S = 30.0
TASK_TIMEOUT_S = 3600.0


class GraphUnavailableError(RuntimeError):
    """The action server or service did not answer; nothing was sent."""


class OperatorClient(ClientNode):
    """An rclpy node spinning in a background thread, with the operator's three commands."""

    def __init__(self, log=print):
        super().__init__('llara_operator')
        self.log = log

    def _service(self, kind, name: str, request, timeout_s: float):
        client = self.node.create_client(kind, name)
        if not client.wait_for_service(timeout_sec=timeout_s):
            raise GraphUnavailableError(f'service {name} not available within {timeout_s:g} s '
                                        '(is the graph running, in this ROS_DOMAIN_ID?)')
        return wait_for(client.call_async(request), SERVICE_TIMEOUT_S, f'{name} response')

    def stop(self, emergency: bool, timeout_s: float = CONNECT_TIMEOUT_S) -> bool:
        """Call executor/stop; return whether the stop was accepted."""
        response = self._service(StopExecutor, 'executor/stop',
                                 StopExecutor.Request(emergency=emergency), timeout_s)
        self.log(f'executor/stop: {response.message}')
        return bool(response.success)

    def reset(self, timeout_s: float = CONNECT_TIMEOUT_S) -> bool:
        """Call executor/reset; return whether the executor is ready again."""
        response = self._service(ResetExecutor, 'executor/reset', ResetExecutor.Request(),
                                 timeout_s)
        self.log(f'executor/reset: {response.message}')
        return bool(response.success)

    def run(self, instruction: str, max_steps: int = 0,
            timeout_s: float = CONNECT_TIMEOUT_S) -> RunTask.Result:
        """Send one RunTask goal, print its feedback, return its result; cancel on Ctrl-C."""
        client = ActionClient(self.node, RunTask, 'run_task')
        if not client.wait_for_server(timeout_sec=timeout_s):
            raise GraphUnavailableError(f'action run_task not available within {timeout_s:g} s '
                                        '(is task_node running, in this ROS_DOMAIN_ID?)')
        goal = RunTask.Goal(instruction=instruction, max_steps=max_steps)
        handle = wait_for(client.send_goal_async(goal, feedback_callback=self._on_feedback),
                       SERVICE_TIMEOUT_S, 'run_task goal response')
        if not handle.accepted:
            raise GraphUnavailableError('run_task rejected the goal (a task is already running)')
        self.log(f'task accepted: {instruction!r}')
        result_future = handle.get_result_async()
        try:
            return wait_for(result_future, TASK_TIMEOUT_S, 'run_task result').result
        except KeyboardInterrupt:
            self.log('Ctrl-C: canceling the task (the executing step is canceled too)')
            wait_for(handle.cancel_goal_async(), SERVICE_TIMEOUT_S, 'run_task cancel response')
            return wait_for(result_future, SERVICE_TIMEOUT_S,
                            'run_task result after cancel').result

    def _on_feedback(self, message) -> None:
        feedback = message.feedback
        plan = feedback.plan
        answer = plan.raw_text.strip().splitlines()[0] if plan.raw_text.strip() else ''
        timing = f' ({plan.inference_time_s:.2f} s)' if plan.inference_time_s else ''
        self.log(f'step {feedback.step_number}: {feedback.status}{timing}'
                 + (f' | {answer}' if feedback.status == 'executing' else ''))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='llara_task', description='Run a task on a running LLaRA graph, or stop/reset '
        'its executor.', formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split('\n\n', 2)[1])
    sub = parser.add_subparsers(dest='command', required=True)
    run = sub.add_parser('run', help='send one RunTask goal and follow it')
    run.add_argument('instruction', help='task text as inside <task>...</task>')
    run.add_argument('--max-steps', type=int, default=0,
                     help="step limit (0: task_node's max_steps)")
    stop = sub.add_parser('stop', help='halt the arm now (executor faults until reset)')
    stop.add_argument('--emergency', action='store_true',
                      help="the controller's emergency stop instead of a decelerating stop")
    sub.add_parser('reset', help='clear the executor fault after checking the robot')
    for command in sub.choices.values():
        command.add_argument('--connect-timeout', type=float, default=CONNECT_TIMEOUT_S,
                             help='how long to wait for the graph (s)')
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of `llara_task`; see the module docstring for the exit codes."""
    args = _parser().parse_args(sys.argv[1:] if argv is None else argv)
    if args.command == 'run' and args.max_steps < 0:
        print('llara_task: --max-steps must be >= 0', file=sys.stderr)
        return 2
    client = OperatorClient(log=lambda text: print(text, flush=True))
    try:
        if args.command == 'stop':
            return 0 if client.stop(args.emergency, args.connect_timeout) else 1
        if args.command == 'reset':
            return 0 if client.reset(args.connect_timeout) else 1
        result = client.run(args.instruction, args.max_steps, args.connect_timeout)
        print(f'result: {"success" if result.success else "failure"} after '
              f'{len(result.steps)} steps ({result.message})', flush=True)
        return 0 if result.success else 1
    except (GraphUnavailableError, TimeoutError) as error:
        print(f'llara_task: {error}', file=sys.stderr, flush=True)
        return 2
    finally:
        client.close()


if __name__ == '__main__':
    raise SystemExit(main())
