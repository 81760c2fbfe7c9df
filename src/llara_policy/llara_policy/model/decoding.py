"""Greedy and template-aware decoding of one answer, reusing the model's KV cache.

Greedy decoding is LLaRA's eval (one token per forward pass, up to 256). Template-aware decoding
follows `AnswerGrammar`: text every valid answer must contain next (`Step 2: Pick up the <p>`,
`</p> at <b>(`, the `.` of `0.`) is tokenized the way the tokenizer would write it in context
and fed several tokens per forward pass; the model chooses only where the grammar leaves a
choice, among the tokens the grammar allows. The last fed token of each forced run is checked
against the model's own choice at its position, so a model that would merge it with the next
free slot (`[-` instead of `[`) keeps its tokenization. When a model's greedy answer follows the
template, both modes therefore write the same tokens; otherwise template decoding still ends
with an answer that parses.
"""
from bisect import bisect_left
from collections import OrderedDict
from dataclasses import dataclass
import time

import numpy as np
import torch

from llara_policy.errors import ModelError
from llara_policy.text.answer_grammar import MAX_FREE_TEXT_CHARS, AnswerGrammar, State

_DRAFT_CACHE_SIZE = 4096
_TAIL_TOKENS = 3  # context tokens re-encoded in front of forced text to tokenize it in context


@dataclass(frozen=True)
class DecodeResult:
    """New token ids (EOS excluded), forward passes run, and where the time went."""

    token_ids: tuple[int, ...]
    forward_passes: int
    prefill_s: float
    decode_s: float


class TokenTable:
    """The text each token id adds to a decoded answer, indexed for grammar lookups."""

    def __init__(self, tokenizer, vocab_size: int, eos_ids: frozenset[int]):
        self.tokenizer = tokenizer
        self.eos_ids = frozenset(eos_ids)
        self.texts = self._token_texts(tokenizer, vocab_size, self.eos_ids)
        self.by_text: dict[str, list[int]] = {}
        for token_id, text in enumerate(self.texts):
            if text:
                self.by_text.setdefault(text, []).append(token_id)
        self.sorted_texts = sorted(self.by_text)
        self.by_first_char: dict[str, list[int]] = {}
        for text, ids in self.by_text.items():
            self.by_first_char.setdefault(text[0], []).extend(ids)
        self.lengths = np.array([len(t) if t else 0 for t in self.texts])
        self.max_length = int(self.lengths.max())
        self._inside: dict[str, np.ndarray] = {}  # slot name -> ids that fit inside it
        self._free_ids: dict[tuple, torch.Tensor] = {}
        self._drafts: OrderedDict = OrderedDict()

    @staticmethod
    def _token_texts(tokenizer, vocab_size: int, eos_ids: frozenset[int]) -> list[str]:
        """Decode every id after an anchor token.

        SentencePiece's leading-space marker and byte-level spaces then come out as they would
        mid-answer; '' marks unusable ids.
        """
        special = set(tokenizer.all_special_ids) | set(eos_ids) | {
            token_id for token_id, token in tokenizer.added_tokens_decoder.items()
            if token.special}
        anchor = tokenizer.convert_tokens_to_ids('0')
        anchor_text = tokenizer.decode([anchor], clean_up_tokenization_spaces=False)
        if anchor_text != '0':
            raise ModelError(f'tokenizer {type(tokenizer).__name__} has no plain "0" token to '
                             'decode other tokens after; template decoding needs one')
        count = min(len(tokenizer), vocab_size)
        decoded = tokenizer.batch_decode([[anchor, token_id] for token_id in range(count)],
                                         clean_up_tokenization_spaces=False)
        texts = [''] * vocab_size
        for token_id, text in enumerate(decoded):
            text = text[len(anchor_text):]
            # A lone byte of a multi-byte character decodes to U+FFFD: not text on its own.
            if token_id not in special and '\ufffd' not in text:
                texts[token_id] = text
        return texts

    def text_of(self, token_ids) -> str:
        """Return the text the ids add to an answer."""
        return ''.join(self.texts[token_id] for token_id in token_ids)

    def allowed(self, grammar: AnswerGrammar, state: State) -> torch.Tensor:
        """Sorted ids (a LongTensor) the grammar allows next, EOS at a step's end."""
        slot = grammar.free_slot(state)
        if slot is not None:
            return self._free_slot_ids(grammar, state, slot)
        if grammar.at_step_end(state):
            ids = list(self.eos_ids)
            if grammar.may_continue(state):
                ids += self._literal_ids(grammar, State(state.step + 1, 0, ''))
        elif grammar.remaining_literal(state):
            ids = self._literal_ids(grammar, state)
        else:  # a number or rotation slot: few candidates, check each
            chars = grammar.next_characters(state)
            ids = [token_id for char in chars for token_id in self.by_first_char.get(char, ())
                   if grammar.advance(state, self.texts[token_id]) is not None]
        if not ids:
            raise ModelError(f'the tokenizer cannot write any continuation of the answer at '
                             f'{state} (template decoding)')
        return torch.tensor(sorted(set(ids)))

    def _literal_ids(self, grammar: AnswerGrammar, state: State) -> list[int]:
        rest = grammar.remaining_literal(state)
        ids = [token_id for end in range(1, len(rest) + 1)
               for token_id in self.by_text.get(rest[:end], ())]
        # Tokens running past the literal into the next slot, e.g. `[-` or `(0`.
        index = bisect_left(self.sorted_texts, rest)
        while index < len(self.sorted_texts) and self.sorted_texts[index].startswith(rest):
            text = self.sorted_texts[index]
            if len(text) > len(rest) and grammar.advance(state, text) is not None:
                ids.extend(self.by_text[text])
            index += 1
        return ids

    def _free_slot_ids(self, grammar: AnswerGrammar, state: State, slot) -> torch.Tensor:
        # Which tokens stay inside the phrase depends only on whether it has begun and on how
        # much room is left, so the id sets are cached on that.
        budget = min(MAX_FREE_TEXT_CHARS - len(state.text), self.max_length + 1)
        key = (grammar.signature, state.piece, bool(state.text), budget)
        if key not in self._free_ids:
            if slot.name not in self._inside:
                # Printable text only: control characters would parse but are never a name.
                self._inside[slot.name] = np.array(
                    [t.isprintable() and slot.pattern.fullmatch(t) is not None
                     for t in self.texts])
            inside = self._inside[slot.name]
            ids = set(np.flatnonzero(inside & (self.lengths <= budget)).tolist())
            # Tokens that close the phrase (`</`, `R</p>`); an empty phrase cannot close.
            closing = [token_id for token_id, text in enumerate(self.texts)
                       if text and text.isprintable() and not inside[token_id]]
            for token_id in closing:
                if grammar.advance(state, self.texts[token_id]) is not None:
                    ids.add(token_id)
            if not ids:
                raise ModelError(f'the tokenizer cannot write the {slot.name} phrase at {state}')
            self._free_ids[key] = torch.tensor(sorted(ids))
        return self._free_ids[key]

    def draft(self, context_ids: list[int], forced: str) -> list[int]:
        """Return ids writing exactly `forced` after `context_ids`, split as in context.

        [] when no such split lines up (the model then chooses token by token).
        """
        tail = tuple(t for t in context_ids[-_TAIL_TOKENS:] if self.texts[t])
        key = (tail, forced)
        if key in self._drafts:
            self._drafts.move_to_end(key)
            return self._drafts[key]
        ids = self._encode_after(list(tail), forced)
        if ids is None or self.text_of(ids) != forced:
            ids = self._encode_after([], forced)
        if ids is None or self.text_of(ids) != forced:
            ids = []
        self._drafts[key] = ids
        if len(self._drafts) > _DRAFT_CACHE_SIZE:
            self._drafts.popitem(last=False)
        return ids

    def _encode_after(self, tail: list[int], forced: str) -> list[int] | None:
        encoded = self.tokenizer(self.text_of(tail) + forced, add_special_tokens=False).input_ids
        # A SentencePiece tokenizer may put a lone space marker first: look a little further.
        for offset in range(3):
            if encoded[offset:offset + len(tail)] == tail:
                return encoded[offset + len(tail):]
        return None


class _Session:
    """One prompt's forward passes over a growing (and, on rejection, cropped) KV cache."""

    def __init__(self, model, inputs: dict):
        self.model = model
        self.inputs = inputs
        self.cache = None
        self.passes = 0
        self.prefill_s = 0.0
        self.decode_s = 0.0

    @property
    def prompt_ids(self) -> list[int]:
        return self.inputs['input_ids'][0].tolist()

    def feed(self, token_ids: list[int], keep: int) -> torch.Tensor:
        """Run the model over `token_ids`; logits (keep, vocab) of the last `keep` positions."""
        start = time.perf_counter()
        device = self.inputs['input_ids'].device
        new = torch.tensor([token_ids], dtype=torch.long, device=device)  # (1, n)
        with torch.inference_mode():
            if self.cache is None:
                inputs = dict(self.inputs)
                inputs['input_ids'] = torch.cat([inputs['input_ids'], new], dim=1)  # (1, L + n)
                if 'attention_mask' in inputs:
                    mask = inputs['attention_mask']
                    inputs['attention_mask'] = torch.cat(
                        [mask, torch.ones_like(new, dtype=mask.dtype)], dim=1)
                output = self.model(**inputs, use_cache=True, logits_to_keep=keep)
            else:
                output = self.model(input_ids=new, past_key_values=self.cache, use_cache=True,
                                    logits_to_keep=keep)
        self.cache = output.past_key_values
        logits = output.logits[0, -keep:].float()  # (keep, vocab)
        if logits.is_cuda:
            torch.cuda.synchronize(logits.device)
        elapsed = time.perf_counter() - start
        if self.passes == 0:
            self.prefill_s = elapsed
        else:
            self.decode_s += elapsed
        self.passes += 1
        return logits

    def rewind(self, count: int) -> None:
        """Drop the last `count` positions from the KV cache."""
        self.cache.crop(-count)

    def result(self, token_ids: list[int]) -> DecodeResult:
        return DecodeResult(tuple(token_ids), self.passes, self.prefill_s, self.decode_s)


def greedy_decode(model, inputs: dict, eos_ids: frozenset[int],
                  max_new_tokens: int) -> DecodeResult:
    """Plain greedy decoding (LLaRA's eval: do_sample=False), one token per forward pass."""
    session = _Session(model, inputs)
    logits = session.feed([], keep=1)
    generated = []
    while True:
        token = int(torch.argmax(logits[-1]))
        if token in eos_ids:
            break
        generated.append(token)
        if len(generated) >= max_new_tokens:
            break
        logits = session.feed([token], keep=1)
    return session.result(generated)


def template_decode(model, inputs: dict, grammar: AnswerGrammar, table: TokenTable,
                    max_new_tokens: int) -> DecodeResult:
    """Decode an answer of `grammar` (see the module docstring).

    The answer ends at the first step boundary past `max_new_tokens`.
    """
    session = _Session(model, inputs)
    context = session.prompt_ids
    state = grammar.start()
    generated: list[int] = []
    pending: list[int] = []  # chosen by the model, not yet fed
    while True:
        if grammar.at_step_end(state) and (len(generated) >= max_new_tokens
                                           or not grammar.may_continue(state)):
            break
        forced, must_end = grammar.forced_text(state)
        draft = table.draft(context + generated, forced) if forced else []
        states = [state]
        for token_id in draft:
            states.append(grammar.advance(states[-1], table.texts[token_id]))
        if must_end and draft:  # nothing left to choose: no forward pass needed
            generated.extend(draft)
            break
        logits = session.feed(pending + draft, keep=2 if draft else 1)
        generated.extend(draft)
        if draft:
            # Would the model itself have written the last forced token there?
            before = states[-2]
            choice = _best(logits[-2], table.allowed(grammar, before))
            if choice != draft[-1]:
                session.rewind(1)
                generated.pop()
                if choice in table.eos_ids:
                    break
                generated.append(choice)
                pending = [choice]
                state = grammar.advance(before, table.texts[choice])
                continue
        state = states[-1]
        choice = _best(logits[-1], table.allowed(grammar, state))
        if choice in table.eos_ids:
            break
        generated.append(choice)
        pending = [choice]
        state = grammar.advance(state, table.texts[choice])
    return session.result(generated)


def _best(logits: torch.Tensor, allowed: torch.Tensor) -> int:
    """Return the allowed id with the highest logit (the lowest on ties, as argmax)."""
    return int(allowed[torch.argmax(logits[allowed.to(logits.device)])])
