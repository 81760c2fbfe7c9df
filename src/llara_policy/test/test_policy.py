"""VlmPolicy preprocessing and prompts, ScriptedPolicy, and the shared result type."""
import numpy as np
from PIL import Image
import pytest
import torch
from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

from llara_policy.errors import ParseError, ValueRangeError
from llara_policy.geometry.preprocessing import CLIP_MEAN_RGB, CLIP_STD_RGB
from llara_policy.model import tiny_models
from llara_policy.model.config import PolicyConfig
from llara_policy.model.loading import LoadedModel
from llara_policy.model.policy import PolicyResult, ScriptedPolicy, VlmPolicy
from llara_policy.text import prompting
from llara_policy.text.prompt_pools import ACTION_PROMPTS
from llara_policy.types import ActionStep, Effector, ImagePoint, Observation

TASK = 'Put the <p>red block</p> into the <p>bowl</p>.'
SPEC = tiny_models.TinySpec(image_size_px=42)


@pytest.fixture(scope='module')
def tiny():
    return tiny_models.build_tiny_llava(SPEC)


def make_policy(tiny, **config) -> VlmPolicy:
    loaded = LoadedModel(*tiny, torch.device('cpu'), torch.float32, 'none', 'float32: test')
    return VlmPolicy(PolicyConfig(**config), loaded)


def frame(height=128, width=256, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def llava_expand2square(rgb: np.ndarray, mean) -> Image.Image:
    """LLaVA-1.5's mm_utils.expand2square, written out with PIL as LLaVA does."""
    image = Image.fromarray(rgb)
    width, height = image.size
    size = max(width, height)
    square = Image.new(image.mode, (size, size), tuple(int(m * 255) for m in mean))
    square.paste(image, ((size - width) // 2, (size - height) // 2))
    return square


@pytest.mark.parametrize('shape', [(128, 256), (256, 128), (100, 100), (37, 90)])
def test_frames_are_preprocessed_as_llava_1_5_pad(tiny, shape):
    policy = make_policy(tiny)
    rgb = frame(*shape)
    inputs = policy.encode(Observation(rgb), TASK)
    # LLaVA: expand2square, then CLIP's own preprocessing (shortest edge, crop, normalise).
    clip = CLIPImageProcessorPil(
        size={'shortest_edge': SPEC.image_size_px},
        crop_size={'height': SPEC.image_size_px, 'width': SPEC.image_size_px},
        image_mean=list(CLIP_MEAN_RGB), image_std=list(CLIP_STD_RGB))
    expected = clip(llava_expand2square(rgb, CLIP_MEAN_RGB),
                    return_tensors='pt')['pixel_values']
    assert torch.allclose(inputs['pixel_values'], expected, atol=1e-6)


def test_prompt_is_prompting_vicuna_text_and_chat_template_agrees(tiny):
    history = (ActionStep(ImagePoint(0.1, 0.2), ImagePoint(0.3, 0.4), -5, 'bowl'),)
    vicuna = make_policy(tiny)
    chat = make_policy(tiny, prompt_format='chat_template')
    turn = prompting.build_user_turn(TASK, Effector.SPATULA, history=history)
    expected = prompting.with_image_token(prompting.generation_prompt(turn), '<image>')
    assert vicuna.prompt_text(Effector.SPATULA, TASK, history) == expected
    assert chat.prompt_text(Effector.SPATULA, TASK, history) == expected
    assert vicuna.answer_lead == chat.answer_lead == ' '


def test_user_prompt_ids_pick_fixed_random_or_no_sentence(tiny):
    assert ACTION_PROMPTS[3] in make_policy(tiny, user_prompt_id=3).prompt_text(
        Effector.SUCTION, TASK)
    assert not any(p in make_policy(tiny).prompt_text(Effector.SUCTION, TASK)
                   for p in ACTION_PROMPTS)
    policy = make_policy(tiny, user_prompt_id=-1, seed=7)
    first = [policy.prompt_text(Effector.SUCTION, TASK) for _ in range(4)]
    policy.reset()
    assert [policy.prompt_text(Effector.SUCTION, TASK) for _ in range(4)] == first


def test_select_action_reports_plan_text_and_timings(tiny):
    result = make_policy(tiny, max_answer_steps=2).select_action(Observation(frame()), TASK)
    assert isinstance(result, PolicyResult)
    assert 1 <= len(result.steps) <= 2
    assert prompting.parse_answer(result.raw_text).steps == result.steps
    timings = result.timings
    assert timings.forward_passes >= 1 and timings.new_tokens >= timings.forward_passes
    assert timings.total_ms >= timings.prefill_ms + timings.decode_ms > 0


def test_greedy_answers_that_do_not_parse_raise_with_the_text(tiny):
    policy = make_policy(tiny, decoding='greedy', max_new_tokens=8)
    with pytest.raises(ParseError) as raised:
        policy.select_action(Observation(frame()), TASK)
    assert raised.value.text


@pytest.mark.parametrize('rgb', [frame().astype(np.float32), frame()[..., :2], frame()[0]])
def test_frames_must_be_rgb_uint8(tiny, rgb):
    with pytest.raises(ValueRangeError, match='uint8'):
        make_policy(tiny).encode(Observation(rgb), TASK)


def test_scripted_policy_answers_like_a_perfect_model():
    exact = ActionStep(ImagePoint(0.31234, 0.5), ImagePoint(0.9, 0.0), 30, 'red block',
                       Effector.SPATULA)
    calls = []

    def oracle(observation, instruction, history):
        calls.append((instruction, len(history)))
        return exact

    policy = ScriptedPolicy(oracle)
    policy.reset()
    history = (exact,)
    result = policy.select_action(Observation(frame(), Effector.SPATULA), TASK, history)
    assert calls == [(TASK, 1)]
    assert result.raw_text == ('Step 2: Sweep the <p>red block</p> at <b>(0.312,  0.500)</b>, '
                               'rotate <r>[30]</r> degrees, and stop at <b>(0.900, 0.000)</b>.')
    (step,) = result.steps
    assert step.pick == ImagePoint(0.312, 0.5) and step.step_number == 2
    assert step.effector is Effector.SPATULA
    assert result.timings.forward_passes == 0
