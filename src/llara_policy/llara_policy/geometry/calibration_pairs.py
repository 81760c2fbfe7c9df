"""Input files of `llara_calibrate`: pixel <-> robot point pairs, intrinsics, workspace.

A pairs file is CSV (a header naming u_px, v_px, x_m, y_m and optionally z_m, then one pair per
line; `#` comments) or YAML (a list of mappings with those keys, or `pairs:` holding one).
Pixels are raw camera pixels; robot points are in the base frame, metres. Every error names
the file and the line, so a typo is found before it becomes a calibration.
"""
import csv
from dataclasses import dataclass
import math
from pathlib import Path

import numpy as np
import yaml

from llara_policy.errors import ConfigError, LlaraError, ValueRangeError
from llara_policy.geometry.transforms import CameraIntrinsics
from llara_policy.workspace import Workspace

PAIR_COLUMNS = ('u_px', 'v_px', 'x_m', 'y_m')
Z_COLUMN = 'z_m'


class BadInputError(LlaraError):
    """The tool cannot read its input (a file, a row, an option): exit code 2."""


@dataclass(frozen=True)
class PointPairs:
    """Pixel <-> robot point pairs read from a file: `lines[i]` is the file line of pair i.

    `points_m` is (N, 3) in the base frame; `has_z` says whether the file gave z (else z is the
    table height given to `read_pairs`).
    """

    pixel_uv: np.ndarray
    points_m: np.ndarray
    lines: tuple[int, ...]
    has_z: bool
    path: str


def _number(path, line: int, column: str, text) -> float:
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise BadInputError(f'{path} line {line}: {column} {text!r} is not a number') from None
    if not math.isfinite(value):
        raise BadInputError(f'{path} line {line}: {column} {text!r} is not finite')
    return value


def _check_header(path, line: int, columns) -> bool:
    """Return whether the header has z_m; BadInputError unless it names the pair columns."""
    columns = [c.strip() for c in columns]
    allowed = PAIR_COLUMNS + (Z_COLUMN,)
    unknown = [c for c in columns if c not in allowed]
    if unknown or len(set(columns)) != len(columns) or not set(PAIR_COLUMNS) <= set(columns):
        raise BadInputError(
            f'{path} line {line}: the header must name the columns {",".join(PAIR_COLUMNS)}'
            f'[,{Z_COLUMN}] (any order, once each), got {",".join(columns)!r}')
    return Z_COLUMN in columns


def _csv_rows(path: Path, text: str):
    """Yield (line, {column: text}) for each data row of a CSV pairs file."""
    header, line_no = None, 0
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith('#'):
            continue
        fields = [f.strip() for f in next(csv.reader([line]))]
        if header is None:
            _check_header(path, line_no, fields)
            header = fields
            continue
        if len(fields) != len(header):
            raise BadInputError(f'{path} line {line_no}: expected {len(header)} values '
                                f'({",".join(header)}), got {len(fields)}')
        yield line_no, dict(zip(header, fields, strict=True))
    if header is None:
        raise BadInputError(f'{path}: no header line ({",".join(PAIR_COLUMNS)}[,{Z_COLUMN}])')


def _yaml_rows(path: Path, text: str):
    """Yield (line, {column: text}) for each pair of a YAML pairs file (list, or `pairs:`)."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as err:
        raise BadInputError(f'{path}: not valid YAML: {err}') from None
    if isinstance(root, yaml.MappingNode):
        items = [v for k, v in root.value if k.value == 'pairs']
        if len(root.value) != 1 or not items:
            raise BadInputError(f'{path}: the YAML mapping must hold one key, pairs')
        root = items[0]
    if not isinstance(root, yaml.SequenceNode):
        raise BadInputError(f'{path}: expected a list of pairs (or pairs: [...])')
    keys = None
    for item in root.value:
        line = item.start_mark.line + 1
        if not isinstance(item, yaml.MappingNode) or not all(
                isinstance(k, yaml.ScalarNode) and isinstance(v, yaml.ScalarNode)
                for k, v in item.value):
            raise BadInputError(f'{path} line {line}: a pair must be a mapping of numbers '
                                f'{{u_px: .., v_px: .., x_m: .., y_m: ..[, z_m: ..]}}')
        row = {k.value: v.value for k, v in item.value}
        _check_header(path, line, [k.value for k, _ in item.value])
        if keys is not None and set(row) != keys:
            raise BadInputError(f'{path} line {line}: every pair needs the same keys '
                                f'({", ".join(sorted(keys))})')
        keys = set(row)
        yield line, row


def read_pairs(path, table_z_m: float = 0.0) -> PointPairs:
    """Read a pairs file (.csv, or .yaml/.yml); BadInputError names the file and the line."""
    path = Path(path)
    try:
        text = path.read_text(encoding='utf-8')
    except (OSError, UnicodeDecodeError) as err:
        raise BadInputError(f'{path}: cannot read pairs file: {err}') from None
    rows = _yaml_rows if path.suffix.lower() in ('.yaml', '.yml') else _csv_rows
    pixels, points, lines, has_z = [], [], [], False
    for line, row in rows(path, text):
        values = {c: _number(path, line, c, row[c]) for c in row}
        has_z = Z_COLUMN in row
        pixels.append((values['u_px'], values['v_px']))
        points.append((values['x_m'], values['y_m'], values.get(Z_COLUMN, table_z_m)))
        lines.append(line)
    if not lines:
        raise BadInputError(f'{path}: no pairs (header only)')
    return PointPairs(np.array(pixels), np.array(points), tuple(lines), has_z, str(path))


def parse_image_size(text: str) -> tuple[int, int]:
    """Parse 'WxH' (e.g. '1280x720') into (width_px, height_px)."""
    parts = text.lower().split('x')
    if len(parts) != 2 or not all(p.strip().isdigit() and int(p) > 0 for p in parts):
        raise BadInputError(f'--image-size must be WxH in pixels (e.g. 1280x720), got {text!r}')
    return int(parts[0]), int(parts[1])


def _camera_info_intrinsics(path: Path) -> CameraIntrinsics:
    """Read a camera_calibration_parsers YAML (what `cameracalibrator` writes)."""
    try:
        data = yaml.safe_load(path.read_text(encoding='utf-8'))
        matrix = data['camera_matrix']['data']
        model = data.get('distortion_model', 'plumb_bob')
        distortion = data.get('distortion_coefficients', {'data': [0.0] * 5})['data']
        width, height = data['image_width'], data['image_height']
    except (OSError, yaml.YAMLError, KeyError, TypeError) as err:
        raise BadInputError(f'{path}: not a camera_info YAML (image_width, image_height, '
                            f'camera_matrix.data, distortion_coefficients.data): {err}') from None
    if not isinstance(matrix, list) or len(matrix) != 9 or matrix[0] == 0:
        raise BadInputError(f'{path}: camera_matrix.data must be 9 numbers with K[0] != 0 '
                            f'(0 means uncalibrated), got {matrix!r}')
    if model != 'plumb_bob' or not isinstance(distortion, list) or len(distortion) != 5:
        raise BadInputError(f'{path}: need distortion_model plumb_bob with 5 coefficients '
                            f'(k1, k2, p1, p2, k3), got {model!r} with {distortion!r}')
    try:
        return CameraIntrinsics(width, height, matrix[0], matrix[4], matrix[2], matrix[5],
                                tuple(distortion))
    except ValueRangeError as err:
        raise BadInputError(f'{path}: {err}') from None


def read_intrinsics(text: str, image_size) -> CameraIntrinsics:
    """Intrinsics from a camera_info YAML path or 'fx,fy,cx,cy[,k1,k2,p1,p2,k3]'."""
    if Path(text).suffix.lower() in ('.yaml', '.yml'):
        intrinsics = _camera_info_intrinsics(Path(text))
        size = (intrinsics.width_px, intrinsics.height_px)
        if image_size is not None and tuple(image_size) != size:
            raise BadInputError(f'--image-size {image_size[0]}x{image_size[1]} does not match '
                                f'{text} ({size[0]}x{size[1]})')
        return intrinsics
    try:
        values = [float(v) for v in text.split(',')]
    except ValueError:
        values = []
    if len(values) not in (4, 9):
        raise BadInputError(f'--intrinsics must be a camera_info .yaml file or '
                            f'fx,fy,cx,cy[,k1,k2,p1,p2,k3] in pixels, got {text!r}')
    if image_size is None:
        raise BadInputError('--intrinsics given as numbers needs --image-size WxH')
    distortion = tuple(values[4:]) or (0.0,) * 5
    try:
        return CameraIntrinsics(*image_size, *values[:4], distortion)
    except ValueRangeError as err:
        raise BadInputError(f'--intrinsics: {err}') from None


def parse_workspace(text) -> Workspace:
    """Workspace() or one with 'x_min,x_max,y_min,y_max[,table_z]' metres."""
    if text is None:
        return Workspace()
    try:
        values = [float(v) for v in text.split(',')]
        if len(values) not in (4, 5):
            raise ValueError
        names = ('x_min_m', 'x_max_m', 'y_min_m', 'y_max_m', 'table_z_m')
        return Workspace(**dict(zip(names, values, strict=False)))
    except ValueError:
        raise BadInputError(f'--workspace must be x_min,x_max,y_min,y_max[,table_z] in metres, '
                            f'got {text!r}') from None
    except ConfigError as err:
        raise BadInputError(f'--workspace: {err}') from None
