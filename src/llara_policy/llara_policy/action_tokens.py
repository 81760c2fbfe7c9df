"""RT-2-style action tokens of LLaRA's baseline: 5 values per action, 256 bins, ids 31000..31255.

An action in VIMA table metres (pick x/y, place x/y) plus a yaw change is normalised to five
values in [0, 1] and each value is quantised to one of 256 LLaMA vocabulary ids that the baseline
re-uses as action tokens (LLaRA `datasets/convert_vima.ipynb` get_rt2_action_info,
`eval/eval-rt2.py`; llara-spec.md 1.3). Turning ids into text needs the model's tokenizer and
happens elsewhere; this module is the pure arithmetic in both directions.
"""
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
import math
import numbers
import operator

from llara_policy.errors import ParseError, ValueRangeError

# LLaRA eval/eval-rt2.py quantize_float_to_text: token_pool_start=31000, token_num=256.
ACTION_TOKEN_START = 31000
ACTION_TOKEN_BINS = 256
VALUES_PER_ACTION = 5
# VIMA action bounds, metres (vimalabs/VIMABench vima_bench/env/base.py; spec 2.2).
TABLE_X_RANGE_M = (0.25, 0.75)
TABLE_Y_RANGE_M = (-0.5, 0.5)
# LLaRA get_rt2_action_info: (rotation + 180) / 360 maps [-180, 180] degrees to [0, 1].
ROTATION_RANGE_DEG = (-180.0, 180.0)


@dataclass(frozen=True)
class TableAction:
    """One pick-and-place in VIMA table metres with the yaw change of the placed object.

    `rotation_ccw_deg` is yaw(place) - yaw(pick) in degrees, counter-clockwise positive, i.e. NOT
    negated as in LLaRA's text actions; the place orientation is Rz(rotation_ccw_deg).
    """

    pick_x_m: float
    pick_y_m: float
    place_x_m: float
    place_y_m: float
    rotation_ccw_deg: float

    def __post_init__(self):
        for name, bounds in (('pick_x_m', TABLE_X_RANGE_M), ('pick_y_m', TABLE_Y_RANGE_M),
                             ('place_x_m', TABLE_X_RANGE_M), ('place_y_m', TABLE_Y_RANGE_M),
                             ('rotation_ccw_deg', ROTATION_RANGE_DEG)):
            _check_range(name, getattr(self, name), bounds)


def action_to_unit_values(action: TableAction) -> tuple[float, ...]:
    """Normalise an action to LLaRA's 5 values in [0, 1] (x: (x - 0.25) * 2, y: y + 0.5)."""
    return (
        (action.pick_x_m - TABLE_X_RANGE_M[0]) * 2.0,
        action.pick_y_m - TABLE_Y_RANGE_M[0],
        (action.place_x_m - TABLE_X_RANGE_M[0]) * 2.0,
        action.place_y_m - TABLE_Y_RANGE_M[0],
        (action.rotation_ccw_deg - ROTATION_RANGE_DEG[0]) / 360.0,
    )


def unit_values_to_action(values: Sequence[float]) -> TableAction:
    """Undo `action_to_unit_values` (LLaRA eval/eval-rt2.py parse_rt2)."""
    pick_x, pick_y, place_x, place_y, rotation = _unit_values(values, VALUES_PER_ACTION)
    return TableAction(
        _clamp(pick_x * 0.5 + TABLE_X_RANGE_M[0], TABLE_X_RANGE_M),
        _clamp(pick_y + TABLE_Y_RANGE_M[0], TABLE_Y_RANGE_M),
        _clamp(place_x * 0.5 + TABLE_X_RANGE_M[0], TABLE_X_RANGE_M),
        _clamp(place_y + TABLE_Y_RANGE_M[0], TABLE_Y_RANGE_M),
        _clamp(rotation * 360.0 + ROTATION_RANGE_DEG[0], ROTATION_RANGE_DEG))


def unit_values_to_token_ids(values: Sequence[float]) -> tuple[int, ...]:
    """Quantise values in [0, 1] to ids 31000 + round(v * 255) (round half to even, as numpy)."""
    return tuple(ACTION_TOKEN_START + round(v * (ACTION_TOKEN_BINS - 1))
                 for v in _unit_values(values, len(values)))


def token_ids_to_unit_values(token_ids: Iterable[int]) -> tuple[float, ...]:
    """Map action-token ids back to values (id - 31000) / 255; other ids raise ValueRangeError."""
    values = []
    for token_id in token_ids:
        index = _as_int(token_id) - ACTION_TOKEN_START
        if not 0 <= index < ACTION_TOKEN_BINS:
            raise ValueRangeError(
                f'token id {token_id} is not an action token '
                f'[{ACTION_TOKEN_START}, {ACTION_TOKEN_START + ACTION_TOKEN_BINS})')
        values.append(index / (ACTION_TOKEN_BINS - 1))
    return tuple(values)


def encode_actions(actions: Iterable[TableAction]) -> tuple[int, ...]:
    """Token ids of the actions, 5 per action, in order."""
    return tuple(token_id for action in actions
                 for token_id in unit_values_to_token_ids(action_to_unit_values(action)))


def decode_actions(token_ids: Iterable[int]) -> tuple[TableAction, ...]:
    """Decode a generated id sequence as LLaRA's eval-rt2.py does.

    Ids outside the action-token range (text, step prefixes, EOS) are skipped, the rest are
    grouped in fives and an incomplete last group is dropped. No complete group: ParseError.
    """
    kept = [index for index in (_as_int(i) for i in token_ids)
            if ACTION_TOKEN_START <= index < ACTION_TOKEN_START + ACTION_TOKEN_BINS]
    count = len(kept) // VALUES_PER_ACTION
    if count == 0:
        raise ParseError(f'no complete RT-2 action: {len(kept)} action tokens, '
                         f'{VALUES_PER_ACTION} needed per action')
    values = token_ids_to_unit_values(kept[:count * VALUES_PER_ACTION])
    return tuple(unit_values_to_action(values[i:i + VALUES_PER_ACTION])
                 for i in range(0, len(values), VALUES_PER_ACTION))


def _unit_values(values: Sequence[float], length: int) -> tuple[float, ...]:
    if isinstance(values, (str, bytes)) or len(values) != length:
        raise ValueRangeError(f'expected {length} values in [0, 1], got {values!r}')
    for index, value in enumerate(values):
        _check_range(f'value {index}', value, (0.0, 1.0))
    return tuple(float(v) for v in values)


def _check_range(name: str, value: float, bounds: tuple[float, float]) -> None:
    if (isinstance(value, bool) or not isinstance(value, numbers.Real)
            or not math.isfinite(value) or not bounds[0] <= value <= bounds[1]):
        raise ValueRangeError(f'{name} must be a finite number in [{bounds[0]}, {bounds[1]}], '
                              f'got {value!r}')


def _clamp(value: float, bounds: tuple[float, float]) -> float:
    # Guards against float rounding (e.g. 1.0 * 0.5 + 0.25 landing 1 ulp outside the bound).
    return min(max(value, bounds[0]), bounds[1])


def _as_int(token_id) -> int:
    if isinstance(token_id, bool):
        raise ValueRangeError(f'token id must be an integer, got {token_id!r}')
    try:
        return operator.index(token_id)
    except TypeError:
        raise ValueRangeError(f'token id must be an integer, got {token_id!r}') from None
