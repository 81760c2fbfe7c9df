"""What every parse of an answer must satisfy, for the answer tests and fuzzers."""
import re

from llara_policy.errors import ParseError
from llara_policy.text.prompting import DiagnosticKind, ParsedAnswer, parse_answer

# LLaRA eval/eval-llara.py query_bc (llara-spec.md 2.4): every point and every rotation.
LLARA_POINT = re.compile(r'\(.+?,.+?\)')
LLARA_ROTATION = re.compile(r'\[(-*\d*)\]')
_TAG_OR_FIELD = re.compile(r'<[pbr]>|\(.+?,.+?\)|\[-*\d*\]')


def llara_actions(text: str) -> list[tuple[float, ...]]:
    """Parse like LLaRA's eval: points two by two with the rotations, in order."""
    points = LLARA_POINT.findall(text)
    rotations = LLARA_ROTATION.findall(text)
    actions = []
    for index in range(min(len(points) // 2, len(rotations))):
        pick = [float(v) for v in points[2 * index][1:-1].split(',')]
        place = [float(v) for v in points[2 * index + 1][1:-1].split(',')]
        actions.append((*pick, *place, float(rotations[index])))
    return actions


def as_tuples(parsed: ParsedAnswer) -> list[tuple[float, ...]]:
    """The steps as LLaRA's (pick x, pick y, place x, place y, rotation) tuples."""
    return [(s.pick.x_norm, s.pick.y_norm, s.place.x_norm, s.place.y_norm,
             float(s.rotation_cw_deg)) for s in parsed.steps]


def check_parse_is_safe(text: str) -> ParsedAnswer | None:
    """Parse `text`; only ParseError may escape, and a result must be in range and complete."""
    try:
        parsed = parse_answer(text)
    except ParseError:
        return None
    assert parsed.steps
    for action in parsed.steps:
        for point in (action.pick, action.place):
            assert 0.0 <= point.x_norm <= 1.0 and 0.0 <= point.y_norm <= 1.0
        assert -359 <= action.rotation_cw_deg <= 359
    check_accounted_for(text, parsed)
    return parsed


def check_accounted_for(text: str, parsed: ParsedAnswer) -> None:
    """Nothing is dropped silently: every non-blank character is in a step or a diagnostic."""
    assert len(parsed.step_spans) == len(parsed.steps)
    spans = sorted([(s.start, s.end) for s in parsed.step_spans]
                   + [(d.span.start, d.span.end) for d in parsed.diagnostics])
    for (_, end), (start, _) in zip(spans, spans[1:], strict=False):
        assert end <= start, spans  # disjoint
    covered = bytearray(len(text))
    for start, end in spans:
        covered[start:end] = b'\x01' * (end - start)
    silent = [i for i, char in enumerate(text) if not covered[i] and not char.isspace()]
    assert not silent, (text, silent)
    # In particular every line carrying a tag, point or rotation is a step or a diagnostic.
    line_start = 0
    for line in text.split('\n'):
        if _TAG_OR_FIELD.search(line):
            end = line_start + len(line)
            assert any(start < end and line_start < stop for start, stop in spans), line
        line_start += len(line) + 1
    for diagnostic in parsed.diagnostics:
        assert diagnostic.line == text.count('\n', 0, diagnostic.offset) + 1
        assert diagnostic.excerpt in text and '\n' not in diagnostic.excerpt
    tails = [d.kind for d in parsed.diagnostics
             if d.kind in (DiagnosticKind.MALFORMED_STEP, DiagnosticKind.TRUNCATED_STEP)]
    assert tails == ([DiagnosticKind.MALFORMED_STEP] if parsed.malformed_tail else []) + (
        [DiagnosticKind.TRUNCATED_STEP] if parsed.truncated else [])
    if tails:
        assert parsed.diagnostics[-1].kind is tails[0] and parsed.diagnostics[-1].span.end == len(
            text)
