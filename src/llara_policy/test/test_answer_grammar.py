"""The answer automaton accepts exactly LLaRA answers as prompting writes them."""
from hypothesis import given, settings
from hypothesis import strategies as st
import pytest

from llara_policy.text import prompting
from llara_policy.text.answer_grammar import AnswerGrammar
from llara_policy.types import ActionStep, Effector, ImagePoint

units = st.integers(0, 1000).map(lambda v: v / 1000)
names = st.text(st.characters(min_codepoint=32, max_codepoint=126, exclude_characters='<>'),
                min_size=1, max_size=30).filter(lambda s: s == s.strip())


@st.composite
def answers(draw):
    effector = draw(st.sampled_from(Effector))
    first = draw(st.integers(1, 12))
    count = draw(st.integers(1, 3))
    steps = [ActionStep(ImagePoint(draw(units), draw(units)), ImagePoint(draw(units), draw(units)),
                        draw(st.integers(-359, 359)), draw(names), effector, first + k)
             for k in range(count)]
    return steps, draw(st.sampled_from(prompting.ActionSpacing))


def grammar_for(steps, spacing, max_steps=8, lead=' '):
    return AnswerGrammar(steps[0].effector, steps[0].step_number, max_steps, spacing, lead)


@settings(max_examples=150, deadline=None)
@given(answers())
def test_every_formatted_answer_is_accepted_to_a_step_end(answer):
    steps, spacing = answer
    grammar = grammar_for(steps, spacing)
    state = grammar.advance(grammar.start(), ' ' + prompting.format_answer(steps, spacing))
    assert state is not None and grammar.at_step_end(state)
    assert state.step == len(steps) - 1


@settings(max_examples=60, deadline=None)
@given(answers(), st.integers(0, 10_000))
def test_any_prefix_is_accepted_and_forced_text_continues_it(answer, cut):
    steps, spacing = answer
    grammar = grammar_for(steps, spacing)
    text = ' ' + prompting.format_answer(steps, spacing)
    cut %= len(text)
    state = grammar.advance(grammar.start(), text[:cut])
    assert state is not None
    forced, _ = grammar.forced_text(state)
    assert text[cut:].startswith(forced)


def test_start_forces_the_step_number_verb_and_object_tag():
    grammar = AnswerGrammar(Effector.SPATULA, 3, 8)
    assert grammar.forced_text(grammar.start()) == (' Step 3: Sweep the <p>', False)


@pytest.mark.parametrize('written, forced', [
    (' Step 1: Pick up the <p>bowl</p> at <b>(1', '.000,  '),
    (' Step 1: Pick up the <p>bowl</p> at <b>(0', '.'),
    (' Step 1: Pick up the <p>bowl</p> at <b>(0.5', ''),
    (' Step 1: Pick up the <p>bowl</p> at <b>(0.500,  0.250)</b>, rotate <r>[36',
     ']</r> degrees, and drop it at <b>('),
    (' Step 1: Pick up the <p>bowl</p> at <b>(0.500,  0.250)</b>, rotate <r>[-',
     ''),
])
def test_forced_text_runs_to_the_next_choice(written, forced):
    grammar = AnswerGrammar(Effector.SUCTION, 1, 8)
    assert grammar.forced_text(grammar.advance(grammar.start(), written))[0] == forced


@pytest.mark.parametrize('text', [
    ' Step 2: Pick up',  # wrong step number
    ' Step 1: Sweep the',  # wrong verb for the effector
    ' Step 1: Pick up the <p>bo<wl',  # tag inside the object phrase
    ' Step 1: Pick up the <p></p>',  # empty object phrase
    ' Step 1: Pick up the <p>bowl</p> at <b>(1.5',  # coordinate above 1
    ' Step 1: Pick up the <p>bowl</p> at <b>(0.12,',  # two decimals
    ' Step 1: Pick up the <p>bowl</p> at <b>(0.120,  0.250)</b>, rotate <r>[360',
    ' Step 1: Pick up the <p>bowl</p> at <b>(0.120,  0.250)</b>, rotate <r>[07',
])
def test_malformed_text_is_rejected(text):
    grammar = AnswerGrammar(Effector.SUCTION, 1, 8)
    assert grammar.advance(grammar.start(), text) is None


def test_the_step_limit_ends_the_answer():
    step = ActionStep(ImagePoint(0.1, 0.2), ImagePoint(0.3, 0.4), 0, 'bowl', step_number=1)
    grammar = AnswerGrammar(Effector.SUCTION, 1, max_steps=1)
    state = grammar.advance(grammar.start(), ' ' + prompting.format_answer([step]))
    assert grammar.at_step_end(state) and not grammar.may_continue(state)
    assert grammar.forced_text(state) == ('', True)
    assert grammar.advance(state, '\n') is None
