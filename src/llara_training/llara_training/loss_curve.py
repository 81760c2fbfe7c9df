"""The training loss of a run as data, CSV and a plot, from the Trainer's log history.

The log history is kept in the Trainer's checkpoints, so a resumed run's curve covers every
step from the first. Written beside the model as `loss.csv` and `loss.png`.
"""
from collections.abc import Sequence
import csv
from dataclasses import dataclass
from pathlib import Path

LOSS_CSV = 'loss.csv'
LOSS_PNG = 'loss.png'


@dataclass(frozen=True)
class LossPoint:
    """Mean training loss of the optimiser steps logged at `step`."""

    step: int
    epoch: float
    loss: float
    learning_rate: float


def loss_points(log_history: Sequence[dict]) -> tuple[LossPoint, ...]:
    """Return the training-loss entries of a Trainer's `state.log_history`, in step order."""
    points = {}
    for entry in log_history:
        if 'loss' in entry and 'step' in entry:
            points[int(entry['step'])] = LossPoint(
                int(entry['step']), float(entry.get('epoch', 0.0)), float(entry['loss']),
                float(entry.get('learning_rate', 0.0)))
    return tuple(points[step] for step in sorted(points))


def window_mean(points: Sequence[LossPoint], count: int, last: bool) -> float:
    """Mean loss of the first (or last) `count` points (all of them if fewer)."""
    chosen = points[-count:] if last else points[:count]
    return sum(point.loss for point in chosen) / len(chosen)


def read_loss_csv(path: str | Path) -> tuple[LossPoint, ...]:
    """Read a `loss.csv` written by `write_loss_csv`."""
    with open(path, newline='') as handle:
        return tuple(LossPoint(int(row['step']), float(row['epoch']), float(row['loss']),
                               float(row['learning_rate'])) for row in csv.DictReader(handle))


def write_loss_csv(points: Sequence[LossPoint], path: str | Path) -> Path:
    """Write step, epoch, loss, learning_rate rows."""
    path = Path(path)
    with open(path, 'w', newline='') as handle:
        writer = csv.writer(handle)
        writer.writerow(['step', 'epoch', 'loss', 'learning_rate'])
        for point in points:
            writer.writerow([point.step, f'{point.epoch:.4f}', f'{point.loss:.6f}',
                             f'{point.learning_rate:.6g}'])
    return path


def plot_loss(points: Sequence[LossPoint], path: str | Path, title: str) -> Path:
    """Plot loss (left axis, log scale) and learning rate (right axis) against the step."""
    import matplotlib

    matplotlib.use('Agg')  # files only, no display
    from matplotlib import pyplot

    figure, loss_axis = pyplot.subplots(figsize=(7, 4), dpi=100)
    steps = [point.step for point in points]
    loss_axis.plot(steps, [point.loss for point in points], color='tab:blue', label='loss')
    loss_axis.set_xlabel('optimiser step')
    loss_axis.set_ylabel('training loss (assistant tokens)')
    if points and min(point.loss for point in points) > 0:
        loss_axis.set_yscale('log')
    rate_axis = loss_axis.twinx()
    rate_axis.plot(steps, [point.learning_rate for point in points], color='tab:orange',
                   alpha=0.6, label='learning rate')
    rate_axis.set_ylabel('learning rate')
    loss_axis.set_title(title)
    loss_axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path)
    pyplot.close(figure)
    return Path(path)
