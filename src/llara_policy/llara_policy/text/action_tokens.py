"""RT-2-style action tokens of LLaRA's baseline: 5 values per action, 256 bins, ids 31000..31255.

An action in VIMA table metres (pick x/y, place x/y) plus a yaw change is normalised to five
values in [0, 1] and each value is quantised to one of 256 LLaMA vocabulary ids that the baseline
re-uses as action tokens (LLaRA `datasets/convert_vima.ipynb` get_rt2_action_info,
`eval/eval-rt2.py`; llara-spec.md 1.3). Turning ids into text needs the model's tokenizer and
happens elsewhere; this module is the pure arithmetic in both directions.
"""
from collections.abc import Iterable, Sequence
import operator

from llara_policy.errors import ParseError, ValueRangeError
from llara_policy.execution import TableAction
from llara_policy.geometry.vima_map import VIMA_X_RANGE_M, VIMA_Y_RANGE_M
from llara_policy.types import check_real

# LLaRA eval/eval-rt2.py quantize_float_to_text: token_pool_start=31000, token_num=256.
ACTION_TOKEN_START = 31000
ACTION_TOKEN_BINS = 256
VALUES_PER_ACTION = 5
# LLaRA get_rt2_action_info: (rotation + 180) / 360 maps [-180, 180] degrees to [0, 1].
ROTATION_RANGE_DEG = (-180.0, 180.0)


def action_to_unit_values(action: TableAction) -> tuple[float, ...]:
    """Normalise an action to LLaRA's 5 values in [0, 1] (x: (x - 0.25) * 2, y: y + 0.5).

    The action is in VIMA's table frame and must lie inside VIMA's action bounds; the yaw change
    within [-180, 180] degrees. Anything else raises ValueRangeError naming the field.
    """
    for name, value, bounds in (
            ('pick_xy_m[0]', action.pick_xy_m[0], VIMA_X_RANGE_M),
            ('pick_xy_m[1]', action.pick_xy_m[1], VIMA_Y_RANGE_M),
            ('place_xy_m[0]', action.place_xy_m[0], VIMA_X_RANGE_M),
            ('place_xy_m[1]', action.place_xy_m[1], VIMA_Y_RANGE_M),
            ('yaw_change_deg', action.yaw_change_deg, ROTATION_RANGE_DEG)):
        check_real(name, value, *bounds)
    return (
        (action.pick_xy_m[0] - VIMA_X_RANGE_M[0]) * 2.0,
        action.pick_xy_m[1] - VIMA_Y_RANGE_M[0],
        (action.place_xy_m[0] - VIMA_X_RANGE_M[0]) * 2.0,
        action.place_xy_m[1] - VIMA_Y_RANGE_M[0],
        (action.yaw_change_deg - ROTATION_RANGE_DEG[0]) / 360.0,
    )


def unit_values_to_action(values: Sequence[float]) -> TableAction:
    """Undo `action_to_unit_values` (LLaRA eval/eval-rt2.py parse_rt2)."""
    pick_x, pick_y, place_x, place_y, rotation = _unit_values(values, VALUES_PER_ACTION)
    return TableAction(
        (_clamp(pick_x * 0.5 + VIMA_X_RANGE_M[0], VIMA_X_RANGE_M),
         _clamp(pick_y + VIMA_Y_RANGE_M[0], VIMA_Y_RANGE_M)),
        (_clamp(place_x * 0.5 + VIMA_X_RANGE_M[0], VIMA_X_RANGE_M),
         _clamp(place_y + VIMA_Y_RANGE_M[0], VIMA_Y_RANGE_M)),
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
    return tuple(check_real(f'value {index}', value, 0.0, 1.0)
                 for index, value in enumerate(values))


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
