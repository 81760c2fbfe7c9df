"""`llara_training convert EPISODES_DIR --out DIR`: episodes -> LLaVA JSON datasets + images.

Writes the behaviour-cloning set (`--format`, `--answers`), the auxiliary sets of the `--aux`
preset (B: obj_det, obj_loc, act_pred, fut_pred; D: all six) and their mixture with the main
set (`--aux-ratio NAME=R`, default 1 each; merge_dts naming). Resumable: episodes converted by
an earlier run into the same --out are skipped (the options must match); the dataset files are
re-merged from the per-episode parts every run, so a new --aux-ratio or --split costs no
re-conversion. Progress bar while converting, a summary (also in summary.json) at the end.
Exit status 0; 1 if some episode failed (named in the summary); 2 for bad options.
"""
import argparse
from collections.abc import Callable, Sequence
import json
from pathlib import Path
import sys
import time

from llara_policy.errors import ConfigError, LlaraError
from llara_policy.text.prompting import ActionSpacing
from llara_training.aux_datasets import AUX_PRESETS, AuxConfig, AuxName, parse_ratios
from llara_training.aux_relations import QUIRK_NAMES, Quirks
from llara_training.conversations import (
    FORMATS,
    AnswerMode,
    BehaviourCloning,
    ConversationConfig,
    Method,
    TokenDecoder,
)
from llara_training.dataset_writer import (
    OutputLayout,
    convert_episode,
    merge,
    mixture_file_name,
    write_images,
    write_part,
)
from llara_training.episode import Episode

SINGLE_STEP_QUIRK = 'single_step_number'


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `llara_training convert`."""
    parser.add_argument('episodes_dir', type=Path, help='episodes written by `episodes`')
    parser.add_argument('--out', type=Path, required=True,
                        help='output directory (datasets, images/, parts/, summary.json)')
    parser.add_argument('--format', choices=list(FORMATS), default='D-inBC',
                        help='behaviour-cloning set: inBC, D-inBC (released), RT-2 style '
                        '(table metres) or I-..RT2 (image coordinates) (default: D-inBC)')
    parser.add_argument('--answers', choices=[m.value for m in AnswerMode], default='multi',
                        help='all remaining steps (multi, released) or the next one')
    parser.add_argument('--aux', choices=list(AUX_PRESETS), default='B',
                        help='auxiliary preset: B (released main model), D (all six), none')
    parser.add_argument('--aux-ratio', action='append', default=[], metavar='NAME=RATIO',
                        help='samples of an aux set in the mixture per main sample (default 1)')
    parser.add_argument('--aux-limited', action='store_true',
                        help='obj_det/obj_loc/spa_rel on trajectory frames only (aux-limited_)')
    parser.add_argument('--seed', type=int, default=0, help='question draws and mixture')
    parser.add_argument('--split', default='train', help='split name in the file names')
    parser.add_argument('--spacing', choices=[s.value for s in ActionSpacing],
                        default='released', help='pick-point spacing of step sentences')
    parser.add_argument('--quirk', action='append', default=[], metavar='NAME=replicate|fix',
                        help=f'notebook quirks: {", ".join(QUIRK_NAMES)} (replicated by '
                        f'default), {SINGLE_STEP_QUIRK} (fixed by default)')
    parser.add_argument('--tokenizer', default='',
                        help='RT-2 formats: the model tokenizer (a directory, or a '
                        'SentencePiece tokenizer.model) that writes action tokens as text')


def run(args: argparse.Namespace) -> int:
    """Entry point of the stage; see the module docstring for the exit status."""
    try:
        writer, aux, ratios = configs_from_args(args)
        episode_ids, load = _episode_reader(args.episodes_dir)
        summary = convert(episode_ids, load, OutputLayout(args.out), writer, aux, ratios,
                          args.split)
    except LlaraError as error:
        print(f'convert: {type(error).__name__}: {error}', file=sys.stderr)
        return 2
    print(summary_text(summary))
    return 1 if summary['episodes']['failed'] else 0


def configs_from_args(args: argparse.Namespace) -> tuple[BehaviourCloning, AuxConfig, dict]:
    """Build the conversion configs from the arguments (ConfigError when they do not fit)."""
    quirks = dict.fromkeys(QUIRK_NAMES, True)
    quirks[SINGLE_STEP_QUIRK] = False
    for item in args.quirk:
        name, _, choice = item.partition('=')
        if name not in quirks or choice not in ('replicate', 'fix'):
            raise ConfigError(f'--quirk must be NAME=replicate|fix with NAME one of '
                              f'{sorted(quirks)}, got {item!r}')
        quirks[name] = choice == 'replicate'
    spacing = ActionSpacing(args.spacing)
    config = ConversationConfig.from_format(
        args.format, answers=AnswerMode(args.answers), spacing=spacing,
        single_step_number_quirk=quirks.pop(SINGLE_STEP_QUIRK))
    if config.method is Method.RT2:
        writer = BehaviourCloning(config, token_decoder=_token_decoder(args.tokenizer))
    else:
        writer = BehaviourCloning(config)
    aux = AuxConfig(AUX_PRESETS[args.aux], args.aux_limited, spacing, Quirks(**quirks),
                    args.seed)
    return writer, aux, parse_ratios(args.aux_ratio, aux.datasets)


def convert(episode_ids: Sequence[str], load: Callable[[str], Episode], layout: OutputLayout,
            writer: BehaviourCloning, aux: AuxConfig, ratios: dict[AuxName, float],
            split: str) -> dict:
    """Convert every episode not yet done, merge the dataset files; return the summary.

    The options that shape samples are recorded in the output directory and must match an
    earlier run's there (ratios and split only shape the merge). An episode that raises
    LlaraError is reported in the summary and left for a rerun.
    """
    layout.claim(sample_options(writer.config, aux))
    started = time.monotonic()
    resumed, converted, images, failed = 0, 0, 0, {}
    progress = _progress(len(episode_ids))
    for episode_id in episode_ids:
        if layout.is_done(episode_id):
            resumed += 1
        else:
            try:
                episode = load(episode_id)
                conversion = convert_episode(episode, writer, aux)
                images += write_images(episode, conversion.image_paths(), layout)
                write_part(conversion, layout)
                converted += 1
            except LlaraError as error:
                failed[episode_id] = f'{type(error).__name__}: {error}'
        progress.update(1)
    progress.close()
    done = [episode_id for episode_id in episode_ids if episode_id not in failed]
    stem = writer.config.stem
    aux_files = {name: aux.file_name(name, split) for name in aux.datasets}
    result = merge(layout, done, writer.config.file_name(split), aux_files, ratios, aux.seed,
                   mixture_file_name(stem, aux, ratios, split))
    summary = {
        'output': str(layout.root), 'image_folder': str(layout.images_dir),
        'episodes': {'total': len(episode_ids), 'converted': converted, 'resumed': resumed,
                     'failed': failed},
        'images_written': images,
        'datasets': {f.name: {'file': f.file_name, 'samples': f.samples} for f in result.files},
        'mixture': result.mixture, 'left_out': result.left_out,
        'seconds': round(time.monotonic() - started, 1)}
    (layout.root / 'summary.json').write_text(json.dumps(summary, indent=2) + '\n')
    return summary


def summary_text(summary: dict) -> str:
    """Write a few lines for the terminal: episodes, samples per file, mixture, problems."""
    episodes = summary['episodes']
    lines = [f"convert: {episodes['total']} episodes ({episodes['converted']} converted, "
             f"{episodes['resumed']} from earlier runs, {len(episodes['failed'])} failed), "
             f"{summary['images_written']} images written, {summary['seconds']} s",
             f"  image folder: {summary['image_folder']}"]
    for name, entry in summary['datasets'].items():
        lines.append(f"  {name:9s} {entry['samples']:9d} samples  {entry['file']}")
    for name, entry in summary['mixture'].items():
        short = '' if entry['taken'] == entry['requested'] else \
            f" (set has only {entry['taken']}: all used)"
        lines.append(f"  mixture {name}: ratio {entry['ratio']:g} -> {entry['taken']}{short}")
    left_out = {name: count for name, count in summary['left_out'].items() if count}
    if left_out:
        lines.append(f'  left out by aux sets: {left_out}')
    lines.extend(f'  FAILED {episode_id}: {reason}'
                 for episode_id, reason in episodes['failed'].items())
    return '\n'.join(lines)


def sample_options(config: ConversationConfig, aux: AuxConfig) -> dict:
    """Return the options that shape the samples, as JSON values (the resume check)."""
    return {'format': config.stem, 'spacing': config.spacing.value,
            SINGLE_STEP_QUIRK: config.single_step_number_quirk,
            'aux': [name.value for name in aux.datasets], 'aux_limited': aux.limited,
            'aux_quirks': vars(aux.quirks), 'seed': aux.seed}


def _progress(total: int):
    try:
        from tqdm import tqdm
    except ImportError:  # tqdm is optional: no bar, the summary still says everything
        return _NoProgress()
    return tqdm(total=total, unit='episode', desc='convert', file=sys.stderr)


class _NoProgress:
    def update(self, count: int) -> None:
        """Ignore progress."""

    def close(self) -> None:
        """Nothing to close."""


def _episode_reader(episodes_dir: Path) -> tuple[list[str], Callable[[str], Episode]]:
    from llara_training import episode_store

    store = episode_store.EpisodeStore(episodes_dir)
    return list(store.episode_ids()), store.read


def _token_decoder(path: str) -> TokenDecoder:
    """Load the tokenizer that writes RT-2 action-token ids as text (as the notebook's decode)."""
    if not path:
        raise ConfigError('RT-2 formats need --tokenizer (the model tokenizer directory or its '
                          'SentencePiece tokenizer.model)')
    try:
        if path.endswith('.model'):
            import sentencepiece

            processor = sentencepiece.SentencePieceProcessor(model_file=path)
            return lambda token_ids: processor.decode(list(token_ids))
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(path)
    except (OSError, RuntimeError, ValueError) as error:
        raise ConfigError(f'--tokenizer {path!r} cannot be loaded: {error}') from error
    return lambda token_ids: tokenizer.decode(list(token_ids))
