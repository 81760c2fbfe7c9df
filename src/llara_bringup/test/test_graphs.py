"""The launch files and the embedded launcher cannot drift: both build their nodes from
graphs.resolve. Each launch file runs here against recording stand-ins of launch/launch_ros
(not installable from PyPI), and its arguments and nodes are compared with the declaration and
with the embedded launcher's command lines; the launcher's command-line errors."""
import dataclasses
from pathlib import Path
import runpy
import sys
import types

import pytest
import yaml

from llara_bringup import graphs
from llara_bringup.launch import LaunchError, main, node_command, parse_command_line, ros_value

LAUNCH_DIR = Path(__file__).resolve().parents[1] / 'launch'


class Recorded:
    """Any launch action: its positional and keyword arguments."""

    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs


class LaunchConfiguration:
    def __init__(self, name):
        self.name = name

    def perform(self, context):
        return context[self.name]


class IfCondition:
    """launch.conditions.IfCondition: true for 'true'/'1', false for 'false'/'0', else error."""

    def __init__(self, predicate):
        self.predicate = predicate

    def evaluate(self, context):
        text = self.predicate.perform(context).strip().lower()
        if text not in ('true', '1', 'false', '0'):
            raise ValueError(f'IfCondition: {text!r} is not a boolean')
        return text in ('true', '1')


@pytest.fixture
def fake_launch(monkeypatch):
    """Install recording `launch` and `launch_ros` modules for the duration of a test."""
    modules = {name: types.ModuleType(name) for name in (
        'launch', 'launch.actions', 'launch.conditions', 'launch.substitutions', 'launch_ros',
        'launch_ros.actions')}
    modules['launch'].LaunchDescription = lambda actions: list(actions)
    for name in ('DeclareLaunchArgument', 'OpaqueFunction'):
        setattr(modules['launch.actions'], name, type(name, (Recorded,), {}))
    modules['launch.substitutions'].LaunchConfiguration = LaunchConfiguration
    modules['launch.conditions'].IfCondition = IfCondition
    modules['launch_ros.actions'].Node = type('Node', (Recorded,), {})
    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, name, module)


def launch_file_nodes(path: Path, values: dict):
    """(declared arguments, Node kwargs of the nodes that start) for argument `values`.

    A Node's `condition` is evaluated as `launch` does; one that is false does not start.
    """
    description = runpy.run_path(str(path))['generate_launch_description']()
    declared = [a for a in description if type(a).__name__ == 'DeclareLaunchArgument']
    opaque = [a for a in description if type(a).__name__ == 'OpaqueFunction']
    assert len(opaque) == 1
    context = {a.args[0]: a.kwargs['default_value'] for a in declared} | values
    nodes = opaque[0].kwargs['function'](context)
    return declared, [n.kwargs for n in nodes
                      if 'condition' not in n.kwargs or n.kwargs['condition'].evaluate(context)]


def test_every_graph_has_its_launch_file_and_config():
    assert {p.name for p in LAUNCH_DIR.glob('*.launch.py')} == set(graphs.GRAPHS)
    for graph in graphs.GRAPHS.values():
        assert graphs.config_path(graph).is_file()


def test_launch_files_import_without_launch_installed():
    for path in LAUNCH_DIR.glob('*.launch.py'):
        assert callable(runpy.run_path(str(path))['generate_launch_description'])


@pytest.mark.parametrize('launch_file', sorted(graphs.GRAPHS))
@pytest.mark.parametrize('values', [
    {}, {'policy': '/models/llara', 'max_steps': '5'}, {'record': 'true'},
    {'record': 'true', 'record_dir': '/tmp/bag'}, {'record': 'false', 'record_dir': '/tmp/bag'}])
def test_launch_file_and_embedded_launcher_agree(fake_launch, launch_file, values):
    graph = graphs.graph_for(launch_file)
    declared, nodes = launch_file_nodes(LAUNCH_DIR / launch_file, values)
    assert [(a.args[0], a.kwargs['default_value'], a.kwargs['description'])
            for a in declared] == [(a.name, a.default, a.description) for a in graph.arguments]
    resolved = graphs.resolve(graph, values)
    params_file = str(graphs.config_path(graph))
    assert [n['executable'] for n in nodes] == [n.executable for n in resolved]
    for kwargs, node in zip(nodes, resolved, strict=True):
        assert kwargs['package'] == node.package == 'llara_policy'
        assert kwargs['name'] == (node.name if node.renamed else None)
        assert kwargs['parameters'] == [params_file, node.parameters]
        assert kwargs['remappings'] == list(node.remappings)
        # A node enabled by an argument is conditional on exactly that argument in the file.
        if node.enabled_by:
            assert kwargs['condition'].predicate.name == node.enabled_by
        else:
            assert 'condition' not in kwargs
        # The embedded launcher passes exactly these parameters on the command line.
        cmd = node_command(node, Path(params_file))
        assert cmd[cmd.index('--params-file') + 1] == params_file
        passed = [cmd[i + 1] for i, item in enumerate(cmd) if item == '-p']
        assert passed == [f'{k}:={ros_value(v)}' for k, v in kwargs['parameters'][1].items()]


def test_sim_graph_nodes_and_policy_argument():
    nodes = {n.name: n for n in graphs.resolve(graphs.SIM, {'seed': '3', 'task': 'rotate'})}
    assert list(nodes) == ['sim_node', 'policy_node', 'task_node']  # record:=false
    assert nodes['sim_node'].parameters['seed'] == 1_000_003
    assert nodes['sim_node'].parameters['task'] == 'rotate'
    assert nodes['policy_node'].parameters['policy'] == 'oracle'
    assert 'model_path' not in nodes['policy_node'].parameters
    model = graphs.resolve(graphs.SIM, {'policy': '/m'})[1].parameters
    assert (model['policy'], model['model_path']) == ('model', '/m')
    xarm = [n.name for n in graphs.resolve(graphs.XARM)]
    assert xarm == ['perception_node', 'policy_node', 'executor_node', 'task_node']


@pytest.mark.parametrize('graph', [graphs.SIM, graphs.XARM])
def test_record_argument_starts_recorder_node_with_its_output_dir(graph):
    names = [n.name for n in graphs.resolve(graph)]
    assert 'recorder_node' not in names
    assert [n.name for n in graphs.resolve(graph, {'record': 'false'})] == names
    recorder, *others = graphs.resolve(graph, {'record': 'true', 'record_dir': '/tmp/b'})
    assert [n.name for n in others] == names
    assert recorder.executable == 'recorder_node'
    assert recorder.parameters == {'output_dir': '/tmp/b'}
    assert "output_dir:='/tmp/b'" in node_command(recorder, None)
    # record_dir '' leaves output_dir unset: the recorder's default recordings/<timestamp>.
    assert graphs.resolve(graph, {'record': 'true'})[0].parameters == {}
    with pytest.raises(ValueError, match='argument record'):
        graphs.resolve(graph, {'record': 'yes please'})


def test_enabled_by_names_a_bool_argument_of_the_graph():
    for graph in graphs.GRAPHS.values():
        kinds = {a.name: a.kind for a in graph.arguments}
        for spec in graph.nodes:
            assert not spec.enabled_by or kinds.get(spec.enabled_by) is bool, spec


def test_launch_file_starts_recorder_only_with_record_true(fake_launch):
    for launch_file in ('sim.launch.py', 'xarm.launch.py'):
        _, off = launch_file_nodes(LAUNCH_DIR / launch_file, {})
        _, on = launch_file_nodes(LAUNCH_DIR / launch_file, {'record': 'true'})
        assert 'recorder_node' not in [n['executable'] for n in off]
        assert [n['executable'] for n in on] == ['recorder_node'] + [n['executable'] for n in off]


def test_string_arguments_stay_strings_on_the_command_line():
    node = graphs.resolve(graphs.XARM, {'camera': '0'})[0]
    assert node.parameters['source'] == '0'
    assert "source:='0'" in node_command(node, None)
    assert ros_value(True) == 'true' and ros_value(3) == '3' and ros_value("it's") == "'it''s'"


@pytest.mark.parametrize('argv,message', [
    ([], 'usage'),
    (['nope.launch.py'], 'unknown launch file'),
    (['sim.launch.py', 'bogus:=1'], 'valid: task'),
    (['sim.launch.py', 'seed:=x'], 'argument seed'),
    (['sim.launch.py', 'task=rotate'], 'name:=value'),
])
def test_bad_command_lines_are_clear_errors(argv, message):
    with pytest.raises(LaunchError, match=message):
        parse_command_line(argv)


def test_unsupported_graph_exits_2_naming_what_is_missing(capsys, monkeypatch):
    missing = dataclasses.replace(graphs.VIMA, unsupported='no backend for it here')
    monkeypatch.setitem(graphs.GRAPHS, 'vima.launch.py', missing)
    assert main(['vima.launch.py']) == 2
    assert 'no backend for it here' in capsys.readouterr().err


def test_vima_graph_runs_sim_node_on_vima_bench_with_its_arguments():
    assert not graphs.VIMA.unsupported
    params = graphs.resolve(graphs.VIMA, {'task': 'rotate,follow_motion', 'seed': '2',
                                          'partition': 'novel_task_generalization',
                                          'max_steps': '5'})[0].parameters
    # The env allows max_steps beyond the task's own, as LLaRA's evaluator makes VIMA's env.
    assert params == {'task': 'rotate', 'partition': 'novel_task_generalization',
                      'seed': 1_000_002, 'bonus_steps': 5, 'vima_mapping': 'unbiased',
                      'oracle_plan': True}
    model = graphs.resolve(graphs.VIMA, {'policy': '/m', 'vima_mapping': 'llara'})
    assert model[0].parameters['oracle_plan'] is False
    assert model[0].parameters['vima_mapping'] == 'llara'
    # The backend comes from config/vima.yaml (a delta from SimNodeConfig's 'embedded').
    deltas = yaml.safe_load(graphs.config_path(graphs.VIMA).read_text())
    assert deltas['sim_node']['ros__parameters'] == {'backend': 'vima'}
    assert 'renderer' not in [a.name for a in graphs.VIMA.arguments]


@pytest.mark.parametrize('text,tasks', [('rotate', ('rotate',)),
                                        ('rotate, twist,same_shape', ('rotate', 'twist',
                                                                      'same_shape'))])
def test_task_argument_is_a_comma_separated_list(text, tasks):
    assert graphs.task_list(text) == tasks
    assert parse_command_line(['vima.launch.py', f'task:={text}'])[1] == {'task': text}


@pytest.mark.parametrize('text', ['', 'rotate,', ',rotate', 'rotate,,twist'])
def test_an_empty_task_name_is_a_clear_error(text):
    with pytest.raises(LaunchError, match='comma-separated task names'):
        parse_command_line(['sim.launch.py', f'task:={text}'])
