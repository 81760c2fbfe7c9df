"""Convert an original-layout LLaVA-1.5 / LLaRA checkpoint into a Hugging Face Llava directory.

LLaRA's released fine-tunes (llara-spec 6.3) are haotian-liu/LLaVA checkpoints: Llama weights
under `model.*`, the projector as `model.mm_projector.0/2`, `mm_*` config keys and LLaMA's
SentencePiece `tokenizer.model`; the CLIP ViT-L/14-336 tower is loaded separately from
`mm_vision_tower`. This writes the same model as `LlavaForConditionalGeneration` (weights
renamed, vocabulary grown by `<image>` and `<pad>` and padded to a multiple of 64 as
llava-hf/llava-1.5-7b-hf does), with a processor that pads frames to squares (LLaVA 'pad') and
a tokenizer that writes the ids LLaVA's `tokenizer_image_token` writes. Usage:

    llara_import_checkpoint --checkpoint DIR --vision-tower CLIP_DIR --output OUT
    (or python -m llara_policy.model.checkpoint_import with the same arguments)
"""
import argparse
import json
from pathlib import Path
import pickle
import shutil
import sys
import tempfile

from safetensors import SafetensorError
from safetensors.torch import load_file
import torch
from transformers import (
    CLIPVisionConfig,
    GenerationConfig,
    LlamaConfig,
    LlavaConfig,
    LlavaForConditionalGeneration,
    PreTrainedTokenizerFast,
)

from llara_policy.errors import LlaraError, ModelError
from llara_policy.model.llama_tokenizer import llama_tokenizer
from llara_policy.model.loading import IMAGE_TOKEN, llava_processor

VOCAB_MULTIPLE = 64  # llava-hf pads the grown vocabulary to a multiple of 64 (GPU efficiency)
# Llama fields of an original LLaVA config that carry over to the text config.
_TEXT_KEYS = ('hidden_size', 'intermediate_size', 'num_hidden_layers', 'num_attention_heads',
              'num_key_value_heads', 'max_position_embeddings', 'rms_norm_eps', 'rope_theta',
              'rope_scaling', 'hidden_act', 'attention_bias', 'bos_token_id', 'eos_token_id',
              'initializer_range')
_SELECT_STRATEGY = {'patch': 'default', 'cls_patch': 'full'}  # mm_vision_select_feature
_ASPECT_PADS = {'pad': True, 'square': False, '': False}  # image_aspect_ratio


def _read_json(path: Path, what: str) -> dict:
    if not path.is_file():
        raise ModelError(f'{what}: {str(path)!r} is missing')
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ModelError(f'{what}: cannot read {str(path)!r}: {error}') from error


def _weight_files(directory: Path, what: str) -> list[Path]:
    """Weight shards of a directory: from its index when there is one, else by name."""
    for index_name in ('model.safetensors.index.json', 'pytorch_model.bin.index.json'):
        index = directory / index_name
        if index.is_file():
            names = sorted(set(_read_json(index, what)['weight_map'].values()))
            missing = [name for name in names if not (directory / name).is_file()]
            if missing:
                raise ModelError(f'{what}: {index_name} lists missing shard(s) {missing}')
            return [directory / name for name in names]
    files = sorted(directory.glob('model*.safetensors')) or sorted(
        directory.glob('pytorch_model*.bin'))
    if not files:
        raise ModelError(f'{what}: no weights in {str(directory)!r} (expected model*.safetensors '
                         'or pytorch_model*.bin)')
    return files


def load_weights(directory: Path, what: str) -> dict[str, torch.Tensor]:
    """All tensors of a (possibly sharded) safetensors or PyTorch checkpoint, on CPU."""
    state = {}
    for path in _weight_files(directory, what):
        try:
            if path.suffix == '.safetensors':
                state.update(load_file(path))
            else:
                state.update(torch.load(path, map_location='cpu', weights_only=True))
        except (OSError, RuntimeError, ValueError, EOFError, pickle.UnpicklingError,
                SafetensorError) as error:  # a truncated or foreign file
            raise ModelError(f'{what}: cannot read {str(path)!r} (corrupt or truncated?): '
                             f'{error}') from error
    return state


def _llava_key(key: str) -> str | None:
    """Name in LlavaForConditionalGeneration of an original LLaVA weight (None: not used)."""
    if key.endswith('.rotary_emb.inv_freq') or key.startswith('model.vision_tower.'):
        return None  # recomputed buffer / the tower is taken from the CLIP directory
    for old, new in (('model.mm_projector.0.', 'model.multi_modal_projector.linear_1.'),
                     ('model.mm_projector.2.', 'model.multi_modal_projector.linear_2.'),
                     ('model.', 'model.language_model.'), ('lm_head.', 'lm_head.')):
        if key.startswith(old):
            return new + key[len(old):]
    raise ModelError(f'unexpected weight {key!r} in the LLaVA checkpoint')


def check_original_config(config: dict) -> None:
    """Raise ModelError unless this is a LLaVA-1.5-style Llama checkpoint we can convert."""
    if 'mm_vision_tower' not in config or 'mm_projector_type' not in config:
        raise ModelError('not an original-layout LLaVA checkpoint: config.json has no '
                         'mm_vision_tower / mm_projector_type (already a Hugging Face Llava '
                         'directory? then load it directly)')
    problems = []
    if config.get('model_type') not in ('llava', 'llava_llama'):
        problems.append(f"model_type {config.get('model_type')!r} (need llava or llava_llama)")
    if config['mm_projector_type'] != 'mlp2x_gelu':
        problems.append(f"mm_projector_type {config['mm_projector_type']!r} (need mlp2x_gelu)")
    if config.get('mm_use_im_start_end') or config.get('mm_use_im_patch_token'):
        problems.append('mm_use_im_start_end / mm_use_im_patch_token (LLaVA-1.5 uses neither)')
    if config.get('mm_vision_select_feature', 'patch') not in _SELECT_STRATEGY:
        problems.append(f"mm_vision_select_feature {config['mm_vision_select_feature']!r}")
    if (config.get('image_aspect_ratio') or '') not in _ASPECT_PADS:
        problems.append(f"image_aspect_ratio {config['image_aspect_ratio']!r} (need pad or "
                        'square)')
    if config.get('mm_patch_merge_type', 'flat') != 'flat':
        problems.append(f"mm_patch_merge_type {config['mm_patch_merge_type']!r}")
    if problems:
        raise ModelError('unsupported LLaVA checkpoint: ' + '; '.join(problems))


def convert_tokenizer(checkpoint: Path) -> PreTrainedTokenizerFast:
    """Return the checkpoint's LLaMA SentencePiece tokenizer plus `<image>` and `<pad>`."""
    config = {}
    if (checkpoint / 'tokenizer_config.json').is_file():
        config = _read_json(checkpoint / 'tokenizer_config.json', 'tokenizer')
    return llama_tokenizer(checkpoint / 'tokenizer.model', config.get('model_max_length', 2048))


def _vision_config(clip_dir: Path) -> CLIPVisionConfig:
    config = _read_json(clip_dir / 'config.json', 'vision tower')
    if 'vision_config' in config:  # a whole CLIP model (openai/clip-vit-large-patch14-336)
        config = config['vision_config']
    elif config.get('model_type') != 'clip_vision_model':
        raise ModelError(f'vision tower {str(clip_dir)!r} is not a CLIP model (model_type '
                         f"{config.get('model_type')!r})")
    known = CLIPVisionConfig().to_dict()
    return CLIPVisionConfig(**{k: v for k, v in config.items() if k in known})


def _grow_rows(matrix: torch.Tensor, rows: int) -> torch.Tensor:
    """Append rows equal to the mean row.

    A new embedding is an average one, and a new output row's logit is the average logit,
    never the greedy choice.
    """
    extra = matrix.float().mean(dim=0, keepdim=True).to(matrix.dtype)
    return torch.cat([matrix, extra.expand(rows - matrix.shape[0], -1)], dim=0)


def _state_dict(original: dict, clip: dict, vocab_rows: int, dtype: torch.dtype,
                vision_prefix: str) -> dict:
    state = {}
    for key, tensor in original.items():
        name = _llava_key(key)
        if name is not None:
            state[name] = tensor
    vision = {key: tensor for key, tensor in clip.items() if key.startswith('vision_model.')}
    if not vision:
        raise ModelError('vision tower checkpoint has no vision_model.* weights')
    state.update({vision_prefix + key.removeprefix('vision_model.'): tensor
                  for key, tensor in vision.items()})
    for name in ('model.language_model.embed_tokens.weight', 'lm_head.weight'):
        if name not in state:
            raise ModelError(f'LLaVA checkpoint lacks {name.replace("language_model.", "")}')
        state[name] = _grow_rows(state[name], vocab_rows)
    return {key: tensor.to(dtype) for key, tensor in state.items()}


def _check_sizes(original_config: dict, vocab: int, pieces: int,
                 vision_config: CLIPVisionConfig, preprocess: dict) -> None:
    if vocab != original_config.get('vocab_size', vocab) or vocab != pieces:
        raise ModelError(f'checkpoint vocabulary mismatch: {vocab} embedding rows, config '
                         f"vocab_size {original_config.get('vocab_size')}, tokenizer.model "
                         f'{pieces} pieces')
    width = original_config.get('mm_hidden_size', vision_config.hidden_size)
    if width != vision_config.hidden_size:
        raise ModelError(f"vision tower width {vision_config.hidden_size} != the checkpoint's "
                         f'mm_hidden_size {width}')
    crop = preprocess.get('crop_size', vision_config.image_size)
    crop = crop.get('height') if isinstance(crop, dict) else crop
    if crop != vision_config.image_size:
        raise ModelError(f'vision tower preprocessor crops {crop} px but the tower takes '
                         f'{vision_config.image_size} px')


def _llava_config(original_config: dict, vision_config: CLIPVisionConfig, vocab: int,
                  rows: int, dtype: torch.dtype) -> LlavaConfig:
    """Return LLaVA-1.5's layout: <image> after LLaMA's ids, <pad> next, features of layer -2."""
    text_config = LlamaConfig(
        vocab_size=rows, tie_word_embeddings=False, pad_token_id=vocab + 1,
        **{key: original_config[key] for key in _TEXT_KEYS if original_config.get(key)
           is not None})
    strategy = _SELECT_STRATEGY[original_config.get('mm_vision_select_feature', 'patch')]
    patches = (vision_config.image_size // vision_config.patch_size) ** 2
    return LlavaConfig(
        text_config=text_config, vision_config=vision_config, image_token_index=vocab,
        image_seq_length=patches + (strategy == 'full'), projector_hidden_act='gelu',
        vision_feature_layer=original_config.get('mm_vision_select_layer', -2),
        vision_feature_select_strategy=strategy, pad_token_id=vocab + 1,
        tie_word_embeddings=False, dtype=str(dtype).removeprefix('torch.'))


def _filled_model(config: LlavaConfig, original: dict, clip: dict,
                  dtype: torch.dtype) -> LlavaForConditionalGeneration:
    """Build the Llava model holding the checkpoint's and the CLIP directory's weights."""
    with torch.device('meta'):  # no memory until the real tensors are assigned
        model = LlavaForConditionalGeneration(config)
    # transformers builds the tower as CLIPVisionTransformer (no `vision_model.` level) or, in
    # other versions, as CLIPVisionModel: follow the model at hand.
    names = set(model.state_dict())
    vision_prefix = next(
        (prefix for prefix in ('model.vision_tower.vision_model.', 'model.vision_tower.')
         if any(key.startswith(prefix + 'embeddings.') for key in names)), '')
    state = _state_dict(original, clip, config.text_config.vocab_size, dtype, vision_prefix)
    missing, unexpected = sorted(names - set(state)), sorted(set(state) - names)
    if missing or unexpected:
        raise ModelError(f'weights do not fit a Llava model: missing {missing[:5]}, unexpected '
                         f'{unexpected[:5]}')
    try:
        model.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as error:  # shape mismatches name the tensor
        raise ModelError(f'weights do not fit the configured shapes: {error}') from error
    text = config.text_config
    model.generation_config = GenerationConfig(
        bos_token_id=text.bos_token_id, eos_token_id=text.eos_token_id,
        pad_token_id=text.pad_token_id, do_sample=False)
    return model


def prepare_output(output: Path, overwrite: bool) -> Path | None:
    """Make `output` a writable directory before any weights load.

    Returns the outermost directory this created (None: `output` existed), for clean-up.
    """
    if output.exists() and not output.is_dir():
        raise ModelError(f'output {str(output)!r} exists and is not a directory')
    if output.is_dir() and any(output.iterdir()) and not overwrite:
        raise ModelError(f'output directory {str(output)!r} is not empty (pass --overwrite)')
    created = next((parent for parent in reversed((output, *output.parents))
                    if not parent.exists()), None)
    try:
        output.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=output):  # permissions alone miss read-only mounts
            pass
    except OSError as error:
        raise ModelError(f'output directory {str(output)!r} is not writable: '
                         f'{error.strerror or error}') from error
    return created


def import_checkpoint(checkpoint: Path, vision_tower: Path, output: Path,
                      dtype: str = 'auto', overwrite: bool = False) -> Path:
    """Convert `checkpoint` (+ the CLIP directory `vision_tower`) into `output`.

    Inputs and the output directory are checked before any weights are read; on failure,
    directories this created are removed again.
    """
    checkpoint, vision_tower, output = Path(checkpoint), Path(vision_tower), Path(output)
    for what, directory in (('checkpoint', checkpoint), ('vision tower', vision_tower)):
        if not directory.is_dir():
            raise ModelError(f'{what} directory {str(directory)!r} does not exist')
    original_config = _read_json(checkpoint / 'config.json', 'checkpoint')
    check_original_config(original_config)
    tokenizer = convert_tokenizer(checkpoint)
    vision_config = _vision_config(vision_tower)
    preprocess = _read_json(vision_tower / 'preprocessor_config.json', 'vision tower')
    created = prepare_output(output, overwrite)
    try:
        _convert(checkpoint, vision_tower, output, original_config, tokenizer, vision_config,
                 preprocess, dtype)
    except BaseException:
        if created is not None:
            shutil.rmtree(created, ignore_errors=True)
        raise
    return output


def _convert(checkpoint: Path, vision_tower: Path, output: Path, original_config: dict,
             tokenizer: PreTrainedTokenizerFast, vision_config: CLIPVisionConfig,
             preprocess: dict, dtype: str) -> None:
    """Load both checkpoints' weights and write the Llava model, processor and provenance."""
    original = load_weights(checkpoint, 'checkpoint')
    clip = load_weights(vision_tower, 'vision tower')
    embeddings = original.get('model.embed_tokens.weight')
    if embeddings is None:
        raise ModelError('LLaVA checkpoint lacks model.embed_tokens.weight')
    vocab = embeddings.shape[0]
    _check_sizes(original_config, vocab, tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
                 vision_config, preprocess)
    rows = -(-(vocab + 2) // VOCAB_MULTIPLE) * VOCAB_MULTIPLE
    target_dtype = embeddings.dtype if dtype == 'auto' else getattr(torch, dtype)
    config = _llava_config(original_config, vision_config, vocab, rows, target_dtype)
    model = _filled_model(config, original, clip, target_dtype)
    processor = llava_processor(
        tokenizer, vision_config.image_size, vision_config.patch_size,
        preprocess.get('image_mean'), preprocess.get('image_std'),
        pad_to_square=_ASPECT_PADS[original_config.get('image_aspect_ratio') or ''],
        select_strategy=config.vision_feature_select_strategy,
        resample=preprocess.get('resample', 3))
    provenance = {'checkpoint': str(checkpoint.resolve()),
                  'vision_tower': str(vision_tower.resolve()),
                  'original_config': original_config, 'vocabulary_rows': rows}
    try:
        model.save_pretrained(output, max_shard_size='5GB')
        processor.save_pretrained(output)
        (output / 'llara_import.json').write_text(json.dumps(provenance, indent=2) + '\n')
    except OSError as error:
        raise ModelError(f'cannot write the model to {str(output)!r}: {error}') from error


def main(argv=None) -> int:
    """Command line entry point (console script `llara_import_checkpoint`)."""
    parser = argparse.ArgumentParser(
        prog='llara_import_checkpoint', description=__doc__.split('\n\n')[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--checkpoint', required=True, type=Path,
                        help='original-layout LLaVA/LLaRA checkpoint directory')
    parser.add_argument('--vision-tower', required=True, type=Path,
                        help='CLIP ViT-L/14-336 directory (openai/clip-vit-large-patch14-336)')
    parser.add_argument('--output', required=True, type=Path,
                        help='directory for the Hugging Face Llava model')
    parser.add_argument('--dtype', default='auto',
                        choices=('auto', 'float16', 'bfloat16', 'float32'),
                        help="weights dtype; 'auto' keeps the checkpoint's")
    parser.add_argument('--overwrite', action='store_true',
                        help='write into a non-empty output directory')
    args = parser.parse_args(argv)
    try:
        output = import_checkpoint(args.checkpoint, args.vision_tower, args.output, args.dtype,
                                   args.overwrite)
    except LlaraError as error:
        print(f'llara_import_checkpoint: error: {error}', file=sys.stderr)
        return 1
    print(f'wrote {output}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
