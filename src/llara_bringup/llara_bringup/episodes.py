"""Episodes through a running sim graph: `sim/reset` then `run_task`, and the success table.

`EpisodeRunner` is a small rclpy client used by the embedded launcher. Every wait is bounded;
an episode that cannot be reset or run is recorded as a failure with its message. Each RunTask
goal asks for max_steps 0: task_node's budget (the max_steps launch argument, LLaRA's 8 by
default), as LLaRA's evaluator gives every episode its budget; sim_node's env allows that many
steps beyond the task's own (bonus_steps), so its limit (sim/reset's max_steps) is never the
one that ends an episode.
"""
from collections.abc import Iterable
from dataclasses import dataclass
import time

from rclpy.action import ActionClient

from llara_bringup.client import ClientNode, wait_for
from llara_msgs.action import RunTask
from llara_msgs.srv import SimReset

# The sim graph is ready when these answer (sim_node's executor serves execute_step).
SIM_SERVICES = ('sim/reset',)
SIM_ACTIONS = {'run_task': RunTask}
RESET_TIMEOUT_S = 120.0
# One episode's whole RunTask (its steps each have their own bounds in task_node).
EPISODE_TIMEOUT_S = 900.0


@dataclass(frozen=True)
class EpisodeResult:
    """One episode: task, seed, success, steps executed, the RunTask message."""

    task: str
    seed: int
    success: bool
    steps: int
    message: str


def success_table(results: Iterable[EpisodeResult]) -> str:
    """Per-task successes, one line per task; the last line is `success: K/N`."""
    results = list(results)
    lines = [f'{"task":<32} {"success":>9} {"rate":>6}']
    for task in dict.fromkeys(r.task for r in results):
        done = [r for r in results if r.task == task]
        wins = sum(r.success for r in done)
        lines.append(f'{task:<32} {f"{wins}/{len(done)}":>9} {wins / len(done):>6.0%}')
    wins = sum(r.success for r in results)
    lines.append(f'success: {wins}/{len(results)}')
    return '\n'.join(lines)


class EpisodeRunner(ClientNode):
    """An rclpy client of the sim graph, spinning in a background thread."""

    def __init__(self, log=print):
        super().__init__('llara_launcher')
        self.log = log
        self.reset_client = self.node.create_client(SimReset, 'sim/reset')
        self.task_client = ActionClient(self.node, RunTask, 'run_task')

    def wait_for_graph(self, timeout_s: float, alive=lambda: True) -> None:
        """Wait until sim/reset and run_task answer; TimeoutError naming what is missing."""
        deadline = time.monotonic() + timeout_s
        waits = {'sim/reset': lambda: self.reset_client.wait_for_service(timeout_sec=0.2),
                 'run_task': lambda: self.task_client.wait_for_server(timeout_sec=0.2)}
        for name, ready in waits.items():
            while not ready():
                alive()
                if time.monotonic() > deadline:
                    raise TimeoutError(f'{name} not available within {timeout_s:g} s')

    def wait_for_subscriber(self, topic: str, node_name: str, timeout_s: float,
                            alive=lambda: True) -> None:
        """Wait until `node_name` subscribes to `topic` (seen from here); TimeoutError if not.

        With record:=true the episodes wait for recorder_node, so the first policy/query and
        policy/plan (reliable, not latched) are in the bag.
        """
        deadline = time.monotonic() + timeout_s
        topic = self.node.resolve_topic_name(topic)
        while not any(info.node_name == node_name
                      for info in self.node.get_subscriptions_info_by_topic(topic)):
            alive()
            if time.monotonic() > deadline:
                raise TimeoutError(f'{node_name} not subscribed to {topic} within {timeout_s:g} s')
            time.sleep(0.1)

    def run_episode(self, task: str, seed: int) -> EpisodeResult:
        """Reset the sim to (task, seed) and run the episode's instruction through run_task.

        The goal asks for task_node's own step budget (max_steps 0); see the module docstring.
        """
        response = wait_for(self.reset_client.call_async(SimReset.Request(task=task, seed=seed)),
                         RESET_TIMEOUT_S, 'sim/reset response')
        if not response.success:
            return EpisodeResult(task, seed, False, 0, f'reset failed: {response.message}')
        goal = RunTask.Goal(instruction=response.instruction, max_steps=0)
        handle = wait_for(self.task_client.send_goal_async(goal), RESET_TIMEOUT_S,
                       'run_task goal response')
        if not handle.accepted:
            return EpisodeResult(task, seed, False, 0, 'run_task rejected the goal')
        try:
            result = wait_for(handle.get_result_async(), EPISODE_TIMEOUT_S, 'run_task result')
        except TimeoutError:
            wait_for(handle.cancel_goal_async(), RESET_TIMEOUT_S, 'run_task cancel')
            raise
        return EpisodeResult(task, seed, result.result.success, len(result.result.steps),
                             result.result.message)
