"""`llara_training small-model`: write a random-weight small LLaVA to train from scratch.

The model is `llara_policy.model.tiny_models`' LLaVA (CLIP vision tower, 2-layer projector,
Llama language model, byte-level BPE tokenizer trained on the template text), sized by a
`TinySpec` preset (`--preset`, default `demo`: the demo policy's size) with any size flag
overriding the preset's value. The directory is a complete Hugging Face model that
`finetune` starts from and `VlmPolicy` loads. Parameters and the fp32 / 16-bit weight sizes are
printed, so a shipping budget (the demo checkpoint: at most 25 MB) is checked before training.
"""
import argparse
from collections.abc import Sequence
from dataclasses import fields, replace
import math
from pathlib import Path

from llara_policy.errors import ConfigError, LlaraError
from llara_policy.model.tiny_models import DEMO, SMALL_30M, TINY, TinySpec

PRESETS: dict[str, TinySpec] = {'demo': DEMO, 'tiny': TINY, 'small_30m': SMALL_30M}
# TinySpec fields a flag can set: --image-size-px, --vision-hidden, ... (all ints).
SIZE_FIELDS = tuple(field.name for field in fields(TinySpec))
# Spread of CLIP-normalized pixel values on the embedded sim's frames (measured: 0.29).
PIXEL_STD = 0.3


def spec_from_args(preset: str, overrides: dict[str, int]) -> TinySpec:
    """Return the preset's TinySpec with `overrides` (field name -> value), checked."""
    if preset not in PRESETS:
        raise ConfigError(f'small-model --preset must be one of {", ".join(PRESETS)}, '
                          f'got {preset!r}')
    unknown = sorted(set(overrides) - set(SIZE_FIELDS))
    if unknown:
        raise ConfigError(f'small-model: unknown TinySpec field(s) {", ".join(unknown)}')
    spec = replace(PRESETS[preset], **overrides)
    check_spec(spec)
    return spec


def check_spec(spec: TinySpec) -> None:
    """ConfigError naming the size that a CLIP/Llama config would reject or misbuild."""
    positive = ('image_size_px', 'vision_hidden', 'vision_layers', 'vision_heads', 'text_hidden',
                'text_layers', 'text_heads', 'text_kv_heads', 'text_intermediate',
                'tokenizer_vocab_size')
    for name in positive:
        if getattr(spec, name) < 1:
            raise ConfigError(f'TinySpec.{name} must be >= 1, got {getattr(spec, name)}')
    if spec.model_vocab_size < 0 or spec.seed < 0:
        raise ConfigError('TinySpec.model_vocab_size and seed must be >= 0')
    for hidden, heads in (('vision_hidden', 'vision_heads'), ('text_hidden', 'text_heads')):
        if getattr(spec, hidden) % getattr(spec, heads):
            raise ConfigError(f'TinySpec.{hidden} {getattr(spec, hidden)} is not a multiple of '
                              f'{heads} {getattr(spec, heads)}')
    if spec.text_heads % spec.text_kv_heads:
        raise ConfigError(f'TinySpec.text_heads {spec.text_heads} is not a multiple of '
                          f'text_kv_heads {spec.text_kv_heads}')
    patch_px = 14  # tiny_models.PATCH_SIZE_PX
    if spec.image_size_px % patch_px:
        raise ConfigError(f'TinySpec.image_size_px {spec.image_size_px} is not a multiple of '
                          f'the {patch_px} px patch')


def squash_frames(processor, image_size_px: int) -> None:
    """Make `processor` resize a whole frame to image_size_px square (aspect not kept).

    LLaVA's processor pads to a square, then resizes the shortest edge and centre-crops: a 2:1
    sim frame then covers half of the patches. Squashed, all of them see the scene (the points
    stay normalized to the frame either way). Turning only the pad off would centre-crop away
    the frame's sides, so the crop goes too.
    """
    image_processor = processor.image_processor
    image_processor.do_pad = False
    image_processor.do_center_crop = False
    image_processor.size = {'height': image_size_px, 'width': image_size_px}


def sincos_positions(model, pixel_std: float = PIXEL_STD) -> None:
    """Set the vision tower's patch position embeddings to a fixed-pattern 2D sin-cos table.

    A from-scratch ViT's random position embeddings (std 0.02) are ~7x weaker than its patch
    embeddings, so image tokens barely say where they are and the language model has to find
    out first; MAE-style 2D sin-cos rows (half the channels encode the patch row, half the
    column, at geometric frequencies) make position readable from the first step and stay
    trainable. Scaled to the patch embeddings' output spread on frames whose normalized pixels
    spread like the sim's (`pixel_std`). The class token's row is zero (its output is dropped).
    """
    import torch

    embeddings = model.model.vision_tower.embeddings
    table = embeddings.position_embedding.weight
    side = math.isqrt(table.shape[0] - 1)
    quarter = table.shape[1] // 4
    frequencies = 1.0 / (100.0 ** (torch.arange(quarter) / quarter))
    rows, columns = torch.meshgrid(torch.arange(side, dtype=torch.float32),
                                   torch.arange(side, dtype=torch.float32), indexing='ij')
    angles = [grid.reshape(-1, 1) * frequencies for grid in (rows, columns)]
    patterns = torch.cat([part for angle in angles for part in (angle.sin(), angle.cos())], 1)
    patch_px = embeddings.patch_embedding.kernel_size[0]
    generator = torch.Generator().manual_seed(0)
    frames = torch.randn(4, 3, side * patch_px, side * patch_px, generator=generator) * pixel_std
    with torch.no_grad():
        spread = embeddings.patch_embedding(frames).std()
        table.zero_()
        table[1:, :patterns.shape[1]] = patterns * spread / patterns.std()


def check_feature_layer(spec: TinySpec, layer: int) -> None:
    """ConfigError unless `layer` names a vision hidden state LLaVA can read for `spec`.

    hidden_states holds the embeddings and one entry per layer, so -(layers + 1) .. layers are
    valid. 0 (the patch embeddings alone) is refused: transformers then skips
    output_hidden_states (0 is falsy) and fails.
    """
    count = spec.vision_layers + 1
    if type(layer) is not int or layer == 0 or not -count <= layer < count:
        raise ConfigError(f'vision_feature_layer must be in -{count}..-1 or 1..{count - 1} for '
                          f'{spec.vision_layers} vision layers, got {layer!r}')


def set_feature_layer(model, spec: TinySpec, layer: int) -> None:
    """Make LLaVA read the vision tower's hidden state `layer` (negative: from the end)."""
    check_feature_layer(spec, layer)
    model.config.vision_feature_layer = layer


def parse_frame_mean(text: str) -> tuple[float, float, float]:
    """Parse 'R,G,B' (each in [0, 1]): the per-channel mean frames are normalized with."""
    try:
        values = tuple(float(part) for part in text.split(','))
    except ValueError:
        values = ()
    if len(values) != 3 or not all(0.0 <= value <= 1.0 for value in values):
        raise ConfigError(f'frame mean must be three comma-separated values in [0, 1] (R,G,B), '
                          f'got {text!r}')
    return values


def frames_mean(folder: Path, limit: int = 500,
                episodes: Sequence[str] = ()) -> tuple[float, float, float]:
    """Per-channel mean (RGB, [0, 1]) of the camera frames (*.jpg) under `folder`.

    Only those under `folder/<episode id>/` of `episodes` when given (else every frame). Up
    to `limit` frames, evenly spread over the sorted paths (deterministic). The sim's frames
    are mostly table: normalized with CLIP's mean that table is a large constant in every patch
    that drowns the objects and their positions; with the frames' own mean the table is ~0
    and a from-scratch model locates objects many times sooner (README "Demo").
    """
    import cv2
    import numpy as np

    roots = [Path(folder) / name for name in episodes] if episodes else [Path(folder)]
    paths = sorted(path for root in roots for path in root.rglob('*.jpg'))
    if not paths:
        raise ConfigError(f'no camera frames (*.jpg) under {str(folder)!r} to take a mean of')
    chosen = paths[::max(1, len(paths) // limit)][:limit]
    sums = np.zeros(3)
    for path in chosen:
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise ConfigError(f'unreadable frame {str(path)!r}')
        sums += bgr[:, :, ::-1].reshape(-1, 3).mean(0) / 255.0
    return tuple(round(float(value), 4) for value in sums / len(chosen))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `llara_training small-model`."""
    parser.add_argument('--out', required=True, help='model directory to write (new or empty)')
    parser.add_argument('--preset', default='demo', help=f'one of {", ".join(PRESETS)}')
    parser.add_argument('--squash', action='store_true',
                        help="resize frames to the square (no 'pad', no centre crop): every "
                        'patch sees the scene; train and serve with pad_to_square false')
    parser.add_argument('--sincos-positions', action='store_true',
                        help='start the vision tower from 2D sin-cos patch positions (MAE) '
                        'instead of random ones: grounding is learnt sooner from scratch')
    parser.add_argument('--frame-mean', default='',
                        help="R,G,B in [0, 1]: normalize frames with this per-channel mean "
                        "instead of CLIP's (e.g. the training frames' mean; the recipe's "
                        'model.frame_mean: data computes it)')
    parser.add_argument('--vision-feature-layer', type=int, default=-2,
                        help='the vision tower layer LLaVA reads (vision_feature_layer): -2, '
                        "LLaVA's (the penultimate: a pretrained CLIP's last layer is shaped by "
                        'its contrastive head) or -1, the last (a from-scratch tower has no such '
                        'head: -2 leaves its last layer unused)')
    for name in SIZE_FIELDS:
        parser.add_argument('--' + name.replace('_', '-'), type=int, default=None,
                            dest=name, help=f'override TinySpec.{name}')


def run(args: argparse.Namespace) -> int:
    """Write the model; 0 on success, 2 with the reason for a bad size or output directory."""
    from llara_policy.model.tiny_models import build_tiny_llava  # torch: only when writing

    overrides = {name: getattr(args, name) for name in SIZE_FIELDS
                 if getattr(args, name) is not None}
    try:
        spec = spec_from_args(args.preset, overrides)
        out = Path(args.out)
        if out.exists() and (not out.is_dir() or any(out.iterdir())):
            raise ConfigError(f'small-model --out {str(out)!r} exists and is not an empty '
                              'directory (nothing is overwritten)')
        mean = parse_frame_mean(args.frame_mean) if args.frame_mean else ()
        model, processor = build_tiny_llava(spec)
        if mean:
            processor.image_processor.image_mean = list(mean)
        if args.squash:
            squash_frames(processor, spec.image_size_px)
        if args.sincos_positions:
            sincos_positions(model)
        set_feature_layer(model, spec, args.vision_feature_layer)
        model.save_pretrained(out)
        processor.save_pretrained(out)
    except LlaraError as error:
        print(f'small-model: {type(error).__name__}: {error}')
        return 2
    count = sum(parameter.numel() for parameter in model.parameters())
    frames = (f', frame mean {args.frame_mean}' if args.frame_mean else '') + (
        ', squashed frames' if args.squash else '') + (
        ', sin-cos positions' if args.sincos_positions else '')
    print(f'small-model: wrote {out} ({args.preset} preset'
          f'{" + overrides" if overrides else ""}{frames}): {count:,} parameters, '
          f'{4 * count / 1e6:.1f} MB fp32 / {2 * count / 1e6:.1f} MB bf16; {spec}')
    return 0


if __name__ == '__main__':
    import sys

    parser = argparse.ArgumentParser(prog='python -m llara_training.small_model',
                                     description=__doc__.split('\n')[0])
    add_arguments(parser)
    sys.exit(run(parser.parse_args()))
