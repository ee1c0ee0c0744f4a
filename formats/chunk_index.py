"""Chunk index (``OBCI``): which chunks a backup stored and where, for the account's hosts only.

Hosts deduplicate against every chunk the account stored, but cannot open packs (they hold no
data key). Each backup therefore uploads one chunk index, listed in its manifest (the manifest's
``chunk index`` field): the chunks the backup *added*, the pack holding each, and the sources
(backup id, data-key commitment, wrapped data-key records) those packs were sealed under. It is
sealed under a key derived from the dedup secret, which every host of the account holds and the
server does not (``HKDF(dedup secret, "opsbackup/v1/chunk-index")``, object type CHUNK_INDEX).

Stored object layout (docs/spec/chunk-index.md; integers big-endian)::

    "OBCI" | u16 version = 1 | backup id (16) | u32 segment count K (>= 1)
    | K x bytes32 sealed segment
        sealed under the chunk-index key, object type 4, this backup id,
        object id = 28 zero bytes || u32 segment number (0 .. K-1)

    segment plaintext:
    "OBCS" | u16 version = 1 | u16 source count S | S x source (as in formats.backup_root)
    | u32 pack count P | P x (pack name (32) | u16 source index)
    | u32 entry count E | E x (chunk id (32) | u32 pack index | u32 length)

Each segment is self-contained (its own source and pack tables) and at most
``formats.sealed.MAX_PLAINTEXT`` bytes; entries are sorted by chunk id and unique within a
segment; packs sorted by name, unique; sources sorted by backup id, unique, each with 1 to 64
records. Every pack and every source is used by at least one entry.
"""

from __future__ import annotations

from dataclasses import dataclass

from formats.backup_root import Source

__all__ = [
    "MAGIC",
    "MAX_SEGMENTS",
    "SEGMENT_MAGIC",
    "VERSION",
    "ChunkIndexObject",
    "Entry",
    "Segment",
    "decode_object",
    "decode_segment",
    "encode_object",
    "encode_segment",
    "segment_object_id",
]

MAGIC = b"OBCI"
SEGMENT_MAGIC = b"OBCS"
VERSION = 1
MAX_SEGMENTS = 1 << 16


@dataclass(frozen=True)
class Entry:
    chunk_id: bytes  # 32
    pack: int  # index into Segment.packs
    length: int  # plaintext length, >= 1


@dataclass(frozen=True)
class Segment:
    sources: tuple[Source, ...]
    packs: tuple[tuple[bytes, int], ...]  # (pack name, source index), sorted by name
    entries: tuple[Entry, ...]


@dataclass(frozen=True)
class ChunkIndexObject:
    backup_id: bytes  # 16
    sealed_segments: tuple[bytes, ...]  # each a sealed object (formats.sealed layout)


def segment_object_id(number: int) -> bytes:
    """The AAD object id of segment ``number``: 28 zero bytes then ``u32 number``."""
    return bytes(28) + number.to_bytes(4, "big")


def encode_segment(segment: Segment) -> bytes:
    raise NotImplementedError


def decode_segment(data: bytes, what: str = "chunk index segment") -> Segment:
    raise NotImplementedError


def encode_object(obj: ChunkIndexObject) -> bytes:
    raise NotImplementedError


def decode_object(data: bytes, what: str = "chunk index") -> ChunkIndexObject:
    raise NotImplementedError
