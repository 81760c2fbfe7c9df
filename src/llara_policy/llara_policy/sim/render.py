"""Film an oracle episode of a sim task as a GIF or MP4: a look at the sim you can trust.

    python -m llara_policy.sim.render --task visual_manipulation --seed 0 --out ep.gif

Each step shows the policy's exact 256x128 model frame (enlarged, nearest neighbour) with the
oracle's pick point (green circle), place point (red cross), arrow and rotation drawn, then the
motion filmed by the same camera at a higher resolution (the arm enters the view while it works),
under the instruction and above the prompt's reference images. Every argument, the output
folder and the MP4 writer are checked before the episode runs.
"""
import argparse
import math
import os
from pathlib import Path
import sys
import tempfile
import textwrap

import cv2
import imageio.v2 as imageio
import numpy as np

from llara_policy.errors import ConfigError, LlaraError
from llara_policy.sim.env import SimEnv, SimEnvConfig
from llara_policy.sim.episode import SEED_RANGES, OracleAction, Partition, Split
from llara_policy.sim.tasks import TASKS

_FONT = cv2.FONT_HERSHEY_SIMPLEX
_BACKGROUND = (28, 28, 32)
_TEXT = (235, 235, 235)
_PICK = (40, 220, 90)
_PLACE = (240, 60, 60)
_HEADER_LINES = 3
_LINE_PX = 22
# Final frames repeat so players that loop do not jump straight back to the start.
_HOLD_FRAMES = 8
VIDEO_SUFFIXES = ('.gif', '.mp4')
_MP4_CODEC = 'mp4v'


def _text(image: np.ndarray, text: str, origin, scale: float = 0.55, colour=_TEXT) -> None:
    cv2.putText(image, text, origin, _FONT, scale, colour, 1, cv2.LINE_AA)


def annotate(view: np.ndarray, oracle: OracleAction) -> np.ndarray:
    """Draw an oracle step's pick, place, arrow and rotation on a (scaled) model-frame view."""
    image = view.copy()
    height, width = image.shape[:2]
    pick = (round(oracle.step.pick.x_norm * width), round(oracle.step.pick.y_norm * height))
    place = (round(oracle.step.place.x_norm * width), round(oracle.step.place.y_norm * height))
    size = max(4, width // 64)
    if pick != place:
        cv2.arrowedLine(image, pick, place, (250, 230, 80), 2, cv2.LINE_AA, tipLength=0.08)
    cv2.circle(image, pick, size, _PICK, 2, cv2.LINE_AA)
    cv2.drawMarker(image, place, _PLACE, cv2.MARKER_TILTED_CROSS, 2 * size, 2, cv2.LINE_AA)
    if oracle.step.rotation_cw_deg:
        _text(image, f'rotate {oracle.step.rotation_cw_deg} deg cw',
              (place[0] + size + 4, place[1] - size), 0.5, (250, 230, 80))
    return image


class Filmstrip:
    """Lays out frames: instruction header, the view, reference images, a status line."""

    def __init__(self, env: SimEnv, scale: int):
        self.scale = scale
        self.width = 256 * scale
        info = env.info
        lines = textwrap.wrap(info.prompt.instruction(), width=self.width // 10)
        self.header = lines[:_HEADER_LINES]
        thumbs = []
        for key, placeholder in info.prompt.placeholders.items():
            thumb = cv2.resize(placeholder.reference.rgb, (self.width // 4, self.width // 8),
                               interpolation=cv2.INTER_AREA)
            band = np.full((_LINE_PX, thumb.shape[1], 3), _BACKGROUND, np.uint8)
            _text(band, '{' + key + '}', (4, 16), 0.45)
            thumbs.append(np.vstack([band, thumb]))
        self.footer = np.hstack(thumbs) if thumbs else np.zeros((0, 0, 3), np.uint8)

    def frame(self, view: np.ndarray, status: str) -> np.ndarray:
        """Compose one output frame around a view of width 256 * scale."""
        header = np.full((_LINE_PX * (_HEADER_LINES + 1) + 6, self.width, 3), _BACKGROUND,
                         np.uint8)
        for index, line in enumerate(self.header):
            _text(header, line, (8, 20 + _LINE_PX * index))
        _text(header, status, (8, 20 + _LINE_PX * _HEADER_LINES), 0.5, (170, 200, 255))
        footer = np.full((self.footer.shape[0] or 1, self.width, 3), _BACKGROUND, np.uint8)
        footer[:, :self.footer.shape[1]] = self.footer[:, :self.width]
        return np.vstack([header, view, footer])


def film_episode(env: SimEnv, seed: int, scale: int = 3, motion_fps: float = 6.0
                 ) -> tuple[list[np.ndarray], bool]:
    """Run the oracle on `seed` and return (frames, success)."""
    observation = env.reset(seed)
    strip = Filmstrip(env, scale)
    camera = env.camera.scaled(256 * scale, 128 * scale)
    frames: list[np.ndarray] = []
    current: list[OracleAction] = []
    next_film_s = [env.arm.sim_time_s]

    def film(sim_time_s: float) -> None:
        if motion_fps > 0 and sim_time_s >= next_film_s[0]:
            next_film_s[0] = sim_time_s + 1.0 / motion_fps
            rgb, _ = env.world.render(camera)
            frames.append(strip.frame(annotate(rgb, current[0]), status[0]))

    env.arm.add_tick_listener(film)
    status = [f'{env.info.task}  seed {seed}  {env.info.partition.value}']
    success = False
    for _ in range(env.step_limit):
        oracle = env.oracle()
        current[:] = [oracle]
        view = cv2.resize(observation.rgb, (256 * scale, 128 * scale),
                          interpolation=cv2.INTER_NEAREST)
        status[0] = f'{env.info.task}  seed {seed}  next: {oracle.object_name}'
        frames.extend([strip.frame(annotate(view, oracle), status[0])] * 3)
        result = env.step(oracle.action)
        observation = result.obs
        success = result.success
        if result.done:
            break
    verdict = 'SUCCESS' if success else 'FAILURE'
    view = cv2.resize(observation.rgb, (256 * scale, 128 * scale),
                      interpolation=cv2.INTER_NEAREST)
    frames.extend([strip.frame(view, f'{env.info.task}  seed {seed}  {verdict}')] * _HOLD_FRAMES)
    return frames, success


def write_video(frames: list[np.ndarray], path: Path, fps: float) -> None:
    """Write RGB frames as a GIF (imageio) or an MP4 (OpenCV's mp4v codec)."""
    try:
        if path.suffix.lower() == '.gif':
            imageio.mimsave(path, frames, duration=1000.0 / fps, loop=0)
            return
        height, width = frames[0].shape[:2]
        writer = _open_mp4(path, fps, width, height)
        for frame in frames:
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        writer.release()
    except OSError as error:
        raise LlaraError(f'cannot write {str(path)!r}: {error}') from error
    if not path.is_file() or path.stat().st_size == 0:
        raise LlaraError(f'OpenCV wrote no video to {str(path)!r}: {_mp4_alternatives()}')


def _open_mp4(path: Path, fps: float, width: int, height: int) -> cv2.VideoWriter:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*_MP4_CODEC), fps,
                             (width, height))
    if not writer.isOpened():
        raise LlaraError(f'OpenCV cannot write an MP4 to {str(path)!r}: '
                         f'{_mp4_alternatives()}')
    return writer


def _mp4_alternatives() -> str:
    """Say what this OpenCV can write video with, and what else would work."""
    backends = [cv2.videoio_registry.getBackendName(b)
                for b in cv2.videoio_registry.getWriterBackends()]
    cause = ('it has no FFmpeg video writer' if 'FFMPEG' not in backends
             else f'its FFmpeg writer did not accept the {_MP4_CODEC!r} codec')
    return (f'OpenCV {cv2.__version__} ({cause}; writer backends: '
            f'{", ".join(backends) or "none"}). Alternatives: an OpenCV with FFmpeg (the pip '
            'wheels opencv-python and opencv-python-headless bundle it), or a GIF '
            '(--out NAME.gif, written by imageio)')


def check_mp4_writer(folder: Path) -> None:
    """Write a two-frame MP4 in `folder` and delete it; raise ConfigError saying why it failed."""
    handle, name = tempfile.mkstemp(suffix='.mp4', prefix='.render-check-', dir=folder)
    os.close(handle)
    trial = Path(name)
    try:
        writer = _open_mp4(trial, 1.0, 16, 16)
        for _ in range(2):
            writer.write(np.zeros((16, 16, 3), np.uint8))
        writer.release()
        if trial.stat().st_size == 0:
            raise LlaraError(_mp4_alternatives())
    except LlaraError as error:
        raise ConfigError(f'--out: cannot write MP4 video: {error}') from error
    finally:
        trial.unlink(missing_ok=True)


def prepare_output(args: argparse.Namespace) -> None:
    """Check every argument and the output path, creating its folder; raise ConfigError.

    Runs before the episode, so a typo costs milliseconds rather than a whole simulation.
    """
    if not math.isfinite(args.fps) or args.fps <= 0:
        raise ConfigError(f'--fps must be a number > 0, got {args.fps}')
    if not math.isfinite(args.motion_fps) or args.motion_fps < 0:
        raise ConfigError(f'--motion-fps must be a number >= 0, got {args.motion_fps}')
    if args.scale < 1:
        raise ConfigError(f'--scale must be an integer >= 1, got {args.scale}')
    out = args.out
    if out.suffix.lower() not in VIDEO_SUFFIXES:
        raise ConfigError(f'--out {str(out)!r}: unsupported extension {out.suffix!r}; use '
                          f'{" or ".join(VIDEO_SUFFIXES)}')
    if out.is_dir():
        raise ConfigError(f'--out {str(out)!r} is a folder; give a file name')
    folder = out.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ConfigError(f'--out: cannot create the folder {str(folder)!r}: '
                          f'{error.strerror or error}') from error
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ConfigError(f'--out: the folder {str(folder)!r} is not writable')
    if out.suffix.lower() == '.mp4':
        check_mp4_writer(folder)


def parse_args(argv) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        prog='python -m llara_policy.sim.render', description=__doc__.split('\n')[0])
    parser.add_argument('--task', default='visual_manipulation', choices=sorted(TASKS))
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--partition', default=Partition.PLACEMENT.value,
                        choices=[p.value for p in Partition])
    parser.add_argument('--out', type=Path, default=Path('episode.gif'),
                        help='.gif or .mp4; a missing folder is created')
    parser.add_argument('--scale', type=int, default=3,
                        help='view size: 256x128 times this (>= 1)')
    parser.add_argument('--fps', type=float, default=8.0, help='playback frames per second (> 0)')
    parser.add_argument('--motion-fps', type=float, default=6.0,
                        help='frames filmed per simulated second of motion (0: key frames only)')
    parser.add_argument('--renderer', default='auto', choices=('auto', 'egl', 'tiny'))
    return parser.parse_args(argv)


def main(argv=None) -> int:
    """Entry point: film one oracle episode and write it.

    Returns 0 on success, 2 for a bad argument or output path (found before the episode runs),
    1 when the episode or the writing fails.
    """
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        prepare_output(args)
    except ConfigError as error:
        print(f'error: {error}', file=sys.stderr)
        return 2
    partition = Partition(args.partition)
    split = Split.TRAIN if (args.seed in SEED_RANGES[Split.TRAIN]
                            and partition is Partition.PLACEMENT) else Split.TEST
    try:
        with SimEnv(SimEnvConfig(task=args.task, partition=partition, split=split,
                                 renderer=args.renderer)) as env:
            frames, success = film_episode(env, args.seed, args.scale, args.motion_fps)
        write_video(frames, args.out, args.fps)
    except LlaraError as error:
        print(f'error: {error}', file=sys.stderr)
        return 1
    print(f'{args.out}: {len(frames)} frames, oracle {"succeeded" if success else "failed"}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
