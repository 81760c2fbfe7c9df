"""Dependency direction inside llara_policy, enforced rather than reviewed.

- Only `llara_policy/ros/` may import rclpy or ROS message packages.
- torch and the Hugging Face stack only in the model modules; pybullet only in the
  simulator; the xArm SDK only in its adapter.
- The core (prompting, geometry, calibration, config, errors, types, ...) imports with
  rclpy, torch and pybullet unavailable.
"""
import ast
from pathlib import Path
import subprocess
import sys

import pytest

PACKAGE_DIR = Path(__file__).resolve().parents[1] / 'llara_policy'
ROS = {'rclpy', 'llara_msgs', 'std_msgs', 'sensor_msgs', 'geometry_msgs', 'std_srvs',
       'action_msgs', 'builtin_interfaces', 'visualization_msgs', 'rosidl_runtime_py',
       'ament_index_python'}
ML = {'torch', 'transformers', 'peft', 'accelerate', 'bitsandbytes', 'tokenizers',
      'safetensors'}
SIM = {'pybullet', 'pybullet_data'}
SDK = {'xarm'}
# Where each heavy family may be imported (paths relative to the package directory).
ALLOWED = {
    'ros': lambda rel: rel.parts[0] == 'ros',
    'ml': lambda rel: rel.stem in {'policy', 'model_loading', 'decoding', 'tiny_models',
                                   'checkpoint_import'},
    'sim': lambda rel: rel.parts[0] == 'sim' or rel.as_posix() == 'arms/sim.py',
    'sdk': lambda rel: rel.as_posix() == 'arms/xarm.py',
}
FAMILIES = {'ros': ROS, 'ml': ML, 'sim': SIM, 'sdk': SDK}
# Modules the issue names as the ROS-free core; each must exist and import bare.
REQUIRED_CORE = ['errors', 'types', 'prompting', 'geometry', 'calibration']


def imported_top_names(path: Path) -> set[str]:
    """Top-level package names a file imports anywhere (module level or inside functions)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split('.')[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split('.')[0])
    return names


SOURCES = sorted(PACKAGE_DIR.rglob('*.py'))


@pytest.mark.parametrize('path', SOURCES, ids=lambda p: p.relative_to(PACKAGE_DIR).as_posix())
def test_heavy_dependencies_are_imported_only_where_allowed(path):
    rel = path.relative_to(PACKAGE_DIR)
    imported = imported_top_names(path)
    for family, names in FAMILIES.items():
        offending = imported & names
        assert not offending or ALLOWED[family](rel), \
            f'{rel} imports {sorted(offending)} ({family}); only allowed elsewhere'


def core_modules() -> list[str]:
    """Top-level modules that import no heavy family at all (they form the core)."""
    heavy = ROS | ML | SIM | SDK
    return sorted(p.stem for p in PACKAGE_DIR.glob('*.py')
                  if p.stem != '__init__' and not imported_top_names(p) & heavy)


BLOCKER = """
import importlib.abc, sys
BLOCKED = {blocked!r}
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in BLOCKED:
            raise ImportError(f'{{name}} is blocked: the core must not need it')
sys.meta_path.insert(0, Block())
import importlib
for module in {modules!r}:
    importlib.import_module('llara_policy.' + module)
print('imported', len({modules!r}))
"""


def test_required_core_modules_exist_and_import_no_heavy_dependency():
    core = core_modules()
    missing = [m for m in REQUIRED_CORE if m not in core]
    assert not missing, f'core modules missing or importing heavy packages: {missing}'


def test_core_imports_with_ros_torch_and_pybullet_unavailable():
    modules = core_modules()
    code = BLOCKER.format(blocked=sorted(ROS | ML | SIM | SDK), modules=modules)
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                         cwd=PACKAGE_DIR.parent)
    assert out.returncode == 0, out.stderr
    assert f'imported {len(modules)}' in out.stdout
