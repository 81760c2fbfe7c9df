"""LLaVA/LLaRA original-layout import: identical logits, LLaVA's input ids, clear errors."""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
from original_layout import known_model, llava_prompt_ids, write_original_layout
import pytest
import sentencepiece
import torch
from transformers import AutoModelForImageTextToText, AutoProcessor

from llara_policy.errors import ModelError, ParseError
from llara_policy.model import checkpoint_import, tiny_models
from llara_policy.model.config import PolicyConfig
from llara_policy.model.policy import VlmPolicy
from llara_policy.text import prompting
from llara_policy.types import Effector, Observation

TASK = 'Put the <p>red letter R</p> into the <p>green bowl</p>.'
IMAGE_TOKENS = (tiny_models.TINY.image_size_px // tiny_models.PATCH_SIZE_PX) ** 2  # 'default'


@pytest.fixture(scope='module')
def release(tmp_path_factory):
    """A known tiny model, its original-layout checkpoint + CLIP directory, and the import."""
    root = tmp_path_factory.mktemp('release')
    model, vocab = known_model(tiny_models.TINY, root / 'checkpoint')
    write_original_layout(model, vocab, root / 'checkpoint', root / 'clip')
    checkpoint_import.import_checkpoint(root / 'checkpoint', root / 'clip', root / 'imported')
    return model, vocab, root


def prompt() -> str:
    turn = prompting.build_user_turn(TASK, Effector.SUCTION)
    return prompting.with_image_token(prompting.generation_prompt(turn), '<image>')


def frame() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (128, 256, 3), dtype=np.uint8)


def reference_inputs(root, vocab) -> dict:
    """Inputs built without the import: SentencePiece's ids as LLaVA writes them (the image
    index expanded to one token per patch, as Llava models take it) and the pixels of the
    known model's own processor."""
    processor = sentencepiece.SentencePieceProcessor(
        model_file=str(root / 'checkpoint' / 'tokenizer.model'))
    ids = []
    for token in llava_prompt_ids(processor, prompt(), vocab):
        ids += [vocab] * IMAGE_TOKENS if token == vocab else [token]
    pixels = tiny_models.build_processor(tiny_models.TINY).image_processor(
        images=frame(), return_tensors='pt').pixel_values
    return {'input_ids': torch.tensor([ids]), 'pixel_values': pixels}


def assert_same_logits(model, vocab, root, directory):
    inputs = reference_inputs(root, vocab)
    imported = AutoModelForImageTextToText.from_pretrained(directory).eval()
    with torch.inference_mode():
        expected = model(**inputs).logits[..., :vocab]  # (1, T, vocab)
        actual = imported(**inputs).logits  # (1, T, rows)
    assert torch.equal(actual[..., :vocab], expected)
    # The rows added for <image>, <pad> and padding never win a greedy choice.
    assert (actual[..., vocab:].amax(-1) < actual[..., :vocab].amax(-1)).all()


def test_imported_model_gives_the_known_models_logits(release):
    model, vocab, root = release
    assert_same_logits(model, vocab, root, root / 'imported')
    config = json.loads((root / 'imported' / 'config.json').read_text())
    assert config['image_token_index'] == vocab and config['pad_token_id'] == vocab + 1
    assert config['text_config']['vocab_size'] == 448  # 400 pieces + 2, padded to 64
    assert config['vision_feature_layer'] == -2


@pytest.mark.parametrize('fmt', ['bin', 'safetensors'])
def test_pytorch_bin_shards_and_stored_vision_towers_import_too(release, tmp_path, fmt):
    model, vocab, root = release
    (tmp_path / 'checkpoint').mkdir()
    shutil.copy(root / 'checkpoint' / 'tokenizer.model', tmp_path / 'checkpoint')
    write_original_layout(model, vocab, tmp_path / 'checkpoint', tmp_path / 'clip', fmt=fmt,
                          with_vision_tower=True)
    checkpoint_import.import_checkpoint(tmp_path / 'checkpoint', tmp_path / 'clip',
                                        tmp_path / 'out')
    assert_same_logits(model, vocab, root, tmp_path / 'out')


def test_imported_processor_writes_llavas_ids_and_the_known_pixels(release):
    """LLaVA tokenizes the text around <image> separately (each piece with BOS and the
    SentencePiece prefix marker) and joins the pieces with the image index, dropping BOS."""
    _, vocab, root = release
    processor = AutoProcessor.from_pretrained(root / 'imported')
    expected = reference_inputs(root, vocab)
    actual = processor(images=frame(), text=prompt(), return_tensors='pt')
    assert actual.input_ids.tolist() == expected['input_ids'].tolist()
    assert torch.equal(actual.pixel_values, expected['pixel_values'])
    tokens = processor.tokenizer.convert_ids_to_tokens(actual.input_ids[0])
    assert tokens[tokens.index('<image>') + IMAGE_TOKENS] == '\u2581'  # the prefix after it


def test_vlm_policy_runs_the_imported_model(release):
    _, _, root = release
    for decoding in ('template', 'greedy'):
        policy = VlmPolicy.load(PolicyConfig(model_path=str(root / 'imported'), dtype='float32',
                                             decoding=decoding, max_new_tokens=16))
        if decoding == 'template':
            result = policy.select_action(Observation(frame()), TASK)
            assert result.steps and result.steps[0].step_number == 1
        else:  # random weights: the answer is noise, but it is decoded and reported
            with pytest.raises(ParseError):
                policy.select_action(Observation(frame()), TASK)


def test_loading_the_original_layout_directly_names_the_import_command(release):
    _, _, root = release
    with pytest.raises(ModelError, match='llara_import_checkpoint'):
        VlmPolicy.load(PolicyConfig(model_path=str(root / 'checkpoint')))


def broken(root, tmp_path, edit):
    checkpoint = shutil.copytree(root / 'checkpoint', tmp_path / 'checkpoint')
    clip = shutil.copytree(root / 'clip', tmp_path / 'clip')
    edit(checkpoint, clip)
    return checkpoint, clip


def set_config(key, value):
    def edit(checkpoint, _):
        config = json.loads((checkpoint / 'config.json').read_text())
        config[key] = value
        (checkpoint / 'config.json').write_text(json.dumps(config))
    return edit


@pytest.mark.parametrize('edit, message', [
    (lambda c, _: (c / 'tokenizer.model').unlink(), 'tokenizer.model'),
    (lambda c, _: (c / 'tokenizer.model').write_bytes(b'\x0a\xff'), 'SentencePiece'),
    (lambda c, _: [p.unlink() for p in c.glob('model-*')], 'missing shard'),
    (lambda _, v: (v / 'preprocessor_config.json').unlink(), 'preprocessor_config.json'),
    (lambda _, v: [p.unlink() for p in v.glob('*.safetensors')], 'no weights'),
    (set_config('mm_projector_type', 'linear'), 'mm_projector_type'),
    (set_config('mm_use_im_start_end', True), 'mm_use_im_start_end'),
    (set_config('image_aspect_ratio', 'anyres'), 'image_aspect_ratio'),
    (set_config('vocab_size', 32000), 'vocabulary mismatch'),
])
def test_broken_checkpoints_fail_naming_the_problem(release, tmp_path, edit, message):
    checkpoint, clip = broken(release[2], tmp_path, edit)
    with pytest.raises(ModelError, match=message):
        checkpoint_import.import_checkpoint(checkpoint, clip, tmp_path / 'out')


def test_hugging_face_directories_are_not_imported_twice(release, tmp_path):
    _, _, root = release
    with pytest.raises(ModelError, match='already a Hugging Face Llava'):
        checkpoint_import.import_checkpoint(root / 'imported', root / 'clip', tmp_path / 'out')


def test_command_line_reports_errors_and_refuses_to_overwrite(release, tmp_path, capsys):
    _, _, root = release
    arguments = ['--checkpoint', str(root / 'checkpoint'), '--vision-tower', str(root / 'clip')]
    assert checkpoint_import.main([*arguments, '--output', str(root / 'imported')]) == 1
    assert 'not empty' in capsys.readouterr().err
    assert checkpoint_import.main(['--checkpoint', str(tmp_path / 'nowhere'), '--vision-tower',
                                   str(root / 'clip'), '--output', str(tmp_path / 'o')]) == 1
    assert 'does not exist' in capsys.readouterr().err
    assert checkpoint_import.main([*arguments, '--output', str(tmp_path / 'bf16'),
                                   '--dtype', 'bfloat16']) == 0
    config = json.loads((tmp_path / 'bf16' / 'config.json').read_text())
    assert config['dtype'] == 'bfloat16' or config['text_config']['dtype'] == 'bfloat16'


def corrupt(path, how):
    """Truncate a weights file to half its size or overwrite it with garbage."""
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2] if how == 'truncated' else b'\x8e' * 4096)


@pytest.mark.parametrize('how', ['truncated', 'garbage'])
@pytest.mark.parametrize('directory, pattern', [('checkpoint', 'model-00002-*.safetensors'),
                                                ('clip', 'model.safetensors')])
def test_corrupt_weights_fail_naming_the_file(release, tmp_path, directory, pattern, how):
    checkpoint, clip = broken(release[2], tmp_path, lambda c, v: None)
    (path,) = (tmp_path / directory).glob(pattern)
    corrupt(path, how)
    with pytest.raises(ModelError, match='corrupt or truncated') as error:
        checkpoint_import.import_checkpoint(checkpoint, clip, tmp_path / 'new' / 'out')
    assert str(path) in str(error.value)
    assert not (tmp_path / 'new').exists()  # what the import created is removed again


def test_corrupt_pytorch_bin_shards_fail_naming_the_file(release, tmp_path):
    model, vocab, root = release
    (tmp_path / 'checkpoint').mkdir()
    shutil.copy(root / 'checkpoint' / 'tokenizer.model', tmp_path / 'checkpoint')
    write_original_layout(model, vocab, tmp_path / 'checkpoint', tmp_path / 'clip', fmt='bin')
    path = tmp_path / 'checkpoint' / 'pytorch_model-00001-of-00002.bin'
    corrupt(path, 'truncated')
    with pytest.raises(ModelError, match='corrupt or truncated') as error:
        checkpoint_import.import_checkpoint(tmp_path / 'checkpoint', tmp_path / 'clip',
                                            tmp_path / 'out')
    assert str(path) in str(error.value)


def unwritable_outputs(tmp_path):
    """Output paths no import can write (also as root): a file, a path below a file."""
    (tmp_path / 'a_file').write_text('x')
    return [(tmp_path / 'a_file', 'not a directory'),
            (tmp_path / 'a_file' / 'out', 'not writable')]


def test_an_unwritable_output_is_refused_before_any_weights_are_read(release, tmp_path):
    """Every weights file is garbage: the output error must come first."""
    checkpoint, clip = broken(release[2], tmp_path, lambda c, v: None)
    for path in [*checkpoint.glob('*.safetensors'), *clip.glob('*.safetensors')]:
        corrupt(path, 'garbage')
    for output, message in unwritable_outputs(tmp_path):
        with pytest.raises(ModelError, match=message) as error:
            checkpoint_import.import_checkpoint(checkpoint, clip, output)
        assert repr(str(output)) in str(error.value)


@pytest.mark.skipif(os.geteuid() == 0, reason='root writes into read-only directories')
def test_a_read_only_output_directory_is_refused(release, tmp_path):
    checkpoint, clip = broken(release[2], tmp_path, lambda c, v: None)
    (tmp_path / 'read_only').mkdir(mode=0o555)
    with pytest.raises(ModelError, match='not writable'):
        checkpoint_import.import_checkpoint(checkpoint, clip, tmp_path / 'read_only' / 'out')


def test_command_line_errors_are_one_line_without_a_traceback(release, tmp_path):
    checkpoint, clip = broken(release[2], tmp_path, lambda c, v: None)
    (path,) = checkpoint.glob('model-00001-*.safetensors')
    corrupt(path, 'truncated')
    (output, _), *_ = unwritable_outputs(tmp_path)
    for target, named in ((tmp_path / 'out', path), (output, output)):
        result = subprocess.run(
            [sys.executable, '-m', 'llara_policy.model.checkpoint_import', '--checkpoint',
             str(checkpoint), '--vision-tower', str(clip), '--output', str(target)],
            capture_output=True, text=True, timeout=300, check=False)
        assert result.returncode == 1
        assert 'Traceback' not in result.stderr
        (line,) = [line for line in result.stderr.splitlines() if 'error' in line]
        assert line.startswith('llara_import_checkpoint: error: ') and str(named) in line
