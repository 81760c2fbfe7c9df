"""LLaMA SentencePiece conversion: SentencePiece's own ids, LLaVA's prompt ids, clear errors.

The reference is sentencepiece itself (`SentencePieceProcessor.encode` on a model trained by
`SentencePieceTrainer` here) and LLaVA's documented `tokenizer_image_token`; the tokenizer is
checked as it is loaded back from disk, the way `VlmPolicy` loads it.
"""
import random

from original_layout import llava_prompt_ids, train_sentencepiece
import pytest
import sentencepiece
from transformers import AutoTokenizer

from llara_policy.errors import ModelError
from llara_policy.model import tiny_models
from llara_policy.model.llama_tokenizer import llama_tokenizer
from llara_policy.text import prompting
from llara_policy.types import Effector

# Texts the corpus lacks: leading, repeated and trailing spaces, tabs, bytes outside the
# vocabulary (byte fallback), digit runs, a '<' that is not a tag.
EDGE_TEXTS = ('', ' ', '  two leading', 'trailing  ', 'a  b   c', '\tTab\t', '\n\nnewlines\n',
              'Stra\u00dfe \u2603 \u65e5\u672c', '1234567890', 'a <b not a tag', '\u2581marker')


@pytest.fixture(scope='module')
def model_file(tmp_path_factory):
    return train_sentencepiece(tmp_path_factory.mktemp('spm') / 'tokenizer.model')


@pytest.fixture(scope='module')
def reference(model_file):
    return sentencepiece.SentencePieceProcessor(model_file=str(model_file))


@pytest.fixture(scope='module')
def tokenizer(model_file, tmp_path_factory):
    """The converted tokenizer as saved and loaded again (what an imported model holds)."""
    directory = tmp_path_factory.mktemp('saved')
    llama_tokenizer(model_file).save_pretrained(directory)
    return AutoTokenizer.from_pretrained(directory)


def texts() -> list[str]:
    """Prompts and answers as the policy writes them, the edge cases, random strings."""
    rng = random.Random(0)
    found = [text.replace('</s>', '') for text in tiny_models.template_corpus(seed=1)]
    found += [prompting.format_answer([tiny_models.random_step(rng, number=1)])
              for _ in range(20)]
    alphabet = 'ab <>/()0123.,:\n\t\u00e9\u2603_'
    found += [''.join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
              for _ in range(200)]
    return [*found, *EDGE_TEXTS]


def test_ids_are_sentencepieces_own(tokenizer, reference):
    mismatches = [text for text in texts()
                  if tokenizer(text).input_ids != [reference.bos_id(), *reference.encode(text)]]
    assert mismatches == []


def test_decoding_is_sentencepieces_own(tokenizer, reference):
    for text in texts():
        ids = reference.encode(text)
        assert tokenizer.decode(ids) == reference.decode(ids)


def test_prompt_ids_are_those_of_llava_tokenizer_image_token(tokenizer, reference):
    image = reference.get_piece_size()
    for history in ((), (tiny_models.random_step(random.Random(2)),)):
        turn = prompting.build_user_turn('Put the <p>red block</p> into the <p>pan</p>.',
                                         Effector.SUCTION, history=history)
        prompt = prompting.with_image_token(prompting.generation_prompt(turn), '<image>')
        assert prompt.count('<image>') == 1
        assert tokenizer(prompt).input_ids == llava_prompt_ids(reference, prompt, image)


def test_image_and_pad_follow_the_pieces_as_in_llava_hf(tokenizer, reference):
    pieces = reference.get_piece_size()
    assert tokenizer.convert_tokens_to_ids('<image>') == pieces
    assert tokenizer.pad_token_id == pieces + 1 and len(tokenizer) == pieces + 2
    assert (tokenizer.unk_token_id, tokenizer.bos_token_id, tokenizer.eos_token_id) == (
        reference.unk_id(), reference.bos_id(), reference.eos_id())
    assert tokenizer.image_token == '<image>'


def test_a_text_token_that_is_special_in_llava_stays_special(tokenizer, reference):
    """LLaVA's tokenizer (transformers' LlamaTokenizer) reads '</s>' in text as EOS."""
    assert tokenizer('done</s>').input_ids == [
        reference.bos_id(), *reference.encode('done'), reference.eos_id()]


@pytest.mark.parametrize('options, message', [
    ({'model_type': 'unigram'}, 'model type UNIGRAM'),
    ({'byte_fallback': False}, 'no byte fallback'),
    ({'normalization_rule_name': 'nmt_nfkc'}, 'text normalization'),
    ({'remove_extra_whitespaces': True}, 'text normalization'),
])
def test_other_kinds_of_sentencepiece_model_are_refused(tmp_path, options, message):
    model_file = train_sentencepiece(tmp_path / 'tokenizer.model', **options)
    with pytest.raises(ModelError, match=message) as error:
        llama_tokenizer(model_file)
    assert str(model_file) in str(error.value)


@pytest.mark.parametrize('content', [None, b'', b'\x0a\xff', b'not a model at all'])
def test_missing_or_corrupt_model_files_name_the_file(tmp_path, content):
    model_file = tmp_path / 'tokenizer.model'
    if content is not None:
        model_file.write_bytes(content)
    with pytest.raises(ModelError) as error:
        llama_tokenizer(model_file)
    assert str(model_file) in str(error.value)
