"""`llara_training finetune --config file.yaml key=value ...`: fine-tune a VLM on LLaRA data.

transformers' Trainer does the loop: full, LoRA or QLoRA (TrainConfig.mode), bf16, gradient
checkpointing, resume from the last checkpoint, and many processes or nodes when started with
`accelerate launch` (configs/accelerate_*.yaml; configs/zero3.json is LLaRA's ZeRO-3 recipe).
The output directory holds the final model (LoRA: the adapter, plus `merged/`), the
checkpoints, `training_config.yaml` (also in each checkpoint), `loss.csv` and `loss.png`.
"""
import argparse
from dataclasses import dataclass, fields
import logging
from pathlib import Path
import time

import torch
import transformers
from transformers import Trainer, TrainerCallback, TrainingArguments, set_seed
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, get_last_checkpoint

from llara_policy.errors import ConfigError, LlaraError
from llara_policy.model.loading import quiet_library_warnings
from llara_training.finetune_model import (
    apply_lora,
    check_machine,
    freeze_vision_tower,
    load_for_training,
    merge_lora,
    parameter_counts,
)
from llara_training.llava_data import LlavaCollator, LlavaDataset, read_llava_json
from llara_training.loss_curve import (
    LOSS_CSV,
    LOSS_PNG,
    LossPoint,
    loss_points,
    plot_loss,
    window_mean,
    write_loss_csv,
)
from llara_training.train_config import TrainConfig, load_config, load_saved_config, save_config

# Keys a resumed run may change: how long it runs and what it writes, not what it learns.
RESUMABLE_CHANGES = ('max_steps', 'num_train_epochs', 'save_steps', 'save_total_limit',
                     'logging_steps', 'dataloader_num_workers', 'cpu_threads', 'report_to',
                     'resume', 'merge_lora')
_LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainResult:
    """What a run did: where its model is, how far it got, its loss curve and timing.

    `model_dir` is the model `VlmPolicy` loads: the output directory (full), `merged/` (LoRA
    with merge_lora) or the adapter directory (LoRA without). `resumed_from` is the checkpoint
    the run continued from, '' for a fresh run.
    """

    output_dir: Path
    model_dir: Path
    global_step: int
    epoch: float
    losses: tuple[LossPoint, ...]
    train_seconds: float
    resumed_from: str
    trainable_parameters: int
    total_parameters: int
    main_process: bool


class _SaveConfigBesideCheckpoints(TrainerCallback):
    """Writes training_config.yaml into every checkpoint directory the Trainer saves."""

    def __init__(self, config: TrainConfig):
        self.config = config

    def on_save(self, args, state, control, **kwargs):
        """Write the config into the `checkpoint-<step>` the Trainer just saved."""
        if state.is_world_process_zero:
            save_config(self.config,
                        Path(args.output_dir) / f'{PREFIX_CHECKPOINT_DIR}-{state.global_step}')


class _DropResumeKeyWarnings(logging.Filter):
    """Drops the Trainer's missing/unexpected-key warnings of a resume.

    Only installed when the weights were already restored by `from_pretrained` (the
    Trainer's own restore then matches no key and would warn about every one).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith((
            'There were missing keys in the checkpoint model loaded',
            'There were unexpected keys in the checkpoint model loaded'))


def _quiet_resume_key_warnings() -> None:
    trainer_logger = transformers.utils.logging.get_logger('transformers.trainer')
    if not any(isinstance(f, _DropResumeKeyWarnings) for f in trainer_logger.filters):
        trainer_logger.addFilter(_DropResumeKeyWarnings())


def resume_checkpoint(config: TrainConfig) -> str:
    """Return the checkpoint to continue from ('' for a fresh run); ConfigError if unsafe.

    A resumed run must learn what the interrupted one learned: only RESUMABLE_CHANGES may
    differ from the saved config.
    """
    output = Path(config.output_dir)
    last = get_last_checkpoint(str(output)) if output.is_dir() else None
    if last is None:
        return ''
    if not config.resume:
        raise ConfigError(f'{str(output)!r} already holds {Path(last).name}; set resume=true '
                          'to continue it or choose another output_dir')
    saved = load_saved_config(output)
    changed = [field.name for field in fields(TrainConfig)
               if field.name not in RESUMABLE_CHANGES
               and getattr(saved, field.name) != getattr(config, field.name)]
    if changed:
        raise ConfigError(f'cannot resume {str(output)!r}: {", ".join(changed)} differ from '
                          'its saved training_config.yaml; use another output_dir')
    return last


def training_arguments(config: TrainConfig, text_only_samples: bool) -> TrainingArguments:
    """Build the Trainer's arguments (before the model: ZeRO-3 loads it partitioned).

    DDP looks for parameters without gradients only when a batch can leave the vision tower
    and projector unused (`text_only_samples`); LLaRA's samples all have images.
    """
    use_cpu = config.device == 'cpu' or (config.device == 'auto' and not torch.cuda.is_available())
    return TrainingArguments(
        output_dir=config.output_dir, per_device_train_batch_size=config.per_device_batch_size,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        learning_rate=config.learning_rate, weight_decay=config.weight_decay,
        warmup_steps=config.warmup_ratio,  # a float in [0, 1) is a ratio of the total steps
        lr_scheduler_type=config.lr_scheduler, num_train_epochs=config.num_train_epochs,
        max_steps=config.max_steps or -1, bf16=config.bf16, tf32=config.tf32 or None,
        activation_checkpointing=config.gradient_checkpointing,
        activation_checkpointing_kwargs={'use_reentrant': False},
        logging_steps=config.logging_steps, save_strategy='steps', save_steps=config.save_steps,
        save_total_limit=config.save_total_limit, seed=config.seed,
        use_cpu=use_cpu, dataloader_num_workers=config.dataloader_num_workers,
        ddp_find_unused_parameters=text_only_samples,
        report_to=[] if config.report_to == 'none' else [config.report_to],
        remove_unused_columns=False, deepspeed=config.deepspeed or None)


def prepared_model(config: TrainConfig, args: TrainingArguments, resumed_from: str):
    """Load, freeze and (LoRA, QLoRA) wrap the model; returns (model, processor)."""
    deepspeed = getattr(args, 'deepspeed_plugin', None) is not None  # --config or accelerate's
    # A full fine-tune resumes from its checkpoint's weights (finetune_model.load_for_training);
    # LoRA adapters and DeepSpeed states are restored by the Trainer itself.
    weights_from = resumed_from if resumed_from and config.mode == 'full' and not deepspeed \
        else ''
    model, processor = load_for_training(config, deepspeed, weights_from)
    if weights_from:
        _quiet_resume_key_warnings()
    if config.freeze_vision_tower:
        freeze_vision_tower(model)
    if config.is_lora:
        model = apply_lora(model, config)
    return model, processor


def train(config: TrainConfig, callbacks: tuple[TrainerCallback, ...] = ()) -> TrainResult:
    """Run (or resume) the fine-tuning `config` describes; extra Trainer `callbacks` optional."""
    quiet_library_warnings()
    check_machine(config)
    if config.cpu_threads:
        torch.set_num_threads(config.cpu_threads)
    samples = read_llava_json(config.data_path, config.image_folder)
    resumed_from = resume_checkpoint(config)
    args = training_arguments(config, any(not sample.image_order() for sample in samples))
    set_seed(config.seed)  # LoRA's initial weights
    model, processor = prepared_model(config, args, resumed_from)
    trainable, total = parameter_counts(model)
    dataset = LlavaDataset(samples, processor, config.prompt_format, config.pad_to_square,
                           config.model_max_length)
    trainer = Trainer(model=model, args=args, train_dataset=dataset,
                      data_collator=LlavaCollator(processor.tokenizer.pad_token_id),
                      processing_class=processor,
                      callbacks=[_SaveConfigBesideCheckpoints(config), *callbacks])
    output = Path(config.output_dir)
    main = trainer.is_world_process_zero()
    if main:
        save_config(config, output)
        _LOG.info('finetune: %d samples, %s of %s parameters trainable', len(dataset),
                  f'{trainable:,}', f'{total:,}')
    start = time.perf_counter()
    trainer.train(resume_from_checkpoint=resumed_from or None)
    seconds = time.perf_counter() - start
    trainer.save_model(str(output))  # every process: ZeRO-3 gathers the weights
    points = loss_points(trainer.state.log_history)
    model_dir = _write_results(config, points) if main else output
    return TrainResult(output, model_dir, trainer.state.global_step, trainer.state.epoch or 0.0,
                       points, seconds, resumed_from, trainable, total, main)


def _write_results(config: TrainConfig, points: tuple[LossPoint, ...]) -> Path:
    """Write loss.csv and loss.png, merge LoRA adapters; returns the model to serve."""
    output = Path(config.output_dir)
    write_loss_csv(points, output / LOSS_CSV)
    plot_loss(points, output / LOSS_PNG,
              f'{config.mode} fine-tuning of {Path(config.model_path).name}')
    if config.is_lora and config.merge_lora:
        return merge_lora(output)
    return output


def summary(result: TrainResult) -> str:
    """Return a few lines saying what the run did and where its outputs are."""
    losses = result.losses
    curve = (f'loss {window_mean(losses, 10, last=False):.4f} (first 10 logs) -> '
             f'{window_mean(losses, 10, last=True):.4f} (last 10)' if losses else 'no loss logged')
    resumed = f', resumed from {Path(result.resumed_from).name}' if result.resumed_from else ''
    return '\n'.join((
        f'finetune: {result.global_step} steps ({result.epoch:.2f} epochs) in '
        f'{result.train_seconds:.1f} s{resumed}; {curve}',
        f'  trainable parameters {result.trainable_parameters:,} of '
        f'{result.total_parameters:,}',
        f'  model: {result.model_dir}',
        f'  config: {result.output_dir / "training_config.yaml"}; loss: '
        f'{result.output_dir / LOSS_CSV}, {result.output_dir / LOSS_PNG}'))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `llara_training finetune`."""
    parser.add_argument('--config', default='', help='YAML file of TrainConfig keys '
                        '(e.g. src/llara_training/configs/llara_7b_full.yaml)')
    parser.add_argument('overrides', nargs='*', metavar='KEY=VALUE',
                        help='TrainConfig overrides, applied after --config')
    parser.add_argument('--print-config', action='store_true',
                        help='print the resolved config as YAML and exit')
    parser.add_argument('--merge', default='', metavar='RUN_DIR',
                        help='merge the LoRA adapter of a finished run into RUN_DIR/merged '
                        'and exit')


def run(args: argparse.Namespace) -> int:
    """Entry point of the stage: 0 on success, 2 for a bad config or model, with the reason."""
    logging.basicConfig(level=logging.INFO, format='%(message)s')
    try:
        if args.merge:
            print(f'finetune: merged model written to {merge_lora(args.merge)}')
            return 0
        config = load_config(args.config, args.overrides)
        if args.print_config:
            import yaml

            print(yaml.safe_dump(config.to_dict(), sort_keys=False), end='')
            return 0
        result = train(config)
    except LlaraError as error:
        print(f'finetune: {type(error).__name__}: {error}')
        return 2
    if result.main_process:
        print(summary(result))
    return 0
