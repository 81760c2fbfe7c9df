"""ros/params: one read-only parameter per config field, types checked, the config built once;
ros/run: startup errors become an exit code, shutdown is clean."""
from dataclasses import dataclass, field, fields

import pytest
import rclpy
from rclpy.node import Node
from rclpy.parameter import Parameter

from llara_policy.camera import CameraConfig
from llara_policy.errors import ConfigError
from llara_policy.model.config import PolicyConfig
from llara_policy.ros.params import declare_config, field_descriptions
from llara_policy.ros.run import STARTUP_ERROR_EXIT, run_node


@dataclass(frozen=True)
class SmallConfig:
    """A config with every supported kind of field.

    Args:
        gain: a float (unit-less), spanning
            two lines.
        names: a tuple of names.
        enabled: a bool.
    """

    gain: float = 1.5
    names: tuple[str, ...] = ('a', 'b')
    weights: list[float] = field(default_factory=list,
                                 metadata={'description': 'weights from metadata'})
    enabled: bool = False
    count: int = 3

    def __post_init__(self):
        if self.gain <= 0:
            raise ConfigError(f'SmallConfig.gain must be > 0, got {self.gain}')


@pytest.fixture
def context():
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    yield ctx
    rclpy.shutdown(context=ctx)


def declare(context, config_type, **overrides):
    node = Node('params_test', context=context,
                parameter_overrides=[Parameter(k, value=v) for k, v in overrides.items()])
    try:
        return declare_config(node, config_type), node
    except BaseException:
        node.destroy_node()
        raise


def test_policy_config_defaults_declare_every_field_read_only_with_its_description(context):
    config, node = declare(context, PolicyConfig)
    try:
        assert config == PolicyConfig()
        for f in fields(PolicyConfig):
            descriptor = node.describe_parameter(f.name)
            assert descriptor.read_only, f.name
            assert descriptor.description, f.name
        assert 'Hugging Face model directory' in node.describe_parameter('model_path').description
        result = node.set_parameters([Parameter('device', value='cpu')])[0]
        assert not result.successful  # read-only: the config is built once
    finally:
        node.destroy_node()


def test_overrides_build_the_config(context):
    config, node = declare(context, PolicyConfig, device='cpu', max_new_tokens=32,
                           pad_to_square=False, quantization='nf4')
    node.destroy_node()
    assert config == PolicyConfig(device='cpu', max_new_tokens=32, pad_to_square=False,
                                  quantization='nf4')


@pytest.mark.parametrize('overrides,match', [
    ({'max_new_tokens': 'many'}, "parameter 'max_new_tokens' must be a int"),
    ({'pad_to_square': 1}, "parameter 'pad_to_square' must be a bool"),
    ({'quantization': 'int3'}, 'params_test: invalid parameters: PolicyConfig.quantization'),
    ({'max_new_tokens': 0}, 'PolicyConfig.max_new_tokens must be >= 1'),
])
def test_bad_values_are_config_errors_naming_the_field(context, overrides, match):
    with pytest.raises(ConfigError, match=match):
        declare(context, PolicyConfig, **overrides)


def test_lists_tuples_and_int_for_float(context):
    config, node = declare(context, SmallConfig, gain=2, names=['x'], weights=[1, 2])
    try:
        assert config == SmallConfig(gain=2.0, names=('x',), weights=[1.0, 2.0])
        assert type(config.gain) is float and type(config.weights[0]) is float
        assert node.describe_parameter('gain').description == \
            'a float (unit-less), spanning two lines.'
        assert node.describe_parameter('weights').description == 'weights from metadata'
    finally:
        node.destroy_node()
    default, node = declare(context, SmallConfig)
    node.destroy_node()
    assert default == SmallConfig()
    with pytest.raises(ConfigError, match=r"parameter 'weights\[0\]' must be a float"):
        declare(context, SmallConfig, weights=['x', 'y'])
    with pytest.raises(ConfigError, match="parameter 'names' must be a list of str"):
        declare(context, SmallConfig, names='x')
    with pytest.raises(ConfigError, match='SmallConfig.gain must be > 0'):
        declare(context, SmallConfig, gain=-1.0)


def test_prefix_and_camera_config(context):
    node = Node('params_test', context=context,
                parameter_overrides=[Parameter('camera.rate_hz', value=5)])
    try:
        config = declare_config(node, CameraConfig, prefix='camera.')
        assert config == CameraConfig(rate_hz=5.0)
        assert 'Hz' in node.describe_parameter('camera.rate_hz').description
    finally:
        node.destroy_node()


def test_unsupported_field_types_are_refused(context):
    @dataclass(frozen=True)
    class Bad:
        table: dict = field(default_factory=dict)

    with pytest.raises(TypeError, match='not a ROS parameter type'):
        declare(context, Bad)


def test_field_descriptions_read_the_args_section():
    assert field_descriptions(SmallConfig) == {
        'gain': 'a float (unit-less), spanning two lines.', 'names': 'a tuple of names.',
        'enabled': 'a bool.'}


def test_run_node_turns_a_startup_config_error_into_exit_code_2(caplog):
    def make_node():
        raise ConfigError('CameraConfig.rate_hz must be positive')

    assert run_node(make_node, args=[], name='perception_node') == STARTUP_ERROR_EXIT
    assert not rclpy.ok()  # rclpy was shut down again


def test_run_node_returns_0_after_an_external_shutdown():
    made = []

    def make_node():
        node = Node('run_test')
        # An external shutdown (as on SIGINT) ends the spin; run_node cleans up and returns 0.
        node.create_timer(0.05, lambda: rclpy.shutdown())
        made.append(node)
        return node

    assert run_node(make_node, args=[], multithreaded=True) == 0
    assert made and not rclpy.ok()


def test_run_node_returns_0_when_shutdown_lands_while_spin_builds_its_wait_set(monkeypatch):
    """SIGINT racing spin(): rclpy reports the shut-down context as an RCLError, not as
    ExternalShutdownException; that is a normal stop. On a live context it is a failure."""
    from rclpy._rclpy_pybind11 import RCLError
    from rclpy.executors import SingleThreadedExecutor

    def spin_into_a_shutdown(self):
        rclpy.shutdown()  # what rclpy's SIGINT handler does, between two loop checks
        raise RCLError('failed to initialize wait set: the given context is not valid')

    monkeypatch.setattr(SingleThreadedExecutor, 'spin', spin_into_a_shutdown)
    assert run_node(lambda: Node('race_test'), args=[]) == 0
    assert not rclpy.ok()

    def spin_into_an_error(self):
        raise RCLError('failed to create the guard condition')

    monkeypatch.setattr(SingleThreadedExecutor, 'spin', spin_into_an_error)
    with pytest.raises(RCLError):
        run_node(lambda: Node('error_test'), args=[])
    assert not rclpy.ok()  # cleaned up all the same
