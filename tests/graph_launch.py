"""Run the embedded launcher as the graph tests do: own process group and DDS domain, bounded."""
import os
import random
import signal
import subprocess
import sys

from llara_bringup.launch import ERROR_PREFIX as LAUNCHER_ERROR  # its own error lines


def domain_id(domain_seed: int) -> int:
    """The DDS domain (100-200) of a launcher run with `domain_seed`: listeners join it too."""
    return random.Random(domain_seed).randint(100, 200)


def launcher_env(domain_seed: int) -> dict[str, str]:
    """The environment of a launcher run: loopback discovery, the domain of `domain_seed`."""
    return dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST',
                ROS_DOMAIN_ID=str(domain_id(domain_seed)))


def assert_every_node_stopped(output: str) -> None:
    """Assert that no node of the run had to be killed after SIGINT.

    On failure the message is the output's end: a node that hung printed its threads' stacks
    there (the launcher sends SIGUSR1 before SIGKILL), which name the line it hung on.
    """
    assert 'did not stop on SIGINT' not in output, output[-12000:]


def launcher_error(output: str) -> str:
    """The launcher's own error report (from its first error line on), '' if none."""
    start = output.find(LAUNCHER_ERROR)
    return output[start:] if start >= 0 else ''


def run_launcher(*args: str, timeout_s: float, domain_seed: int) -> tuple[int, str]:
    """Run `python -m llara_bringup.launch ARGS`; return (exit code, output); always cleaned up.

    The run gets a DDS domain of its own (100-200, from `domain_seed`) so other graphs on this
    machine are not seen. On a timeout the launcher is asked to stop first (SIGTERM: it stops its
    nodes, which run in sessions of their own), then killed.
    """
    process = subprocess.Popen([sys.executable, '-m', 'llara_bringup.launch', *args],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env=launcher_env(domain_seed), start_new_session=True)
    try:
        output, _ = process.communicate(timeout=timeout_s)
        return process.returncode, output
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.communicate()
