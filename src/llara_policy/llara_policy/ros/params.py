"""One ROS parameter per field of a frozen config dataclass, read back into the dataclass once.

`declare_config(node, CameraConfig)` declares each field (bool, int, float, str, or a list or
tuple of one of them) read-only with the field's default and the description from the class's
`Args:` docstring (or `field.metadata['description']`), checks the types of the values given,
and builds the dataclass, whose own validation names a bad field. Every problem is a ConfigError
that the node reports at startup (ros/run.py turns it into a one-line exit).
"""
from dataclasses import MISSING, fields
import re
import typing

from rcl_interfaces.msg import ParameterDescriptor
from rclpy.node import Node

from llara_policy.errors import ConfigError

SCALAR_TYPES = (bool, int, float, str)
_ARG_LINE = re.compile(r'^(\s+)(\w+):\s*(.*)$')


def field_descriptions(config_type: type) -> dict[str, str]:
    """Field name -> description from the class docstring's Google-style `Args:` section."""
    lines = (config_type.__doc__ or '').splitlines()
    descriptions: dict[str, str] = {}
    in_args, indent, current = False, None, None
    for line in lines:
        if line.strip() in ('Args:', 'Attributes:'):
            in_args, indent, current = True, None, None
            continue
        if not in_args or not line.strip():
            continue
        match = _ARG_LINE.match(line)
        if match and (indent is None or len(match.group(1)) == indent):
            indent, current = len(match.group(1)), match.group(2)
            descriptions[current] = match.group(3).strip()
        elif current is not None and len(line) - len(line.lstrip()) > indent:
            descriptions[current] += ' ' + line.strip()
        else:
            in_args = False
    return descriptions


def _element_type(kind) -> tuple[type, type | None]:
    """(scalar type, container) for a supported field type; container is list, tuple or None."""
    if kind in SCALAR_TYPES:
        return kind, None
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (list, tuple) and args and args[0] in SCALAR_TYPES and (
            origin is list or len(args) == 1 or (len(args) == 2 and args[1] is Ellipsis)
            or len(set(args)) == 1):
        return args[0], origin
    raise TypeError(f'{kind!r} is not a ROS parameter type (bool, int, float, str or a list '
                    'of one of them)')


def _scalar(name: str, value, scalar: type):
    if scalar is float and type(value) is int:
        return float(value)  # rate_hz:=10 means 10.0
    if type(value) is not scalar:
        raise ConfigError(f'parameter {name!r} must be a {scalar.__name__}, got {value!r}')
    return value


def _from_parameter(name: str, value, kind):
    scalar, container = _element_type(kind)
    if container is None:
        return _scalar(name, value, scalar)
    if isinstance(value, (str, bytes)) or not hasattr(value, '__iter__'):
        raise ConfigError(f'parameter {name!r} must be a list of {scalar.__name__}, '
                          f'got {value!r}')
    return container(_scalar(f'{name}[{i}]', item, scalar) for i, item in enumerate(value))


def _default(field):
    if field.default is not MISSING:
        return field.default
    if field.default_factory is not MISSING:
        return field.default_factory()
    raise TypeError(f'config field {field.name!r} needs a default to be a ROS parameter')


def declare_config(node: Node, config_type: type, prefix: str = ''):
    """Declare one read-only parameter per field of `config_type`; return the built config.

    Parameter names are `prefix + field name`. Raises ConfigError naming the parameter for a
    value of the wrong type, and the dataclass's own ConfigError for a value out of range.
    """
    hints = typing.get_type_hints(config_type)
    descriptions = field_descriptions(config_type)
    values = {}
    for field in fields(config_type):
        if not field.init:
            continue
        name = prefix + field.name
        kind = hints[field.name]
        _element_type(kind)  # an unsupported field type fails here, before anything is declared
        default = _default(field)
        descriptor = ParameterDescriptor(
            name=name, read_only=True,
            description=field.metadata.get('description', descriptions.get(field.name, '')),
            additional_constraints=f'type: {getattr(kind, "__name__", str(kind))}',
            # Types are checked here rather than by rclpy so that `rate_hz:=10` is accepted
            # and a wrong type is one ConfigError naming the parameter, on every distro.
            dynamic_typing=True)
        ros_default = list(default) if isinstance(default, tuple) else default
        value = node.declare_parameter(name, ros_default, descriptor).value
        values[field.name] = _from_parameter(name, value, kind)
    try:
        return config_type(**values)
    except ConfigError as err:
        raise ConfigError(f'{node.get_name()}: invalid parameters: {err}') from None
