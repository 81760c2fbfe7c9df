"""Tests of the RT-2-style 256-bin action-token codec (llara-spec.md 1.3)."""
from hypothesis import given, settings
from hypothesis import strategies as st
import numpy as np
import pytest

from llara_policy.errors import ParseError, ValueRangeError
from llara_policy.execution import TableAction
from llara_policy.text.action_tokens import (
    ACTION_TOKEN_START,
    action_to_unit_values,
    decode_actions,
    encode_actions,
    token_ids_to_unit_values,
    unit_values_to_action,
    unit_values_to_token_ids,
)

CENTRE = TableAction((0.5, 0.0), (0.5, 0.0), 0.0)


def test_known_values_and_ids():
    # (0.5 - 0.25) * 2 = 0.5 -> round(127.5) = 128 (half to even, as numpy's np.round).
    assert action_to_unit_values(CENTRE) == (0.5, 0.5, 0.5, 0.5, 0.5)
    assert encode_actions([CENTRE]) == (31128,) * 5
    corners = TableAction((0.25, -0.5), (0.75, 0.5), 180.0)
    assert encode_actions([corners]) == (31000, 31000, 31255, 31255, 31255)
    assert unit_values_to_token_ids(np.array([0.3, 0.7])) == (
        31000 + int(np.round(0.3 * 255)), 31000 + int(np.round(0.7 * 255)))
    assert decode_actions((31000, 31000, 31255, 31255, 31255)) == (corners,)
    assert token_ids_to_unit_values([31000, np.int64(31255)]) == (0.0, 1.0)


def test_decoding_skips_other_ids_and_drops_an_incomplete_group():
    ids = [1, 2, *encode_actions([CENTRE]), 13, 29871, 31000, 31001, 31256, 2]
    assert decode_actions(ids) == (unit_values_to_action((128 / 255,) * 5),)
    with pytest.raises(ParseError, match='no complete RT-2 action'):
        decode_actions([31000, 31001, 5])


@pytest.mark.parametrize('call', [
    lambda: action_to_unit_values(TableAction((0.8, 0.0), (0.5, 0.0), 0.0)),
    lambda: action_to_unit_values(TableAction((0.5, 0.0), (0.5, 0.0), 181.0)),
    lambda: TableAction((0.5, float('nan')), (0.5, 0.0), 0.0),
    lambda: TableAction((0.5, True), (0.5, 0.0), 0.0),
    lambda: unit_values_to_token_ids([0.5, 1.5]),
    lambda: unit_values_to_action([0.5] * 4),
    lambda: token_ids_to_unit_values([31256]),
    lambda: token_ids_to_unit_values([31000.0]),
    lambda: decode_actions([True] * 5),
])
def test_bad_input_raises_value_range_error(call):
    with pytest.raises(ValueRangeError):
        call()


@settings(max_examples=300, deadline=None, database=None)
@given(st.lists(st.builds(
    TableAction, st.tuples(st.floats(0.25, 0.75), st.floats(-0.5, 0.5)),
    st.tuples(st.floats(0.25, 0.75), st.floats(-0.5, 0.5)), st.floats(-180.0, 180.0)),
    min_size=1, max_size=4))
def test_round_trip_within_half_a_bin(actions):
    decoded = decode_actions(encode_actions(actions))
    assert len(decoded) == len(actions)
    eps = 1e-9
    for before, after in zip(actions, decoded, strict=True):
        assert abs(before.pick_xy_m[0] - after.pick_xy_m[0]) <= 0.5 / 255 / 2 + eps
        assert abs(before.place_xy_m[0] - after.place_xy_m[0]) <= 0.5 / 255 / 2 + eps
        assert abs(before.pick_xy_m[1] - after.pick_xy_m[1]) <= 1.0 / 255 / 2 + eps
        assert abs(before.place_xy_m[1] - after.place_xy_m[1]) <= 1.0 / 255 / 2 + eps
        assert abs(before.yaw_change_deg - after.yaw_change_deg) <= 360.0 / 255 / 2 + eps
    assert all(ACTION_TOKEN_START <= i < ACTION_TOKEN_START + 256 for i in encode_actions(actions))
