"""Greedy and template-aware decoding: parity with transformers, equal actions, always parses."""
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
import numpy as np
import pytest
import torch

from llara_policy.model import tiny_models
from llara_policy.model.config import PolicyConfig
from llara_policy.model.decoding import _Session, greedy_decode
from llara_policy.model.loading import LoadedModel
from llara_policy.model.policy import VlmPolicy
from llara_policy.text import prompting
from llara_policy.types import ActionStep, Effector, ImagePoint, Observation

TASK = 'Put the <p>red letter R</p> into the <p>green bowl</p>.'


def frame(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (128, 256, 3), dtype=np.uint8)


def policy_over(model, processor, **config) -> VlmPolicy:
    loaded = LoadedModel(model, processor, torch.device('cpu'), torch.float32, 'none',
                         'float32: test')
    return VlmPolicy(PolicyConfig(**config), loaded)


def step(pick, place, rotation, name, effector=Effector.SUCTION, number=1) -> ActionStep:
    return ActionStep(ImagePoint(*pick), ImagePoint(*place), rotation, name, effector, number)


# Answers covering both verbs, history (numbering from 2 and 3), several steps, negative,
# zero and three-digit rotations, 1.000 and 0.000 coordinates.
SAMPLES = [
    tiny_models.AnswerSample(Observation(frame(0)), TASK, (), prompting.format_answer([
        step((0.32, 0.547), (0.543, 0.836), -116, 'red letter R'),
        step((0.5, 0.25), (1.0, 0.0), 0, 'green bowl', number=2)])),
    tiny_models.AnswerSample(
        Observation(frame(1), Effector.SPATULA), 'Sweep the <p>star</p> into the <p>frame</p>.',
        (step((0.1, 0.2), (0.3, 0.4), 5, '', Effector.SPATULA),),
        prompting.format_answer([step((0.125, 0.75), (0.9, 0.6), 45, 'small star',
                                      Effector.SPATULA, 2)])),
    tiny_models.AnswerSample(
        Observation(frame(2)), 'Rotate the <p>heart</p> 120 degrees.',
        (step((0.1, 0.2), (0.3, 0.4), 5, ''), step((0.2, 0.3), (0.4, 0.5), -7, '')),
        prompting.format_answer([step((0.7, 0.45), (0.7, 0.45), 240, 'heart', number=3)])),
]


@pytest.fixture(scope='module')
def fitted():
    """A tiny model briefly overfit so that its greedy answers follow the template."""
    model, processor = tiny_models.build_tiny_llava()
    policy = policy_over(model, processor, decoding='greedy')
    loss = tiny_models.overfit(policy, SAMPLES)
    assert loss < 0.02, f'tiny model did not fit its answers (loss {loss:.3f})'
    return model, processor


def test_greedy_decode_matches_transformers_generate():
    model, processor = tiny_models.build_tiny_llava(tiny_models.with_seed(tiny_models.TINY, 3))
    policy = policy_over(model, processor, decoding='greedy')
    inputs = policy.encode(Observation(frame(5)), TASK)
    ours = greedy_decode(model, inputs, policy.eos_ids, max_new_tokens=30)
    prompt_length = inputs['input_ids'].shape[1]
    theirs = model.generate(**inputs, do_sample=False, max_new_tokens=30)[0, prompt_length:]
    assert list(ours.token_ids) == [t for t in theirs.tolist() if t not in policy.eos_ids]
    assert ours.forward_passes == len(theirs)


def test_feeding_several_tokens_per_pass_equals_one_at_a_time():
    model, processor = tiny_models.build_tiny_llava()
    policy = policy_over(model, processor)
    inputs = policy.encode(Observation(frame(4)), TASK)
    tokens = processor.tokenizer(' Step 1: Pick up the <p>red', add_special_tokens=False)
    chunked, single = _Session(model, inputs), _Session(model, inputs)
    chunked.feed([], keep=1)
    together = chunked.feed(tokens.input_ids, keep=len(tokens.input_ids))
    single.feed([], keep=1)
    apart = torch.cat([single.feed([token], keep=1) for token in tokens.input_ids])
    assert torch.allclose(together, apart, atol=1e-5)
    assert chunked.passes == 2 and single.passes == 1 + len(tokens.input_ids)


@pytest.mark.parametrize('index', range(len(SAMPLES)))
def test_template_decoding_writes_what_greedy_writes_when_greedy_follows_the_template(
        fitted, index):
    sample = SAMPLES[index]
    greedy = policy_over(*fitted, decoding='greedy')
    template = policy_over(*fitted, decoding='template')
    expected = greedy.select_action(sample.observation, sample.instruction, sample.history)
    result = template.select_action(sample.observation, sample.instruction, sample.history)
    assert expected.raw_text == sample.answer  # the model learnt the template
    assert result.steps == expected.steps
    assert result.raw_text == expected.raw_text
    assert result.timings.new_tokens == expected.timings.new_tokens
    assert 2 * result.timings.forward_passes <= expected.timings.forward_passes


def test_template_decoding_stops_after_max_answer_steps(fitted):
    sample = SAMPLES[0]  # the model answers two steps; allow one
    policy = policy_over(*fitted, decoding='template', max_answer_steps=1)
    result = policy.select_action(sample.observation, sample.instruction, sample.history)
    assert result.steps == prompting.parse_answer(sample.answer).steps[:1]


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), effector=st.sampled_from(Effector),
       history_length=st.integers(0, 3), spacing=st.sampled_from(('released', 'notebook')))
def test_every_template_answer_of_a_random_model_parses(seed, effector, history_length,
                                                        spacing):
    spec = tiny_models.with_seed(tiny_models.TINY, seed)
    model, processor = _random_models(spec)
    policy = policy_over(model, processor, decoding='template', max_answer_steps=2,
                         action_spacing=spacing)
    history = tuple(step((0.1, 0.2), (0.3, 0.4), 5, '', effector, k + 1)
                    for k in range(history_length))
    result = policy.select_action(Observation(frame(seed), effector), TASK, history)
    assert 1 <= len(result.steps) <= 2
    assert not result.truncated
    assert [s.step_number for s in result.steps] == list(
        range(history_length + 1, history_length + 1 + len(result.steps)))
    assert all(s.effector is effector for s in result.steps)
    assert prompting.parse_answer(result.raw_text).steps == result.steps


_CACHE = {}


def _random_models(spec):
    """Random models keyed by seed; hypothesis revisits seeds while shrinking."""
    if spec.seed not in _CACHE:
        _CACHE[spec.seed] = tiny_models.build_tiny_llava(spec)
    return _CACHE[spec.seed]
