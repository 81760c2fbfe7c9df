"""The simulated front camera: a pinhole with known intrinsics and pose, and its calibration file.

The camera stands across the table from the xArm and looks back at it 50 degrees down, framed so
the 256x128 model frame shows the whole workspace the way VIMA's front view does (robot side at
the top, +y to the right), while the robot base and its home pose stay above the top edge: the
policy never sees the arm (llara-spec section 7). Because the pose and intrinsics are known
exactly, `calibration()` is an ordinary pinhole calibration file and the executor maps model
points to robot points through the same code as on the real robot.
"""
from dataclasses import dataclass

import numpy as np
import pybullet as p

from llara_policy.errors import SimError
from llara_policy.geometry.calibration import Calibration, pinhole_calibration
from llara_policy.geometry.preprocessing import FramePreprocess
from llara_policy.geometry.transforms import CameraIntrinsics, RigidTransform
from llara_policy.types import MODEL_FRAME_HEIGHT_PX, MODEL_FRAME_WIDTH_PX

# Design values of the sim camera, found by a search over distance, tilt, aim point and focal
# length: the workspace corners land on columns 2..253 and rows 27..116 of the 256x128 frame
# (VIMA's front view puts them on columns 3..254, rows 34..123), and the top edge of the frame
# meets the table at x = 0.087 m, in front of the robot base (radius about 0.07 m).
FRONT_CAMERA_TARGET_M = (0.335, 0.0, 0.0)
FRONT_CAMERA_EYE_M = (1.10634, 0.0, 0.91925)  # 1.2 m from the target, 50 degrees up
FRONT_CAMERA_FOCAL_PX = 457.5  # at 256x128
# Clip planes of the OpenGL projection: nothing of interest is nearer than 0.1 m or beyond 5 m.
NEAR_M = 0.1
FAR_M = 5.0
SIM_CAMERA_ID = 'sim_front'
# Direction towards the light (base frame): above, slightly behind the camera, the same for both
# renderers so their images match as closely as they can.
LIGHT_DIRECTION = (0.6, 0.2, 1.0)
SIM_CAMERA_FRAME = 'sim_front_optical_frame'


@dataclass(frozen=True)
class SimCamera:
    """A pinhole camera in the sim: intrinsics plus the pose of its optical frame in the base."""

    intrinsics: CameraIntrinsics
    base_from_camera: RigidTransform

    def view_matrix(self) -> list[float]:
        """OpenGL view matrix (column-major 16 floats): base -> camera with y up, z back."""
        gl_from_optical = np.diag([1.0, -1.0, -1.0, 1.0])
        view = gl_from_optical @ self.base_from_camera.inverse().matrix()
        return view.T.reshape(-1).tolist()

    def projection_matrix(self) -> list[float]:
        """OpenGL frustum matching the intrinsics: pixel u spans [-0.5, W - 0.5], centres at u."""
        k = self.intrinsics
        left = (-0.5 - k.cx_px) / k.fx_px * NEAR_M
        right = (k.width_px - 0.5 - k.cx_px) / k.fx_px * NEAR_M
        top = (k.cy_px + 0.5) / k.fy_px * NEAR_M
        bottom = -(k.height_px - 0.5 - k.cy_px) / k.fy_px * NEAR_M
        return list(p.computeProjectionMatrix(left, right, bottom, top, NEAR_M, FAR_M))

    def scaled(self, width_px: int, height_px: int) -> 'SimCamera':
        """Return this camera with another image size, keeping its centre and the model view.

        The model frame stays the centred 2:1 crop of the new image (FramePreprocess
        .centered_crop), as for a real camera whose frames are cropped and resized.
        """
        crop = FramePreprocess.centered_crop(width_px, height_px)
        left, top, crop_width, crop_height = crop.crop_box_px
        k = self.intrinsics
        scale = crop_width / k.width_px
        if abs(crop_height / k.height_px - scale) > 1e-9:
            raise SimError(f'cannot scale a {k.width_px}x{k.height_px} camera to {width_px}x'
                           f'{height_px} without distortion')
        # Model pixel u maps to camera pixel left + (u + 0.5) * scale - 0.5 (preprocessing's
        # pixel-centre convention), so the principal point moves the same way.
        intrinsics = CameraIntrinsics(
            width_px, height_px, k.fx_px * scale, k.fy_px * scale,
            left + (k.cx_px + 0.5) * scale - 0.5, top + (k.cy_px + 0.5) * scale - 0.5)
        return SimCamera(intrinsics, self.base_from_camera)

    def calibration(self) -> Calibration:
        """Return the exact pinhole calibration of this camera (table plane z = 0)."""
        return pinhole_calibration(
            SIM_CAMERA_ID, self.intrinsics, self.base_from_camera, table_z_m=0.0,
            camera_frame=SIM_CAMERA_FRAME, method='simulator: known intrinsics and pose')

    def preprocess(self) -> FramePreprocess:
        """How this camera's images become the model frame (the centred 2:1 crop, resized)."""
        return FramePreprocess.centered_crop(self.intrinsics.width_px, self.intrinsics.height_px)


def front_camera() -> SimCamera:
    """Return the sim's front camera at the model frame size (256x128): the policy's view."""
    intrinsics = CameraIntrinsics(
        MODEL_FRAME_WIDTH_PX, MODEL_FRAME_HEIGHT_PX, FRONT_CAMERA_FOCAL_PX,
        FRONT_CAMERA_FOCAL_PX, (MODEL_FRAME_WIDTH_PX - 1) / 2.0,
        (MODEL_FRAME_HEIGHT_PX - 1) / 2.0)
    return SimCamera(intrinsics, RigidTransform.look_at(FRONT_CAMERA_EYE_M,
                                                         FRONT_CAMERA_TARGET_M))


def render(client_id: int, camera: SimCamera, renderer: int,
           shadows: bool) -> tuple[np.ndarray, np.ndarray]:
    """Render (rgb (H, W, 3) uint8, segmentation (H, W) int32 body ids, -1 for none).

    The EGL renderer draws shadows whatever the flag says (once warmed up, see SimWorld), so
    it is asked for them explicitly; TinyRenderer is not. The light comes from above the
    camera side, so the arm at home casts its shadow behind the view's top edge.
    """
    k = camera.intrinsics
    _, _, rgba, _, segm = p.getCameraImage(
        k.width_px, k.height_px, camera.view_matrix(), camera.projection_matrix(),
        shadow=int(shadows), lightDirection=LIGHT_DIRECTION, renderer=renderer,
        physicsClientId=client_id)
    rgb = np.asarray(rgba, dtype=np.uint8).reshape(k.height_px, k.width_px, 4)[:, :, :3]
    segm = np.asarray(segm, dtype=np.int32).reshape(k.height_px, k.width_px)
    return np.ascontiguousarray(rgb), segm
