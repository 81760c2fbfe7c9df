"""xArm6 forward and inverse kinematics in numpy, read from the URDF pybullet_data ships.

pybullet's own `calculateInverseKinematics` leaves millimetre-level residuals on this arm (and
more without null-space hints), too coarse for a suction cup that must stop a few millimetres
above an object. A damped least-squares solver on the URDF chain converges to micrometres in a
few iterations from the current joint angles, and the same chain gives the TCP pose for
`get_position`. Lengths are metres, angles radians.
"""
from dataclasses import dataclass
import math
from pathlib import Path
import xml.etree.ElementTree as ElementTree

import numpy as np

from llara_policy.errors import SimError

# URDF of the xArm6 in pybullet_data (feasibility.md section 5): base link `link_base`, six
# revolute joints about their local z axes, flange link `link6`.
XARM6_URDF = 'xarm/xarm6_robot.urdf'
XARM6_JOINTS = ('joint1', 'joint2', 'joint3', 'joint4', 'joint5', 'joint6')
# Solver settings: stop when the TCP is within 1 um and 1e-5 rad of the target; damping keeps
# steps bounded near singularities. 60 iterations are far more than the 3-8 a nearby seed needs.
_POSITION_TOLERANCE_M = 1e-6
_ANGLE_TOLERANCE_RAD = 1e-5
_DAMPING = 1e-3
_MAX_ITERATIONS = 60


def rotation_from_rpy(roll: float, pitch: float, yaw: float) -> np.ndarray:
    """Return R = Rz(yaw) Ry(pitch) Rx(roll): URDF's fixed-axis rpy and the xArm SDK's."""
    cr, sr = math.cos(roll), math.sin(roll)
    cp, sp = math.cos(pitch), math.sin(pitch)
    cy, sy = math.cos(yaw), math.sin(yaw)
    return np.array([
        [cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr],
        [sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr],
        [-sp, cp * sr, cp * cr],
    ])


def rpy_from_rotation(rotation: np.ndarray) -> tuple[float, float, float]:
    """Inverse of rotation_from_rpy, pitch in [-pi/2, pi/2] (the xArm SDK's convention)."""
    r = np.asarray(rotation)
    pitch = math.asin(max(-1.0, min(1.0, -r[2, 0])))
    if abs(r[2, 0]) < 1.0 - 1e-9:
        return math.atan2(r[2, 1], r[2, 2]), pitch, math.atan2(r[1, 0], r[0, 0])
    # Gimbal lock: only roll - yaw (or roll + yaw) is defined; report yaw = 0.
    return math.atan2(-r[1, 2], r[1, 1]), pitch, 0.0


def _rotation_error(target: np.ndarray, current: np.ndarray) -> np.ndarray:
    """Axis-angle vector (3,) of target @ current.T, in the base frame."""
    delta = target @ current.T
    cos_angle = max(-1.0, min(1.0, (np.trace(delta) - 1.0) / 2.0))
    angle = math.acos(cos_angle)
    axis = np.array([delta[2, 1] - delta[1, 2], delta[0, 2] - delta[2, 0],
                     delta[1, 0] - delta[0, 1]])
    if angle < 1e-9:
        return 0.5 * axis
    if math.pi - angle < 1e-6:
        # Half a turn: sin(angle) ~ 0, take the axis from the symmetric part.
        column = np.argmax(np.diag(delta))
        axis = (delta[:, column] + np.eye(3)[column]) / math.sqrt(2.0 * (1.0 + delta[column,
                                                                                        column]))
        return angle * axis / np.linalg.norm(axis)
    return angle * axis / (2.0 * math.sin(angle))


@dataclass(frozen=True)
class JointSpec:
    """One revolute joint: fixed transform from the parent link, then a turn about local z."""

    name: str
    parent_from_joint: np.ndarray  # (4, 4)
    lower_rad: float
    upper_rad: float


def _origin_matrix(element) -> np.ndarray:
    origin = element.find('origin')
    xyz = [float(v) for v in origin.get('xyz', '0 0 0').split()]
    rpy = [float(v) for v in origin.get('rpy', '0 0 0').split()]
    matrix = np.eye(4)
    matrix[:3, :3] = rotation_from_rpy(*rpy)
    matrix[:3, 3] = xyz
    return matrix


def load_joint_specs(urdf_path: Path) -> tuple[JointSpec, ...]:
    """Read the six revolute joints of the xArm6 URDF, in chain order."""
    root = ElementTree.parse(urdf_path).getroot()
    joints = {j.get('name'): j for j in root.findall('joint')}
    specs = []
    for name in XARM6_JOINTS:
        if name not in joints:
            raise SimError(f'{urdf_path} has no joint {name!r}')
        joint = joints[name]
        axis = [float(v) for v in joint.find('axis').get('xyz').split()]
        if axis != [0.0, 0.0, 1.0]:
            raise SimError(f'{name}: expected a z axis, got {axis}')
        limit = joint.find('limit')
        specs.append(JointSpec(name, _origin_matrix(joint), float(limit.get('lower')),
                               float(limit.get('upper'))))
    return tuple(specs)


@dataclass(frozen=True)
class ArmKinematics:
    """Kinematic chain base -> flange (`link6`) -> TCP, with `flange_from_tcp` the tool offset."""

    joints: tuple[JointSpec, ...]
    flange_from_tcp: np.ndarray  # (4, 4)

    @property
    def lower_rad(self) -> np.ndarray:
        """Return the lower joint limits (6,)."""
        return np.array([j.lower_rad for j in self.joints])

    @property
    def upper_rad(self) -> np.ndarray:
        """Return the upper joint limits (6,)."""
        return np.array([j.upper_rad for j in self.joints])

    def _frames(self, joints_rad) -> tuple[list[np.ndarray], np.ndarray]:
        """Joint frames (after each fixed origin, before its turn) and the TCP pose, base frame."""
        pose = np.eye(4)
        frames = []
        for spec, angle in zip(self.joints, joints_rad, strict=True):
            pose = pose @ spec.parent_from_joint
            frames.append(pose)
            # pose @ Rz(angle), which only mixes the first two columns.
            c, s = math.cos(angle), math.sin(angle)
            turned = pose.copy()
            turned[:, 0] = c * pose[:, 0] + s * pose[:, 1]
            turned[:, 1] = c * pose[:, 1] - s * pose[:, 0]
            pose = turned
        return frames, pose @ self.flange_from_tcp

    def tcp_pose(self, joints_rad) -> np.ndarray:
        """Return base_from_tcp (4, 4) for joint angles (6,)."""
        return self._frames(joints_rad)[1]

    def solve(self, base_from_tcp: np.ndarray, seed_rad) -> np.ndarray:
        """Return joint angles (6,) reaching the TCP pose, starting from `seed_rad`.

        Raises SimError when the pose is out of reach or needs angles past the joint limits.
        """
        lower, upper = self.lower_rad, self.upper_rad
        q = np.clip(np.asarray(seed_rad, dtype=float), lower, upper)
        target_p, target_r = base_from_tcp[:3, 3], base_from_tcp[:3, :3]
        jacobian = np.empty((6, 6))
        damping = _DAMPING ** 2 * np.eye(6)
        for _ in range(_MAX_ITERATIONS):
            frames, tcp = self._frames(q)
            position_error = target_p - tcp[:3, 3]
            angle_error = _rotation_error(target_r, tcp[:3, :3])
            if (math.sqrt(position_error @ position_error) < _POSITION_TOLERANCE_M
                    and math.sqrt(angle_error @ angle_error) < _ANGLE_TOLERANCE_RAD):
                return q
            tx, ty, tz = tcp[:3, 3]
            for i, frame in enumerate(frames):
                ax, ay, az = frame[0, 2], frame[1, 2], frame[2, 2]
                dx, dy, dz = tx - frame[0, 3], ty - frame[1, 3], tz - frame[2, 3]
                jacobian[:3, i] = (ay * dz - az * dy, az * dx - ax * dz, ax * dy - ay * dx)
                jacobian[3:, i] = (ax, ay, az)
            error = np.concatenate([position_error, angle_error])
            step = jacobian.T @ np.linalg.solve(jacobian @ jacobian.T + damping, error)
            q = np.clip(q + step, lower, upper)
        raise SimError(
            f'no joint solution within limits for TCP {np.round(target_p, 4).tolist()} m '
            f'(residual {np.linalg.norm(position_error) * 1000:.2f} mm, '
            f'{math.degrees(np.linalg.norm(angle_error)):.3f} deg)')


def _rodrigues(rotation_vector: np.ndarray) -> np.ndarray:
    angle = float(np.linalg.norm(rotation_vector))
    if angle < 1e-12:
        return np.eye(3)
    k = rotation_vector / angle
    cross = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + math.sin(angle) * cross + (1 - math.cos(angle)) * cross @ cross


def interpolate_pose(start: np.ndarray, target: np.ndarray, fraction: float) -> np.ndarray:
    """Return the pose `fraction` of the way along the straight line and shortest turn."""
    pose = np.eye(4)
    pose[:3, 3] = start[:3, 3] + fraction * (target[:3, 3] - start[:3, 3])
    turn = _rotation_error(target[:3, :3], start[:3, :3])
    pose[:3, :3] = _rodrigues(fraction * turn) @ start[:3, :3]
    return pose


# A larger joint change between two waypoints a centimetre apart means the solver jumped to
# another branch (e.g. a wrist flip): the arm would not move along the line.
_MAX_JOINT_STEP_RAD = 0.5


def cartesian_path(kinematics: ArmKinematics, seed_rad, start: np.ndarray, target: np.ndarray,
                   step_m: float, step_rad: float) -> np.ndarray:
    """Return joint waypoints (N + 1, 6) for a straight TCP line from `start` to `target`.

    Waypoints lie at most `step_m` and `step_rad` apart; each is solved from the previous one,
    so the arm keeps its configuration. Raises SimError if any waypoint is out of reach.
    """
    distance = float(np.linalg.norm(target[:3, 3] - start[:3, 3]))
    angle = float(np.linalg.norm(_rotation_error(target[:3, :3], start[:3, :3])))
    count = max(1, math.ceil(distance / step_m), math.ceil(angle / step_rad))
    path = [np.asarray(seed_rad, dtype=float)]
    for index in range(1, count + 1):
        joints = kinematics.solve(interpolate_pose(start, target, index / count), path[-1])
        if np.max(np.abs(joints - path[-1])) > _MAX_JOINT_STEP_RAD:
            raise SimError('the straight-line path needs a joint flip (near a singularity)')
        path.append(joints)
    return np.array(path)
