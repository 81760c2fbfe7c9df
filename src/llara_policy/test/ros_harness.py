"""In-process ROS test harness: a fresh Context, a MultiThreadedExecutor spinning in a thread,
a client node, and bounded waits (every wait fails the test instead of hanging)."""
import threading
import time

import rclpy
from rclpy.action import ActionClient
from rclpy.executors import MultiThreadedExecutor
from rclpy.node import Node

from llara_msgs.action import ExecuteStep

WAIT_S = 20.0  # generous bound for every wait; each normally takes well under a second


def wait_for(done, what: str, timeout_s: float = WAIT_S):
    """Poll `done()` until it is truthy; fail naming `what` after `timeout_s`."""
    end = time.monotonic() + timeout_s
    while not done():
        assert time.monotonic() < end, f'timed out waiting for {what}'
        time.sleep(0.005)
    return done()


class Harness:
    """Nodes of one test on their own context, spun in a background thread."""

    def __init__(self):
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.executor = MultiThreadedExecutor(num_threads=8, context=self.context)
        self.nodes = []
        self.client = self.add(Node('test_client', context=self.context))
        self._action = None
        self._thread = threading.Thread(target=self.executor.spin, daemon=True)
        self._thread.start()

    def add(self, node):
        self.nodes.append(node)
        self.executor.add_node(node)
        return node

    def call(self, srv_type, name: str, request):
        """Call a service and return its response (bounded wait)."""
        client = self.client.create_client(srv_type, name)
        wait_for(client.service_is_ready, f'service {name}')
        future = client.call_async(request)
        wait_for(future.done, f'response of {name}')
        return future.result()

    def send_step(self, goal: ExecuteStep.Goal, feedback=None):
        """Send an ExecuteStep goal; return the goal handle future's goal handle."""
        if self._action is None:
            self._action = ActionClient(self.client, ExecuteStep, 'execute_step')
        wait_for(lambda: self._action.server_is_ready(), 'execute_step server')
        future = self._action.send_goal_async(goal, feedback_callback=feedback)
        wait_for(future.done, 'goal acceptance')
        handle = future.result()
        assert handle.accepted
        return handle

    def execute(self, goal: ExecuteStep.Goal, feedback=None):
        """Send a goal and wait for its (status, result)."""
        return self.result_of(self.send_step(goal, feedback))

    @staticmethod
    def result_of(handle):
        """Wait for a goal's result; (GoalStatus, ExecuteStep.Result)."""
        future = handle.get_result_async()
        wait_for(future.done, 'goal result')
        return future.result().status, future.result().result

    def close(self):
        self.executor.shutdown()
        self._thread.join(timeout=WAIT_S)
        for node in self.nodes:
            node.destroy_node()
        rclpy.try_shutdown(context=self.context)
