"""Pack file: many sealed objects of one backup, then their sealed index, then a fixed trailer.

Layout (docs/spec/pack.md; integers big-endian)::

    header   "OBPK" | u16 version = 1 | backup id (16)                                 22 bytes
    entries  n x ( u8 object type (1 or 2) | object id (32) | u32 sealed length | sealed )
    end      u8 0 (end of entries)
    index    sealed index: the index plaintext sealed (type 3) under the pack's key, with
             object id = body hash
    trailer  body hash (32) | u32 sealed index length | u16 version = 1 | "OBPT"       42 bytes

The *body* is every byte before the sealed index (header, entries, end byte); the *body hash* is
its SHA-256. The index plaintext is ``"OBPI" | u16 1 | u32 n | n x (u8 object type | object id
(32) | u32 offset | u32 sealed length)``, in pack order; ``offset`` is where the entry's sealed
bytes start. Everything in the index is determined by the entries, so readers check it exactly.

A pack is readable three ways: whole (:func:`decode`), front to back from a stream
(:class:`PackStreamReader`), or from its tail alone (:func:`read_tail`, or :func:`decode_trailer`
and :meth:`Trailer.index_range` for a ranged GET). Sealing and opening are the caller's
(``crypto.packs``): this module never sees a key.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import BinaryIO

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
    "PackStreamReader",
    "PackTail",
    "PackWriter",
    "Trailer",
    "check_index",
    "decode",
    "decode_index",
    "decode_trailer",
    "encode",
    "encode_index",
    "index_for",
    "read_tail",
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
    """One entry: the sealed object's type and id (both bound into its AAD) and its bytes."""

    object_type: ObjectType
    object_id: bytes
    sealed: bytes


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


def _check_entry(object_type: int, object_id: bytes, sealed_length: int) -> None:
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
        obj_type, object_id = _packable(r, r.u8()), r.take(OBJECT_ID_SIZE)
        offset, length = r.u32(), r.u32()
        if offset != pos + ENTRY_HEADER_SIZE:
            raise r.error(f"entry offset {offset} is not {pos + ENTRY_HEADER_SIZE} (entries are contiguous)")
        _bounded_length(r, length)
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


class PackWriter:
    """Builds one pack in memory: :meth:`add` entries, seal :meth:`index_plaintext` with object id
    :meth:`body_hash` (``crypto.packs.finish_pack`` does), then :meth:`finish`.

    :attr:`final_size` is the exact size the finished pack will have, so the engine can cut
    packs at a target size (see :meth:`fits`).
    """

    def __init__(self, backup_id: bytes) -> None:
        header = Writer().header(MAGIC, VERSION).fixed(backup_id, BACKUP_ID_SIZE).getvalue()
        self._backup_id = bytes(backup_id)
        self._parts = [header]
        self._hash = hashlib.sha256(header)
        self._size = len(header)
        self._index: list[IndexEntry] = []
        self._ids: set[bytes] = set()
        self._done = False

    @property
    def backup_id(self) -> bytes:
        return self._backup_id

    @property
    def entry_count(self) -> int:
        return len(self._index)

    @property
    def size(self) -> int:
        """Bytes of header and entries written so far."""
        return self._size

    @property
    def final_size(self) -> int:
        """The size of the finished pack if no more entries are added."""
        return self._size + 1 + sealed_index_size(len(self._index)) + TRAILER_SIZE

    def fits(self, sealed_length: int) -> bool:
        """Whether one more entry of ``sealed_length`` sealed bytes keeps the pack within limits."""
        grown = self.final_size + ENTRY_HEADER_SIZE + sealed_length + INDEX_ENTRY_SIZE
        return len(self._index) < MAX_ENTRIES and grown <= MAX_PACK_SIZE

    def add(self, object_type: ObjectType, object_id: bytes, sealed: bytes) -> IndexEntry:
        """Append one sealed object; returns where its sealed bytes will be. ``ValueError`` if invalid."""
        if self._done:
            raise ValueError("this pack is finished")
        _check_entry(object_type, object_id, len(sealed))
        if object_id in self._ids:
            raise ValueError("this object is already in the pack")
        if not self.fits(len(sealed)):
            raise ValueError("the pack is full; start a new one")
        head = Writer().u8(object_type).raw(object_id).u32(len(sealed)).getvalue()
        entry = IndexEntry(ObjectType(object_type), bytes(object_id), self._size + len(head), len(sealed))
        for part in (head, bytes(sealed)):
            self._parts.append(part)
            self._hash.update(part)
            self._size += len(part)
        self._index.append(entry)
        self._ids.add(entry.object_id)
        return entry

    def index(self) -> tuple[IndexEntry, ...]:
        return tuple(self._index)

    def index_plaintext(self) -> bytes:
        """The index plaintext to seal (type 3, object id :meth:`body_hash`)."""
        if not self._index:
            raise ValueError("a pack holds at least one entry")
        return encode_index(self._index)

    def body_hash(self) -> bytes:
        """SHA-256 of the body: header, entries and the end byte."""
        h = self._hash.copy()
        h.update(bytes([END_MARKER]))
        return h.digest()

    def finish(self, sealed_index: bytes) -> bytes:
        """The whole pack, ending with ``sealed_index`` and the trailer."""
        if not self._index:
            raise ValueError("a pack holds at least one entry")
        if len(sealed_index) != sealed_index_size(len(self._index)):
            raise ValueError("sealed index has the wrong length for this pack")
        trailer = encode_trailer(Trailer(self.body_hash(), len(sealed_index)))
        self._done = True
        return b"".join([*self._parts, bytes([END_MARKER]), sealed_index, trailer])


def encode(pack: Pack) -> bytes:
    """The canonical bytes of ``pack`` (``ValueError`` if a field is invalid)."""
    w = PackWriter(pack.backup_id)
    for e in pack.entries:
        w.add(e.object_type, e.object_id, e.sealed)
    return w.finish(pack.sealed_index)


def _packable(r: Reader, code: int) -> ObjectType:
    obj_type = object_type_from_code(code, "pack entry")
    if obj_type not in PACKABLE_TYPES:
        raise r.error(f"object type {obj_type.name} cannot be a pack entry")
    return obj_type


def _bounded_length(r: Reader, length: int) -> None:
    if not MIN_SEALED <= length <= MAX_SEALED:
        raise r.error(f"sealed length {length} is outside {MIN_SEALED}..{MAX_SEALED}")


def _entry_head(r: Reader, code: int, count: int, seen: set[bytes]) -> tuple[ObjectType, bytes, int]:
    """Read an entry's id and length after its type ``code``, with every check but the remainder."""
    if count >= MAX_ENTRIES:
        raise r.error(f"more than {MAX_ENTRIES} entries")
    obj_type = _packable(r, code)
    object_id = r.take(OBJECT_ID_SIZE)
    if object_id in seen:
        raise r.error("object id appears twice")
    seen.add(object_id)
    length = r.u32()
    _bounded_length(r, length)
    return obj_type, object_id, length


def _tail(r: Reader, trailer_bytes: bytes, count: int, body_hash: bytes, what: str) -> bytes:
    """Check the trailer against the entries and the body hash; returns the sealed index."""
    trailer = decode_trailer(trailer_bytes, f"{what} trailer")
    if trailer.index_length != sealed_index_size(count):
        raise r.error(f"trailer names a {trailer.index_length}-byte index for {count} entries")
    if r.remaining != trailer.index_length + TRAILER_SIZE:
        raise r.error(f"{r.remaining} bytes follow the entries, not {trailer.index_length + TRAILER_SIZE}")
    sealed_index = r.take(trailer.index_length)
    r.take(TRAILER_SIZE)
    r.finish()
    if trailer.body_hash != body_hash:
        raise FormatError(f"{what} is corrupt: the body does not match the hash in its trailer")
    return sealed_index


def decode(data: bytes, what: str = "pack") -> Pack:
    """Strictly decode a whole pack; the sealed index is returned unopened (``crypto.packs``)."""
    if len(data) > MAX_PACK_SIZE:
        raise FormatError(f"{what} is corrupt: {len(data)} bytes exceeds the limit of {MAX_PACK_SIZE}")
    r = Reader(data, what)
    expect_header(r, MAGIC, (VERSION,))
    backup_id = r.take(BACKUP_ID_SIZE)
    entries: list[PackEntry] = []
    seen: set[bytes] = set()
    while (code := r.u8()) != END_MARKER:
        obj_type, object_id, length = _entry_head(r, code, len(entries), seen)
        entries.append(PackEntry(obj_type, object_id, r.take(length)))
    if not entries:
        raise r.error("a pack holds at least one entry")
    body_hash = hashlib.sha256(memoryview(data)[: r.offset]).digest()
    if r.remaining < TRAILER_SIZE:
        raise r.error("truncated trailer")
    sealed_index = _tail(r, bytes(data[-TRAILER_SIZE:]), len(entries), body_hash, what)
    return Pack(backup_id=backup_id, entries=tuple(entries), sealed_index=sealed_index)


def _read_exact(f: BinaryIO, n: int, what: str, offset: int) -> bytes:
    parts, got = [], 0
    while got < n:
        chunk = f.read(n - got)
        if not chunk:
            raise FormatError(f"{what} is corrupt: truncated (needs {n} bytes) at offset {offset + got}")
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)


class PackStreamReader:
    """Reads a pack front to back from a binary stream, without seeking.

    The header is read on construction (:attr:`backup_id`). Iterating yields each
    :class:`PackEntry` as it is read; when iteration ends the trailer and body hash have been
    checked and :attr:`tail` holds the sealed index. Entries are yielded before the index is
    checked: each is authenticated on its own when opened, and the caller MUST treat the pack as
    bad if iteration raises.
    """

    def __init__(self, f: BinaryIO, what: str = "pack") -> None:
        self._f = f
        self._what = what
        header = _read_exact(f, HEADER_SIZE, what, 0)
        r = Reader(header, what)
        expect_header(r, MAGIC, (VERSION,))
        self.backup_id = r.take(BACKUP_ID_SIZE)
        self._hash = hashlib.sha256(header)
        self.tail: PackTail | None = None
        self._started = False

    def _read(self, n: int, offset: int) -> bytes:
        data = _read_exact(self._f, n, self._what, offset)
        self._hash.update(data)
        return data

    def __iter__(self) -> Iterator[PackEntry]:
        if self._started:
            raise ValueError("a pack stream can be iterated only once")
        self._started = True
        pos, count, seen = HEADER_SIZE, 0, set[bytes]()
        while (code := self._read(1, pos)[0]) != END_MARKER:
            r = Reader(self._read(ENTRY_HEADER_SIZE - 1, pos + 1), f"{self._what} entry at offset {pos}")
            obj_type, object_id, length = _entry_head(r, code, count, seen)
            if pos + ENTRY_HEADER_SIZE + length > MAX_PACK_SIZE:
                raise FormatError(f"{self._what} is corrupt: larger than {MAX_PACK_SIZE} bytes")
            yield PackEntry(obj_type, object_id, self._read(length, pos + ENTRY_HEADER_SIZE))
            pos, count = pos + ENTRY_HEADER_SIZE + length, count + 1
        body_end = pos + 1
        if not count:
            raise FormatError(f"{self._what} is corrupt: a pack holds at least one entry")
        rest = _read_exact(self._f, sealed_index_size(count) + TRAILER_SIZE, self._what, body_end)
        if self._f.read(1):
            raise FormatError(f"{self._what} is corrupt: trailing bytes after the trailer")
        r = Reader(rest, f"{self._what} tail at offset {body_end}")
        sealed_index = _tail(r, rest[-TRAILER_SIZE:], count, self._hash.digest(), self._what)
        self.tail = PackTail(self._hash.digest(), sealed_index, body_end)


def read_tail(f: BinaryIO, what: str = "pack") -> PackTail:
    """Read only the trailer and the sealed index from a seekable ``f`` holding a whole pack."""
    size = f.seek(0, io.SEEK_END)
    if size < TRAILER_SIZE:
        raise FormatError(f"{what} is corrupt: truncated trailer ({size} bytes)")
    f.seek(size - TRAILER_SIZE)
    trailer = decode_trailer(_read_exact(f, TRAILER_SIZE, what, size - TRAILER_SIZE), f"{what} trailer")
    start, _ = trailer.index_range(size)
    f.seek(start)
    return PackTail(trailer.body_hash, _read_exact(f, trailer.index_length, what, start), start)
