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
from collections.abc import Iterator
from typing import BinaryIO

from formats._wire import Reader, Writer, expect_header
from formats.errors import FormatError
from formats.pack_layout import (
    BACKUP_ID_SIZE,
    END_MARKER,
    ENTRY_HEADER_SIZE,
    HASH_SIZE,
    HEADER_SIZE,
    INDEX_ENTRY_SIZE,
    INDEX_HEADER_SIZE,
    INDEX_MAGIC,
    MAGIC,
    MAX_ENTRIES,
    MAX_PACK_SIZE,
    MIN_SEALED,
    OBJECT_ID_SIZE,
    PACKABLE_TYPES,
    TRAILER_MAGIC,
    TRAILER_SIZE,
    VERSION,
    IndexEntry,
    Pack,
    PackEntry,
    PackTail,
    Trailer,
    bounded_length,
    check_entry,
    check_index,
    decode_index,
    decode_trailer,
    encode_index,
    encode_trailer,
    index_for,
    packable,
    sealed_index_size,
)
from formats.sealed import ObjectType

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
    "decode_hashed",
    "decode_index",
    "decode_trailer",
    "encode",
    "encode_index",
    "encode_trailer",
    "index_for",
    "read_tail",
    "sealed_index_size",
]


class PackWriter:
    """Builds one pack in memory: :meth:`add` entries, seal :meth:`index_plaintext` with object id
    :meth:`body_hash` (``crypto.packs.finish_pack`` does), then :meth:`finish`.

    :attr:`final_size` is the exact size the finished pack will have, so the engine can cut
    packs at a target size (see :meth:`fits`).

    The body's SHA-256 is a running hash brought up to date lazily (by :meth:`body_hash`), so
    :meth:`add` costs no hashing and a pack can be finished on another thread than the one that
    filled it; :meth:`finish` continues the same hash to the pack's own name (:meth:`pack_hash`),
    so every byte is hashed once.
    """

    def __init__(self, backup_id: bytes) -> None:
        header = Writer().header(MAGIC, VERSION).fixed(backup_id, BACKUP_ID_SIZE).getvalue()
        self._backup_id = bytes(backup_id)
        self._parts = [header]
        self._hash = hashlib.sha256()
        self._hashed = 0  # parts already in ``_hash``
        self._size = len(header)
        self._index: list[IndexEntry] = []
        self._ids: set[bytes] = set()
        self._done = False
        self._pack_hash: bytes | None = None

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

    def add(self, object_type: ObjectType, object_id: bytes, sealed: bytes | memoryview) -> IndexEntry:
        """Append one sealed object; returns where its sealed bytes will be. ``ValueError`` if invalid."""
        if self._done:
            raise ValueError("this pack is finished")
        check_entry(object_type, object_id, len(sealed))
        if object_id in self._ids:
            raise ValueError("this object is already in the pack")
        if not self.fits(len(sealed)):
            raise ValueError("the pack is full; start a new one")
        head = Writer().u8(object_type).raw(object_id).u32(len(sealed)).getvalue()
        entry = IndexEntry(ObjectType(object_type), bytes(object_id), self._size + len(head), len(sealed))
        self._parts += (head, bytes(sealed))
        self._size += len(head) + len(sealed)
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
        h = self._body_state()
        h.update(bytes([END_MARKER]))
        return h.digest()

    def _body_state(self) -> hashlib._Hash:
        """A copy of the running hash over every part added so far."""
        parts, h = self._parts, self._hash
        for i in range(self._hashed, len(parts)):
            h.update(parts[i])
        self._hashed = len(parts)
        return h.copy()

    def finish_parts(self, sealed_index: bytes) -> list[bytes]:
        """The whole pack as its parts, ending with ``sealed_index`` and the trailer (once).

        Their concatenation is the pack; sending them one after the other puts the same bytes on
        the wire without a joined 16 MiB copy (a pack may wait in an upload queue).
        """
        if self._done:
            raise ValueError("this pack is finished")
        if not self._index:
            raise ValueError("a pack holds at least one entry")
        if len(sealed_index) != sealed_index_size(len(self._index)):
            raise ValueError("sealed index has the wrong length for this pack")
        end = bytes([END_MARKER])
        # The pack's own name is the SHA-256 of all of it: continue the body's running hash
        # with the last few KiB instead of hashing the whole pack a second time.
        whole = self._body_state()
        whole.update(end)
        trailer = encode_trailer(Trailer(whole.copy().digest(), len(sealed_index)))
        whole.update(sealed_index)
        whole.update(trailer)
        self._pack_hash = whole.digest()
        self._done = True
        parts, self._parts = self._parts, []
        parts += (end, sealed_index, trailer)
        return parts

    def finish(self, sealed_index: bytes) -> bytes:
        """The whole pack, ending with ``sealed_index`` and the trailer (once: the parts are freed)."""
        return b"".join(self.finish_parts(sealed_index))

    def pack_hash(self) -> bytes:
        """SHA-256 of the finished pack (its object name); only after :meth:`finish`."""
        if self._pack_hash is None:
            raise ValueError("the pack is not finished")
        return self._pack_hash


def encode(pack: Pack) -> bytes:
    """The canonical bytes of ``pack`` (``ValueError`` if a field is invalid)."""
    w = PackWriter(pack.backup_id)
    for e in pack.entries:
        w.add(e.object_type, e.object_id, e.sealed)
    return w.finish(pack.sealed_index)


def _entry_head(r: Reader, code: int, count: int, seen: set[bytes]) -> tuple[ObjectType, bytes, int]:
    """Read an entry's id and length after its type ``code``, with every check but the remainder."""
    if count >= MAX_ENTRIES:
        raise r.error(f"more than {MAX_ENTRIES} entries")
    obj_type = packable(r, code)
    object_id = r.take(OBJECT_ID_SIZE)
    if object_id in seen:
        raise r.error("object id appears twice")
    seen.add(object_id)
    length = r.u32()
    bounded_length(r, length)
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
    return decode_hashed(data, what)[0]


def decode_hashed(
    data: bytes, what: str = "pack", *, body: tuple[int, bytes] | None = None
) -> tuple[Pack, bytes]:
    """:func:`decode`, and the SHA-256 of the body as read (the index's object id), computed once.

    ``body`` is ``(end, SHA-256 of data[:end])`` when the caller already hashed the body of these
    very bytes (``Repository.get_pack``); it is used only if ``end`` is where the entries end.
    """
    if len(data) > MAX_PACK_SIZE:
        raise FormatError(f"{what} is corrupt: {len(data)} bytes exceeds the limit of {MAX_PACK_SIZE}")
    r = Reader(data, what)
    expect_header(r, MAGIC, (VERSION,))
    backup_id = r.take(BACKUP_ID_SIZE)
    entries: list[PackEntry] = []
    seen: set[bytes] = set()
    while (code := r.u8()) != END_MARKER:
        obj_type, object_id, length = _entry_head(r, code, len(entries), seen)
        entries.append(PackEntry(obj_type, object_id, r.view(length)))  # no copy of the entry
    if not entries:
        raise r.error("a pack holds at least one entry")
    if body is not None and body[0] == r.offset:
        body_hash = body[1]
    else:
        body_hash = hashlib.sha256(memoryview(data)[: r.offset]).digest()
    if r.remaining < TRAILER_SIZE:
        raise r.error("truncated trailer")
    sealed_index = _tail(r, bytes(data[-TRAILER_SIZE:]), len(entries), body_hash, what)
    return Pack(backup_id=backup_id, entries=tuple(entries), sealed_index=sealed_index), body_hash


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
