"""Golden tests: the six auxiliary datasets match llara-spec 4 character for character.

Answers are typed from the spec's rules for the fixture episode (conversion_fixtures). Questions
are drawn at random from the notebook's pools, so each must equal one pool sentence with its
placeholders filled as the spec says (checked against every sentence of the pool).
"""
import conversion_fixtures as fx
import pytest
from test_conversations import STEP_1, SUCTION  # noqa: I001 (sibling test module)

from llara_policy.errors import ConfigError
from llara_policy.text.prompt_pools import (
    ACT_PRED_PROMPTS,
    DETECTION_PROMPTS,
    FUT_PRED_PROMPTS,
    LOCALIZATION_PROMPTS,
    SPA_REL_PROMPTS,
    TMP_REL_PROMPTS,
)
from llara_training.aux_datasets import (
    AUX_PRESETS,
    AuxConfig,
    AuxName,
    aux_samples,
    mixture_name,
    mixture_picks,
    parse_ratios,
)
from llara_training.aux_relations import Quirks

ID = fx.EPISODE_ID
RED, BOWL, LETTER = '<p>red block</p>', '<p>green bowl</p>', '<p>blue letter A</p>'
SCENE_0 = ('<scene><p>red block</p> at <b>(0.250, 0.500), {0.125, 0.250}</b>.\n'
           '<p>green bowl</p> at <b>(0.750, 0.500), {0.250, 0.500}</b>.\n'
           '<p>blue letter A</p> at <b>(0.500, 0.750), {0.125, 0.125}</b>.</scene>')
SCENE_1 = ('<scene><p>red block</p> at <b>(0.797, 0.578), {0.125, 0.250}</b>.\n'
           '<p>green bowl</p> at <b>(0.750, 0.500), {0.250, 0.500}</b>.\n'
           '<p>blue letter A</p> at <b>(0.500, 0.750), {0.125, 0.125}</b>.</scene>')


def convert(config: AuxConfig | None = None, episode=None):
    sets, counts = aux_samples(episode or fx.episode(), config or AuxConfig())
    return {name: [s.to_json() for s in samples] for name, samples in sets.items()}, counts


def human(sample) -> str:
    return sample['conversations'][0]['value']


def gpt(sample) -> str:
    return sample['conversations'][1]['value']


def assert_from_pool(question: str, pool, fill) -> None:
    """`question` is fill(sentence) for exactly one sentence of `pool`."""
    matches = [sentence for sentence in pool if fill(sentence) == question]
    assert len(matches) == 1, f'{question!r} is no filled sentence of the pool'


def test_object_detection_lists_every_frame_and_reference_scene():
    samples = convert()[0][AuxName.OBJ_DET]
    assert [s['id'] for s in samples] == [
        f'obj_det/{ID}/rgb_front/0.jpg', f'obj_det/{ID}/rgb_front/1.jpg',
        f'obj_det/{ID}/rgb_front/2.jpg', f'obj_det/{ID}/rgb_front/a_dragged_obj_1.png',
        f'obj_det/{ID}/rgb_front/a_base_obj.png', f'obj_det/{ID}/rgb_front/a_scene.png']
    assert samples[0]['image'] == [f'{ID}/rgb_front/0.jpg']
    assert gpt(samples[0]) == SCENE_0
    assert gpt(samples[1]) == SCENE_1
    assert gpt(samples[3]) == ('<scene><p>red block</p> at <b>(0.500, 0.500), {0.250, 0.500}</b>.'
                               '</scene>')
    for sample in samples:
        assert_from_pool(human(sample), DETECTION_PROMPTS, lambda p: '<image>\n' + p)


def test_object_localization_answers_each_object_with_a_period():
    samples = convert()[0][AuxName.OBJ_LOC]
    bowl = samples[1]
    assert bowl['id'] == f'obj_loc/{ID}/rgb_front/0.jpg#1'
    assert gpt(bowl) == '<p>green bowl</p> at <b>(0.750, 0.500), {0.250, 0.500}</b>.'
    assert_from_pool(human(bowl), LOCALIZATION_PROMPTS,
                     lambda p: '<image>\n' + p.replace('{object}', BOWL))
    assert gpt(samples[-1]) == '<p>green bowl</p> at <b>(0.750, 0.500), {0.250, 0.500}</b>.'
    assert samples[-1]['image'] == [f'{ID}/rgb_front/a_scene.png']


def test_action_prediction_gives_the_next_scene_and_asks_for_the_step():
    first = convert()[0][AuxName.ACT_PRED][0]
    assert first['id'] == f'act_pred/{ID}/rgb_front/0.jpg'
    assert gpt(first) == STEP_1
    assert_from_pool(human(first), ACT_PRED_PROMPTS,
                     lambda p: '<image>\n' + p.replace('{scene}', SCENE_1) + '\n' + SUCTION)


def test_future_prediction_states_the_step_as_a_clause():
    first = convert()[0][AuxName.FUT_PRED][0]
    assert first['image'] == [f'{ID}/rgb_front/0.jpg']
    assert gpt(first) == SCENE_1
    # First word lower-cased, final period dropped, whitespace runs collapsed.
    clause = ('pick up the <p>red block</p> at <b>(0.250, 0.500)</b>, rotate <r>[30]</r> degrees, '
              'and drop it at <b>(0.797, 0.578)</b>')
    assert_from_pool(human(first), FUT_PRED_PROMPTS,
                     lambda p: '<image>\n' + p.replace('{pick up and drop}', clause))


# Frame 0, ordered pairs in object order; containment and the vertical-slot quirk in (bowl, red).
SPATIAL_0 = [
    f'{RED} is left and bottom from {BOWL} with 2d center distance (x,y) of '
    '<d>(-0.500, 0.000)</d> and euclidean center distance of <e>0.500</e>.',
    f'{RED} is left and top from {LETTER} with 2d center distance (x,y) of '
    '<d>(-0.250, -0.250)</d> and euclidean center distance of <e>0.354</e>.',
    f'{BOWL} is right and horizontally containig from {RED} with 2d center distance (x,y) of '
    '<d>(0.500, 0.000)</d> and euclidean center distance of <e>0.500</e>.',
    f'{BOWL} is right and top from {LETTER} with 2d center distance (x,y) of '
    '<d>(0.250, -0.250)</d> and euclidean center distance of <e>0.354</e>.',
    f'{LETTER} is right and bottom from {RED} with 2d center distance (x,y) of '
    '<d>(0.250, 0.250)</d> and euclidean center distance of <e>0.354</e>.',
    f'{LETTER} is left and bottom from {BOWL} with 2d center distance (x,y) of '
    '<d>(-0.250, 0.250)</d> and euclidean center distance of <e>0.354</e>.',
]
PAIRS = [(RED, BOWL), (RED, LETTER), (BOWL, RED), (BOWL, LETTER), (LETTER, RED), (LETTER, BOWL)]


def test_spatial_relationship_of_every_ordered_pair():
    samples = convert()[0][AuxName.SPA_REL][:6]
    assert [gpt(s) for s in samples] == SPATIAL_0
    for k, (sample, (ego, ref)) in enumerate(zip(samples, PAIRS, strict=True)):
        assert sample['id'] == f'spa_rel/{ID}/rgb_front/0.jpg#{k}'
        example = SPATIAL_0[k - 1][:-1]  # the previous pair's answer, cyclic, without '.'
        assert_from_pool(human(sample), SPA_REL_PROMPTS, lambda p, ego=ego, ref=ref, e=example: (
            '<image>\n' + p.replace('{Putego}', ego).replace('{Putref}', ref)
            .replace('{example}', e)))


def test_spatial_quirks_can_be_fixed():
    fixed = Quirks(containig_typo=False, vertical_says_horizontally=False)
    sample = convert(AuxConfig(quirks=fixed))[0][AuxName.SPA_REL][2]
    assert gpt(sample) == (
        f'{BOWL} is right and vertically containing from {RED} with 2d center distance (x,y) of '
        '<d>(0.500, 0.000)</d> and euclidean center distance of <e>0.500</e>.')


# Transition 0 -> 1: the red block moves next to the bowl.
TEMPORAL_0 = [
    f'{BOWL} moves closer to {RED}. 2d center distance (x,y) of {RED} from {BOWL} changes by '
    '<d>(0.547, 0.078)</d> and Euclidean center distance between them <e>-0.409</e>.\n',
    f'{LETTER} moves closer to {RED}. 2d center distance (x,y) of {RED} from {LETTER} changes by '
    '<d>(0.547, 0.078)</d> and Euclidean center distance between them <e>-0.011</e>.\n',
    f'{RED} moves closer to {BOWL}. 2d center distance (x,y) of {BOWL} from {RED} changes by '
    '<d>(-0.547, -0.078)</d> and Euclidean center distance between them <e>-0.409</e>.\n',
    f'The distance between {LETTER} and {BOWL} does not change. 2d center distance (x,y) of '
    f'{BOWL} from {LETTER} changes by <d>(0.000, 0.000)</d> and Euclidean center distance '
    'between them <e>0.000</e>.\n',
    f'{RED} moves closer to {LETTER}. 2d center distance (x,y) of {LETTER} from {RED} changes by '
    '<d>(-0.547, -0.078)</d> and Euclidean center distance between them <e>-0.011</e>.\n',
    f'The distance between {BOWL} and {LETTER} does not change. 2d center distance (x,y) of '
    f'{LETTER} from {BOWL} changes by <d>(0.000, 0.000)</d> and Euclidean center distance '
    'between them <e>0.000</e>.\n',
]


def test_temporal_relationship_across_a_step():
    samples = convert()[0][AuxName.TMP_REL]
    assert [gpt(s) for s in samples[:6]] == TEMPORAL_0
    for k, (sample, (ego, ref)) in enumerate(zip(samples[:6], PAIRS, strict=True)):
        assert sample['image'] == [f'{ID}/rgb_front/0.jpg']
        # '<image>/n' (slash n) and the previous answer whole: it ends in '.\n', not '.'.
        assert_from_pool(human(sample), TMP_REL_PROMPTS, lambda p, ego=ego, ref=ref, k=k: (
            '<image>/n' + p.replace('{Putego}', ego).replace('{Putref}', ref)
            .replace('{example}', TEMPORAL_0[k - 1]).replace('{scene}', SCENE_1)))
    assert gpt(samples[7]) == (
        f'{LETTER} moves far away from {RED}. 2d center distance (x,y) of {RED} from {LETTER} '
        'changes by <d>(0.250, 0.500)</d> and Euclidean center distance between them '
        '<e>0.295</e>.\n')


def test_temporal_quirks_can_be_fixed():
    fixed = Quirks(tmp_rel_slash_n=False, tmp_rel_example_newline=False)
    sample = convert(AuxConfig(quirks=fixed))[0][AuxName.TMP_REL][1]
    assert_from_pool(human(sample), TMP_REL_PROMPTS, lambda p: (
        '<image>\n' + p.replace('{Putego}', RED).replace('{Putref}', LETTER)
        .replace('{example}', TEMPORAL_0[0][:-2]).replace('{scene}', SCENE_1)))


def test_counts_follow_the_spec_formulas():
    # 3 frames with 3 objects, references with 1, 1 and 2 objects, 2 steps.
    sets, counts = convert()
    assert {name: len(samples) for name, samples in sets.items()} == {
        AuxName.OBJ_DET: 3 + 3, AuxName.OBJ_LOC: 3 * 3 + 1 + 1 + 2, AuxName.ACT_PRED: 2,
        AuxName.FUT_PRED: 2, AuxName.SPA_REL: 3 * 6 + 2, AuxName.TMP_REL: 2 * 6}
    assert vars(counts) == dict.fromkeys(vars(counts), 0)
    limited, _ = convert(AuxConfig(limited=True, datasets=AUX_PRESETS['B']))
    assert {name: len(samples) for name, samples in limited.items()} == {
        AuxName.OBJ_DET: 3, AuxName.OBJ_LOC: 9, AuxName.ACT_PRED: 2, AuxName.FUT_PRED: 2}
    assert AuxConfig(limited=True).file_name(AuxName.SPA_REL, 'train-8k') == \
        'aux-limited_spa_rel-train-8k-front.json'
    assert AuxConfig(limited=True).file_name(AuxName.TMP_REL, 'train-8k') == \
        'aux-tmp_rel-train-8k-front.json'


def test_left_out_objects_are_counted():
    # Frame 1 loses the letter (occluded) and has a second red block: neither is silent.
    red_twin = fx.described('red block', 0.5, 0.25, 0.125, 0.25)
    objects = (fx.FRAME_OBJECTS[0], (fx.RED_1, fx.BOWL, red_twin), fx.FRAME_OBJECTS[2])
    sets, counts = convert(episode=fx.episode(frame_objects=objects))
    assert counts.duplicate_names == 2  # frame 1 in spa_rel and as tmp_rel's frame t
    assert counts.objects_not_in_both_frames == 2  # the letter, in transitions 0 and 1
    # Transition 0 pairs red/bowl only; the red twin's box wins in frame 1 (last of the name).
    assert len(sets[AuxName.TMP_REL]) == 2 + 2


def test_presets_and_determinism():
    assert AUX_PRESETS['B'] == (AuxName.OBJ_DET, AuxName.OBJ_LOC, AuxName.ACT_PRED,
                                AuxName.FUT_PRED)
    assert set(AUX_PRESETS['D']) == set(AuxName)
    assert convert(AuxConfig(seed=3))[0] == convert(AuxConfig(seed=3))[0]
    # Questions of one set do not depend on which other sets are written.
    only_det = convert(AuxConfig(datasets=(AuxName.OBJ_DET,), seed=3))[0]
    assert only_det[AuxName.OBJ_DET] == convert(AuxConfig(seed=3))[0][AuxName.OBJ_DET]
    questions = {seed: [human(s) for s in convert(AuxConfig(seed=seed))[0][AuxName.SPA_REL]]
                 for seed in range(4)}
    assert len({tuple(q) for q in questions.values()}) > 1


def test_mixture_counts_follow_the_ratios():
    ratios = parse_ratios(['obj_det=0.5', 'obj_loc=2'],
                          (AuxName.OBJ_DET, AuxName.OBJ_LOC, AuxName.ACT_PRED))
    assert ratios == {AuxName.OBJ_DET: 0.5, AuxName.OBJ_LOC: 2.0, AuxName.ACT_PRED: 1.0}
    # 40 main samples: int(40 * ratio) requested of each set; a short set is used whole.
    picks = {name: mixture_picks(name, 40, size, ratios[name], seed=0) for name, size in
             ((AuxName.OBJ_DET, 100), (AuxName.OBJ_LOC, 100), (AuxName.ACT_PRED, 30))}
    assert {name: (requested, len(chosen)) for name, (requested, chosen) in picks.items()} == {
        AuxName.OBJ_DET: (20, 20), AuxName.OBJ_LOC: (80, 80), AuxName.ACT_PRED: (40, 30)}
    assert picks[AuxName.ACT_PRED][1] == set(range(30))
    assert all(chosen <= set(range(100)) for _, chosen in picks.values())
    again = mixture_picks(AuxName.OBJ_DET, 40, 100, 0.5, seed=0)[1]
    assert again == picks[AuxName.OBJ_DET][1]
    assert mixture_picks(AuxName.OBJ_DET, 40, 100, 0.5, seed=1)[1] != again
    assert mixture_picks(AuxName.OBJ_LOC, 40, 100, 0.5, seed=0)[1] != again
    assert mixture_picks(AuxName.OBJ_DET, 3, 10, 0.5, seed=0)[0] == 1  # int(1.5)
    with pytest.raises(ConfigError, match='not among'):
        parse_ratios(['tmp_rel=1'], tuple(ratios))
    with pytest.raises(ConfigError, match='NAME=RATIO'):
        parse_ratios(['obj_det'], tuple(ratios))
    with pytest.raises(ConfigError, match='>= 0'):
        parse_ratios(['obj_det=-1'], tuple(ratios))


def test_mixture_name_as_merge_dts_writes_it():
    # merge_dts: set names joined by '_', then the ratios joined by '_' straight after.
    assert mixture_name('D-inBC-text-multi', ['aux-obj_det', 'aux-obj_loc', 'aux-act_pred',
                                              'aux-fut_pred'], [1, 1, 1, 1], 'train-0d8k') == (
        'D-inBC-text-multi_aux-obj_det_aux-obj_loc_aux-act_pred_aux-fut_pred1_1_1_1'
        '-train-0d8k-front.json')
    assert mixture_name('inBC-text-multi', ['aux-obj_det'], [0.5], 'train') == \
        'inBC-text-multi_aux-obj_det0.5-train-front.json'
