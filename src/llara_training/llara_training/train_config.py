"""`TrainConfig`: everything a fine-tuning run needs, from `--config file.yaml` + `key=value`.

Defaults follow LLaRA's recipe (llara-spec 6.2: full fine-tuning of LLaVA-1.5-7B with the CLIP
tower frozen, 2 epochs, LR 2e-5, cosine, warm-up 0.03, batch 8, bf16, gradient checkpointing).
Unknown keys and values of the wrong type are `ConfigError`s naming the key. The resolved config
is written as `training_config.yaml` beside every checkpoint, so evaluation and the policy node
read the prompt and image settings back (`llara_policy.model.config.trained_policy_config`).
"""
from dataclasses import asdict, dataclass, fields
import math
from pathlib import Path
import typing

import yaml

from llara_policy.errors import ConfigError
from llara_policy.model.config import ATTENTION, PROMPT_FORMATS, TRAINING_CONFIG_FILE

MODES = ('full', 'lora', 'qlora')  # qlora: LoRA on a bitsandbytes 4-bit NF4 base (CUDA only)
DEVICES = ('auto', 'cpu', 'cuda')
# The serving formats plus LLaVA's stage-1 'plain' (images, then the answer: the question text is
# dropped), a training-only format for a grounding pre-stage; a policy cannot be served with it.
TRAIN_PROMPT_FORMATS = (*PROMPT_FORMATS, 'plain')
SCHEDULERS = ('cosine', 'linear', 'constant', 'constant_with_warmup')
# The language model's linear layers (Llama/Vicuna, Qwen2): LLaVA's LoRA scripts adapt every
# linear layer of the LLM (find_all_linear_names) and none of the vision tower or projector.
LLM_LINEAR_LAYERS = ('q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj')


@dataclass(frozen=True)
class TrainConfig:
    """Settings of one fine-tuning run (`llara_training finetune`).

    Args:
        model_path: Hugging Face image-text-to-text model directory to start from.
        data_path: LLaVA JSON list of {id, image: [paths], conversations: [human, gpt]}.
        image_folder: folder the image paths are relative to; '' = the JSON file's folder.
        output_dir: where checkpoints, the final model, the config and the loss curve go.
        mode: 'full', 'lora' or 'qlora'.
        lora_r, lora_alpha, lora_dropout: LoRA rank, scale numerator and dropout (LLaVA's LoRA
            scripts: 128, 256, 0.05).
        lora_target_modules: names of the language model's linear layers that get adapters
            (vision tower and projector layers never do).
        lora_modules_to_save: modules trained in full and saved with the adapter (LLaVA trains
            the projector fully in its LoRA runs).
        merge_lora: after a LoRA run, also write the merged full model to `output_dir/merged`.
        freeze_vision_tower: keep the vision tower's weights fixed (LLaRA, LLaVA).
        prompt_format: 'vicuna_v1' (LLaRA), 'chat_template' (the processor's own template) or
            'plain' (LLaVA's stage-1 feature-alignment template: images + answer, no question).
        pad_to_square: LLaVA 'pad': pad frames to a square of the image mean colour first.
        model_max_length: longest sample in tokens (image tokens included); longer is an error.
        learning_rate, weight_decay, warmup_ratio, lr_scheduler: optimiser schedule.
        num_train_epochs: epochs to train unless `max_steps` > 0, which takes precedence.
        per_device_batch_size, gradient_accumulation_steps: effective batch = their product
            times the number of processes.
        bf16: bfloat16 mixed precision; tf32: TF32 matmuls (CUDA only).
        gradient_checkpointing: recompute activations in the backward pass (less memory).
        device: 'auto' (CUDA when available), 'cpu' or 'cuda'.
        deepspeed: DeepSpeed JSON config path (e.g. configs/zero3.json); '' = none.
        attn_implementation: 'sdpa', 'eager' or 'flash_attention_2' (CUDA only).
        seed: seed of weights init (LoRA), data order and dropout.
        save_steps, save_total_limit: checkpoint every N optimiser steps, keep the last K.
        logging_steps: log the loss every N steps (the loss curve's resolution).
        dataloader_num_workers: data loading worker processes.
        cpu_threads: torch intra-op threads per process on CPU; 0 keeps torch's default
            (1 is fastest for tiny models and for several processes sharing a few cores).
        resume: continue from the last checkpoint in output_dir when there is one; false with
            checkpoints present is an error (nothing is overwritten silently).
        report_to: 'none', 'tensorboard', 'wandb', ... (transformers' report_to).
    """

    model_path: str = ''
    data_path: str = ''
    image_folder: str = ''
    output_dir: str = ''
    mode: str = 'full'
    lora_r: int = 128
    lora_alpha: int = 256
    lora_dropout: float = 0.05
    lora_target_modules: tuple[str, ...] = LLM_LINEAR_LAYERS
    lora_modules_to_save: tuple[str, ...] = ('multi_modal_projector',)
    merge_lora: bool = True
    freeze_vision_tower: bool = True
    prompt_format: str = 'vicuna_v1'
    pad_to_square: bool = True
    model_max_length: int = 2048
    learning_rate: float = 2e-5
    weight_decay: float = 0.0
    warmup_ratio: float = 0.03
    lr_scheduler: str = 'cosine'
    num_train_epochs: float = 2.0
    max_steps: int = 0
    per_device_batch_size: int = 8
    gradient_accumulation_steps: int = 1
    bf16: bool = True
    tf32: bool = False
    gradient_checkpointing: bool = True
    device: str = 'auto'
    deepspeed: str = ''
    attn_implementation: str = 'sdpa'
    seed: int = 42
    save_steps: int = 500
    save_total_limit: int = 1
    logging_steps: int = 1
    dataloader_num_workers: int = 0
    cpu_threads: int = 0
    resume: bool = True
    report_to: str = 'none'

    def __post_init__(self):
        for field in fields(self):
            _check_type(field.name, getattr(self, field.name), field.type)
        for name in ('model_path', 'data_path', 'output_dir'):
            if not getattr(self, name):
                raise ConfigError(f'TrainConfig.{name} must be set')
        _check_choice('mode', self.mode, MODES)
        _check_choice('prompt_format', self.prompt_format, TRAIN_PROMPT_FORMATS)
        _check_choice('lr_scheduler', self.lr_scheduler, SCHEDULERS)
        _check_choice('device', self.device, DEVICES)
        _check_choice('attn_implementation', self.attn_implementation, ATTENTION)
        for name in ('lora_r', 'lora_alpha', 'model_max_length', 'per_device_batch_size',
                     'gradient_accumulation_steps', 'save_steps', 'save_total_limit',
                     'logging_steps'):
            _check_range(name, getattr(self, name), low=1)
        for name in ('max_steps', 'dataloader_num_workers', 'cpu_threads', 'seed'):
            _check_range(name, getattr(self, name), low=0)
        _check_range('learning_rate', self.learning_rate, low=0.0, low_open=True)
        _check_range('weight_decay', self.weight_decay, low=0.0)
        _check_range('warmup_ratio', self.warmup_ratio, low=0.0, high=1.0)
        _check_range('lora_dropout', self.lora_dropout, low=0.0, high=1.0)
        if self.max_steps == 0:
            _check_range('num_train_epochs', self.num_train_epochs, low=0.0, low_open=True)
        if self.mode != 'full' and not self.lora_target_modules:
            raise ConfigError(f'TrainConfig.lora_target_modules is empty: mode {self.mode!r} '
                              'needs at least one layer name to adapt')
        if self.is_lora and not self.freeze_vision_tower:
            raise ConfigError(f'TrainConfig.freeze_vision_tower false has no effect in mode '
                              f'{self.mode!r}: LoRA trains only adapters and '
                              'lora_modules_to_save (add vision_tower there to train it)')
        if self.mode == 'qlora' and self.deepspeed:
            raise ConfigError('TrainConfig: mode qlora with deepspeed is not supported (4-bit '
                              'weights cannot be partitioned by ZeRO-3); unset deepspeed')

    @property
    def is_lora(self) -> bool:
        """Whether the run trains adapters (lora, qlora) rather than the full model."""
        return self.mode in ('lora', 'qlora')

    def to_dict(self) -> dict:
        """Return the config as plain YAML-ready values (tuples become lists)."""
        return {key: list(value) if isinstance(value, tuple) else value
                for key, value in asdict(self).items()}


def _check_type(name: str, value, annotation) -> None:
    if typing.get_origin(annotation) is tuple:
        if not isinstance(value, tuple) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f'TrainConfig.{name} must be a list of strings, got {value!r}')
        return
    if type(value) is not annotation:  # bool is not an int here, and vice versa
        raise ConfigError(f'TrainConfig.{name} must be of type {annotation.__name__}, '
                          f'got {value!r}')
    if annotation is float and not math.isfinite(value):
        raise ConfigError(f'TrainConfig.{name} must be finite, got {value!r}')


def _check_choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f'TrainConfig.{name} must be one of {", ".join(allowed)}; '
                          f'got {value!r}')


def _check_range(name: str, value, low, high=None, low_open: bool = False) -> None:
    too_low = value <= low if low_open else value < low
    if too_low or (high is not None and value >= high):
        bound = f'> {low}' if low_open else f'>= {low}'
        bound += f' and < {high}' if high is not None else ''
        raise ConfigError(f'TrainConfig.{name} must be {bound}, got {value!r}')


_FIELDS = {field.name: field.type for field in fields(TrainConfig)}


def coerce_value(key: str, value):
    """Return `value` as TrainConfig.`key`'s type; ConfigError for an unknown key or bad value.

    Accepted: an int for a float field, a numeric string for a number field (YAML reads `2e-5`
    as a string), a list or comma-separated string for a list field.
    """
    if key not in _FIELDS:
        raise ConfigError(f'unknown TrainConfig key {key!r}; known keys: '
                          f'{", ".join(sorted(_FIELDS))}')
    annotation = _FIELDS[key]
    if typing.get_origin(annotation) is tuple:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(',') if part.strip()]
        return tuple(value) if isinstance(value, (list, tuple)) else value
    if annotation in (int, float) and isinstance(value, str):
        try:
            return annotation(value)
        except ValueError as error:
            raise ConfigError(f'TrainConfig.{key} must be of type {annotation.__name__}, '
                              f'got {value!r}') from error
    if annotation is float and type(value) is int:
        return float(value)
    return value


def parse_override(text: str) -> tuple[str, object]:
    """Parse one `key=value` command-line override into (key, typed value)."""
    key, sep, raw = text.partition('=')
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f'override {text!r} is not key=value')
    annotation = _FIELDS.get(key)
    if annotation is str:
        return key, raw  # taken literally: a path or name, never YAML-typed
    if annotation is bool:
        lowered = raw.strip().lower()
        if lowered not in ('true', 'false'):
            raise ConfigError(f'TrainConfig.{key} must be true or false, got {raw!r}')
        return key, lowered == 'true'
    try:
        value = yaml.safe_load(raw) if raw.strip() else ''
    except yaml.YAMLError as error:
        raise ConfigError(f'override {text!r}: cannot parse the value: {error}') from error
    return key, coerce_value(key, value)


def read_yaml(path: Path) -> dict:
    """Read a YAML mapping (an empty file is an empty mapping); ConfigError naming the file."""
    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as error:
        raise ConfigError(f'cannot read training config {str(path)!r}: {error}') from error
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f'training config {str(path)!r} must be a mapping of keys to values, '
                          f'got {type(data).__name__}')
    return data


def load_config(path: str | Path = '', overrides: tuple[str, ...] | list[str] = ()) -> TrainConfig:
    """Build a TrainConfig from a YAML file (optional) and `key=value` overrides, in that order."""
    values = {}
    if path:
        for key, value in read_yaml(Path(path)).items():
            values[str(key)] = coerce_value(str(key), value)
    for text in overrides:
        key, value = parse_override(text)
        values[key] = coerce_value(key, value)
    return TrainConfig(**values)


def save_config(config: TrainConfig, directory: str | Path) -> Path:
    """Write `config` as `training_config.yaml` in `directory` (created); returns the file."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / TRAINING_CONFIG_FILE
    header = ('# Resolved llara_training finetune config; evaluation and the policy node read\n'
              '# prompt_format and pad_to_square back from this file.\n')
    path.write_text(header + yaml.safe_dump(config.to_dict(), sort_keys=False))
    return path


def load_saved_config(directory: str | Path) -> TrainConfig:
    """Read the `training_config.yaml` a run saved in `directory`."""
    path = Path(directory) / TRAINING_CONFIG_FILE
    if not path.is_file():
        raise ConfigError(f'{str(directory)!r} has no {TRAINING_CONFIG_FILE}: not a '
                          'llara_training finetune output')
    return load_config(path)

