"""The README's launch-argument and node-parameter tables match the code, and real nodes
declare exactly the parameters the tables list."""
from pathlib import Path
import re
import sys

import pytest
import rclpy
from rclpy.parameter import Parameter

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / 'tools'))
import params_table  # noqa: E402

BEGIN, END = '<!-- params-table:begin -->', '<!-- params-table:end -->'


def test_readme_tables_match_the_code():
    readme = (ROOT / 'README.md').read_text()
    inside = readme.split(BEGIN, 1)[1].split(END, 1)[0]
    assert inside.strip() == params_table.markdown().strip(), (
        'README parameter tables are stale: run python tools/params_table.py and paste the '
        'output between the params-table markers')


def test_every_argument_and_parameter_is_described():
    for line in params_table.markdown().splitlines():
        if re.match(r'\| `[^`]+` \|', line):
            assert line.rstrip(' |').split('|')[-1].strip(), f'undocumented: {line}'


@pytest.fixture
def context():
    context = rclpy.Context()
    rclpy.init(context=context, args=[], domain_id=199)
    yield context
    rclpy.try_shutdown(context=context)


def _declared(node) -> set[str]:
    # rclpy's own parameters (every node has them) are not ours to document.
    names = {name for name in node._parameters
             if name not in ('use_sim_time', 'start_type_description_service')}
    node.destroy_node()
    return names


def test_running_nodes_declare_what_the_tables_list(context, tmp_path):
    from llara_policy.geometry.calibration import save_calibration
    from llara_policy.ros.executor_node import ExecutorNode
    from llara_policy.ros.task_node import TaskNode
    from llara_policy.sim.env import SimEnv, SimEnvConfig

    tables = params_table.node_parameters()
    listed = {node: {name for name, _, _ in rows} for node, rows in tables.items()}
    assert _declared(TaskNode(context=context)) == listed['task_node']

    with SimEnv(SimEnvConfig(renderer='tiny')) as env:
        calibration = tmp_path / 'cal.yaml'
        save_calibration(env.calibration, calibration)
    executor = ExecutorNode(context=context, parameter_overrides=[
        Parameter('calibration_file', value=str(calibration)), Parameter('arm', value='none')])
    # xarm.* are declared only when arm:=xarm (they configure the SDK connection).
    assert _declared(executor) == {n for n in listed['executor_node']
                                   if not n.startswith('xarm.')}
