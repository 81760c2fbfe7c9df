"""Read and write SentencePiece `tokenizer.model` files without sentencepiece or protobuf.

LLaVA/LLaRA releases ship LLaMA's tokenizer only as a SentencePiece model (a protobuf
`ModelProto`). Importing them needs its pieces (text, score, type) and trainer flags, which is
a few fields of the protobuf wire format; tests write tiny files of the same format. Field
numbers are those of sentencepiece's `sentencepiece_model.proto`.
"""
from dataclasses import dataclass
import enum
from pathlib import Path
import struct

from llara_policy.errors import ModelError

# ModelProto: 1 pieces, 2 trainer_spec, 3 normalizer_spec. SentencePiece: 1 piece, 2 score,
# 3 type. TrainerSpec: 3 model_type, 4 vocab_size, 25 split_digits, 35 byte_fallback,
# 40-43 unk/bos/eos/pad ids. NormalizerSpec: 1 name, 3 add_dummy_prefix,
# 4 remove_extra_whitespaces, 5 escape_whitespaces.
_VARINT, _FIXED64, _BYTES, _FIXED32 = 0, 1, 2, 5


class PieceType(enum.IntEnum):
    """SentencePiece.Type."""

    NORMAL = 1
    UNKNOWN = 2
    CONTROL = 3
    USER_DEFINED = 4
    UNUSED = 5
    BYTE = 6


class ModelType(enum.IntEnum):
    """TrainerSpec.ModelType."""

    UNIGRAM = 1
    BPE = 2
    WORD = 3
    CHAR = 4


@dataclass(frozen=True)
class Piece:
    """One vocabulary entry; its id is its index in the model."""

    text: str
    score: float
    kind: PieceType = PieceType.NORMAL


@dataclass(frozen=True)
class SentencePieceModel:
    """What a tokenizer converter needs from a SentencePiece model."""

    pieces: tuple[Piece, ...]
    model_type: ModelType = ModelType.UNIGRAM
    byte_fallback: bool = False
    split_digits: bool = False
    add_dummy_prefix: bool = True
    unk_id: int = 0
    bos_id: int = 1
    eos_id: int = 2
    pad_id: int = -1


def _varint(data: bytes, position: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        if position >= len(data):
            raise ValueError('truncated varint')
        byte = data[position]
        position += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, position


def _fields(data: bytes):
    """Yield (field number, wire type, value) of a serialized protobuf message."""
    position = 0
    while position < len(data):
        key, position = _varint(data, position)
        number, wire = key >> 3, key & 7
        if wire == _VARINT:
            value, position = _varint(data, position)
        elif wire == _BYTES:
            length, position = _varint(data, position)
            value = data[position:position + length]
            if len(value) != length:
                raise ValueError('truncated field')
            position += length
        elif wire == _FIXED32:
            value, position = data[position:position + 4], position + 4
        elif wire == _FIXED64:
            value, position = data[position:position + 8], position + 8
        else:
            raise ValueError(f'unsupported wire type {wire}')
        yield number, wire, value


def _signed32(value: int) -> int:
    """int32 fields are encoded as 64-bit two's complement varints."""
    return value - (1 << 64) if value >= 1 << 63 else value


def read_model(path) -> SentencePieceModel:
    """Parse a `tokenizer.model` file; ModelError names the file if it is not one."""
    path = Path(path)
    try:
        data = path.read_bytes()
        pieces, trainer, normalizer = [], {}, {}
        for number, wire, value in _fields(data):
            if number == 1 and wire == _BYTES:
                fields = {n: v for n, _, v in _fields(value)}
                score = struct.unpack('<f', fields[2])[0] if 2 in fields else 0.0
                pieces.append(Piece(fields[1].decode('utf-8'), score,
                                    PieceType(fields.get(3, PieceType.NORMAL))))
            elif number == 2 and wire == _BYTES:
                trainer = {n: v for n, w, v in _fields(value) if w == _VARINT}
            elif number == 3 and wire == _BYTES:
                normalizer = {n: v for n, w, v in _fields(value) if w == _VARINT}
    except (OSError, ValueError, KeyError, UnicodeDecodeError, struct.error) as error:
        raise ModelError(f'{str(path)!r} is not a readable SentencePiece model: {error}') \
            from error
    if not pieces:
        raise ModelError(f'{str(path)!r} holds no SentencePiece vocabulary')
    return SentencePieceModel(
        tuple(pieces), ModelType(trainer.get(3, ModelType.UNIGRAM)),
        bool(trainer.get(35, 0)), bool(trainer.get(25, 0)), bool(normalizer.get(3, 1)),
        *(_signed32(trainer.get(n, default)) for n, default in
          ((40, 0), (41, 1), (42, 2), (43, (1 << 64) - 1))))


def _key(number: int, wire: int) -> bytes:
    return _encode_varint(number << 3 | wire)


def _encode_varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # negative int32 -> two's complement
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _message(number: int, payload: bytes) -> bytes:
    return _key(number, _BYTES) + _encode_varint(len(payload)) + payload


def _varint_field(number: int, value: int) -> bytes:
    return _key(number, _VARINT) + _encode_varint(int(value))


def write_model(path, model: SentencePieceModel) -> None:
    """Write `model` as a `tokenizer.model` file (the fields `read_model` reads)."""
    body = bytearray()
    for piece in model.pieces:
        text = piece.text.encode('utf-8')
        entry = (_key(1, _BYTES) + _encode_varint(len(text)) + text
                 + _key(2, _FIXED32) + struct.pack('<f', piece.score)
                 + _varint_field(3, piece.kind))
        body += _message(1, entry)
    trainer = (_varint_field(3, model.model_type) + _varint_field(4, len(model.pieces))
               + _varint_field(25, model.split_digits) + _varint_field(35, model.byte_fallback)
               + _varint_field(40, model.unk_id) + _varint_field(41, model.bos_id)
               + _varint_field(42, model.eos_id) + _varint_field(43, model.pad_id))
    body += _message(2, trainer)
    name = b'identity'
    normalizer = (_key(1, _BYTES) + _encode_varint(len(name)) + name
                  + _varint_field(3, model.add_dummy_prefix) + _varint_field(4, False)
                  + _varint_field(5, True))
    body += _message(3, normalizer)
    Path(path).write_bytes(bytes(body))
