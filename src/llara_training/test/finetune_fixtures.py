"""A tiny random LLaVA and a small fixed LLaVA-JSON dataset with real images, for finetune tests.

Each sample is a LLaRA behaviour-cloning turn written by `prompting` (`<image0>`, task, action
instruction) whose answer is one pick-and-place step at the centre of a coloured square drawn
on the sample's frame, so the answer depends on the image.
"""
import json
from pathlib import Path
import random

import numpy as np
from PIL import Image

from llara_policy.model.tiny_models import TINY, random_object, save_tiny_llava
from llara_policy.text import prompting
from llara_policy.types import ActionStep, Effector, ImagePoint

FRAME_WIDTH_PX, FRAME_HEIGHT_PX = 64, 32  # the model frame's 2:1 aspect, small


def write_frame(path: Path, center_px: tuple[int, int], color_rgb: tuple[int, int, int]) -> None:
    """A grey frame with an 8x8 square of `color_rgb` centred at `center_px` (u, v)."""
    frame = np.full((FRAME_HEIGHT_PX, FRAME_WIDTH_PX, 3), 90, dtype=np.uint8)
    u, v = center_px
    frame[v - 4:v + 4, u - 4:u + 4] = color_rgb
    Image.fromarray(frame).save(path)


def load_frame_rgb(path: Path) -> np.ndarray:
    """A frame file as an (H, W, 3) uint8 array, read with PIL."""
    return np.asarray(Image.open(path).convert('RGB'))


def sample_record(index: int, rng: random.Random, image_name: str) -> tuple[dict, tuple]:
    """One LLaVA-JSON sample and the (u, v) pixel of its square."""
    u, v = rng.randrange(6, FRAME_WIDTH_PX - 6), rng.randrange(6, FRAME_HEIGHT_PX - 6)
    target = ImagePoint(round(rng.random(), 3), round(rng.random(), 3))
    pick = ImagePoint(round(u / FRAME_WIDTH_PX, 3), round(v / FRAME_HEIGHT_PX, 3))
    name = random_object(rng)
    step = ActionStep(pick, target, rng.choice((0, 90, -45)), name, Effector.SUCTION, 1)
    turn = prompting.build_user_turn(f'Put the <p>{name}</p> into the bowl.', Effector.SUCTION)
    record = {'id': f'episode_{index}_0', 'image': [image_name],
              'conversations': [{'from': 'human', 'value': turn},
                                {'from': 'gpt', 'value': prompting.format_answer([step])}]}
    return record, (u, v)


def write_dataset(directory: Path, count: int = 8, seed: int = 0) -> Path:
    """Write `count` samples (frames under `images/`) and `data.json`; returns the JSON path."""
    rng = random.Random(seed)
    (directory / 'images').mkdir(parents=True, exist_ok=True)
    records = []
    for index in range(count):
        image_name = f'images/{index}.png'
        record, center = sample_record(index, rng, image_name)
        write_frame(directory / image_name, center,
                    tuple(rng.randrange(256) for _ in range(3)))
        records.append(record)
    path = directory / 'data.json'
    path.write_text(json.dumps(records, indent=1))
    return path


def write_tiny_model(directory: Path) -> Path:
    """Save the repo's tiny random LLaVA (28 px images, 4 image tokens) to `directory`."""
    return save_tiny_llava(directory, TINY)


def tiny_overrides(model: Path, data: Path, output: Path, **extra) -> list[str]:
    """key=value overrides of a seconds-long CPU run on the tiny model."""
    values = {'model_path': model, 'data_path': data, 'output_dir': output, 'device': 'cpu',
              'bf16': False, 'gradient_checkpointing': False, 'per_device_batch_size': 2,
              'learning_rate': 3e-3, 'warmup_ratio': 0.0, 'lr_scheduler': 'constant',
              'max_steps': 50, 'save_steps': 25, 'logging_steps': 1, 'seed': 0,
              'mode': 'full', 'lora_r': 8, 'lora_alpha': 16, 'lora_dropout': 0.0, 'cpu_threads': 1}
    values.update(extra)
    return [f'{key}={value}' for key, value in values.items()]
