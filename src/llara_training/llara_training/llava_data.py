"""LLaVA JSON conversations -> model inputs with the loss on the assistant's answer only.

Samples are llara-spec 1.1's: `{id, image: [paths], conversations: [human, gpt]}`, single round,
`<image>` (first image) and `<imageN>` (N-th image) placeholders in the human turn. Text is
written by `prompting` (Vicuna v1) or the processor's chat template, frames are padded to a
square of the image mean colour ('pad') and the placeholders are expanded by the model's own
processor, exactly as `VlmPolicy.encode` does at runtime, so training and serving see the same ids.
"""
from dataclasses import dataclass
import json
from pathlib import Path
import re

import numpy as np
from PIL import Image
import torch

from llara_policy.errors import ConfigError
from llara_policy.geometry.preprocessing import SquarePad
from llara_policy.text import prompting

IGNORE_INDEX = -100  # label of tokens without loss (torch cross-entropy's ignore_index)
_PLACEHOLDER = re.compile(r'<image(\d*)>')  # spec 1.1: `<image>` = image 0, `<imageN>` = N
_LITERAL_EOS = re.compile(r'</?s>')  # LLaRA's preprocess_multimodal strips literal <s>, </s>


@dataclass(frozen=True)
class LlavaSample:
    """One single-round conversation: the images it lists, the question and the answer."""

    sample_id: str
    image_paths: tuple[Path, ...]
    question: str
    answer: str

    def image_order(self) -> tuple[int, ...]:
        """Return the `image_paths` indices of the question's placeholders, in text order."""
        return tuple(int(index or 0) for index in _PLACEHOLDER.findall(self.question))


def read_llava_json(data_path: str | Path,
                    image_folder: str | Path = '') -> tuple[LlavaSample, ...]:
    """Read and check a LLaVA JSON file; image paths are relative to `image_folder`.

    The default folder is the JSON file's own.

    Every problem (malformed sample, placeholder without an image, missing image file) is a
    ConfigError naming the sample, raised before any training starts.
    """
    path = Path(data_path)
    try:
        records = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ConfigError(f'cannot read the training data {str(path)!r}: {error}') from error
    if not isinstance(records, list) or not records:
        raise ConfigError(f'{str(path)!r} must hold a non-empty JSON list of samples')
    folder = Path(image_folder) if image_folder else path.parent
    return tuple(_sample(record, index, folder, path) for index, record in enumerate(records))


def _sample(record, index: int, folder: Path, path: Path) -> LlavaSample:
    where = f'{path.name} sample {index}'
    if not isinstance(record, dict) or not isinstance(record.get('id'), str):
        raise ConfigError(f'{where} must be an object with a string "id"')
    where = f'{path.name} sample {record["id"]!r}'
    images = record.get('image', [])
    images = [images] if isinstance(images, str) else images
    if not isinstance(images, list) or not all(isinstance(i, str) for i in images):
        raise ConfigError(f'{where}: "image" must be a path or a list of paths')
    turns = record.get('conversations')
    if (not isinstance(turns, list) or not all(isinstance(t, dict) for t in turns)
            or [t.get('from') for t in turns] != ['human', 'gpt']
            or not all(isinstance(t.get('value'), str) for t in turns)):
        raise ConfigError(f'{where}: "conversations" must be one human turn then one gpt turn, '
                          'each with a string "value" (LLaRA samples are single-round)')
    question, answer = (_LITERAL_EOS.sub('', turn['value']) for turn in turns)
    if _PLACEHOLDER.search(answer):
        raise ConfigError(f'{where}: the gpt turn contains an image placeholder')
    sample = LlavaSample(record['id'], tuple(folder / image for image in images), question,
                         answer)
    for order in sample.image_order():
        if order >= len(images):
            raise ConfigError(f'{where}: <image{order}> but the sample lists {len(images)} '
                              'image(s)')
    for image_path in sample.image_paths:
        if not image_path.is_file():
            raise ConfigError(f'{where}: image {str(image_path)!r} does not exist')
    return sample


def load_frame(path: Path) -> np.ndarray:
    """Read an image file as an (H, W, 3) uint8 RGB array."""
    with Image.open(path) as image:
        return np.asarray(image.convert('RGB'))


class LlavaDataset(torch.utils.data.Dataset):
    """Encodes samples lazily (images read per item): input_ids, attention_mask, labels, images.

    Args:
        samples: from `read_llava_json`.
        processor: the model's processor (tokenizer + image processor).
        prompt_format: 'vicuna_v1' (prompting.training_text), 'chat_template' or 'plain'.
        pad_to_square: pad each frame to a square of the processor's mean colour first.
        model_max_length: a longer encoded sample is a ConfigError (never truncated).
    """

    def __init__(self, samples: tuple[LlavaSample, ...], processor, prompt_format: str,
                 pad_to_square: bool, model_max_length: int):
        self.samples = samples
        self.processor = processor
        self.prompt_format = prompt_format
        self.pad_to_square = pad_to_square
        self.model_max_length = model_max_length
        self.image_token = getattr(processor, 'image_token', None) or '<image>'
        mean = getattr(processor.image_processor, 'image_mean', None) or [0.5, 0.5, 0.5]
        # LLaVA's expand2square colour, as VlmPolicy: tuple(int(x * 255) for x in image_mean).
        self.fill_rgb = tuple(int(m * 255) for m in mean)
        if processor.tokenizer.pad_token_id is None:
            raise ConfigError('the tokenizer has no pad token: batches cannot be padded')

    def __len__(self) -> int:
        return len(self.samples)

    def texts(self, sample: LlavaSample) -> tuple[str, str]:
        """(prompt up to the answer, full text with answer and end of turn) of a sample."""
        if self.prompt_format == 'vicuna_v1':
            question = _PLACEHOLDER.sub(self.image_token, sample.question)
            return (prompting.generation_prompt(question),
                    prompting.training_text(question, sample.answer))
        if self.prompt_format == 'plain':
            # LLaVA-1.5's pretraining template ('plain'): each image, then the answer alone.
            images = self.image_token * len(sample.image_order()) + '\n'
            return images, f'{images}{sample.answer}{self.processor.tokenizer.eos_token}'
        messages = chat_messages(sample.question)
        prompt = self.processor.apply_chat_template(messages, tokenize=False,
                                                    add_generation_prompt=True)
        messages.append({'role': 'assistant', 'content': [{'type': 'text',
                                                          'text': sample.answer}]})
        return prompt, self.processor.apply_chat_template(messages, tokenize=False)

    def frames(self, sample: LlavaSample) -> list[np.ndarray]:
        """Return the images in placeholder order, padded to squares when `pad_to_square`."""
        frames = []
        for index in sample.image_order():
            rgb = load_frame(sample.image_paths[index])
            if self.pad_to_square:
                height, width = rgb.shape[:2]
                rgb = SquarePad(width, height, fill_rgb=self.fill_rgb).pad(rgb)
            frames.append(rgb)
        return frames

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        """Encode one sample; labels are IGNORE_INDEX except on the answer and end of turn."""
        sample = self.samples[index]
        prompt, full = self.texts(sample)
        frames = self.frames(sample)
        kwargs = {'images': frames} if frames else {}
        encoded = self.processor(text=full, return_tensors='pt', **kwargs)
        prompt_ids = self.processor(text=prompt, return_tensors='pt', **kwargs)['input_ids'][0]
        input_ids = encoded['input_ids'][0]  # (T,)
        if len(input_ids) > self.model_max_length:
            raise ConfigError(f'sample {sample.sample_id!r} is {len(input_ids)} tokens long, '
                              f'over model_max_length {self.model_max_length}')
        answer_start = _common_prefix(prompt_ids, input_ids)
        # The full text extends the prompt; only a merge across the boundary may differ.
        if answer_start < len(prompt_ids) - 1 or answer_start >= len(input_ids):
            raise ConfigError(f'sample {sample.sample_id!r}: the tokenized prompt is not a '
                              'prefix of the tokenized sample, so the answer cannot be found')
        labels = input_ids.clone()
        labels[:answer_start] = IGNORE_INDEX
        item = {'input_ids': input_ids, 'attention_mask': encoded['attention_mask'][0],
                'labels': labels}
        item.update({key: value for key, value in encoded.items() if key not in item})
        return item


def chat_messages(question: str) -> list[dict]:
    """Build a chat-template user message: each placeholder an image item, text in between.

    A newline right after a placeholder is dropped (the template writes its own separator), as
    `VlmPolicy` does for the `<image0>` line.
    """
    content, position = [], 0
    for match in _PLACEHOLDER.finditer(question):
        if match.start() > position:
            content.append({'type': 'text', 'text': question[position:match.start()]})
        content.append({'type': 'image'})
        position = match.end() + (question.startswith('\n', match.end()))
    if position < len(question):
        content.append({'type': 'text', 'text': question[position:]})
    return [{'role': 'user', 'content': content}]


def _common_prefix(first: torch.Tensor, second: torch.Tensor) -> int:
    length = min(len(first), len(second))
    differs = (first[:length] != second[:length]).nonzero()
    return int(differs[0]) if len(differs) else length


@dataclass(frozen=True)
class LlavaCollator:
    """Right-pads a list of dataset items into a batch; image tensors are concatenated.

    input_ids pad with `pad_token_id`, labels with IGNORE_INDEX, attention_mask with 0; other
    tensors (pixel_values (N_images, 3, S, S), image sizes or grids) are concatenated along
    dim 0 in sample order, which is the order the model assigns images to image tokens.
    """

    pad_token_id: int

    def __call__(self, items: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        """Collate `items` (from LlavaDataset) into one batch."""
        length = max(len(item['input_ids']) for item in items)
        pads = {'input_ids': self.pad_token_id, 'labels': IGNORE_INDEX, 'attention_mask': 0}
        batch = {}
        for key, pad in pads.items():
            batch[key] = torch.full((len(items), length), pad, dtype=items[0][key].dtype)
            for row, item in enumerate(items):
                batch[key][row, :len(item[key])] = item[key]
        extra = sorted({key for item in items for key in item} - set(pads))
        for key in extra:
            batch[key] = torch.cat([item[key] for item in items if key in item])
        return batch
