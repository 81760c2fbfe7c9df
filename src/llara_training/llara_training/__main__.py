"""`python -m llara_training SUBCOMMAND ...` (also the `llara_training` entry point).

Subcommands, one module each, every stage resumable, with progress bars and a summary:
  episodes  generate (embedded sim, sharded by seed range) or import (VIMA-Data, rosbag2) episodes
  convert   episodes -> LLaRA conversations (inBC / D-inBC / RT-2) + auxiliary datasets
  finetune  fine-tune an image-text-to-text model (full, LoRA, QLoRA; one GPU to many)
  evaluate  closed-loop evaluation on the embedded sim or VIMA-Bench
  small-model  a random-weight small LLaVA (TinySpec preset + sizes) to train from scratch
  recipe    one config, one command: episodes -> data -> small model -> stages -> evaluation
Each module exposes `add_arguments(parser)` and `run(args) -> int`.
"""
import argparse
import importlib
import sys

SUBCOMMANDS = {
    'episodes': ('llara_training.episodes_cli', 'generate or import episodes'),
    'convert': ('llara_training.convert_cli', 'episodes -> conversations + auxiliary data'),
    'finetune': ('llara_training.finetune', 'fine-tune a VLM on converted data'),
    'evaluate': ('llara_training.evaluate', 'closed-loop evaluation'),
    'small-model': ('llara_training.small_model', 'write a random small LLaVA to train'),
    'recipe': ('llara_training.recipe', 'random weights to an evaluated policy, in one command'),
}


def main(argv=None) -> int:
    """Parse the subcommand and run it; the exit status is the stage's."""
    parser = argparse.ArgumentParser(prog='llara_training', description=__doc__.split('\n')[0])
    sub = parser.add_subparsers(dest='command', required=True, metavar='SUBCOMMAND')
    argv = sys.argv[1:] if argv is None else list(argv)
    modules = {}
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        sub_parser = sub.add_parser(name, help=help_text)
        # Only the chosen stage is imported: finetune pulls in torch, convert does not.
        if argv and argv[0] == name:
            modules[name] = importlib.import_module(module_name)
            modules[name].add_arguments(sub_parser)
    args = parser.parse_args(argv)
    return int(modules[args.command].run(args) or 0)


if __name__ == '__main__':
    raise SystemExit(main())
