"""PolicyConfig validation and model loading: round trips, quantization on CPU, clear errors."""
import json
import logging
import shutil

import numpy as np
import pytest
import torch

from llara_policy.errors import ConfigError, ModelError
from llara_policy.model import tiny_models
from llara_policy.model.config import PolicyConfig
from llara_policy.model.dtype_choice import (
    CpuFeatures,
    choose_auto_dtype,
    detect_cpu_features,
    read_cpu_flags,
    resolve_dtype,
)
from llara_policy.model.loading import check_model_directory, load_model
from llara_policy.model.policy import VlmPolicy
from llara_policy.types import Observation

NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason='checks CPU-only behaviour')
TASK = 'Put the <p>red block</p> into the <p>bowl</p>.'


@pytest.fixture(scope='module')
def tiny_dir(tmp_path_factory):
    return tiny_models.save_tiny_llava(tmp_path_factory.mktemp('tiny'))


def observation() -> Observation:
    return Observation(np.random.default_rng(0).integers(0, 256, (128, 256, 3), dtype=np.uint8))


def test_default_config_is_valid_and_uses_ros_parameter_types_only():
    config = PolicyConfig()
    for value in vars(config).values():
        assert type(value) in (bool, int, float, str)


@pytest.mark.parametrize('field, value', [
    ('device', 'gpu'), ('dtype', 'half'), ('quantization', '4bit'), ('decoding', 'beam'),
    ('attn_implementation', 'flash'), ('prompt_format', 'llama'), ('action_spacing', 'wide'),
    ('max_new_tokens', 0), ('max_answer_steps', -1), ('cpu_threads', -2),
    ('max_new_tokens', True), ('pad_to_square', 1), ('user_prompt_id', '3'), ('model_path', None),
])
def test_bad_config_values_name_the_field(field, value):
    with pytest.raises(ConfigError, match=field):
        PolicyConfig(**{field: value})


def test_dynamic_int8_needs_float32():
    with pytest.raises(ConfigError, match='dynamic_int8'):
        PolicyConfig(quantization='dynamic_int8', dtype='bfloat16')


@pytest.mark.parametrize('path, message', [
    ('', 'model_path is empty'), ('/nonexistent/model', 'does not exist')])
def test_wrong_model_paths_are_named(path, message):
    with pytest.raises(ModelError, match=message):
        check_model_directory(path)


@pytest.mark.parametrize('remove, message', [
    ('config.json', 'no config.json'), ('model.safetensors', 'no weights'),
    ('processor_config.json', 'no processor'), ('tokenizer.json', 'no tokenizer')])
def test_missing_files_are_named(tiny_dir, tmp_path, remove, message):
    directory = shutil.copytree(tiny_dir, tmp_path / 'model')
    (directory / remove).unlink()
    if remove == 'tokenizer.json':
        (directory / 'tokenizer_config.json').unlink()
    with pytest.raises(ModelError, match=message):
        load_model(PolicyConfig(model_path=str(directory)))


def test_an_original_layout_checkpoint_points_to_the_import_command(tiny_dir, tmp_path):
    directory = shutil.copytree(tiny_dir, tmp_path / 'model')
    config = json.loads((directory / 'config.json').read_text())
    config['mm_vision_tower'] = 'openai/clip-vit-large-patch14-336'
    (directory / 'config.json').write_text(json.dumps(config))
    with pytest.raises(ModelError, match='llara_import_checkpoint'):
        check_model_directory(str(directory))


def test_a_processor_for_another_image_size_is_rejected(tiny_dir, tmp_path):
    directory = shutil.copytree(tiny_dir, tmp_path / 'model')
    other = tiny_models.build_processor(tiny_models.TinySpec(image_size_px=56))
    other.save_pretrained(directory)
    with pytest.raises(ModelError, match='processor does not match'):
        load_model(PolicyConfig(model_path=str(directory), dtype='float32'))


@NO_CUDA
@pytest.mark.parametrize('options, message', [
    ({'device': 'cuda'}, 'needs CUDA'), ({'device': 'cuda:1'}, 'needs CUDA'),
    ({'attn_implementation': 'flash_attention_2'}, 'flash_attention_2'),
    ({'dtype': 'float16'}, 'float16'),
])
def test_cuda_only_options_fail_on_cpu_with_their_name(tiny_dir, options, message):
    with pytest.raises(ConfigError, match=message):
        load_model(PolicyConfig(model_path=str(tiny_dir), **options))


AVX2 = CpuFeatures('AVX2', frozenset({'fpu', 'sse4_2', 'avx', 'avx2', 'fma'}), 'x86_64')
SKYLAKE_X = CpuFeatures('AVX512', frozenset({'avx2', 'avx512f', 'avx512bw'}), 'x86_64')
SAPPHIRE_RAPIDS = CpuFeatures('AVX512', frozenset({'avx2', 'avx512f', 'avx512_bf16',
                                                   'amx_tile', 'amx_bf16'}), 'x86_64')
GRAVITON3 = CpuFeatures('SVE256', frozenset({'fp', 'asimd', 'sve', 'bf16'}), 'aarch64')
JETSON_ORIN = CpuFeatures('DEFAULT', frozenset({'fp', 'asimd', 'asimddp'}), 'aarch64')


@pytest.mark.parametrize('cpu, dtype, words', [
    (AVX2, torch.float32, ('float32', 'AVX2', 'no native bf16')),
    (SKYLAKE_X, torch.float32, ('float32', 'AVX512', 'no native bf16')),
    (SAPPHIRE_RAPIDS, torch.bfloat16, ('bfloat16', 'avx512_bf16', 'amx_bf16')),
    (GRAVITON3, torch.bfloat16, ('bfloat16', 'native bf16 (bf16')),
    (JETSON_ORIN, torch.float32, ('float32', 'aarch64', 'no bf16 flag')),
    (CpuFeatures('AVX2', frozenset(), 'x86_64'), torch.float32, ('float32', 'flags unknown')),
])
def test_auto_dtype_on_cpu_follows_native_bf16_support(cpu, dtype, words):
    choice = resolve_dtype(PolicyConfig(), torch.device('cpu'), cpu)
    assert choice.dtype is dtype
    assert all(word in choice.reason for word in words), choice.reason


def test_auto_dtype_on_cuda_is_float16_whatever_the_cpu():
    choice = choose_auto_dtype('cuda', AVX2)
    assert choice.dtype is torch.float16 and choice.reason.startswith('float16: CUDA')


@pytest.mark.parametrize('config, dtype, reason', [
    (PolicyConfig(quantization='dynamic_int8'), torch.float32, 'dynamic_int8'),
    (PolicyConfig(dtype='bfloat16'), torch.bfloat16, 'set by PolicyConfig.dtype'),
    (PolicyConfig(dtype='float32'), torch.float32, 'set by PolicyConfig.dtype'),
])
def test_explicit_dtypes_win_over_the_cpu_and_say_so(config, dtype, reason):
    choice = resolve_dtype(config, torch.device('cpu'), SAPPHIRE_RAPIDS if dtype is
                           torch.float32 else AVX2)
    assert choice.dtype is dtype and reason in choice.reason


@pytest.mark.parametrize('text, flags', [
    ('processor\t: 0\nflags\t\t: fpu avx2 avx512_bf16\n\nprocessor\t: 1\nflags\t: fpu\n',
     {'fpu', 'avx2', 'avx512_bf16'}),
    ('processor\t: 0\nFeatures\t: fp asimd bf16 sve\nCPU part\t: 0xd40\n',
     {'fp', 'asimd', 'bf16', 'sve'}),
    ('processor\t: 0\nmodel name\t: something\n', set()),
])
def test_cpu_flags_are_read_from_the_first_cpu_of_cpuinfo(tmp_path, text, flags):
    cpuinfo = tmp_path / 'cpuinfo'
    cpuinfo.write_text(text)
    assert read_cpu_flags(cpuinfo) == flags
    assert read_cpu_flags(tmp_path / 'missing') == frozenset()


@NO_CUDA
def test_loading_with_dtype_auto_reports_and_logs_the_choice(tiny_dir, caplog):
    expected = choose_auto_dtype('cpu', detect_cpu_features())
    with caplog.at_level(logging.INFO, logger='llara_policy.model.loading'):
        policy = VlmPolicy.load(PolicyConfig(model_path=str(tiny_dir), max_answer_steps=1))
    assert policy.loaded.dtype is expected.dtype
    assert policy.loaded.dtype_reason == expected.reason
    assert next(p for p in policy.model.parameters()).dtype is expected.dtype
    logged = [r.getMessage() for r in caplog.records if expected.reason in r.getMessage()]
    assert len(logged) == 1 and str(tiny_dir) in logged[0]


@pytest.mark.parametrize('damage', ['truncate', 'garbage', 'empty'])
def test_a_corrupt_safetensors_file_is_named(tiny_dir, tmp_path, damage):
    directory = shutil.copytree(tiny_dir, tmp_path / 'model')
    weights = directory / 'model.safetensors'
    data = weights.read_bytes()
    weights.write_bytes({'truncate': data[:len(data) // 2], 'garbage': b'not a tensor file' * 4,
                         'empty': b''}[damage])
    with pytest.raises(ModelError, match='corrupt or truncated') as raised:
        load_model(PolicyConfig(model_path=str(directory), dtype='float32'))
    assert str(weights) in str(raised.value)


def test_save_and_load_round_trip_gives_identical_logits(tiny_dir):
    original, processor = tiny_models.build_tiny_llava()
    loaded = load_model(PolicyConfig(model_path=str(tiny_dir), dtype='float32', device='cpu'))
    policy = VlmPolicy(PolicyConfig(), loaded)
    inputs = policy.encode(observation(), TASK)
    with torch.inference_mode():
        expected = original(**inputs).logits
        actual = loaded.model(**inputs).logits
    assert torch.equal(expected, actual)
    reference = processor(images=np.zeros((8, 8, 3), np.uint8), text='<image> hi',
                          return_tensors='pt')
    again = loaded.processor(images=np.zeros((8, 8, 3), np.uint8), text='<image> hi',
                             return_tensors='pt')
    assert torch.equal(reference['input_ids'], again['input_ids'])
    assert torch.equal(reference['pixel_values'], again['pixel_values'])


@pytest.mark.parametrize('quantization, layer', [
    ('int8', '.Linear8bitLt'), ('nf4', '.Linear4bit'),
    ('dynamic_int8', 'quantized.dynamic.modules.linear.Linear')])
def test_quantized_models_load_and_answer_on_cpu(tiny_dir, quantization, layer):
    dtype = 'float32' if quantization == 'dynamic_int8' else 'bfloat16'
    policy = VlmPolicy.load(PolicyConfig(model_path=str(tiny_dir), quantization=quantization,
                                         dtype=dtype, max_answer_steps=1))
    kinds = {name: f'{type(module).__module__}.{type(module).__name__}'
             for name, module in policy.model.named_modules() if name.endswith('q_proj')}
    text_layers = [kind for name, kind in kinds.items() if 'language_model' in name]
    assert text_layers and all(kind.endswith(layer) for kind in text_layers)
    if quantization != 'dynamic_int8':  # the vision tower stays in full precision
        assert all(kind == 'torch.nn.modules.linear.Linear' for name, kind in kinds.items()
                   if 'vision_tower' in name)
    result = policy.select_action(observation(), TASK)
    assert len(result.steps) == 1
