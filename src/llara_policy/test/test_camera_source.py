"""CameraSource: image folders in sorted order, video files, loss, backoff and recovery, no stale
frames; CameraConfig validation."""
from pathlib import Path

import cv2
import numpy as np
import pytest

from llara_policy.camera import (
    CameraConfig,
    CameraEndedError,
    CameraLostError,
    CameraSource,
    ImageFolderCapture,
    SourceKind,
    source_kind,
)
from llara_policy.errors import ConfigError, SimError

# Distinct RGB colours; solid frames survive MJPG and PNG recognisably.
COLOURS = [(220, 30, 30), (30, 200, 40), (20, 40, 230), (240, 240, 20), (200, 20, 220)]


class FakeClock:
    """A monotonic clock and a capture-stamp clock the test moves by hand."""

    def __init__(self):
        self.now_s = 100.0
        self.stamp_ns = 0

    def monotonic(self) -> float:
        return self.now_s

    def stamp(self) -> int:
        self.stamp_ns += 1_000_000
        return self.stamp_ns


def solid(rgb, height=24, width=32) -> np.ndarray:
    return np.full((height, width, 3), rgb, dtype=np.uint8)


def write_folder(folder: Path, names, colours) -> None:
    folder.mkdir(exist_ok=True)
    for name, rgb in zip(names, colours, strict=True):
        cv2.imwrite(str(folder / name), cv2.cvtColor(solid(rgb), cv2.COLOR_RGB2BGR))


def colour_of(frame) -> tuple[int, ...]:
    return tuple(int(v) for v in frame.rgb[frame.rgb.shape[0] // 2, frame.rgb.shape[1] // 2])


def make_source(source, clock=None, **config) -> CameraSource:
    clock = clock or FakeClock()
    return CameraSource(CameraConfig(source=str(source), **config), clock_ns=clock.stamp,
                        monotonic_s=clock.monotonic)


def test_config_defaults_are_valid_and_bad_values_name_the_field():
    CameraConfig()
    cases = [({'rate_hz': 0.0}, 'rate_hz'), ({'rate_hz': 10}, 'rate_hz'),
             ({'width_px': 640}, 'width_px and height_px'), ({'height_px': -1}, 'height_px'),
             ({'frame_id': 'my camera'}, 'frame_id'), ({'source': ' '}, 'source'),
             ({'reconnect_initial_s': 2.0, 'reconnect_max_s': 1.0}, 'reconnect_max_s'),
             ({'loop': 1}, 'loop')]
    for kwargs, name in cases:
        with pytest.raises(ConfigError, match=name):
            CameraConfig(**kwargs)


def test_source_kinds(tmp_path):
    assert source_kind('0') is SourceKind.DEVICE
    assert source_kind('/dev/video2') is SourceKind.DEVICE
    assert source_kind('rtsp://10.0.0.2/stream') is SourceKind.URL
    assert source_kind(str(tmp_path)) is SourceKind.FOLDER
    assert source_kind(str(tmp_path / 'clip.avi')) is SourceKind.FILE
    assert source_kind('sim') is SourceKind.SIM


def test_folder_replays_in_sorted_order_as_rgb_with_increasing_stamps(tmp_path):
    write_folder(tmp_path, ['b.png', 'a.png', 'c.jpg'], COLOURS[:3])
    (tmp_path / 'notes.txt').write_text('not an image')
    source = make_source(tmp_path)
    frames = [source.read() for _ in range(4)]
    # a, b, c (notes.txt is not an image), then the loop starts over at a.
    assert [colour_of(f) for f in frames[:2]] == [COLOURS[1], COLOURS[0]]
    assert np.abs(np.subtract(colour_of(frames[2]), COLOURS[2])).max() <= 3  # jpeg
    assert colour_of(frames[3]) == COLOURS[1]
    assert [f.sequence for f in frames] == [0, 1, 2, 3]
    assert all(a.stamp_ns < b.stamp_ns for a, b in zip(frames[:-1], frames[1:], strict=True))
    assert frames[0].rgb.dtype == np.uint8 and frames[0].rgb.shape == (24, 32, 3)
    assert source.health.connected and source.health.frames == 4


def test_folder_without_loop_ends_and_stays_ended(tmp_path):
    write_folder(tmp_path, ['0.png', '1.png'], COLOURS[:2])
    source = make_source(tmp_path, loop=False)
    assert [colour_of(source.read()) for _ in range(2)] == COLOURS[:2]
    for _ in range(2):
        with pytest.raises(CameraEndedError, match='ended'):
            source.read()
    assert source.health.ended and source.health.loss_episodes == 0


def test_frames_are_resized_to_the_requested_size(tmp_path):
    write_folder(tmp_path, ['0.png'], COLOURS[:1])
    frame = make_source(tmp_path, width_px=16, height_px=8).read()
    assert frame.rgb.shape == (8, 16, 3) and colour_of(frame) == COLOURS[0]


def test_video_file_plays_frames_in_order_and_loops(tmp_path):
    path = tmp_path / 'clip.avi'
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*'MJPG'), 10.0, (32, 24))
    assert writer.isOpened()
    for rgb in COLOURS[:3]:
        writer.write(cv2.cvtColor(solid(rgb), cv2.COLOR_RGB2BGR))
    writer.release()
    source = make_source(path)
    seen = [colour_of(source.read()) for _ in range(4)]
    for got, want in zip(seen, COLOURS[:3] + COLOURS[:1], strict=True):
        assert np.abs(np.subtract(got, want)).max() <= 12, (got, want)  # MJPG is lossy


def test_missing_file_is_reported_as_lost_not_raised_as_a_crash(tmp_path):
    source = make_source(tmp_path / 'none.avi')
    with pytest.raises(CameraLostError, match='cannot open') as err:
        source.read()
    assert err.value.episode_started
    assert source.health.loss_episodes == 1 and source.health.failed_opens == 1


class ScriptedCapture:
    """A capture whose reads follow a shared script: a colour, or None for a failed read."""

    def __init__(self, script, opened=True):
        self.script = script
        self.opened = opened
        self.released = False

    def isOpened(self):
        return self.opened

    def read(self):
        item = self.script.pop(0) if self.script else None
        return (False, None) if item is None else (True, solid(item)[..., ::-1])

    def release(self):
        self.released = True


def test_lost_camera_reopens_with_exponential_backoff_and_recovers():
    clock = FakeClock()
    opens = []  # what each open returns: True = opens, False = device absent
    script = [COLOURS[0], None, COLOURS[1]]
    plan = [True, False, False, False, False, True]

    def factory(config):
        opens.append(clock.now_s)
        return ScriptedCapture(script, opened=plan.pop(0))

    source = CameraSource(CameraConfig(source='0', reconnect_initial_s=1.0, reconnect_max_s=4.0),
                          capture_factory=factory, clock_ns=clock.stamp,
                          monotonic_s=clock.monotonic)
    assert colour_of(source.read()) == COLOURS[0]
    with pytest.raises(CameraLostError) as err:  # the read fails: the device is gone
        source.read()
    assert err.value.episode_started and err.value.retry_in_s == 1.0
    frame = None
    for _ in range(100):  # 0.25 s steps: a reopen happens only when its backoff has passed
        clock.now_s += 0.25
        try:
            frame = source.read()
            break
        except CameraLostError as lost:
            assert not lost.episode_started  # one loss episode, logged once
    # Backoff after the read failure: 1 s; then each failed open doubles it, capped at 4 s.
    assert np.diff(opens).tolist() == [1.0, 2.0, 4.0, 4.0, 4.0]
    assert frame is not None and colour_of(frame) == COLOURS[1] and frame.sequence == 1
    assert source.health.loss_episodes == 1 and source.health.failed_opens == 4
    assert source.health.connected


def test_sim_source_needs_a_provider_and_a_failing_provider_is_a_loss():
    with pytest.raises(ConfigError, match='provider'):
        CameraSource(CameraConfig(source='sim'))
    calls = []

    def provider():
        calls.append(1)
        if len(calls) == 2:
            raise SimError('render failed')
        return solid(COLOURS[len(calls) % len(COLOURS)])

    clock = FakeClock()
    source = CameraSource(CameraConfig(source='sim', reconnect_initial_s=0.1), provider,
                          clock_ns=clock.stamp, monotonic_s=clock.monotonic)
    assert colour_of(source.read()) == COLOURS[1]
    with pytest.raises(CameraLostError, match='read failed'):
        source.read()
    with pytest.raises(CameraLostError):  # before the backoff: no provider call, no frame
        source.read()
    assert len(calls) == 2
    clock.now_s += 0.1
    assert colour_of(source.read()) == COLOURS[3]


def test_emptied_folder_is_lost_without_stale_frames_and_refilled_folder_recovers(tmp_path):
    write_folder(tmp_path, ['0.png', '1.png'], COLOURS[:2])
    clock = FakeClock()
    source = make_source(tmp_path, clock, reconnect_initial_s=0.5, reconnect_max_s=2.0)
    assert colour_of(source.read()) == COLOURS[0]
    for path in tmp_path.iterdir():
        path.unlink()
    for _ in range(5):
        with pytest.raises(CameraLostError):
            source.read()
        clock.now_s += 0.3
    assert source.health.loss_episodes == 1 and not source.health.connected
    write_folder(tmp_path, ['5.png'], COLOURS[4:])
    clock.now_s += 2.0
    frame = source.read()
    assert colour_of(frame) == COLOURS[4] and frame.sequence == 1
    assert source.health.connected and source.health.loss_episodes == 1


def test_image_folder_capture_skips_unreadable_files_as_failed_reads(tmp_path):
    write_folder(tmp_path, ['0.png'], COLOURS[:1])
    (tmp_path / '1.png').write_bytes(b'not a png')
    capture = ImageFolderCapture(str(tmp_path))
    assert capture.isOpened()
    assert capture.read()[0] and capture.read() == (False, None)
