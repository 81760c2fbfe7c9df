"""Image preprocessing for the model and its exact inverse on points.

The model frame is a preprocessed view of the camera image (crop, then resize to e.g. 256x128);
LLaVA-1.5 then pads it to a square with CLIP's mean colour and resizes it to the vision tower's
336x336. The executor must undo both on the model's points, so each image operation here comes
with the point maps that match it exactly.

Resize convention (OpenCV's `cv2.resize` and PIL's): pixel centres map onto pixel centres,
u_out = (u_in + 0.5) * scale - 0.5 with scale = out_size / in_size, where pixel coordinates are
integers at pixel centres. Model points follow LLaRA: x_norm = u / width, y_norm = v / height.
"""
from dataclasses import dataclass

import cv2
import numpy as np

from llara_policy.errors import ProjectionError, ValueRangeError
from llara_policy.geometry.transforms import as_points
from llara_policy.types import MODEL_FRAME_HEIGHT_PX, MODEL_FRAME_WIDTH_PX, ImagePoint, check_int

# CLIP's image mean (openai/clip-vit-large-patch14-336 preprocessor config). LLaVA-1.5's
# expand2square fills with tuple(int(m * 255)) of it (haotian-liu/LLaVA llava/mm_utils.py).
CLIP_MEAN_RGB = (0.48145466, 0.4578275, 0.40821073)
CLIP_MEAN_FILL_RGB = tuple(int(m * 255) for m in CLIP_MEAN_RGB)  # (122, 116, 104)
CLIP_STD_RGB = (0.26862954, 0.26130258, 0.27577711)
# Input size of LLaVA-1.5's vision tower, CLIP ViT-L/14 at 336 px (llara-spec section 6.1).
VISION_TOWER_SIZE_PX = 336


def _check_image(image: np.ndarray, width_px: int, height_px: int, name: str) -> None:
    if not isinstance(image, np.ndarray) or image.ndim not in (2, 3):
        raise ValueRangeError(f'{name} must be an (H, W) or (H, W, C) array')
    if image.shape[:2] != (height_px, width_px):
        raise ValueRangeError(f'{name} must be {width_px}x{height_px} (W x H), '
                              f'got {image.shape[1]}x{image.shape[0]}')


def resize_image(image: np.ndarray, width_px: int, height_px: int) -> np.ndarray:
    """Resize with the pixel-centre convention: area averaging to shrink, bilinear otherwise."""
    if image.shape[1] == width_px and image.shape[0] == height_px:
        return image.copy()
    shrinking = width_px <= image.shape[1] and height_px <= image.shape[0]
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return cv2.resize(image, (width_px, height_px), interpolation=interpolation)


def _scale_pixels(pixels: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Map pixel centres onto pixel centres; an exact copy where the scale is 1."""
    return np.where(scale == 1.0, pixels, (pixels + 0.5) * scale - 0.5)


@dataclass(frozen=True)
class FramePreprocess:
    """Camera image -> model frame: crop `crop_box_px` (left, top, width, height), then resize.

    Build with `full_frame` (no crop), `centered_crop` (largest centred box with the model's
    aspect ratio, so nothing is stretched) or an explicit box.
    """

    camera_width_px: int
    camera_height_px: int
    crop_box_px: tuple[int, int, int, int]
    model_width_px: int = MODEL_FRAME_WIDTH_PX
    model_height_px: int = MODEL_FRAME_HEIGHT_PX

    def __post_init__(self):
        for name in ('camera_width_px', 'camera_height_px', 'model_width_px', 'model_height_px'):
            object.__setattr__(self, name, check_int(name, getattr(self, name), 1))
        box = tuple(self.crop_box_px)
        if len(box) != 4:
            raise ValueRangeError(f'crop_box_px must be 4 integers, got {self.crop_box_px!r}')
        left, top, width, height = (check_int(f'crop_box_px[{i}]', v) for i, v in enumerate(box))
        if (left < 0 or top < 0 or width <= 0 or height <= 0
                or left + width > self.camera_width_px or top + height > self.camera_height_px):
            raise ValueRangeError(
                f'crop_box_px (left, top, width, height) = {box} must lie inside the '
                f'{self.camera_width_px}x{self.camera_height_px} camera image')
        object.__setattr__(self, 'crop_box_px', (left, top, width, height))

    @classmethod
    def full_frame(cls, camera_width_px: int, camera_height_px: int,
                   model_width_px: int = MODEL_FRAME_WIDTH_PX,
                   model_height_px: int = MODEL_FRAME_HEIGHT_PX) -> 'FramePreprocess':
        """Resize the whole camera image to the model frame (no crop)."""
        return cls(camera_width_px, camera_height_px, (0, 0, camera_width_px, camera_height_px),
                   model_width_px, model_height_px)

    @classmethod
    def centered_crop(cls, camera_width_px: int, camera_height_px: int,
                      model_width_px: int = MODEL_FRAME_WIDTH_PX,
                      model_height_px: int = MODEL_FRAME_HEIGHT_PX) -> 'FramePreprocess':
        """Crop the largest centred box with the model frame's aspect ratio, then resize."""
        check_int('model_width_px', model_width_px, 1)
        check_int('model_height_px', model_height_px, 1)
        width = min(camera_width_px, round(camera_height_px * model_width_px / model_height_px))
        height = min(camera_height_px, round(width * model_height_px / model_width_px))
        left, top = (camera_width_px - width) // 2, (camera_height_px - height) // 2
        return cls(camera_width_px, camera_height_px, (left, top, width, height),
                   model_width_px, model_height_px)

    def _scale(self) -> np.ndarray:
        _, _, width, height = self.crop_box_px
        return np.array([self.model_width_px / width, self.model_height_px / height])

    def apply(self, image: np.ndarray) -> np.ndarray:
        """Turn a camera image (H, W[, C]) into the model frame."""
        _check_image(image, self.camera_width_px, self.camera_height_px, 'camera image')
        left, top, width, height = self.crop_box_px
        crop = image[top:top + height, left:left + width]
        return resize_image(crop, self.model_width_px, self.model_height_px)

    def camera_to_model_pixels(self, pixel_uv) -> np.ndarray:
        """Map camera pixels (N, 2) to model-frame pixels (N, 2)."""
        pixels = as_points(pixel_uv, 2, 'pixel_uv') - np.array(self.crop_box_px[:2])
        return _scale_pixels(pixels, self._scale())

    def model_to_camera_pixels(self, pixel_uv) -> np.ndarray:
        """Map model-frame pixels (N, 2) to camera pixels (N, 2) (inverse of the above)."""
        pixels = _scale_pixels(as_points(pixel_uv, 2, 'pixel_uv'), 1.0 / self._scale())
        return pixels + np.array(self.crop_box_px[:2])

    def model_point_to_camera_pixel(self, point: ImagePoint) -> np.ndarray:
        """Map a normalized model point to a camera pixel (2,)."""
        model_pixel = (point.x_norm * self.model_width_px, point.y_norm * self.model_height_px)
        return self.model_to_camera_pixels(model_pixel)[0]

    def camera_pixel_to_model_point(self, pixel_uv) -> ImagePoint:
        """Map a camera pixel to a normalized model point; ProjectionError outside the frame."""
        u, v = self.camera_to_model_pixels(pixel_uv)[0]
        return _normalized_point(u, v, self.model_width_px, self.model_height_px, 'model frame',
                                 float(self._scale().max()))


def _normalized_point(u: float, v: float, width_px: int, height_px: int, where: str,
                      scale: float) -> ImagePoint:
    """Return (u / width, v / height) clipped to [0, 1]; ProjectionError if off the image.

    A source image covers [-0.5, size - 0.5] and its normalized points [0, size]; after a
    resize by `scale` (destination / source pixels) that edge slack becomes
    0.5 * max(1, scale) destination pixels. Points within it are clipped, others rejected.
    """
    slack = 0.5 * max(1.0, scale)
    if not (-slack <= u <= width_px + slack and -slack <= v <= height_px + slack):
        raise ProjectionError(
            f'pixel ({u:.3f}, {v:.3f}) lies outside the {width_px}x{height_px} {where}')
    return ImagePoint(float(np.clip(u / width_px, 0.0, 1.0)),
                      float(np.clip(v / height_px, 0.0, 1.0)))


@dataclass(frozen=True)
class SquarePad:
    """LLaVA-1.5 'pad' preprocessing: centre the frame on a square of CLIP's mean colour, resize.

    The frame sits at offset ((S - W) // 2, (S - H) // 2) on the S = max(W, H) square, as in
    LLaVA's expand2square; the square is then resized to `output_size_px`.
    """

    frame_width_px: int = MODEL_FRAME_WIDTH_PX
    frame_height_px: int = MODEL_FRAME_HEIGHT_PX
    output_size_px: int = VISION_TOWER_SIZE_PX
    fill_rgb: tuple[int, int, int] = CLIP_MEAN_FILL_RGB

    def __post_init__(self):
        for name in ('frame_width_px', 'frame_height_px', 'output_size_px'):
            object.__setattr__(self, name, check_int(name, getattr(self, name), 1))
        fill = tuple(self.fill_rgb)
        if len(fill) != 3:
            raise ValueRangeError(f'fill_rgb must be 3 integers in [0, 255], got {fill!r}')
        object.__setattr__(self, 'fill_rgb', tuple(
            check_int(f'fill_rgb[{i}]', c, 0, 255) for i, c in enumerate(fill)))

    @property
    def square_size_px(self) -> int:
        """Side of the padded square before the resize."""
        return max(self.frame_width_px, self.frame_height_px)

    @property
    def offset_px(self) -> tuple[int, int]:
        """(left, top) of the frame on the square (LLaVA expand2square's (max - min) // 2)."""
        size = self.square_size_px
        return (size - self.frame_width_px) // 2, (size - self.frame_height_px) // 2

    def pad(self, image: np.ndarray) -> np.ndarray:
        """Pad an (H, W, 3) frame to the S x S square (the image LLaVA hands to CLIP)."""
        _check_image(image, self.frame_width_px, self.frame_height_px, 'frame')
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueRangeError(f'frame must be (H, W, 3) RGB, got shape {image.shape}')
        size = self.square_size_px
        square = np.empty((size, size, 3), dtype=image.dtype)
        square[:] = np.array(self.fill_rgb, dtype=image.dtype)
        left, top = self.offset_px
        square[top:top + self.frame_height_px, left:left + self.frame_width_px] = image
        return square

    def apply(self, image: np.ndarray) -> np.ndarray:
        """Pad to the square and resize it to output_size_px x output_size_px."""
        return resize_image(self.pad(image), self.output_size_px, self.output_size_px)

    def frame_to_square_pixels(self, pixel_uv) -> np.ndarray:
        """Map frame pixels (N, 2) to pixels (N, 2) of the resized square."""
        pixels = as_points(pixel_uv, 2, 'pixel_uv') + np.array(self.offset_px)
        return _scale_pixels(pixels, np.full(2, self.output_size_px / self.square_size_px))

    def square_to_frame_pixels(self, pixel_uv) -> np.ndarray:
        """Map pixels (N, 2) of the resized square to frame pixels (N, 2)."""
        scale = np.full(2, self.square_size_px / self.output_size_px)
        return _scale_pixels(as_points(pixel_uv, 2, 'pixel_uv'), scale) - np.array(self.offset_px)

    def frame_point_to_square_point(self, point: ImagePoint) -> ImagePoint:
        """Map a normalized frame point to a normalized point of the resized square."""
        pixel = (point.x_norm * self.frame_width_px, point.y_norm * self.frame_height_px)
        u, v = self.frame_to_square_pixels(pixel)[0]
        return _normalized_point(u, v, self.output_size_px, self.output_size_px, 'square',
                                 self.output_size_px / self.square_size_px)

    def square_point_to_frame_point(self, point: ImagePoint) -> ImagePoint:
        """Map a normalized square point to the frame; ProjectionError if it is in the padding."""
        pixel = (point.x_norm * self.output_size_px, point.y_norm * self.output_size_px)
        u, v = self.square_to_frame_pixels(pixel)[0]
        return _normalized_point(u, v, self.frame_width_px, self.frame_height_px, 'frame',
                                 self.square_size_px / self.output_size_px)
