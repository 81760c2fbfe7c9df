"""Physical sanity of a calibration file: the limits it must meet and the YAML reader it needs.

A calibration that parses is not yet plausible: a table 0.5 m below the base, a camera 1106 m
away (millimetres written as metres) or a fit with 10 px of residual would all move the arm to
the wrong place. `load_calibration` applies these checks, so such a file never reaches the
executor; every error names the field, the value and the limit.
"""
from dataclasses import dataclass, fields
import logging
import math

import numpy as np
import yaml

from llara_policy.errors import CalibrationError, ConfigError, ProjectionError
from llara_policy.geometry.transforms import QUAT_NORM_TOLERANCE, PinholeCamera, TableHomography
from llara_policy.types import check_real

_LOG = logging.getLogger(__name__)

# How far a quaternion read from a file may be from unit length and still be normalized on load.
# tf2_echo prints 3 decimals; rounding each of 4 components by <= 0.0005 moves the norm by at
# most 0.0005 * (|x| + |y| + |z| + |w|) <= 0.001.
QUAT_NORM_TOLERANCE_ON_LOAD = 1e-3


@dataclass(frozen=True)
class CalibrationLimits:
    """What a calibration must meet at load (and, for the table height, at start-up).

    `max_abs_table_z_m`: the table plane lies within this of the base frame's z = 0 (the arm
    stands on or next to the table). `max_camera_distance_m`: the camera (pinhole) or the image
    centre's table point (homography) lies within this of the base origin; further is almost
    surely millimetres written as metres. `max_fit_rms_px` / `max_fit_rms_m`: the recorded fit
    residuals (a few pixels / millimetres for a usable fit). `max_table_z_mismatch_m`: how far
    the calibration's table plane may differ from the `Workspace`'s (start-up check).
    """

    max_abs_table_z_m: float = 0.3
    max_camera_distance_m: float = 5.0
    max_fit_rms_px: float = 2.0
    max_fit_rms_m: float = 0.005
    max_table_z_mismatch_m: float = 0.01

    def __post_init__(self):
        for f in fields(self):
            value = check_real(f'CalibrationLimits.{f.name}', getattr(self, f.name), 0.0,
                               error=ConfigError)
            if value <= 0.0:
                raise ConfigError(f'CalibrationLimits.{f.name} must be > 0, got {value!r}')
            object.__setattr__(self, f.name, value)


DEFAULT_CALIBRATION_LIMITS = CalibrationLimits()


class UniqueKeyLoader(yaml.SafeLoader):
    """yaml.SafeLoader that rejects a key repeated in one mapping (PyYAML keeps the last)."""

    def construct_mapping(self, node, deep=False):
        """Build a mapping after checking that no key appears twice in it."""
        if isinstance(node, yaml.MappingNode):
            seen = set()
            for key_node, _ in node.value:
                if key_node.tag == 'tag:yaml.org,2002:merge':
                    continue
                key = self.construct_object(key_node, deep=True)
                if isinstance(key, (list, dict)):
                    continue  # unhashable keys are reported by PyYAML itself
                if key in seen:
                    raise CalibrationError(
                        f'duplicate key {key} (line {key_node.start_mark.line + 1}); '
                        'YAML would silently keep the last one, so write each key once')
                seen.add(key)
        return super().construct_mapping(node, deep)


def parse_calibration_yaml(text: str):
    """Parse calibration YAML; a repeated key raises CalibrationError naming the key."""
    return yaml.load(text, Loader=UniqueKeyLoader)  # a SafeLoader: plain data only


def unit_quat_xyzw(field: str, quat_xyzw: tuple[float, ...]) -> tuple[tuple[float, ...], str]:
    """Return (`quat_xyzw` normalized, a note or '') for a quaternion read from a file.

    Within QUAT_NORM_TOLERANCE_ON_LOAD of unit length it is normalized and the note (also
    logged as a warning) says so; further away it is refused, saying how far it is.
    """
    norm = math.sqrt(sum(v * v for v in quat_xyzw))
    off = abs(norm - 1.0)
    if off > QUAT_NORM_TOLERANCE_ON_LOAD:
        raise CalibrationError(
            f'{field} must have unit norm, got norm {norm:.6g} ({off:.3g} from 1); quaternions '
            f'within {QUAT_NORM_TOLERANCE_ON_LOAD:g} of unit length (e.g. the 3 decimals '
            'tf2_echo prints) are accepted and normalized')
    if off <= QUAT_NORM_TOLERANCE:
        return tuple(quat_xyzw), ''
    note = f'{field} had norm {norm:.6g}; normalized to unit length'
    _LOG.warning('calibration: %s', note)
    return tuple(v / norm for v in quat_xyzw), note


def _check_distance(field: str, what: str, xyz_m, limit_m: float) -> None:
    distance_m = float(np.linalg.norm(xyz_m))
    if distance_m <= limit_m:
        return
    hint = ''
    if distance_m / 1000.0 <= limit_m:
        hint = (f'; this looks like millimetres ({distance_m / 1000.0:.4g} m?): the file '
                'wants metres')
    raise CalibrationError(
        f'{field}: {what} is {distance_m:.6g} m from the base origin, beyond '
        f'CalibrationLimits.max_camera_distance_m = {limit_m:g} m{hint}')


def check_calibration_limits(calibration, limits: CalibrationLimits) -> None:
    """Raise CalibrationError (field, value, limit) unless `calibration` meets `limits`.

    Checks the table height, the residuals recorded in the file and the scale of the
    mapping: the camera position (pinhole) or the table point under the image centre
    (homography) must lie within `limits.max_camera_distance_m` of the base.
    """
    cal = calibration
    if abs(cal.table_z_m) > limits.max_abs_table_z_m:
        raise CalibrationError(
            f'table_z_m = {cal.table_z_m:g} m is further than CalibrationLimits.'
            f'max_abs_table_z_m = {limits.max_abs_table_z_m:g} m from the base frame z = 0')
    for field, limit_name, unit in (('fit_rms_px', 'max_fit_rms_px', 'px'),
                                    ('fit_rms_m', 'max_fit_rms_m', 'm')):
        value, limit = getattr(cal, field), getattr(limits, limit_name)
        if value > limit:
            raise CalibrationError(
                f'{field} = {value:g} {unit} exceeds CalibrationLimits.{limit_name} = '
                f'{limit:g} {unit}: refit the calibration (more or better spread points)')
    if isinstance(cal.mapping, PinholeCamera):
        _check_distance('pinhole.base_from_camera.translation_m', 'the camera',
                        cal.mapping.base_from_camera.translation_m, limits.max_camera_distance_m)
    elif isinstance(cal.mapping, TableHomography):
        centre = ((cal.image_width_px - 1) / 2.0, (cal.image_height_px - 1) / 2.0)
        try:
            centre_xy_m = cal.mapping.pixels_to_table_xy(centre)[0]
        except ProjectionError as err:
            raise CalibrationError(f'homography.base_xy_from_pixel: {err}') from None
        _check_distance('homography.base_xy_from_pixel', 'the table point under the image centre',
                        centre_xy_m, limits.max_camera_distance_m)
