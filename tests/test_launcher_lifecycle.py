"""The embedded launcher's hold on its node processes (separate processes, own DDS domain).

A launcher killed with SIGKILL (it cannot stop anything itself then) takes its nodes with it:
the kernel's parent-death signal, Linux only. While it runs, a second launcher in its DDS domain
is refused. A node that fails at start-up while an episode is
already waiting on the graph stops the graph at once: exit 1, that node's error repeated in the
launcher's report, the other nodes stopped, not left running until the episode's timeout.
"""
import os
from pathlib import Path
import re
import signal
import subprocess
import sys
import threading
import time

from graph_launch import (
    assert_every_node_stopped,
    domain_id,
    launcher_env,
    launcher_error,
    run_launcher,
)
import pytest

pytest.importorskip('llara_policy.ros.sim_node', reason='sim_node not in this checkout')

START_TIMEOUT_S = 180  # model-free sim graph: normally up in seconds
GONE_WITHIN_S = 5.0  # after the launcher's death (measured: under 1.5 s on 2 cores)
SIM_NODES = ('sim_node', 'policy_node', 'task_node')
# The launcher's line for each node it starts: '[launch] task_node (pid 123): -m ...'.
STARTED = re.compile(r'^\[launch\] (\w+) \(pid (\d+)\): ')
POLICY_READY = re.compile(r'\[policy_node\]: policy .* ready')


def started_pids(lines) -> dict[str, int]:
    """Node name -> pid, from the launcher's start lines."""
    return {m[1]: int(m[2]) for m in map(STARTED.match, lines) if m}


def proc_stat(pid: int) -> tuple[str, int, int]:
    """(state, parent pid, process group) of a live or zombie process; ('', 0, 0) if none."""
    try:
        text = Path(f'/proc/{pid}/stat').read_text()
    except OSError:
        return '', 0, 0
    fields = text[text.rindex(')') + 2:].split()  # after 'pid (comm) '
    return fields[0], int(fields[1]), int(fields[2])


def running(pid: int) -> bool:
    """Whether `pid` is a process that has not exited (a zombie has: it waits to be reaped)."""
    return proc_stat(pid)[0] not in ('', 'Z')


def group_members(groups) -> list[int]:
    """Running processes of any of the process groups `groups` (node grandchildren included)."""
    pids = [int(name) for name in os.listdir('/proc') if name.isdigit()]
    return [pid for pid in pids if proc_stat(pid)[2] in groups and running(pid)]


@pytest.mark.skipif(not sys.platform.startswith('linux'),
                    reason='the parent-death signal (prctl PR_SET_PDEATHSIG) is Linux only')
def test_a_launcher_killed_with_sigkill_takes_every_node_with_it():
    process = subprocess.Popen([sys.executable, '-m', 'llara_bringup.launch', 'sim.launch.py',
                                'episodes:=0', 'renderer:=tiny', 'policy:=oracle'],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env=launcher_env(os.getpid() + 11), start_new_session=True)
    lines = []
    reader = threading.Thread(target=lambda: lines.extend(process.stdout), daemon=True)
    reader.start()
    nodes = {}
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        # Mid-run: every node started and the graph serving (task_node and policy_node ready).
        while not (any('run_task ready' in line for line in lines)
                   and any(POLICY_READY.search(line) for line in lines)):
            assert process.poll() is None and time.monotonic() < deadline, ''.join(lines)
            time.sleep(0.2)
        nodes = started_pids(lines)
        assert sorted(nodes) == sorted(SIM_NODES), ''.join(lines)
        for name, pid in nodes.items():  # really the launcher's children, and running
            assert running(pid) and proc_stat(pid)[1] == process.pid, name
            assert f'llara_policy.ros.{name}' in Path(f'/proc/{pid}/cmdline').read_text()
        # A second launcher in the same DDS domain is refused at once, naming this one.
        second = subprocess.run([sys.executable, '-m', 'llara_bringup.launch', 'sim.launch.py',
                                 'episodes:=1', 'renderer:=tiny', 'policy:=oracle'],
                                capture_output=True, text=True, timeout=60,
                                env=launcher_env(os.getpid() + 11))
        assert second.returncode == 1, second.stdout + second.stderr
        assert f'another llara_bringup.launch (pid {process.pid}) runs a graph in DDS domain ' \
               f'{domain_id(os.getpid() + 11)}' in second.stderr
        assert '[launch]' not in second.stdout  # it started no node

        process.kill()  # SIGKILL: the launcher stops nothing itself
        process.wait(timeout=10)
        killed = time.monotonic()
        while any(map(running, nodes.values())) and time.monotonic() - killed < GONE_WITHIN_S:
            time.sleep(0.05)
        left = {name: pid for name, pid in nodes.items() if running(pid)}
        assert left == {}, f'still running {time.monotonic() - killed:.1f} s after the kill'
        assert group_members(set(nodes.values())) == []  # nothing they started either
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        for pid in nodes.values():  # a failed test leaves nothing behind
            if running(pid):
                os.killpg(pid, signal.SIGKILL)


def test_a_node_failing_at_start_up_stops_the_graph_during_an_episode(tmp_path):
    # The episode's RunTask goal is sent while policy_node is still starting; the node then
    # fails (no model there) and the launcher must not wait out the task's policy_timeout_s.
    missing = tmp_path / 'no_model_here'
    started = time.monotonic()
    code, output = run_launcher('sim.launch.py', f'policy:={missing}', 'renderer:=tiny',
                                'episodes:=1', 'policy_timeout_s:=600', timeout_s=300,
                                domain_seed=os.getpid() + 12)
    took_s = time.monotonic() - started
    report = launcher_error(output)
    assert code == 1, output[-4000:]
    assert report.startswith('llara_bringup.launch: policy_node (pid '), output[-4000:]
    assert 'exited with code 2' in report and 'cannot start' in report
    assert str(missing) in report.splitlines()[1]  # the node's own error line, repeated
    assert took_s < 120, f'{took_s:.0f} s: the launcher waited for the episode'
    assert 'success:' not in output  # no episode table: the run failed, not the episode
    # The other nodes were stopped by the launcher (SIGINT), not killed, and are gone.
    nodes = started_pids(output.splitlines())
    assert sorted(nodes) == sorted(SIM_NODES)
    assert_every_node_stopped(output)
    if sys.platform.startswith('linux'):
        assert [name for name, pid in nodes.items() if running(pid)] == []
