"""Policies: (frame, instruction, history) -> parsed LLaRA plan, raw answer text and timings.

`VlmPolicy` runs a Hugging Face image-text-to-text model (LLaVA first; Qwen2-VL and others
through the Auto classes) with LLaRA's prompt and preprocessing; `ScriptedPolicy` wraps an
oracle (the simulator's) and answers in the same text, so nodes, training and evaluation
cannot tell them apart. Prompts and parsing come from `prompting` only.
"""
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
import random
import time
from typing import Protocol

import numpy as np
import torch

from llara_policy.errors import ModelError, ValueRangeError
from llara_policy.geometry.preprocessing import SquarePad
from llara_policy.model.config import PolicyConfig
from llara_policy.model.decoding import DecodeResult, TokenTable, greedy_decode, template_decode
from llara_policy.model.loading import LoadedModel, load_model
from llara_policy.text import prompting
from llara_policy.text.answer_grammar import AnswerGrammar
from llara_policy.types import ActionStep, Observation


@dataclass(frozen=True)
class PolicyTimings:
    """Where one `select_action` spent its time (milliseconds) and how much it decoded."""

    preprocess_ms: float = 0.0
    prefill_ms: float = 0.0
    decode_ms: float = 0.0
    total_ms: float = 0.0
    forward_passes: int = 0
    new_tokens: int = 0


@dataclass(frozen=True)
class PolicyResult:
    """A parsed plan (steps in order), the answer text it came from, and timings.

    `truncated` says generation stopped inside a step, which was dropped from `steps`.
    """

    steps: tuple[ActionStep, ...]
    raw_text: str
    timings: PolicyTimings
    truncated: bool = False


@dataclass(frozen=True)
class RawAnswer:
    """A generated answer before parsing: its text, new token ids (EOS excluded) and timings."""

    text: str
    token_ids: tuple[int, ...]
    timings: PolicyTimings


class Policy(Protocol):
    """What nodes, training and evaluation call."""

    def reset(self) -> None:
        """Start a new episode."""

    def select_action(self, observation: Observation, instruction: str,
                      history: Sequence[ActionStep] = ()) -> PolicyResult:
        """Plan from the frame, the task text (inside `<task>`) and the steps done so far."""


def _spacing(config: PolicyConfig) -> prompting.ActionSpacing:
    return prompting.ActionSpacing(config.action_spacing)


class VlmPolicy:
    """LLaRA inference over a VLM.

    LLaVA 'pad' preprocessing, Vicuna-v1 (or chat template) prompt, greedy or template-aware
    decoding, `prompting.parse_answer`.

    Raises ParseError (greedy decoding only: template answers always parse) with the text.
    """

    def __init__(self, config: PolicyConfig, loaded: LoadedModel):
        """Build a policy over a loaded model (`VlmPolicy.load` loads `config.model_path`).

        `loaded.dtype_reason` says which dtype it computes in and why (PolicyStatus).
        """
        self.config = config
        self.loaded = loaded
        self.model = loaded.model
        self.processor = loaded.processor
        self.tokenizer = loaded.processor.tokenizer
        self._image_token = getattr(self.processor, 'image_token', None) or '<image>'
        mean = getattr(self.processor.image_processor, 'image_mean', None) or [0.5, 0.5, 0.5]
        # LLaVA's expand2square colour: tuple(int(x * 255) for x in image_mean).
        self._fill_rgb = tuple(int(m * 255) for m in mean)
        self.eos_ids = self._eos_ids()
        vocab = self.model.get_output_embeddings().out_features \
            if config.decoding == 'template' else 0
        self._table = TokenTable(self.tokenizer, vocab, self.eos_ids) if vocab else None
        self.answer_lead = self._answer_lead()
        self.reset()

    @classmethod
    def load(cls, config: PolicyConfig) -> 'VlmPolicy':
        """Load the model `config` names (`load_model`) and build a policy over it."""
        return cls(config, load_model(config))

    def _eos_ids(self) -> frozenset[int]:
        ids = getattr(self.model.generation_config, 'eos_token_id', None)
        ids = set(ids if isinstance(ids, (list, tuple)) else [ids]) - {None}
        if self.tokenizer.eos_token_id is not None:
            ids.add(self.tokenizer.eos_token_id)
        if not ids:
            raise ModelError('the model and tokenizer define no end-of-sequence token')
        return frozenset(int(i) for i in ids)

    def reset(self) -> None:
        """Start an episode: re-seed the random user-prompt choice (user_prompt_id < 0)."""
        self._rng = random.Random(self.config.seed)

    def select_action(self, observation: Observation, instruction: str,
                      history: Sequence[ActionStep] = ()) -> PolicyResult:
        """Query the model once and parse its answer."""
        start = time.perf_counter()
        turn = self.user_turn(observation.effector, instruction, history)
        answer = self.answer(observation, turn, len(history) + 1)
        parsed = prompting.parse_answer(answer.text)
        timings = replace(answer.timings, total_ms=(time.perf_counter() - start) * 1e3)
        return PolicyResult(parsed.steps, answer.text, timings, parsed.truncated)

    def answer(self, observation: Observation, user_turn: str, first_step: int = 1,
               force_greedy: bool = False) -> RawAnswer:
        """Generate the answer to one user turn (first line `<image0>`) about the frame, unparsed.

        `select_action` writes the turn from the task and history; evaluation writes its own
        (LLaRA's prompt-mode variants, `d`-mode detection questions, RT-2-style prompts).
        Template decoding numbers the answer's steps from `first_step`; `force_greedy` decodes
        greedily whatever the config says (questions whose answer is not an action plan).
        """
        start = time.perf_counter()
        inputs = self.encode_turn(observation.rgb, user_turn)
        preprocess_s = time.perf_counter() - start
        if self.config.decoding == 'greedy' or force_greedy:
            decoded = greedy_decode(self.model, inputs, self.eos_ids, self.config.max_new_tokens)
        else:
            grammar = AnswerGrammar(observation.effector, first_step,
                                    self.config.max_answer_steps, _spacing(self.config),
                                    self.answer_lead)
            decoded = template_decode(self.model, inputs, grammar, self._table,
                                      self.config.max_new_tokens)
        text = self.tokenizer.decode(list(decoded.token_ids), skip_special_tokens=True,
                                     clean_up_tokenization_spaces=False).strip()
        return RawAnswer(text, decoded.token_ids,
                         _timings(decoded, preprocess_s, time.perf_counter() - start))

    def user_turn(self, effector, instruction: str, history: Sequence[ActionStep] = ()) -> str:
        """Return LLaRA's user turn of one query (draws the user prompt, see user_prompt_id)."""
        user_prompt = prompting.select_user_prompt(self.config.user_prompt_id, self._rng)
        return prompting.build_user_turn(instruction, effector, user_prompt=user_prompt,
                                         history=history, spacing=_spacing(self.config))

    def prompt_text(self, effector, instruction: str, history: Sequence[ActionStep] = ()) -> str:
        """Return the exact text the processor receives (image token not yet expanded)."""
        return self.wrap_turn(self.user_turn(effector, instruction, history))

    def wrap_turn(self, user_turn: str) -> str:
        """Return a user turn as the processor receives it: Vicuna-v1 or the chat template."""
        if self.config.prompt_format == 'vicuna_v1':
            return prompting.with_image_token(prompting.generation_prompt(user_turn),
                                              self._image_token)
        return self.processor.apply_chat_template(self._messages(user_turn), tokenize=False,
                                                  add_generation_prompt=True)

    @staticmethod
    def _messages(turn: str, answer: str = '') -> list[dict]:
        """Chat messages of a LLaRA user turn: its `<image0>` line becomes an image item."""
        image_line, _, text = turn.partition('\n')
        if image_line != '<image0>':
            raise ModelError(f'a LLaRA user turn starts with the <image0> line, got '
                             f'{image_line!r}')
        messages = [{'role': 'user', 'content': [{'type': 'image'},
                                                 {'type': 'text', 'text': text}]}]
        if answer:
            messages.append({'role': 'assistant',
                             'content': [{'type': 'text', 'text': answer}]})
        return messages

    def _answer_lead(self) -> str:
        """Return the text between the generation prompt and the first step.

        ' ' for Vicuna-v1 (`ASSISTANT: Step 1..`), what the chat template writes otherwise.
        """
        turn, answer = '<image0>\nT', 'STEP'
        if self.config.prompt_format == 'vicuna_v1':
            prompt, full = prompting.generation_prompt(turn), prompting.training_text(turn, answer)
        else:
            prompt = self.processor.apply_chat_template(
                self._messages(turn), tokenize=False, add_generation_prompt=True)
            full = self.processor.apply_chat_template(self._messages(turn, answer),
                                                      tokenize=False)
        if not full.startswith(prompt) or answer not in full[len(prompt):]:
            return ''
        return full[len(prompt):full.index(answer, len(prompt))]

    def encode(self, observation: Observation, instruction: str,
               history: Sequence[ActionStep] = ()) -> dict:
        """Model inputs (tensors on the model's device) of one query, before the answer."""
        return self.encode_turn(observation.rgb,
                                self.user_turn(observation.effector, instruction, history))

    def encode_turn(self, rgb: np.ndarray, user_turn: str) -> dict:
        """Model inputs of a user turn about one (H, W, 3) uint8 frame, padded as configured."""
        if not isinstance(rgb, np.ndarray) or rgb.ndim != 3 or rgb.shape[2] != 3 \
                or rgb.dtype != np.uint8:
            raise ValueRangeError('observation.rgb must be an (H, W, 3) uint8 array, got '
                                  f'{getattr(rgb, "dtype", type(rgb))} {np.shape(rgb)}')
        if self.config.pad_to_square:
            height, width = rgb.shape[:2]
            rgb = SquarePad(width, height, fill_rgb=self._fill_rgb).pad(rgb)
        inputs = self.processor(images=rgb, text=self.wrap_turn(user_turn), return_tensors='pt')
        inputs = {key: value.to(self.loaded.device) for key, value in inputs.items()}
        if 'pixel_values' in inputs:
            inputs['pixel_values'] = inputs['pixel_values'].to(self._vision_dtype())
        return inputs

    def _vision_dtype(self) -> torch.dtype:
        for parameter in self.model.parameters():
            if parameter.is_floating_point():
                return parameter.dtype
        return torch.float32


def _timings(decoded: DecodeResult, preprocess_s: float, total_s: float) -> PolicyTimings:
    return PolicyTimings(preprocess_s * 1e3, decoded.prefill_s * 1e3, decoded.decode_s * 1e3,
                         total_s * 1e3, decoded.forward_passes, len(decoded.token_ids))


# What ScriptedPolicy asks: the next step for (observation, task text, steps done so far).
Oracle = Callable[[Observation, str, Sequence[ActionStep]], ActionStep]


class ScriptedPolicy:
    """An oracle (simulation only) behind the policy interface.

    The oracle's step is written as a model answer (`Step k: ...`, k = len(history) + 1) and
    parsed back, so its points carry the model's 3-decimal precision and `raw_text` is exactly
    what a perfect model would have answered.
    """

    def __init__(self, oracle: Oracle,
                 spacing: prompting.ActionSpacing = prompting.ActionSpacing.RELEASED):
        self.oracle = oracle
        self.spacing = spacing

    def reset(self) -> None:
        """Nothing to reset: the oracle reads the scene it is given."""

    def select_action(self, observation: Observation, instruction: str,
                      history: Sequence[ActionStep] = ()) -> PolicyResult:
        """Ask the oracle for the next step and answer it in LLaRA's text."""
        start = time.perf_counter()
        step = replace(self.oracle(observation, instruction, history),
                       step_number=len(history) + 1)
        text = prompting.format_answer([step], self.spacing)
        parsed = prompting.parse_answer(text)
        total_ms = (time.perf_counter() - start) * 1e3
        return PolicyResult(parsed.steps, text, PolicyTimings(total_ms=total_ms))
