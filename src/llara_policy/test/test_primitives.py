"""The motion primitives check every target against the Workspace before the first arm call.

Each primitive is driven through a real SimArm with one target beyond one limit (x, y, z,
reach, NaN, inf, speed, yaw); it must raise UnsafeTargetError naming that limit, and the
arm's call log must show no call at all (so no motion) and the TCP must not have moved.
"""
import math

import numpy as np
import pytest

from llara_policy.arms.base import CODE_OK
from llara_policy.arms.primitives import (
    PickPlaceConfig,
    SweepConfig,
    go_home,
    pick_and_place,
    sweep,
)
from llara_policy.errors import ConfigError, UnsafeTargetError
from llara_policy.workspace import Workspace

WS = Workspace()
NAN = math.nan
INF = math.inf
# A workspace whose reach limits bind inside its box (the default box lies within its reach).
TIGHT_REACH = Workspace(x_min_m=0.05, reach_min_m=0.15, reach_max_m=0.45)
NO_TURNS = Workspace(max_yaw_change_deg=90.0)
FLOOR_5MM = Workspace(z_floor_above_table_m=0.005)
GOOD_PICK = (320.0, -100.0, 0.0)
GOOD_PLACE = (420.0, 150.0, 0.0)



def rejected(arm, limit: str, call) -> UnsafeTargetError:
    """Run `call`; assert UnsafeTargetError on `limit`, no arm call and no motion."""
    code, before = arm.get_position()
    assert code == CODE_OK
    calls_before = len(arm.calls)
    with pytest.raises(UnsafeTargetError) as raised:
        call()
    assert raised.value.limit == limit, str(raised.value)
    assert arm.calls[calls_before:] == []
    code, after = arm.get_position()
    assert np.allclose(after, before)
    return raised.value


PICK_AND_PLACE_CASES = {
    'pick x beyond x_max': ('x', WS, (600, 0, 0), GOOD_PLACE, 0.0, PickPlaceConfig()),
    'pick x below x_min': ('x', WS, (150, 0, 0), GOOD_PLACE, 0.0, PickPlaceConfig()),
    'place y beyond y_max': ('y', WS, GOOD_PICK, (400, 350, 0), 0.0, PickPlaceConfig()),
    'place y below y_min': ('y', WS, GOOD_PICK, (400, -350, 0), 0.0, PickPlaceConfig()),
    'pick beyond reach_max': ('reach', TIGHT_REACH, (400, 250, 0), (300, 0, 0), 0.0,
                              PickPlaceConfig()),
    'place inside reach_min': ('reach', TIGHT_REACH, (300, 0, 0), (100, 0, 0), 0.0,
                               PickPlaceConfig()),
    'support below the table': ('z', WS, (320, -100, -40), GOOD_PLACE, 0.0, PickPlaceConfig()),
    'lowest probe below the z floor': ('z', FLOOR_5MM, GOOD_PICK, GOOD_PLACE, 0.0,
                                       PickPlaceConfig()),
    'travel above z_max': ('z', WS, GOOD_PICK, (420, 150, 350), 0.0, PickPlaceConfig()),
    'home above z_max': ('z', WS, GOOD_PICK, GOOD_PLACE, 0.0,
                         PickPlaceConfig(home_xyz_mm=(220, 0, 600))),
    'pick x NaN': ('x', WS, (NAN, 0, 0), GOOD_PLACE, 0.0, PickPlaceConfig()),
    'place y NaN': ('y', WS, GOOD_PICK, (400, NAN, 0), 0.0, PickPlaceConfig()),
    'place z NaN': ('z', WS, GOOD_PICK, (400, 0, NAN), 0.0, PickPlaceConfig()),
    'pick x inf': ('x', WS, (INF, 0, 0), GOOD_PLACE, 0.0, PickPlaceConfig()),
    'place y -inf': ('y', WS, GOOD_PICK, (400, -INF, 0), 0.0, PickPlaceConfig()),
    'travel speed over the cap': ('speed', WS, GOOD_PICK, GOOD_PLACE, 0.0,
                                  PickPlaceConfig(travel_speed_mm_s=700.0)),
    'probe speed over a low cap': ('speed', Workspace(max_speed_mm_s=100.0), GOOD_PICK,
                                   GOOD_PLACE, 0.0, PickPlaceConfig(travel_speed_mm_s=90.0,
                                                                    approach_speed_mm_s=90.0,
                                                                    probe_speed_mm_s=120.0)),
    'yaw change over the limit': ('yaw change', NO_TURNS, GOOD_PICK, GOOD_PLACE, 120.0,
                                  PickPlaceConfig()),
    'yaw change NaN': ('yaw change', WS, GOOD_PICK, GOOD_PLACE, NAN, PickPlaceConfig()),
    'yaw change inf': ('yaw change', WS, GOOD_PICK, GOOD_PLACE, INF, PickPlaceConfig()),
    'pick not a point': ('xyz', WS, (320, -100), GOOD_PLACE, 0.0, PickPlaceConfig()),
}


@pytest.mark.parametrize('case', sorted(PICK_AND_PLACE_CASES))
def test_pick_and_place_rejects_a_target_beyond_each_limit_before_any_call(arm, case):
    limit, workspace, pick, place, yaw, config = PICK_AND_PLACE_CASES[case]
    rejected(arm, limit, lambda: pick_and_place(arm, workspace, pick, place, yaw, config))


SWEEP_CASES = {
    'start x beyond x_max': ('x', WS, (560, 0, 0), (400, 0, 0), SweepConfig()),
    'end y beyond y_max': ('y', WS, (400, 0, 0), (400, 320, 0), SweepConfig()),
    # The blade starts back_off_mm behind the start point: that point, too, is checked.
    'back-off behind the box': ('x', WS, (210, 0, 0), (400, 0, 0), SweepConfig()),
    'end beyond reach_max': ('reach', TIGHT_REACH, (300, 0, 0), (400, 250, 0), SweepConfig()),
    'table below the z floor': ('z', WS, (400, 0, -20), (300, 0, -20), SweepConfig()),
    'travel above z_max': ('z', WS, (400, 0, 0), (300, 0, 0),
                           SweepConfig(travel_height_mm=600.0)),
    'start NaN': ('x', WS, (NAN, 0, 0), (300, 0, 0), SweepConfig()),
    'end inf': ('y', WS, (400, 0, 0), (300, INF, 0), SweepConfig()),
    'push speed over the cap': ('speed', WS, (400, 0, 0), (300, 0, 0),
                                SweepConfig(push_speed_mm_s=900.0)),
    'blade turn over the limit': ('yaw change', NO_TURNS, (400, 0, 0), (300, 0, 0),
                                  SweepConfig()),
    'home outside the box': ('y', WS, (400, 0, 0), (300, 0, 0),
                             SweepConfig(home_xyz_mm=(220, 400, 350))),
}


@pytest.mark.parametrize('case', sorted(SWEEP_CASES))
def test_sweep_rejects_a_target_beyond_each_limit_before_any_call(arm, case):
    limit, workspace, start, end, config = SWEEP_CASES[case]
    rejected(arm, limit, lambda: sweep(arm, workspace, start, end, config))


GO_HOME_CASES = {
    'home x beyond x_max': ('x', WS, PickPlaceConfig(home_xyz_mm=(600, 0, 350))),
    'home y below y_min': ('y', WS, PickPlaceConfig(home_xyz_mm=(220, -400, 350))),
    'home inside reach_min': ('reach', TIGHT_REACH, PickPlaceConfig(home_xyz_mm=(100, 0, 350))),
    'home below the z floor': ('z', WS, PickPlaceConfig(home_xyz_mm=(220, 0, -5))),
    'home speed over the cap': ('speed', WS, PickPlaceConfig(travel_speed_mm_s=800.0)),
}


@pytest.mark.parametrize('case', sorted(GO_HOME_CASES))
def test_go_home_rejects_a_target_beyond_each_limit_before_any_call(arm, case):
    limit, workspace, config = GO_HOME_CASES[case]
    rejected(arm, limit, lambda: go_home(arm, workspace, config))


def test_the_error_names_the_limit_and_the_value(arm):
    error = rejected(arm, 'x', lambda: pick_and_place(arm, WS, (600, 0, 0), GOOD_PLACE, 0.0))
    assert error.value == pytest.approx(0.6)
    assert 'x_max_m=0.5' in str(error) and 'above pick' in str(error)


def test_legal_targets_at_the_box_edges_are_executed(arm):
    # No clipping and no margin inside the envelope: its corners themselves are legal.
    go_home(arm, WS)
    calls_before = len(arm.calls)
    # The blade stops back_off_mm short of the end: the end may lie on the box's corner.
    start = (WS.x_max_m * 1000 - 100, WS.y_max_m * 1000, 0.0)
    end = (WS.x_max_m * 1000 + SweepConfig().back_off_mm, WS.y_max_m * 1000, 0.0)
    sweep(arm, WS, start, end, SweepConfig(return_home=False))
    moves = [c for c in arm.calls[calls_before:] if c.method == 'set_position']
    assert len(moves) == 4 and all(c.code == CODE_OK for c in moves)


def test_primitive_configs_refuse_non_numbers_and_bad_home():
    with pytest.raises(ConfigError, match='travel_speed_mm_s'):
        PickPlaceConfig(travel_speed_mm_s=NAN)
    with pytest.raises(ConfigError, match='home_xyz_mm'):
        PickPlaceConfig(home_xyz_mm=(1.0, 2.0))
    with pytest.raises(ConfigError, match='push_speed_mm_s'):
        SweepConfig(push_speed_mm_s=True)
    with pytest.raises(ConfigError, match='min_clearance_mm'):
        PickPlaceConfig(min_clearance_mm=80.0)
