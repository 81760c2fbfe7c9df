"""The tiny offline LLaVA factory: complete directories, template vocabulary, determinism."""
import torch
from transformers import AutoModelForImageTextToText, AutoProcessor

from llara_policy.model import tiny_models
from llara_policy.text import prompting
from llara_policy.types import Effector


def test_saved_directory_is_a_complete_hugging_face_model(tmp_path):
    directory = tiny_models.save_tiny_llava(tmp_path)
    names = {path.name for path in directory.iterdir()}
    assert {'config.json', 'model.safetensors', 'processor_config.json', 'tokenizer.json',
            'tokenizer_config.json', 'chat_template.jinja'} <= names
    processor = AutoProcessor.from_pretrained(directory)
    model = AutoModelForImageTextToText.from_pretrained(directory)
    assert type(model).__name__ == 'LlavaForConditionalGeneration'
    assert processor.image_processor.do_pad
    assert model.config.image_token_id == processor.tokenizer.convert_tokens_to_ids('<image>')


def test_tokenizer_writes_prompts_and_answers_compactly_and_digit_by_digit():
    tokenizer = tiny_models.build_tokenizer()
    turn = prompting.build_user_turn('Put the <p>red block</p> into the <p>bowl</p>.',
                                     Effector.SUCTION)
    prompt_ids = tokenizer(prompting.generation_prompt(turn)).input_ids
    assert tokenizer.unk_token_id not in prompt_ids
    assert len(prompt_ids) < 250  # about a word per token
    answer = 'Step 1: Pick up the <p>x</p> at <b>(0.320,  0.547)</b>'
    tokens = tokenizer.convert_ids_to_tokens(tokenizer(answer).input_ids)
    assert [t for t in tokens if t.isdigit()] == list('1' + '0320' + '0547')
    assert tokenizer.decode(tokenizer(answer, add_special_tokens=False).input_ids) == answer


def test_weights_depend_on_the_seed_only():
    first, _ = tiny_models.build_tiny_llava()
    again, _ = tiny_models.build_tiny_llava()
    other, _ = tiny_models.build_tiny_llava(tiny_models.with_seed(tiny_models.TINY, 1))
    state, same, different = first.state_dict(), again.state_dict(), other.state_dict()
    assert all(torch.equal(state[k], same[k]) for k in state)
    assert not all(torch.equal(state[k], different[k]) for k in state)
