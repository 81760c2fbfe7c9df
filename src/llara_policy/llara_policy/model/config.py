"""Configuration of the VLM policy: which model, where it runs, how it decodes and prompts.

Kept free of torch so ROS nodes and training configs can declare, parse and validate it without
loading the model stack. Fields use ROS parameter types only (bool, int, float, str; no None):
an empty string or a sentinel word stands for "not set".
"""
from dataclasses import dataclass, fields, replace
from pathlib import Path
import re

import yaml

from llara_policy.errors import ConfigError

DEVICES = ('auto', 'cpu', 'cuda')  # plus 'cuda:N'
DTYPES = ('auto', 'float32', 'bfloat16', 'float16')
# none: weights in `dtype`; int8 / nf4: bitsandbytes 8-bit / 4-bit NF4 (CUDA, also runs on CPU);
# dynamic_int8: torch dynamic int8 quantization of nn.Linear (CPU only, the fastest CPU option
# measured in tests/bench/bench_policy.py).
QUANTIZATIONS = ('none', 'int8', 'nf4', 'dynamic_int8')
ATTENTION = ('sdpa', 'eager', 'flash_attention_2')
# greedy: plain greedy decoding (LLaRA's eval, parity mode); template: the answer's fixed text is
# forced several tokens per forward pass and the model chooses only the free slots.
DECODINGS = ('template', 'greedy')
# vicuna_v1: LLaVA conv_templates['v1'] text (LLaRA's checkpoints); chat_template: the
# processor's own chat template (other VLMs such as Qwen2-VL fine-tuned on LLaRA data).
PROMPT_FORMATS = ('vicuna_v1', 'chat_template')
SPACINGS = ('released', 'notebook')  # prompting.ActionSpacing values

_CUDA_DEVICE = re.compile(r'cuda:\d+')
# Written by `llara_training finetune` beside each checkpoint; the TRAINED_SETTINGS in it are
# PolicyConfig fields inference must repeat (same names in llara_training's TrainConfig).
TRAINING_CONFIG_FILE = 'training_config.yaml'
TRAINED_SETTINGS = ('prompt_format', 'pad_to_square')
# A policy folder shipped by `llara_training recipe --ship` also holds the resolved recipe (the
# demo runs the policy in the dtype of its evaluation) and the with/without-aux curve.
RECIPE_CONFIG_FILE = 'recipe_config.yaml'
AUX_CURVE_FILE = 'aux_curve.csv'
# LLaRA eval generates at most 256 new tokens (eval/vima_utils.py model_generation).
LLARA_MAX_NEW_TOKENS = 256


@dataclass(frozen=True)
class PolicyConfig:
    """Settings of `VlmPolicy`.

    Args:
        model_path: Hugging Face model directory (config, weights, processor). Original-layout
            LLaVA/LLaRA checkpoints must first be converted with `llara_import_checkpoint`.
        device: 'auto' (CUDA when available, else CPU), 'cpu', 'cuda' or 'cuda:N'.
        dtype: weight/compute dtype; 'auto' is float16 on CUDA (LLaRA's eval), and on CPU
            bfloat16 where the CPU has native bf16 (avx512_bf16 / amx_bf16 on x86, bf16 on Arm)
            else float32 (emulated bf16 is ~2x slower); 'dynamic_int8' implies float32. The
            choice and its reason are logged at load (`dtype_choice.resolve_dtype`).
        quantization: one of QUANTIZATIONS.
        attn_implementation: 'sdpa', 'eager' or 'flash_attention_2' (CUDA only).
        decoding: 'template' (forced template text, every answer parses) or 'greedy' (parity).
        max_new_tokens: greedy token budget; template decoding ends the answer at the first step
            boundary past it.
        max_answer_steps: template decoding ends the answer after this many steps.
        prompt_format: one of PROMPT_FORMATS.
        user_prompt_id: LLaRA's --prompt-id: < 0 draws a sentence per query (seeded by `seed`
            at reset), 0-14 picks one, >= 15 omits it (the training notebook's layout).
        action_spacing: 'released' (double space in pick points, the released checkpoints) or
            'notebook'; used for history lines and the forced template text.
        pad_to_square: pad the frame to a square with the processor's mean colour first
            (LLaVA-1.5 'pad', so model points refer to the unpadded frame).
        seed: seed of the random user-prompt choice.
        cpu_threads: torch intra-op threads on CPU; 0 keeps torch's default.
    """

    model_path: str = ''
    device: str = 'auto'
    dtype: str = 'auto'
    quantization: str = 'none'
    attn_implementation: str = 'sdpa'
    decoding: str = 'template'
    max_new_tokens: int = LLARA_MAX_NEW_TOKENS
    max_answer_steps: int = 8
    prompt_format: str = 'vicuna_v1'
    user_prompt_id: int = 15
    action_spacing: str = 'released'
    pad_to_square: bool = True
    seed: int = 0
    cpu_threads: int = 0

    def __post_init__(self):
        for field in fields(self):
            value = getattr(self, field.name)
            if type(value) is not field.type:  # bool is not an int here, and vice versa
                raise ConfigError(f'PolicyConfig.{field.name} must be a {field.type.__name__}, '
                                  f'got {value!r}')
        _check_choice('device', self.device, DEVICES, _CUDA_DEVICE)
        _check_choice('dtype', self.dtype, DTYPES)
        _check_choice('quantization', self.quantization, QUANTIZATIONS)
        _check_choice('attn_implementation', self.attn_implementation, ATTENTION)
        _check_choice('decoding', self.decoding, DECODINGS)
        _check_choice('prompt_format', self.prompt_format, PROMPT_FORMATS)
        _check_choice('action_spacing', self.action_spacing, SPACINGS)
        for name in ('max_new_tokens', 'max_answer_steps'):
            if getattr(self, name) < 1:
                raise ConfigError(f'PolicyConfig.{name} must be >= 1, got {getattr(self, name)}')
        if self.cpu_threads < 0:
            raise ConfigError(f'PolicyConfig.cpu_threads must be >= 0, got {self.cpu_threads}')
        if self.quantization == 'dynamic_int8' and self.dtype not in ('auto', 'float32'):
            raise ConfigError(f"PolicyConfig.quantization 'dynamic_int8' needs float32 weights, "
                              f'got dtype {self.dtype!r}')


def _check_choice(name: str, value: str, allowed: tuple[str, ...],
                  pattern: re.Pattern | None = None) -> None:
    if value in allowed or (pattern is not None and pattern.fullmatch(value)):
        return
    extra = ' or cuda:N' if pattern is not None else ''
    raise ConfigError(f'PolicyConfig.{name} must be one of {", ".join(allowed)}{extra}; '
                      f'got {value!r}')


def read_trained_settings(model_path: str) -> dict[str, object]:
    """Return the TRAINED_SETTINGS a fine-tuned checkpoint was trained with.

    Read from `model_path`/training_config.yaml; {} when the checkpoint has none (released
    LLaRA checkpoints, imported models). A file lacking a setting or unreadable is ConfigError.
    """
    path = Path(model_path).expanduser() / TRAINING_CONFIG_FILE
    if not model_path or not path.is_file():
        return {}
    try:
        saved = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise ConfigError(f'cannot read {str(path)!r}: {error}') from error
    missing = [key for key in TRAINED_SETTINGS if not isinstance(saved, dict) or key not in saved]
    if missing:
        raise ConfigError(f'{str(path)!r} lacks {", ".join(missing)}')
    return {key: saved[key] for key in TRAINED_SETTINGS}


def trained_policy_config(config: PolicyConfig) -> PolicyConfig:
    """Return `config` with the prompt and image settings its checkpoint was trained with.

    Evaluation builds its config this way (and policy_node, through `adopt_trained_settings`,
    which also refuses a parameter set against the training), so a fine-tuned model is
    prompted and preprocessed as in training without re-typing the settings.
    """
    return replace(config, **read_trained_settings(config.model_path))


def check_trained_settings(config: PolicyConfig) -> None:
    """Raise ConfigError when `config` contradicts the checkpoint's training settings."""
    for key, trained in read_trained_settings(config.model_path).items():
        if getattr(config, key) != trained:
            raise ConfigError(
                f'PolicyConfig.{key} is {getattr(config, key)!r} but {config.model_path!r} was '
                f'trained with {trained!r} ({TRAINING_CONFIG_FILE}); set it to {trained!r} or '
                'build the config with trained_policy_config')
