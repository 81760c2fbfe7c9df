"""Golden tests: behaviour-cloning samples match llara-spec 1.2, 1.3, 3.4 character for character.

Every expected string below is typed from the spec's rules for the fixture episode
(conversion_fixtures), never produced by the code under test.
"""
import conversion_fixtures as fx
import pytest

from llara_policy.errors import ConfigError
from llara_policy.text.prompting import ActionSpacing
from llara_policy.types import Effector
from llara_training.conversations import (
    AnswerMode,
    BehaviourCloning,
    ConversationConfig,
    Method,
    Rt2Coordinates,
    rt2_unit_values,
)
from llara_training.episode import LabelMapping

# llara-spec 3.2, verbatim (note the missing space in "object.The" of the suction text).
SUCTION = ('Every action you take must include two locations in the format of <b>(x, y)</b> and '
           'one clockwise rotation angle in the format of <r>[r]</r>. The first location is the '
           'image coordinate where you use a suction cup to pick up the object, and the second '
           'location is where you place the object.The image coordinate ranges from 0 to 1. The '
           'rotation angle indicates how many degrees you rotate the object clockwise, and it '
           'ranges from -359 to 359.')
SPATULA = ('Every action you take must include two locations in the format of <b>(x, y)</b> and '
           'one clockwise rotation angle in the format of <r>[r]</r>. The first location is the '
           'image coordinate where you start to sweep the object using a spatula, and the second '
           'location is where you stop sweeping. The image coordinate ranges from 0 to 1. The '
           'rotation angle indicates how many degrees you rotate the spatula clockwise, and it '
           'ranges from -359 to 359.')
TASK_INBC = ('<task>Put the <p>red block</p> into the <p>green bowl</p>. '
             'Then make it look like scene.</task>')
TASK_D = ('<task>Put the <p>red block</p> at <b>(0.500, 0.500), {0.250, 0.500}</b> into the '
          '<p>green bowl</p> at <b>(0.500, 0.500), {0.500, 0.750}</b>. Then make it look like '
          '<scene><p>red block</p> at <b>(0.750, 0.625), {0.125, 0.250}</b>.\n'
          '<p>green bowl</p> at <b>(0.750, 0.500), {0.250, 0.500}</b>.</scene>.</task>')
# Released spacing: two spaces after the pick point's comma (spec 2.1).
STEP_1 = ('Pick up the <p>red block</p> at <b>(0.250,  0.500)</b>, rotate <r>[30]</r> degrees, '
          'and drop it at <b>(0.797, 0.578)</b>.')
STEP_2 = ('Pick up the <p>blue letter A</p> at <b>(0.500,  0.750)</b>, rotate <r>[-45]</r> '
          'degrees, and drop it at <b>(0.250, 0.250)</b>.')
HISTORY_1 = ('You have finished: Step 1: Pick up the object at <b>(0.250,  0.500)</b>, rotate '
             '<r>[30]</r> degrees, and drop it at <b>(0.797, 0.578)</b>.')
FRAME_0 = f'{fx.EPISODE_ID}/rgb_front/0.jpg'
FRAME_1 = f'{fx.EPISODE_ID}/rgb_front/1.jpg'


def samples(config: ConversationConfig, episode=None, **kwargs):
    writer = BehaviourCloning(config, **kwargs)
    return [s.to_json() for s in writer.samples(episode or fx.episode())]


def conversation(question: str, answer: str) -> list:
    return [{'from': 'human', 'value': question}, {'from': 'gpt', 'value': answer}]


def test_d_inbc_multi_is_the_released_layout():
    config = ConversationConfig.from_format('D-inBC')
    assert config.file_name('train-80k') == 'D-inBC-text-multi-train-80k-front.json'
    assert samples(config) == [
        {'id': f'{fx.EPISODE_ID}_0', 'image': [FRAME_0], 'conversations': conversation(
            f'<image0>\n{TASK_D}\n{SUCTION}', f'Step 1: {STEP_1}\nStep 2: {STEP_2}')},
        {'id': f'{fx.EPISODE_ID}_1', 'image': [FRAME_1], 'conversations': conversation(
            f'<image0>\n{TASK_D}\n{SUCTION}\n{HISTORY_1}', f'Step 2: {STEP_2}')},
    ]


def test_inbc_names_objects_and_keeps_scene_keys():
    config = ConversationConfig.from_format('inBC')
    assert config.stem == 'inBC-text-multi'
    first, second = samples(config)
    assert first['conversations'][0]['value'] == f'<image0>\n{TASK_INBC}\n{SUCTION}'
    assert second['conversations'] == conversation(
        f'<image0>\n{TASK_INBC}\n{SUCTION}\n{HISTORY_1}', f'Step 2: {STEP_2}')


def test_single_step_answers_number_from_the_history():
    config = ConversationConfig.from_format('D-inBC', answers=AnswerMode.SINGLE)
    assert config.stem == 'D-inBC-text-single'
    answers = [s['conversations'][1]['value'] for s in samples(config)]
    assert answers == [f'Step 1: {STEP_1}', f'Step 2: {STEP_2}']


def test_single_step_quirk_numbers_as_the_notebook():
    # The notebook writes Step {i + (T - 2) + 1}: i + 2 for this 2-step episode.
    config = ConversationConfig.from_format('D-inBC', answers=AnswerMode.SINGLE,
                                            single_step_number_quirk=True)
    answers = [s['conversations'][1]['value'] for s in samples(config)]
    assert answers == [f'Step 2: {STEP_1}', f'Step 3: {STEP_2}']


def test_notebook_spacing_has_one_space_in_the_pick_point():
    config = ConversationConfig.from_format('D-inBC', spacing=ActionSpacing.NOTEBOOK)
    second = samples(config)[1]['conversations']
    assert second[0]['value'].endswith(
        'You have finished: Step 1: Pick up the object at <b>(0.250, 0.500)</b>, rotate '
        '<r>[30]</r> degrees, and drop it at <b>(0.797, 0.578)</b>.')
    assert second[1]['value'] == (
        'Step 2: Pick up the <p>blue letter A</p> at <b>(0.500, 0.750)</b>, rotate <r>[-45]</r> '
        'degrees, and drop it at <b>(0.250, 0.250)</b>.')


def test_spatula_episode_sweeps_and_gets_the_spatula_instruction():
    config = ConversationConfig.from_format('inBC')
    first = samples(config, fx.episode(effector=Effector.SPATULA))[0]['conversations']
    assert first == conversation(
        f'<image0>\n{TASK_INBC}\n{SPATULA}',
        'Step 1: Sweep the <p>red block</p> at <b>(0.250,  0.500)</b>, rotate <r>[30]</r> '
        'degrees, and stop at <b>(0.797, 0.578)</b>.\n'
        'Step 2: Sweep the <p>blue letter A</p> at <b>(0.500,  0.750)</b>, rotate <r>[-45]</r> '
        'degrees, and stop at <b>(0.250, 0.250)</b>.')


def bins(token_ids) -> str:
    """A stand-in tokenizer: id 31000 + b decodes to '<b>' so the test can read the bins."""
    return ''.join(f'<{token_id - 31000}>' for token_id in token_ids)


def test_rt2_image_coordinates_and_token_history():
    # I-RT2: values (pick x, pick y, place x, place y, (yaw + 180) / 360), yaw = -r;
    # bin = round(v * 255). Step 1: 0.25->64, 0.5->128 (127.5, half to even), 0.796875->203,
    # 0.578125->147, yaw -30 -> 150/360 -> 106. Step 2: 0.5->128, 0.75->191, 0.25->64,
    # 0.25->64, yaw 45 -> 225/360 -> 159.
    config = ConversationConfig.from_format('I-D-RT2')
    assert config.file_name('train') == 'I-D-RT2-text-multi-train-front.json'
    first, second = samples(config, token_decoder=bins)
    assert first['conversations'] == conversation(
        f'<image0>\n{TASK_D}',
        'Step 1: <64><128><203><147><106>\nStep 2: <128><191><64><64><159>')
    assert second['conversations'] == conversation(
        f'<image0>\n{TASK_D}\nYou have finished: Step 1: <64><128><203><147><106>',
        'Step 2: <128><191><64><64><159>')


def test_rt2_table_metres_through_vimas_map():
    # Unbiased labels decode as they are: pick pixel (64, 64) -> x = (64 - 34) / 178 + 0.25,
    # y = (64 - 3) / 251 - 0.5 -> values (x - 0.25) * 2 = 0.337 -> 86, y + 0.5 = 0.243 -> 62;
    # place pixel (204, 74) -> 0.449 -> 115, 0.801 -> 204. LLARA labels are truncated pixels,
    # read at the pixel centre: (64.5, 64.5) -> 87, 62 and (204.5, 74.5) -> 116, 205.
    config = ConversationConfig.from_format('RT2')
    assert config.stem == 'RT2-text-multi'
    answer = samples(config, token_decoder=bins)[0]['conversations'][1]['value']
    assert answer.split('\n')[0] == 'Step 1: <86><62><115><204><106>'
    llara = fx.episode(label_mapping=LabelMapping.LLARA)
    answer = samples(config, llara, token_decoder=bins)[0]['conversations'][1]['value']
    assert answer.split('\n')[0] == 'Step 1: <87><62><116><205><106>'


def test_rt2_rotation_wraps_into_plus_minus_180():
    # r = 200 clockwise is a yaw change of -200 = +160 degrees: (160 + 180) / 360 -> bin 241.
    step = fx.steps()[0]
    step = type(step)(step.pick, step.place, 200, step.object_text, step.effector, 1)
    values = rt2_unit_values(step, LabelMapping.UNBIASED, Rt2Coordinates.IMAGE)
    assert round(values[4] * 255) == 241


def test_rt2_needs_a_tokenizer_and_vima_labels():
    with pytest.raises(ConfigError, match='token decoder'):
        BehaviourCloning(ConversationConfig.from_format('RT2'))
    writer = BehaviourCloning(ConversationConfig.from_format('RT2'), token_decoder=bins)
    with pytest.raises(ConfigError, match='I-RT2'):
        writer.samples(fx.episode(label_mapping=LabelMapping.CALIBRATION))
    assert ConversationConfig.from_format('D-RT2').method is Method.RT2
    with pytest.raises(ConfigError, match='format'):
        ConversationConfig.from_format('D-inbc')


def test_a_detector_describes_references_through_the_hook():
    def detector(placeholder):
        return f'detected {placeholder.name}'

    config = ConversationConfig.from_format('D-inBC')
    question = samples(config, describer=detector)[0]['conversations'][0]['value']
    assert question.startswith(
        '<image0>\n<task>Put the <p>detected dragged_obj_1</p> into the <p>detected base_obj</p>'
        '. Then make it look like <p>detected scene</p>.</task>\n')
