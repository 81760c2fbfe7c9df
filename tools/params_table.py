"""Generate the README's reference tables: every launch argument and every node parameter.

Launch arguments come from `llara_bringup.graphs` (the one declaration per graph); node
parameters from the config dataclasses, declared through the nodes' own declare functions on a
recording stand-in node (no ROS context, no arm, no calibration file), so names, defaults and
descriptions are exactly what the nodes declare. `python tools/params_table.py` prints the
markdown; the README holds it between the `params-table` markers and tests/test_params_table.py
checks that the two are identical and that a running executor_node declares these names.
"""
from dataclasses import dataclass
import sys


@dataclass
class _Value:
    value: object


class RecordingNode:
    """Stands in for rclpy's Node in `declare_config`: records each declared parameter."""

    def __init__(self, name: str):
        self.name = name
        self.parameters: list[tuple[str, object, str]] = []

    def declare_parameter(self, name, default, descriptor):
        """Record the parameter; its value is the default (nothing is overridden here)."""
        self.parameters.append((name, default, descriptor.description))
        return _Value(default)

    def get_name(self) -> str:
        """Return the node name (declare_config names it in errors)."""
        return self.name


def node_parameters() -> dict[str, list[tuple[str, object, str]]]:
    """Node name -> [(parameter, default, description)] in declaration order."""
    from llara_policy.arms.executor import ExecutorConfig
    from llara_policy.arms.xarm import XArmConfig
    from llara_policy.camera import CameraConfig
    from llara_policy.model.config import PolicyConfig
    from llara_policy.model.serving import ServingConfig
    from llara_policy.recording import RecorderConfig
    from llara_policy.ros import executor_params as ep
    from llara_policy.ros.params import declare_config
    from llara_policy.ros.sim_node import SimNodeConfig
    from llara_policy.task_loop import TaskLoopConfig
    from llara_policy.workspace import Workspace

    declarations = {
        'perception_node': lambda n: declare_config(n, CameraConfig),
        'policy_node': lambda n: (declare_config(n, PolicyConfig),
                                  declare_config(n, ServingConfig)),
        # As ExecutorNode declares them: executor config, workspace, calibration, arm, xarm.*
        'executor_node': lambda n: (ep.declare_executor_config(n, ExecutorConfig()),
                                    ep._declare(n, Workspace, Workspace(), 'workspace.'),
                                    declare_config(n, ep.CalibrationParams),
                                    declare_config(n, ep.ArmParams),
                                    declare_config(n, XArmConfig, 'xarm.')),
        'task_node': lambda n: declare_config(n, TaskLoopConfig),
        'sim_node': lambda n: declare_config(n, SimNodeConfig),
        'recorder_node': lambda n: declare_config(n, RecorderConfig),
    }
    tables = {}
    for name, declare in declarations.items():
        node = RecordingNode(name)
        declare(node)
        tables[name] = node.parameters
    return tables


def _text(text: str) -> str:
    return str(text).replace('|', '\\|').replace('\n', ' ')


def _cell(value) -> str:
    """Write a default as a user writes it on the command line or in YAML."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, tuple)):
        return str(list(value))
    return repr(value) if value == '' else _text(value)


def markdown() -> str:
    """Return the reference section's body: one table per graph, then one per node."""
    from llara_bringup.graphs import GRAPHS

    out = []
    for launch_file, graph in GRAPHS.items():
        out += [f'**`{launch_file}`**: {graph.description}.', '',
                '| argument | default | meaning |', '|---|---|---|']
        out += [f'| `{a.name}` | `{_cell(a.default)}` | {_text(a.description)} |'
                for a in graph.arguments]
        out.append('')
    for node, parameters in node_parameters().items():
        out += [f'**`{node}`** parameters:', '', '| parameter | default | meaning |',
                '|---|---|---|']
        out += [f'| `{name}` | `{_cell(default)}` | {_text(text)} |'
                for name, default, text in parameters]
        out.append('')
    return '\n'.join(out).rstrip('\n') + '\n'


if __name__ == '__main__':
    sys.stdout.write(markdown())
