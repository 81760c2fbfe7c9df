"""LLaVA JSON -> model inputs: loss only on the answer, same ids and pixels as VlmPolicy."""
import json

from finetune_fixtures import load_frame_rgb, write_dataset, write_frame, write_tiny_model
import numpy as np
import pytest
import torch
from transformers import AutoProcessor

from llara_policy.errors import ConfigError
from llara_policy.model.config import PolicyConfig
from llara_policy.model.policy import VlmPolicy
from llara_policy.text import prompting
from llara_policy.types import Effector, Observation
from llara_training.llava_data import (
    IGNORE_INDEX,
    LlavaCollator,
    LlavaDataset,
    read_llava_json,
)


@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp('data')
    model = write_tiny_model(root / 'model')
    data = write_dataset(root / 'data', count=4)
    return model, data


def dataset(model, data, prompt_format='vicuna_v1', pad_to_square=True, max_length=2048):
    processor = AutoProcessor.from_pretrained(model, backend='pil')
    return LlavaDataset(read_llava_json(data), processor, prompt_format, pad_to_square,
                        max_length)


def test_exactly_the_answer_and_end_of_turn_carry_loss(tiny):
    model, data = tiny
    ds = dataset(model, data)
    tokenizer = ds.processor.tokenizer
    records = json.loads(data.read_text())
    for index, record in enumerate(records):
        item = ds[index]
        # Vicuna v1 (spec 3.1): `... ASSISTANT:` + ' ' + answer + '</s>'; the byte-level
        # tokenizer keeps ' Step' as one piece, so the answer's ids are those of ' ' + answer.
        expected = tokenizer(' ' + record['conversations'][1]['value'] + '</s>',
                             add_special_tokens=False)['input_ids']
        unmasked = item['labels'][item['labels'] != IGNORE_INDEX].tolist()
        assert unmasked == expected
        # The unmasked tokens are the sequence's tail, and labels equal the ids there.
        tail = item['input_ids'][-len(expected):].tolist()
        assert tail == expected
        assert (item['labels'][:-len(expected)] == IGNORE_INDEX).all()
        assert item['attention_mask'].tolist() == [1] * len(item['input_ids'])


def test_training_inputs_equal_what_the_policy_feeds_the_model(tiny):
    """No train/serve skew: prompt ids and padded pixels match VlmPolicy.encode's."""
    model, data = tiny
    ds = dataset(model, data)
    policy = VlmPolicy.load(PolicyConfig(model_path=str(model), device='cpu', dtype='float32',
                                         decoding='greedy'))
    record = json.loads(data.read_text())[0]
    item = ds[0]
    task = record['conversations'][0]['value'].split('\n')[1]
    assert task.startswith('<task>') and task.endswith('</task>')
    rgb = load_frame_rgb(data.parent / record['image'][0])
    served = policy.encode(Observation(rgb, Effector.SUCTION), task[len('<task>'):-len('</task>')])
    prompt_length = served['input_ids'].shape[1]
    assert item['input_ids'][:prompt_length].tolist() == served['input_ids'][0].tolist()
    assert (item['labels'][:prompt_length] == IGNORE_INDEX).all()
    assert torch.equal(item['pixel_values'], served['pixel_values'])


def test_frames_are_padded_to_a_square_of_the_clip_mean(tiny, tmp_path):
    model, _ = tiny
    write_frame(tmp_path / 'f.png', (10, 10), (255, 0, 0))
    turn = prompting.build_user_turn('Put the <p>red block</p> into the bowl.', Effector.SUCTION)
    record = {'id': 's', 'image': 'f.png', 'conversations': [
        {'from': 'human', 'value': turn}, {'from': 'gpt', 'value': 'Step 1: x'}]}
    (tmp_path / 'd.json').write_text(json.dumps([record]))
    padded = dataset(model, tmp_path / 'd.json').frames(read_llava_json(tmp_path / 'd.json')[0])
    # 64x32 frame centred on a 64x64 square: rows 0-15 and 48-63 are LLaVA's expand2square
    # fill, int(255 * CLIP mean) = (122, 116, 104).
    assert padded[0].shape == (64, 64, 3)
    assert (padded[0][:16] == (122, 116, 104)).all() and (padded[0][48:] == (122, 116, 104)).all()
    assert (padded[0][16:48] == np.asarray(load_frame_rgb(tmp_path / 'f.png'))).all()
    unpadded = dataset(model, tmp_path / 'd.json', pad_to_square=False)
    assert unpadded.frames(read_llava_json(tmp_path / 'd.json')[0])[0].shape == (32, 64, 3)


def test_indexed_placeholders_pick_their_images_in_text_order(tiny, tmp_path):
    model, _ = tiny
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255)]
    for index, colour in enumerate(colours):
        write_frame(tmp_path / f'{index}.png', (32, 16), colour)
    record = {'id': 'multi', 'image': ['0.png', '1.png', '2.png'], 'conversations': [
        {'from': 'human', 'value': '<image2>\nscene <image0>\n<task>x</task>'},
        {'from': 'gpt', 'value': 'Step 1: y'}]}
    (tmp_path / 'd.json').write_text(json.dumps([record]))
    ds = dataset(model, tmp_path / 'd.json')
    item = ds[0]
    image_id = ds.processor.tokenizer.convert_tokens_to_ids('<image>')
    # Two placeholders, 4 image tokens each (28 px / 14 px patches), images 2 then 0.
    assert int((item['input_ids'] == image_id).sum()) == 8
    assert item['pixel_values'].shape[0] == 2
    centre = item['pixel_values'][:, :, 14, 14]  # (2, 3): normalised RGB at the square's centre
    assert centre[0].argmax() == 2 and centre[1].argmax() == 0  # blue first, then red


def test_chat_template_format_matches_the_policy_prompt(tiny):
    model, data = tiny
    ds = dataset(model, data, prompt_format='chat_template')
    policy = VlmPolicy.load(PolicyConfig(model_path=str(model), device='cpu', dtype='float32',
                                         prompt_format='chat_template', decoding='greedy'))
    record = json.loads(data.read_text())[0]
    prompt, full = ds.texts(read_llava_json(data)[0])
    task = record['conversations'][0]['value'].split('\n')[1][len('<task>'):-len('</task>')]
    assert prompt == policy.prompt_text(Effector.SUCTION, task)
    assert full == prompt + policy.answer_lead + record['conversations'][1]['value'] + '</s>'
    item = ds[0]
    answer = item['labels'][item['labels'] != IGNORE_INDEX]
    assert ds.processor.tokenizer.decode(answer) == (
        policy.answer_lead + record['conversations'][1]['value'] + '</s>')


def test_collator_right_pads_ids_labels_and_mask(tiny):
    model, data = tiny
    ds = dataset(model, data)
    items = [ds[0], ds[1]]
    batch = LlavaCollator(ds.processor.tokenizer.pad_token_id)(items)
    lengths = [len(item['input_ids']) for item in items]
    assert batch['input_ids'].shape == (2, max(lengths))
    for row, item in enumerate(items):
        n = lengths[row]
        assert batch['input_ids'][row, :n].tolist() == item['input_ids'].tolist()
        assert (batch['input_ids'][row, n:] == ds.processor.tokenizer.pad_token_id).all()
        assert (batch['labels'][row, n:] == IGNORE_INDEX).all()
        assert batch['attention_mask'][row].sum() == n
    assert batch['pixel_values'].shape == (2, 3, 28, 28)


def test_too_long_samples_are_errors_not_truncated(tiny):
    model, data = tiny
    with pytest.raises(ConfigError, match='over model_max_length 50'):
        dataset(model, data, max_length=50)[0]


@pytest.mark.parametrize('change, message', [
    (lambda r: r.update(image=['missing.png']), 'does not exist'),
    (lambda r: r['conversations'][0].update(value='<image3>\nx'), '<image3> but the sample'),
    (lambda r: r['conversations'].append({'from': 'human', 'value': 'more'}), 'single-round'),
    (lambda r: r['conversations'][1].update(value='<image>'), 'gpt turn contains'),
    (lambda r: r.pop('id'), 'string "id"'),
])
def test_malformed_samples_are_named_before_training(tiny, tmp_path, change, message):
    _, data = tiny
    records = json.loads(data.read_text())
    change(records[1])
    bad = data.parent / f'bad_{tmp_path.name}.json'
    bad.write_text(json.dumps(records))
    with pytest.raises(ConfigError, match=message):
        read_llava_json(bad)


def test_plain_format_is_the_images_then_the_answer_alone(tiny):
    """LLaVA's stage-1 'plain' template: no system prompt, no question text; loss on the answer."""
    model, data = tiny
    ds = dataset(model, data, prompt_format='plain')
    tokenizer = ds.processor.tokenizer
    records = json.loads(data.read_text())
    image_id = tokenizer.convert_tokens_to_ids(ds.image_token)
    for index, record in enumerate(records):
        item = ds[index]
        ids = item['input_ids'].tolist()
        images = ids.count(image_id)
        assert images > 0 and ids[1:1 + images] == [image_id] * images  # right after <s>
        answer = tokenizer(record['conversations'][1]['value'] + '</s>',
                           add_special_tokens=False)['input_ids']
        # What follows the images and their newline is exactly the answer and </s>.
        assert ids[-len(answer):] == answer
        assert len(ids) == 1 + images + len(tokenizer('\n', add_special_tokens=False)
                                            ['input_ids']) + len(answer)
        unmasked = item['labels'][item['labels'] != IGNORE_INDEX].tolist()
        assert unmasked == answer
        question = record['conversations'][0]['value'].split('\n', 1)[1]
        assert question[:24] not in tokenizer.decode(ids)
