"""Benchmark: VlmPolicy per action (one select_action), for each quantization and decoding mode.

Run `python tests/bench/bench_policy.py` (add `--models tiny,30m,7b-shape` on a CUDA machine;
`--repeats N`; `--modes none:bfloat16,...` for some modes only). Prints, per model x
quantization x decoding: prefill ms, decode ms, total ms, sequential forward passes, new tokens
and peak memory (process RSS; CUDA allocator peak on CUDA), each configuration in its own
process so peaks do not mix. Models are built offline by
`tiny_models` (random weights). So that both decoding modes write the same, template-following
answer, the model's logits are steered to that answer after every forward pass (all network
compute is real; a model fine-tuned on LLaRA answers would write them itself). Queries imitate a
closed-loop episode: a first query answered with two steps, a later one (with history) with one.
Target on the ~30M model on CPU: template decoding needs at least 2x fewer forward passes and
1.5x less wall time per action than greedy.
"""
import argparse
import datetime
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time

try:
    from llara_policy.model import tiny_models
except ImportError:  # run from a plain checkout, without the colcon workspace sourced
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', '..', 'src', 'llara_policy'))
    from llara_policy.model import tiny_models
import numpy as np
import torch

from llara_policy.model.config import PolicyConfig
from llara_policy.model.dtype_choice import choose_auto_dtype, detect_cpu_features
from llara_policy.model.loading import LoadedModel, load_model
from llara_policy.model.policy import VlmPolicy
from llara_policy.text import prompting
from llara_policy.types import ActionStep, Effector, ImagePoint, Observation

MODELS = {'tiny': tiny_models.TINY, '30m': tiny_models.SMALL_30M,
          '7b-shape': tiny_models.LLAVA_7B_SHAPE}
CPU_MODES = (('none', 'float32'), ('none', 'bfloat16'), ('dynamic_int8', 'float32'),
             ('int8', 'bfloat16'), ('nf4', 'bfloat16'))
CUDA_MODES = (('none', 'float16'), ('int8', 'float16'), ('nf4', 'float16'))
PASS_RATIO_TARGET, WALL_RATIO_TARGET = 2.0, 1.5


def step(pick, place, rotation, name, number, effector=Effector.SUCTION) -> ActionStep:
    return ActionStep(ImagePoint(*pick), ImagePoint(*place), rotation, name, effector, number)


def queries() -> list[tiny_models.AnswerSample]:
    """A first query (two-step answer) and a later one with history (one step)."""
    rgb = np.random.default_rng(0).integers(0, 256, (128, 256, 3), dtype=np.uint8)
    task = ('Put the <p>polka dot letter A</p> at <b>(0.320, 0.547), {0.102, 0.188}</b> into '
            'the <p>green and purple polka dot bowl</p> at <b>(0.457, 0.531), {0.195, 0.328}'
            '</b>.')
    first = [step((0.32, 0.547), (0.543, 0.836), -116, 'polka dot letter A', 1),
             step((0.457, 0.531), (0.25, 0.5), 45, 'green and purple polka dot bowl', 2)]
    later = [step((0.543, 0.836), (0.457, 0.531), 0, 'polka dot letter A', 2)]
    return [tiny_models.AnswerSample(Observation(rgb), task, (), prompting.format_answer(first)),
            tiny_models.AnswerSample(Observation(rgb), task, (first[0],),
                                     prompting.format_answer(later))]


class SteeredModel(torch.nn.Module):
    """The real model, whose logits are then pushed towards one fixed token sequence."""

    def __init__(self, model):
        super().__init__()
        self.inner = model
        self.target: list[int] = []

    def __getattr__(self, name):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.inner, name)

    def forward(self, input_ids, past_key_values=None, logits_to_keep=1, **kwargs):
        past = past_key_values.get_seq_length() if past_key_values is not None else 0
        output = self.inner(input_ids=input_ids, past_key_values=past_key_values,
                            logits_to_keep=logits_to_keep, **kwargs)
        kept = output.logits.shape[1]
        end = past + input_ids.shape[1]
        for row, position in enumerate(range(end - kept, end)):
            wanted = self.target[min(position + 1, len(self.target) - 1)]
            output.logits[0, row, wanted] = output.logits[0, row].max() + 100.0
        return output


def run_configuration(options: dict) -> dict:
    """Load one model in one quantization mode and time both decoding modes."""
    base = PolicyConfig(model_path=options['directory'], device=options['device'],
                        quantization=options['quantization'], dtype=options['dtype'])
    start = time.perf_counter()
    loaded = load_model(base)
    load_s = time.perf_counter() - start
    steered = SteeredModel(loaded.model)
    loaded = LoadedModel(steered, loaded.processor, loaded.device, loaded.dtype,
                         loaded.quantization, loaded.dtype_reason)
    if loaded.device.type == 'cuda':
        torch.cuda.reset_peak_memory_stats()
    policies = {decoding: VlmPolicy(
        PolicyConfig(model_path=options['directory'], decoding=decoding), loaded)
        for decoding in ('greedy', 'template')}
    runs = {(decoding, index): [] for decoding in policies for index in range(len(queries()))}
    # Modes alternate query by query, so load from other processes hits both alike.
    for repeat in range(options['repeats'] + 1):
        for index, sample in enumerate(queries()):
            for decoding, policy in policies.items():
                prompt = policy.encode(sample.observation, sample.instruction, sample.history)
                answer = policy.tokenizer(policy.answer_lead + sample.answer,
                                          add_special_tokens=False).input_ids
                steered.target = (prompt['input_ids'][0].tolist() + answer
                                  + [policy.tokenizer.eos_token_id])
                result = policy.select_action(sample.observation, sample.instruction,
                                              sample.history)
                if repeat:  # the first round warms up
                    runs[decoding, index].append((result, result.raw_text == sample.answer))
    results = {}
    for decoding in policies:
        rows = []
        for index in range(len(queries())):
            done = runs[decoding, index]
            timings = [result.timings for result, _ in done]
            rows.append({'same_answer': all(same for _, same in done),
                         'passes': timings[0].forward_passes, 'tokens': timings[0].new_tokens,
                         **{key: statistics.median(getattr(t, key) for t in timings)
                            for key in ('prefill_ms', 'decode_ms', 'total_ms')}})
        results[decoding] = {key: (all(r[key] for r in rows) if key == 'same_answer'
                                   else sum(r[key] for r in rows) / len(rows))
                             for key in rows[0]}
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    cuda_mb = torch.cuda.max_memory_allocated() / 2**20 if loaded.device.type == 'cuda' else 0
    return {'load_s': load_s, 'peak_rss_mb': peak_rss_mb, 'peak_cuda_mb': cuda_mb,
            'results': results}


def build_model(name: str, root: str) -> tuple[str, float, int]:
    directory = os.path.join(root, name)
    start = time.perf_counter()
    if name == '7b-shape':  # 14 GB in float16, built on the GPU
        tiny_models.save_tiny_llava(directory, MODELS[name], torch.float16, 'cuda')
    else:
        tiny_models.save_tiny_llava(directory, MODELS[name])
    elapsed = time.perf_counter() - start
    model, _ = tiny_models.build_tiny_llava(MODELS[name], device='meta')
    return directory, elapsed, sum(p.numel() for p in model.parameters())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    cuda = torch.cuda.is_available()
    parser.add_argument('--models', default='tiny,30m,7b-shape' if cuda else 'tiny,30m')
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--modes', default='',
                        help='only these quantization:dtype pairs, e.g. none:bfloat16')
    parser.add_argument('--one', help=argparse.SUPPRESS)  # internal: one configuration (JSON)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_configuration(json.loads(args.one))))
        return 0
    machine = platform.processor() or platform.machine()
    print(f'# {datetime.date.today()} {platform.node()} {machine}, {os.cpu_count()} CPUs, '
          f'torch {torch.__version__}, {torch.get_num_threads()} threads, CUDA {cuda}, '
          f'load average before: {os.getloadavg()[0]:.2f}')
    cpu = detect_cpu_features()
    print(f'# CPU: torch capability {cpu.capability}, {cpu.machine}; dtype auto on CPU -> '
          f'{choose_auto_dtype("cpu", cpu).reason}')
    print(f'# {" ".join([os.path.basename(sys.executable), *sys.argv])}')
    header = ('model', 'params', 'device', 'quant', 'dtype', 'decoding', 'prefill ms',
              'decode ms', 'total ms', 'passes', 'tokens', 'peak RSS MB', 'peak CUDA MB',
              'same answer')
    print('| ' + ' | '.join(header) + ' |\n|' + '---|' * len(header))
    failures = []
    with tempfile.TemporaryDirectory() as root:
        for name in args.models.split(','):
            directory, build_s, params = build_model(name, root)
            device = 'cuda' if name == '7b-shape' else 'cpu'
            for quantization, dtype in (CUDA_MODES if device == 'cuda' else CPU_MODES):
                if args.modes and f'{quantization}:{dtype}' not in args.modes.split(','):
                    continue
                options = {'directory': directory, 'device': device, 'repeats': args.repeats,
                           'quantization': quantization, 'dtype': dtype}
                done = subprocess.run([sys.executable, __file__, '--one', json.dumps(options)],
                                      capture_output=True, text=True, check=False)
                if done.returncode != 0:
                    print(f'| {name} | {quantization} {dtype}: failed: '
                          f'{done.stderr.strip().splitlines()[-1:]} |')
                    failures.append(f'{name} {quantization}')
                    continue
                measured = json.loads(done.stdout.strip().splitlines()[-1])
                for decoding, row in measured['results'].items():
                    print(f'| {name} | {params / 1e6:.1f}M | {device} | {quantization} | '
                          f'{dtype} | {decoding} | {row["prefill_ms"]:.0f} | '
                          f'{row["decode_ms"]:.0f} | {row["total_ms"]:.0f} | '
                          f'{row["passes"]:.1f} | {row["tokens"]:.1f} | '
                          f'{measured["peak_rss_mb"]:.0f} | {measured["peak_cuda_mb"]:.0f} | '
                          f'{row["same_answer"]} |', flush=True)
                greedy, template = measured['results']['greedy'], measured['results']['template']
                passes = greedy['passes'] / template['passes']
                wall = greedy['total_ms'] / template['total_ms']
                print(f'|   | {name} {quantization} {dtype}: template vs greedy: '
                      f'{passes:.2f}x fewer passes, {wall:.2f}x less wall time; model built '
                      f'and saved in {build_s:.2f} s, loaded in {measured["load_s"]:.2f} s |')
                if name == '30m' and quantization == 'none' and dtype == 'float32' and (
                        passes < PASS_RATIO_TARGET or wall < WALL_RATIO_TARGET):
                    failures.append(f'30m target: passes {passes:.2f}x, wall {wall:.2f}x')
    print(f'# load average after: {os.getloadavg()[0]:.2f}')
    if failures:
        print('FAILED: ' + '; '.join(failures))
        return 1
    if '30m' in args.models.split(','):
        print(f'OK: on 30m fp32, template decoding meets {PASS_RATIO_TARGET}x fewer passes and '
              f'{WALL_RATIO_TARGET}x less wall time than greedy')
    return 0


if __name__ == '__main__':
    sys.exit(main())
