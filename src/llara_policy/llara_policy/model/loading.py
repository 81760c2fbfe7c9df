"""Load an image-text-to-text model and its processor for inference, as `PolicyConfig` says.

Device, dtype and quantization are resolved here once: bitsandbytes 8-bit / 4-bit NF4 models
are placed with `device_map` at load time (calling `.to()` on them raises, see openvla#145),
torch dynamic int8 is applied after loading on CPU. Every failure is a `ModelError` (or a
`ConfigError` for an option this machine cannot run) that names the problem, because a policy
node that cannot load its model must say why at start-up.
"""
from dataclasses import dataclass
import json
import logging
from pathlib import Path
import warnings

from safetensors import SafetensorError, safe_open
import torch
from torch import nn
import transformers
from transformers import (
    AutoModelForImageTextToText,
    AutoProcessor,
    BitsAndBytesConfig,
    LlavaProcessor,
)
from transformers.models.llava.image_processing_pil_llava import LlavaImageProcessorPil

from llara_policy.errors import ConfigError, ModelError
from llara_policy.model.config import PolicyConfig, check_trained_settings
from llara_policy.model.dtype_choice import resolve_dtype
from llara_policy.text import prompting

IMAGE_TOKEN = '<image>'  # LLaVA's image placeholder (llava-hf's token 32000)
# Modules kept out of bitsandbytes quantization: the vision tower and projector are small and
# precision-sensitive (LLaVA's own 4-bit loader keeps CLIP in fp16), lm_head as transformers does.
# transformers 5 matches these as regexes from the start of a module's full name (4.x matched
# substrings, which the plain names cover).
_BNB_SKIP_NAMES = ('vision_tower', 'visual', 'multi_modal_projector', 'lm_head')
_BNB_SKIP = [*_BNB_SKIP_NAMES, *(r'.*\.' + name for name in _BNB_SKIP_NAMES)]
# Config keys of the original LLaVA layout (haotian-liu/LLaVA LlavaConfig), not loadable here.
_ORIGINAL_LAYOUT_KEYS = ('mm_vision_tower', 'mm_projector_type')
_PROCESSOR_FILES = ('processor_config.json', 'preprocessor_config.json')
_TOKENIZER_FILES = ('tokenizer.json', 'tokenizer_config.json', 'tokenizer.model')
_LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadedModel:
    """A model ready for inference, with the processor, device and dtype it runs with.

    `dtype_reason` says why `dtype` was chosen (e.g. 'float32: CPU capability AVX2 has no
    native bf16 ...'); the policy node reports it in PolicyStatus.dtype_reason.
    """

    model: nn.Module
    processor: object
    device: torch.device
    dtype: torch.dtype
    quantization: str
    dtype_reason: str


class _DropMessages(logging.Filter):
    """Drop log records whose message starts with one of `prefixes`."""

    def __init__(self, *prefixes: str):
        super().__init__()
        self.prefixes = prefixes

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.prefixes)


def quiet_library_warnings() -> None:
    """Silence messages that fire on every call and say nothing actionable (feasibility 3)."""
    # bitsandbytes logs these per matmul / per load; the first is expected on CPU, the second
    # names an optional package that downloads kernels from the hub.
    logging.getLogger('bitsandbytes.autograd._functions').addFilter(
        _DropMessages('MatMul8bitLt: inputs will be cast'))
    logging.getLogger('bitsandbytes.backends.cpu.ops').addFilter(
        _DropMessages('Failed to load CPU gemm_4bit_forward'))
    warnings.filterwarnings('ignore', message='.*torch.ao.quantization is deprecated.*')
    warnings.filterwarnings('ignore', message='.*quantize_dynamic.*deprecated.*')
    warnings.filterwarnings('ignore', message='.*quantized tensor creation functions.*')
    warnings.filterwarnings('ignore', message='.*torch.jit.script_method.*deprecated.*')
    transformers.utils.logging.disable_progress_bar()


def resolve_device(name: str) -> torch.device:
    """'auto' -> CUDA when available, else CPU; a CUDA device on a machine without one fails."""
    if name == 'auto':
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    device = torch.device(name)
    if device.type == 'cuda':
        if not torch.cuda.is_available():
            raise ConfigError(f'device {name!r} needs CUDA, which this machine does not have '
                              f"(torch {torch.__version__}); use device 'cpu' or 'auto'")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(f'device {name!r} does not exist: this machine has '
                              f'{torch.cuda.device_count()} CUDA device(s)')
    return device


def check_model_directory(path: str) -> Path:
    """Return the model directory or raise ModelError saying what is missing or wrong."""
    if not path:
        raise ModelError('PolicyConfig.model_path is empty: set it to a Hugging Face model '
                         'directory (see llara_import_checkpoint for LLaRA releases)')
    directory = Path(path).expanduser()
    if not directory.is_dir():
        raise ModelError(f'model directory {str(directory)!r} does not exist or is not a '
                         'directory')
    config_file = directory / 'config.json'
    if not config_file.is_file():
        raise ModelError(f'{str(directory)!r} has no config.json: not a Hugging Face model '
                         'directory')
    try:
        config = json.loads(config_file.read_text())
    except (OSError, ValueError) as error:
        raise ModelError(f'cannot read {str(config_file)!r}: {error}') from error
    if any(key in config for key in _ORIGINAL_LAYOUT_KEYS):
        raise ModelError(
            f'{str(directory)!r} is an original-layout LLaVA/LLaRA checkpoint (config has '
            f"{', '.join(k for k in _ORIGINAL_LAYOUT_KEYS if k in config)}); convert it first: "
            'llara_import_checkpoint --checkpoint DIR --vision-tower CLIP_DIR --output OUT')
    if not list(directory.glob('*.safetensors')) and not list(directory.glob('*.bin')):
        raise ModelError(f'{str(directory)!r} has no weights (*.safetensors or *.bin)')
    if not any((directory / name).is_file() for name in _PROCESSOR_FILES):
        raise ModelError(f'{str(directory)!r} has no processor: expected one of '
                         f'{", ".join(_PROCESSOR_FILES)}')
    if not any((directory / name).is_file() for name in _TOKENIZER_FILES):
        raise ModelError(f'{str(directory)!r} has no tokenizer: expected one of '
                         f'{", ".join(_TOKENIZER_FILES)}')
    check_safetensors_headers(directory)
    return directory


def check_safetensors_headers(directory: Path) -> None:
    """Raise ModelError naming a `*.safetensors` file whose header is corrupt or truncated.

    Reads only each header (safetensors checks that it covers the whole file), so a damaged
    download is named in milliseconds instead of surfacing as a nameless SafetensorError.
    """
    for path in sorted(directory.glob('*.safetensors')):
        try:
            with safe_open(path, framework='pt'):
                pass
        except (SafetensorError, OSError) as error:
            raise ModelError(f'corrupt or truncated weights file {str(path)!r}: {error}; '
                             'download or convert it again') from error


def _quantization_config(config: PolicyConfig, dtype: torch.dtype) -> BitsAndBytesConfig | None:
    if config.quantization == 'int8':
        return BitsAndBytesConfig(load_in_8bit=True, llm_int8_skip_modules=_BNB_SKIP)
    if config.quantization == 'nf4':
        # Double quantization as LLaVA's --load-4bit; compute in the model dtype.
        return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type='nf4',
                                  bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=dtype,
                                  llm_int8_skip_modules=_BNB_SKIP)
    return None


def load_model(config: PolicyConfig) -> LoadedModel:
    """Load the model and processor of `config.model_path` for inference."""
    quiet_library_warnings()
    directory = check_model_directory(config.model_path)
    check_trained_settings(config)  # a fine-tuned model is prompted as it was trained
    device = resolve_device(config.device)
    choice = resolve_dtype(config, device)
    dtype = choice.dtype
    if config.attn_implementation == 'flash_attention_2' and device.type != 'cuda':
        raise ConfigError("attn_implementation 'flash_attention_2' needs CUDA; on CPU use "
                          "'sdpa' or 'eager'")
    if device.type == 'cpu' and config.cpu_threads:
        torch.set_num_threads(config.cpu_threads)
    try:
        # PIL image ops, as LLaVA's own CLIP preprocessing (torchvision resizes differ a little).
        processor = AutoProcessor.from_pretrained(directory, backend='pil')
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ModelError(f'cannot load the processor of {str(directory)!r}: {error}') from error
    try:
        model = AutoModelForImageTextToText.from_pretrained(
            directory, dtype=dtype, device_map={'': device},
            quantization_config=_quantization_config(config, dtype),
            attn_implementation=config.attn_implementation)
    except (OSError, ValueError, KeyError, TypeError, RuntimeError, ImportError,
            SafetensorError) as error:
        raise ModelError(f'cannot load the model in {str(directory)!r}: {error}') from error
    model.eval()
    model.requires_grad_(False)
    if config.quantization == 'dynamic_int8':
        # Weights become packed int8, activations are quantized per call; fp32 elsewhere.
        model = torch.ao.quantization.quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8)
    check_processor_matches(model, processor, str(directory))
    _LOG.info('loaded %s on %s, dtype %s', directory, device, choice.reason)
    return LoadedModel(model, processor, device, dtype, config.quantization, choice.reason)


def check_processor_matches(model: nn.Module, processor, where: str) -> None:
    """Raise ModelError when the processor would feed the model ids or images it cannot take."""
    config = model.config
    tokenizer = getattr(processor, 'tokenizer', None)
    if tokenizer is None or getattr(processor, 'image_processor', None) is None:
        raise ModelError(f'the processor in {where!r} ({type(processor).__name__}) has no '
                         'tokenizer or image processor: an image-text-to-text model needs both')
    vocab = model.get_input_embeddings().num_embeddings
    if len(tokenizer) > vocab:
        raise ModelError(f'processor does not match the model in {where!r}: the tokenizer has '
                         f'{len(tokenizer)} tokens, the model embeds only {vocab}')
    image_token_id = getattr(config, 'image_token_id', None)
    processor_image_id = getattr(processor, 'image_token_id', None)
    if image_token_id is not None and processor_image_id is not None \
            and image_token_id != processor_image_id:
        raise ModelError(f'processor does not match the model in {where!r}: image token id '
                         f'{processor_image_id} in the processor, {image_token_id} in the model')
    crop = getattr(processor.image_processor, 'crop_size', None)
    vision_size = getattr(getattr(config, 'vision_config', None), 'image_size', None)
    if crop and vision_size and (crop['height'], crop['width']) != (vision_size, vision_size):
        raise ModelError(f'processor does not match the model in {where!r}: it makes '
                         f'{crop["height"]}x{crop["width"]} px images, the vision tower takes '
                         f'{vision_size}x{vision_size}')
    expected = getattr(config, 'image_seq_length', None)
    patch = getattr(processor, 'patch_size', None)
    if expected and crop and patch and hasattr(processor, 'num_additional_image_tokens'):
        tokens = (crop['height'] // patch) * (crop['width'] // patch)
        tokens += processor.num_additional_image_tokens
        if getattr(processor, 'vision_feature_select_strategy', None) == 'default':
            tokens -= 1  # the CLS feature is dropped
        if tokens != expected:
            raise ModelError(
                f'processor does not match the model in {where!r}: it makes {tokens} image '
                f'tokens ({crop["height"]}x{crop["width"]} px, patch {patch}), the model '
                f'expects {expected}')


def vicuna_chat_template(image_token: str = IMAGE_TOKEN) -> str:
    """Return a Jinja chat template writing prompting's Vicuna-v1 text.

    An image item becomes `image_token` and a newline.
    """
    system = prompting.VICUNA_V1_SYSTEM.replace("'", "\\'")
    return (
        "{{- '" + system + "' -}}"
        '{%- for message in messages -%}'
        "{%- if message['content'] is string -%}{%- set parts = [message['content']] -%}"
        "{%- else -%}{%- set parts = message['content'] -%}{%- endif -%}"
        "{%- if message['role'] == 'user' %} USER: {% else %} ASSISTANT: {% endif -%}"
        '{%- for part in parts -%}'
        "{%- if part is string -%}{{- part -}}"
        "{%- elif part['type'] == 'image' -%}{{- '" + image_token + "\\n' -}}"
        "{%- else -%}{{- part['text'] -}}{%- endif -%}"
        '{%- endfor -%}'
        "{%- if message['role'] != 'user' -%}{{- '</s>' -}}{%- endif -%}"
        '{%- endfor -%}'
        "{%- if add_generation_prompt %} ASSISTANT:{% endif -%}")


def llava_processor(tokenizer, image_size_px: int, patch_size_px: int, image_mean, image_std,
                    pad_to_square: bool = True, select_strategy: str = 'default',
                    resample: int = 3) -> LlavaProcessor:
    """LLaVA-1.5's processor: 'pad', resize the shortest edge, centre-crop, normalise.

    `resample` 3 is PIL bicubic, CLIP's; a frame becomes one token per patch (plus CLS, which
    the 'default' strategy drops).
    """
    image_processor = LlavaImageProcessorPil(
        do_pad=pad_to_square, size={'shortest_edge': image_size_px}, resample=resample,
        crop_size={'height': image_size_px, 'width': image_size_px},
        image_mean=list(image_mean), image_std=list(image_std))
    template = vicuna_chat_template()
    tokenizer.chat_template = template
    return LlavaProcessor(image_processor=image_processor, tokenizer=tokenizer,
                          patch_size=patch_size_px, vision_feature_select_strategy=select_strategy,
                          image_token=IMAGE_TOKEN, num_additional_image_tokens=1,
                          chat_template=template)
