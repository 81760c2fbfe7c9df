"""A node that does not stop on SIGINT is killed, and the launcher's report names where it hung.

The child is a real `run_node` process whose node factory ignores SIGINT and blocks: the
launcher's stop must send SIGUSR1 (run_node prints every thread's Python stack), say that the
node was killed, and leave no process behind.
"""
import sys
import time

from llara_bringup import launch

HANGING_NODE = """
import signal, time
from llara_policy.ros.run import run_node

def build_a_node_that_hangs():
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    print('ready', flush=True)
    while True:
        time.sleep(0.1)

run_node(build_a_node_that_hangs, args=[])
"""


def test_a_node_that_ignores_sigint_is_killed_with_its_stacks_in_the_output(capsys):
    child = launch.Child('hang_node', [sys.executable, '-c', HANGING_NODE])
    deadline = time.monotonic() + 60
    while 'ready' not in child.tail and time.monotonic() < deadline:
        assert child.process.poll() is None, list(child.tail)
        time.sleep(0.05)
    assert 'ready' in child.tail
    start = time.monotonic()
    launch.stop_children([child], timeout_s=1.0)
    stopped_s = time.monotonic() - start
    assert child.process.returncode == -9  # SIGKILL: SIGINT was ignored
    lines = capsys.readouterr().out.splitlines()
    killed = [k for k, line in enumerate(lines) if 'did not stop on SIGINT within 1 s' in line]
    assert killed and 'hang_node' in lines[killed[0]], lines
    stacks = [line for line in lines[:killed[0]] if line.startswith('[hang_node]')]
    # faulthandler's dump, forwarded with the node's prefix, names the function it hung in.
    assert any('build_a_node_that_hangs' in line for line in stacks), lines
    assert any('Thread 0x' in line or 'Current thread' in line for line in stacks), lines
    assert stopped_s < 1.0 + launch.STACK_DUMP_WAIT_S + 5.0
