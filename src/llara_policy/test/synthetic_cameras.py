"""Hypothesis strategies for synthetic cameras looking at a table (shared by geometry tests)."""
import math

from hypothesis import strategies as st
import numpy as np

from llara_policy.geometry.transforms import CameraIntrinsics, PinholeCamera, RigidTransform

TABLE_Z_M = 0.02


@st.composite
def intrinsics(draw, distorted: bool = True) -> CameraIntrinsics:
    """Random pinhole intrinsics; distortion mild enough to stay monotonic over the image."""
    width = draw(st.integers(320, 1920))
    height = draw(st.integers(240, min(width, 1200)))
    fx = draw(st.floats(0.8, 1.6)) * width
    fy = fx * draw(st.floats(0.97, 1.03))
    cx = (width - 1) / 2 + draw(st.floats(-0.05, 0.05)) * width
    cy = (height - 1) / 2 + draw(st.floats(-0.05, 0.05)) * height
    distortion = (0.0,) * 5
    if distorted:
        distortion = (draw(st.floats(-0.1, 0.1)), draw(st.floats(-0.05, 0.05)),
                      draw(st.floats(-1e-3, 1e-3)), draw(st.floats(-1e-3, 1e-3)),
                      draw(st.floats(-0.01, 0.01)))
    return CameraIntrinsics(width, height, fx, fy, cx, cy, distortion)


@st.composite
def table_poses(draw) -> RigidTransform:
    """`base_from_camera` of a camera 0.4-1.5 m from a table point, tilted up to 40 degrees."""
    target = np.array([draw(st.floats(0.2, 0.6)), draw(st.floats(-0.3, 0.3)), TABLE_Z_M])
    tilt = math.radians(draw(st.floats(0.0, 40.0)))
    azimuth = math.radians(draw(st.floats(0.0, 360.0)))
    distance = draw(st.floats(0.4, 1.5))
    eye = target + distance * np.array(
        [math.sin(tilt) * math.cos(azimuth), math.sin(tilt) * math.sin(azimuth), math.cos(tilt)])
    # A horizontal up is never parallel to a view at most 40 degrees from vertical, and the
    # inner image (half-diagonal field <= 32 degrees at f >= 0.8 width) stays below the horizon.
    roll = math.radians(draw(st.floats(0.0, 360.0)))
    return RigidTransform.look_at(eye, target, up=(math.cos(roll), math.sin(roll), 0.0))


@st.composite
def cameras(draw, distorted: bool = True) -> PinholeCamera:
    """A random calibrated camera above the table."""
    return PinholeCamera(draw(intrinsics(distorted)), draw(table_poses()))


def inner_pixels(camera: PinholeCamera, fractions) -> np.ndarray:
    """Pixels at (fx, fy) fractions of the central 80 % of the image, (N, 2)."""
    size = np.array([camera.intrinsics.width_px - 1, camera.intrinsics.height_px - 1])
    return (0.1 + 0.8 * np.asarray(fractions, dtype=float)) * size


fractions = st.tuples(st.floats(0.0, 1.0), st.floats(0.0, 1.0))


def straight_down_camera(yaw_rad: float, centre_xy=(0.4, 0.0), height_m: float = 1.0,
                         width_px: int = 640, height_px: int = 480) -> PinholeCamera:
    """A camera looking straight down, its image +u axis along base yaw `yaw_rad`."""
    right = np.array([math.cos(yaw_rad), math.sin(yaw_rad), 0.0])
    down = np.array([math.sin(yaw_rad), -math.cos(yaw_rad), 0.0])
    rotation = np.column_stack([right, down, [0.0, 0.0, -1.0]])
    pose = RigidTransform.from_rotation(rotation, (*centre_xy, TABLE_Z_M + height_m))
    intr = CameraIntrinsics(width_px, height_px, 500.0, 500.0, (width_px - 1) / 2,
                            (height_px - 1) / 2)
    return PinholeCamera(intr, pose)
