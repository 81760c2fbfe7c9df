"""The language of one LLaRA answer as a character automaton, for template-aware decoding.

An answer is `Step k: <step sentence>` lines joined by newlines, built from prompting's
STEP_PREFIX and STEP_TEMPLATES: fixed text (literals) around free slots whose syntax is
prompting's FIELD_PATTERNS (object phrase, 3-decimal coordinates, rotation). The step number k
and the verb are known before decoding (history length, effector), so they are literal too.
A decoder asks three things: does this text continue a valid answer (`advance`), what text must
come next whatever the model prefers (`forced_text`), and may the answer end here. Every text
this automaton accepts to the end parses with `prompting.parse_answer`.
"""
from dataclasses import dataclass
import functools
import string

import regex  # third-party `regex` (a transformers dependency): partial matching of slot syntax

from llara_policy.errors import ValueRangeError
from llara_policy.text import prompting
from llara_policy.types import ActionStep, Effector, ImagePoint

# Longest object phrase the decoder lets the model write (VIMA's longest names are ~35 chars).
MAX_FREE_TEXT_CHARS = 64
# Characters tried when working out what a non-free slot (number, rotation) may continue with.
_SLOT_ALPHABET = string.digits + '-+.,eE '
_UNIT_FIELDS = ('pick_x', 'pick_y', 'place_x', 'place_y')


@dataclass(frozen=True)
class Literal:
    """Fixed text of the template."""

    text: str


@dataclass(frozen=True)
class Slot:
    """A free slot: `pattern` is prompting's syntax of the field; free text has no fixed length."""

    name: str
    pattern: regex.Pattern
    free_text: bool


@dataclass(frozen=True)
class State:
    """Where a partial answer stands.

    In step `step` (0-based), at piece `piece` of it (equal to the number of pieces once the
    step is complete), having written `text` of that piece.
    """

    step: int
    piece: int
    text: str


def _value_ok(name: str, text: str) -> bool:
    """Whether a complete slot value passes the domain checks the parser applies."""
    try:
        if name == 'rotation':
            ActionStep(ImagePoint(0.0, 0.0), ImagePoint(0.0, 0.0), int(text))
        elif name in _UNIT_FIELDS:
            ImagePoint(float(text), 0.0)
    except (ValueRangeError, ValueError):
        return False
    return True


@functools.cache
def _slot(name: str) -> Slot:
    pattern = regex.compile(prompting.FIELD_PATTERNS[name])
    return Slot(name, pattern, free_text=pattern.fullmatch('any words') is not None)


@functools.lru_cache(maxsize=65536)
def slot_viable(slot: Slot, text: str) -> bool:
    """Whether `text` can still grow into a complete, in-range value of `slot`."""
    if slot.free_text:
        return len(text) <= MAX_FREE_TEXT_CHARS and (
            not text or slot.pattern.fullmatch(text, partial=True) is not None)
    if text and slot.pattern.fullmatch(text, partial=True) is None:
        return False
    if slot_complete(slot, text):
        return True
    return any(slot_viable(slot, text + char) for char in _SLOT_ALPHABET)


@functools.lru_cache(maxsize=65536)
def slot_complete(slot: Slot, text: str) -> bool:
    """Whether `text` is a complete, in-range value of `slot`."""
    return slot.pattern.fullmatch(text) is not None and _value_ok(slot.name, text)


class AnswerGrammar:
    """Answers of `effector` steps numbered from `first_step`, at most `max_steps` of them.

    `lead` is the text between the prompt and the first step (' ' after Vicuna's `ASSISTANT:`).
    """

    def __init__(self, effector: Effector, first_step: int, max_steps: int,
                 spacing: prompting.ActionSpacing = prompting.ActionSpacing.RELEASED,
                 lead: str = ' '):
        self.effector = effector
        self.first_step = first_step
        self.max_steps = max_steps
        self.lead = lead
        # What token lookups may cache on: answers that differ only in the step numbers.
        self.signature = (effector, spacing, lead)
        self._body = self._parse(prompting.step_template(effector, spacing))
        self._steps: dict[int, tuple] = {}

    @staticmethod
    def _parse(template: str) -> tuple:
        pieces = []
        for literal, field, _, _ in string.Formatter().parse(template):
            if literal:
                pieces.append(Literal(literal))
            if field is not None:
                pieces.append(_slot(field))
        return tuple(pieces)

    def pieces(self, step: int) -> tuple:
        """Return the literals and slots of step `step` (0-based), with separator and number."""
        if step not in self._steps:
            head = (self.lead if step == 0 else '\n') + prompting.STEP_PREFIX.format(
                k=self.first_step + step)
            first = self._body[0]
            if isinstance(first, Literal):
                self._steps[step] = (Literal(head + first.text),) + self._body[1:]
            else:
                self._steps[step] = (Literal(head),) + self._body
        return self._steps[step]

    def start(self) -> State:
        """Return the state before the first character of the answer."""
        return State(0, 0, '')

    def at_step_end(self, state: State) -> bool:
        """Whether a step was just completed: the answer may end (EOS) here."""
        return state.piece == len(self.pieces(state.step))

    def may_continue(self, state: State) -> bool:
        """Whether another step may follow the completed step of `state`."""
        return state.step + 1 < self.max_steps

    def advance(self, state: State, text: str) -> State | None:
        """Return the state after writing `text`, or None if no valid answer continues so."""
        step, piece, done = state.step, state.piece, state.text
        position = 0
        while position < len(text):
            pieces = self.pieces(step)
            if piece == len(pieces):
                if not self.may_continue(State(step, piece, done)):
                    return None
                step, piece, done = step + 1, 0, ''
                continue
            current = pieces[piece]
            if isinstance(current, Literal):
                rest = current.text[len(done):]
                chunk = text[position:position + len(rest)]
                if not rest.startswith(chunk):
                    return None
                position += len(chunk)
                done += chunk
                if len(done) == len(current.text):
                    piece, done = piece + 1, ''
                continue
            end = position
            while end < len(text) and slot_viable(current, done + text[position:end + 1]):
                end += 1
            done += text[position:end]
            position = end
            if position < len(text):  # the next character closes the slot
                if not slot_complete(current, done):
                    return None
                piece, done = piece + 1, ''
        return State(step, piece, done)

    def forced_text(self, state: State) -> tuple[str, bool]:
        """Return the text every valid continuation of `state` starts with.

        The flag says whether the answer must end right after it (the step limit is reached).
        """
        step, piece, done = state.step, state.piece, state.text
        forced = []
        while True:
            pieces = self.pieces(step)
            if piece == len(pieces):
                return ''.join(forced), not self.may_continue(State(step, piece, done))
            current = pieces[piece]
            if isinstance(current, Literal):
                forced.append(current.text[len(done):])
                piece, done = piece + 1, ''
                continue
            options = self.slot_continuations(current, done)
            closes = slot_complete(current, done)
            if current.free_text or len(options) + closes != 1:
                return ''.join(forced), False
            if closes:
                piece, done = piece + 1, ''
            else:
                forced.append(options[0])
                done += options[0]

    @staticmethod
    def slot_continuations(slot: Slot, text: str) -> tuple[str, ...]:
        """Return the characters that keep a non-free slot viable after `text`."""
        return tuple(char for char in _SLOT_ALPHABET if slot_viable(slot, text + char))

    def next_characters(self, state: State) -> frozenset[str] | None:
        """Return the characters that may come next (None: almost any, inside free text)."""
        pieces = self.pieces(state.step)
        if state.piece == len(pieces):
            if not self.may_continue(state):
                return frozenset()
            return frozenset(self.pieces(state.step + 1)[0].text[:1])
        current = pieces[state.piece]
        if isinstance(current, Literal):
            return frozenset(current.text[len(state.text)])
        if current.free_text:
            return None
        chars = set(self.slot_continuations(current, state.text))
        if slot_complete(current, state.text):
            chars |= self.next_characters(State(state.step, state.piece + 1, '')) or set()
        return frozenset(chars)

    def remaining_literal(self, state: State) -> str:
        """Return the rest of the literal `state` is in ('' in a slot or at a step's end)."""
        pieces = self.pieces(state.step)
        if state.piece < len(pieces) and isinstance(pieces[state.piece], Literal):
            return pieces[state.piece].text[len(state.text):]
        return ''

    def free_slot(self, state: State) -> Slot | None:
        """Return the free-text slot `state` is in, if any."""
        pieces = self.pieces(state.step)
        if state.piece < len(pieces):
            current = pieces[state.piece]
            if isinstance(current, Slot) and current.free_text:
                return current
        return None
