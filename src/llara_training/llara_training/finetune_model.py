"""The model side of fine-tuning: what this machine can run, loading, freezing, LoRA, merging.

Loading differs from inference (`llara_policy.model.loading`) in three ways: no `device_map`
(the Trainer places the model, one copy per process, and ZeRO-3 partitions it while loading),
weights stay trainable, and QLoRA's 4-bit base is prepared for k-bit training. The directory
and processor checks are the inference ones, so a model that trains also serves.
"""
import importlib.util
import json
import os
from pathlib import Path
import re

import torch
from transformers import AutoModelForImageTextToText, AutoProcessor, BitsAndBytesConfig

from llara_policy.errors import ConfigError, ModelError
from llara_policy.model.loading import check_model_directory, check_processor_matches
from llara_training.train_config import TrainConfig, load_saved_config, save_config

# Module names of vision towers (LLaVA: vision_tower; Qwen2-VL: visual) and projectors; LoRA
# adapters go to the language model only, as LLaVA's find_all_linear_names does.
VISION_MODULES = ('vision_tower', 'visual')
NON_LLM_MODULES = (*VISION_MODULES, 'multi_modal_projector')
# Kept in full precision in 4-bit models (as llara_policy.model.loading does for inference).
_BNB_SKIP = [*(r'.*\.' + name for name in (*NON_LLM_MODULES, 'lm_head')), *NON_LLM_MODULES,
             'lm_head']
MERGED_DIR = 'merged'


def check_machine(config: TrainConfig) -> None:
    """Raise ConfigError for settings this machine cannot run, before anything is loaded."""
    cuda = torch.cuda.is_available()
    needs_cuda = {
        'mode qlora (bitsandbytes 4-bit NF4 training)': config.mode == 'qlora',
        'tf32': config.tf32,
        "attn_implementation 'flash_attention_2'":
            config.attn_implementation == 'flash_attention_2',
        "device 'cuda'": config.device == 'cuda',
    }
    for what, needed in needs_cuda.items():
        if needed and (not cuda or config.device == 'cpu'):
            raise ConfigError(
                f'{what} needs a CUDA device; this run has none (torch {torch.__version__}, '
                f"device {config.device!r}). On CPU use mode 'lora' or 'full', tf32 false, "
                "attn_implementation 'sdpa'")
    if config.deepspeed:
        if importlib.util.find_spec('deepspeed') is None:
            raise ConfigError(f'deepspeed config {config.deepspeed!r} is set but the deepspeed '
                              'package is not installed (pip install deepspeed, on a CUDA '
                              'machine)')
        try:
            json.loads(Path(config.deepspeed).read_text())
        except (OSError, ValueError) as error:
            raise ConfigError(f'cannot read deepspeed config {config.deepspeed!r}: '
                              f'{error}') from error


def weight_dtype(config: TrainConfig, deepspeed: bool) -> torch.dtype:
    """Return the dtype the weights are loaded in.

    bf16 runs load bfloat16 weights when something else keeps full-precision trainable copies
    (peft's fp32 adapters, DeepSpeed's fp32 master weights), as LLaVA does; a plain full
    fine-tune keeps fp32 weights under bf16 autocast, since AdamW steps of 2e-5 vanish in bf16.
    """
    return torch.bfloat16 if config.bf16 and (config.is_lora or deepspeed) else torch.float32


def load_for_training(config: TrainConfig, deepspeed: bool = False, weights_from: str = ''):
    """Load (model, processor) of `config.model_path` ready for the Trainer.

    `weights_from` names a checkpoint of a full fine-tune to take the weights from instead:
    transformers 5's Trainer restores a checkpoint with a plain `load_state_dict`, which skips
    the key renaming `save_pretrained` applies to LLaVA-style models and so silently restores
    nothing (huggingface/transformers#43701); `from_pretrained` renames them correctly.
    """
    directory = check_model_directory(weights_from or config.model_path)
    try:
        processor = AutoProcessor.from_pretrained(directory, backend='pil')
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ModelError(f'cannot load the processor of {str(directory)!r}: {error}') from error
    dtype = weight_dtype(config, deepspeed)
    options = {}
    if config.mode == 'qlora':
        options['quantization_config'] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type='nf4', bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=dtype, llm_int8_skip_modules=_BNB_SKIP)
        # 4-bit weights are placed at load time, one copy on each process's own GPU.
        options['device_map'] = {'': int(os.environ.get('LOCAL_RANK', '0'))}
    try:
        model = AutoModelForImageTextToText.from_pretrained(
            directory, dtype=dtype, attn_implementation=config.attn_implementation, **options)
    except (OSError, ValueError, KeyError, TypeError, RuntimeError, ImportError) as error:
        raise ModelError(f'cannot load the model in {str(directory)!r}: {error}') from error
    check_processor_matches(model, processor, str(directory))
    model.config.use_cache = False  # no KV cache while training (and with checkpointing)
    return model, processor


def freeze_vision_tower(model: torch.nn.Module) -> int:
    """Stop gradients to the vision tower; returns the number of parameters frozen.

    Qwen2-VL's projector (`visual.merger`) lives inside its vision module and is frozen too.
    """
    frozen = 0
    for name, parameter in model.named_parameters():
        if set(name.split('.')) & set(VISION_MODULES):
            parameter.requires_grad_(False)
            frozen += parameter.numel()
    if not frozen:
        raise ConfigError('freeze_vision_tower is set but the model has no module named '
                          f'{" or ".join(VISION_MODULES)}')
    return frozen


def lora_target_pattern(names: tuple[str, ...]) -> str:
    """Return a peft regex (full match) for the named layers outside vision and projector."""
    excluded = '|'.join(NON_LLM_MODULES)
    wanted = '|'.join(re.escape(name) for name in names)
    return rf'^(?!.*\b(?:{excluded})\b).*\.(?:{wanted})$'


def apply_lora(model: torch.nn.Module, config: TrainConfig) -> torch.nn.Module:
    """Wrap `model` with LoRA adapters as `config` says (QLoRA: after k-bit preparation)."""
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    names = {part for name, _ in model.named_modules() for part in name.split('.')}
    missing = [name for name in config.lora_modules_to_save if name not in names]
    if missing:
        raise ConfigError(f'lora_modules_to_save names no module of the model: {missing}')
    if config.mode == 'qlora':
        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=config.gradient_checkpointing,
            gradient_checkpointing_kwargs={'use_reentrant': False})
    lora = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha,
                      lora_dropout=config.lora_dropout,
                      target_modules=lora_target_pattern(config.lora_target_modules),
                      modules_to_save=list(config.lora_modules_to_save) or None)
    try:
        return get_peft_model(model, lora)
    except ValueError as error:  # peft: no module matched the target names
        raise ConfigError(f'lora_target_modules {list(config.lora_target_modules)} match no '
                          f'linear layer of the language model: {error}') from error


def parameter_counts(model: torch.nn.Module) -> tuple[int, int]:
    """Return (trainable, total) parameter counts (ZeRO-3 partitions count in full)."""
    def count(parameter) -> int:
        return getattr(parameter, 'ds_numel', parameter.numel())
    trainable = sum(count(p) for p in model.parameters() if p.requires_grad)
    return trainable, sum(count(p) for p in model.parameters())


def merge_lora(run_dir: str | Path) -> Path:
    """Merge the LoRA adapter saved in `run_dir` into its base model; returns `run_dir/merged`.

    The base is loaded in its saved dtype (not 4-bit, also after QLoRA), the adapter folded
    into its weights, and the result saved with the processor and the training config, as a
    full checkpoint `VlmPolicy` loads.
    """
    from peft import PeftModel

    run_dir = Path(run_dir)
    config = load_saved_config(run_dir)
    if not config.is_lora:
        raise ConfigError(f'{str(run_dir)!r} is a {config.mode!r} run: only LoRA runs merge')
    if not (run_dir / 'adapter_config.json').is_file():
        raise ModelError(f'{str(run_dir)!r} has no adapter_config.json: the run did not finish')
    base = AutoModelForImageTextToText.from_pretrained(config.model_path, dtype='auto')
    merged = PeftModel.from_pretrained(base, run_dir).merge_and_unload()
    output = run_dir / MERGED_DIR
    merged.save_pretrained(output)
    AutoProcessor.from_pretrained(run_dir, backend='pil').save_pretrained(output)
    save_config(config, output)
    return output
