"""The CPU smoke pipeline, stage by stage through the CLI as a user runs it.

`episodes generate` (a handful of oracle episodes of the sim, 2 workers) -> `convert --aux D`
(D-inBC + all six auxiliary sets) -> `finetune` (the repo's tiny random LLaVA, a few steps,
a config YAML) -> `evaluate` (the saved checkpoint, a few episodes, 2 workers). Success is not
expected from a few steps of a tiny model; what must hold is that every stage exits 0 and hands
the next one what it needs, that the evaluator reads the checkpoint's saved training settings
back (the config uses non-default ones) and that every prompt and answer is in the results.
"""
import json
import os
from pathlib import Path
import subprocess
import sys
import time

import yaml

from llara_policy.model.tiny_models import TINY, save_tiny_llava
from llara_training.episode_store import EpisodeStore

PACKAGE_ROOT = Path(__file__).resolve().parents[1]
TASKS = ('visual_manipulation', 'rotate')
TRAINED = {'prompt_format': 'chat_template', 'pad_to_square': False}  # not the defaults


def cli(*args: str, cwd: Path) -> str:
    """Run `python -m llara_training ARGS` and return its output; fail with it on exit != 0."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(PACKAGE_ROOT), os.environ.get('PYTHONPATH', '')]))
    start = time.monotonic()
    done = subprocess.run([sys.executable, '-m', 'llara_training', *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)
    output = done.stdout + done.stderr
    assert done.returncode == 0, f'{args[0]} exited {done.returncode}:\n{output[-4000:]}'
    print(f'{args[0]}: {time.monotonic() - start:.1f} s')
    return output


def test_generate_convert_finetune_evaluate_end_to_end_on_cpu(tmp_path):
    cli('episodes', 'generate', '--out', 'episodes', '--tasks', ','.join(TASKS), '--seeds',
        '0:2', '--workers', '2', '--renderer', 'tiny', cwd=tmp_path)
    episodes = sorted(EpisodeStore(tmp_path / 'episodes').episode_ids())
    assert episodes == sorted(f'sim-{t}-{s:07d}' for t in TASKS for s in (0, 1))

    cli('convert', 'episodes', '--out', 'data', '--aux', 'D', cwd=tmp_path)
    summary = json.loads((tmp_path / 'data' / 'summary.json').read_text())
    assert summary['episodes']['converted'] == 4 and not summary['episodes']['failed']
    datasets = summary['datasets']
    assert {'obj_det', 'obj_loc', 'act_pred', 'fut_pred', 'spa_rel', 'tmp_rel'} <= set(datasets)
    mixture = datasets['mixture']['file']
    assert len(json.loads((tmp_path / 'data' / mixture).read_text())) == \
        datasets['mixture']['samples'] > datasets['main']['samples'] > 0

    save_tiny_llava(tmp_path / 'tiny', TINY)
    config = {'model_path': 'tiny', 'data_path': f'data/{mixture}',
              'image_folder': summary['image_folder'], 'output_dir': 'run', 'mode': 'full',
              'device': 'cpu', 'bf16': False, 'gradient_checkpointing': False,
              'per_device_batch_size': 2, 'learning_rate': 3e-3, 'warmup_ratio': 0.0,
              'lr_scheduler': 'constant', 'max_steps': 3, 'save_steps': 3, 'logging_steps': 1,
              'cpu_threads': 1, **TRAINED}
    (tmp_path / 'finetune.yaml').write_text(yaml.safe_dump(config))
    cli('finetune', '--config', 'finetune.yaml', cwd=tmp_path)
    saved = yaml.safe_load((tmp_path / 'run' / 'training_config.yaml').read_text())
    assert {key: saved[key] for key in TRAINED} == TRAINED
    assert (tmp_path / 'run' / 'model.safetensors').is_file()

    output = cli('evaluate', '--policy', 'run', '--tasks', ','.join(TASKS), '--partition',
                 'L1', '--episodes', '1', '--max-steps', '2', '--max-new-tokens', '24',
                 '--workers', '2', '--renderer', 'tiny', '--device', 'cpu', '--dtype',
                 'float32', '--out', 'eval', '--no-progress', cwd=tmp_path)
    assert 'evaluate: 2 episodes (2 run' in output
    results = json.loads((tmp_path / 'eval' / 'results.json').read_text())
    global_args = results.pop('global')
    assert global_args['trained_settings'] == TRAINED  # read back from the checkpoint
    assert {key: global_args['policy_config'][key] for key in TRAINED} == TRAINED
    assert set(results) == {f'placement_generalization/{t}/1000000' for t in TASKS}
    for entry in results.values():
        queries = entry['queries']
        assert 1 <= queries == len(entry['lm_prompt_hist']) == len(entry['lm_answer_hist'])
        assert all(isinstance(answer, str) for answer in entry['lm_answer_hist'])
        assert all(p.startswith('<image0>\n<task>') for p in entry['lm_prompt_hist'])
        assert len(entry['actions']) == entry['step'] <= 2  # one action per iteration
    assert (tmp_path / 'eval' / 'results.md').is_file()
    assert (tmp_path / 'eval' / 'success.png').stat().st_size > 0
