"""Tiny LLaVA models built offline, for tests, benchmarks and smoke pipelines across the repo.

`save_tiny_llava(directory, spec)` writes a complete Hugging Face model directory (tokenizer,
processor, chat template, config, random weights) that `VlmPolicy` and `from_pretrained` load
like a real checkpoint, in a fraction of a second for the test sizes. The byte-level BPE
tokenizer is trained on the text the model will read and write (prompting's system prompt,
instructions, user prompts, answers and history), so prompts and answers are a few hundred
tokens, and it splits digits one by one as LLaMA's tokenizer does.
"""
from dataclasses import dataclass, replace
from pathlib import Path
import random

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
import torch
from transformers import (
    CLIPVisionConfig,
    LlamaConfig,
    LlavaConfig,
    LlavaForConditionalGeneration,
    LlavaProcessor,
    PreTrainedTokenizerFast,
)

from llara_policy.geometry.preprocessing import CLIP_MEAN_RGB, CLIP_STD_RGB
from llara_policy.model.loading import IMAGE_TOKEN, llava_processor
from llara_policy.text import prompting
from llara_policy.text.prompt_pools import ACTION_PROMPTS
from llara_policy.types import ActionStep, Effector, ImagePoint, Observation

SPECIAL_TOKENS = ('<unk>', '<s>', '</s>', '<pad>', IMAGE_TOKEN)  # ids 0-4, LLaMA's first three
PATCH_SIZE_PX = 14
# Words for object phrases in the tokenizer corpus (VIMA-like colours, textures and shapes).
_OBJECT_WORDS = ('red', 'green', 'blue', 'yellow', 'purple', 'polka', 'dot', 'striped',
                 'granite', 'letter', 'R', 'A', 'block', 'bowl', 'pan', 'star', 'heart', 'cross',
                 'frame', 'ring', 'square', 'triangle', 'pentagon', 'small', 'container')


@dataclass(frozen=True)
class TinySpec:
    """Sizes of a tiny LLaVA: CLIP vision tower + 2-layer projector + Llama language model.

    `model_vocab_size` 0 sizes the embeddings to the tokenizer; a larger value pads them (e.g.
    LLaVA-1.5-7B's 32064) so the output layer costs what the real one does.
    """

    image_size_px: int = 28
    vision_hidden: int = 32
    vision_layers: int = 2
    vision_heads: int = 2
    text_hidden: int = 64
    text_layers: int = 2
    text_heads: int = 4
    text_kv_heads: int = 2
    text_intermediate: int = 128
    tokenizer_vocab_size: int = 512
    model_vocab_size: int = 0
    seed: int = 0


TINY = TinySpec()
# About 30M parameters at LLaVA's 336 px (576 image tokens): the CPU benchmark model.
SMALL_30M = TinySpec(image_size_px=336, vision_hidden=384, vision_layers=6, vision_heads=6,
                     text_hidden=512, text_layers=6, text_heads=8, text_kv_heads=8,
                     text_intermediate=1408, tokenizer_vocab_size=2048)
# The demo policy trained from scratch on the embedded sim (llara_training recipe,
# configs/demo_recipe.yaml): 168 px frames (12 x 12 patches), about 2M parameters, 4 MB in 16 bits.
DEMO = TinySpec(image_size_px=168, vision_hidden=96, vision_layers=2, vision_heads=4,
                text_hidden=192, text_layers=3, text_heads=4, text_kv_heads=4,
                text_intermediate=512, tokenizer_vocab_size=1024)
# LLaVA-1.5-7B's shapes (CLIP ViT-L/14-336, Vicuna-7B, 32064 padded vocabulary), random weights.
LLAVA_7B_SHAPE = TinySpec(image_size_px=336, vision_hidden=1024, vision_layers=24,
                          vision_heads=16, text_hidden=4096, text_layers=32, text_heads=32,
                          text_kv_heads=32, text_intermediate=11008, tokenizer_vocab_size=2048,
                          model_vocab_size=32064)


def template_corpus(seed: int = 0, answers: int = 40) -> list[str]:
    """Texts in the form the model reads and writes, all written by `prompting`."""
    rng = random.Random(seed)
    texts = [prompting.VICUNA_V1_SYSTEM, *prompting.ACTION_INSTRUCTIONS.values(), *ACTION_PROMPTS]
    for index in range(answers):
        effector = (Effector.SUCTION, Effector.SPATULA)[index % 2]
        spacing = tuple(prompting.ActionSpacing)[index // 2 % 2]
        steps = [random_step(rng, effector, number) for number in range(1, rng.randint(2, 4))]
        task = f'Put the <p>{random_object(rng)}</p> into the <p>{random_object(rng)}</p>.'
        turn = prompting.build_user_turn(task, effector, history=steps[:1], spacing=spacing,
                                         user_prompt=rng.choice(ACTION_PROMPTS))
        texts.append(prompting.training_text(turn, prompting.format_answer(steps, spacing)))
    return texts


def random_object(rng: random.Random) -> str:
    """Return a short object phrase such as 'granite letter R'."""
    return ' '.join(rng.choice(_OBJECT_WORDS) for _ in range(rng.randint(1, 3)))


def random_step(rng: random.Random, effector: Effector = Effector.SUCTION,
                number: int = 1) -> ActionStep:
    """Return a random, formattable action step (3-decimal points, whole degrees)."""
    def point() -> ImagePoint:
        return ImagePoint(rng.randrange(1001) / 1000, rng.randrange(1001) / 1000)
    return ActionStep(point(), point(), rng.randint(-359, 359), random_object(rng), effector,
                      number)


def build_tokenizer(spec: TinySpec = TINY) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE tokenizer on `template_corpus` (about 10 ms)."""
    bpe = Tokenizer(models.BPE(unk_token='<unk>'))
    # Digits one by one (as LLaMA's and Qwen2's tokenizers do), then GPT-2 style byte-level.
    bpe.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False)])
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=spec.tokenizer_vocab_size,
                                  special_tokens=list(SPECIAL_TOKENS), show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    bpe.train_from_iterator(template_corpus(), trainer)
    # A sequence starts with <s>, as LLaMA's does.
    bpe.post_processor = processors.TemplateProcessing(
        single='<s> $A', pair='<s> $A $B', special_tokens=[('<s>', bpe.token_to_id('<s>'))])
    return PreTrainedTokenizerFast(
        tokenizer_object=bpe, unk_token='<unk>', bos_token='<s>', eos_token='</s>',
        pad_token='<pad>', extra_special_tokens={'image_token': IMAGE_TOKEN},
        clean_up_tokenization_spaces=False)


def build_processor(spec: TinySpec = TINY, tokenizer=None) -> LlavaProcessor:
    """Return LLaVA-1.5's processor ('pad', resize, normalise) for `spec` and `tokenizer`."""
    tokenizer = tokenizer if tokenizer is not None else build_tokenizer(spec)
    return llava_processor(tokenizer, spec.image_size_px, PATCH_SIZE_PX, CLIP_MEAN_RGB,
                           CLIP_STD_RGB)


def build_config(spec: TinySpec, tokenizer) -> LlavaConfig:
    """Return the LlavaConfig of `spec` (LLaVA-1.5: layer -2 patch features, GELU)."""
    vocab = spec.model_vocab_size or len(tokenizer)
    ids = {name: tokenizer.convert_tokens_to_ids(token) for name, token in
           (('bos_token_id', '<s>'), ('eos_token_id', '</s>'), ('pad_token_id', '<pad>'))}
    vision = CLIPVisionConfig(
        hidden_size=spec.vision_hidden, intermediate_size=4 * spec.vision_hidden,
        num_hidden_layers=spec.vision_layers, num_attention_heads=spec.vision_heads,
        image_size=spec.image_size_px, patch_size=PATCH_SIZE_PX, projection_dim=spec.vision_hidden)
    text = LlamaConfig(
        hidden_size=spec.text_hidden, intermediate_size=spec.text_intermediate,
        num_hidden_layers=spec.text_layers, num_attention_heads=spec.text_heads,
        num_key_value_heads=spec.text_kv_heads, vocab_size=vocab, max_position_embeddings=4096,
        rms_norm_eps=1e-5, **ids)
    return LlavaConfig(
        vision_config=vision, text_config=text,
        image_token_index=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
        image_seq_length=(spec.image_size_px // PATCH_SIZE_PX) ** 2,
        vision_feature_layer=-2, vision_feature_select_strategy='default',
        projector_hidden_act='gelu', **ids)


def build_tiny_llava(spec: TinySpec = TINY, dtype: torch.dtype = torch.float32,
                     device: str = 'cpu') -> tuple[LlavaForConditionalGeneration, LlavaProcessor]:
    """Build a random-weight model of `spec` (seeded) and its processor, in memory."""
    processor = build_processor(spec)
    config = build_config(spec, processor.tokenizer)
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(spec.seed)
    try:
        with torch.device(device):
            model = LlavaForConditionalGeneration._from_config(config, dtype=dtype)
    finally:
        torch.random.set_rng_state(generator_state)  # leave the caller's RNG as it was
    model.generation_config.pad_token_id = config.pad_token_id
    return model.eval(), processor


def save_tiny_llava(directory, spec: TinySpec = TINY, dtype: torch.dtype = torch.float32,
                    device: str = 'cpu') -> Path:
    """Build a model of `spec` and save it with its processor; returns the directory."""
    directory = Path(directory)
    model, processor = build_tiny_llava(spec, dtype, device)
    model.save_pretrained(directory)
    processor.save_pretrained(directory)
    return directory


def with_seed(spec: TinySpec, seed: int) -> TinySpec:
    """`spec` with another seed (other random weights, same tokenizer corpus shape)."""
    return replace(spec, seed=seed)


@dataclass(frozen=True)
class AnswerSample:
    """One query (frame, task text, steps done) and the answer the model should give."""

    observation: Observation
    instruction: str
    history: tuple[ActionStep, ...]
    answer: str


def overfit(policy, samples: list[AnswerSample], max_steps: int = 400, lr: float = 5e-3,
            target_loss: float = 0.01) -> float:
    """Fit `policy`'s model (in place) to answer each sample's query with its answer.

    Teacher forcing on the policy's own inputs (same prompt, padding and processor), loss on the
    answer and EOS tokens only, all samples in one right-padded batch; stops at `target_loss`.
    Returns the last loss. For tests and smoke runs: a few samples, a tiny model.
    """
    model, tokenizer = policy.model, policy.tokenizer
    rows, pixels = [], []
    for sample in samples:
        inputs = policy.encode(sample.observation, sample.instruction, sample.history)
        answer = tokenizer(policy.answer_lead + sample.answer + tokenizer.eos_token,
                           add_special_tokens=False, return_tensors='pt').input_ids
        prompt = inputs['input_ids']
        rows.append((torch.cat([prompt, answer], dim=1)[0], prompt.shape[1]))
        pixels.append(inputs['pixel_values'])
    length = max(len(ids) for ids, _ in rows)
    pad = tokenizer.pad_token_id
    input_ids = torch.full((len(rows), length), pad)  # (B, T)
    labels = torch.full((len(rows), length), -100)  # (B, T): -100 = no loss
    attention = torch.zeros((len(rows), length), dtype=torch.long)
    for row, (ids, prompt_length) in enumerate(rows):
        input_ids[row, :len(ids)] = ids
        labels[row, prompt_length:len(ids)] = ids[prompt_length:]
        attention[row, :len(ids)] = 1
    batch = {'input_ids': input_ids, 'attention_mask': attention, 'labels': labels,
             'pixel_values': torch.cat(pixels)}  # pixel_values (B, 3, S, S)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    loss = float('inf')
    with torch.enable_grad():
        for _ in range(max_steps):
            optimizer.zero_grad()
            output = model(**batch)
            output.loss.backward()
            optimizer.step()
            loss = output.loss.item()
            if loss < target_loss:
                break
    model.eval()
    return loss

