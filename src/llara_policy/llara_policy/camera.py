"""Camera frames from OpenCV (device, video file, URL, image folder) or an in-process provider.

`CameraSource.read()` returns a new RGB frame with its capture stamp or raises a typed error: a
camera that fails (read error, device gone, empty folder) is released and reopened with
exponential backoff, and until a read succeeds again no frame is returned, so a stale frame is
never handed out as new. ROS-free: perception_node wraps it.
"""
from collections.abc import Callable
from dataclasses import dataclass, fields
import enum
import math
from pathlib import Path
import time
from typing import NoReturn, Optional, Protocol

import cv2
import numpy as np

from llara_policy.errors import ConfigError, LlaraError
from llara_policy.types import check_real

SIM_SOURCE = 'sim'
IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp', '.ppm', '.pgm')


@dataclass(frozen=True)
class CameraConfig:
    """Settings of a camera source and of perception_node.

    Args:
        source: device index ('0'), device path ('/dev/video2'), video file, stream URL
            ('rtsp://...'), a folder of images replayed in sorted name order, or 'sim' (frames
            from an in-process provider such as the embedded sim camera).
        rate_hz: frames published per second (Hz).
        width_px: requested frame width in pixels; 0 keeps the source's own size. Frames of
            another size are resized to it.
        height_px: requested frame height in pixels; 0 keeps the source's own size.
        frame_id: frame id stamped on every image (the camera's optical frame).
        loop: replay a video file or image folder again from the start when it ends.
        reconnect_initial_s: wait before the first reopen after a camera is lost (s).
        reconnect_max_s: the wait doubles after each failed reopen up to this (s).
        calibration_file: calibration YAML whose pinhole intrinsics are published as
            CameraInfo; '' publishes no CameraInfo.
    """

    source: str = '0'
    rate_hz: float = 10.0
    width_px: int = 0
    height_px: int = 0
    frame_id: str = 'camera_optical_frame'
    loop: bool = True
    reconnect_initial_s: float = 0.5
    reconnect_max_s: float = 10.0
    calibration_file: str = ''

    def __post_init__(self):
        for field in fields(self):
            value = getattr(self, field.name)
            if type(value) is not field.type:
                raise ConfigError(f'CameraConfig.{field.name} must be a {field.type.__name__}, '
                                  f'got {value!r}')
        if not self.source.strip():
            raise ConfigError("CameraConfig.source must name a camera, file, folder, URL or 'sim'")
        check_real('CameraConfig.rate_hz', self.rate_hz, 1e-3, 1000.0, error=ConfigError)
        for name in ('width_px', 'height_px'):
            if getattr(self, name) < 0:
                raise ConfigError(f'CameraConfig.{name} must be >= 0, got {getattr(self, name)}')
        if (self.width_px == 0) != (self.height_px == 0):
            raise ConfigError('CameraConfig.width_px and height_px must both be 0 or both set, '
                              f'got {self.width_px}x{self.height_px}')
        if not self.frame_id or any(c.isspace() for c in self.frame_id):
            raise ConfigError(f'CameraConfig.frame_id must be a non-empty name without spaces, '
                              f'got {self.frame_id!r}')
        check_real('CameraConfig.reconnect_initial_s', self.reconnect_initial_s, 1e-3, 3600.0,
                   error=ConfigError)
        check_real('CameraConfig.reconnect_max_s', self.reconnect_max_s,
                   self.reconnect_initial_s, 3600.0, error=ConfigError)


class SourceKind(enum.Enum):
    """How a `CameraConfig.source` string is opened."""

    DEVICE = 'device'
    URL = 'url'
    FILE = 'file'
    FOLDER = 'folder'
    SIM = 'sim'

    @property
    def is_replay(self) -> bool:
        """Whether the source ends (file, folder) rather than streaming live."""
        return self in (SourceKind.FILE, SourceKind.FOLDER)


def source_kind(source: str) -> SourceKind:
    """Classify a source: digits or /dev/... a device, '://' a URL, a folder, else a file."""
    if source == SIM_SOURCE:
        return SourceKind.SIM
    if source.isdigit() or source.startswith('/dev/'):
        return SourceKind.DEVICE
    if '://' in source:
        return SourceKind.URL
    return SourceKind.FOLDER if Path(source).is_dir() else SourceKind.FILE


class CameraError(LlaraError):
    """No frame is available from the camera source."""


class CameraLostError(CameraError):
    """The camera failed or is gone; it is reopened with backoff.

    `episode_started` is true for the first failure of a loss episode (log it once);
    `retry_in_s` is the time until the next reopen attempt.
    """

    def __init__(self, message: str, episode_started: bool, retry_in_s: float):
        super().__init__(message)
        self.episode_started = episode_started
        self.retry_in_s = retry_in_s


class CameraEndedError(CameraError):
    """A replayed file or folder reached its end and `loop` is off; no more frames will come."""


class Capture(Protocol):
    """The part of cv2.VideoCapture a source uses; frames are BGR uint8 (H, W, 3)."""

    def isOpened(self) -> bool: ...  # noqa: N802, D102 - OpenCV's name

    def read(self) -> tuple[bool, Optional[np.ndarray]]: ...  # noqa: D102

    def release(self) -> None: ...  # noqa: D102


class ImageFolderCapture:
    """A folder of images as a capture: files in sorted name order, listed when opened."""

    def __init__(self, folder: str):
        listing = Path(folder).iterdir() if Path(folder).is_dir() else ()
        self._files = sorted(p for p in listing if p.suffix.lower() in IMAGE_SUFFIXES)
        self._next = 0

    def isOpened(self) -> bool:  # noqa: N802 - OpenCV's name
        """Return whether the folder held at least one image when opened."""
        return bool(self._files)

    def read(self) -> tuple[bool, Optional[np.ndarray]]:
        """Return the next image (BGR); (False, None) at the end or for a missing/bad file."""
        if self._next >= len(self._files):
            return False, None
        bgr = cv2.imread(str(self._files[self._next]), cv2.IMREAD_COLOR)
        self._next += 1
        return (bgr is not None), bgr

    def release(self) -> None:
        """Forget the listing."""
        self._files = []


class ProviderCapture:
    """An in-process frame provider (a callable returning RGB uint8) as a capture.

    A provider that raises `LlaraError` (e.g. a SimError) counts as a failed read.
    """

    def __init__(self, provider: Callable[[], np.ndarray]):
        self._provider = provider

    def isOpened(self) -> bool:  # noqa: N802 - OpenCV's name
        """Return True: a provider is always open."""
        return True

    def read(self) -> tuple[bool, Optional[np.ndarray]]:
        """Return the provider's frame as BGR."""
        try:
            rgb = self._provider()
        except LlaraError:
            return False, None
        return True, np.asarray(rgb)[..., ::-1]

    def release(self) -> None:
        """Nothing to release."""


def open_capture(config: CameraConfig, provider: Optional[Callable[[], np.ndarray]]) -> Capture:
    """Open the capture for `config.source` (OpenCV, folder or provider); may be not opened."""
    kind = source_kind(config.source)
    if kind is SourceKind.SIM:
        if provider is None:
            raise ConfigError("CameraConfig.source 'sim' needs an in-process frame provider "
                              '(the embedded sim); a standalone node cannot open it')
        return ProviderCapture(provider)
    if kind is SourceKind.FOLDER:
        return ImageFolderCapture(config.source)
    capture = cv2.VideoCapture(int(config.source) if config.source.isdigit() else config.source)
    if kind in (SourceKind.DEVICE, SourceKind.URL) and capture.isOpened():
        # Live sources: keep OpenCV's queue short so a read returns a recent frame.
        capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        if config.width_px:
            capture.set(cv2.CAP_PROP_FRAME_WIDTH, config.width_px)
            capture.set(cv2.CAP_PROP_FRAME_HEIGHT, config.height_px)
    return capture


@dataclass(frozen=True)
class Frame:
    """One captured image: RGB uint8 (H, W, 3), its capture stamp and its index since start."""

    rgb: np.ndarray
    stamp_ns: int
    sequence: int


@dataclass(frozen=True)
class CameraHealth:
    """What a source reports: connected or not, how often it was lost, the last problem."""

    connected: bool
    ended: bool
    frames: int
    loss_episodes: int
    failed_opens: int
    last_error: str


class CameraSource:
    """Frames from one configured source, with loss detection and reconnection with backoff.

    `clock_ns` stamps frames (capture time; perception_node passes its ROS clock) and
    `monotonic_s` paces reconnects. `capture_factory(config)` replaces `open_capture` (tests,
    other backends); `provider` feeds the 'sim' source.
    """

    def __init__(self, config: CameraConfig,
                 provider: Optional[Callable[[], np.ndarray]] = None,
                 capture_factory: Optional[Callable[[CameraConfig], Capture]] = None,
                 clock_ns: Callable[[], int] = time.time_ns,
                 monotonic_s: Callable[[], float] = time.monotonic):
        self.config = config
        self.kind = source_kind(config.source)
        self._open = capture_factory or (lambda cfg: open_capture(cfg, provider))
        if capture_factory is None and self.kind is SourceKind.SIM and provider is None:
            open_capture(config, provider)  # raises the ConfigError now, not at the first read
        self._clock_ns = clock_ns
        self._monotonic_s = monotonic_s
        self._capture: Optional[Capture] = None
        self._reads_since_open = 0
        self._backoff_s = config.reconnect_initial_s
        self._next_open_s = -math.inf
        self._lost = False
        self._ended = False
        self._frames = 0
        self._loss_episodes = 0
        self._failed_opens = 0
        self._last_error = ''

    @property
    def health(self) -> CameraHealth:
        """The source's current state and counters."""
        return CameraHealth(self._capture is not None and not self._lost, self._ended,
                            self._frames, self._loss_episodes, self._failed_opens,
                            self._last_error)

    def read(self) -> Frame:
        """Return the next new frame; raise CameraLostError or CameraEndedError if none."""
        if self._ended:
            raise CameraEndedError(f'camera {self.config.source!r}: replay ended')
        if self._capture is None:
            self._reopen()
        ok, bgr = self._capture.read()
        if not ok and self.kind.is_replay and self._reads_since_open > 0:
            self._release()  # the file or folder ended after giving frames
            if not self.config.loop:
                self._ended = True
                raise CameraEndedError(f'camera {self.config.source!r}: replay ended')
            self._reopen()
            ok, bgr = self._capture.read()
        if not ok or bgr is None or bgr.ndim != 3 or bgr.shape[2] != 3 or bgr.size == 0:
            self._release()
            self._fail(f'camera {self.config.source!r}: read failed')
        stamp_ns = self._clock_ns()
        self._reads_since_open += 1
        self._lost = False
        self._backoff_s = self.config.reconnect_initial_s
        rgb = np.ascontiguousarray(bgr[..., ::-1], dtype=np.uint8)
        if self.config.width_px and rgb.shape[:2] != (self.config.height_px, self.config.width_px):
            rgb = cv2.resize(rgb, (self.config.width_px, self.config.height_px),
                             interpolation=cv2.INTER_AREA)
        frame = Frame(rgb, stamp_ns, self._frames)
        self._frames += 1
        return frame

    def close(self) -> None:
        """Release the capture."""
        self._release()

    def _reopen(self) -> None:
        now = self._monotonic_s()
        if now < self._next_open_s:
            wait_s = self._next_open_s - now
            raise CameraLostError(f'{self._last_error}; reopening in {wait_s:.1f} s', False,
                                  wait_s)
        capture = self._open(self.config)
        if not capture.isOpened():
            capture.release()
            self._failed_opens += 1
            self._fail(f'camera {self.config.source!r}: cannot open')
        self._capture = capture
        self._reads_since_open = 0

    def _fail(self, message: str) -> NoReturn:
        """Record a failure, schedule the next reopen and raise CameraLostError."""
        started = not self._lost
        if started:
            self._lost = True
            self._loss_episodes += 1
            self._backoff_s = self.config.reconnect_initial_s
        retry_in_s = self._backoff_s
        self._next_open_s = self._monotonic_s() + retry_in_s
        self._backoff_s = min(2.0 * self._backoff_s, self.config.reconnect_max_s)
        self._last_error = message
        raise CameraLostError(f'{message}; reopening in {retry_in_s:.1f} s', started, retry_in_s)

    def _release(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None
