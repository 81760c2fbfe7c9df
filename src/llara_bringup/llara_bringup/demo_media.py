"""The demo's pictures: the annotated GIF of the policy's plans, the success chart, the aux curve.

A GIF frame is policy_node's own debug image of the plan (`plan_overlay.draw_plan`: pick and
place points, arrow, rotation, instruction, latency) over a caption band: task, seed and
episode, step, query, what the executor did with the step and, on an episode's last plan, how
the episode ended. A GIF over GIF_LIMIT_BYTES is written again at a smaller scale.
"""
import csv
from dataclasses import dataclass
import math
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from llara_bringup.demo_bag import PlanView
from llara_policy.model.plan_overlay import draw_plan

FRAME_MS = 1000  # about one second per policy query
END_FRAME_MS = 2500  # an episode's last plan stays longer: it shows the episode's end
GIF_LIMIT_BYTES = 10_000_000
GIF_TRIES = 4
LINE_PX = 18
CAPTION_LINES = 4  # task line, missing-frame note, outcome, episode end: every frame one size
FONT = cv2.FONT_HERSHEY_SIMPLEX
FONT_SCALE = 0.45
TEXT_RGB = (235, 235, 235)
GOOD_RGB = (90, 220, 90)
BAD_RGB = (255, 110, 90)
AUX_CURVE_COLUMNS = ('samples', 'aux', 'success', 'episodes')


class MediaError(Exception):
    """A picture cannot be made (bad input file, nothing to draw); the message says why."""


@dataclass(frozen=True)
class CurvePoint:
    """One row of aux_curve.csv: a model trained on `samples` samples, with or without aux."""

    samples: int
    aux: bool
    success: int
    episodes: int

    def __post_init__(self):
        if self.samples < 0 or self.episodes < 1 or not 0 <= self.success <= self.episodes:
            raise ValueError(f'need samples >= 0, episodes >= 1 and 0 <= success <= episodes, '
                             f'got {self}')


def _fit(text: str, width_px: int) -> str:
    """Cut `text` with '...' to fit `width_px`."""
    if cv2.getTextSize(text, FONT, FONT_SCALE, 1)[0][0] <= width_px:
        return text
    while text and cv2.getTextSize(text + '...', FONT, FONT_SCALE, 1)[0][0] > width_px:
        text = text[:-1]
    return text + '...'


def caption(view: PlanView, episode_label: str) -> list[tuple[str, tuple[int, int, int]]]:
    """Return the caption lines of a plan's frame, each with its colour."""
    lines = [(f'{view.task}  seed {view.seed} ({episode_label})  step {view.step}  '
              f'query {view.query_id}', TEXT_RGB)]
    if not view.frame_found:
        lines.append(('camera frame not in the bag: plan drawn on a blank frame', BAD_RGB))
    lines.append((view.outcome, GOOD_RGB if view.outcome.startswith('executed') else BAD_RGB))
    if view.episode_end:
        lines.append((f'episode end: {view.episode_end}',
                      GOOD_RGB if view.episode_end == 'SUCCESS' else BAD_RGB))
    return lines


def annotate(view: PlanView, episode_label: str) -> np.ndarray:
    """Draw the plan on its frame (policy_node's debug image) above its caption band."""
    image = draw_plan(view.model_rgb, view.steps, view.instruction, view.inference_time_s)
    width = image.shape[1]
    lines = caption(view, episode_label)
    band = np.full((LINE_PX * CAPTION_LINES + 8, width, 3), 30, np.uint8)
    for row, (text, rgb) in enumerate(lines, 1):
        cv2.putText(band, _fit(text, width - 8), (4, LINE_PX * row), FONT, FONT_SCALE, rgb, 1,
                    cv2.LINE_AA)
    return np.vstack([image, band])


def write_gif(path: Path, frames: list[np.ndarray], durations_ms: list[int],
              limit_bytes: int = GIF_LIMIT_BYTES) -> float:
    """Write an endlessly looping GIF; return the scale used (1.0 unless it was too big)."""
    if not frames:
        raise MediaError('no frames to write')
    scale = 1.0
    for _ in range(GIF_TRIES):
        size = (max(1, round(frames[0].shape[1] * scale)),
                max(1, round(frames[0].shape[0] * scale)))
        images = [Image.fromarray(frame).resize(size, Image.Resampling.LANCZOS)
                  if scale != 1.0 else Image.fromarray(frame) for frame in frames]
        images[0].save(path, save_all=True, append_images=images[1:], duration=durations_ms,
                       loop=0, optimize=False)
        written = path.stat().st_size
        if written <= limit_bytes:
            return scale
        scale *= 0.9 * math.sqrt(limit_bytes / written)
    raise MediaError(f'{path} is still {written:,} bytes at scale {scale:.2f} '
                     f'(limit {limit_bytes:,})')


def plans_gif(path: Path, plans: tuple[PlanView, ...], episode_labels: dict) -> float:
    """Write the plans' annotated frames to `path`; return the scale used.

    `episode_labels` maps (task, seed) to a label such as 'episode 2/10'.
    """
    frames = [annotate(view, episode_labels.get((view.task, view.seed), 'episode ?'))
              for view in plans]
    durations = [END_FRAME_MS if view.episode_end else FRAME_MS for view in plans]
    return write_gif(path, frames, durations)


def success_chart(path: Path, policy: dict[str, tuple[int, int]],
                  oracle: dict[str, tuple[int, int]], title: str) -> None:
    """Bar chart of the success rate per task: policy beside oracle (tasks -> (wins, runs))."""
    import matplotlib
    matplotlib.use('Agg')
    from matplotlib import pyplot

    tasks = list(policy)
    runs = [('policy', policy, 'tab:blue')] + ([('oracle', oracle, 'tab:gray')] if oracle else [])
    width = 0.8 / len(runs)
    figure, axes = pyplot.subplots(figsize=(max(4.0, 1.6 * len(tasks) + 2), 3.6))
    for offset, (label, scores, colour) in enumerate(runs):
        xs = [k + (offset - (len(runs) - 1) / 2) * width for k in range(len(tasks))]
        rates = [100 * scores[t][0] / scores[t][1] for t in tasks]
        bars = axes.bar(xs, rates, width, label=label, color=colour)
        axes.bar_label(bars, [f'{scores[t][0]}/{scores[t][1]}' for t in tasks], fontsize=8)
    axes.set_xticks(range(len(tasks)), tasks)
    axes.set_ylim(0, 125)  # room above 100 % for the labels and the legend
    axes.set_yticks(range(0, 101, 20))
    axes.set_ylabel('success rate (%)')
    axes.set_title(title, fontsize=9, wrap=True)
    axes.legend(loc='upper center', ncol=len(runs), fontsize=8, frameon=False)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    pyplot.close(figure)


def read_aux_curve(path: Path) -> list[CurvePoint]:
    """Read aux_curve.csv (columns AUX_CURVE_COLUMNS); MediaError naming a bad row."""
    with open(path, newline='') as file:
        reader = csv.DictReader(file)
        missing = [c for c in AUX_CURVE_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise MediaError(f'{path}: no column {", ".join(missing)} (needs '
                             f'{", ".join(AUX_CURVE_COLUMNS)})')
        points = []
        for line, row in enumerate(reader, 2):
            try:
                aux = {'true': True, 'false': False}[row['aux'].strip().lower()]
                points.append(CurvePoint(int(row['samples']), aux, int(row['success']),
                                         int(row['episodes'])))
            except (KeyError, ValueError, AttributeError) as error:
                raise MediaError(f'{path} line {line}: {row} ({error!r}; aux is true or '
                                 'false, the others whole numbers)') from None
    if not points:
        raise MediaError(f'{path} has no rows')
    return points


def aux_curve_chart(path: Path, points: list[CurvePoint], title: str) -> None:
    """Success rate against training trajectories: one line with auxiliary data, one without."""
    import matplotlib
    matplotlib.use('Agg')
    from matplotlib import pyplot

    figure, axes = pyplot.subplots(figsize=(5.0, 3.6))
    # Dashed and hollow on top of solid: equal rates (e.g. both 0%) leave both lines visible.
    for aux, label, colour, style in ((True, 'with aux', 'tab:green', '-'),
                                      (False, 'without aux', 'tab:orange', '--')):
        line = sorted((p for p in points if p.aux == aux), key=lambda p: p.samples)
        if line:
            axes.plot([p.samples for p in line], [100 * p.success / p.episodes for p in line],
                      marker='o', linestyle=style, fillstyle='full' if aux else 'none',
                      label=f'{label} ({len(line)} points)', color=colour)
    if min(p.samples for p in points) > 0 and \
            max(p.samples for p in points) > 10 * min(p.samples for p in points):
        axes.set_xscale('log')
    axes.set_ylim(-5, 105)
    axes.set_xlabel('training trajectories (episodes)')
    axes.set_ylabel('success rate (%)')
    axes.set_title(title, fontsize=9)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    pyplot.close(figure)
