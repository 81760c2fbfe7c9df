"""The Docker image cannot be built here; check that it stays consistent with set-up."""
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = (ROOT / 'docker' / 'Dockerfile').read_text()


def test_image_is_built_by_the_same_setup_script_from_the_same_requirement_files():
    assert 'source /opt/ros/jazzy/setup.bash && bash tools/setup.sh' in DOCKERFILE
    assert 'COPY tools/ tools/' in DOCKERFILE  # tools/requirements/ travels with it


def test_base_image_is_a_pinned_jazzy_tag():
    base = next(line.split()[1] for line in DOCKERFILE.splitlines() if line.startswith('FROM'))
    assert base.startswith('ros:jazzy-') and ':latest' not in base


def test_every_path_the_dockerfile_copies_exists():
    for line in DOCKERFILE.splitlines():
        if line.startswith('COPY'):
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), f'Dockerfile copies missing {source}'


def _service() -> dict:
    return yaml.safe_load((ROOT / 'docker' / 'compose.yaml').read_text())['services']['llara']


def test_compose_uses_host_network_the_gpu_and_read_only_config_and_models():
    service = _service()
    assert service['network_mode'] == 'host'
    gpu = service['deploy']['resources']['reservations']['devices'][0]
    assert gpu['driver'] == 'nvidia' and 'gpu' in gpu['capabilities']
    # '${HOST_DIR:-default}:/container[:ro]': the container path follows the closing brace.
    mounts = {v.split('}:', 1)[1].split(':')[0]: v for v in service['volumes']}
    assert mounts['/config'].endswith(':ro') and mounts['/models'].endswith(':ro')
    # Recordings are the one writable mount, where record:=true writes (working_dir).
    assert not mounts['/data/recordings'].endswith(':ro')
    assert service['working_dir'] == '/data'


def test_compose_starts_the_robot_graph_with_known_arguments_and_dry_run_by_default():
    from llara_bringup.graphs import GRAPHS

    command = _service()['command']
    assert command[:4] == ['ros2', 'launch', 'llara_bringup', 'xarm.launch.py']
    graph = GRAPHS['xarm.launch.py']
    valid = {argument.name for argument in graph.arguments}
    given = dict(item.split(':=', 1) for item in command[4:])
    assert set(given) <= valid, f'unknown launch arguments: {set(given) - valid}'
    # Nothing moves unless the user sets DRY_RUN=false; the graph's own default agrees.
    assert given['dry_run'] == '${DRY_RUN:-true}'
    assert next(a.default for a in graph.arguments if a.name == 'dry_run') == 'true'
    assert given['calibration_file'].startswith('/config/')
    assert given['policy'].startswith('/models/${MODEL:?')  # no model: compose refuses to start
    assert (ROOT / 'src' / 'llara_bringup' / 'launch' / 'xarm.launch.py').is_file()
