"""The policy's debug image: the model frame with its plan drawn on it (OpenCV).

Each step's pick point (green) and place point (red) joined by an arrow, its clockwise rotation
written next to the pick point, the instruction on top and the latency at the bottom. Small model
frames (VIMA's 256x128) are enlarged by a whole factor first so the text stays legible.
"""
from collections.abc import Sequence
import math
import re

import cv2
import numpy as np

from llara_policy.types import ActionStep

PICK_RGB = (0, 220, 0)
PLACE_RGB = (230, 30, 30)
TEXT_RGB = (255, 255, 255)
MIN_WIDTH_PX = 512
_FONT = cv2.FONT_HERSHEY_SIMPLEX
_PHRASE_TAGS = re.compile(r'</?p>')  # dropped from the drawn instruction, for legibility


def _pixel(x_norm: float, y_norm: float, width: int, height: int) -> tuple[int, int]:
    # Model points are u / width, v / height (types.py); clamp the 1.0 edge onto the image.
    return (min(int(round(x_norm * width)), width - 1), min(int(round(y_norm * height)),
                                                            height - 1))


def _text(image: np.ndarray, text: str, origin: tuple[int, int], scale: float) -> None:
    """White text on a darkened box, readable on any background.

    A box rather than a black outline: at small scales an outline as thick as the strokes
    swallows them and the text looks doubled (and a GIF's palette makes it worse).
    """
    (width, height), baseline = cv2.getTextSize(text, _FONT, scale, 1)
    x, y = origin
    top, bottom = max(y - height - 3, 0), min(y + baseline + 1, image.shape[0])
    left, right = max(x - 2, 0), min(x + width + 2, image.shape[1])
    box = image[top:bottom, left:right]
    box[:] = (box * 0.3).astype(np.uint8)
    cv2.putText(image, text, origin, _FONT, scale, TEXT_RGB, 1, cv2.LINE_AA)


def _fit(text: str, width: int, scale: float) -> str:
    """Cut `text` with '...' to fit `width` pixels."""
    if cv2.getTextSize(text, _FONT, scale, 1)[0][0] <= width:
        return text
    while text and cv2.getTextSize(text + '...', _FONT, scale, 1)[0][0] > width:
        text = text[:-1]
    return text + '...'


def _draw_step(image: np.ndarray, step: ActionStep, radius: int, scale: float) -> None:
    height, width = image.shape[:2]
    pick = _pixel(step.pick.x_norm, step.pick.y_norm, width, height)
    place = _pixel(step.place.x_norm, step.place.y_norm, width, height)
    if pick != place:
        length = math.dist(pick, place)
        cv2.arrowedLine(image, pick, place, (255, 255, 0), 2, cv2.LINE_AA,
                        tipLength=min(0.3, 3 * radius / length))
    cv2.circle(image, pick, radius, PICK_RGB, 2, cv2.LINE_AA)
    cv2.circle(image, place, radius, PLACE_RGB, 2, cv2.LINE_AA)
    if step.rotation_cw_deg:
        # The rotation as an arc from 12 o'clock, clockwise in the image for positive degrees.
        cv2.ellipse(image, place, (2 * radius, 2 * radius), -90, 0, step.rotation_cw_deg,
                    PLACE_RGB, 1, cv2.LINE_AA)
    label = f'{step.step_number or ""} rot {step.rotation_cw_deg:+d} cw'.strip()
    _text(image, label, (min(pick[0] + radius + 2, width - 1), max(pick[1] - radius, 12)),
          scale)


def draw_plan(model_rgb: np.ndarray, steps: Sequence[ActionStep], instruction: str,
              latency_s: float, min_width_px: int = MIN_WIDTH_PX) -> np.ndarray:
    """Return an RGB uint8 copy of the frame with the plan, instruction and latency drawn."""
    factor = max(1, math.ceil(min_width_px / model_rgb.shape[1]))
    image = cv2.resize(model_rgb, None, fx=factor, fy=factor, interpolation=cv2.INTER_NEAREST)
    image = np.ascontiguousarray(image)
    height, width = image.shape[:2]
    scale = 0.45 if width < 800 else 0.7
    radius = max(4, width // 80)
    for step in steps:
        _draw_step(image, step, radius, scale)
    _text(image, _fit(_PHRASE_TAGS.sub('', instruction), width - 8, scale), (4, 16), scale)
    _text(image, f'{latency_s * 1e3:.0f} ms', (4, height - 6), scale)
    return image
