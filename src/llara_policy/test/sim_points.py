"""Test helper: a model-frame step whose pick lands on bare table in a SimEnv scene (a real miss:
the sim's suction finds nothing to hold there, no fault injected)."""
import itertools

import numpy as np

from llara_policy.types import ActionStep

CLEARANCE_M = 0.06  # no object surface within this radius of the chosen point
MARGIN_M = 0.04  # keep the point this far inside the workspace box


def bare_table_xy_m(env) -> tuple[float, float]:
    """Return the table point of a 1 cm grid in the workspace farthest from every object."""
    ws = env.config.workspace
    xs = np.arange(ws.x_min_m + MARGIN_M, ws.x_max_m - MARGIN_M, 0.01)
    ys = np.arange(ws.y_min_m + MARGIN_M, ws.y_max_m - MARGIN_M, 0.01)
    objects = [env.world.object_pose(body)[0][:2] for body in env.world.objects]

    def clearance(xy):
        return min((float(np.linalg.norm(np.subtract(xy, o))) for o in objects), default=1.0)

    best = max(itertools.product(xs, ys), key=clearance)
    xy = (float(best[0]), float(best[1]))
    assert env.world.surface_height(xy, 2 * CLEARANCE_M) == 0.0, f'no bare table at {xy}'
    return xy


def missing_step(env, like: ActionStep) -> ActionStep:
    """Return `like` with its pick moved onto bare table (its place and rotation kept)."""
    return ActionStep(env.model_point(bare_table_xy_m(env)), like.place, like.rotation_cw_deg,
                      object_text=like.object_text, effector=like.effector,
                      step_number=like.step_number)
