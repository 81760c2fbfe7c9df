"""The one declaration of each LLaRA graph (sim, xarm, vima), in plain Python data.

`launch/<graph>.launch.py` (for a full ROS 2 install) and the embedded launcher
(`python -m llara_bringup.launch`, for our wheels without `launch`) both call `resolve()` on
the same `Graph`, so their nodes, parameters and remappings cannot drift. A node parameter is a
literal, an `Arg` (the launch argument's value) or a `Derived` (a function of argument values,
e.g. `policy:=oracle` or a model directory). A node with `enabled_by` runs only when that bool
argument is true (`record:=true` starts recorder_node); launch files give it an
`IfCondition`, `resolve()` leaves it out. `config/<graph>.yaml` holds only deltas from the
config dataclasses' defaults and is passed to every node as its params file.
"""
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import yaml

from llara_policy.task_loop import LLARA_MAX_STEPS

PACKAGE = 'llara_bringup'
NODE_PACKAGE = 'llara_policy'
# VIMA-Bench test seeds start here (llara_policy.sim.episode.SEED_RANGES); episode k of a run
# with seed:=N uses TEST_SEED_BASE + N + k.
TEST_SEED_BASE = 1_000_000


@dataclass(frozen=True)
class Argument:
    """A launch argument: name, default (a string, as on the command line), description, type.

    `kind` (bool, int, float or str) is how the string is read; a str argument stays a
    string even when it looks like a number (`camera:=0` is a device index string).
    """

    name: str
    default: str
    description: str
    kind: type = str


@dataclass(frozen=True)
class Arg:
    """A node parameter whose value is the launch argument `name`, read as its `kind`."""

    name: str


@dataclass(frozen=True)
class Derived:
    """A node parameter computed from launch arguments: `function(*values of names)`."""

    function: Callable[..., Any]
    names: tuple[str, ...]


ParamValue = Union[bool, int, float, str, Arg, Derived]


@dataclass(frozen=True)
class NodeSpec:
    """One node process: `ros2 run <package> <executable>` named `name`.

    `enabled_by` names a bool launch argument: the node runs only when it is true ('' always).
    """

    executable: str
    name: str
    parameters: Mapping[str, ParamValue] = field(default_factory=dict)
    remappings: tuple[tuple[str, str], ...] = ()
    package: str = NODE_PACKAGE
    enabled_by: str = ''


@dataclass(frozen=True)
class Graph:
    """A graph: launch arguments, nodes, the YAML deltas file, whether it runs episodes.

    `unsupported` names what is missing when the graph is declared but cannot run yet.
    """

    name: str
    description: str
    arguments: tuple[Argument, ...]
    nodes: tuple[NodeSpec, ...]
    runs_episodes: bool = False
    unsupported: str = ''

    @property
    def launch_file(self) -> str:
        """The launch file name (`sim.launch.py`)."""
        return f'{self.name}.launch.py'

    @property
    def config_file(self) -> str:
        """The YAML deltas file name, relative to the package's config/ folder."""
        return f'{self.name}.yaml'


@dataclass(frozen=True)
class ResolvedNode:
    """A node with concrete parameter values (what both launchers start)."""

    package: str
    executable: str
    name: str
    parameters: dict[str, Any]
    remappings: tuple[tuple[str, str], ...]
    enabled_by: str = ''

    @property
    def renamed(self) -> bool:
        """Return whether the node is renamed (`__node:=name`).

        A rename applies to every node of the process (sim_node hosts three), so a node named
        as its executable keeps its names.
        """
        return self.name != self.executable


def parse_value(text: str, kind: type) -> Any:
    """Read a `name:=value` string as `kind`; ValueError naming the expected type."""
    if kind is str:
        return text
    value = yaml.safe_load(text) if text.strip() else None
    if kind is float and type(value) is int:
        value = float(value)
    if type(value) is not kind:
        raise ValueError(f'{text!r} is not a {kind.__name__}')
    return value


def policy_parameters(policy: str) -> dict[str, Any]:
    """`policy:=oracle` follows sim/oracle_plan; anything else is a model directory."""
    if policy == 'oracle':
        return {'policy': 'oracle'}
    return {'policy': 'model', 'model_path': policy}


def task_list(text: str) -> tuple[str, ...]:
    """Return the tasks of a `task:=a,b,c` argument, in order; ValueError for an empty name."""
    tasks = tuple(name.strip() for name in text.split(','))
    if not all(tasks):
        raise ValueError(f'task must be one or more comma-separated task names, got {text!r}')
    return tasks


def _first_task(text: str) -> str:
    """sim_node starts on the first task of the list (the episodes reset to each in turn)."""
    return task_list(text)[0]


def _oracle_plan(policy: str) -> bool:
    """sim_node publishes sim/oracle_plan only for policy:=oracle (VIMA's oracle has effects)."""
    return policy == 'oracle'


def _policy_mode(policy: str) -> str:
    return policy_parameters(policy)['policy']


def _model_path(policy: str) -> str:
    return policy_parameters(policy).get('model_path', '')


_POLICY_ARGS = (
    Argument('policy', 'oracle', "'oracle' (follow the sim's oracle; simulation only) or a "
             'model directory (LLaRA checkpoint)'),
    Argument('quantization', 'none', "model weights: 'none', 'int8' or 'nf4' (bitsandbytes)"),
    Argument('device', 'auto', "torch device of the model: 'auto', 'cpu', 'cuda', 'cuda:1'"),
    Argument('dtype', 'auto', "model dtype: 'auto' (float16 on CUDA; bfloat16 on a CPU with "
             "native bf16, else float32), 'float32', 'bfloat16' or 'float16'"),
    Argument('prompt_mode', 'inBC', "'inBC' or 'D-inBC' (task text carries object boxes)"),
    Argument('decoding', 'template', "model answers: 'template' (forced template text, every "
             "answer parses) or 'greedy' (the model's own text, as LLaRA's eval; unparseable "
             'answers are counted in policy/status, never executed)'),
    Argument('max_new_tokens', '256', 'most tokens of one model answer (LLaRA: 256; template '
             'decoding ends at the first step boundary past it)', int),
)
_POLICY_NODE = NodeSpec('policy_node', 'policy_node', {
    'policy': Derived(_policy_mode, ('policy',)),
    'model_path': Derived(_model_path, ('policy',)),
    'quantization': Arg('quantization'),
    'device': Arg('device'),
    'dtype': Arg('dtype'),
    'prompt_mode': Arg('prompt_mode'),
    'decoding': Arg('decoding'),
    'max_new_tokens': Arg('max_new_tokens'),
})
_TASK_ARGS = (
    Argument('max_steps', str(LLARA_MAX_STEPS), 'steps per task when a RunTask goal asks for '
             f'0, refused steps included (LLaRA: {LLARA_MAX_STEPS}); a sim env allows as many '
             "beyond its task's own", int),
    Argument('policy_timeout_s', '60.0', 'longest wait for the plan of one policy query (s)',
             float),
)
_TASK_ARG = Argument('task', 'visual_manipulation', 'VIMA task of the episodes (e.g. rotate), '
                     'or a comma-separated list: each task runs `episodes` episodes')
_EPISODE_ARGS = (
    Argument('seed', '0', f'first episode seed offset: episode k of a task uses test seed '
             f'{TEST_SEED_BASE:,} + seed + k', int),
    Argument('episodes', '1', 'episodes per task the embedded launcher runs through sim/reset '
             'and run_task (0: start the graph only)', int),
)
_SIM_ARGS = (
    _TASK_ARG,
    Argument('partition', 'placement_generalization',
             'VIMA partition: placement_, combinatorial_ or novel_object_generalization'),
    *_EPISODE_ARGS,
    Argument('renderer', 'auto', "sim camera renderer: 'auto', 'egl' or 'tiny' (CPU)"),
)
_VIMA_ARGS = (
    _TASK_ARG,
    Argument('partition', 'placement_generalization',
             'VIMA partition: placement_ (L1), combinatorial_ (L2), novel_object_ (L3) or '
             'novel_task_generalization (L4)'),
    *_EPISODE_ARGS,
    Argument('vima_mapping', 'unbiased', "VIMA's fixed-map convention: 'unbiased' (our own "
             "models) or 'llara' (LLaRA's released checkpoints)"),
)
_RECORD_ARGS = (
    Argument('record', 'false', "also start recorder_node: the graph's topics into a rosbag2 "
             '(MCAP) directory', bool),
    Argument('record_dir', '', "bag directory of record:=true (new or empty); '' is "
             'recordings/<local time YYYYmmdd-HHMMSS> under the working directory'),
)
_RECORDER_NODE = NodeSpec('recorder_node', 'recorder_node',
                          {'output_dir': Arg('record_dir')}, enabled_by='record')


def _task_node() -> NodeSpec:
    return NodeSpec('task_node', 'task_node', {
        'max_steps': Arg('max_steps'),
        'policy_timeout_s': Arg('policy_timeout_s'),
    })


def _sim_node(**backend: ParamValue) -> NodeSpec:
    """sim_node with the episode arguments and `backend`'s own parameters.

    Its env allows `max_steps` steps beyond the task's own, as LLaRA's evaluator makes its env
    (bonus_steps = max_steps): the task loop's budget, not the env, ends an unsolved episode.
    """
    return NodeSpec('sim_node', 'sim_node', {
        'task': Derived(_first_task, ('task',)),
        'partition': Arg('partition'),
        'seed': Derived(lambda seed: TEST_SEED_BASE + seed, ('seed',)),
        'bonus_steps': Arg('max_steps'),
        **backend,
    })


SIM = Graph(
    name='sim',
    description='Embedded sim: sim_node (camera + sim arm executor + sim/reset), policy_node, '
                'task_node',
    arguments=_SIM_ARGS + _POLICY_ARGS + _TASK_ARGS + _RECORD_ARGS,
    # The recorder first: it is subscribed before task_node sends its first policy/query.
    nodes=(_RECORDER_NODE, _sim_node(renderer=Arg('renderer')), _POLICY_NODE, _task_node()),
    runs_episodes=True,
)

XARM = Graph(
    name='xarm',
    description='Real xArm: perception_node (camera), policy_node, executor_node (xArm), '
                'task_node',
    arguments=(
        Argument('robot_ip', '192.168.1.185', 'xArm controller IP address'),
        Argument('camera', '0', 'camera source: device index, video file, URL or image folder'),
        Argument('camera_rate_hz', '10.0', 'camera frames per second', float),
        Argument('calibration_file', '', 'calibration YAML (llara_calibrate); required'),
        Argument('dry_run', 'true', 'compute and check every step, never move the arm', bool),
        Argument('policy', '', 'model directory (LLaRA checkpoint); required on the robot'),
    ) + _POLICY_ARGS[1:] + _TASK_ARGS + _RECORD_ARGS,
    nodes=(
        _RECORDER_NODE,
        NodeSpec('perception_node', 'perception_node', {
            'source': Arg('camera'), 'rate_hz': Arg('camera_rate_hz'),
            'calibration_file': Arg('calibration_file')}),
        _POLICY_NODE,
        NodeSpec('executor_node', 'executor_node', {
            'xarm.robot_ip': Arg('robot_ip'), 'calibration_file': Arg('calibration_file'),
            'dry_run': Arg('dry_run')}),
        _task_node(),
    ),
)

# config/vima.yaml sets sim_node's backend: vima (one VIMA env in sim_node's process).
VIMA = Graph(
    name='vima',
    description='VIMA-Bench: like sim, with the VIMA-Bench environment as camera and arm',
    arguments=_VIMA_ARGS + _POLICY_ARGS + _TASK_ARGS + _RECORD_ARGS,
    nodes=(_RECORDER_NODE,
           _sim_node(vima_mapping=Arg('vima_mapping'),
                     oracle_plan=Derived(_oracle_plan, ('policy',))),
           _POLICY_NODE, _task_node()),
    runs_episodes=True,
)

GRAPHS: dict[str, Graph] = {graph.launch_file: graph for graph in (SIM, XARM, VIMA)}


def config_path(graph: Graph) -> Path:
    """Return the YAML deltas file: the source tree's (symlink installs) or the installed one."""
    source = Path(__file__).resolve().parents[1] / 'config' / graph.config_file
    if source.is_file():
        return source
    from ament_index_python.packages import get_package_share_directory

    return Path(get_package_share_directory(PACKAGE)) / 'config' / graph.config_file


def graph_for(launch_file: str) -> Graph:
    """Return the graph of a launch file name (`sim.launch.py` or a path ending in it)."""
    name = Path(launch_file).name
    if name not in GRAPHS:
        raise KeyError(f'unknown launch file {launch_file!r}; known: {", ".join(GRAPHS)}')
    return GRAPHS[name]


def argument_values(graph: Graph, given: Mapping[str, str]) -> dict[str, str]:
    """Defaults overlaid with `given`; KeyError listing the valid names for an unknown one."""
    valid = [arg.name for arg in graph.arguments]
    unknown = sorted(set(given) - set(valid))
    if unknown:
        raise KeyError(f'{graph.launch_file}: unknown argument(s) {", ".join(unknown)}; valid: '
                       + ', '.join(f'{a.name} (default {a.default!r})' for a in graph.arguments))
    return {arg.name: str(given.get(arg.name, arg.default)) for arg in graph.arguments}


def typed_arguments(graph: Graph, given: Mapping[str, str]) -> dict[str, Any]:
    """Argument values read as their kinds; ValueError naming a bad argument."""
    typed = {}
    for arg in graph.arguments:
        text = argument_values(graph, given)[arg.name]
        try:
            typed[arg.name] = parse_value(text, arg.kind)
        except ValueError as err:
            raise ValueError(f'{graph.launch_file}: argument {arg.name}: {err}') from None
    return typed


def _value(value: ParamValue, args: Mapping[str, Any]) -> Any:
    if isinstance(value, Arg):
        return args[value.name]
    if isinstance(value, Derived):
        return value.function(*(args[name] for name in value.names))
    return value


def resolve(graph: Graph, given: Optional[Mapping[str, str]] = None,
            include_disabled: bool = False) -> list[ResolvedNode]:
    """Return the nodes with concrete parameters for the given launch argument values.

    A parameter that resolves to '' or None is left out, so the node's default applies. A node
    whose `enabled_by` argument is false is left out, unless `include_disabled` (launch files
    keep it and give it an IfCondition on the argument instead).
    """
    args = typed_arguments(graph, given or {})
    nodes = []
    for spec in graph.nodes:
        if spec.enabled_by and not (include_disabled or args[spec.enabled_by]):
            continue
        values = {key: _value(value, args) for key, value in spec.parameters.items()}
        nodes.append(ResolvedNode(spec.package, spec.executable, spec.name,
                                  {k: v for k, v in values.items() if v not in ('', None)},
                                  spec.remappings, spec.enabled_by))
    return nodes
