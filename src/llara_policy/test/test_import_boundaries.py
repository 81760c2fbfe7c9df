"""Dependency direction inside llara_policy, enforced on folders rather than reviewed.

The package's tree is its architecture: the ROS-free core (the modules at the package root plus
`text/` and `geometry/`), then `model/` and `arms/` on top of the core, `sim/` on top of `arms/`,
and `ros/` on top of everything. Each layer may import only the layers below it (so no cycle
between subpackages is possible) and only the third-party packages named for it here. A new
module needs no edit of this file; a new dependency or layer does, on purpose.
"""
import ast
from pathlib import Path
import subprocess
import sys

import pytest

PACKAGE = 'llara_policy'
PACKAGE_DIR = Path(__file__).resolve().parents[1] / PACKAGE
# Folders that belong to the core together with the modules at the package root.
CORE_FOLDERS = {'text', 'geometry'}
# Layer -> first-party layers it may import (besides itself).
LAYER_DEPENDS_ON = {
    'core': set(),
    'model': {'core'},
    'arms': {'core'},
    'sim': {'core', 'arms'},
    'ros': {'core', 'model', 'arms', 'sim'},
}
# Layer -> third-party top-level packages it may import (the standard library is always allowed).
CORE_THIRD_PARTY = {'numpy', 'cv2', 'yaml', 'regex', 'rosbags'}
ML = {'torch', 'transformers', 'tokenizers', 'safetensors', 'sentencepiece', 'peft',
      'accelerate', 'bitsandbytes', 'PIL'}
ROS = {'rclpy', 'llara_msgs', 'std_msgs', 'sensor_msgs', 'geometry_msgs', 'std_srvs',
       'action_msgs', 'builtin_interfaces', 'visualization_msgs', 'rosidl_runtime_py',
       'ament_index_python', 'cv_bridge', 'rcl_interfaces'}
SIM = {'pybullet', 'pybullet_data', 'imageio'}
SDK = {'xarm'}
LAYER_THIRD_PARTY = {
    'core': CORE_THIRD_PARTY,
    'model': CORE_THIRD_PARTY | ML,
    'arms': CORE_THIRD_PARTY | SDK,
    'sim': CORE_THIRD_PARTY | SIM,
    'ros': CORE_THIRD_PARTY | ML | ROS | SIM | SDK,
}
MAX_ROOT_MODULES = 10


def layer_of_path(rel: Path) -> str:
    """Layer of a file, from its place in the tree."""
    if len(rel.parts) == 1 or rel.parts[0] in CORE_FOLDERS:
        return 'core'
    return rel.parts[0]


def layer_of_module(dotted: str) -> str:
    """Layer of an imported first-party module name (`llara_policy.sim.env` -> `sim`)."""
    parts = dotted.split('.')
    if len(parts) == 1:
        return 'core'
    return parts[1] if parts[1] in LAYER_DEPENDS_ON else 'core'


def imports_of(path: Path) -> set[str]:
    """Dotted names a file imports anywhere (module level or inside functions)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.level:
                raise AssertionError(f'{path}: use absolute imports (house style)')
            base = node.module
            names |= {base + '.' + a.name if base == PACKAGE else base for a in node.names}
    return names


SOURCES = sorted(PACKAGE_DIR.rglob('*.py'))


def test_every_folder_is_a_known_layer():
    folders = {p.name for p in PACKAGE_DIR.iterdir()
               if p.is_dir() and p.name != '__pycache__'}
    assert folders <= CORE_FOLDERS | set(LAYER_DEPENDS_ON), \
        f'unknown subpackages {sorted(folders - CORE_FOLDERS - set(LAYER_DEPENDS_ON))}: ' \
        'give them a layer here'


@pytest.mark.parametrize('path', SOURCES, ids=lambda p: p.relative_to(PACKAGE_DIR).as_posix())
def test_imports_follow_the_layer_direction(path):
    rel = path.relative_to(PACKAGE_DIR)
    layer = layer_of_path(rel)
    for name in sorted(imports_of(path)):
        top = name.split('.')[0]
        if top in sys.stdlib_module_names:
            continue
        if top == PACKAGE:
            target = layer_of_module(name)
            assert target == layer or target in LAYER_DEPENDS_ON[layer], \
                f'{rel} ({layer}) imports {name} ({target}): {layer} may import only ' \
                f'{sorted(LAYER_DEPENDS_ON[layer] | {layer})}'
        else:
            assert top in LAYER_THIRD_PARTY[layer], \
                f'{rel} ({layer}) imports third-party {top!r}, not allowed in {layer}'


def test_layer_graph_has_no_cycle():
    # The allowed graph itself must be acyclic; together with the per-file test this rules out
    # cycles between subpackages however the files import each other.
    done, visiting = set(), set()

    def visit(layer):
        assert layer not in visiting, f'cycle through {layer}'
        if layer in done:
            return
        visiting.add(layer)
        for dep in LAYER_DEPENDS_ON[layer]:
            visit(dep)
        visiting.discard(layer)
        done.add(layer)

    for layer in LAYER_DEPENDS_ON:
        visit(layer)


def test_package_root_stays_small():
    root = sorted(p.stem for p in PACKAGE_DIR.glob('*.py') if p.stem != '__init__')
    assert len(root) <= MAX_ROOT_MODULES, f'{len(root)} modules at the package root: {root}'


def test_init_files_are_empty():
    for init in PACKAGE_DIR.rglob('__init__.py'):
        assert not init.read_text().strip() or init.read_text().lstrip().startswith('"""'), init


def core_modules() -> list[str]:
    """Dotted names of every core module (package root, text/, geometry/)."""
    mods = []
    for path in SOURCES:
        rel = path.relative_to(PACKAGE_DIR)
        if layer_of_path(rel) == 'core' and path.stem != '__init__':
            mods.append('.'.join(rel.with_suffix('').parts))
    return mods


BLOCKER = """
import importlib, importlib.abc, sys
BLOCKED = {blocked!r}
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in BLOCKED:
            raise ImportError(f'{{name}} is blocked: the core must not need it')
sys.meta_path.insert(0, Block())
for module in {modules!r}:
    importlib.import_module('llara_policy.' + module)
print('imported', len({modules!r}))
"""


def test_core_imports_with_ros_torch_and_pybullet_unavailable():
    modules = core_modules()
    assert {'errors', 'types', 'workspace', 'execution', 'text.prompting',
            'geometry.calibration'} <= set(modules)
    code = BLOCKER.format(blocked=sorted(ROS | ML | SIM | SDK), modules=modules)
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                         cwd=PACKAGE_DIR.parent)
    assert out.returncode == 0, out.stderr
    assert f'imported {len(modules)}' in out.stdout
