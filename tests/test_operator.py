"""`llara_task` against a running sim graph (embedded launcher, every node its own process).

The operator's path on a robot, in sim: stop faults the executor so a task's first step is
refused (no motion, the result names the fault), reset clears it, and the same task then
succeeds; a graph that is not there is exit code 2 with a message, nothing sent.
"""
import os
import signal
import subprocess
import sys
import threading
import time

from graph_launch import launcher_env
import pytest

pytest.importorskip('llara_policy.ros.sim_node', reason='sim_node not in this checkout')

START_TIMEOUT_S = 120
TASK_TIMEOUT_S = 180


def _operator(env: dict, *args: str, timeout_s: float = TASK_TIMEOUT_S):
    done = subprocess.run([sys.executable, '-m', 'llara_bringup.operator', *args], env=env,
                          capture_output=True, text=True, timeout=timeout_s)
    return done.returncode, done.stdout + done.stderr


@pytest.fixture
def sim_graph():
    """A sim graph (episodes:=0: start only); yields (env, first episode's instruction)."""
    env = launcher_env(os.getpid() + 7)
    process = subprocess.Popen([sys.executable, '-m', 'llara_bringup.launch', 'sim.launch.py',
                                'episodes:=0', 'renderer:=tiny', 'task:=visual_manipulation'],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env=env, start_new_session=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(process.stdout), daemon=True)
    reader.start()
    marker = 'visual_manipulation seed 1000000 (placement_generalization): '
    deadline = time.monotonic() + START_TIMEOUT_S
    instruction = ''
    while not instruction and time.monotonic() < deadline and process.poll() is None:
        instruction = next((line.split(marker, 1)[1].strip() for line in list(lines)
                            if marker in line), '')
        time.sleep(0.2)
    try:
        assert instruction, 'sim_node never logged its first episode:\n' + ''.join(lines)[-3000:]
        yield env, instruction
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def test_stop_faults_the_executor_reset_clears_it_and_the_task_then_succeeds(sim_graph):
    env, instruction = sim_graph
    code, output = _operator(env, 'stop')
    assert code == 0, output
    assert 'faulted until executor/reset' in output

    code, output = _operator(env, 'run', instruction)
    assert code == 1, output
    assert 'result: failure after 0 steps' in output, output
    assert 'ExecutorFaultedError' in output and 'error_code 1' in output, output

    code, output = _operator(env, 'reset')
    assert code == 0, output
    assert 'executor ready' in output

    code, output = _operator(env, 'run', instruction)
    assert code == 0, output
    assert 'task accepted' in output and 'step 1: executing' in output, output
    assert output.strip().splitlines()[-1].startswith('result: success after '), output


def test_no_graph_is_exit_2_and_says_what_is_missing():
    code, output = _operator(launcher_env(os.getpid() + 11), 'run', 'Put the block away.',
                             '--connect-timeout', '1', timeout_s=60)
    assert code == 2
    assert 'run_task not available within 1 s' in output
