"""The two silent `colcon test` traps stay closed (feasibility.md 1d).

A throwaway workspace with our colcon_defaults.yaml and one ament_python package laid out like
ours (extras_require test extra): a failing test must make plain `colcon test` exit non-zero,
and a passing one must really run under pytest (not `setup.py test` with 0 tests).
"""
from pathlib import Path
import shutil
import subprocess

import pytest

ROOT = Path(__file__).resolve().parents[1]


def make_workspace(tmp_path: Path, test_body: str) -> Path:
    pkg = tmp_path / 'src' / 'probe_pkg'
    for sub in ('probe_pkg', 'test', 'resource'):
        (pkg / sub).mkdir(parents=True)
    (pkg / 'probe_pkg' / '__init__.py').write_text('')
    (pkg / 'resource' / 'probe_pkg').write_text('')
    shutil.copy(ROOT / 'src' / 'llara_bringup' / 'setup.cfg', pkg / 'setup.cfg')
    (pkg / 'setup.cfg').write_text((pkg / 'setup.cfg').read_text().replace('llara_bringup',
                                                                            'probe_pkg'))
    (pkg / 'package.xml').write_text(
        (ROOT / 'src' / 'llara_bringup' / 'package.xml').read_text()
        .replace('llara_bringup', 'probe_pkg')
        .replace('<exec_depend>llara_policy</exec_depend>', '')
        .replace('<exec_depend>llara_msgs</exec_depend>', ''))
    (pkg / 'setup.py').write_text(
        "from setuptools import setup\n"
        "setup(name='probe_pkg', version='0.0.1', packages=['probe_pkg'],\n"
        "      data_files=[('share/ament_index/resource_index/packages',\n"
        "                   ['resource/probe_pkg']), ('share/probe_pkg', ['package.xml'])],\n"
        "      extras_require={'test': ['pytest']})\n")
    (pkg / 'test' / 'test_probe.py').write_text(test_body)
    shutil.copy(ROOT / 'colcon_defaults.yaml', tmp_path / 'colcon_defaults.yaml')
    subprocess.run(['colcon', 'build'], cwd=tmp_path, check=True, capture_output=True)
    return tmp_path


@pytest.mark.parametrize('body,expected_rc,expected_line', [
    ('def test_fails():\n    assert 1 == 2\n', 1, '1 failed'),
    ('def test_passes():\n    assert 1 == 1\n', 0, '1 passed'),
])
def test_plain_colcon_test_runs_pytest_and_reports_failures(tmp_path, body, expected_rc,
                                                            expected_line):
    ws = make_workspace(tmp_path, body)
    out = subprocess.run(['colcon', 'test', '--event-handlers', 'console_direct+'], cwd=ws,
                         capture_output=True, text=True)
    assert out.returncode == expected_rc, out.stdout[-2000:] + out.stderr[-2000:]
    assert expected_line in out.stdout
