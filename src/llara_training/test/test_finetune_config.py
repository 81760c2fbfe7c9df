"""TrainConfig: YAML + key=value, round trip, errors naming keys; shipped recipes match spec 6."""
from dataclasses import fields
import json
from pathlib import Path

from accelerate.commands.config.config_args import load_config_from_file
import pytest
import yaml

from llara_policy.errors import ConfigError
from llara_policy.model.config import (
    TRAINING_CONFIG_FILE,
    PolicyConfig,
    check_trained_settings,
    read_trained_settings,
    trained_policy_config,
)
from llara_training.__main__ import main
from llara_training.finetune import train
from llara_training.train_config import (
    TrainConfig,
    load_config,
    load_saved_config,
    parse_override,
    save_config,
)

CONFIGS = Path(__file__).resolve().parents[1] / 'configs'
REQUIRED = ['model_path=m', 'data_path=d.json', 'output_dir=out']


def test_saved_config_loads_back_equal(tmp_path):
    config = load_config('', [*REQUIRED, 'mode=lora', 'learning_rate=2e-4', 'lora_r=16',
                              'lora_target_modules=q_proj,v_proj', 'bf16=false',
                              'num_train_epochs=3', 'image_folder=images dir'])
    path = save_config(config, tmp_path / 'run')
    assert path.name == TRAINING_CONFIG_FILE
    assert load_saved_config(tmp_path / 'run') == config
    defaults = TrainConfig(model_path='m', data_path='d.json', output_dir='out')
    changed = {f.name for f in fields(TrainConfig) if getattr(config, f.name) != getattr(
        defaults, f.name)}
    assert changed == {'mode', 'learning_rate', 'lora_r', 'lora_target_modules', 'bf16',
                       'num_train_epochs', 'image_folder'}


def test_overrides_are_typed_by_the_field():
    config = load_config('', [*REQUIRED, 'learning_rate=2e-5', 'num_train_epochs=1',
                              'max_steps=7', 'bf16=False', 'lora_modules_to_save=[a, b]',
                              'model_path=123'])
    assert config.learning_rate == 2e-5 and type(config.learning_rate) is float
    assert config.num_train_epochs == 1.0 and type(config.num_train_epochs) is float
    assert config.max_steps == 7 and config.bf16 is False
    assert config.lora_modules_to_save == ('a', 'b')
    assert config.model_path == '123'  # strings are taken literally


def test_yaml_file_then_overrides_in_that_order(tmp_path):
    path = tmp_path / 'run.yaml'
    path.write_text('model_path: m\ndata_path: d.json\noutput_dir: o\nlearning_rate: 1e-4\n'
                    'per_device_batch_size: 2\n')
    config = load_config(path, ['per_device_batch_size=3'])
    assert config.learning_rate == 1e-4 and config.per_device_batch_size == 3


@pytest.mark.parametrize('overrides, message', [
    (['learnig_rate=1e-4'], "unknown TrainConfig key 'learnig_rate'"),
    (['max_steps=1.5'], 'max_steps must be of type int'),
    (['bf16=yes'], 'bf16 must be true or false'),
    (['mode=prefix'], 'mode must be one of full, lora, qlora'),
    (['learning_rate=0'], 'learning_rate must be > 0'),
    (['per_device_batch_size=0'], 'per_device_batch_size must be >= 1'),
    (['lora_dropout=1.0'], 'lora_dropout must be >= 0.0 and < 1.0'),
    (['learning_rate=fast'], 'learning_rate must be of type float'),
    (['mode=lora', 'lora_target_modules='], 'lora_target_modules is empty'),
    (['novalue'], 'is not key=value'),
    (['mode=lora', 'freeze_vision_tower=false'], 'freeze_vision_tower false has no effect'),
])
def test_bad_keys_and_values_are_errors_naming_the_key(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config('', [*REQUIRED, *overrides])


def test_unknown_key_in_a_yaml_file_is_an_error(tmp_path):
    path = tmp_path / 'run.yaml'
    path.write_text('model_path: m\ndata_path: d\noutput_dir: o\nepochs: 3\n')
    with pytest.raises(ConfigError, match="unknown TrainConfig key 'epochs'"):
        load_config(path)


def test_missing_required_paths_are_errors():
    with pytest.raises(ConfigError, match='model_path must be set'):
        load_config('', ['data_path=d', 'output_dir=o'])


def test_qlora_without_cuda_fails_with_a_clear_error(tmp_path):
    config = load_config('', [*REQUIRED, 'mode=qlora', 'device=auto', 'tf32=false'])
    with pytest.raises(ConfigError, match=r'mode qlora .* needs a CUDA device'):
        train(config)


def test_deepspeed_without_the_package_is_named(tmp_path):
    config = load_config('', [*REQUIRED, 'device=cpu', f'deepspeed={CONFIGS / "zero3.json"}'])
    with pytest.raises(ConfigError, match='deepspeed package is not installed'):
        train(config)


def test_cli_prints_the_resolved_config_and_rejects_unknown_keys(capsys):
    assert main(['finetune', *REQUIRED, 'lora_r=4', '--print-config']) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed['lora_r'] == 4 and printed['model_path'] == 'm'
    assert main(['finetune', *REQUIRED, 'warmup=0.1']) == 2
    assert "unknown TrainConfig key 'warmup'" in capsys.readouterr().out


def test_full_recipe_matches_llara_spec_6_2():
    config = load_config(CONFIGS / 'llara_7b_full.yaml')
    # llara-spec 6.2 (llara_train.sh): full FT, CLIP frozen, 2 epochs, LR 2e-5, wd 0, warm-up
    # 0.03, cosine, batch 8 per device, accumulation 1, bf16 + tf32, gradient checkpointing,
    # model_max_length 2048; 6.1: Vicuna v1 prompts, image_aspect_ratio pad.
    assert (config.mode, config.freeze_vision_tower) == ('full', True)
    assert (config.num_train_epochs, config.learning_rate, config.weight_decay) == (2.0, 2e-5, 0)
    assert (config.warmup_ratio, config.lr_scheduler) == (0.03, 'cosine')
    assert (config.per_device_batch_size, config.gradient_accumulation_steps) == (8, 1)
    assert (config.bf16, config.tf32, config.gradient_checkpointing) == (True, True, True)
    assert config.model_max_length == 2048
    assert (config.prompt_format, config.pad_to_square) == ('vicuna_v1', True)
    assert Path(config.deepspeed).name == 'zero3.json'
    accelerate = load_config_from_file(str(CONFIGS / 'accelerate_zero3.yaml'))
    assert accelerate.distributed_type == 'DEEPSPEED'
    assert Path(accelerate.deepspeed_config['deepspeed_config_file']).name == 'zero3.json'
    # 4 GPUs x 8 = LLaRA's effective batch of 32 (train-llava/README.md).
    assert accelerate.num_processes * config.per_device_batch_size == 32


def test_zero3_config_is_stage_3_with_cpu_offload_and_no_scheduler():
    ds = json.loads((CONFIGS / 'zero3.json').read_text())
    zero = ds['zero_optimization']
    assert zero['stage'] == 3
    assert zero['offload_optimizer']['device'] == zero['offload_param']['device'] == 'cpu'
    assert zero['stage3_gather_16bit_weights_on_model_save'] is True  # full weights on save
    # Values the Trainer fills from TrainConfig, so the two cannot disagree.
    for key in ('train_micro_batch_size_per_gpu', 'gradient_accumulation_steps',
                'gradient_clipping'):
        assert ds[key] == 'auto'
    assert ds['bf16']['enabled'] == 'auto' and ds['optimizer']['params']['lr'] == 'auto'
    # No scheduler block: the Trainer's cosine schedule applies (spec 6.2 caveat on WarmupLR).
    assert 'scheduler' not in ds


def test_lora_recipe_and_cpu_launcher_parse():
    lora = load_config(CONFIGS / 'llara_7b_lora.yaml')
    # Upstream LLaVA finetune_task_lora.sh (spec 6.2): r 128, alpha 256, LR 2e-4.
    assert (lora.mode, lora.lora_r, lora.lora_alpha, lora.learning_rate) == (
        'lora', 128, 256, 2e-4)
    assert lora.per_device_batch_size * lora.gradient_accumulation_steps == 32
    cpu = load_config_from_file(str(CONFIGS / 'accelerate_cpu_2proc.yaml'))
    assert cpu.num_processes == 2 and cpu.use_cpu


def test_policy_reads_the_trained_settings_back(tmp_path):
    config = load_config('', [*REQUIRED, 'prompt_format=chat_template', 'pad_to_square=false'])
    save_config(config, tmp_path)
    assert read_trained_settings(str(tmp_path)) == {'prompt_format': 'chat_template',
                                                    'pad_to_square': False}
    policy = trained_policy_config(PolicyConfig(model_path=str(tmp_path)))
    assert (policy.prompt_format, policy.pad_to_square) == ('chat_template', False)
    check_trained_settings(policy)
    with pytest.raises(ConfigError, match="prompt_format is 'vicuna_v1' but .* trained with"):
        check_trained_settings(PolicyConfig(model_path=str(tmp_path)))
    # A checkpoint without a training config (a released LLaRA model) constrains nothing.
    assert read_trained_settings(str(tmp_path / 'released')) == {}
    (tmp_path / TRAINING_CONFIG_FILE).write_text('mode: full\n')
    with pytest.raises(ConfigError, match='lacks prompt_format, pad_to_square'):
        read_trained_settings(str(tmp_path))


def test_parse_override_keeps_string_values_verbatim():
    assert parse_override('output_dir=runs/a=b') == ('output_dir', 'runs/a=b')
