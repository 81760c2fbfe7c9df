"""`llara_training small-model` and the demo recipe: sizes written as asked, bad sizes refused,
the demo preset within the shipped checkpoint's 25 MB, configs/demo_recipe.yaml and
demo_curve.yaml valid recipes."""
from pathlib import Path

import numpy as np
import pytest
from transformers import AutoConfig, AutoModelForImageTextToText, AutoProcessor

from llara_policy.errors import ConfigError
from llara_policy.model.config import PolicyConfig
from llara_policy.model.policy import VlmPolicy
from llara_policy.model.tiny_models import DEMO, build_tiny_llava
from llara_policy.types import Effector, Observation
from llara_training.__main__ import main
from llara_training.recipe_config import load_recipe
from llara_training.small_model import spec_from_args

CONFIGS = Path(__file__).resolve().parents[1] / 'configs'
SHIPPED_LIMIT_BYTES = 25_000_000  # the demo checkpoint's budget (issue "make demo")


def test_cli_writes_the_preset_with_overridden_sizes(tmp_path, capsys):
    out = tmp_path / 'model'
    assert main(['small-model', '--out', str(out), '--preset', 'tiny', '--image-size-px', '56',
                 '--vision-hidden', '48', '--text-layers', '3', '--text-hidden', '96']) == 0
    config = AutoConfig.from_pretrained(out)
    assert config.vision_config.image_size == 56 and config.vision_config.hidden_size == 48
    assert config.text_config.num_hidden_layers == 3 and config.text_config.hidden_size == 96
    assert config.image_seq_length == (56 // 14) ** 2  # 14 px patches
    model = AutoModelForImageTextToText.from_pretrained(out)
    count = sum(parameter.numel() for parameter in model.parameters())
    assert f'{count:,} parameters' in capsys.readouterr().out
    # A complete model directory: the policy loads it and answers a query (template decoding).
    policy = VlmPolicy.load(PolicyConfig(model_path=str(out), device='cpu', dtype='float32',
                                         max_answer_steps=1, cpu_threads=1))
    rgb = np.zeros((32, 64, 3), np.uint8)
    result = policy.select_action(Observation(rgb, Effector.SUCTION), 'Put the <p>red block</p> '
                                  'into the <p>green bowl</p>.')
    assert len(result.steps) == 1


def test_squash_resizes_the_whole_frame_without_pad_or_crop(tmp_path):
    out = tmp_path / 'model'
    assert main(['small-model', '--out', str(out), '--preset', 'tiny', '--squash']) == 0
    processor = AutoProcessor.from_pretrained(out)
    rgb = np.zeros((32, 64, 3), np.uint8)  # 2:1 frame: left quarter red, the rest blue
    rgb[:, :16, 0] = 255
    rgb[:, 16:, 2] = 255
    pixels = processor.image_processor(rgb, return_tensors='pt')['pixel_values'][0]
    size = 28  # the tiny preset's image size
    assert tuple(pixels.shape) == (3, size, size)
    red = pixels[0] > pixels[2]  # (size, size): where the frame's red quarter landed
    # Squashed: every row holds the frame (no pad rows), the red quarter spans the left
    # quarter of the columns (no centre crop cut it away); a 1-column margin for resampling.
    assert red[:, :size // 4 - 1].all() and not red[:, size // 4 + 1:].any()


def test_sincos_positions_make_each_patch_position_distinct_and_seed_independent(tmp_path):
    import torch

    tables = []
    for seed in (0, 1):
        out = tmp_path / f'model{seed}'
        assert main(['small-model', '--out', str(out), '--preset', 'tiny', '--seed', str(seed),
                     '--sincos-positions']) == 0
        model = AutoModelForImageTextToText.from_pretrained(out)
        tables.append(model.model.vision_tower.embeddings.position_embedding.weight.detach())
    random_table = build_tiny_llava(DEMO)[0].model.vision_tower.embeddings \
        .position_embedding.weight.detach()
    table = tables[0]
    side = 28 // 14  # tiny preset: 2 x 2 patches after the class token
    assert table.shape[0] == 1 + side * side
    # A fixed pattern, not a draw: two seeds give the same table up to its scale (set from
    # each model's own patch embeddings).
    assert torch.allclose(tables[0] / tables[0].std(), tables[1] / tables[1].std(), atol=1e-6)
    assert not table[0].any()  # the class token's row (dropped by LLaVA) is zero
    patches = table[1:]
    half = patches.shape[1] // 2
    # Patches of one row share the row half and differ in the column half, and vice versa.
    for first in range(side * side):
        for second in range(first + 1, side * side):
            same_row = first // side == second // side
            same_column = first % side == second % side
            assert torch.equal(patches[first, :half], patches[second, :half]) == same_row
            assert torch.equal(patches[first, half:], patches[second, half:]) == same_column
    # Much stronger than CLIP's random init (std 0.02): position is visible from step one.
    assert patches.std() > 3 * random_table[1:].std()


def test_vision_feature_layer_minus_one_feeds_the_last_vision_layer(tmp_path):
    import torch

    features = {}
    for layer in (-2, -1):
        out = tmp_path / f'layer{layer}'
        assert main(['small-model', '--out', str(out), '--preset', 'tiny',
                     f'--vision-feature-layer={layer}']) == 0
        model = AutoModelForImageTextToText.from_pretrained(out)
        assert model.config.vision_feature_layer == layer
        last = model.model.vision_tower.encoder.layers[-1]
        pixels = torch.randn(1, 3, 28, 28, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            before = model.model.get_image_features(pixel_values=pixels)
            last.mlp.fc2.weight.add_(1.0)  # change only the last vision layer
            after = model.model.get_image_features(pixel_values=pixels)
        features[layer] = [torch.cat([t.reshape(-1) for t in _tensors(x)])
                           for x in (before, after)]
    # LLaVA's default (-2) never reads the last layer of a from-scratch tower; -1 does.
    assert torch.equal(*features[-2])
    assert not torch.allclose(*features[-1])


def _tensors(output):
    """The image-feature tensors of get_image_features (a tensor, a list or a model output)."""
    import torch

    if isinstance(output, torch.Tensor):
        return [output]
    if isinstance(output, (list, tuple)):
        return [t for item in output for t in _tensors(item)]
    return _tensors(output.pooler_output)


def test_frame_mean_makes_that_colour_zero_and_bad_values_are_refused(tmp_path, capsys):
    out = tmp_path / 'model'
    assert main(['small-model', '--out', str(out), '--preset', 'tiny', '--squash',
                 '--frame-mean', '0.8,0.6,0.4']) == 0
    processor = AutoProcessor.from_pretrained(out)
    rgb = np.empty((32, 64, 3), np.uint8)
    rgb[:] = (204, 153, 102)  # exactly 0.8, 0.6, 0.4
    pixels = processor.image_processor(rgb, return_tensors='pt')['pixel_values'][0]
    assert float(pixels.abs().max()) < 1e-5  # the mean colour normalizes to zero
    for bad in ('0.8,0.6', '0.8,0.6,1.5', 'red'):
        target = tmp_path / f'bad{len(bad)}'
        assert main(['small-model', '--out', str(target), '--preset', 'tiny',
                     '--frame-mean', bad]) == 2
        assert 'frame mean must be three' in capsys.readouterr().out
        assert not target.exists()


def test_frames_mean_is_the_per_channel_mean_of_the_jpg_frames(tmp_path):
    import cv2

    from llara_training.small_model import frames_mean

    colours = [(200, 100, 50), (100, 50, 250)]  # RGB of two uniform frames
    for index, rgb in enumerate(colours):
        folder = tmp_path / f'ep{index}' / 'rgb_front'
        folder.mkdir(parents=True)
        frame = np.empty((16, 32, 3), np.uint8)
        frame[:] = rgb[::-1]  # OpenCV writes BGR
        cv2.imwrite(str(folder / '0.jpg'), frame)
        cv2.imwrite(str(folder / 'crop.png'), np.zeros((8, 8, 3), np.uint8))  # not a frame
    expected = np.mean(colours, axis=0) / 255.0
    assert np.allclose(frames_mean(tmp_path), expected, atol=3 / 255)
    with pytest.raises(ConfigError, match='no camera frames'):
        frames_mean(tmp_path / 'ep0' / 'nothing')


@pytest.mark.parametrize('layer', ['0', '-4', '3'])
def test_vision_feature_layer_out_of_range_is_refused(tmp_path, capsys, layer):
    out = tmp_path / 'model'
    # The tiny preset has 2 vision layers: hidden states -3..-1 (or 1..2) exist.
    assert main(['small-model', '--out', str(out), '--preset', 'tiny',
                 f'--vision-feature-layer={layer}']) == 2
    assert 'vision_feature_layer must be in -3..-1 or 1..2' in capsys.readouterr().out
    assert not out.exists() or not any(out.iterdir())


def test_cli_never_overwrites_a_directory_with_files(tmp_path, capsys):
    out = tmp_path / 'model'
    out.mkdir()
    (out / 'keep.txt').write_text('mine')
    assert main(['small-model', '--out', str(out), '--preset', 'tiny']) == 2
    assert 'exists and is not an empty directory' in capsys.readouterr().out
    assert [path.name for path in out.iterdir()] == ['keep.txt']


@pytest.mark.parametrize(('preset', 'overrides', 'message'), [
    ('huge', {}, "--preset must be one of demo, tiny, small_30m, got 'huge'"),
    ('tiny', {'vision_hidden': 33}, 'vision_hidden 33 is not a multiple of vision_heads 2'),
    ('tiny', {'text_heads': 4, 'text_kv_heads': 3}, 'text_heads 4 is not a multiple of '
     'text_kv_heads 3'),
    ('tiny', {'image_size_px': 100}, 'image_size_px 100 is not a multiple of the 14 px patch'),
    ('tiny', {'text_layers': 0}, 'text_layers must be >= 1, got 0'),
    ('tiny', {'depth': 3}, 'unknown TinySpec field(s) depth'),
])
def test_bad_sizes_are_refused_naming_the_size(preset, overrides, message):
    with pytest.raises(ConfigError, match=message.replace('(', r'\(').replace(')', r'\)')):
        spec_from_args(preset, overrides)


def test_demo_preset_fits_the_shipped_checkpoint_budget_in_16_bit():
    model, _ = build_tiny_llava(DEMO)
    count = sum(parameter.numel() for parameter in model.parameters())
    assert 2 * count <= SHIPPED_LIMIT_BYTES  # bf16/fp16: 2 bytes per weight
    assert count > 1_000_000  # a real model, not the 100k-parameter test size


@pytest.mark.parametrize('name', ['demo_recipe.yaml', 'demo_curve.yaml'])
def test_demo_recipes_are_valid_from_scratch_cpu_configs(name):
    recipe = load_recipe(CONFIGS / name)
    assert recipe.model.preset == 'demo' and recipe.model.squash
    configs = [recipe.train_config(stage, 'm', 'd.json', 'i', 'o') for stage in recipe.stages]
    for config in configs:
        # From random weights the vision tower must learn too: frozen it would stay noise.
        assert config.mode == 'full' and not config.freeze_vision_tower
        # Our machines: 2 cores, no GPU.
        assert config.device == 'cpu' and 1 <= config.cpu_threads <= 2 and not config.bf16
        assert config.max_steps > 0 and not config.pad_to_square  # squashed frames
    # LLaVA's two stages: localization alignment in 'plain', then the served format (the demo
    # recipe goes on in it on more episodes).
    assert [c.prompt_format for c in configs][:2] == ['plain', 'vicuna_v1']
    assert all(c.prompt_format == 'vicuna_v1' for c in configs[1:])
    # Stage 1 on localization data (aux, or the mixture that holds it); then LLaRA's mixture.
    assert recipe.stages[0].data in ('aux', 'mixture')
    assert all(stage.data == 'mixture' for stage in recipe.stages[1:])
    assert recipe.convert.aux_ratio['obj_det'] > 0 and recipe.convert.aux_ratio['obj_loc'] > 0
