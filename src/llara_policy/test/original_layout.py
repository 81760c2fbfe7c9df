"""Write tiny checkpoints in haotian-liu/LLaVA's original layout, as LLaRA's releases ship.

A known tiny Hugging Face Llava model with a LLaMA-style SentencePiece tokenizer is split into
what a release holds: `config.json` with the `mm_*` fields, Llama weights under `model.*`, the
projector as `model.mm_projector.0/2`, `tokenizer.model` + `tokenizer_config.json` +
`special_tokens_map.json`, and a separate CLIP directory laid out like
openai/clip-vit-large-patch14-336 (whole CLIP model, `preprocessor_config.json`). The
tokenizer.model is trained by sentencepiece itself, never written by the code under test.
"""
import json
from pathlib import Path

from safetensors.torch import save_file
import sentencepiece
import torch
from transformers import CLIPConfig, CLIPModel, CLIPTextConfig

from llara_policy.geometry.preprocessing import CLIP_MEAN_RGB, CLIP_STD_RGB
from llara_policy.model import tiny_models

# LLaMA's trainer settings (its tokenizer.model's trainer_spec and normalizer_spec).
LLAMA_TRAINER_OPTIONS = dict(
    model_type='bpe', byte_fallback=True, split_digits=True, add_dummy_prefix=True,
    remove_extra_whitespaces=False, normalization_rule_name='identity',
    allow_whitespace_only_pieces=True, character_coverage=1.0, unk_id=0, bos_id=1, eos_id=2,
    pad_id=-1)
ROW_MULTIPLE = 64  # llava-hf/llava-1.5-7b-hf: 32000 pieces + <image> + <pad> -> 32064 rows


def train_sentencepiece(model_file: Path, vocab_size: int = 400, **options) -> Path:
    """Train a SentencePiece model on the template corpus into `model_file` (LLaMA's kind
    unless `options` say otherwise); about 0.1 s."""
    lines = [line for text in tiny_models.template_corpus() for line in text.split('\n')
             if line.strip()]
    model_file.parent.mkdir(parents=True, exist_ok=True)
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(lines), model_prefix=str(model_file.with_suffix('')),
        vocab_size=vocab_size, minloglevel=2, num_threads=1,
        **{**LLAMA_TRAINER_OPTIONS, **options})
    return model_file


def llava_prompt_ids(processor: sentencepiece.SentencePieceProcessor, prompt: str,
                     image_id: int) -> list[int]:
    """The ids LLaVA's `tokenizer_image_token` writes with the original tokenizer.

    As documented in haotian-liu/LLaVA (llava/mm_utils.py): the prompt is split at each
    '<image>', each piece is tokenized on its own (BOS + SentencePiece ids), the pieces are
    joined with the image index and only the first piece keeps its BOS.
    """
    chunks = [processor.encode(chunk) for chunk in prompt.split('<image>')]
    ids = [processor.bos_id(), *chunks[0]]
    for chunk in chunks[1:]:
        ids += [image_id, *chunk]
    return ids


class LlavaVocabulary:
    """LLaVA-1.5's ids for a SentencePiece vocabulary of n pieces: <image> n, <pad> n + 1."""

    def __init__(self, processor: sentencepiece.SentencePieceProcessor):
        self.processor = processor
        self.pieces = processor.get_piece_size()

    def __len__(self) -> int:
        return self.pieces + 2

    def convert_tokens_to_ids(self, token: str) -> int:
        added = {'<image>': self.pieces, '<pad>': self.pieces + 1}
        return added[token] if token in added else self.processor.piece_to_id(token)


def known_model(spec: tiny_models.TinySpec, checkpoint: Path):
    """The reference: a random Llava with a trained SentencePiece tokenizer.model.

    Its ids come from SentencePiece alone (not from the import under test); returns the
    model and the number of SentencePiece pieces.
    """
    processor = sentencepiece.SentencePieceProcessor(
        model_file=str(train_sentencepiece(checkpoint / 'tokenizer.model')))
    vocabulary = LlavaVocabulary(processor)
    config = tiny_models.build_config(spec, vocabulary)
    config.text_config.vocab_size = -(-len(vocabulary) // ROW_MULTIPLE) * ROW_MULTIPLE
    torch.manual_seed(spec.seed)
    model = tiny_models.LlavaForConditionalGeneration(config).eval()
    return model, vocabulary.pieces


def _save_shards(state: dict, directory: Path, fmt: str) -> None:
    """Two shards plus an index, as transformers 4.37's Trainer (safetensors) or LLaVA's
    released pytorch_model-0000N-of-00002.bin files."""
    keys = sorted(state)
    halves = (keys[:len(keys) // 2], keys[len(keys) // 2:])
    weight_map = {}
    for number, part in enumerate(halves, start=1):
        if fmt == 'safetensors':
            name = f'model-{number:05d}-of-00002.safetensors'
            save_file({k: state[k].contiguous() for k in part}, directory / name,
                      metadata={'format': 'pt'})
        else:
            name = f'pytorch_model-{number:05d}-of-00002.bin'
            torch.save({k: state[k] for k in part}, directory / name)
        weight_map.update({k: name for k in part})
    index = 'model.safetensors.index.json' if fmt == 'safetensors' else \
        'pytorch_model.bin.index.json'
    (directory / index).write_text(json.dumps({'metadata': {}, 'weight_map': weight_map}))


def write_original_layout(model, vocab: int, checkpoint: Path, clip_dir: Path,
                          fmt: str = 'safetensors', with_vision_tower: bool = False) -> None:
    """Split `model` into an original-layout checkpoint and a CLIP directory."""
    text = model.config.text_config
    vision = model.config.vision_config
    state = {}
    for key, tensor in model.state_dict().items():
        if key.startswith('model.language_model.'):
            state['model.' + key.removeprefix('model.language_model.')] = tensor
        elif key.startswith('model.multi_modal_projector.linear_'):
            index = {'1': '0', '2': '2'}[key.split('linear_')[1][0]]
            state[f'model.mm_projector.{index}.' + key.rsplit('.', 1)[1]] = tensor
        elif key.startswith('model.vision_tower.') and with_vision_tower:
            name = key.removeprefix('model.vision_tower.')
            state['model.vision_tower.vision_tower.vision_model.' + name] = tensor
        elif key == 'lm_head.weight':
            state[key] = tensor
    for key in ('model.embed_tokens.weight', 'lm_head.weight'):
        state[key] = state[key][:vocab].clone()  # LLaVA's vocabulary has no <image> row
    _save_shards(state, checkpoint, fmt)
    (checkpoint / 'config.json').write_text(json.dumps({
        '_name_or_path': './checkpoints/llava-v1.5-7b', 'architectures': ['LlavaLlamaForCausalLM'],
        'bos_token_id': 1, 'eos_token_id': 2, 'freeze_mm_mlp_adapter': False,
        'hidden_act': 'silu', 'hidden_size': text.hidden_size, 'image_aspect_ratio': 'pad',
        'image_grid_pinpoints': None, 'initializer_range': 0.02,
        'intermediate_size': text.intermediate_size, 'max_length': 4096,
        'max_position_embeddings': 4096, 'mm_hidden_size': vision.hidden_size,
        'mm_patch_merge_type': 'flat', 'mm_projector_lr': None,
        'mm_projector_type': 'mlp2x_gelu', 'mm_use_im_patch_token': False,
        'mm_use_im_start_end': False, 'mm_vision_select_feature': 'patch',
        'mm_vision_select_layer': -2, 'mm_vision_tower': 'openai/clip-vit-large-patch14-336',
        'model_type': 'llava_llama', 'num_attention_heads': text.num_attention_heads,
        'num_hidden_layers': text.num_hidden_layers,
        'num_key_value_heads': text.num_key_value_heads, 'pad_token_id': 0,
        'pretraining_tp': 1, 'rms_norm_eps': text.rms_norm_eps, 'rope_scaling': None,
        'rope_theta': 10000.0, 'tie_word_embeddings': False, 'tokenizer_model_max_length': 2048,
        'tokenizer_padding_side': 'right', 'torch_dtype': 'float32',
        'transformers_version': '4.37.2', 'tune_mm_mlp_adapter': False,
        'unfreeze_mm_vision_tower': False, 'use_cache': True, 'use_mm_proj': True,
        'vocab_size': vocab}, indent=2))
    (checkpoint / 'tokenizer_config.json').write_text(json.dumps({
        'add_bos_token': True, 'add_eos_token': False, 'bos_token': '<s>',
        'clean_up_tokenization_spaces': False, 'eos_token': '</s>', 'legacy': False,
        'model_max_length': 2048, 'pad_token': '<unk>', 'padding_side': 'right',
        'sp_model_kwargs': {}, 'tokenizer_class': 'LlamaTokenizer', 'unk_token': '<unk>'}))
    (checkpoint / 'special_tokens_map.json').write_text(json.dumps({
        'bos_token': '<s>', 'eos_token': '</s>', 'pad_token': '<unk>', 'unk_token': '<unk>'}))
    (checkpoint / 'generation_config.json').write_text(json.dumps({
        'bos_token_id': 1, 'eos_token_id': 2, 'max_length': 4096, 'pad_token_id': 0,
        'temperature': 0.9, 'top_p': 0.6}))
    _write_clip(model, clip_dir)


def _write_clip(model, clip_dir: Path) -> None:
    vision = model.config.vision_config
    text = CLIPTextConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                          num_attention_heads=2, vocab_size=64,
                          bos_token_id=0, eos_token_id=1, pad_token_id=1)
    clip = CLIPModel(CLIPConfig(text_config=text.to_dict(), vision_config=vision.to_dict(),
                                projection_dim=vision.projection_dim))
    vision_state = {'vision_model.' + key.removeprefix('model.vision_tower.'): tensor
                    for key, tensor in model.state_dict().items()
                    if key.startswith('model.vision_tower.')}
    missing, unexpected = clip.load_state_dict(vision_state, strict=False)
    assert not unexpected and not [k for k in missing if k.startswith('vision_model.')]
    clip.save_pretrained(clip_dir)
    size = vision.image_size
    (clip_dir / 'preprocessor_config.json').write_text(json.dumps({
        'crop_size': {'height': size, 'width': size}, 'do_center_crop': True,
        'do_convert_rgb': True, 'do_normalize': True, 'do_rescale': True, 'do_resize': True,
        'feature_extractor_type': 'CLIPFeatureExtractor',
        'image_mean': list(CLIP_MEAN_RGB), 'image_processor_type': 'CLIPImageProcessor',
        'image_std': list(CLIP_STD_RGB), 'resample': 3,
        'rescale_factor': 0.00392156862745098, 'size': {'shortest_edge': size}}))
