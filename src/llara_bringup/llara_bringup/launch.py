"""Embedded launcher: `python -m llara_bringup.launch sim.launch.py task:=rotate episodes:=20`.

For machines without ROS 2 `launch` (ours): the same launch file names and `name:=value`
arguments as `ros2 launch llara_bringup ...`, the same resolved nodes (`graphs.resolve`). Each
node runs as `python -m llara_policy.ros.<executable> --ros-args ...` in its own process group
(a terminal's Ctrl-C reaches the launcher only, which stops the nodes in order) with its output
prefixed by its name. A graph that runs episodes waits for `sim/reset` and `run_task`, runs
them, prints the per-task success table (last line `success: K/N`) and shuts down; otherwise it
runs until Ctrl-C. A node that exits on its own (a start-up error) stops the graph: exit 1, its
last output lines repeated in the error. Shutdown: SIGINT to every child, SIGKILL after a
timeout (SIGUSR1 first: the node prints its threads' stacks, naming the hang). On Linux the
kernel also sends every node SIGINT when the launcher dies, even by SIGKILL, so no node
outlives it (SIGINT, as in a normal stop: rclpy turns SIGTERM into a context
shutdown that a node still loading its model notices only once it is built, seconds later).
One graph per DDS domain on this machine (`domain_lock`): a second launcher in the same
ROS_DOMAIN_ID exits 1 at once, naming the first one's pid.
"""
from collections import deque
from collections.abc import Callable, Sequence
import contextlib
import ctypes
import ctypes.util
import os
from pathlib import Path
import signal
import subprocess
import sys
import threading
import time
from typing import Any, Optional

from llara_bringup.domain_lock import DomainError, claim_domain, current_domain
from llara_bringup.graphs import (
    GRAPHS,
    TEST_SEED_BASE,
    Graph,
    ResolvedNode,
    config_path,
    graph_for,
    resolve,
    task_list,
    typed_arguments,
)

ERROR_PREFIX = 'llara_bringup.launch: '  # starts each of the launcher's own error lines

GRAPH_TIMEOUT_S = 180.0  # model loading included; the sim graph is normally up in seconds
SHUTDOWN_TIMEOUT_S = 10.0
STACK_DUMP_WAIT_S = 1.0  # for a hung node's stack dump (SIGUSR1) to reach its output
# Stopped last, after the others and this long, so their last messages reach the bag.
RECORDER_NODES = ('recorder_node',)
RECORDER_DRAIN_S = 0.5
# Lines of a node's output kept to repeat when it exits on its own: the last ones, and the
# last error log lines before them (a traceback can push 'cannot start: ...' out of the tail).
TAIL_LINES = 12
ERROR_LINES = 3
ERROR_MARKS = ('[FATAL]', '[ERROR]')
PR_SET_PDEATHSIG = 1  # linux/prctl.h
_OUTPUT_LOCK = threading.Lock()
USAGE = ('usage: python -m llara_bringup.launch <launch file> [name:=value ...]\n'
         f'launch files: {", ".join(GRAPHS)}')


def say(text: str) -> None:
    """Print one whole line to stdout, atomically.

    Node outputs are forwarded by reader threads and print() writes a text and its newline
    separately, so two threads' lines could merge into one (a node's line glued to an episode
    line broke the demo's parsing).
    """
    with _OUTPUT_LOCK:
        sys.stdout.write(text + '\n')
        sys.stdout.flush()


class LaunchError(Exception):
    """A bad command line or a graph that did not come up; the message is for the user."""


def parse_command_line(argv: Sequence[str]) -> tuple[Graph, dict[str, str]]:
    """(graph, given arguments) from `<launch file> name:=value ...`; LaunchError if bad."""
    if not argv or argv[0] in ('-h', '--help'):
        raise LaunchError(USAGE)
    try:
        graph = graph_for(argv[0])
    except KeyError as err:
        raise LaunchError(f'{err.args[0]}\n{USAGE}') from None
    given = {}
    for item in argv[1:]:
        name, sep, value = item.partition(':=')
        if not sep or not name:
            raise LaunchError(f'arguments are name:=value, got {item!r}')
        given[name] = value
    try:
        args = typed_arguments(graph, given)
        if 'task' in args:
            task_list(args['task'])
    except (KeyError, ValueError) as err:
        raise LaunchError(str(err.args[0])) from None
    return graph, given


def ros_value(value: Any) -> str:
    """Format a parameter value as `-p name:=value` text that ROS reads back as the same type."""
    if isinstance(value, bool):
        return 'true' if value else 'false'
    if isinstance(value, (int, float)):
        return repr(value)
    return "'" + str(value).replace("'", "''") + "'"  # a YAML string, even for '0' or 'true'


def node_command(node: ResolvedNode, params_file: Optional[Path]) -> list[str]:
    """Return the command line that runs `node` like `ros2 run` with the launch file's settings."""
    module = f'{node.package}.ros.{node.executable}'
    cmd = [sys.executable, '-m', module, '--ros-args']
    if node.renamed:
        cmd += ['-r', f'__node:={node.name}']
    if params_file is not None:
        cmd += ['--params-file', str(params_file)]
    for name, value in node.parameters.items():
        cmd += ['-p', f'{name}:={ros_value(value)}']
    for source, target in node.remappings:
        cmd += ['-r', f'{source}:={target}']
    return cmd


def _default_signals() -> None:
    # A launcher started in the background of a script inherits SIGINT ignored; its nodes
    # must still stop on the SIGINT it sends them.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def libc_prctl() -> Optional[Callable[..., int]]:
    """Return libc's prctl on Linux, else None (no parent-death signal there)."""
    if not sys.platform.startswith('linux'):
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6', use_errno=True).prctl
    except (OSError, AttributeError):
        return None


def child_setup(prctl: Optional[Callable[..., int]], parent_pid: int) -> Callable[[], None]:
    """Return the preexec_fn of a node: default signals and, with `prctl`, SIGINT at our death.

    The kernel sends PR_SET_PDEATHSIG's signal when the thread that forked the child ends, so
    nodes are started from the launcher's main thread. A launcher that died before prctl ran
    is seen as a changed parent pid: the node then ends at once.
    """
    def setup() -> None:
        _default_signals()
        if prctl is None:
            return
        if prctl(PR_SET_PDEATHSIG, int(signal.SIGINT), 0, 0, 0) != 0:
            os.write(2, b'[launch] prctl(PR_SET_PDEATHSIG) failed: this node would outlive a '
                        b'killed launcher\n')
        elif os.getppid() != parent_pid:
            os.kill(os.getpid(), signal.SIGINT)

    return setup


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


class Child:
    """One node process in its own process group, its output prefixed by its name.

    Its last TAIL_LINES output lines and ERROR_LINES error log lines are kept for the report
    if it exits on its own.
    """

    def __init__(self, name: str, cmd: list[str], prctl: Optional[Callable[..., int]] = None,
                 keep_fds: tuple[int, ...] = ()):
        self.name = name
        self.tail: deque[str] = deque(maxlen=TAIL_LINES)
        self.errors: deque[str] = deque(maxlen=ERROR_LINES)
        env = dict(os.environ, PYTHONUNBUFFERED='1', RCUTILS_COLORIZED_OUTPUT='0')
        self.process = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, env=env, text=True,
                                        start_new_session=True, pass_fds=keep_fds,
                                        preexec_fn=child_setup(prctl, os.getpid()))
        self.reader = threading.Thread(target=self._forward, daemon=True)
        self.reader.start()

    def _forward(self) -> None:
        for line in self.process.stdout:
            self.tail.append(line.rstrip())
            if any(mark in line for mark in ERROR_MARKS):
                self.errors.append(line.rstrip())
            say(f'[{self.name}] {line.rstrip()}')

    def signal(self, signum: int) -> None:
        """Send `signum` to the child's process group (gone already: nothing to do)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signum)

    def exit_report(self, code: int) -> str:
        """Say that the node exited with `code`, with its last error and output lines."""
        self.reader.join(timeout=2.0)  # its pipe closes when it exits: the tail is complete
        earlier = [line for line in self.errors if line not in self.tail]
        lines = ''.join(f'\n  [{self.name}] {line}'
                        for line in [*earlier, *(['...'] if earlier else []), *self.tail])
        return f'{self.name} (pid {self.process.pid}) exited with code {code}; its last ' \
               f'output:{lines or " (none)"}'


def stop_children(children: list[Child], timeout_s: float = SHUTDOWN_TIMEOUT_S) -> None:
    """Stop the nodes, the recorder last: SIGINT, then SIGKILL after `timeout_s`.

    The recorder gets its SIGINT only after the other nodes have exited plus RECORDER_DRAIN_S,
    so the last messages they sent (the final task/result is published just before the
    launcher learns that the episode ended) reach the bag.
    """
    recorders = [c for c in children if c.name in RECORDER_NODES]
    _stop([c for c in children if c not in recorders], timeout_s)
    if recorders:
        time.sleep(RECORDER_DRAIN_S)
        _stop(recorders, timeout_s)


def _stop(children: list[Child], timeout_s: float) -> None:
    for child in children:
        if child.process.poll() is None:
            child.signal(signal.SIGINT)
    deadline = time.monotonic() + timeout_s
    for child in children:
        try:
            child.process.wait(timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            # run_node prints every thread's stack on SIGUSR1: the report names the hang.
            child.signal(signal.SIGUSR1)
            time.sleep(STACK_DUMP_WAIT_S)
            say(f'[launch] {child.name} did not stop on SIGINT within {timeout_s:g} s '
                f"(its threads' stacks above): killed")
            child.signal(signal.SIGKILL)
            child.process.wait(timeout=timeout_s)
        child.reader.join(timeout=1.0)


def _check_alive(children: list[Child]) -> None:
    """LaunchError naming every node that has exited, with its last output lines."""
    exited = [(child, child.process.poll()) for child in children]
    reports = [child.exit_report(code) for child, code in exited if code is not None]
    if reports:
        raise LaunchError('\n'.join(reports))


def watch_children(children: list[Child]) -> None:
    """From now on a node that exits raises LaunchError in the main thread at once.

    SIGCHLD's handler checks the nodes, so an episode in progress (its waits are long) ends
    when a node dies instead of at its timeout. Without SIGCHLD (Windows) only the polls of
    the graph waits and of the main loop notice it.
    """
    if hasattr(signal, 'SIGCHLD'):
        signal.signal(signal.SIGCHLD, lambda signum, frame: _check_alive(children))
    _check_alive(children)  # one that exited before the handler was set


def _unwatch_children() -> None:
    if hasattr(signal, 'SIGCHLD'):
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)


def run_episodes(graph: Graph, given: dict[str, str], children: list[Child]) -> str:
    """Run each listed task's episodes through sim/reset + run_task; return the table."""
    from llara_bringup.episodes import EpisodeRunner, success_table

    args = typed_arguments(graph, given)
    runner = EpisodeRunner(log=say)
    try:
        runner.wait_for_graph(GRAPH_TIMEOUT_S, alive=lambda: _check_alive(children))
        if any(child.name == 'recorder_node' for child in children):
            runner.wait_for_subscriber('policy/query', 'recorder_node', GRAPH_TIMEOUT_S,
                                       alive=lambda: _check_alive(children))
        results = []
        episodes = [(task, TEST_SEED_BASE + args['seed'] + k)
                    for task in task_list(args['task']) for k in range(args['episodes'])]
        for number, (task, seed) in enumerate(episodes, 1):
            _check_alive(children)
            result = runner.run_episode(task, seed)
            say(f'[launch] episode {number}/{len(episodes)} {result.task} seed {seed}: '
                  f'{"success" if result.success else "failure"} after {result.steps} steps '
                  f'({result.message})')
            results.append(result)
    except TimeoutError as err:
        raise LaunchError(str(err)) from None
    finally:
        runner.close()
    return success_table(results)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point; exit 0 when the graph ran, 1 when it failed, 2 on a bad command line."""
    try:
        graph, given = parse_command_line(sys.argv[1:] if argv is None else argv)
        if graph.unsupported:
            raise LaunchError(f'{graph.launch_file} cannot run yet: {graph.unsupported}')
    except LaunchError as err:
        print(f'{ERROR_PREFIX}{err}', file=sys.stderr)
        return 2
    try:
        # Held by the nodes too (an inherited descriptor): the domain stays taken until the
        # last of them has exited, even when this launcher is killed first.
        domain_claim = claim_domain(current_domain())
    except DomainError as err:
        print(f'{ERROR_PREFIX}{err}', file=sys.stderr)
        return 1
    params_file = config_path(graph)
    prctl = libc_prctl()
    if prctl is None:
        say(f'[launch] note: no parent-death signal on {sys.platform}: if this launcher is '
              'killed (not stopped with Ctrl-C or SIGTERM), stop its nodes yourself')
    children: list[Child] = []
    table: list[str] = []  # printed once the nodes are stopped: its last line is the output's
    # Ctrl-C and SIGTERM (docker stop, a parent's kill) both stop the graph cleanly, even when
    # this process was started with SIGINT ignored.
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        for node in resolve(graph, given):
            cmd = node_command(node, params_file)
            children.append(Child(node.name, cmd, prctl, keep_fds=(domain_claim.fileno(),)))
            say(f'[launch] {node.name} (pid {children[-1].process.pid}): '
                  f'{" ".join(cmd[1:])}')
        watch_children(children)
        if graph.runs_episodes and typed_arguments(graph, given)['episodes'] > 0:
            table.append(run_episodes(graph, given, children))
            return 0
        while True:  # the graph runs until Ctrl-C or a node exits
            _check_alive(children)
            time.sleep(0.5)
    except LaunchError as err:
        print(f'{ERROR_PREFIX}{err}', file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        say('[launch] interrupted: stopping the graph')
        return 0
    finally:
        _unwatch_children()  # the nodes now exit because they are stopped
        stop_children(children)
        for text in table:  # after the nodes' shutdown output, so `success: K/N` ends it
            say(text)


if __name__ == '__main__':
    raise SystemExit(main())
