"""The one place that owns a node process's life: init, spin, shutdown.

Hides the differences between ROS 2 Humble, Jazzy and Kilted (no `with rclpy.init()`
before Kilted; SIGINT/SIGTERM surface as ExternalShutdownException), so every node's
`main()` is two lines.
"""
from collections.abc import Callable
import sys

import rclpy
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.node import Node


def run_node(make_node: Callable[[], Node], threads: int = 2) -> int:
    """Initialise rclpy, build the node, spin until shutdown; return a process exit code.

    `make_node` runs after `rclpy.init`, so node construction errors (bad parameters,
    a model that cannot be loaded) are reported once, cleanly, with exit code 1.
    """
    rclpy.init(args=sys.argv)
    node = None
    code = 0
    try:
        node = make_node()
        executor = MultiThreadedExecutor(num_threads=threads)
        executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception as exc:  # noqa: BLE001 - report startup failures once, then exit
        name = node.get_name() if node is not None else 'node'
        print(f'[{name}] fatal: {type(exc).__name__}: {exc}', file=sys.stderr)
        code = 1
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return code
