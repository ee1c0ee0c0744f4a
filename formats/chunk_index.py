"""Chunk index (``OBCI``): which chunks a backup stored and where, for the account's hosts only.

Hosts deduplicate against every chunk the account stored, but cannot open packs (they hold no
data key). Each backup therefore uploads one chunk index, listed in its manifest (the manifest's
``chunk index`` field): the chunks the backup *added*, the pack holding each, and the sources
(backup id, data-key commitment) those packs were sealed under. It is
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
segment; packs sorted by name, unique; sources sorted by backup id, unique. Every pack and every
source is used by at least one entry.

A source is ``backup id (16) | data key commitment (32)``. No wrapped key is here: a host that
reuses a chunk names its source in its own manifest and backup root, and readers unwrap that
source's data key from its key envelope. A segment with no entries (and so no packs and no
sources) is valid: it is the one segment of a backup that added no chunks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from formats._wire import Reader, Writer, check_strictly_sorted, expect_header
from formats.backup_root import SOURCE_SIZE, Source, check_source, read_source, write_source
from formats.sealed import MAX_PLAINTEXT, MAX_SEALED, OVERHEAD

__all__ = [
    "BACKUP_ID_SIZE",
    "ENTRY_SIZE",
    "HASH_SIZE",
    "MAGIC",
    "MAX_ENTRIES",
    "MAX_PACKS",
    "MAX_SEGMENTS",
    "MAX_SOURCES",
    "MIN_SEALED_SEGMENT",
    "MIN_SEGMENT_SIZE",
    "PACK_ENTRY_SIZE",
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
    "source_size",
]

MAGIC = b"OBCI"
SEGMENT_MAGIC = b"OBCS"
VERSION = 1
MAX_SEGMENTS = 1 << 16
BACKUP_ID_SIZE = 16
HASH_SIZE = 32  # chunk ids, pack names, commitments
MAX_SOURCES = 0xFFFF
#: Bytes of one pack-table row and of one entry.
PACK_ENTRY_SIZE = HASH_SIZE + 2
ENTRY_SIZE = HASH_SIZE + 4 + 4
#: The fixed part of a segment: header and the three counts (an empty segment is this long).
MIN_SEGMENT_SIZE = 4 + 2 + 2 + 4 + 4
#: Bounds that follow from MAX_PLAINTEXT; checked anyway before anything is allocated.
MAX_PACKS = MAX_PLAINTEXT // PACK_ENTRY_SIZE
MAX_ENTRIES = MAX_PLAINTEXT // ENTRY_SIZE
MIN_SEALED_SEGMENT = OVERHEAD + MIN_SEGMENT_SIZE
_U32_MAX = 0xFFFFFFFF


@dataclass(frozen=True)
class Entry:
    """One chunk the backup added: its keyed id, the pack holding it, its plaintext length."""

    chunk_id: bytes  # 32
    pack: int  # index into Segment.packs
    length: int  # plaintext length, >= 1


@dataclass(frozen=True)
class Segment:
    """One self-contained segment plaintext: its source table, pack table and sorted entries."""

    sources: tuple[Source, ...]
    packs: tuple[tuple[bytes, int], ...]  # (pack name, source index), sorted by name
    entries: tuple[Entry, ...]


@dataclass(frozen=True)
class ChunkIndexObject:
    """The stored object: the backup it belongs to and its sealed segments, in order."""

    backup_id: bytes  # 16
    sealed_segments: tuple[bytes, ...]  # each a sealed object (formats.sealed layout)


def segment_object_id(number: int) -> bytes:
    """The AAD object id of segment ``number``: 28 zero bytes then ``u32 number``."""
    if not 0 <= number < MAX_SEGMENTS:
        raise ValueError(f"segment number {number} is not between 0 and {MAX_SEGMENTS - 1}")
    return bytes(28) + number.to_bytes(4, "big")


# Shared checks: ValueError here, turned into FormatError by _checked when decoding.


def _check_tables(segment: Segment) -> None:
    """Everything but sizes and counts: sorting, indexes in range, every row used."""
    if len(segment.sources) > MAX_SOURCES:
        raise ValueError(f"{len(segment.sources)} sources, more than the limit of {MAX_SOURCES}")
    for src in segment.sources:
        check_source(src)
    check_strictly_sorted([s.backup_id for s in segment.sources], "sources")
    used_sources = set()
    for name, source in segment.packs:
        if len(name) != HASH_SIZE:
            raise ValueError("a pack name is 32 bytes")
        if not 0 <= source < len(segment.sources):
            raise ValueError(f"pack names source {source}, but the segment has {len(segment.sources)}")
        used_sources.add(source)
    check_strictly_sorted([name for name, _ in segment.packs], "packs")
    used_packs = set()
    for entry in segment.entries:
        if len(entry.chunk_id) != HASH_SIZE:
            raise ValueError("a chunk id is 32 bytes")
        if not 0 <= entry.pack < len(segment.packs):
            raise ValueError(f"entry names pack {entry.pack}, but the segment has {len(segment.packs)}")
        if not 1 <= entry.length <= _U32_MAX:
            raise ValueError(f"entry length {entry.length} is not between 1 and {_U32_MAX}")
        used_packs.add(entry.pack)
    check_strictly_sorted([e.chunk_id for e in segment.entries], "entries")
    if len(used_packs) != len(segment.packs):
        raise ValueError("a pack is used by no entry")
    if len(used_sources) != len(segment.sources):
        raise ValueError("a source is used by no pack")


def source_size(src: Source) -> int:
    """Bytes of ``src`` in a segment (for cutting entries into segments): always 48."""
    return SOURCE_SIZE


def encode_segment(segment: Segment) -> bytes:
    """The canonical segment plaintext; ValueError for anything :func:`decode_segment` refuses."""
    _check_tables(segment)
    w = Writer().header(SEGMENT_MAGIC, VERSION).u16(len(segment.sources))
    for src in segment.sources:
        write_source(w, src)
    w.u32(len(segment.packs))
    for name, source in segment.packs:
        w.fixed(name, HASH_SIZE).u16(source)
    w.u32(len(segment.entries))
    for entry in segment.entries:
        w.fixed(entry.chunk_id, HASH_SIZE).u32(entry.pack).u32(entry.length)
    out = w.getvalue()
    if len(out) > MAX_PLAINTEXT:
        raise ValueError(f"a segment of {len(out)} bytes exceeds the limit of {MAX_PLAINTEXT}")
    return out


def _checked(r: Reader, check: Callable[..., None], *args: object) -> None:
    """Run a shared check; its ValueError becomes a FormatError naming the offset."""
    try:
        check(*args)
    except ValueError as exc:
        raise r.error(str(exc)) from None


def decode_segment(data: bytes, what: str = "chunk index segment") -> Segment:
    """Strictly decode an opened segment plaintext (``OBCS``); FormatError for any deviation."""
    r = Reader(data, what)
    if len(data) > MAX_PLAINTEXT:
        raise r.error(f"{len(data)} bytes exceeds the limit of {MAX_PLAINTEXT}")
    expect_header(r, SEGMENT_MAGIC, (VERSION,))
    sources = tuple(read_source(r) for _ in range(r.count(r.u16(), SOURCE_SIZE)))
    n_packs = r.u32()
    if n_packs > MAX_PACKS:
        raise r.error(f"pack count {n_packs} exceeds the limit of {MAX_PACKS}")
    packs = tuple((r.take(HASH_SIZE), r.u16()) for _ in range(r.count(n_packs, PACK_ENTRY_SIZE)))
    n_entries = r.u32()
    if n_entries > MAX_ENTRIES:
        raise r.error(f"entry count {n_entries} exceeds the limit of {MAX_ENTRIES}")
    entries = tuple(
        Entry(chunk_id=r.take(HASH_SIZE), pack=r.u32(), length=r.u32())
        for _ in range(r.count(n_entries, ENTRY_SIZE))
    )
    r.finish()
    segment = Segment(sources=sources, packs=packs, entries=entries)
    _checked(r, _check_tables, segment)
    return segment


def _check_object(obj: ChunkIndexObject) -> None:
    if len(obj.backup_id) != BACKUP_ID_SIZE:
        raise ValueError("a backup id is 16 bytes")
    if not 1 <= len(obj.sealed_segments) <= MAX_SEGMENTS:
        raise ValueError(f"{len(obj.sealed_segments)} segments; a chunk index holds 1 to {MAX_SEGMENTS}")
    for sealed in obj.sealed_segments:
        if not MIN_SEALED_SEGMENT <= len(sealed) <= MAX_SEALED:
            raise ValueError(
                f"sealed segment of {len(sealed)} bytes (must be {MIN_SEALED_SEGMENT} to {MAX_SEALED})"
            )


def encode_object(obj: ChunkIndexObject) -> bytes:
    """The stored ``OBCI`` object; ValueError for anything :func:`decode_object` would refuse."""
    _check_object(obj)
    w = Writer().header(MAGIC, VERSION).fixed(obj.backup_id, BACKUP_ID_SIZE).u32(len(obj.sealed_segments))
    for sealed in obj.sealed_segments:
        w.bytes32(sealed)
    return w.getvalue()


def decode_object(data: bytes, what: str = "chunk index") -> ChunkIndexObject:
    """Strictly decode a stored ``OBCI`` object; the segments stay sealed (``crypto.chunk_index``)."""
    r = Reader(data, what)
    expect_header(r, MAGIC, (VERSION,))
    backup_id = r.take(BACKUP_ID_SIZE)
    n = r.u32()
    if not 1 <= n <= MAX_SEGMENTS:
        raise r.error(f"segment count {n} is not between 1 and {MAX_SEGMENTS}")
    sealed: list[bytes] = []
    for _ in range(r.count(n, 4 + MIN_SEALED_SEGMENT)):
        segment = r.bytes32(MAX_SEALED)
        if len(segment) < MIN_SEALED_SEGMENT:
            raise r.error(f"sealed segment of {len(segment)} bytes is shorter than {MIN_SEALED_SEGMENT}")
        sealed.append(segment)
    r.finish()
    return ChunkIndexObject(backup_id=backup_id, sealed_segments=tuple(sealed))
