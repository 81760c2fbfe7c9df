"""Benchmark: per closed-loop action, our single-step decoding vs LLaRA's eval generation.

Run `python tests/bench/bench_decoding.py [--repeats 3]`. On the model of
bench_graph_latency.py (`LATENCY_SPEC`, 4.1M parameters, random weights, CPU float32), per query
of a closed-loop episode (bench_policy.queries(): a first query whose full answer has two steps,
a later one with one step of history whose answer has one step):

  ours   `VlmPolicy.select_action` as policy_node runs it in LLaRA's single-step mode: template
         decoding (forced template text, several tokens per forward pass) and the answer ends
         after its first step (`max_answer_steps=1`);
  LLaRA  its eval call (`eval/vima_utils.py` model_generation): Hugging Face
         `generate(do_sample=False, max_new_tokens=256)` on the same encoded prompt, no stop
         string, so it ends at EOS or after 256 tokens; LLaRA then keeps the first step.

Forward passes are counted by a forward pre-hook on the model (every call of the network, the
prefill included), and checked against the policy's own count; wall time is per action
(prompt encoding included on both sides), median of `--repeats` after one warm-up round, the two
decodings alternating; one torch thread by default (`--cpu-threads`, as bench_graph_latency.py).

Two models, the same network compute:
  random   the random weights as they are. They almost never write EOS, so LLaRA's generation
           runs its full 256 tokens: its cost on a model that does not stop, the worst case.
           Ours writes one step whatever the weights are (the object phrase, a free slot, is
           random text up to its 64-character limit, so this step is longer than a real one).
  learned  the same network with its logits pushed after every forward pass towards the
           query's correct answer followed by EOS (bench_policy.SteeredModel for ours, the same
           rule as a logits processor inside `generate` for LLaRA): a model that learned the
           template and stops after its answer. LLaRA then writes the whole remaining plan
           (both steps on the first query) and EOS; ours writes the first step only.

Target: ours needs at least 5x fewer forward passes per action than LLaRA's generation (checked
on the random model, LLaRA's profile in the issue; the learned model's ratio is printed too).
"""
import argparse
import os
from pathlib import Path
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # the other benchmarks
try:
    from llara_policy.model import tiny_models
except ImportError:  # run from a plain checkout, without the colcon workspace sourced
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', '..', 'src', 'llara_policy'))
    from llara_policy.model import tiny_models
from bench_graph_latency import LATENCY_SPEC  # noqa: E402 (after the path set-up)
from bench_policy import SteeredModel, queries  # noqa: E402
import torch  # noqa: E402
from transformers import LogitsProcessor, LogitsProcessorList  # noqa: E402

from llara_policy.errors import ParseError  # noqa: E402
from llara_policy.model.config import LLARA_MAX_NEW_TOKENS, PolicyConfig  # noqa: E402
from llara_policy.model.loading import LoadedModel, load_model  # noqa: E402
from llara_policy.model.policy import VlmPolicy  # noqa: E402
from llara_policy.text import prompting  # noqa: E402

TARGET_PASS_RATIO = 5.0
OURS = {'decoding': 'template', 'max_answer_steps': 1}


class ForwardCounter:
    """Counts calls of a module's forward (a pre-hook, so nothing about the call changes)."""

    def __init__(self, module: torch.nn.Module):
        self.calls = 0
        self._handle = module.register_forward_pre_hook(self._count)

    def _count(self, module, args) -> None:
        self.calls += 1

    def take(self) -> int:
        """Return the calls since the last take and start counting again."""
        calls, self.calls = self.calls, 0
        return calls


class SteerLogits(LogitsProcessor):
    """`generate`'s twin of SteeredModel: the next token of `target` wins by a margin of 100."""

    def __init__(self, target: list[int]):
        self.target = target

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor):
        position = min(input_ids.shape[1], len(self.target) - 1)
        scores[:, self.target[position]] = scores.max(dim=-1).values + 100.0
        return scores


def llara_generate(policy: VlmPolicy, sample, steer: bool) -> tuple[float, int, str]:
    """LLaRA's eval generation of one query: (seconds, new tokens, text)."""
    start = time.perf_counter()
    inputs = policy.encode(sample.observation, sample.instruction, sample.history)
    processors = LogitsProcessorList()
    if steer:
        processors.append(SteerLogits(answer_target(policy, inputs, sample)))
    with torch.inference_mode():
        output = policy.model.generate(**inputs, do_sample=False,
                                       max_new_tokens=LLARA_MAX_NEW_TOKENS,
                                       logits_processor=processors)
    new = output[0, inputs['input_ids'].shape[1]:].tolist()
    text = policy.tokenizer.decode(new, skip_special_tokens=True).strip()
    return time.perf_counter() - start, len(new), text


def answer_target(policy: VlmPolicy, inputs: dict, sample) -> list[int]:
    """Prompt ids, then the query's answer as the tokenizer writes it, then EOS."""
    answer = policy.tokenizer(policy.answer_lead + sample.answer,
                              add_special_tokens=False).input_ids
    return inputs['input_ids'][0].tolist() + answer + [policy.tokenizer.eos_token_id]


def ours_select(policy: VlmPolicy, steered, sample) -> tuple[float, int, int, str]:
    """Our single-step decoding of one query: (seconds, forward passes, new tokens, text)."""
    if steered is not None:
        steered.target = answer_target(policy, policy.encode(
            sample.observation, sample.instruction, sample.history), sample)
    start = time.perf_counter()
    result = policy.select_action(sample.observation, sample.instruction, sample.history)
    elapsed = time.perf_counter() - start
    return elapsed, result.timings.forward_passes, result.timings.new_tokens, result.raw_text


def run_model(model_dir: str, steer: bool, repeats: int, cpu_threads: int) -> list[dict]:
    """Both decodings on each query; per query the medians and counts."""
    base = PolicyConfig(model_path=model_dir, device='cpu', dtype='float32',
                        cpu_threads=cpu_threads)
    loaded = load_model(base)
    counter = ForwardCounter(loaded.model)
    steered = SteeredModel(loaded.model) if steer else None
    ours_loaded = loaded if steered is None else LoadedModel(
        steered, loaded.processor, loaded.device, loaded.dtype, loaded.quantization,
        loaded.dtype_reason)
    ours = VlmPolicy(PolicyConfig(model_path=model_dir, **OURS), ours_loaded)
    llara = VlmPolicy(PolicyConfig(model_path=model_dir, decoding='greedy'), loaded)
    rows = []
    for index, sample in enumerate(queries()):
        times = {'ours': [], 'llara': []}
        for repeat in range(repeats + 1):  # the first round warms up
            counter.take()
            ours_s, ours_passes, ours_tokens, ours_text = ours_select(ours, steered, sample)
            hooked_ours = counter.take()
            llara_s, llara_tokens, llara_text = llara_generate(llara, sample, steer)
            llara_passes = counter.take()
            if hooked_ours != ours_passes:
                raise RuntimeError(f'query {index}: the hook counted {hooked_ours} forward '
                                   f'passes, the policy {ours_passes}')
            if repeat:
                times['ours'].append(ours_s)
                times['llara'].append(llara_s)
        rows.append({'query': index + 1, 'history': len(sample.history),
                     'answer_steps': len(prompting.parse_answer(sample.answer).steps),
                     'ours_passes': ours_passes, 'ours_tokens': ours_tokens,
                     'ours_s': statistics.median(times['ours']), 'ours_text': ours_text,
                     'llara_passes': llara_passes, 'llara_tokens': llara_tokens,
                     'llara_s': statistics.median(times['llara']), 'llara_text': llara_text,
                     'expected': sample.answer})
    return rows


def first_step(text: str) -> str:
    """The first `Step k: ...` line of an answer, '' when there is none."""
    return next((line for line in text.splitlines() if line.startswith('Step ')), '')


def report(name: str, rows: list[dict]) -> float:
    """Print one model's table and totals; return the pass ratio per action."""
    print(f'\n{name}:')
    print(f'{"query":>5} {"history":>7} | {"ours passes":>11} {"tokens":>6} {"ms":>7} | '
          f'{"LLaRA passes":>12} {"tokens":>6} {"ms":>7} | {"passes x":>8} {"time x":>6}')
    for row in rows:
        print(f'{row["query"]:5d} {row["history"]:7d} | {row["ours_passes"]:11d} '
              f'{row["ours_tokens"]:6d} {row["ours_s"] * 1e3:7.0f} | {row["llara_passes"]:12d} '
              f'{row["llara_tokens"]:6d} {row["llara_s"] * 1e3:7.0f} | '
              f'{row["llara_passes"] / row["ours_passes"]:8.2f} '
              f'{row["llara_s"] / row["ours_s"]:6.2f}')
    mean = {key: statistics.fmean(row[key] for row in rows)
            for key in ('ours_passes', 'ours_s', 'llara_passes', 'llara_s')}
    pass_ratio = mean['llara_passes'] / mean['ours_passes']
    print(f'per action (mean of the queries): ours {mean["ours_passes"]:.1f} passes, '
          f'{mean["ours_s"] * 1e3:.0f} ms; LLaRA {mean["llara_passes"]:.1f} passes, '
          f'{mean["llara_s"] * 1e3:.0f} ms; {pass_ratio:.2f}x fewer passes, '
          f'{mean["llara_s"] / mean["ours_s"]:.2f}x less wall time')
    for row in rows:
        print(f'  query {row["query"]}: ours {row["ours_text"][:70]!r}...; LLaRA\'s text: '
              f'{steps_parsed(row["llara_text"])}, {row["llara_text"][:40]!r}...')
    return pass_ratio


def steps_parsed(text: str) -> str:
    """How many steps `prompting.parse_answer` finds in an answer."""
    try:
        return f'{len(prompting.parse_answer(text).steps)} step(s) parsed'
    except ParseError:
        return 'no step parsed'


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--cpu-threads', type=int, default=1,
                        help="torch threads (PolicyConfig.cpu_threads); 0: torch's default, one "
                             'per core, which other load on a 2-core machine makes erratic')
    args = parser.parse_args()
    threads = args.cpu_threads or torch.get_num_threads()
    print(f'decoding per action: {os.cpu_count()} CPUs, torch {torch.__version__}, '
          f'{threads} threads, load average {os.getloadavg()[0]:.2f}')
    with tempfile.TemporaryDirectory() as root:
        model_dir = str(tiny_models.save_tiny_llava(Path(root) / 'model', LATENCY_SPEC))
        random_rows = run_model(model_dir, False, args.repeats, args.cpu_threads)
        learned_rows = run_model(model_dir, True, args.repeats, args.cpu_threads)
    random_ratio = report('random weights (LLaRA generates until its 256-token limit)',
                          random_rows)
    learned_ratio = report('learned template (logits steered to the answer, then EOS)',
                           learned_rows)
    for row in learned_rows:
        expected = first_step(row['expected'])
        print(f'  learned, query {row["query"]}: ours wrote the answer\'s first step: '
              f'{first_step(row["ours_text"]) == expected}; LLaRA wrote the whole answer: '
              f'{row["llara_text"] == row["expected"]}')
    met = random_ratio >= TARGET_PASS_RATIO
    print(f'\nfewer forward passes per action: random {random_ratio:.2f}x, learned '
          f'{learned_ratio:.2f}x (target >= {TARGET_PASS_RATIO:.0f}x on the random model, '
          f'LLaRA\'s 256-token profile: {"met" if met else "MISSED"})')
    print(f'load average after: {os.getloadavg()[0]:.2f}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
