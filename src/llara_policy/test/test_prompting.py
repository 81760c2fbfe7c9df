"""Golden, round-trip and fuzz tests of the text protocol (llara-spec.md sections 1-3)."""
import contextlib
import hashlib
import random
import re

from answer_checks import check_accounted_for, check_parse_is_safe
from hypothesis import given, settings
from hypothesis import strategies as st
import pytest

from llara_policy.errors import ParseError, PromptError
from llara_policy.text.prompt_pools import ACTION_PROMPTS, DETECTION_PROMPTS, LOCALIZATION_PROMPTS
from llara_policy.text.prompting import (
    ACTION_INSTRUCTIONS,
    FIELD_PATTERNS,
    NOTEBOOK_STEP_TEMPLATES,
    STEP_PREFIX,
    STEP_TEMPLATES,
    VICUNA_V1_SYSTEM,
    ActionSpacing,
    DescriptionMode,
    DiagnosticKind,
    Scene,
    build_task_text,
    build_user_turn,
    detection_question,
    format_answer,
    format_history,
    format_object_description,
    format_scene,
    format_step,
    generation_prompt,
    localization_question,
    parse_answer,
    parse_object_description,
    parse_scene,
    select_user_prompt,
    training_text,
    with_image_token,
)
from llara_policy.types import ActionStep, Effector, ImageBox, ImagePoint, ObjectDescription

# --- Golden strings, copied from llara-spec.md -------------------------------------------------

# Spec 2.1: an answer of the released checkpoints (double space in the pick point only).
RELEASED_ANSWER = ('Step 1: Pick up the <p>polka dot letter A</p> at <b>(0.320,  0.547)</b>, '
                   'rotate <r>[-116]</r> degrees, and drop it at <b>(0.543, 0.836)</b>.')
# Spec 3.5: D-inBC task line (oracle descriptions).
TASK_LINE = ('<task>Put the <p>green paisley flower</p> at <b>(0.500, 0.594), {0.102, 0.188}</b>'
             ' into the <p>green and purple polka dot bowl</p> at <b>(0.457, 0.531), '
             '{0.195, 0.328}</b>.</task>')
# Spec 3.2, verbatim (note 'object.The image' in the suction text).
SUCTION_INSTRUCTION = (
    'Every action you take must include two locations in the format of <b>(x, y)</b> and one '
    'clockwise rotation angle in the format of <r>[r]</r>. The first location is the image '
    'coordinate where you use a suction cup to pick up the object, and the second location is '
    'where you place the object.The image coordinate ranges from 0 to 1. The rotation angle '
    'indicates how many degrees you rotate the object clockwise, and it ranges from -359 to 359.')
SPATULA_INSTRUCTION = (
    'Every action you take must include two locations in the format of <b>(x, y)</b> and one '
    'clockwise rotation angle in the format of <r>[r]</r>. The first location is the image '
    'coordinate where you start to sweep the object using a spatula, and the second location is '
    'where you stop sweeping. The image coordinate ranges from 0 to 1. The rotation angle '
    'indicates how many degrees you rotate the spatula clockwise, and it ranges from -359 to 359.')
SYSTEM = ('A chat between a curious user and an artificial intelligence assistant. The assistant '
          "gives helpful, detailed, and polite answers to the user's questions.")

FLOWER = ObjectDescription('green paisley flower',
                           ImageBox(ImagePoint(0.5, 0.594), 0.102, 0.188))
BOWL = ObjectDescription('green and purple polka dot bowl',
                         ImageBox(ImagePoint(0.457, 0.531), 0.195, 0.328))


def step(pick, place, rotation, obj='', effector=Effector.SUCTION, number=0):
    return ActionStep(ImagePoint(*pick), ImagePoint(*place), rotation, obj, effector, number)


def test_released_answer_parses_to_documented_values_and_formats_back():
    parsed = parse_answer(RELEASED_ANSWER)
    assert parsed.steps == (step((0.32, 0.547), (0.543, 0.836), -116, 'polka dot letter A',
                                 number=1),)
    assert not parsed.truncated
    assert format_answer(parsed.steps) == RELEASED_ANSWER


def test_notebook_spacing_is_the_single_space_form():
    notebook = RELEASED_ANSWER.replace(',  0.547', ', 0.547')
    steps = parse_answer(notebook).steps
    assert steps == parse_answer(RELEASED_ANSWER).steps
    assert format_answer(steps, ActionSpacing.NOTEBOOK) == notebook


def test_templates_match_the_spec_action_sentences():
    # Spec 1.2, with the placeholders u0, v0, R, u1, v1 as field values.
    fields = dict(object='OBJ', pick_x='u0', pick_y='v0', rotation='R', place_x='u1',
                  place_y='v1')
    assert NOTEBOOK_STEP_TEMPLATES[Effector.SUCTION].format(**fields) == (
        'Pick up the <p>OBJ</p> at <b>(u0, v0)</b>, rotate <r>[R]</r> degrees, and drop it at '
        '<b>(u1, v1)</b>.')
    assert NOTEBOOK_STEP_TEMPLATES[Effector.SPATULA].format(**fields) == (
        'Sweep the <p>OBJ</p> at <b>(u0, v0)</b>, rotate <r>[R]</r> degrees, and stop at '
        '<b>(u1, v1)</b>.')
    for effector, template in STEP_TEMPLATES.items():
        assert template == NOTEBOOK_STEP_TEMPLATES[effector].replace(', {pick_y}', ',  {pick_y}')
    assert STEP_PREFIX.format(k=3) == 'Step 3: '
    assert re.fullmatch(FIELD_PATTERNS['pick_y'], '0.547')
    assert re.fullmatch(FIELD_PATTERNS['rotation'], '-116')


def test_multi_step_answer_with_sweep_and_numbering_from_history():
    text = ('Step 2: Sweep the <p>red block</p> at <b>(0.500,  0.600)</b>, rotate <r>[0]</r> '
            'degrees, and stop at <b>(0.250, 0.700)</b>.\nStep 3: Pick up the <p>blue bowl</p> at '
            '<b>(0.100,  0.900)</b>, rotate <r>[45]</r> degrees, and drop it at <b>(1.000, '
            '0.000)</b>.')
    steps = parse_answer(text).steps
    assert [s.effector for s in steps] == [Effector.SPATULA, Effector.SUCTION]
    assert [s.step_number for s in steps] == [2, 3]
    assert steps[1].place == ImagePoint(1.0, 0.0)
    assert format_answer(steps) == text


def test_history_replaces_the_object_and_numbers_from_one():
    steps = [step((0.32, 0.547), (0.543, 0.836), -116, 'polka dot letter A', number=7),
             step((0.5, 0.6), (0.25, 0.7), 0, 'red block', Effector.SPATULA)]
    assert format_history(steps) == (
        'You have finished: Step 1: Pick up the object at <b>(0.320,  0.547)</b>, rotate '
        '<r>[-116]</r> degrees, and drop it at <b>(0.543, 0.836)</b>.\nStep 2: Sweep the object '
        'at <b>(0.500,  0.600)</b>, rotate <r>[0]</r> degrees, and stop at <b>(0.250, 0.700)</b>.')
    assert format_history(steps[:1], ActionSpacing.NOTEBOOK) == (
        'You have finished: Step 1: Pick up the object at <b>(0.320, 0.547)</b>, rotate '
        '<r>[-116]</r> degrees, and drop it at <b>(0.543, 0.836)</b>.')


@pytest.mark.parametrize('text, expected', [
    # AuxD answers without the `Step k:` prefix (spec 2.1).
    ('Pick up the <p>red R</p> at <b>(0.1, 0.2)</b>, rotate <r>[5]</r> degrees, and drop it at '
     '<b>(0.3, 0.4)</b>.', step((0.1, 0.2), (0.3, 0.4), 5, 'red R')),
    # History form (word `object`), odd whitespace, no final period, chatter around.
    ('Sure.\nStep  4 :Pick  up the object at<b>( 0.1 ,0.2 )</b> ,rotate <r>[ -5 ]</r> degrees ,'
     ' and drop it at <b>(0.3,0.4)</b>\nDone (0.9, 0.9) [3].',
     step((0.1, 0.2), (0.3, 0.4), -5, '', number=4)),
    # Untagged object phrase.
    ('Step 1: Pick up the red block at <b>(0.1, 0.2)</b>, rotate <r>[5]</r> degrees, and drop it'
     ' at <b>(0.3, 0.4)</b>.', step((0.1, 0.2), (0.3, 0.4), 5, 'red block', number=1)),
])
def test_tolerated_variants(text, expected):
    assert parse_answer(text).steps == (expected,)


@pytest.mark.parametrize('text, reason, where', [
    ('', 'no action step found', -1),
    ('The answer is (0.5, 0.5).', 'no action step found', -1),
    # All of a step's fields but none of its syntax: a malformed (first) step.
    ('The answer is (0.3, 0.5) and (0.2, 0.4) [30].', 'malformed action step', 0),
    (RELEASED_ANSWER.replace('[-116]', '[]'), 'expected rotation', RELEASED_ANSWER.index('[') + 1),
    (RELEASED_ANSWER.replace('0.543', '1.543'), 'place_x 1.543 is outside [0, 1]',
     RELEASED_ANSWER.index('0.543')),
    (RELEASED_ANSWER.replace('-116', '-360'), 'rotation -360 is outside', None),
    (RELEASED_ANSWER.replace('-116', '12.5'), "expected ']'", None),
    (RELEASED_ANSWER.replace('drop it', 'stop'), "expected 'drop'", None),
    ('Step 1: Sweep the <p>x</p> at <b>(0.1, 0.2)</b>, rotate <r>[1]</r> degrees, and drop it at'
     ' <b>(0.3, 0.4)</b>.', "expected 'stop'", None),
    ('Step 1: I am not sure.\n' + RELEASED_ANSWER, "expected 'Pick'", 8),
    (RELEASED_ANSWER.replace('Step 1', 'Step 12345678901'), 'step number', 5),
])
def test_malformed_answers_raise_parse_error_saying_what_and_where(text, reason, where):
    with pytest.raises(ParseError) as caught:
        parse_answer(text)
    assert reason in caught.value.reason
    if where is not None:
        assert caught.value.position == where


def test_unfinished_final_step_is_dropped_only_at_the_end_of_the_text():
    second = '\nStep 2: Pick up the <p>a</p> at <b>(0.1,  0.2)</b>, rotate <r>[-1'
    parsed = parse_answer(RELEASED_ANSWER + second)
    assert parsed.steps == parse_answer(RELEASED_ANSWER).steps and parsed.truncated
    # Not at the end: a malformed step, which ends the answer after the valid prefix.
    parsed = parse_answer(RELEASED_ANSWER + second + '\nStep 3: ' + RELEASED_ANSWER[8:])
    assert parsed.steps == parse_answer(RELEASED_ANSWER).steps
    assert parsed.malformed_tail and not parsed.truncated
    with pytest.raises(ParseError, match='unfinished') as caught:
        parse_answer(RELEASED_ANSWER[:60])
    assert caught.value.position == 0


def test_every_cut_inside_the_last_step_keeps_exactly_the_earlier_steps():
    text = RELEASED_ANSWER + '\n' + RELEASED_ANSWER.replace('Step 1', 'Step 2')
    first = parse_answer(RELEASED_ANSWER).steps
    for cut in range(len(RELEASED_ANSWER) + 1, len(text) - 1):
        parsed = parse_answer(text[:cut])
        assert parsed.steps == first, cut
        assert parsed.truncated == (cut >= len(RELEASED_ANSWER) + 2), cut  # from 'S' of 'Step'
    assert len(parse_answer(text[:-1]).steps) == 2  # only the final period missing


# --- Object and scene descriptions -------------------------------------------------------------

def test_task_line_from_descriptions_matches_the_spec():
    template = 'Put the {dragged_obj_1} into the {base_obj}.'
    task = build_task_text(template, {'dragged_obj_1': FLOWER, 'base_obj': BOWL})
    assert f'<task>{task}</task>' == TASK_LINE
    descriptions = re.findall(r'<p>.*?</b>', TASK_LINE)
    assert [parse_object_description(d) for d in descriptions] == [FLOWER, BOWL]
    assert [format_object_description(d) for d in (FLOWER, BOWL)] == descriptions


def test_inbc_names_and_scene_keys():
    refs = {'dragged_obj': 'red letter R', 'scene': Scene((FLOWER, BOWL)), 'base_obj': BOWL}
    template = 'Rearrange to this {scene} then put {dragged_obj} in {base_obj}.'
    assert build_task_text(template, refs, DescriptionMode.NAMES) == (
        'Rearrange to this scene then put <p>red letter R</p> in '
        '<p>green and purple polka dot bowl</p>.')
    assert build_task_text(template, refs) == (
        'Rearrange to this <scene><p>green paisley flower</p> at <b>(0.500, 0.594), '
        '{0.102, 0.188}</b>.\n<p>green and purple polka dot bowl</p> at <b>(0.457, 0.531), '
        '{0.195, 0.328}</b>.</scene> then put <p>red letter R</p> in <p>green and purple polka '
        'dot bowl</p> at <b>(0.457, 0.531), {0.195, 0.328}</b>.')
    with pytest.raises(PromptError, match='frame_0'):
        build_task_text('{frame_0}', refs)


def test_scene_format_and_parse():
    scene = format_scene([FLOWER, BOWL])
    assert scene == (
        '<scene><p>green paisley flower</p> at <b>(0.500, 0.594), {0.102, 0.188}</b>.\n'
        '<p>green and purple polka dot bowl</p> at <b>(0.457, 0.531), {0.195, 0.328}</b>.'
        '</scene>')
    assert parse_scene(scene) == (FLOWER, BOWL)
    no_periods = format_scene([FLOWER, BOWL], line_periods=False)
    assert '</b>\n<p>' in no_periods and parse_scene(no_periods) == (FLOWER, BOWL)
    assert parse_scene(scene[:-40]) == (FLOWER,)  # cut-off detection answer
    assert parse_scene('<scene></scene>') == ()
    for bad in ('hello', scene.replace('0.457', '4.57'), scene[:-40] + '</scene>'):
        with pytest.raises(ParseError):
            parse_scene(bad)
    with pytest.raises(ParseError, match='after the object description'):
        parse_object_description(format_object_description(FLOWER) + ' and more')


# --- Prompt builder ----------------------------------------------------------------------------

def test_instructions_system_and_pools_are_verbatim():
    assert ACTION_INSTRUCTIONS == {Effector.SUCTION: SUCTION_INSTRUCTION,
                                   Effector.SPATULA: SPATULA_INSTRUCTION}
    assert VICUNA_V1_SYSTEM == SYSTEM
    assert ACTION_PROMPTS[1] == 'List out the actions needed to accomplish the task in this scene.'
    assert (len(ACTION_PROMPTS), len(DETECTION_PROMPTS), len(LOCALIZATION_PROMPTS)) == (15, 15, 15)
    assert all(p.count('{object}') == 1 for p in LOCALIZATION_PROMPTS)
    # Change detector: the 45 sentences as copied from LLaRA eval/llara_prompts.py.
    joined = '\n'.join(ACTION_PROMPTS + DETECTION_PROMPTS + LOCALIZATION_PROMPTS).encode()
    assert hashlib.sha256(joined).hexdigest() == (
        'ffbc5c3b33d619cdf03718bdaa026578e44ea074bcf8122bbf3c5db730343a98')


def test_user_prompt_ids_follow_llara_prompt_id():
    rng = random.Random(200000)
    assert select_user_prompt(3, rng) == ACTION_PROMPTS[3]
    assert select_user_prompt(15, rng) == select_user_prompt(100, rng) == ''
    drawn = [select_user_prompt(-1, random.Random(7)) for _ in range(2)]
    assert drawn[0] == drawn[1] == random.Random(7).choice(ACTION_PROMPTS)
    with pytest.raises(PromptError):
        select_user_prompt(True, rng)


def test_user_turn_layout_character_for_character():
    task = build_task_text('Put the {dragged_obj_1} into the {base_obj}.',
                           {'dragged_obj_1': FLOWER, 'base_obj': BOWL})
    history = [step((0.316, 0.547), (0.543, 0.836), -116, 'polka dot letter A')]
    turn = build_user_turn(task, Effector.SUCTION, user_prompt=ACTION_PROMPTS[1], history=history)
    expected = (
        '<image0>\n' + TASK_LINE + '\n'
        'List out the actions needed to accomplish the task in this scene.\n'
        + SUCTION_INSTRUCTION + '\n'
        'You have finished: Step 1: Pick up the object at <b>(0.316,  0.547)</b>, rotate '
        '<r>[-116]</r> degrees, and drop it at <b>(0.543, 0.836)</b>.')
    assert turn == expected
    assert generation_prompt(turn) == SYSTEM + ' USER: ' + expected + ' ASSISTANT:'
    answer = 'Step 2: ' + format_step(history[0])
    assert training_text(turn, answer) == (
        SYSTEM + ' USER: ' + expected + ' ASSISTANT: ' + answer + '</s>')
    # Notebook layout: no user prompt, no history; spatula instruction; RT-2 without it.
    assert build_user_turn('Sweep.', Effector.SPATULA) == (
        '<image0>\n<task>Sweep.</task>\n' + SPATULA_INSTRUCTION)
    assert build_user_turn('T', Effector.SUCTION, image_index=2, instruction=False) == (
        '<image2>\n<task>T</task>')


def test_image_token_swap_and_aux_questions():
    assert with_image_token('<image0>\n<task>x</task>') == '<image>\n<task>x</task>'
    with pytest.raises(PromptError):
        with_image_token('<image1>\n<image0>')
    assert detection_question(random.Random(1)) == (
        '<image>\n' + random.Random(1).choice(DETECTION_PROMPTS))
    question = localization_question('red block', random.Random(2))
    assert question == '<image>\n' + random.Random(2).choice(LOCALIZATION_PROMPTS).replace(
        '{object}', '<p>red block</p>')
    with pytest.raises(PromptError):
        localization_question('red <block>', random.Random(2))
    with pytest.raises(PromptError):
        format_step(step((0.1, 0.1), (0.1, 0.1), 0, 'two\nlines'))
    assert 'the object at' in format_step(step((0.1, 0.1), (0.1, 0.1), 0, '<x>'), history=True)


# --- Properties --------------------------------------------------------------------------------

unit = st.integers(0, 1000).map(lambda k: k / 1000)
names = st.text(st.sampled_from('abcdefghijklmnopqrstuvwxyz ABCXYZ0123-:'), max_size=20).map(
    str.strip)
steps = st.builds(
    lambda px, py, qx, qy, rotation, name, effector, number: step(
        (px, py), (qx, qy), rotation, name, effector, number),
    unit, unit, unit, unit, st.integers(-359, 359), names, st.sampled_from(Effector),
    st.integers(0, 40))


@settings(max_examples=400, deadline=None, database=None)
@given(st.lists(steps, min_size=1, max_size=5), st.sampled_from(ActionSpacing))
def test_format_parse_identity(actions, spacing):
    text = format_answer(actions, spacing)
    parsed = parse_answer(text)
    assert parsed.steps == tuple(actions) and not parsed.truncated
    assert not parsed.malformed_tail and not parsed.diagnostics
    check_accounted_for(text, parsed)
    assert format_answer(parsed.steps, spacing) == text
    history = format_history(actions, spacing)
    unnamed = [ActionStep(a.pick, a.place, a.rotation_cw_deg, '', a.effector, k)
               for k, a in enumerate(actions, start=1)]
    assert parse_answer(history).steps == tuple(unnamed)


# Pieces of the grammar, so that random texts get deep into a step before going wrong.
PIECES = ('Step 1: ', 'Step 12:', 'Pick up the ', 'Sweep the ', '<p>', 'red block', '</p>',
          ' at ', 'object', '<b>', '(', '0.5', '1.25', '-0.1', ', ', ',  ', ')', '</b>',
          ', rotate ', '<r>', '[', '-12', '400', ']', '</r>', ' degrees, and ', 'drop it', 'stop',
          ' at <b>(', '.', '\n', ' ', '{', '}')


def piece_soup(seed):
    rng = random.Random(seed)
    return ''.join(rng.choice(PIECES) if rng.random() < 0.9 else chr(rng.randrange(0x2fff))
                   for _ in range(rng.randint(0, 40)))


# Seeds rather than st.randoms() or st.lists(): every Hypothesis draw costs ~100x a random() call.
seeds = st.integers(0, 2**32 - 1)
garbage = st.one_of(st.text(max_size=300), seeds.map(piece_soup))


# Fuzz budget: 3600 + 4500 + 1500 + 400 (identity) = 10,000 examples, about 5 s.
@settings(max_examples=3600, deadline=None, database=None)
@given(garbage)
def test_arbitrary_text_raises_only_parse_error(text):
    check_parse_is_safe(text)
    for parse in (parse_scene, parse_object_description):
        with contextlib.suppress(ParseError):
            parse(text)


MUTATION_CHARS = '0123456789.,-()[]<>/bpr \nStep:9e'


def random_step(rng):
    return step((rng.randint(0, 1000) / 1000, rng.randint(0, 1000) / 1000),
                (rng.randint(0, 1000) / 1000, rng.randint(0, 1000) / 1000),
                rng.randint(-359, 359), rng.choice(['', 'red block', 'letter A']),
                rng.choice(list(Effector)), rng.randint(0, 9))


def mutate(rng, text):
    for _ in range(rng.randint(1, 4)):
        cut, span = rng.randint(0, len(text)), rng.randint(0, 6)
        insert = ''.join(rng.choice(MUTATION_CHARS) for _ in range(rng.randint(0, 4)))
        text = text[:cut] + insert + text[cut + span:]
    return text


@settings(max_examples=4500, deadline=None, database=None)
@given(seeds)
def test_mutated_answers_raise_only_parse_error(seed):
    rng = random.Random(seed)
    actions = [random_step(rng) for _ in range(rng.randint(1, 3))]
    text = format_answer(actions, rng.choice(list(ActionSpacing)))
    check_parse_is_safe(mutate(rng, text))
    # A cut-off answer yields a prefix of the steps, each complete and exact, or ParseError;
    # what was cut is reported as truncation, never as a malformed step.
    parsed = check_parse_is_safe(text[:rng.randint(0, len(text))])
    if parsed is None:
        return
    assert parsed.steps == tuple(actions[:len(parsed.steps)])
    assert not parsed.malformed_tail
    assert all(d.kind is DiagnosticKind.TRUNCATED_STEP for d in parsed.diagnostics)


@settings(max_examples=1500, deadline=None, database=None)
@given(seeds)
def test_descriptions_and_scenes_raise_only_parse_error(seed):
    rng = random.Random(seed)
    objects = [ObjectDescription(rng.choice(['x', 'red block']), ImageBox(
        ImagePoint(rng.random(), rng.random()), rng.random(), rng.random()))
        for _ in range(rng.randint(1, 4))]
    scene = format_scene(objects)
    assert len(parse_scene(scene)) == len(objects)
    for parse, text in ((parse_scene, mutate(rng, scene)),
                        (parse_object_description, mutate(rng, scene[7:scene.index('</b>') + 4]))):
        try:
            parsed = parse(text)
        except ParseError:
            continue
        for obj in parsed if isinstance(parsed, tuple) else (parsed,):
            assert min(obj.box.center.x_norm, obj.box.center.y_norm, obj.box.width_norm,
                              obj.box.height_norm) >= 0.0
            assert max(obj.box.center.x_norm, obj.box.center.y_norm, obj.box.width_norm,
                       obj.box.height_norm) <= 1.0
