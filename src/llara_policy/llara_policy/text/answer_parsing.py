"""Parse LLaRA answers into action steps, accounting for every non-blank piece of the text.

A step follows a step template (template_grammar.STEP_TEMPLATES) up to the slips the released
checkpoints make: any whitespace, no `Step k:` prefix, no final period, an untagged or half-tagged
object phrase (`red block`, `<p>red block <p>`, `<p>red block`), no verb (the tail, `drop it` or
`stop`, then names the effector). Text that is not a step becomes a diagnostic, so nothing that
LLaRA's own eval would execute (it takes every point and rotation, llara-spec.md 2.4) is lost
silently.
"""
from dataclasses import dataclass
import enum
import re

from llara_policy.errors import ParseError
from llara_policy.text.template_grammar import (
    HISTORY_OBJECT,
    OBJECT_PHRASE,
    STEP_TEMPLATES,
    Diagnosis,
    FieldSyntax,
    Grammar,
    compile_template,
    integer_field,
    literal_prefix,
    number_field,
)
from llara_policy.types import ActionStep, Effector, ImagePoint

_ROTATION_LIMIT_DEG = 359  # the instruction's range, -359 to 359
_UNIT_FIELDS = ('pick_x', 'pick_y', 'place_x', 'place_y')
_BEFORE_POINT = r'(?=\s+at\s*<b>)'
# The object phrase: `<p>NAME</p>`, the slips `<p>NAME <p>` and `<p>NAME` (no closing tag), or
# untagged words before ` at <b>` (e.g. the history form's `object`), with a stray `</p>` allowed.
# The name keeps its outer spaces (stripped later); `(?<!\s)` looks ahead from a run of spaces
# only once, so a long run costs linear time.
_STEP_OBJECT = FieldSyntax(
    rf'(?:<p>(?P<object>[^<>\n]*?)(?:</?p>|(?<!\s){_BEFORE_POINT})'
    rf'|(?<!\S)(?P<bare>[^<>\s]+(?:[ \t]+[^<>\s]+)*?)(?:</p>)?{_BEFORE_POINT})',
    r'<p>[^<>\n]*(?:</?p?)?|<p?|[^<>\n]*(?:<b?)?', "the object phrase '<p>..</p>'",
    word_like=False)
_STEP_START = re.compile(
    r'\bStep[ \t]*(?P<k>\d+)[ \t]*:\s*|(?=\b(?:Pick\s+up|Sweep)\s+the\b)', re.ASCII)
_VERB_EFFECTORS = {'P': Effector.SUCTION, 'S': Effector.SPATULA}
_ARTICLE = re.compile(r'the\s+', re.ASCII)  # `the <p>..` of a step without its verb
# The beginning of a step start (or of a verb-less step's tag) cut off at the end of the text.
_PARTIAL_START = re.compile('|'.join([r'Step[ \t]*\d*[ \t]*'] + [
    literal_prefix(words) for words in ('Step', 'Pick up the', 'Sweep the', '<p>')]))
# LLaRA eval/eval-llara.py query_bc: what it takes for a point and a rotation.
_LLARA_POINT = re.compile(r'\(.+?,.+?\)')
_LLARA_ROTATION = re.compile(r'\[(-*\d*)\]')
_FIELD_MARK = re.compile(r'<[pbr]>|\(.+?,.+?\)|\[-*\d*\]')  # a tag, point or rotation
_NON_SPACE = re.compile(r'\S')


def _compile_step(template: str) -> Grammar:
    fields = {name: number_field(name) for name in _UNIT_FIELDS}
    fields.update(object=_STEP_OBJECT, rotation=integer_field('rotation'))
    return compile_template(template.replace(OBJECT_PHRASE, '{object}').removesuffix('.'),
                            fields, '.')


_GRAMMARS = {effector: _compile_step(t) for effector, t in STEP_TEMPLATES.items()}
# A step without its verb starts at the object phrase; its tail then names the effector.
_VERBLESS_GRAMMARS = {effector: _compile_step(t[t.index(OBJECT_PHRASE):])
                      for effector, t in STEP_TEMPLATES.items()}


class DiagnosticKind(enum.Enum):
    """What a non-blank piece of answer text that is not an executed step is."""

    PROSE = 'prose'  # no action fields: ignored (e.g. 'Sure.')
    STRAY_FIELDS = 'stray_fields'  # tags, points or rotations outside a step, too few for one
    MALFORMED_STEP = 'malformed_step'  # a step after the valid prefix that does not parse
    TRUNCATED_STEP = 'truncated_step'  # an unfinished step at the very end (generation cut off)


@dataclass(frozen=True)
class TextSpan:
    """Character offsets `[start, end)` of a piece of the answer text."""

    start: int
    end: int


@dataclass(frozen=True)
class AnswerDiagnostic:
    """A piece of the answer that is not an executed step, and why.

    `line` (1-based) and `offset` locate the problem, `excerpt` shows it (up to 60 characters of
    that line). `span` is all the text it accounts for: the piece of a line for PROSE and
    STRAY_FIELDS, from the dropped step to the end of the text for MALFORMED_STEP and
    TRUNCATED_STEP.
    """

    kind: DiagnosticKind
    reason: str
    line: int
    offset: int
    excerpt: str
    span: TextSpan


@dataclass(frozen=True)
class ParsedAnswer:
    """The executable steps of an answer, in order, and what the rest of the text was.

    `truncated`: an unfinished final step (generation cut off at the token limit) was dropped.
    `malformed_tail`: a step after `steps` did not parse; it and everything after it were
    dropped. `diagnostics` accounts, in text order, for every non-blank piece of text outside the
    steps; `step_spans[i]` is where `steps[i]` is written.
    """

    steps: tuple[ActionStep, ...]
    truncated: bool = False
    malformed_tail: bool = False
    diagnostics: tuple[AnswerDiagnostic, ...] = ()
    step_spans: tuple[TextSpan, ...] = ()


def parse_answer(text: str) -> ParsedAnswer:
    """Parse a model answer into its action steps.

    A step begins at `Step k:`, at a capitalised `Pick up the` / `Sweep the` (the verb sets the
    effector), or, without either, at a line that carries step fields (`<p>red block</p> at
    <b>(..)</b>, rotate ..`; the tail sets the effector). It must be complete and in range:
    points in [0, 1], rotation an integer in [-359, 359]. Other text is reported in
    `diagnostics`. A step cut off at the very end of the text is dropped and `truncated` set; a
    later malformed step ends the answer with `malformed_tail` set. ParseError when the first
    step is malformed or unfinished, or there is no step.
    """
    return _Scanner(text).run()


class _Scanner:
    """One parse: the steps and diagnostics found so far.

    Methods return the position to go on from, or None once the answer has ended (truncated or
    malformed tail).
    """

    def __init__(self, text: str):
        self.text = text
        self.steps: list[ActionStep] = []
        self.spans: list[TextSpan] = []
        self.diagnostics: list[AnswerDiagnostic] = []
        self.truncated = self.malformed_tail = False
        self._counted = (0, 1)  # (offset, its line number): notes come in text order
        self.content_end = len(text.rstrip())

    def run(self) -> ParsedAnswer:
        pos = 0
        while pos is not None:
            start = _STEP_START.search(self.text, pos)
            pos = self.gap(pos, len(self.text) if start is None else start.start())
            if start is None or pos is None:
                break
            pos = self.prefixed_step(start)
        if not self.steps:
            raise ParseError('no action step found (expected "Step k: Pick up the ..." or '
                             '"Sweep the ...")', self.text)
        return ParsedAnswer(tuple(self.steps), self.truncated, self.malformed_tail,
                            tuple(self.diagnostics), tuple(self.spans))

    def gap(self, pos: int, end: int) -> int | None:
        """Account for the text between steps, line by line."""
        while pos < end:
            first = _NON_SPACE.search(self.text, pos, end)
            if first is None:
                return end
            line_end = self.text.find('\n', first.start(), end)
            pos = self.segment(first.start(), end if line_end < 0 else line_end, end)
            if pos is None:
                return None
        return end

    def segment(self, start: int, line_end: int, gap_end: int) -> int | None:
        """Parse a non-blank piece of a line outside the steps: a verb-less step, or not."""
        text = self.text
        piece = text[start:line_end]
        at_end = _NON_SPACE.search(text, line_end) is None
        if _FIELD_MARK.search(piece) is None:
            if at_end and _PARTIAL_START.fullmatch(piece.rstrip()):
                return self.truncate(start)
            self.note(DiagnosticKind.PROSE, 'text outside any action step', start, line_end)
            return line_end
        tag = text.find('<p>', start, line_end)
        for at in (start, tag) if tag > start else (start,):
            match, effector = _verbless_match(text, at, gap_end)
            if match is not None:
                if at > start:
                    self.note(DiagnosticKind.PROSE, 'text before an action step', start, at)
                return self.add_step(match, effector, None, at)
        unfinished, furthest = _diagnose(text, start, self.content_end, verbs=False)
        # Any words could begin an untagged object phrase: count as cut off only a piece that
        # got past the object phrase or began with its tag.
        if at_end and unfinished and (furthest.position > start or piece.startswith('<p')):
            return self.truncate(start)
        if len(_LLARA_POINT.findall(piece)) >= 2 and _LLARA_ROTATION.search(piece):
            # All of a step's fields: LLaRA would execute it.
            return self.fail(_malformed(text, furthest), start)
        self.note(DiagnosticKind.STRAY_FIELDS,
                  'action fields outside any step (too few for one step)', start, line_end)
        return line_end

    def prefixed_step(self, start: re.Match) -> int | None:
        """Parse the step at a `Step k:` prefix or a verb."""
        text, at = self.text, start.end()
        effector = _VERB_EFFECTORS.get(text[at:at + 1])
        match = None if effector is None else _GRAMMARS[effector].match(text, at)
        if match is None:
            match, effector = _verbless_match(text, at, len(text))
        if match is None:
            unfinished, furthest = _diagnose(text, at, self.content_end, verbs=True)
            if unfinished:
                return self.truncate(start.start())
            return self.fail(_malformed(text, furthest), start.start())
        return self.add_step(match, effector, start, start.start())

    def add_step(self, match: re.Match, effector: Effector, start: re.Match | None,
                 step_at: int) -> int | None:
        try:
            step = _step_from_match(match, effector, start, self.text)
        except ParseError as error:
            return self.fail(error, step_at)
        self.steps.append(step)
        self.spans.append(TextSpan(step_at, match.end()))
        return match.end()

    def fail(self, error: ParseError, step_at: int) -> None:
        """Handle a malformed step: fatal when it is the first, else it ends the answer."""
        if not self.steps:
            raise error
        where = error.position if error.position >= 0 else step_at
        self.note(DiagnosticKind.MALFORMED_STEP, f'{error.reason}; this step and the text '
                  'after it are not executed', where, len(self.text), step_at)
        self.malformed_tail = True

    def truncate(self, step_at: int) -> None:
        """Drop an unfinished step at the end of the text, unless it is the only one."""
        if not self.steps:
            raise ParseError('the only action step is unfinished (generation cut off?)',
                             self.text, step_at)
        self.note(DiagnosticKind.TRUNCATED_STEP,
                  'unfinished action step at the end (generation cut off?)', step_at,
                  len(self.text))
        self.truncated = True

    def note(self, kind: DiagnosticKind, reason: str, offset: int, end: int,
             span_start: int | None = None) -> None:
        text = self.text
        line_start = text.rfind('\n', 0, offset) + 1
        line_end = text.find('\n', offset)
        line_end = len(text) if line_end < 0 else line_end
        excerpt = text[max(line_start, offset - 20):min(line_end, offset + 40)]
        span = TextSpan(offset if span_start is None else span_start, end)
        counted, line = self._counted
        if offset < counted:
            counted, line = 0, 1
        line += text.count('\n', counted, offset)
        self._counted = (offset, line)
        self.diagnostics.append(AnswerDiagnostic(kind, reason, line, offset, excerpt, span))


def _verbless_match(text: str, at: int,
                    endpos: int) -> tuple[re.Match, Effector] | tuple[None, None]:
    article = _ARTICLE.match(text, at, endpos)
    at = at if article is None else article.end()
    for effector, grammar in _VERBLESS_GRAMMARS.items():
        match = grammar.regex.match(text, at, endpos)
        if match is not None:
            return match, effector
    return None, None


def _diagnose(text: str, at: int, end: int, verbs: bool) -> tuple[bool, Diagnosis]:
    """Whether the text from `at` is an unfinished step, and where it fails at the furthest.

    Full grammars come first, so on a tie the diagnosis names the verb they expect.
    """
    found = [grammar.diagnose(text, at, end) for grammar in _GRAMMARS.values()] if verbs else []
    article = _ARTICLE.match(text, at)
    found += [grammar.diagnose(text, at if article is None else article.end(), end)
              for grammar in _VERBLESS_GRAMMARS.values()]
    furthest = max(found, key=lambda diagnosis: diagnosis.position)
    return any(diagnosis.unfinished for diagnosis in found), furthest


def _malformed(text: str, furthest: Diagnosis) -> ParseError:
    return ParseError(f'malformed action step: expected {furthest.expected}', text,
                      furthest.position)


def _step_from_match(match: re.Match, effector: Effector, start: re.Match | None,
                     text: str) -> ActionStep:
    values = [unit_value(match, name, text) for name in _UNIT_FIELDS]
    digits = match['rotation']
    if len(digits) > 12 or not -_ROTATION_LIMIT_DEG <= int(digits) <= _ROTATION_LIMIT_DEG:
        raise ParseError(f'rotation {digits} is outside [-{_ROTATION_LIMIT_DEG}, '
                         f'{_ROTATION_LIMIT_DEG}]', text, match.start('rotation'))
    step_number = 0
    if start is not None and start['k'] is not None:
        if len(start['k']) > 9:
            raise ParseError(f"step number {start['k']} is too large", text, start.start('k'))
        step_number = int(start['k'])
    if match['object'] is not None:
        name = match['object'].strip()
    else:  # untagged phrase; the history form's word `object` means "no object text"
        name = match['bare'].strip()
        name = '' if name == HISTORY_OBJECT else name
    return ActionStep(ImagePoint(values[0], values[1]), ImagePoint(values[2], values[3]),
                      int(digits), name, effector, step_number)


def unit_value(match: re.Match, name: str, text: str) -> float:
    """Return the number in group `name` of `match`, or raise ParseError if outside [0, 1]."""
    value = float(match[name])
    if not 0.0 <= value <= 1.0:
        raise ParseError(f'{name} {match[name]} is outside [0, 1]', text, match.start(name))
    return value
