"""LLaMA's SentencePiece `tokenizer.model` as the fast tokenizer of an imported LLaVA-1.5 model.

sentencepiece (+ protobuf) reads and checks the file and transformers' `LlamaTokenizer` converts
it; the result gets SentencePiece's own whitespace rule and LLaVA-1.5's `<image>` and `<pad>`,
so its ids are those LLaVA's `tokenizer_image_token` writes with the original tokenizer.
"""
from pathlib import Path
import shutil
import tempfile

import sentencepiece
from sentencepiece import sentencepiece_model_pb2
from tokenizers import normalizers
from transformers import LlamaTokenizer, PreTrainedTokenizerFast

from llara_policy.errors import ModelError
from llara_policy.model.loading import IMAGE_TOKEN

PAD_TOKEN = '<pad>'
SPACE = '\u2581'  # SentencePiece's whitespace marker


def read_sentencepiece(path: Path) -> sentencepiece_model_pb2.ModelProto:
    """Return the model in `path`; raise ModelError unless it is a LLaMA-style one.

    LLaMA's (and Vicuna's) model is a byte-fallback BPE without text normalization, with
    <unk>, <s> and </s>; the fast tokenizer below reproduces exactly that kind.
    """
    if not path.is_file():
        raise ModelError(f'tokenizer: {str(path)!r} is missing')
    try:
        processor = sentencepiece.SentencePieceProcessor(model_file=str(path))
    except (OSError, RuntimeError) as error:
        raise ModelError(f'tokenizer: {str(path)!r} is not a SentencePiece model: '
                         f'{error}') from error
    proto = sentencepiece_model_pb2.ModelProto.FromString(processor.serialized_model_proto())
    trainer, normalizer = proto.trainer_spec, proto.normalizer_spec
    problems = []
    if trainer.model_type != sentencepiece_model_pb2.TrainerSpec.BPE:
        kind = sentencepiece_model_pb2.TrainerSpec.ModelType.Name(trainer.model_type)
        problems.append(f'model type {kind} (need BPE)')
    if not trainer.byte_fallback:
        problems.append('no byte fallback')
    if normalizer.name != 'identity' or normalizer.remove_extra_whitespaces:
        problems.append(f'text normalization {normalizer.name!r} (need identity, spaces kept)')
    if min(processor.unk_id(), processor.bos_id(), processor.eos_id()) < 0:
        problems.append('no <unk>, <s> or </s> piece')
    if problems:
        raise ModelError(f'tokenizer: {str(path)!r} is not a LLaMA-style SentencePiece model: '
                         + '; '.join(problems))
    return proto


def llama_tokenizer(path: Path, model_max_length: int = 2048) -> PreTrainedTokenizerFast:
    """Convert the SentencePiece model in `path`; `<image>` and `<pad>` follow its pieces.

    Spaces are marked before every text segment, also after `<image>`: LLaVA tokenizes the
    text around each image separately, so the text after it starts with SentencePiece's
    prefix marker, and the released models were trained on those ids.
    """
    proto = read_sentencepiece(path)
    with tempfile.TemporaryDirectory() as staging:
        # tokenizer.model alone: a checkpoint's tokenizer_config.json describes LLaVA's slow
        # tokenizer, and a tokenizer.json next to it would be loaded instead of this file.
        shutil.copyfile(path, Path(staging) / 'tokenizer.model')
        converted = LlamaTokenizer.from_pretrained(staging, legacy=True)
    backend = converted.backend_tokenizer
    # SentencePiece's rule (llava-hf's tokenizer.json has the same): a dummy prefix on each
    # segment and every space a marker. LlamaTokenizer's Metaspace merges a leading space
    # into the prefix, which SentencePiece does not.
    prefix = [normalizers.Prepend(SPACE)] if proto.normalizer_spec.add_dummy_prefix else []
    backend.normalizer = normalizers.Sequence([*prefix, normalizers.Replace(' ', SPACE)])
    backend.pre_tokenizer = None
    trainer = proto.trainer_spec
    # A plain fast tokenizer keeps this backend when it is saved and loaded again;
    # LlamaTokenizer would rebuild its own pre-tokenizer from the vocabulary.
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, unk_token=proto.pieces[trainer.unk_id].piece,
        bos_token=proto.pieces[trainer.bos_id].piece, eos_token=proto.pieces[trainer.eos_id].piece,
        add_bos_token=True, add_eos_token=False, model_max_length=model_max_length,
        clean_up_tokenization_spaces=False, extra_special_tokens={'image_token': IMAGE_TOKEN})
    # <image> then <pad>, the ids llava-hf uses (32000, 32001 for LLaMA's vocabulary).
    tokenizer.add_special_tokens({'pad_token': PAD_TOKEN})
    if (tokenizer.convert_tokens_to_ids(IMAGE_TOKEN), tokenizer.pad_token_id) != (
            len(proto.pieces), len(proto.pieces) + 1):
        raise ModelError(f'tokenizer: {str(path)!r} already holds {IMAGE_TOKEN} or {PAD_TOKEN}')
    return tokenizer
