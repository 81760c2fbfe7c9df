"""The safety envelope: a valid Workspace, and checks that reject (never clip) with the limit."""
import math

import numpy as np
import pytest

from llara_policy.errors import ConfigError, UnsafeTargetError
from llara_policy.execution import TableAction
from llara_policy.workspace import (
    XARM_MAX_SPEED_MM_S,
    Workspace,
    check_table_action,
    check_tcp_target,
    check_xy_m,
    check_yaw_change,
    finite_xyz_mm,
)

WS = Workspace()


@pytest.mark.parametrize('fields,named', [
    (dict(x_min_m=0.5, x_max_m=0.2), 'x_min_m'),
    (dict(y_min_m=0.3, y_max_m=0.3), 'y_min_m'),
    (dict(z_max_m=-0.1), 'z_floor_m'),
    (dict(reach_min_m=0.7), 'reach_min_m'),
    (dict(z_floor_above_table_m=-0.01), 'z_floor_above_table_m'),
    (dict(max_yaw_change_deg=400.0), 'max_yaw_change_deg'),
    (dict(max_speed_mm_s=XARM_MAX_SPEED_MM_S + 1), 'max_speed_mm_s'),
    (dict(max_speed_mm_s=0.0), 'max_speed_mm_s'),
    (dict(x_min_m=math.nan), 'x_min_m'),
    (dict(table_z_m=math.inf), 'table_z_m'),
    (dict(y_max_m=True), 'y_max_m'),
    (dict(x_max_m='0.5'), 'x_max_m'),
])
def test_an_invalid_workspace_is_a_config_error_naming_the_field(fields, named):
    with pytest.raises(ConfigError, match=named):
        Workspace(**fields)


def test_numpy_scalars_are_accepted_and_stored_as_floats():
    workspace = Workspace(x_max_m=np.float32(0.45), reach_max_m=np.int64(1))
    assert type(workspace.x_max_m) is float and workspace.reach_max_m == 1.0


def test_the_controller_boundary_is_the_same_box_in_sdk_order_and_mm():
    workspace = Workspace(table_z_m=-0.01, z_floor_above_table_m=0.002)
    assert workspace.tcp_boundary_mm() == pytest.approx([500.0, 200.0, 300.0, -300.0,
                                                         500.0, -8.0])


def test_corners_run_around_the_box():
    assert WS.corners_xy_m() == ((0.2, -0.3), (0.5, -0.3), (0.5, 0.3), (0.2, 0.3))


@pytest.mark.parametrize('xyz_mm,limit,value', [
    ((501, 0, 100), 'x', 0.501), ((199, 0, 100), 'x', 0.199),
    ((300, 301, 100), 'y', 0.301), ((300, -301, 100), 'y', -0.301),
    ((300, 0, -0.5), 'z', -0.0005), ((300, 0, 501), 'z', 0.501),
    ((math.nan, 0, 100), 'x', None), ((300, math.inf, 100), 'y', math.inf),
    ((300, 0, -math.inf), 'z', -math.inf),
])
def test_tcp_targets_beyond_a_limit_name_the_limit_and_value(xyz_mm, limit, value):
    with pytest.raises(UnsafeTargetError) as raised:
        check_tcp_target(WS, xyz_mm, 100.0, 'target')
    assert raised.value.limit == limit
    if value is None:
        assert math.isnan(raised.value.value)
    else:
        assert raised.value.value == pytest.approx(value)


def test_reach_limits_bind_inside_the_box():
    workspace = Workspace(x_min_m=0.0, reach_min_m=0.15, reach_max_m=0.45)
    with pytest.raises(UnsafeTargetError) as raised:
        check_xy_m(workspace, (0.1, 0.05), 'pick')
    assert raised.value.limit == 'reach' and raised.value.value == pytest.approx(
        math.hypot(0.1, 0.05))
    with pytest.raises(UnsafeTargetError) as raised:
        check_xy_m(workspace, (0.4, 0.25), 'pick')
    assert raised.value.limit == 'reach'
    check_xy_m(workspace, (0.3, 0.0), 'pick')


@pytest.mark.parametrize('speed', [0.0, -5.0, 601.0, math.nan, math.inf])
def test_speeds_outside_zero_to_the_cap_are_rejected(speed):
    with pytest.raises(UnsafeTargetError) as raised:
        check_tcp_target(WS, (300, 0, 100), speed, 'move')
    assert raised.value.limit == 'speed'


def test_the_box_edges_and_the_speed_cap_themselves_are_legal():
    for x_mm in (200.0, 500.0):
        for y_mm in (-300.0, 300.0):
            for z_mm in (0.0, 500.0):
                check_tcp_target(WS, (x_mm, y_mm, z_mm), WS.max_speed_mm_s, 'edge')


@pytest.mark.parametrize('bad', [(1.0, 2.0), 'abc', 5.0, (1, 2, 3, 4), (1, True, 3)])
def test_a_point_that_is_not_three_finite_numbers_is_rejected(bad):
    with pytest.raises(UnsafeTargetError):
        finite_xyz_mm(bad, 'pick')


def test_yaw_change_limit():
    workspace = Workspace(max_yaw_change_deg=90.0)
    check_yaw_change(workspace, -90.0, 'rotation')
    for yaw in (90.5, -120.0, math.nan):
        with pytest.raises(UnsafeTargetError) as raised:
            check_yaw_change(workspace, yaw, 'rotation')
        assert raised.value.limit == 'yaw change'


def test_a_table_action_is_checked_pick_place_and_rotation():
    check_table_action(WS, TableAction((0.3, 0.0), (0.45, -0.2), 30.0))
    cases = [(TableAction((0.1, 0.0), (0.3, 0.0), 0.0), 'pick'),
             (TableAction((0.3, 0.0), (0.3, 0.35), 0.0), 'place'),
             (TableAction((0.3, 0.0), (0.3, 0.0), 359.5), 'rotation')]
    for action, what in cases:
        with pytest.raises(UnsafeTargetError, match=what):
            check_table_action(WS, action)
