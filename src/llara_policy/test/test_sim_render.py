"""The render CLI films an oracle episode with the points drawn, and refuses bad input first."""
import imageio.v2 as imageio
import numpy as np
import pytest

from llara_policy.sim import render
from llara_policy.sim.env import SimEnv, SimEnvConfig
from llara_policy.sim.render import annotate, main


def test_render_cli_writes_a_gif_of_a_successful_episode(tmp_path, capsys):
    out = tmp_path / 'ep.gif'
    assert main(['--task', 'visual_manipulation', '--seed', '0', '--out', str(out),
                 '--scale', '1', '--motion-fps', '2', '--renderer', 'tiny']) == 0
    frames = imageio.mimread(out)
    assert len(frames) > 5 and frames[0].shape[1] == 256
    assert 'oracle succeeded' in capsys.readouterr().out


def test_annotation_marks_pick_and_place_pixels():
    with SimEnv(SimEnvConfig('rotate', renderer='tiny')) as env:
        obs = env.reset(1)
        oracle = env.oracle()
    drawn = annotate(obs.rgb, oracle)
    u = round(oracle.step.pick.x_norm * 256)
    v = round(oracle.step.pick.y_norm * 128)
    ring = drawn[v - 6:v + 7, u - 6:u + 7]
    assert np.any(np.all(ring == (40, 220, 90), axis=-1))  # the green pick circle


class _NoEpisode:
    """Stands in for SimEnv: records that an episode was attempted."""

    started = []

    def __init__(self, *args, **kwargs):
        _NoEpisode.started.append(args)
        raise AssertionError('the episode ran before the arguments were checked')


@pytest.fixture
def no_episode(monkeypatch):
    _NoEpisode.started.clear()
    monkeypatch.setattr(render, 'SimEnv', _NoEpisode)
    return _NoEpisode.started


def run_bad(capsys, *argv) -> str:
    """Run the CLI, expect exit code 2 and return its one-line error."""
    assert main(['--renderer', 'tiny', *argv]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('error: '), captured.err
    assert not captured.out
    return lines[0]


@pytest.mark.parametrize('argv, names', [
    (['--fps', '0'], ('--fps', '> 0')), (['--fps', '-2'], ('--fps', '-2')),
    (['--fps', 'nan'], ('--fps',)), (['--scale', '0'], ('--scale', '>= 1')),
    (['--scale', '-1'], ('--scale', '-1')), (['--motion-fps', '-1'], ('--motion-fps',)),
])
def test_bad_numbers_are_refused_before_the_episode(tmp_path, capsys, no_episode, argv, names):
    out = tmp_path / 'ep.gif'
    error = run_bad(capsys, '--out', str(out), *argv)
    assert all(name in error for name in names), error
    assert not no_episode and not out.exists()


@pytest.mark.parametrize('name', ['ep.avi', 'ep', 'ep.gif.txt'])
def test_an_unsupported_extension_is_named(tmp_path, capsys, no_episode, name):
    error = run_bad(capsys, '--out', str(tmp_path / name))
    assert str(tmp_path / name) in error and 'extension' in error and '.mp4' in error
    assert not no_episode and list(tmp_path.iterdir()) == []


def test_an_output_folder_that_cannot_exist_is_named(tmp_path, capsys, no_episode):
    (tmp_path / 'blocker').write_text('a file, not a folder')
    folder = tmp_path / 'blocker' / 'videos'
    error = run_bad(capsys, '--out', str(folder / 'ep.gif'))
    assert str(folder) in error and '--out' in error
    assert not no_episode


def test_an_existing_folder_as_output_is_refused(tmp_path, capsys, no_episode):
    folder = tmp_path / 'videos.gif'
    folder.mkdir()
    assert str(folder) in run_bad(capsys, '--out', str(folder))
    assert not no_episode


def test_a_missing_output_folder_is_created(tmp_path):
    out = tmp_path / 'new' / 'deeper' / 'ep.gif'
    assert main(['--task', 'rotate', '--seed', '1', '--out', str(out), '--scale', '1',
                 '--motion-fps', '0', '--renderer', 'tiny']) == 0
    assert imageio.mimread(out)[0].shape[1] == 256  # identical frames merge in a GIF


class _ClosedWriter:
    """A cv2.VideoWriter that cannot open, as when OpenCV lacks a usable MP4 encoder."""

    def __init__(self, *args):
        pass

    def isOpened(self):  # noqa: N802 (OpenCV's name)
        return False


@pytest.mark.parametrize('backends, cause', [
    ([], 'has no FFmpeg video writer'),
    (None, "did not accept the 'mp4v' codec"),  # None: this OpenCV's real backend list
])
def test_an_mp4_writer_failure_names_the_cause_and_the_alternatives(
        tmp_path, capsys, monkeypatch, no_episode, backends, cause):
    monkeypatch.setattr(render.cv2, 'VideoWriter', _ClosedWriter)
    if backends is not None:
        monkeypatch.setattr(render.cv2.videoio_registry, 'getWriterBackends', lambda: backends)
    elif 'FFMPEG' not in [render.cv2.videoio_registry.getBackendName(b)
                          for b in render.cv2.videoio_registry.getWriterBackends()]:
        pytest.skip('this OpenCV has no FFmpeg writer')
    error = run_bad(capsys, '--out', str(tmp_path / 'ep.mp4'))
    assert cause in error and 'writer backends' in error
    assert 'opencv-python' in error and '.gif' in error
    assert not no_episode and list(tmp_path.iterdir()) == []


def test_an_mp4_is_written_when_opencv_can(tmp_path):
    out = tmp_path / 'ep.mp4'
    assert main(['--task', 'rotate', '--seed', '1', '--out', str(out), '--scale', '1',
                 '--motion-fps', '0', '--renderer', 'tiny']) == 0
    capture = render.cv2.VideoCapture(str(out))
    frames = int(capture.get(render.cv2.CAP_PROP_FRAME_COUNT))
    capture.release()
    assert frames > 3
