"""executor_node's parameters and start-up: ExecutorConfig, workspace, calibration, arm.

Declared read-only through `ros/params.declare_config`: the ExecutorConfig scalars (`dry_run`,
`*_support_m`), `pick_place.*`, `sweep.*`, `workspace.*`; unless injected (sim_node, tests),
`calibration_file` / `preprocess` / `model_*_px` (the mapper) and `arm` / `xarm.*` (the real arm,
connected and started up here). Every problem is a LlaraError naming the parameter or the file,
which `run_node` turns into a one-line startup error (exit 2).
"""
from collections.abc import Callable
from dataclasses import dataclass, field, fields, make_dataclass
import typing
from typing import Any

from rclpy.node import Node

from llara_policy.arms.executor_types import ExecutorConfig
from llara_policy.arms.primitives import PickPlaceConfig, SweepConfig
from llara_policy.errors import CalibrationError, ConfigError
from llara_policy.execution import ModelFrameMapper
from llara_policy.geometry.calibration import load_calibration
from llara_policy.geometry.calibration_checks import check_workspace_fit
from llara_policy.geometry.preprocessing import FramePreprocess
from llara_policy.ros.params import declare_config
from llara_policy.workspace import Workspace

PREPROCESS_MODES = ('centered_crop', 'full_frame')
ARM_KINDS = ('xarm', 'none')
_EXECUTOR_SCALARS = {
    'dry_run': 'compute, check and report every step, never move or enable the arm',
    'pick_support_m': 'picks are commanded this high above workspace.table_z_m (m)',
    'place_support_m': 'support assumed under every place, above the table (m)',
    'sweep_support_m': 'support assumed under a sweep, above the table (m)',
}


@dataclass(frozen=True)
class CalibrationParams:
    """How model-frame points reach the robot base frame.

    Args:
        calibration_file: calibration YAML (tools: llara calibration); required.
        preprocess: how the policy cut the model frame from the camera image: 'centered_crop'
            (largest centred box of the model frame's aspect ratio, then resize; what
            policy_node does) or 'full_frame' (resize the whole image). Must match the policy's.
        model_width_px: model frame width (pixels); goals for another size are refused.
        model_height_px: model frame height (pixels).
    """

    calibration_file: str = ''
    preprocess: str = 'centered_crop'  # policy_node's cut (model/serving.py)
    model_width_px: int = 256
    model_height_px: int = 128


@dataclass(frozen=True)
class ArmParams:
    """Which arm the executor drives.

    Args:
        arm: 'xarm' (xarm-python-sdk, settings xarm.*) or 'none' (no arm at all; dry run only).
    """

    arm: str = 'xarm'


@dataclass(frozen=True)
class Backend:
    """What the executor runs on, and how to release it (`shutdown` returns problems)."""

    arm: Any
    mapper: ModelFrameMapper
    workspace: Workspace
    calibration_source: str = ''
    shutdown: Callable[[], tuple[str, ...]] = lambda: ()


def with_defaults(config_type: type, defaults) -> type:
    """Return a subclass of a frozen config dataclass whose field defaults are `defaults`'s."""
    hints = typing.get_type_hints(config_type)
    specs = [(f.name, hints[f.name], field(default=getattr(defaults, f.name),
                                           metadata=f.metadata))
             for f in fields(config_type) if f.init]
    return make_dataclass(config_type.__name__, specs, bases=(config_type,), frozen=True,
                          namespace={'__doc__': config_type.__doc__})


def _declare(node: Node, config_type: type, defaults, prefix: str = ''):
    values = declare_config(node, with_defaults(config_type, defaults), prefix)
    return config_type(**{f.name: getattr(values, f.name) for f in fields(config_type) if f.init})


def declare_executor_config(node: Node, defaults: ExecutorConfig) -> ExecutorConfig:
    """Declare the executor's parameters (defaults from `defaults`) and build its config."""
    scalars = make_dataclass('ExecutorParams', [
        (name, bool if name == 'dry_run' else float,
         field(default=getattr(defaults, name), metadata={'description': text}))
        for name, text in _EXECUTOR_SCALARS.items()], frozen=True)
    values = declare_config(node, scalars)
    pick_place = _declare(node, PickPlaceConfig, defaults.pick_place, 'pick_place.')
    sweep = _declare(node, SweepConfig, defaults.sweep, 'sweep.')
    return ExecutorConfig(**{name: getattr(values, name) for name in _EXECUTOR_SCALARS},
                          pick_place=pick_place, sweep=sweep)


def declare_mapper(node: Node, workspace: Workspace) -> tuple[ModelFrameMapper, str]:
    """Load `calibration_file` and check it covers the workspace; (mapper, file)."""
    params = declare_config(node, CalibrationParams)
    path = params.calibration_file
    if not path:
        raise ConfigError('parameter calibration_file is required (the calibration YAML of '
                          'this camera and robot)')
    if params.preprocess not in PREPROCESS_MODES:
        raise ConfigError(f'parameter preprocess must be one of {PREPROCESS_MODES}, '
                          f'got {params.preprocess!r}')
    calibration = load_calibration(path)  # CalibrationError names the file
    make = getattr(FramePreprocess, params.preprocess)
    try:
        mapper = ModelFrameMapper(calibration, make(
            calibration.image_width_px, calibration.image_height_px,
            params.model_width_px, params.model_height_px))
        check_workspace_fit(calibration, workspace, mapper.preprocess)
    except CalibrationError as error:
        raise CalibrationError(f'{path}: {error}') from None
    return mapper, path


def declare_backend(node: Node, config: ExecutorConfig, arm=None, mapper=None,
                    workspace=None) -> Backend:
    """Declare workspace (and unless injected: calibration and arm) parameters; build them.

    The real arm is connected after the calibration is checked, and started up (controller
    safety, ros2-anchors section 1) unless `dry_run`; a start-up failure disconnects it.
    """
    workspace = _declare(node, Workspace, workspace or Workspace(), 'workspace.')
    source = ''
    if mapper is None:
        mapper, source = declare_mapper(node, workspace)
    if arm is not None:
        return Backend(arm, mapper, workspace, source)
    kind = declare_config(node, ArmParams).arm
    if kind not in ARM_KINDS:
        raise ConfigError(f'parameter arm must be one of {ARM_KINDS}, got {kind!r}')
    if kind == 'none':
        if not config.dry_run:
            raise ConfigError("parameter arm:='none' needs dry_run:=true (there is no arm to "
                              'move)')
        return Backend(None, mapper, workspace, source)
    from llara_policy.arms.xarm import XArmConfig, connect  # the SDK only when it is used
    xarm = connect(declare_config(node, XArmConfig, 'xarm.'), on_error_warn=lambda codes:
                   node.get_logger().warning(f'xArm error/warning changed: {codes}'))
    if not config.dry_run:
        try:
            xarm.start_up(workspace)
        except BaseException:
            xarm.shutdown()
            raise
    return Backend(xarm, mapper, workspace, source, xarm.shutdown)
