"""In-process ROS test harness: a fresh Context, a MultiThreadedExecutor, a client node, and
bounded waits that spin the executor from the test's thread (every wait fails the test instead
of hanging). Client calls are made only between spins: rclpy's ActionClient races when a goal
is sent while another thread spins it (ros2/rclpy#1123), which showed up here as "Two goals were
accepted with the same ID". Each test process gets its own DDS domain, so concurrent test runs
on one machine (other packages' `execute_step` servers) never answer this one's goals."""
import os
import time

import rclpy
from rclpy.action import ActionClient
from rclpy.executors import MultiThreadedExecutor
from rclpy.node import Node

from llara_msgs.action import ExecuteStep

WAIT_S = 20.0  # generous bound for every wait; each normally takes well under a second
# Domains 1..100 (Linux's safe range is 0..101); 0, the default, is left to interactive use.
TEST_DOMAIN_ID = 1 + os.getpid() % 100


class Harness:
    """Nodes of one test on their own context; callbacks run in the executor's thread pool."""

    def __init__(self):
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=TEST_DOMAIN_ID)
        self.executor = MultiThreadedExecutor(num_threads=8, context=self.context)
        self.nodes = []
        self.client = self.add(Node('test_client', context=self.context))
        self._action = None

    def wait(self, done, what: str, timeout_s: float = WAIT_S):
        """Spin until `done()` is truthy; fail naming `what` after `timeout_s`."""
        end = time.monotonic() + timeout_s
        while not done():
            assert time.monotonic() < end, f'timed out waiting for {what}'
            self.executor.spin_once(timeout_sec=0.005)
        return done()

    def spin_for(self, seconds: float) -> None:
        """Spin for `seconds` (to show that something does NOT happen meanwhile)."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.executor.spin_once(timeout_sec=0.005)

    def add(self, node):
        self.nodes.append(node)
        self.executor.add_node(node)
        return node

    def call(self, srv_type, name: str, request):
        """Call a service and return its response (bounded wait)."""
        client = self.client.create_client(srv_type, name)
        self.wait(client.service_is_ready, f'service {name}')
        future = client.call_async(request)
        self.wait(future.done, f'response of {name}')
        return future.result()

    def send_step(self, goal: ExecuteStep.Goal, feedback=None):
        """Send an ExecuteStep goal; return the goal handle future's goal handle."""
        if self._action is None:
            self._action = ActionClient(self.client, ExecuteStep, 'execute_step')
        self.wait(lambda: self._action.server_is_ready(), 'execute_step server')
        # server_is_ready() sees the goal/cancel/result services only; the feedback topic is
        # discovered on its own, and feedback sent before it matches reaches no one (a CI flake:
        # 'feedback of every phase' timed out on a succeeded goal).
        self.wait(lambda: self.client.count_publishers('execute_step/_action/feedback') > 0,
                  'execute_step feedback publisher')
        future = self._action.send_goal_async(goal, feedback_callback=feedback)
        self.wait(future.done, 'goal acceptance')
        handle = future.result()
        assert handle.accepted
        return handle

    def execute(self, goal: ExecuteStep.Goal, feedback=None):
        """Send a goal and wait for its (status, result)."""
        return self.result_of(self.send_step(goal, feedback))

    def result_of(self, handle):
        """Wait for a goal's result; (GoalStatus, ExecuteStep.Result)."""
        future = handle.get_result_async()
        self.wait(future.done, 'goal result')
        return future.result().status, future.result().result

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def close(self):
        self.executor.shutdown()
        for node in self.nodes:
            node.destroy_node()
        rclpy.try_shutdown(context=self.context)
