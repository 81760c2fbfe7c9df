"""The graph's command-line clients (launcher episodes, `llara_task`): one rclpy node of their own.

`ClientNode` gives a client its own context and node, spun in a background thread so the
calling code can block on futures; `wait_for` bounds every such wait.
"""
import threading
import time

import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node


def wait_for(future, timeout_s: float, what: str):
    """Return the future's result; TimeoutError naming `what` after `timeout_s` seconds."""
    deadline = time.monotonic() + timeout_s
    while not future.done():
        if time.monotonic() > deadline:
            raise TimeoutError(f'no {what} within {timeout_s:g} s')
        time.sleep(0.02)
    return future.result()


class ClientNode:
    """A node named `name` in a context of its own, spinning in a daemon thread until close()."""

    def __init__(self, name: str):
        self.context = rclpy.Context()
        rclpy.init(context=self.context, args=[])
        self.node = Node(name, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()

    def close(self) -> None:
        """Stop spinning and release the node and its context."""
        self.executor.shutdown()
        self.thread.join(timeout=5.0)  # a thread still in spin() at exit aborts the process
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)
