"""llara_training imports the llara_policy core and never ROS; nothing imports training."""
import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2]
ROS = {'rclpy', 'llara_msgs', 'std_msgs', 'sensor_msgs', 'geometry_msgs', 'std_srvs',
       'action_msgs', 'builtin_interfaces'}


def imports_of(path: Path) -> set[str]:
    """Dotted module names a file imports (absolute imports only)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def test_training_never_imports_ros_or_the_ros_nodes():
    for path in (SRC / 'llara_training' / 'llara_training').rglob('*.py'):
        for name in imports_of(path):
            assert name.split('.')[0] not in ROS, f'{path.name} imports {name}'
            assert not name.startswith('llara_policy.ros'), f'{path.name} imports {name}'


def test_no_other_package_imports_training():
    for package in ('llara_policy', 'llara_bringup'):
        for path in (SRC / package).rglob('*.py'):
            assert not any(n.split('.')[0] == 'llara_training' for n in imports_of(path)), \
                f'{path} imports llara_training'
