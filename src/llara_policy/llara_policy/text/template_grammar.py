"""LLaRA's step sentences as `str.format` templates, and the parsers compiled from them.

The templates are the one source for writing (prompting), parsing (answer_parsing) and
constrained decoding (answer_grammar). `compile_template` turns a template into a regex for the
fast path and a token list that, when the regex fails, says where the text went wrong and whether
it is merely unfinished (a generation cut off mid-sentence). Whitespace may vary between tokens;
words that the template separates by a space must stay separated. Patterns are ASCII-only (no
Unicode digits) and never put two whitespace-eating quantifiers side by side, so a failing match
stays linear-ish in the length of a whitespace run.
"""
from collections.abc import Mapping
from dataclasses import dataclass
import re
import string

from llara_policy.types import Effector

STEP_PREFIX = 'Step {k}: '
OBJECT_PHRASE = '<p>{object}</p>'
HISTORY_OBJECT = 'object'  # replaces OBJECT_PHRASE in history lines (spec 3.4)

# LLaRA datasets/convert_vima.ipynb get_action_info. The double space before {pick_y} is the
# released checkpoints' spacing (spec 2.1; a sign-space format flag on the pick y value, which is
# never negative); NOTEBOOK_STEP_TEMPLATES have a single space there. Nothing else differs.
STEP_TEMPLATES: dict[Effector, str] = {
    Effector.SUCTION: 'Pick up the <p>{object}</p> at <b>({pick_x},  {pick_y})</b>, rotate '
                      '<r>[{rotation}]</r> degrees, and drop it at <b>({place_x}, {place_y})</b>.',
    Effector.SPATULA: 'Sweep the <p>{object}</p> at <b>({pick_x},  {pick_y})</b>, rotate '
                      '<r>[{rotation}]</r> degrees, and stop at <b>({place_x}, {place_y})</b>.',
}
NOTEBOOK_STEP_TEMPLATES: dict[Effector, str] = {
    effector: template.replace(',  {pick_y}', ', {pick_y}')
    for effector, template in STEP_TEMPLATES.items()}

# What the formatters emit for each field (for constrained decoding; syntax only, so e.g. a
# rotation of 999 still needs the range check the parser does).
_UNIT_TEXT = r'(?:0\.\d{3}|1\.000)'
FIELD_PATTERNS: dict[str, str] = {
    'k': r'[1-9]\d*', 'object': r'[^<>\n]+', 'name': r'[^<>\n]+',
    'rotation': r'-?(?:0|[1-9]\d{0,2})',
    **{name: _UNIT_TEXT for name in ('pick_x', 'pick_y', 'place_x', 'place_y', 'center_x',
                                     'center_y', 'width', 'height')}}

# A template's literal text splits into tags (`<b>`), words and single punctuation marks.
_LITERAL_PIECE = re.compile(r'<[^<>]*>|\w+|\S', re.ASCII)
_SPACE = re.compile(r'\s*')


@dataclass(frozen=True)
class FieldSyntax:
    """How one template field is matched.

    `pattern` holds its named group(s) and must not start with whitespace, `partial` matches any
    unfinished beginning of it, `description` names it in errors. A `word_like` field and an
    adjacent word need whitespace between them; a `spacious` field takes in the whitespace around
    it itself (free text), so no separate gap is matched before or after it.
    """

    pattern: str
    partial: str
    description: str
    word_like: bool = True
    spacious: bool = False


def number_field(name: str) -> FieldSyntax:
    """Match a decimal number such as `0.320`, `1`, `.5` or `-0.2` (range checks: caller's)."""
    return FieldSyntax(rf'(?P<{name}>-?(?:\d+(?:\.\d*)?|\.\d+))', r'-?\d*\.?\d*',
                       f'{name} (a number)')


def integer_field(name: str) -> FieldSyntax:
    """Match an integer with an optional minus sign."""
    return FieldSyntax(rf'(?P<{name}>-?\d+)', r'-?\d*', f'{name} (an integer)')


def text_field(name: str) -> FieldSyntax:
    """Match free text on one line without angle brackets (e.g. a name between tags)."""
    return FieldSyntax(rf'(?P<{name}>[^<>\n]*)', r'[^<>\n]*', f'{name} (text)',
                       word_like=False, spacious=True)


@dataclass(frozen=True)
class Token:
    """One literal piece or field: `full` includes the whitespace allowed before it."""

    label: str
    full: re.Pattern
    partial: re.Pattern
    optional: bool = False


@dataclass(frozen=True)
class Diagnosis:
    """Why a grammar failed at a position.

    Where (`position`), what was `expected` there, and whether the rest of the text is an
    unfinished beginning of a valid sentence.
    """

    position: int
    expected: str
    unfinished: bool


@dataclass(frozen=True)
class Grammar:
    """A template compiled to a single regex plus the tokens used to explain failures."""

    tokens: tuple[Token, ...]
    regex: re.Pattern

    def match(self, text: str, pos: int = 0) -> re.Match | None:
        """Match the whole sentence at `pos` (the fast path)."""
        return self.regex.match(text, pos)

    def diagnose(self, text: str, pos: int = 0, content_end: int | None = None) -> Diagnosis:
        """Walk the tokens from `pos` and report the first one that does not match.

        The text counts as unfinished when everything after the last matched token (outer
        whitespace aside) is a beginning of the token expected next. `content_end` is
        `len(text.rstrip())`, for callers that diagnose one long text many times.
        """
        for token in self.tokens:
            found = token.full.match(text, pos)
            if found is not None:
                pos = found.end()
            elif not token.optional:
                rest = _SPACE.match(text, pos).end()
                if content_end is None:
                    content_end = len(text.rstrip())
                end = max(rest, content_end)
                unfinished = token.partial.fullmatch(text, rest, end) is not None
                return Diagnosis(rest, token.label, unfinished)
        return Diagnosis(pos, 'nothing (the sentence is complete)', False)


def literal_prefix(literal: str) -> str:
    """Regex matching any beginning of `literal`, the empty one included."""
    pattern = ''
    for char in reversed(literal):
        pattern = f'(?:{re.escape(char)}{pattern})?'
    return pattern


def compile_template(template: str, fields: Mapping[str, FieldSyntax],
                     optional_tail: str = '') -> Grammar:
    """Compile `template` (a `str.format` string) with the given field syntaxes.

    Between pieces any whitespace is allowed (none needed), except that two words, or a word and
    a word-like field, need at least one whitespace character. `optional_tail` is literal text
    the sentence may end with (e.g. its final period). Unknown fields raise KeyError.
    """
    tokens = []
    previous_word = previous_spacious = False
    for literal, field, _, _ in string.Formatter().parse(template):
        for piece in _LITERAL_PIECE.findall(literal):
            word = piece[0].isalnum() or piece[0] == '_'
            gap = _gap(not tokens or previous_spacious, word and previous_word)
            tokens.append(_token(repr(piece), gap + re.escape(piece), literal_prefix(piece)))
            previous_word, previous_spacious = word, False
        if field is not None:
            syntax = fields[field]
            gap = _gap(not tokens or syntax.spacious or previous_spacious,
                       previous_word and syntax.word_like)
            tokens.append(_token(syntax.description, gap + syntax.pattern, syntax.partial))
            previous_word, previous_spacious = syntax.word_like, syntax.spacious
    if optional_tail:
        tokens.append(Token(repr(optional_tail), re.compile(r'\s*' + re.escape(optional_tail)),
                            re.compile(literal_prefix(optional_tail)), optional=True))
    source = ''.join(f'(?:{token.full.pattern})?' if token.optional else token.full.pattern
                     for token in tokens)
    return Grammar(tuple(tokens), re.compile(source, re.ASCII))


def _gap(none: bool, spaced: bool) -> str:
    if none:
        return ''
    return r'\s+' if spaced else r'\s*'


def _token(label: str, pattern: str, partial: str) -> Token:
    return Token(label, re.compile(pattern, re.ASCII), re.compile(partial, re.ASCII))
