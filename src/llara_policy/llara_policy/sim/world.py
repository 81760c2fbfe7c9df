"""One simulated table set-up: a pybullet client with a table, an xArm6 + suction cup, objects.

Each `SimWorld` owns its own pybullet client (every call passes `physicsClientId`), so several
worlds run side by side in one process without touching each other. `reset` rebuilds the world
from nothing (`resetSimulation`), which makes a scene depend only on what is added after it:
same seed, same scene, same pixels. Rendering uses the EGL plugin when it loads (it must be
loaded before any URDF, feasibility.md section 5) and pybullet's TinyRenderer otherwise.
"""
import contextlib
from dataclasses import dataclass
import math
import os
from pathlib import Path
import pkgutil
import sys

import numpy as np
import pybullet as p
import pybullet_data

from llara_policy.arms.primitives import HOME_XYZ_MM
from llara_policy.errors import SimError
from llara_policy.sim.camera import SimCamera, front_camera, render
from llara_policy.sim.kinematics import (
    XARM6_URDF,
    ArmKinematics,
    load_joint_specs,
    rotation_from_rpy,
)
from llara_policy.sim.meshes import grid_file, mesh_file
from llara_policy.sim.objects import Colour, Role, ShapeKind
from llara_policy.sim.tools import TOOL_LENGTH_M, add_spatula, add_suction_cup, place_on_flange
from llara_policy.types import Effector

# pybullet's default step (240 Hz), the rate VIMA-Bench and ravens simulate at.
TIME_STEP_S = 1.0 / 240.0
# Home: the primitives' home pose (arms.primitives.HOME_XYZ_MM), in metres. The whole arm is
# then above the top edge of the front camera's view (sim/camera.py): frames never show it.
HOME_TCP_M = tuple(v / 1000.0 for v in HOME_XYZ_MM)
# Table top at z = 0 (the robot stands on it); a slab large enough to fill the camera's view.
TABLE_CENTRE_M = (0.3, 0.0)
TABLE_HALF_EXTENTS_M = (0.55, 0.75, 0.02)
TABLE_RGBA = (0.80, 0.74, 0.64, 1.0)
TABLE_GRID_CELLS = 24  # the table top is drawn as a grid (see meshes.grid_file)
# Contact properties of every object and the table, and the mass of a dragged object.
FRICTION = 0.8
DRAGGED_MASS_KG = 0.05


# Clients rendering with the EGL plugin. pybullet's EGL plugin keeps one GL context per process
# current: with two plugin instances the first client's frames come out wrong (measured: whole
# frames of misplaced meshes), so only one world per process may use it.
_egl_users: set[int] = set()


@contextlib.contextmanager
def _quiet_stdout():
    """Silence C-level stdout/stderr (the EGL plugin prints its GL vendor strings there)."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with open(os.devnull, 'w') as devnull:
        os.dup2(devnull.fileno(), 1)
        os.dup2(devnull.fileno(), 2)
    try:
        yield
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in saved:
            os.close(fd)


@dataclass(frozen=True)
class WorldConfig:
    """`renderer`: 'auto', 'egl' or 'tiny'.

    'auto' renders with EGL when its plugin loads and no other world of this process uses it,
    with TinyRenderer otherwise; the two renderers draw slightly different pixels, so compare
    frames across worlds only with one explicit renderer.

    `with_robot=False` makes a bare table (for rendering prompt reference images);
    `effector` is the tool on the flange (suction cup or spatula).
    """

    renderer: str = 'auto'
    with_robot: bool = True
    effector: Effector = Effector.SUCTION

    def __post_init__(self):
        if self.renderer not in ('auto', 'egl', 'tiny'):
            raise SimError(f"renderer must be 'auto', 'egl' or 'tiny', got {self.renderer!r}")


class SimWorld:
    """A pybullet client holding the table, the xArm6 (+ suction tool) and task objects."""

    def __init__(self, config: WorldConfig = WorldConfig()):
        self.config = config
        self.client_id = p.connect(p.DIRECT)
        self.uses_egl = False
        if config.renderer == 'egl' and _egl_users:
            raise SimError("another SimWorld in this process renders with EGL; pybullet's EGL "
                           'plugin supports one per process (use renderer="tiny" here)')
        if config.renderer in ('auto', 'egl') and not _egl_users:
            loader = pkgutil.get_loader('eglRenderer')
            with _quiet_stdout():
                plugin = p.loadPlugin(loader.get_filename(), '_eglRendererPlugin',
                                      physicsClientId=self.client_id) if loader else -1
            self.uses_egl = plugin >= 0
            if config.renderer == 'egl' and not self.uses_egl:
                raise SimError('the EGL renderer plugin did not load (no EGL on this machine?)')
            if self.uses_egl:
                _egl_users.add(self.client_id)
        urdf = Path(pybullet_data.getDataPath()) / XARM6_URDF
        self._urdf = str(urdf)
        self.joint_indices = tuple(range(1, 7))  # joint 0 is the fixed world joint
        self.flange_link = 6
        flange_from_tcp = np.eye(4)
        flange_from_tcp[2, 3] = TOOL_LENGTH_M
        self.kinematics = ArmKinematics(load_joint_specs(urdf), flange_from_tcp)
        home = np.eye(4)
        home[:3, :3] = rotation_from_rpy(math.pi, 0.0, 0.0)
        home[:3, 3] = HOME_TCP_M
        self.home_joints_rad = self.kinematics.solve(home, (0.0, -0.8, -0.5, 0.0, 1.3, 0.0))
        self.reset()
        if self.uses_egl:
            # The EGL renderer's first frames differ from later ones (its shadow map state):
            # warm it up so the first real frame already looks like every later one.
            for _ in range(2):
                self.render(front_camera())

    @property
    def renderer(self) -> int:
        """Return the pybullet renderer flag (the EGL plugin serves any flag once loaded)."""
        return p.ER_BULLET_HARDWARE_OPENGL if self.uses_egl else p.ER_TINY_RENDERER

    def reset(self) -> None:
        """Rebuild the world from nothing: table, arm at home, tool; no objects."""
        cid = self.client_id
        p.resetSimulation(physicsClientId=cid)
        p.setPhysicsEngineParameter(fixedTimeStep=TIME_STEP_S, deterministicOverlappingPairs=1,
                                    physicsClientId=cid)
        p.setGravity(0.0, 0.0, -9.81, physicsClientId=cid)
        table_shape = p.createCollisionShape(p.GEOM_BOX, halfExtents=TABLE_HALF_EXTENTS_M,
                                             physicsClientId=cid)
        table_visual = p.createVisualShape(
            p.GEOM_MESH, fileName=grid_file(*TABLE_HALF_EXTENTS_M[:2], TABLE_GRID_CELLS),
            rgbaColor=TABLE_RGBA, visualFramePosition=(0.0, 0.0, TABLE_HALF_EXTENTS_M[2]),
            physicsClientId=cid)
        self.table_id = p.createMultiBody(
            0.0, table_shape, table_visual,
            (*TABLE_CENTRE_M, -TABLE_HALF_EXTENTS_M[2]), physicsClientId=cid)
        p.changeDynamics(self.table_id, -1, lateralFriction=FRICTION, physicsClientId=cid)
        self.objects: dict[int, ShapeKind] = {}
        self.robot_id = self.tool_id = -1
        if not self.config.with_robot:
            return
        self.robot_id = p.loadURDF(self._urdf, (0, 0, 0), useFixedBase=True,
                                   physicsClientId=cid)
        self.set_arm_joints(self.home_joints_rad)
        if self.config.effector is Effector.SPATULA:
            self.tool_id = add_spatula(cid, self.robot_id, self.flange_link, self._flange_pose())
        else:
            self.tool_id = add_suction_cup(cid)

    def close(self) -> None:
        """Disconnect the client (the world is unusable afterwards)."""
        if self.client_id >= 0:
            with _quiet_stdout():  # the EGL plugin says goodbye on stdout
                p.disconnect(physicsClientId=self.client_id)
            _egl_users.discard(self.client_id)
            self.client_id = -1

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ---- arm ---------------------------------------------------------------------------------

    def set_arm_joints(self, joints_rad, velocities_rad_s=None) -> None:
        """Place the arm at joint angles (kinematically; contacts see the given velocities)."""
        velocities = np.zeros(6) if velocities_rad_s is None else velocities_rad_s
        for index, angle, speed in zip(self.joint_indices, joints_rad, velocities, strict=True):
            p.resetJointState(self.robot_id, index, float(angle), float(speed),
                              physicsClientId=self.client_id)

    def arm_joints(self) -> np.ndarray:
        """Return the current joint angles (6,)."""
        states = p.getJointStates(self.robot_id, self.joint_indices,
                                  physicsClientId=self.client_id)
        return np.array([s[0] for s in states])

    def _flange_pose(self) -> np.ndarray:
        """Return base_from_flange (4, 4) of the current joint angles."""
        return self.kinematics.tcp_pose(self.arm_joints()) @ np.linalg.inv(
            self.kinematics.flange_from_tcp)

    # ---- objects -----------------------------------------------------------------------------

    def add_object(self, kind: ShapeKind, colour: Colour, position_m, yaw_rad: float) -> int:
        """Add a shape (dynamic if dragged, static if a base) with its bottom at position z.

        One rigid body whose collision shape is a compound of the convex pieces (each piece's
        OBJ file read as a convex hull); a single-link body keeps contacts cheap.
        """
        cid = self.client_id
        pieces = kind.pieces()
        bottom = min(piece.z_min_m for piece in pieces)
        visual = p.createVisualShape(
            p.GEOM_MESH, fileName=mesh_file(pieces, kind.footprint_m), rgbaColor=colour.rgba,
            physicsClientId=cid)
        collision = -1
        if kind.solid:
            collision = p.createCollisionShapeArray(
                [p.GEOM_MESH] * len(pieces),
                fileNames=[mesh_file((piece,), kind.footprint_m) for piece in pieces],
                physicsClientId=cid)
        mass = DRAGGED_MASS_KG if kind.role is Role.DRAGGED else 0.0
        position = (float(position_m[0]), float(position_m[1]), float(position_m[2]) - bottom)
        body = p.createMultiBody(mass, collision, visual, position,
                                 p.getQuaternionFromEuler((0.0, 0.0, yaw_rad)),
                                 physicsClientId=cid)
        p.changeDynamics(body, -1, lateralFriction=FRICTION, restitution=0.0,
                         physicsClientId=cid)
        self.objects[body] = kind
        return body

    def remove_object(self, body: int) -> None:
        """Remove an object from the world."""
        p.removeBody(body, physicsClientId=self.client_id)
        self.objects.pop(body, None)

    def object_pose(self, body: int) -> tuple[np.ndarray, float]:
        """Return (position (3,) metres, yaw radians) of an object's origin."""
        position, quat = p.getBasePositionAndOrientation(body, physicsClientId=self.client_id)
        return np.array(position), p.getEulerFromQuaternion(quat)[2]

    def set_object_pose(self, body: int, position_m, yaw_rad: float) -> None:
        """Teleport an object (scene construction only)."""
        p.resetBasePositionAndOrientation(
            body, [float(v) for v in position_m], p.getQuaternionFromEuler((0, 0, yaw_rad)),
            physicsClientId=self.client_id)

    def surface_height(self, xy_m, radius_m: float = 0.0, exclude=()) -> float:
        """Return the highest surface (m) under a disc at `xy_m`; 0 for the bare table.

        Rays go down the centre and 8 points at half the radius; bodies in `exclude`, the arm
        and the tool are ignored.
        """
        starts, ends = [], []
        offsets = [(0.0, 0.0)] + [(0.5 * radius_m * math.cos(a), 0.5 * radius_m * math.sin(a))
                                  for a in np.linspace(0, 2 * math.pi, 8, endpoint=False)]
        for dx, dy in offsets:
            starts.append((xy_m[0] + dx, xy_m[1] + dy, 0.5))
            ends.append((xy_m[0] + dx, xy_m[1] + dy, -0.01))
        skip = {*exclude, self.robot_id, self.tool_id}
        height = 0.0
        for body, _, _, position, _ in p.rayTestBatch(starts, ends,
                                                             physicsClientId=self.client_id):
            if body >= 0 and body not in skip and body != self.table_id:
                height = max(height, position[2])
        return height

    def top_body(self, xy_m) -> int:
        """Return the topmost object at a table point seen from above (-1: none)."""
        body = p.rayTest((xy_m[0], xy_m[1], 0.5), (xy_m[0], xy_m[1], -0.01),
                         physicsClientId=self.client_id)[0][0]
        return body if body in self.objects else -1

    # ---- time and images ---------------------------------------------------------------------

    def step(self, steps: int = 1) -> None:
        """Advance the physics by `steps` ticks of TIME_STEP_S."""
        for _ in range(steps):
            p.stepSimulation(physicsClientId=self.client_id)

    def settle(self, max_steps: int = 480, speed_tolerance_m_s: float = 1e-3) -> int:
        """Step until every dynamic object is at rest (or max_steps); return the steps taken."""
        for taken in range(1, max_steps + 1):
            p.stepSimulation(physicsClientId=self.client_id)
            if taken % 8 == 0 and self._at_rest(speed_tolerance_m_s):
                return taken
        return max_steps

    def _at_rest(self, tolerance: float) -> bool:
        for body in self.objects:
            linear, angular = p.getBaseVelocity(body, physicsClientId=self.client_id)
            if max(map(abs, linear)) > tolerance or max(map(abs, angular)) > 20 * tolerance:
                return False
        return True

    def render(self, camera: SimCamera) -> tuple[np.ndarray, np.ndarray]:
        """Render (rgb (H, W, 3) uint8, segmentation (H, W) int32 of body ids, -1 none)."""
        if self.robot_id >= 0 and self.config.effector is Effector.SUCTION:
            # The cup is only drawn: bring the drawing to the flange.
            place_on_flange(self.client_id, self.tool_id, self._flange_pose())
        if not self.uses_egl:
            return render(self.client_id, camera, self.renderer, shadows=False)
        with _quiet_stdout():  # the EGL plugin prints GL vendor lines on new contexts
            return render(self.client_id, camera, self.renderer, shadows=True)
