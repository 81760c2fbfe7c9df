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


def test_compose_uses_host_network_the_gpu_and_read_only_mounts():
    compose = yaml.safe_load((ROOT / 'docker' / 'compose.yaml').read_text())
    service = compose['services']['llara']
    assert service['network_mode'] == 'host'
    gpu = service['deploy']['resources']['reservations']['devices'][0]
    assert gpu['driver'] == 'nvidia' and 'gpu' in gpu['capabilities']
    assert all(v.endswith(':ro') for v in service['volumes'])
