"""Fine-tuning the tiny LLaVA on a fixed dataset: loss falls, resume, LoRA save/reload/merge."""
from pathlib import Path
import shutil

from finetune_fixtures import tiny_overrides, write_dataset, write_tiny_model
from peft import PeftModel
import pytest
import torch
from transformers import AutoModelForImageTextToText, AutoProcessor, TrainerCallback

from llara_policy.errors import ConfigError
from llara_policy.model.config import TRAINING_CONFIG_FILE, PolicyConfig
from llara_policy.model.policy import VlmPolicy
from llara_training.__main__ import main
from llara_training.finetune import train
from llara_training.finetune_model import lora_target_pattern
from llara_training.llava_data import LlavaCollator, LlavaDataset, read_llava_json
from llara_training.loss_curve import LOSS_CSV, LOSS_PNG, read_loss_csv, window_mean
from llara_training.train_config import load_config, load_saved_config


@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp('finetune')
    return write_tiny_model(root / 'model'), write_dataset(root / 'data', count=8), root


@pytest.fixture(scope='module')
def full_run(tiny):
    """50 optimiser steps of full fine-tuning, batch 2, one process."""
    model, data, root = tiny
    return train(load_config('', tiny_overrides(model, data, root / 'full')))


LORA = {'mode': 'lora', 'max_steps': 15, 'learning_rate': 1e-2}


@pytest.fixture(scope='module')
def lora_run(tiny):
    """15 steps of LoRA; `keep.logits` are the trained in-memory model's on `batch`."""
    model, data, root = tiny
    batch = batch_of(model, data)
    keep = _KeepLogits(batch)
    result = train(load_config('', tiny_overrides(model, data, root / 'lora', **LORA)),
                   callbacks=(keep,))
    return result, keep, batch


def batch_of(model_dir: Path, data: Path) -> dict:
    """The first two samples as one batch, encoded by the training dataset."""
    processor = AutoProcessor.from_pretrained(model_dir, backend='pil')
    dataset = LlavaDataset(read_llava_json(data), processor, 'vicuna_v1', True, 2048)
    return LlavaCollator(processor.tokenizer.pad_token_id)([dataset[0], dataset[1]])


def logits_of(model, batch: dict) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return model(**batch).logits  # (B, T, vocab)


def test_loss_falls_over_50_steps(full_run):
    losses = full_run.losses
    assert full_run.global_step == 50 and [p.step for p in losses] == list(range(1, 51))
    first, last = window_mean(losses, 10, last=False), window_mean(losses, 10, last=True)
    # A random 512-token model starts near ln(512) = 6.2 nats; memorising 8 answers in 50
    # steps must at least halve it.
    assert first > 4.0
    assert last < 0.5 * first, (first, last)


def test_outputs_beside_the_model(full_run, tiny):
    output = full_run.output_dir
    assert full_run.model_dir == output
    assert read_loss_csv(output / LOSS_CSV) == tuple(
        p.__class__(p.step, round(p.epoch, 4), round(p.loss, 6), float(f'{p.learning_rate:.6g}'))
        for p in full_run.losses)
    assert (output / LOSS_PNG).read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    assert load_saved_config(output) == load_config('', tiny_overrides(*tiny[:2], output))
    for checkpoint in output.glob('checkpoint-*'):
        assert (checkpoint / TRAINING_CONFIG_FILE).is_file()


def test_vision_tower_stays_frozen_and_the_rest_learns(full_run, tiny):
    before = AutoModelForImageTextToText.from_pretrained(tiny[0]).state_dict()
    after = AutoModelForImageTextToText.from_pretrained(full_run.model_dir).state_dict()
    vision = [name for name in before if 'vision_tower' in name]
    assert vision and all(torch.equal(before[n], after[n]) for n in vision)
    for part in ('multi_modal_projector', 'language_model'):
        names = [name for name in before if part in name]
        assert any(not torch.equal(before[n], after[n]) for n in names), part


def test_the_full_model_loads_as_a_policy(full_run, tiny):
    policy = VlmPolicy.load(PolicyConfig(model_path=str(full_run.model_dir), device='cpu',
                                         dtype='float32', decoding='greedy'))
    batch = batch_of(full_run.model_dir, tiny[1])
    trained = AutoModelForImageTextToText.from_pretrained(full_run.model_dir)
    torch.testing.assert_close(logits_of(policy.model, batch), logits_of(trained, batch))


class _Interrupt(TrainerCallback):
    """Raises right after the checkpoint of `step` is written, as a crash there would."""

    def __init__(self, step: int):
        self.step = step

    def on_save(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise KeyboardInterrupt(f'interrupted after step {self.step}')


@pytest.mark.parametrize('mode, stop_step, save_steps', [('full', 22, 11), ('lora', 6, 3)])
def test_an_interrupted_run_resumes_to_the_same_result(request, tiny, mode, stop_step,
                                                       save_steps):
    model, data, root = tiny
    reference = request.getfixturevalue('full_run' if mode == 'full' else 'lora_run')
    reference = reference if mode == 'full' else reference[0]
    extra = {} if mode == 'full' else LORA
    output = root / f'resumed_{mode}'
    config = load_config('', tiny_overrides(model, data, output, save_steps=save_steps, **extra))
    with pytest.raises(KeyboardInterrupt):  # mid-epoch: 8 samples = 4 steps per epoch
        train(config, callbacks=(_Interrupt(stop_step),))
    assert not (output / LOSS_CSV).exists()
    resumed = train(config)
    assert Path(resumed.resumed_from).name == f'checkpoint-{stop_step}'
    assert resumed.global_step == reference.global_step
    # Same data order, RNG and optimiser state: the curve continues the uninterrupted one.
    assert [p.step for p in resumed.losses] == [p.step for p in reference.losses]
    for ours, theirs in zip(resumed.losses, reference.losses, strict=True):
        assert ours.loss == pytest.approx(theirs.loss, rel=1e-4, abs=1e-5), ours.step


def test_resume_refuses_a_changed_recipe_or_overwriting(tiny, full_run):
    model, data, root = tiny
    changed = load_config('', tiny_overrides(model, data, root / 'full', learning_rate=1e-3))
    with pytest.raises(ConfigError, match='learning_rate differ'):
        train(changed)
    fresh = load_config('', tiny_overrides(model, data, root / 'full', resume=False))
    with pytest.raises(ConfigError, match='already holds checkpoint-50'):
        train(fresh)


class _KeepLogits(TrainerCallback):
    """Computes the trained in-memory model's logits on `batch` when training ends."""

    def __init__(self, batch: dict):
        self.batch = batch
        self.logits = None

    def on_train_end(self, args, state, control, model=None, **kwargs):
        self.logits = logits_of(model, self.batch)


def test_lora_adapters_save_reload_and_merge_with_identical_outputs(tiny, lora_run):
    model, _, root = tiny
    result, keep, batch = lora_run
    assert result.model_dir == root / 'lora' / 'merged'
    assert result.trainable_parameters < result.total_parameters / 2
    base = AutoModelForImageTextToText.from_pretrained(model)
    base_logits = logits_of(base, batch)
    assert (keep.logits - base_logits).abs().max() > 0.1  # the adapters changed the model
    reloaded = PeftModel.from_pretrained(base, root / 'lora')
    torch.testing.assert_close(logits_of(reloaded, batch), keep.logits, rtol=0, atol=1e-6)
    adapted = {name for name, module in reloaded.named_modules() if hasattr(module, 'lora_A')}
    assert adapted and not any('vision_tower' in n or 'projector' in n for n in adapted)
    policy = VlmPolicy.load(PolicyConfig(model_path=str(result.model_dir), device='cpu',
                                         dtype='float32', decoding='greedy'))
    torch.testing.assert_close(logits_of(policy.model, batch), keep.logits, rtol=0, atol=1e-4)
    assert (result.model_dir / TRAINING_CONFIG_FILE).is_file()


def test_merge_command_rewrites_the_merged_model(lora_run, capsys):
    result, keep, batch = lora_run
    shutil.rmtree(result.model_dir)
    assert main(['finetune', '--merge', str(result.output_dir)]) == 0
    assert str(result.model_dir) in capsys.readouterr().out
    merged = AutoModelForImageTextToText.from_pretrained(result.model_dir)
    torch.testing.assert_close(logits_of(merged, batch), keep.logits, rtol=0, atol=1e-4)
    # A merged model holds no adapter to merge.
    assert main(['finetune', '--merge', str(result.output_dir / 'merged')]) == 2


class _SeeModel(TrainerCallback):
    """Records, when training starts, whether activation checkpointing is on and the dtypes."""

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self.checkpointing = model.is_activation_checkpointing
        self.autocast_bf16 = args.bf16


@pytest.mark.parametrize('mode', ['full', 'lora'])
def test_bf16_with_gradient_checkpointing_trains(tiny, mode):
    model, data, root = tiny
    seen = _SeeModel()
    extra = LORA if mode == 'lora' else {}
    config = load_config('', tiny_overrides(
        model, data, root / f'bf16_{mode}', bf16=True, gradient_checkpointing=True,
        **{**extra, 'max_steps': 20}))
    result = train(config, callbacks=(seen,))
    assert seen.checkpointing and seen.autocast_bf16
    losses = result.losses
    assert window_mean(losses, 5, last=True) < window_mean(losses, 5, last=False) - 0.2


def test_lora_targets_only_the_language_model():
    import re

    pattern = re.compile(lora_target_pattern(('q_proj', 'down_proj')))
    assert pattern.fullmatch('model.language_model.layers.0.self_attn.q_proj')
    assert pattern.fullmatch('model.language_model.layers.1.mlp.down_proj')
    assert not pattern.fullmatch('model.vision_tower.vision_model.encoder.layers.0.self_attn.'
                                 'q_proj')
    assert not pattern.fullmatch('model.language_model.layers.0.self_attn.k_proj')
    assert not pattern.fullmatch('model.visual.blocks.0.attn.q_proj')
