"""Sealed object: the byte layout of one AES-256-GCM object, its AAD, and the chunk envelope.

Layouts (docs/spec/sealed-object.md; integers big-endian)::

    sealed object   nonce (12) | key commitment (32) | ciphertext | tag (16)
    AAD             "OBAD" | u16 version = 1 | u8 object type | backup id (16) | object id (32)
    chunk plaintext u8 compression (0 = none, 1 = zstd) | payload

The AAD is never stored: both sides rebuild it from what they expect, so an object moved to
another backup, slot or type does not open. This module only splits, joins and encodes; sealing
and opening (``crypto.aead``) are done with the key, which ``formats`` never sees.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from formats._wire import Reader, Writer
from formats.errors import FormatError

__all__ = [
    "AAD_MAGIC",
    "AAD_SIZE",
    "BACKUP_ID_SIZE",
    "COMMITMENT_SIZE",
    "MAX_PLAINTEXT",
    "MAX_SEALED",
    "NONCE_SIZE",
    "OBJECT_ID_SIZE",
    "OVERHEAD",
    "TAG_SIZE",
    "VERSION",
    "ChunkPayload",
    "Compression",
    "ObjectType",
    "SealedObject",
    "aad",
    "compression_from_code",
    "decode_chunk_payload",
    "encode_chunk_payload",
    "join",
    "object_type_from_code",
    "split",
]

AAD_MAGIC = b"OBAD"
VERSION = 1
NONCE_SIZE = 12
COMMITMENT_SIZE = 32
TAG_SIZE = 16
#: Bytes a sealed object adds to its plaintext: nonce, commitment and tag.
OVERHEAD = NONCE_SIZE + COMMITMENT_SIZE + TAG_SIZE
BACKUP_ID_SIZE = 16
OBJECT_ID_SIZE = 32
AAD_SIZE = len(AAD_MAGIC) + 2 + 1 + BACKUP_ID_SIZE + OBJECT_ID_SIZE
#: Largest plaintext of one sealed object (16 MiB): a chunk is at most 8 MiB plus its envelope
#: byte, and a pack index of the most entries a pack may hold fits too.
MAX_PLAINTEXT = 1 << 24
MAX_SEALED = MAX_PLAINTEXT + OVERHEAD


class ObjectType(enum.IntEnum):
    """What a sealed object holds; its code is bound into the AAD. Code 0 is never valid."""

    DATA_CHUNK = 1  # a chunk envelope, sealed under the backup's data key
    TREE_NODE = 2  # a metadata tree node, sealed under the backup's metadata key
    PACK_INDEX = 3  # the index at the end of a pack, sealed under the pack's key
    CHUNK_INDEX = 4  # a chunk-index segment, sealed under the dedup-derived chunk-index key


class Compression(enum.IntEnum):
    """How the payload of a chunk envelope is compressed."""

    NONE = 0
    ZSTD = 1  # one zstd frame; decompressed by the engine with a size bound


def object_type_from_code(code: int, what: str) -> ObjectType:
    try:
        return ObjectType(code)
    except ValueError:
        raise FormatError(f"{what} names unknown object type {code}") from None


def compression_from_code(code: int, what: str) -> Compression:
    try:
        return Compression(code)
    except ValueError:
        raise FormatError(f"{what} names unknown compression {code}") from None


def aad(obj_type: ObjectType, backup_id: bytes, object_id: bytes) -> bytes:
    """``"OBAD" || u16 1 || u8 type || backup id || object id``: 55 bytes, never stored."""
    return (
        Writer()
        .header(AAD_MAGIC, VERSION)
        .u8(ObjectType(obj_type))
        .fixed(backup_id, BACKUP_ID_SIZE)
        .fixed(object_id, OBJECT_ID_SIZE)
        .getvalue()
    )


@dataclass(frozen=True)
class SealedObject:
    """The four fields of a sealed object; ``ciphertext`` is as long as the plaintext."""

    nonce: bytes
    commitment: bytes
    ciphertext: bytes
    tag: bytes


def split(data: bytes, what: str = "sealed object") -> SealedObject:
    """Split ``data`` into its fields; shorter than 60 or longer than ``MAX_SEALED`` is an error."""
    if len(data) < OVERHEAD:
        raise FormatError(f"{what} is corrupt: {len(data)} bytes is shorter than the {OVERHEAD}-byte minimum")
    if len(data) > MAX_SEALED:
        raise FormatError(f"{what} is corrupt: {len(data)} bytes exceeds the limit of {MAX_SEALED}")
    r = Reader(data, what)
    nonce = r.take(NONCE_SIZE)
    commitment = r.take(COMMITMENT_SIZE)
    ciphertext = r.take(r.remaining - TAG_SIZE)
    tag = r.take(TAG_SIZE)
    r.finish()
    return SealedObject(nonce=nonce, commitment=commitment, ciphertext=ciphertext, tag=tag)


def join(obj: SealedObject) -> bytes:
    """The bytes of ``obj``; every field is checked against its size (``ValueError``)."""
    if len(obj.ciphertext) > MAX_PLAINTEXT:
        raise ValueError(f"a sealed object holds at most {MAX_PLAINTEXT} bytes of ciphertext")
    return (
        Writer()
        .fixed(obj.nonce, NONCE_SIZE)
        .fixed(obj.commitment, COMMITMENT_SIZE)
        .raw(obj.ciphertext)
        .fixed(obj.tag, TAG_SIZE)
        .getvalue()
    )


@dataclass(frozen=True)
class ChunkPayload:
    """A decoded chunk plaintext: how ``payload`` is compressed, and the payload itself."""

    compression: Compression
    payload: bytes


def encode_chunk_payload(chunk: ChunkPayload) -> bytes:
    """``u8 compression || payload``; at most ``MAX_PLAINTEXT`` bytes in all (``ValueError``)."""
    if 1 + len(chunk.payload) > MAX_PLAINTEXT:
        raise ValueError(f"a chunk plaintext holds at most {MAX_PLAINTEXT} bytes")
    return Writer().u8(Compression(chunk.compression)).raw(chunk.payload).getvalue()


def decode_chunk_payload(data: bytes, what: str = "chunk") -> ChunkPayload:
    """Decode an opened chunk; an unknown compression code is a :class:`FormatError`."""
    if len(data) > MAX_PLAINTEXT:
        raise FormatError(f"{what} is corrupt: {len(data)} bytes exceeds the limit of {MAX_PLAINTEXT}")
    r = Reader(data, what)
    compression = compression_from_code(r.u8(), what)
    payload = r.take(r.remaining)
    r.finish()
    return ChunkPayload(compression=compression, payload=payload)
