"""`accelerate launch` with 2 CPU processes (gloo) trains like 1 process with the same batch.

The 2-process run uses per-device batch 1, the 1-process run batch 2: accelerate hands the two
ranks alternate batches of the one seeded sample order, DDP all-reduces the gradients, and the
Trainer normalises the loss by the answer tokens of all ranks, so every optimiser step sees the
same two samples with the same weighting. The curves must therefore agree step by step up to
float summation order, and both must fall.
"""
import os
from pathlib import Path
import signal
import subprocess
import sys

from finetune_fixtures import tiny_overrides, write_dataset, write_tiny_model

from llara_training.__main__ import main
from llara_training.loss_curve import LOSS_CSV, read_loss_csv, window_mean

CONFIGS = Path(__file__).resolve().parents[1] / 'configs'
SAMPLES = 8
STEPS = 50


def launch(overrides: list[str], timeout_s: float = 400.0) -> tuple[int, str]:
    """Run `accelerate launch` with the 2-process CPU config in its own process group.

    On a timeout the whole group (launcher, torchrun and both ranks) is killed, so no rank
    outlives the test.
    """
    command = [sys.executable, '-m', 'accelerate.commands.launch',
               '--config_file', str(CONFIGS / 'accelerate_cpu_2proc.yaml'),
               '-m', 'llara_training', 'finetune', *overrides]
    process = subprocess.Popen(command, env=dict(os.environ, OMP_NUM_THREADS='1'),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True)
    try:
        output, _ = process.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        return -1, f'timed out after {timeout_s} s\n{output}'
    return process.returncode, output


def test_two_processes_match_one_process(tmp_path, capsys):
    model = write_tiny_model(tmp_path / 'model')
    data = write_dataset(tmp_path / 'data', count=SAMPLES)
    one = tiny_overrides(model, data, tmp_path / 'one', per_device_batch_size=2)
    assert main(['finetune', *one]) == 0
    assert f'finetune: {STEPS} steps' in capsys.readouterr().out
    two = tiny_overrides(model, data, tmp_path / 'two', per_device_batch_size=1)
    returncode, output = launch(two)
    assert returncode == 0, output[-6000:]
    single = read_loss_csv(tmp_path / 'one' / LOSS_CSV)
    double = read_loss_csv(tmp_path / 'two' / LOSS_CSV)
    assert [p.step for p in single] == [p.step for p in double] == list(range(1, STEPS + 1))
    # epoch = steps x processes x per-device batch / samples: 12.5 only if both ranks trained
    # (one process with batch 1 would be at epoch 6.25).
    assert double[-1].epoch == single[-1].epoch == STEPS * 2 / SAMPLES
    for points in (single, double):
        assert window_mean(points, 10, last=True) < 0.5 * window_mean(points, 10, last=False)
    for ours, theirs in zip(double, single, strict=True):
        assert abs(ours.loss - theirs.loss) <= 1e-3 * theirs.loss, ours.step
