"""Missed-attempt samples: the prompt the runtime would show after missed picks, and the answer.

Sources are the fixture episode's inBC samples (conversion_fixtures: two steps with known
points); the history lines are read back with a regex typed from the spec's step sentence, and
the expected prompt is built by the runtime's prompting.build_user_turn, not by the code under
test.
"""
import math
import re

import conversion_fixtures as fx
import pytest

from llara_policy.errors import ConfigError
from llara_policy.text.prompting import build_user_turn
from llara_policy.types import ActionStep, Effector, ImagePoint
from llara_training.conversations import BehaviourCloning, ConversationConfig
from llara_training.retries import missed_attempt_samples

HISTORY_LINE = re.compile(
    r'Step (\d+): Pick up the object at <b>\((\d\.\d{3}),  (\d\.\d{3})\)</b>, rotate '
    r'<r>\[(-?\d+)\]</r> degrees, and drop it at <b>\((\d\.\d{3}), (\d\.\d{3})\)</b>\.')


@pytest.fixture(scope='module')
def samples():
    writer = BehaviourCloning(ConversationConfig.from_format('inBC'))
    return [sample.to_json() for sample in writer.samples(fx.episode())]


def turns(sample: dict) -> tuple[str, str]:
    human, gpt = sample['conversations']
    return human['value'], gpt['value']


def rounded(point: ImagePoint) -> ImagePoint:
    return ImagePoint(round(point.x_norm, 3), round(point.y_norm, 3))


def renumbered(answer: str, shift: int) -> str:
    return re.sub(r'Step (\d+):', lambda match: f'Step {int(match[1]) + shift}:', answer)


def attempts_of(question: str) -> list[tuple]:
    return [(int(k), ImagePoint(float(px), float(py)), int(r), ImagePoint(float(qx), float(qy)))
            for k, px, py, r, qx, qy in HISTORY_LINE.findall(question)]


def test_each_sample_is_the_runtime_prompt_after_missed_picks_of_the_demonstrated_step(samples):
    steps = fx.steps()
    written = missed_attempt_samples(samples, 20, seed=3)
    assert len(written) == 40
    for sample in written:
        source_index = int(sample['id'].split('_miss')[0].rsplit('_', 1)[1])
        source, step = samples[source_index], steps[source_index]
        assert sample['image'] == source['image']
        question, answer = turns(sample)
        history = attempts_of(question)
        before, missed = history[:source_index], history[source_index:]
        assert [k for k, *_ in history] == list(range(1, len(history) + 1))
        assert 1 <= len(missed) <= 5
        for _, pick, rotation, place in missed:
            distance = math.dist((pick.x_norm, pick.y_norm), (step.pick.x_norm, step.pick.y_norm))
            assert 0.05 - 1e-3 <= distance <= 0.15 + 1e-3
            assert abs(place.x_norm - step.place.x_norm) <= 0.03 + 1e-3
            assert abs(place.y_norm - step.place.y_norm) <= 0.03 + 1e-3
            assert rotation == step.rotation_cw_deg
        # The earlier steps stay in the history as the demonstration wrote them.
        assert [(pick, place) for _, pick, _, place in before] == [
            (rounded(s.pick), rounded(s.place)) for s in steps[:source_index]]
        shown = [*steps[:source_index], *(ActionStep(pick, place, rotation, 'x', Effector.SUCTION)
                                          for _, pick, rotation, place in missed)]
        task = re.search('<task>(.*)</task>', turns(source)[0])[1]
        expected = build_user_turn(task, Effector.SUCTION, history=shown)
        # The history's points are rounded to 3 decimals in the text: compare the texts.
        assert question == expected
        # The answer: the demonstrated remaining steps, numbered after the missed attempts.
        _, original = turns(source)
        assert answer == renumbered(original, len(missed))


def test_the_draws_are_seeded_and_cover_the_ratio(samples):
    assert len(missed_attempt_samples(samples, 3, seed=1)) == 6
    first = missed_attempt_samples(samples, 2.5, seed=1)
    assert 4 <= len(first) <= 6 and len({s['id'] for s in first}) == len(first)
    renamed = [{**s, 'id': f"{s['id']}-{n}"} for n in range(200) for s in samples]
    many = missed_attempt_samples(renamed, 0.5, seed=1)  # the fraction, on average
    assert 0.4 < len(many) / 400 < 0.6
    assert missed_attempt_samples(samples, 2.5, seed=1) == first
    assert missed_attempt_samples(samples, 2.5, seed=2) != first
    assert missed_attempt_samples(samples, 0, seed=1) == []
    # A sample's draws depend on the seed and its own id only, not on the other samples.
    alone = missed_attempt_samples(samples[:1], 3, seed=1)
    together = missed_attempt_samples(samples, 3, seed=1)
    for sample in alone:
        twin = next(s for s in together if s['id'] == sample['id'])
        assert twin == sample
    counts = [len(attempts_of(turns(s)[0]))
              for s in missed_attempt_samples(samples[:1], 50, seed=0)]
    assert set(counts) == {1, 2, 3, 4, 5}


def test_bad_input_is_refused_naming_it(samples):
    with pytest.raises(ConfigError, match='ratio'):
        missed_attempt_samples(samples, -1, seed=0)
    broken = {**samples[0], 'id': 'bad-7',
              'conversations': [samples[0]['conversations'][0],
                                {'from': 'gpt', 'value': 'no step here'}]}
    with pytest.raises(ConfigError, match='bad-7'):
        missed_attempt_samples([broken], 1, seed=0)
    with pytest.raises(ConfigError, match='with an id'):
        missed_attempt_samples([{'image': samples[0]['image']}], 1, seed=0)
