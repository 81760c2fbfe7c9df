"""The one place that owns a node process's life: init, spin, shutdown, exit code.

`main()` of every node is `return run_node(MyNode)`. Ctrl-C, SIGTERM and an external
`rclpy.shutdown()` end the spin quietly (exit 0); a `LlaraError` while the node is built (bad
parameter, missing calibration, model that cannot load) is logged as one line and exits 2,
with no traceback. Callbacks catch and report the errors of their work; one that lets a
`LlaraError` escape (a configuration found wrong while running, such as camera frames of
another size than the calibration's) stops the node the same way. Only APIs common to
Humble, Jazzy and Kilted are used. SIGUSR1 makes a node print every thread's Python stack to
stderr and go on (`kill -USR1 <pid>`; the launcher does it to a node that does not stop on
SIGINT, before killing it), so a hang names the line it hangs on.
"""
from collections.abc import Callable, Sequence
import faulthandler
import signal
from typing import Optional

import rclpy
from rclpy._rclpy_pybind11 import RCLError  # the C layer's error type (Humble .. Kilted)
from rclpy.executors import (
    ExternalShutdownException,
    MultiThreadedExecutor,
    SingleThreadedExecutor,
)
from rclpy.node import Node

from llara_policy.errors import LlaraError

STARTUP_ERROR_EXIT = 2


def run_node(make_node: Callable[[], Node | Sequence[Node]], args: Optional[list[str]] = None,
             multithreaded: bool = False, name: Optional[str] = None,
             num_threads: Optional[int] = None) -> int:
    """Init rclpy, build the node, spin it until shutdown; return the process exit code.

    `multithreaded` spins a MultiThreadedExecutor (`num_threads` threads, default rclpy's) so
    callbacks in different callback groups run in parallel. `make_node` may return several
    nodes of one process (sim_node); all are spun and destroyed. `name` is the logger used for
    a startup error (default: the module name of `make_node`, which is the node name by house
    rule).
    """
    logger_name = name or getattr(make_node, '__module__', 'node').rsplit('.', 1)[-1]
    if hasattr(signal, 'SIGUSR1'):  # POSIX only
        faulthandler.register(signal.SIGUSR1, all_threads=True)
    rclpy.init(args=args)
    nodes = ()
    executor = (MultiThreadedExecutor(num_threads=num_threads) if multithreaded
                else SingleThreadedExecutor())
    try:
        try:
            made = make_node()
        except LlaraError as err:
            rclpy.logging.get_logger(logger_name).fatal(f'cannot start: {err}')
            return STARTUP_ERROR_EXIT
        nodes = tuple(made) if isinstance(made, Sequence) else (made,)
        for node in nodes:
            executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except RCLError:
        # SIGINT shuts the context down from rclpy's signal handler; landing while spin() builds
        # its wait set, that surfaces as 'context is not valid' instead of the usual
        # ExternalShutdownException (seen once in CI under load). The same error on a live
        # context is a real failure.
        if rclpy.ok():
            raise
    except LlaraError as err:  # a configuration error found while running (raised on purpose)
        rclpy.logging.get_logger(logger_name).fatal(f'stopped: {err}')
        return STARTUP_ERROR_EXIT
    finally:
        executor.shutdown()
        for node in nodes:
            node.destroy_node()
        rclpy.try_shutdown()
    return 0
