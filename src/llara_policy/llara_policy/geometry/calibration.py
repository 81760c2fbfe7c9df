"""Camera-to-robot calibration: the versioned YAML file and its validation.

One file per camera says how a pixel of that camera becomes a robot base-frame point: a pinhole
model (intrinsics, `base_from_camera`, table plane), a table-plane homography, or VIMA's fixed
front-view map. Loading checks every field and names the bad one, so a typo cannot move the arm.
The executor's mapping through a calibration is `llara_policy.execution.ModelFrameMapper`.
"""
from dataclasses import dataclass, field
import datetime
from pathlib import Path
from typing import Union

import yaml

from llara_policy.errors import CalibrationError, ValueRangeError
from llara_policy.geometry.calibration_limits import (
    DEFAULT_CALIBRATION_LIMITS,
    CalibrationLimits,
    check_calibration_limits,
    parse_calibration_yaml,
    unit_quat_xyzw,
)
from llara_policy.geometry.transforms import (
    CameraIntrinsics,
    PinholeCamera,
    RigidTransform,
    TableHomography,
)
from llara_policy.geometry.vima_map import VimaFixedMap
from llara_policy.types import (
    MODEL_FRAME_HEIGHT_PX,
    MODEL_FRAME_WIDTH_PX,
    check_int,
    check_real,
)

CALIBRATION_VERSION = 1
# The optical frame a RealSense driver publishes (ROS optical frames: `<camera>_optical_frame`).
DEFAULT_CAMERA_FRAME = 'camera_color_optical_frame'
# xArm URDF base link (xArm-Developer/xarm_ros2).
DEFAULT_BASE_FRAME = 'link_base'

PixelMapping = Union[PinholeCamera, TableHomography, VimaFixedMap]
MAPPING_KINDS = {
    PinholeCamera: 'pinhole', TableHomography: 'homography', VimaFixedMap: 'vima_fixed'}


def _check_name(field: str, value) -> None:
    if not isinstance(value, str) or not value or value != value.strip() or '\n' in value:
        raise CalibrationError(f'{field} must be a non-empty one-line string, got {value!r}')


def _check_frame(field: str, value) -> None:
    _check_name(field, value)
    # tf2 rejects frame ids with a leading slash or whitespace.
    if value.startswith('/') or any(c.isspace() for c in value):
        raise CalibrationError(f'{field} must be a TF frame id (no spaces, no leading /), '
                               f'got {value!r}')


def _check_date(value) -> None:
    try:
        valid = isinstance(value, str) and len(value) == 10 and bool(
            datetime.date.fromisoformat(value))
    except ValueError:
        valid = False
    if not valid:
        raise CalibrationError(f'date must be an ISO date YYYY-MM-DD, got {value!r}')


@dataclass(frozen=True)
class Calibration:
    """How pixels of one camera map to the robot base frame, and where that came from.

    `mapping` is a PinholeCamera, TableHomography or VimaFixedMap for images of
    `image_width_px` x `image_height_px`. `table_z_m` is the table plane height in `base_frame`.
    `fit_rms_px` / `fit_rms_m` are the fit residuals (0 for a known, exact model). `notes` says
    what loading adjusted (e.g. a quaternion normalized); it is not written to the file and
    takes no part in equality.
    """

    camera_id: str
    image_width_px: int
    image_height_px: int
    mapping: PixelMapping
    table_z_m: float
    date: str
    method: str
    base_frame: str = DEFAULT_BASE_FRAME
    camera_frame: str = DEFAULT_CAMERA_FRAME
    fit_rms_px: float = 0.0
    fit_rms_m: float = 0.0
    notes: tuple[str, ...] = field(default=(), compare=False)

    def __post_init__(self):
        _check_name('camera_id', self.camera_id)
        for name in ('image_width_px', 'image_height_px'):
            object.__setattr__(self, name, check_int(name, getattr(self, name), 1,
                                                     error=CalibrationError))
        if type(self.mapping) not in MAPPING_KINDS:
            raise CalibrationError(f'mapping must be one of {sorted(MAPPING_KINDS.values())}, '
                                   f'got {type(self.mapping).__name__}')
        object.__setattr__(self, 'table_z_m', check_real('table_z_m', self.table_z_m,
                                                         error=CalibrationError))
        for name in ('fit_rms_px', 'fit_rms_m'):
            object.__setattr__(self, name, check_real(name, getattr(self, name), 0.0,
                                                      error=CalibrationError))
        object.__setattr__(self, 'notes', tuple(self.notes))
        _check_date(self.date)
        _check_name('method', self.method)
        _check_frame('base_frame', self.base_frame)
        _check_frame('camera_frame', self.camera_frame)
        self._check_mapping_size()

    def _check_mapping_size(self) -> None:
        size = (self.image_width_px, self.image_height_px)
        if isinstance(self.mapping, PinholeCamera):
            intrinsics = self.mapping.intrinsics
            if (intrinsics.width_px, intrinsics.height_px) != size:
                raise CalibrationError(
                    f'pinhole intrinsics are for {intrinsics.width_px}x{intrinsics.height_px} '
                    f'images but image size is {size[0]}x{size[1]}')
        if isinstance(self.mapping, VimaFixedMap) and size != (
                MODEL_FRAME_WIDTH_PX, MODEL_FRAME_HEIGHT_PX):
            raise CalibrationError(
                f'vima_fixed needs image size {MODEL_FRAME_WIDTH_PX}x{MODEL_FRAME_HEIGHT_PX}, '
                f'got {size[0]}x{size[1]}')

    @property
    def kind(self) -> str:
        """Return the mapping name used in the file: 'pinhole', 'homography' or 'vima_fixed'."""
        return MAPPING_KINDS[type(self.mapping)]


def _today() -> str:
    return datetime.date.today().isoformat()


def pinhole_calibration(camera_id: str, intrinsics: CameraIntrinsics,
                        base_from_camera: RigidTransform, table_z_m: float,
                        base_frame: str = DEFAULT_BASE_FRAME,
                        camera_frame: str = DEFAULT_CAMERA_FRAME,
                        method: str = 'known intrinsics and pose') -> Calibration:
    """Make an exact pinhole calibration from known intrinsics and pose, dated today.

    The simulator describes its camera this way, so the executor runs the real robot's code path
    in simulation. `base_from_camera` is the pose of the optical frame (+x right, +y down,
    +z forward) in `base_frame`.
    """
    return Calibration(
        camera_id=camera_id, image_width_px=intrinsics.width_px,
        image_height_px=intrinsics.height_px,
        mapping=PinholeCamera(intrinsics, base_from_camera), table_z_m=table_z_m,
        date=_today(), method=method, base_frame=base_frame, camera_frame=camera_frame)


def vima_fixed_calibration(camera_id: str = 'vima_front', base_frame: str = 'vima_base',
                           camera_frame: str = 'vima_front_optical_frame') -> Calibration:
    """Make the calibration for VIMA-Bench's front camera: LLaRA's fixed map, table at z = 0."""
    return Calibration(
        camera_id=camera_id, image_width_px=MODEL_FRAME_WIDTH_PX,
        image_height_px=MODEL_FRAME_HEIGHT_PX, mapping=VimaFixedMap(), table_z_m=0.0,
        date=_today(), method='LLaRA eval/vima_utils.py pix2pos_front', base_frame=base_frame,
        camera_frame=camera_frame)


_TOP_KEYS = ('version', 'camera_id', 'mapping', 'image_width_px', 'image_height_px',
             'base_frame', 'camera_frame', 'table_z_m', 'date', 'method', 'fit_rms_px',
             'fit_rms_m')
_PINHOLE_KEYS = ('fx_px', 'fy_px', 'cx_px', 'cy_px', 'distortion', 'base_from_camera')
_TRANSFORM_KEYS = ('translation_m', 'quat_xyzw')
_HOMOGRAPHY_KEYS = ('base_xy_from_pixel',)
_HEADER = ('# LLaRA camera calibration (llara_policy.geometry.calibration). Lengths in metres,\n'
           '# pixels of the full camera image; base_from_camera maps optical-frame points to\n'
           '# base_frame.\n')


def calibration_to_dict(cal: Calibration) -> dict:
    """Return the file's YAML mapping for `cal` (plain types, in file order)."""
    data = {'version': CALIBRATION_VERSION, 'camera_id': cal.camera_id, 'mapping': cal.kind}
    for key in _TOP_KEYS[3:]:
        data[key] = getattr(cal, key)
    if isinstance(cal.mapping, PinholeCamera):
        intrinsics, pose = cal.mapping.intrinsics, cal.mapping.base_from_camera
        data['pinhole'] = {key: getattr(intrinsics, key) for key in _PINHOLE_KEYS[:4]}
        data['pinhole']['distortion'] = list(intrinsics.distortion)
        data['pinhole']['base_from_camera'] = {
            'translation_m': list(pose.translation_m), 'quat_xyzw': list(pose.quat_xyzw)}
    elif isinstance(cal.mapping, TableHomography):
        data['homography'] = {
            'base_xy_from_pixel': [list(row) for row in cal.mapping.base_xy_from_pixel]}
    return data


class _Dumper(yaml.SafeDumper):
    """Block-style mappings, with lists of numbers on one line ([x, y, z])."""


def _represent_list(dumper: yaml.SafeDumper, data: list):
    flow = all(not isinstance(item, (list, dict)) for item in data)
    return dumper.represent_sequence('tag:yaml.org,2002:seq', data, flow_style=flow)


_Dumper.add_representer(list, _represent_list)


def save_calibration(cal: Calibration, path) -> None:
    """Write `cal` as a version-1 YAML file (floats written exactly, so loading round-trips)."""
    text = yaml.dump(calibration_to_dict(cal), Dumper=_Dumper, sort_keys=False,
                     default_flow_style=False)
    Path(path).write_text(_HEADER + text, encoding='utf-8')


def _check_keys(data, keys: tuple[str, ...], where: str) -> None:
    """Raise CalibrationError unless `data` is a mapping with exactly `keys`."""
    label = where or 'the file'
    if not isinstance(data, dict):
        raise CalibrationError(f'{label} must be a mapping, got {data!r}')
    prefix = f'{where}.' if where else ''
    unknown = [k for k in data if k not in keys]
    if unknown:
        raise CalibrationError(f'unknown key {prefix}{unknown[0]} (allowed: {", ".join(keys)})')
    missing = [k for k in keys if k not in data]
    if missing:
        raise CalibrationError(f'missing key {prefix}{missing[0]}')


def _pinhole_from_dict(data, width_px, height_px) -> tuple[PinholeCamera, tuple[str, ...]]:
    """Return the pinhole mapping and the notes on what loading adjusted."""
    _check_keys(data, _PINHOLE_KEYS, 'pinhole')
    fields = {key: data[key] for key in _PINHOLE_KEYS[:4]}
    try:
        distortion = data['distortion']
        if not isinstance(distortion, list):
            raise ValueRangeError(f'distortion must be a list of 5 numbers, got {distortion!r}')
        intrinsics = CameraIntrinsics(width_px, height_px, distortion=tuple(distortion), **fields)
    except ValueRangeError as err:
        raise CalibrationError(f'pinhole.{err}') from None
    pose = data['base_from_camera']
    _check_keys(pose, _TRANSFORM_KEYS, 'pinhole.base_from_camera')
    where = 'pinhole.base_from_camera'
    try:
        for key in _TRANSFORM_KEYS:
            if not isinstance(pose[key], list):
                raise ValueRangeError(f'{key} must be a list of numbers, got {pose[key]!r}')
        if len(pose['quat_xyzw']) != 4:
            raise ValueRangeError(f'quat_xyzw must be 4 numbers, got {pose["quat_xyzw"]!r}')
        quat = [check_real(f'quat_xyzw[{i}]', v) for i, v in enumerate(pose['quat_xyzw'])]
    except ValueRangeError as err:
        raise CalibrationError(f'{where}.{err}') from None
    quat, note = unit_quat_xyzw(f'{where}.quat_xyzw', quat)
    try:
        transform = RigidTransform(tuple(pose['translation_m']), quat)
    except ValueRangeError as err:
        raise CalibrationError(f'{where}.{err}') from None
    return PinholeCamera(intrinsics, transform), (note,) if note else ()


def _homography_from_dict(data) -> TableHomography:
    _check_keys(data, _HOMOGRAPHY_KEYS, 'homography')
    rows = data['base_xy_from_pixel']
    try:
        if not (isinstance(rows, list) and len(rows) == 3 and all(
                isinstance(row, list) and len(row) == 3 for row in rows)):
            raise ValueRangeError(f'base_xy_from_pixel must be 3 rows of 3 numbers, got {rows!r}')
        return TableHomography(tuple(tuple(row) for row in rows))
    except ValueRangeError as err:
        raise CalibrationError(f'homography.{err}') from None


def calibration_from_dict(data) -> Calibration:
    """Build a Calibration from the file's YAML mapping; CalibrationError names the bad field."""
    if not isinstance(data, dict):
        raise CalibrationError(f'the file must hold a YAML mapping, got {data!r}')
    version = data.get('version', 'missing')
    if isinstance(version, bool) or version != CALIBRATION_VERSION:
        raise CalibrationError(f'version must be {CALIBRATION_VERSION}, got {version!r}')
    kind = data.get('mapping')
    if kind not in MAPPING_KINDS.values():
        raise CalibrationError(
            f'mapping must be one of {", ".join(MAPPING_KINDS.values())}, got {kind!r}')
    section_keys = {'pinhole': ('pinhole',), 'homography': ('homography',), 'vima_fixed': ()}
    _check_keys(data, _TOP_KEYS + section_keys[kind], '')
    fields = {key: data[key] for key in _TOP_KEYS[1:] if key != 'mapping'}
    if isinstance(fields['date'], datetime.date) and not isinstance(
            fields['date'], datetime.datetime):
        # YAML reads an unquoted 2026-05-10 as a date; accept it as its ISO text.
        fields['date'] = fields['date'].isoformat()
    for key in ('image_width_px', 'image_height_px'):
        check_int(key, fields[key], 1, error=CalibrationError)
    notes = ()
    if kind == 'pinhole':
        mapping, notes = _pinhole_from_dict(
            data['pinhole'], fields['image_width_px'], fields['image_height_px'])
    elif kind == 'homography':
        mapping = _homography_from_dict(data['homography'])
    else:
        mapping = VimaFixedMap()
    return Calibration(mapping=mapping, notes=notes, **fields)


def load_calibration(path, limits: CalibrationLimits = DEFAULT_CALIBRATION_LIMITS) -> Calibration:
    """Read and validate a calibration file; CalibrationError says which field is wrong.

    Besides each field's type and range it rejects duplicate YAML keys and anything outside
    `limits` (table height, camera distance, fit residuals; see calibration_limits).
    """
    try:
        text = Path(path).read_text(encoding='utf-8')
    except OSError as err:
        raise CalibrationError(f'{path}: cannot read calibration: {err}') from None
    try:
        data = parse_calibration_yaml(text)
    except yaml.YAMLError as err:
        raise CalibrationError(f'{path}: cannot read calibration: {err}') from None
    except CalibrationError as err:
        raise CalibrationError(f'{path}: {err}') from None
    try:
        calibration = calibration_from_dict(data)
        check_calibration_limits(calibration, limits)
    except CalibrationError as err:
        raise CalibrationError(f'{path}: {err}') from None
    return calibration
