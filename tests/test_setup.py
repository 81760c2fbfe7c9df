"""The set-up script: mode detection, idempotence and the pinned requirement files."""
import os
from pathlib import Path
import re
import subprocess

ROOT = Path(__file__).resolve().parents[1]
SETUP = ROOT / 'tools' / 'setup.sh'
REQUIREMENTS = ROOT / 'tools' / 'requirements'


def print_mode(env_overrides: dict) -> str:
    env = {k: v for k, v in os.environ.items()
           if k not in ('ROS_DISTRO', 'AMENT_PREFIX_PATH')}
    env.update(env_overrides)
    out = subprocess.run(['bash', str(SETUP), '--print-mode'], env=env, capture_output=True,
                         text=True, check=True)
    return out.stdout.strip().splitlines()[-1]


def test_wheel_mode_without_a_sourced_system_ros():
    assert print_mode({}) == 'wheels'


def test_a_sourced_system_ros_is_used_instead_of_the_wheels(tmp_path):
    (tmp_path / 'jazzy').mkdir()
    env = {'ROS_DISTRO': 'jazzy', 'AMENT_PREFIX_PATH': f'/somewhere:{tmp_path}/jazzy',
           'LLARA_SYSTEM_ROS_ROOT': str(tmp_path)}
    assert print_mode(env) == 'system-jazzy'


def test_ros_distro_alone_without_its_setup_sourced_is_not_a_system_ros(tmp_path):
    (tmp_path / 'humble').mkdir()
    env = {'ROS_DISTRO': 'humble', 'LLARA_SYSTEM_ROS_ROOT': str(tmp_path)}
    assert print_mode(env) == 'wheels'


def test_second_setup_run_skips_installs_and_build():
    subprocess.run(['bash', str(SETUP)], capture_output=True, text=True, check=True)
    out = subprocess.run(['bash', str(SETUP)], capture_output=True, text=True, check=True)
    assert 'dependencies up to date (skipping pip)' in out.stdout
    assert 'workspace build up to date (skipping colcon build)' in out.stdout


def requirement_lines(name: str) -> list[str]:
    lines = (REQUIREMENTS / name).read_text().splitlines()
    return [line for line in lines if line.strip() and not line.startswith('#')]


def test_every_direct_requirement_is_pinned():
    for name in ('python.txt', 'ros-wheels.txt', 'dev.txt'):
        for line in requirement_lines(name):
            assert re.fullmatch(r'[A-Za-z0-9_.\-\[\]]+(==[^,\s]+|>=[^,\s]+,<[^,\s]+)', line), \
                f'{name}: {line!r} is not pinned'


def test_ros_wheels_are_the_unprefixed_kilted_set_with_the_undeclared_three():
    names = {line.split('==')[0] for line in requirement_lines('ros-wheels.txt')}
    assert not any(n.startswith(('ros-jazzy-', 'ros-kilted-', 'ros-humble-')) for n in names)
    assert {'ros-ament-cmake-include-directories', 'ros-rosidl-core-generators',
            'ros-ament-cmake-ros-core', 'ros-rmw-fastrtps-cpp'} <= names


def test_constraints_agree_with_the_direct_pins():
    locked = dict(line.split('==', 1) for line in requirement_lines('constraints.txt')
                  if '==' in line)
    locked = {k.lower(): v for k, v in locked.items()}
    for name in ('python.txt', 'ros-wheels.txt', 'dev.txt'):
        for line in requirement_lines(name):
            if '==' in line:
                pkg, version = line.split('==')
                if pkg.lower() in locked:
                    assert locked[pkg.lower()] == version, f'{pkg}: {version} vs lock'
