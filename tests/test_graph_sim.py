"""End to end: the embedded launcher runs sim.launch.py (sim_node, policy_node with the oracle,
task_node as separate processes) and RunTask succeeds on 3 test seeds of visual_manipulation and
of rotate, each episode under LLaRA's budget of 8 steps (not the sim task's own limit). Each run
gets a DDS domain of its own so other graphs on this machine are not seen."""
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time

from graph_launch import assert_every_node_stopped, run_launcher
import pytest

for module in ('sim_node', 'policy_node', 'executor_node', 'task_node'):
    pytest.importorskip(f'llara_policy.ros.{module}', reason=f'{module} not in this checkout')

RUN_TIMEOUT_S = 420  # three episodes take well under a minute; model-free start-up included


@pytest.mark.parametrize('task', ['visual_manipulation', 'rotate'])
def test_oracle_succeeds_on_three_seeds_through_the_graph(task):
    code, output = run_launcher('sim.launch.py', f'task:={task}', 'episodes:=3',
                                'policy:=oracle', 'renderer:=tiny', timeout_s=RUN_TIMEOUT_S,
                                domain_seed=os.getpid())
    lines = output.strip().splitlines()
    assert code == 0, output[-4000:]
    assert lines[-1] == 'success: 3/3', output[-4000:]
    assert any(line.split()[:2] == [task, '3/3'] for line in lines)
    # Every episode ran under LLaRA's evaluation budget, 8 queries (eval/eval-llara.py
    # max_steps), as task_node logs it per goal; sim_node's env allows 8 beyond its own.
    budgets = re.findall(r'^\[task_node\] .*\(max_steps (\d+)\)$', output, re.MULTILINE)
    assert budgets == ['8'] * 3, output[-4000:]
    # Every node ran in its own process and the launcher stopped them (no kill needed).
    for name in ('sim_node', 'policy_node', 'task_node'):
        assert any(line.startswith(f'[{name}]') for line in lines)
    assert_every_node_stopped(output)


def test_sigint_stops_every_node_and_exits_0():
    env = dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST',
               ROS_DOMAIN_ID=str(random.Random(os.getpid() + 1).randint(100, 200)))
    process = subprocess.Popen([sys.executable, '-m', 'llara_bringup.launch', 'sim.launch.py',
                                'episodes:=0', 'renderer:=tiny'],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env=env, start_new_session=True)
    lines = []
    reader = threading.Thread(target=lambda: lines.extend(process.stdout), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while not any('run_task ready' in line for line in lines):
            assert process.poll() is None and time.monotonic() < deadline, ''.join(lines)
            time.sleep(0.2)
        os.kill(process.pid, signal.SIGINT)
        assert process.wait(timeout=60) == 0, ''.join(lines)
        reader.join(timeout=10)
        assert_every_node_stopped(''.join(lines))
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
