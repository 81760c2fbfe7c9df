"""Run the embedded launcher as the graph tests do: own process group and DDS domain, bounded."""
import os
import random
import signal
import subprocess
import sys


def run_launcher(*args: str, timeout_s: float, domain_seed: int) -> tuple[int, str]:
    """Run `python -m llara_bringup.launch ARGS`; return (exit code, output); always cleaned up.

    The run gets a DDS domain of its own (100-200, from `domain_seed`) so other graphs on this
    machine are not seen. On a timeout the launcher is asked to stop first (SIGTERM: it stops its
    nodes, which run in sessions of their own), then killed.
    """
    env = dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST',
               ROS_DOMAIN_ID=str(random.Random(domain_seed).randint(100, 200)))
    process = subprocess.Popen([sys.executable, '-m', 'llara_bringup.launch', *args],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env=env, start_new_session=True)
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
