"""The executed step projected back into the model frame: the entry of LLaRA's action history.

Expected values come from the documented facts of LLaRA's evaluation (llara-spec 2.2, 2.3, 3.4;
LostXine/LLaRA eval/eval-llara.py `parse_bc` / `action_to_text`, eval/vima_utils.py), written
out independently here: positions decoded with pix2pos_front and stored as np.float32, read back
with pos2pix_front in float64 (NumPy 1.x promotion) and int(); the rotation through scipy's
Rotation exactly as LLaRA calls it (a float32 quaternion, read back as 'xyz' Euler angles).
"""
from dataclasses import replace

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from llara_policy.execution import (
    ModelFrameMapper,
    TableAction,
    executed_step,
    history_rotation,
    table_action_from_step,
)
from llara_policy.geometry.calibration import vima_fixed_calibration
from llara_policy.geometry.preprocessing import FramePreprocess
from llara_policy.geometry.vima_map import VimaFixedMap
from llara_policy.sim.camera import front_camera
from llara_policy.types import ActionStep, Effector, ImagePoint


def vima_mapper(convention: str) -> ModelFrameMapper:
    calibration = replace(vima_fixed_calibration(), mapping=VimaFixedMap(convention))
    return ModelFrameMapper(calibration, FramePreprocess.full_frame(256, 128))


LLARA = vima_mapper('llara')
UNBIASED = vima_mapper('unbiased')


def history_of(mapper: ModelFrameMapper, step: ActionStep) -> ActionStep:
    return executed_step(mapper, step, table_action_from_step(mapper, step))


def llara_reference_point(point: ImagePoint) -> tuple[float, float]:
    """LLaRA's history point for a model point, from the documented formulas."""
    column, row = point.x_norm * 256, point.y_norm * 128             # parse_coor
    x_m = min(max(float(row - 34) / 178 + 0.25, 0.25), 0.75)          # pix2pos_front
    y_m = min(max(float(column - 3) / 251 - 0.5, -0.5), 0.5)
    stored = np.array((x_m, y_m), dtype=np.float32)                   # the action dict
    x32, y32 = float(stored[0]), float(stored[1])                     # NumPy 1.x: float64 ops
    return int((y32 + 0.5) * 251 + 3) / 256, int((x32 - 0.25) * 178 + 34) / 128


def llara_reference_rotation(rotation_cw_deg: int) -> int:
    """LLaRA's history rotation for the model's r, through scipy as LLaRA calls it."""
    place = np.array(Rotation.from_euler('z', -float(rotation_cw_deg), degrees=True).as_quat(),
                     dtype=np.float32)
    pick = np.array([0, 0, 0, 1], dtype=np.float32)
    yaw_place = Rotation.from_quat(place).as_euler('xyz', degrees=True)[-1]
    yaw_pick = Rotation.from_quat(pick).as_euler('xyz', degrees=True)[-1]
    return -int(yaw_place - yaw_pick)


def test_llara_history_rotation_matches_scipy_for_every_whole_degree():
    centre = ImagePoint(0.5, 0.6)
    got = {r: history_of(LLARA, ActionStep(centre, centre, r)).rotation_cw_deg
           for r in range(-359, 360)}
    expected = {r: llara_reference_rotation(r) for r in range(-359, 360)}
    assert got == expected
    # Hand-checked: 116 (a float32 yaw of -115.9999994) loses a degree, 90 (exact halves)
    # does not, 200 wraps to a yaw of 160 and loses one, 1 (yaw -0.99999999) becomes 0.
    assert (got[116], got[-116], got[90], got[200], got[1], got[0]) == (
        115, -115, 90, -159, 0, 0)
    assert all(-359 <= r <= 359 for r in got.values())


def test_llara_history_points_match_the_documented_arithmetic():
    # Every 3-decimal coordinate on each axis (the axes are independent), other axis fixed.
    values = [i / 1000 for i in range(1001)]
    points = [ImagePoint(v, 0.6) for v in values] + [ImagePoint(0.5, v) for v in values]
    for pick, place in zip(points, reversed(points), strict=True):
        history = history_of(LLARA, ActionStep(pick, place, 0))
        assert (history.pick.x_norm, history.pick.y_norm) == llara_reference_point(pick)
        assert (history.place.x_norm, history.place.y_norm) == llara_reference_point(place)


def test_llara_history_hand_checked_examples():
    # llara-spec 2.1/3.4: the released pick (0.320, 0.547) comes back as (0.316, 0.547):
    # column 81.92 -> y = 78.92 / 251 - 0.5 -> column 81.92 (+/- float32) -> int 81 -> 0.316;
    # row 70.016 -> row 70 -> 0.547. Rotation -116 comes back as -115.
    step = ActionStep(ImagePoint(0.320, 0.547), ImagePoint(0.543, 0.836), -116,
                      object_text='polka dot letter A', effector=Effector.SUCTION,
                      step_number=1)
    history = history_of(LLARA, step)
    assert (history.pick.x_norm, history.pick.y_norm) == (81 / 256, 70 / 128)
    assert f'{history.pick.x_norm:.3f}, {history.pick.y_norm:.3f}' == '0.316, 0.547'
    assert history.rotation_cw_deg == -115
    assert (history.object_text, history.effector, history.step_number) == (
        '', Effector.SUCTION, 1)
    # The float32 rounding decides edge pixels: row 35 -> x = 0.25 + 1/178, which float32
    # rounds down, so the history shows row 34 (float64 all through would keep 35) ...
    x_m = 0.25 + 1 / 178
    assert float(np.float32(x_m)) < x_m and int((x_m - 0.25) * 178 + 34) == 35
    assert history_of(LLARA, ActionStep(ImagePoint(0.5, 35 / 128),
                                        ImagePoint(0.5, 0.5), 0)).pick.y_norm == 34 / 128
    # ... and column 4 -> y = 1/251 - 0.5, which float32 rounds up: the history keeps 4
    # where float64 all through truncates 3.99999... to 3.
    y_m = 1 / 251 - 0.5
    assert float(np.float32(y_m)) > y_m and int((y_m + 0.5) * 251 + 3) == 3
    assert history_of(LLARA, ActionStep(ImagePoint(4 / 256, 0.5),
                                        ImagePoint(0.5, 0.5), 0)).pick.x_norm == 4 / 256


def test_llara_history_of_clipped_points_stays_on_the_workspace_edge():
    # pix2pos_front clips to x in [0.25, 0.75], y in [-0.5, 0.5]: corners come back as the
    # workspace's corner pixels (3, 34) and (254, 123).
    history = history_of(LLARA, ActionStep(ImagePoint(0.0, 0.0), ImagePoint(1.0, 1.0), 0))
    assert (history.pick.x_norm, history.pick.y_norm) == (3 / 256, 34 / 128)
    assert (history.place.x_norm, history.place.y_norm) == (254 / 256, 123 / 128)


def test_unbiased_history_points_are_pixel_centres_within_half_a_pixel():
    rng = np.random.default_rng(0)
    # Inside the workspace (columns 3-254, rows 34-123), where nothing is clipped.
    columns, rows = rng.uniform(3.0, 254.0, 500), rng.uniform(34.0, 123.0, 500)
    for column, row, r in zip(columns, rows, rng.integers(-359, 360, 500), strict=True):
        point = ImagePoint(column / 256, row / 128)
        history = history_of(UNBIASED, ActionStep(point, point, int(r)))
        u, v = history.pick.x_norm * 256, history.pick.y_norm * 128
        assert abs(u - column) <= 0.5 + 1e-9 and abs(v - row) <= 0.5 + 1e-9
        assert (u - 0.5).is_integer() and (v - 0.5).is_integer()
        assert history.rotation_cw_deg == r


def test_pinhole_history_round_trips_the_sim_camera():
    camera = front_camera()
    mapper = ModelFrameMapper(camera.calibration(), FramePreprocess.full_frame(256, 128))
    rng = np.random.default_rng(1)
    for x_norm, y_norm, r in zip(rng.uniform(0.05, 0.95, 300), rng.uniform(0.3, 0.95, 300),
                                 rng.integers(-359, 360, 300), strict=True):
        pick, place = ImagePoint(x_norm, y_norm), ImagePoint(1 - x_norm, y_norm)
        history = history_of(mapper, ActionStep(pick, place, int(r)))
        for sent, back in ((pick, history.pick), (place, history.place)):
            assert back.x_norm == pytest.approx(sent.x_norm, abs=1e-6)
            assert back.y_norm == pytest.approx(sent.y_norm, abs=1e-6)
        assert history.rotation_cw_deg == r


@pytest.mark.parametrize('yaw_change_deg, rotation_cw_deg', [
    (-116.0, 116), (116.4, -116), (359.6, 0), (-359.4, 359), (720.2, 0), (-0.4, 0)])
def test_history_rotation_is_minus_the_rounded_yaw_within_359(yaw_change_deg, rotation_cw_deg):
    assert history_rotation(yaw_change_deg) == rotation_cw_deg
    action = TableAction((0.4, 0.0), (0.5, 0.1), yaw_change_deg)
    point = ImagePoint(0.5, 0.5)
    assert executed_step(UNBIASED, ActionStep(point, point, 0), action).rotation_cw_deg == (
        rotation_cw_deg)


def test_llara_history_rotation_of_yaws_beyond_a_turn_wraps():
    # A commanded yaw of 400 degrees reads back as about 40 (scipy's Euler angles lie in
    # [-180, 180]); never outside ActionStep's [-359, 359].
    action = TableAction((0.4, 0.0), (0.5, 0.1), 400.0)
    point = ImagePoint(0.5, 0.5)
    history = executed_step(LLARA, ActionStep(point, point, 0), action)
    assert history.rotation_cw_deg == llara_reference_rotation(-400) in (-40, -39)
