"""The pack format's layout: sizes, the entry/index/trailer records, and index and trailer codecs.

Split out of :mod:`formats.pack` (which re-exports every public name here): this module holds
what both the writer and the readers need; ``formats.pack`` holds :class:`PackWriter` and the
readers. The layout itself is documented in :mod:`formats.pack` and docs/spec/pack.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from formats._wire import Reader, Writer, expect_header
from formats.errors import FormatError
from formats.sealed import MAX_SEALED, OVERHEAD, ObjectType, object_type_from_code

__all__ = [
    "BACKUP_ID_SIZE",
    "END_MARKER",
    "ENTRY_HEADER_SIZE",
    "HASH_SIZE",
    "HEADER_SIZE",
    "INDEX_ENTRY_SIZE",
    "INDEX_HEADER_SIZE",
    "INDEX_MAGIC",
    "MAGIC",
    "MAX_ENTRIES",
    "MAX_PACK_SIZE",
    "MIN_SEALED",
    "OBJECT_ID_SIZE",
    "PACKABLE_TYPES",
    "TRAILER_MAGIC",
    "TRAILER_SIZE",
    "VERSION",
    "IndexEntry",
    "Pack",
    "PackEntry",
    "PackTail",
    "Trailer",
    "check_entry",
    "check_index",
    "decode_index",
    "decode_trailer",
    "encode_index",
    "encode_trailer",
    "index_for",
    "packable",
    "bounded_length",
    "sealed_index_size",
]

MAGIC = b"OBPK"
INDEX_MAGIC = b"OBPI"
TRAILER_MAGIC = b"OBPT"
VERSION = 1
BACKUP_ID_SIZE = 16
OBJECT_ID_SIZE = 32
HASH_SIZE = 32
HEADER_SIZE = len(MAGIC) + 2 + BACKUP_ID_SIZE
ENTRY_HEADER_SIZE = 1 + OBJECT_ID_SIZE + 4
END_MARKER = 0
TRAILER_SIZE = HASH_SIZE + 4 + 2 + len(TRAILER_MAGIC)
INDEX_HEADER_SIZE = len(INDEX_MAGIC) + 2 + 4
INDEX_ENTRY_SIZE = 1 + OBJECT_ID_SIZE + 4 + 4
#: No object in a pack has an empty plaintext (a chunk holds at least its envelope byte).
MIN_SEALED = OVERHEAD + 1
#: At most 2**18 entries: the index plaintext (at most 10.75 MB) then fits one sealed object.
MAX_ENTRIES = 1 << 18
#: Packs are cut at a few MiB; 1 GiB is the hard ceiling, which also keeps offsets in a u32.
MAX_PACK_SIZE = 1 << 30
#: Object types a pack entry may hold (a pack index is never an entry).
PACKABLE_TYPES = frozenset({ObjectType.DATA_CHUNK, ObjectType.TREE_NODE})


@dataclass(frozen=True)
class PackEntry:
    """One entry: the sealed object's type and id (both bound into its AAD) and its bytes.

    A decoded pack's entries are views into the pack's bytes (no 16 MiB copy per pack); build
    entries with ``bytes``.
    """

    object_type: ObjectType
    object_id: bytes
    sealed: bytes | memoryview


@dataclass(frozen=True)
class IndexEntry:
    """Where one entry's sealed bytes are: ``pack[offset : offset + length]``."""

    object_type: ObjectType
    object_id: bytes
    offset: int
    length: int


@dataclass(frozen=True)
class Trailer:
    """The fixed 42 bytes at the end of a pack: the body hash and the sealed index length."""

    body_hash: bytes
    index_length: int

    def index_range(self, pack_size: int) -> tuple[int, int]:
        """``(start, end)`` of the sealed index in a pack of ``pack_size`` bytes (``FormatError``)."""
        if not 0 < pack_size <= MAX_PACK_SIZE:
            raise FormatError(f"pack of {pack_size} bytes is outside 1..{MAX_PACK_SIZE}")
        end = pack_size - TRAILER_SIZE
        start = end - self.index_length
        if start < HEADER_SIZE + ENTRY_HEADER_SIZE + MIN_SEALED + 1:
            raise FormatError("pack is corrupt: its trailer names an index larger than the pack")
        return start, end


@dataclass(frozen=True)
class PackTail:
    """What a tail reader needs to open the index: the sealed index and where it starts."""

    body_hash: bytes
    sealed_index: bytes
    body_end: int  # offset of the sealed index = length of the body


@dataclass(frozen=True)
class Pack:
    """A decoded pack: its backup id, its entries in pack order, and its (opaque) sealed index."""

    backup_id: bytes
    entries: tuple[PackEntry, ...]
    sealed_index: bytes

    def index(self) -> tuple[IndexEntry, ...]:
        """The index these entries must have (see :func:`index_for`)."""
        return index_for(self.entries)


def sealed_index_size(count: int) -> int:
    """Bytes of the sealed index of a pack of ``count`` entries."""
    return INDEX_HEADER_SIZE + count * INDEX_ENTRY_SIZE + OVERHEAD


def check_entry(object_type: int, object_id: bytes, sealed_length: int) -> None:
    if object_type not in PACKABLE_TYPES:
        raise ValueError(f"object type {object_type} cannot be a pack entry (only 1 or 2)")
    if len(object_id) != OBJECT_ID_SIZE:
        raise ValueError(f"an object id is {OBJECT_ID_SIZE} bytes")
    if not MIN_SEALED <= sealed_length <= MAX_SEALED:
        raise ValueError(f"sealed length {sealed_length} is outside {MIN_SEALED}..{MAX_SEALED}")


def index_for(entries: Sequence[PackEntry]) -> tuple[IndexEntry, ...]:
    """The index of ``entries`` laid out one after another from the end of the header."""
    out = []
    pos = HEADER_SIZE
    for e in entries:
        out.append(IndexEntry(e.object_type, e.object_id, pos + ENTRY_HEADER_SIZE, len(e.sealed)))
        pos += ENTRY_HEADER_SIZE + len(e.sealed)
    return tuple(out)


def check_index(index: Sequence[IndexEntry], entries: Sequence[PackEntry]) -> None:
    """``FormatError`` unless ``index`` describes exactly ``entries``, in order."""
    if tuple(index) != index_for(entries):
        raise FormatError("pack is corrupt: its index does not match the entries it holds")


def encode_index(index: Sequence[IndexEntry]) -> bytes:
    """The index plaintext (before sealing)."""
    if not 0 < len(index) <= MAX_ENTRIES:
        raise ValueError(f"a pack index lists 1..{MAX_ENTRIES} entries")
    w = Writer().header(INDEX_MAGIC, VERSION).u32(len(index))
    for e in index:
        w.u8(e.object_type).fixed(e.object_id, OBJECT_ID_SIZE).u32(e.offset).u32(e.length)
    return w.getvalue()


def decode_index(plaintext: bytes, *, body_end: int, what: str = "pack index") -> tuple[IndexEntry, ...]:
    """Strictly decode an opened index of a pack whose body is ``body_end`` bytes long.

    Entries MUST be contiguous from the end of the header, unique by object id, and the last
    MUST end one byte (the end marker) before ``body_end``.
    """
    r = Reader(plaintext, what)
    expect_header(r, INDEX_MAGIC, (VERSION,))
    count = r.u32()
    if not 0 < count <= MAX_ENTRIES:
        raise r.error(f"entry count {count} is outside 1..{MAX_ENTRIES}")
    r.count(count, INDEX_ENTRY_SIZE)
    out: list[IndexEntry] = []
    seen: set[bytes] = set()
    pos = HEADER_SIZE
    for _ in range(count):
        obj_type, object_id = packable(r, r.u8()), r.take(OBJECT_ID_SIZE)
        offset, length = r.u32(), r.u32()
        if offset != pos + ENTRY_HEADER_SIZE:
            raise r.error(f"entry offset {offset} is not {pos + ENTRY_HEADER_SIZE} (entries are contiguous)")
        bounded_length(r, length)
        if object_id in seen:
            raise r.error("object id listed twice")
        seen.add(object_id)
        out.append(IndexEntry(obj_type, object_id, offset, length))
        pos = offset + length
    r.finish()
    if pos + 1 != body_end:
        raise FormatError(f"{what} is corrupt: its entries end at {pos}, the body at {body_end}")
    return tuple(out)


def encode_trailer(trailer: Trailer) -> bytes:
    return (
        Writer()
        .fixed(trailer.body_hash, HASH_SIZE)
        .u32(trailer.index_length)
        .u16(VERSION)
        .raw(TRAILER_MAGIC)
        .getvalue()
    )


def decode_trailer(data: bytes, what: str = "pack trailer") -> Trailer:
    """Decode the last 42 bytes of a pack: magic (at the very end), version, then the length."""
    if len(data) != TRAILER_SIZE or data[-len(TRAILER_MAGIC) :] != TRAILER_MAGIC:
        raise FormatError(f"{what} is not recognised: wrong size or magic bytes (expected {TRAILER_MAGIC!r})")
    r = Reader(data, what)
    body_hash = r.take(HASH_SIZE)
    length = r.u32()
    version = r.u16()
    if version != VERSION:
        raise FormatError(f"{what} has unsupported format version {version}; upgrade opsbackup")
    count, extra = divmod(length - sealed_index_size(0), INDEX_ENTRY_SIZE)
    if extra or not 0 < count <= MAX_ENTRIES:
        raise FormatError(f"{what} is corrupt: {length} is not the length of a sealed pack index")
    r.take(len(TRAILER_MAGIC))
    r.finish()
    return Trailer(body_hash=body_hash, index_length=length)


def packable(r: Reader, code: int) -> ObjectType:
    obj_type = object_type_from_code(code, "pack entry")
    if obj_type not in PACKABLE_TYPES:
        raise r.error(f"object type {obj_type.name} cannot be a pack entry")
    return obj_type


def bounded_length(r: Reader, length: int) -> None:
    if not MIN_SEALED <= length <= MAX_SEALED:
        raise r.error(f"sealed length {length} is outside {MIN_SEALED}..{MAX_SEALED}")
