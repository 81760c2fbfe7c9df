"""End effectors on the sim xArm's flange: the suction cup and the spatula (VIMA's two tools).

Both reach 60 mm below the flange, so the TCP offset is the same. The suction cup is drawn only
(grasping is a constraint the SimArm makes, VIMA's way); the spatula is a dynamic blade held to
the flange by a fixed constraint, so it pushes objects with real contacts as the arm moves.
Lengths in metres.
"""
import numpy as np
import pybullet as p

from llara_policy.geometry.transforms import quat_xyzw_from_matrix

# The cup's tip, or the blade's bottom edge, lies this far along the tool axis from the flange.
TOOL_LENGTH_M = 0.06
SUCTION_CUP_RADIUS_M = 0.012
# The blade: thin along the push direction (tool x), wide across it (tool y); VIMA's spatula is
# a flat blade aligned with the push (vimabench-spec A.9).
BLADE_HALF_EXTENTS_M = (0.003, 0.028, 0.02)
BLADE_MASS_KG = 0.2
BLADE_HOLD_FORCE_N = 2000.0
TOOL_RGBA = (0.2, 0.2, 0.22, 1.0)


def add_suction_cup(client_id: int) -> int:
    """Add the cup's drawing (no collision; place it with `place_on_flange`)."""
    visual = p.createVisualShape(p.GEOM_CYLINDER, radius=SUCTION_CUP_RADIUS_M,
                                 length=TOOL_LENGTH_M, rgbaColor=TOOL_RGBA,
                                 physicsClientId=client_id)
    return p.createMultiBody(0.0, -1, visual, (0, 0, -1), physicsClientId=client_id)


def place_on_flange(client_id: int, body: int, base_from_flange: np.ndarray) -> None:
    """Put a tool body's centre halfway down the tool axis of the flange pose (4, 4)."""
    centre = base_from_flange[:3, :3] @ np.array([0.0, 0.0, TOOL_LENGTH_M / 2])
    p.resetBasePositionAndOrientation(
        body, (centre + base_from_flange[:3, 3]).tolist(),
        quat_xyzw_from_matrix(base_from_flange[:3, :3]), physicsClientId=client_id)


def add_spatula(client_id: int, robot_id: int, flange_link: int,
                base_from_flange: np.ndarray) -> int:
    """Add the spatula (a shaft drawn, a blade that collides) fixed to the flange."""
    half = BLADE_HALF_EXTENTS_M
    shaft_length = TOOL_LENGTH_M - 2 * half[2]
    # Body frame at the blade centre; the shaft rises from the blade to the flange.
    visual = p.createVisualShapeArray(
        [p.GEOM_BOX, p.GEOM_CYLINDER], halfExtents=[half, (0, 0, 0)],
        radii=[0.0, 0.008], lengths=[0.0, shaft_length],
        visualFramePositions=[(0, 0, 0), (0, 0, -(half[2] + shaft_length / 2))],
        rgbaColors=[TOOL_RGBA, TOOL_RGBA], physicsClientId=client_id)
    collision = p.createCollisionShape(p.GEOM_BOX, halfExtents=half, physicsClientId=client_id)
    centre = base_from_flange[:3, :3] @ np.array([0.0, 0.0, TOOL_LENGTH_M - half[2]])
    quat = quat_xyzw_from_matrix(base_from_flange[:3, :3])
    blade = p.createMultiBody(BLADE_MASS_KG, collision, visual,
                              (centre + base_from_flange[:3, 3]).tolist(), quat,
                              physicsClientId=client_id)
    for link in range(-1, p.getNumJoints(robot_id, physicsClientId=client_id)):
        p.setCollisionFilterPair(robot_id, blade, link, -1, 0, physicsClientId=client_id)
    # Constraint frames are relative to the centres of mass (the flange link's and the blade's).
    flange_com = p.getLinkState(robot_id, flange_link, computeForwardKinematics=True,
                                physicsClientId=client_id)[:2]
    inverse = p.invertTransform(*flange_com)
    position, orientation = p.getBasePositionAndOrientation(blade, physicsClientId=client_id)
    rel_position, rel_orientation = p.multiplyTransforms(*inverse, position, orientation)
    constraint = p.createConstraint(robot_id, flange_link, blade, -1, p.JOINT_FIXED, (0, 0, 0),
                                    rel_position, (0, 0, 0), rel_orientation,
                                    physicsClientId=client_id)
    p.changeConstraint(constraint, maxForce=BLADE_HOLD_FORCE_N, physicsClientId=client_id)
    return blade
