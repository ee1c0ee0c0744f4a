"""Metadata tree node (``OBTR``): a run of path records of one backup, in depth-first order.

A backup's metadata is one *record stream*: every directory, file, symlink, hard link and special
file under the backed-up paths, one record each, in depth-first order with siblings sorted by
their name bytes (so comparing paths component by component gives the stream order). The stream is
cut into nodes of about 1 MiB; each node is sealed (object type ``TREE_NODE``) under the backup's
metadata key and stored in a pack. The backup root (``formats.backup_root``) lists the nodes in
order. Nothing here is secret from the metadata key holder; nothing here is visible to the server.

Layout (docs/spec/tree.md; integers big-endian)::

    node     "OBTR" | u16 version = 1 | u32 record count (>= 1) | records
    record   u8 kind | bytes16 path | kind-specific fields
      FILE (1)          u32 mode | u32 uid | u32 gid | u64 mtime (ns, two's complement) | u64 size
                        | u64 link group | u32 n | n x chunk ref
      DIR (2)           u32 mode | u32 uid | u32 gid | u64 mtime
      SYMLINK (3)       u32 mode | u32 uid | u32 gid | u64 mtime | bytes16 target
      HARDLINK (4)      bytes16 target path (an earlier FILE record of the stream)
      CONTINUATION (5)  u32 n | n x chunk ref   (more chunks of the FILE record just before)
      SPECIAL (6)       u32 mode | u32 uid | u32 gid | u64 mtime | u64 rdev  (fifo, char, block)
    chunk ref  chunk id (32) | u32 pack (index into the backup root's pack table) | u32 length

Paths are relative (``etc/passwd``): components joined by ``/``, each 1 to 255 bytes, no NUL, not
``.`` or ``..``; no leading, trailing or doubled ``/``. Names need not be UTF-8.

Settled details (docs/spec/tree.md): ``mode`` holds only type and permission bits (at most
0o177777); ``mtime`` is the u64 two's complement of a signed 64-bit nanosecond count; a chunk
ref's length is 1 to ``formats.sealed.MAX_PLAINTEXT``; a FILE record may hold no chunks (an
empty file), a CONTINUATION at least one; a SYMLINK target is 1 to MAX_PATH bytes without NUL;
a HARDLINK target is a canonical path that sorts before the record's own path. A node is at
most ``MAX_NODE_SIZE`` bytes.
"""

from __future__ import annotations

import enum
import stat
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from formats._wire import Reader, Writer, expect_header
from formats.errors import FormatError
from formats.sealed import MAX_PLAINTEXT

__all__ = [
    "CHUNK_ID_SIZE",
    "CHUNK_REF_SIZE",
    "HEADER_SIZE",
    "MAGIC",
    "MAX_CHUNKS_PER_RECORD",
    "MAX_CHUNK_LENGTH",
    "MAX_COMPONENT",
    "MAX_NODE_SIZE",
    "MAX_PATH",
    "MAX_RECORDS",
    "MAX_TARGET",
    "MIN_RECORD_SIZE",
    "VERSION",
    "ChunkRef",
    "Kind",
    "Record",
    "StreamChecker",
    "check_path",
    "decode",
    "encode",
    "encoded_size",
    "path_key",
]

MAGIC = b"OBTR"
VERSION = 1
MAX_COMPONENT = 255
MAX_PATH = 0xFFFF
#: Chunk refs in one FILE or CONTINUATION record; a larger file continues in the next record.
MAX_CHUNKS_PER_RECORD = 1 << 16
CHUNK_ID_SIZE = 32
CHUNK_REF_SIZE = 32 + 4 + 4
MAX_RECORDS = 1 << 20
#: A chunk's plaintext length: what one sealed chunk can hold.
MAX_CHUNK_LENGTH = MAX_PLAINTEXT
#: A symlink target (the u16 length prefix's own limit; Linux allows 4095).
MAX_TARGET = MAX_PATH
#: A node is sealed as one object, so it is at most a sealed object's plaintext.
MAX_NODE_SIZE = MAX_PLAINTEXT
#: magic, version, record count.
HEADER_SIZE = 4 + 2 + 4
#: The smallest record: a HARDLINK with one-byte path and target (kind, 2 + 1, 2 + 1).
MIN_RECORD_SIZE = 1 + 3 + 3

_U32_MAX = 0xFFFFFFFF
_U64_MAX = (1 << 64) - 1
_I64_MIN = -(1 << 63)
_I64_MAX = (1 << 63) - 1
_MODE_MAX = 0o177777  # type bits and the 12 permission bits, nothing else
_META_SIZE = 4 + 4 + 4 + 8  # mode, uid, gid, mtime
_META = struct.Struct(">IIIq")
_SIZE_GROUP = struct.Struct(">QQ")
_REF = struct.Struct(">32sII")


class Kind(enum.IntEnum):
    FILE = 1
    DIR = 2
    SYMLINK = 3
    HARDLINK = 4
    CONTINUATION = 5
    SPECIAL = 6


_TYPE_BITS: dict[Kind, tuple[int, ...]] = {
    Kind.FILE: (stat.S_IFREG,),
    Kind.DIR: (stat.S_IFDIR,),
    Kind.SYMLINK: (stat.S_IFLNK,),
    Kind.SPECIAL: (stat.S_IFIFO, stat.S_IFCHR, stat.S_IFBLK),
}
_HAS_META = frozenset(_TYPE_BITS)
_HAS_CHUNKS = frozenset((Kind.FILE, Kind.CONTINUATION))
#: The Record fields each kind carries besides ``kind`` and ``path``.
_CARRIED: dict[Kind, frozenset[str]] = {
    Kind.FILE: frozenset(("mode", "uid", "gid", "mtime_ns", "size", "link_group", "chunks")),
    Kind.DIR: frozenset(("mode", "uid", "gid", "mtime_ns")),
    Kind.SYMLINK: frozenset(("mode", "uid", "gid", "mtime_ns", "target")),
    Kind.HARDLINK: frozenset(("target",)),
    Kind.CONTINUATION: frozenset(("chunks",)),
    Kind.SPECIAL: frozenset(("mode", "uid", "gid", "mtime_ns", "rdev")),
}
_OPTIONAL = ("mode", "uid", "gid", "mtime_ns", "size", "link_group", "target", "rdev", "chunks")


@dataclass(frozen=True)
class ChunkRef:
    """One chunk of a file: its keyed id, which pack of the root's table holds it, its length."""

    chunk_id: bytes  # 32 bytes, HMAC-SHA256 under the dedup-derived key (crypto.dedup)
    pack: int  # u32 index into BackupRoot.packs
    length: int  # u32 plaintext length of the chunk (before compression), >= 1


@dataclass(frozen=True)
class Record:
    """One record. Fields a kind does not carry are zero/empty (and must be, to encode).

    ``mode`` is the full ``st_mode`` (type bits and permission bits; the type bits must agree with
    ``kind``: S_IFREG for FILE, S_IFDIR, S_IFLNK, and S_IFIFO/S_IFCHR/S_IFBLK for SPECIAL).
    ``link_group`` is 0 for a file with one link; files sharing a non-zero group were hard links
    of one another at backup time (the first is a FILE record, later ones are HARDLINK records
    naming it in ``target``). ``size`` of a FILE is the sum of its chunk lengths, including those
    of its CONTINUATION records.
    """

    kind: Kind
    path: bytes
    mode: int = 0
    uid: int = 0
    gid: int = 0
    mtime_ns: int = 0  # signed: times before 1970 are negative
    size: int = 0
    link_group: int = 0
    target: bytes = b""  # SYMLINK: the link's target; HARDLINK: the path of the FILE it links to
    rdev: int = 0
    chunks: tuple[ChunkRef, ...] = ()


def _show(path: bytes) -> str:
    """A short, printable rendering of a path for error messages."""
    text = repr(path[:60])[1:]
    return text + ("..." if len(path) > 60 else "")


def check_path(path: bytes) -> None:
    """Raise ValueError unless ``path`` is a canonical relative path (rules in the module doc)."""
    if not 1 <= len(path) <= MAX_PATH:
        raise ValueError(f"a path is 1 to {MAX_PATH} bytes, not {len(path)}")
    if b"\0" in path:
        raise ValueError(f"path {_show(path)} holds a NUL byte")
    if path.startswith(b"/"):
        raise ValueError(f"path {_show(path)} is absolute (starts with /)")
    for component in path.split(b"/"):
        if not component:
            raise ValueError(f"path {_show(path)} has an empty component (a trailing or doubled /)")
        if component in (b".", b".."):
            raise ValueError(f"path {_show(path)} has a {component.decode()!r} component")
        if len(component) > MAX_COMPONENT:
            raise ValueError(f"path {_show(path)} has a component longer than {MAX_COMPONENT} bytes")


def path_key(path: bytes) -> tuple[bytes, ...]:
    """The sort key of the stream: the path's components (depth-first, siblings by name bytes)."""
    return tuple(path.split(b"/"))


def encoded_size(record: Record) -> int:
    """Bytes ``record`` takes in a node (to cut nodes at a target size without encoding twice)."""
    n = 1 + 2 + len(record.path)
    if record.kind in _HAS_META:
        n += _META_SIZE
    if record.kind is Kind.FILE:
        n += 8 + 8
    if record.kind in _HAS_CHUNKS:
        n += 4 + CHUNK_REF_SIZE * len(record.chunks)
    if record.kind in (Kind.SYMLINK, Kind.HARDLINK):
        n += 2 + len(record.target)
    if record.kind is Kind.SPECIAL:
        n += 8
    return n


# Checks shared by encode (ValueError) and decode (FormatError, via _checked).


def _check_chunks(rec: Record) -> None:
    low = 1 if rec.kind is Kind.CONTINUATION else 0
    if not low <= len(rec.chunks) <= MAX_CHUNKS_PER_RECORD:
        raise ValueError(
            f"{rec.kind.name} record {_show(rec.path)} holds {len(rec.chunks)} chunk refs "
            f"({low} to {MAX_CHUNKS_PER_RECORD})"
        )
    for ref in rec.chunks:
        if len(ref.chunk_id) != CHUNK_ID_SIZE:
            raise ValueError(f"a chunk id is {CHUNK_ID_SIZE} bytes, not {len(ref.chunk_id)}")
        if not 0 <= ref.pack <= _U32_MAX:
            raise ValueError(f"pack index {ref.pack} does not fit a u32")
        if not 1 <= ref.length <= MAX_CHUNK_LENGTH:
            raise ValueError(f"chunk length {ref.length} of {_show(rec.path)} is not 1 to {MAX_CHUNK_LENGTH}")


def _check_meta(rec: Record) -> None:
    if not 0 <= rec.mode <= _MODE_MAX:
        raise ValueError(f"mode {rec.mode:#o} of {_show(rec.path)} has bits beyond type and permissions")
    if stat.S_IFMT(rec.mode) not in _TYPE_BITS[rec.kind]:
        raise ValueError(
            f"mode {rec.mode:#o} of {_show(rec.path)} has file-type bits that do not match a "
            f"{rec.kind.name} record"
        )
    for value, what in ((rec.uid, "uid"), (rec.gid, "gid")):
        if not 0 <= value <= _U32_MAX:
            raise ValueError(f"{what} {value} of {_show(rec.path)} does not fit a u32")
    if not _I64_MIN <= rec.mtime_ns <= _I64_MAX:
        raise ValueError(f"mtime {rec.mtime_ns} of {_show(rec.path)} does not fit a signed 64-bit integer")


def _check_record(rec: Record) -> None:
    """Every rule one record must meet on its own."""
    if not isinstance(rec.kind, Kind):
        raise ValueError(f"unknown record kind {rec.kind!r}")
    check_path(rec.path)
    carried = _CARRIED[rec.kind]
    for name in _OPTIONAL:
        if name not in carried and getattr(rec, name):
            raise ValueError(f"a {rec.kind.name} record does not carry {name} (it must be empty or 0)")
    if rec.kind in _HAS_META:
        _check_meta(rec)
    if rec.kind in _HAS_CHUNKS:
        _check_chunks(rec)
    if rec.kind is Kind.FILE:
        for value, what in ((rec.size, "size"), (rec.link_group, "link group")):
            if not 0 <= value <= _U64_MAX:
                raise ValueError(f"{what} {value} of {_show(rec.path)} does not fit a u64")
        total = sum(ref.length for ref in rec.chunks)
        if total > rec.size:
            raise ValueError(f"file {_show(rec.path)} has size {rec.size} but its chunks hold {total} bytes")
    elif rec.kind is Kind.SYMLINK:
        if not 1 <= len(rec.target) <= MAX_TARGET or b"\0" in rec.target:
            raise ValueError(
                f"symlink {_show(rec.path)} needs a target of 1 to {MAX_TARGET} bytes without NUL"
            )
    elif rec.kind is Kind.HARDLINK:
        try:
            check_path(rec.target)
        except ValueError as exc:
            raise ValueError(f"hard link {_show(rec.path)}: target {exc}") from None
        if path_key(rec.target) >= path_key(rec.path):
            raise ValueError(f"hard link {_show(rec.path)} names a target that does not come before it")
    elif rec.kind is Kind.SPECIAL and not 0 <= rec.rdev <= _U64_MAX:
        raise ValueError(f"rdev {rec.rdev} of {_show(rec.path)} does not fit a u64")


class _NodeOrder:
    """Checks the order of records inside one node (ValueError); the stream checker does the rest."""

    def __init__(self) -> None:
        self._prev: Record | None = None
        self._prev_key: tuple[bytes, ...] = ()
        self._file_size: int | None = None  # size of the FILE whose chunks are being summed
        self._file_sum = 0

    def add(self, rec: Record) -> None:
        prev = self._prev
        if rec.kind is Kind.CONTINUATION:
            # The first record of a node may continue the last file of the previous node.
            if prev is not None and (prev.kind not in _HAS_CHUNKS or prev.path != rec.path):
                raise ValueError(
                    f"continuation of {_show(rec.path)} does not follow a FILE or CONTINUATION record "
                    "of the same path"
                )
            if prev is None:  # a node may start with a continuation: later records sort after it
                self._prev_key = path_key(rec.path)
            self._file_sum += sum(ref.length for ref in rec.chunks)
            if self._file_size is not None and self._file_sum > self._file_size:
                raise ValueError(
                    f"file {_show(rec.path)} has size {self._file_size} but its chunks hold more bytes"
                )
        else:
            if prev is not None:
                self._close(prev)
                self._prev_key = _check_follows(self._prev_key, prev.path, rec.path)
            else:
                self._prev_key = path_key(rec.path)
            self._file_size = rec.size if rec.kind is Kind.FILE else None
            self._file_sum = sum(ref.length for ref in rec.chunks)
        self._prev = rec

    def _close(self, prev: Record) -> None:
        if self._file_size is not None and self._file_sum != self._file_size:
            raise ValueError(
                f"file {_show(prev.path)} has size {self._file_size} but its chunks hold "
                f"{self._file_sum} bytes"
            )


def _check_follows(prev_key: tuple[bytes, ...], prev: bytes, cur: bytes) -> tuple[bytes, ...]:
    """``cur`` (not a continuation) must sort strictly after ``prev`` (whose key is ``prev_key``).

    Returns ``cur``'s key, so a caller keeps it for the next record instead of splitting the same
    path twice (this check runs for every record of every backup).
    """
    cur_key = path_key(cur)
    if cur_key == prev_key:
        raise ValueError(f"path {_show(cur)} appears twice")
    if cur_key < prev_key:
        raise ValueError(f"records are out of order: {_show(cur)} after {_show(prev)}")
    return cur_key


def _write_record(w: Writer, rec: Record) -> None:
    w.u8(rec.kind).bytes16(rec.path)
    if rec.kind in _HAS_META:
        w.u32(rec.mode).u32(rec.uid).u32(rec.gid).u64(rec.mtime_ns & _U64_MAX)
    if rec.kind is Kind.FILE:
        w.u64(rec.size).u64(rec.link_group)
    if rec.kind in _HAS_CHUNKS:
        w.u32(len(rec.chunks))
        for ref in rec.chunks:
            w.fixed(ref.chunk_id, CHUNK_ID_SIZE).u32(ref.pack).u32(ref.length)
    if rec.kind in (Kind.SYMLINK, Kind.HARDLINK):
        w.bytes16(rec.target)
    if rec.kind is Kind.SPECIAL:
        w.u64(rec.rdev)


def encode(records: Iterable[Record]) -> bytes:
    """Node plaintext holding ``records`` (at least one); ValueError for any non-canonical value.

    Checks each record alone (path rules, kind-specific fields, type bits of ``mode``, chunk
    lengths >= 1, at most MAX_CHUNKS_PER_RECORD refs) and the order inside the node (path keys
    non-decreasing; equal only for a CONTINUATION following the record it continues).
    """
    recs = list(records)
    if not 1 <= len(recs) <= MAX_RECORDS:
        raise ValueError(f"a tree node holds 1 to {MAX_RECORDS} records, not {len(recs)}")
    order = _NodeOrder()
    w = Writer().header(MAGIC, VERSION).u32(len(recs))
    for rec in recs:
        _check_record(rec)
        order.add(rec)
        _write_record(w, rec)
    data = w.getvalue()
    if len(data) > MAX_NODE_SIZE:
        raise ValueError(f"a tree node of {len(data)} bytes exceeds the limit of {MAX_NODE_SIZE}")
    return data


def _checked(r: Reader, check: Callable[..., None], *args: object) -> None:
    """Run a shared check; its ValueError becomes a FormatError naming the offset."""
    try:
        check(*args)
    except ValueError as exc:
        raise r.error(str(exc)) from None


def _read_chunks(r: Reader, kind: Kind) -> tuple[ChunkRef, ...]:
    n = r.u32()
    low = 1 if kind is Kind.CONTINUATION else 0
    if not low <= n <= MAX_CHUNKS_PER_RECORD:
        raise r.error(f"chunk ref count {n} of a {kind.name} record is not {low} to {MAX_CHUNKS_PER_RECORD}")
    raw = r.take(r.count(n, CHUNK_REF_SIZE) * CHUNK_REF_SIZE)
    return tuple(ChunkRef(chunk_id, pack, length) for chunk_id, pack, length in _REF.iter_unpack(raw))


def _read_record(r: Reader) -> Record:
    code = r.u8()
    try:
        kind = Kind(code)
    except ValueError:
        raise r.error(f"unknown record kind {code}") from None
    path = r.bytes16(MAX_PATH)
    f: dict[str, object] = {}
    if kind in _HAS_META:
        # The signed "q" reads mtime's two's complement directly.
        f["mode"], f["uid"], f["gid"], f["mtime_ns"] = _META.unpack(r.take(_META_SIZE))
    if kind is Kind.FILE:
        f["size"], f["link_group"] = _SIZE_GROUP.unpack(r.take(16))
    if kind in _HAS_CHUNKS:
        f["chunks"] = _read_chunks(r, kind)
    if kind in (Kind.SYMLINK, Kind.HARDLINK):
        f["target"] = r.bytes16(MAX_TARGET)
    if kind is Kind.SPECIAL:
        f["rdev"] = r.u64()
    rec = Record(kind, path, **f)  # type: ignore[arg-type]
    _checked(r, _check_record, rec)
    return rec


def decode(data: bytes, what: str = "tree node") -> tuple[Record, ...]:
    """Strictly decode a node plaintext (FormatError); the same checks as :func:`encode`."""
    r = Reader(data, what)
    expect_header(r, MAGIC, (VERSION,))
    if len(data) > MAX_NODE_SIZE:
        raise r.error(f"{len(data)} bytes exceeds the limit of {MAX_NODE_SIZE}")
    n = r.u32()
    if not 1 <= n <= MAX_RECORDS:
        raise r.error(f"record count {n} is not between 1 and {MAX_RECORDS}")
    order = _NodeOrder()
    records = []
    for _ in range(r.count(n, MIN_RECORD_SIZE)):
        rec = _read_record(r)
        _checked(r, order.add, rec)
        records.append(rec)
    r.finish()
    return tuple(records)


class StreamChecker:
    """Checks the whole record stream, node after node, as a reader walks it (FormatError).

    Rules across records and nodes: path keys non-decreasing (equal only for a CONTINUATION of
    the FILE or CONTINUATION just before it); every record's parent directory is a DIR record
    that came earlier (top-level records have no parent), so a symlink, file or special file is
    never a parent; a HARDLINK's target is an earlier FILE record of the stream; a
    CONTINUATION follows a FILE or CONTINUATION of the same path; pack indexes are below
    ``pack_count``. Memory: the stack of open directories, the previous record, and the set of
    FILE paths with a non-zero link group (hard-link targets).

    Records are expected to come from :func:`decode` (each already valid on its own); the
    stream must hold at least one record, and a HARDLINK's target must have a non-zero link group.
    """

    def __init__(self, *, pack_count: int, what: str = "metadata tree") -> None:
        self._pack_count = pack_count
        self._what = what
        self._count = 0
        self._dirs: list[tuple[bytes, ...]] = []  # open directories, outermost first
        self._prev_path = b""
        self._prev_key: tuple[bytes, ...] = ()
        self._prev_kind: Kind | None = None
        self._file_path = b""
        self._file_size: int | None = None
        self._file_sum = 0
        self._link_targets: set[bytes] = set()

    def _error(self, problem: str) -> FormatError:
        return FormatError(f"{self._what} is corrupt: {problem} (record {self._count})")

    def feed(self, record: Record) -> None:
        """Check ``record`` as the next of the stream; FormatError naming the rule it breaks."""
        self._count += 1
        kind, path = record.kind, record.path
        if kind is Kind.CONTINUATION:
            if self._prev_kind not in _HAS_CHUNKS or self._prev_path != path:
                raise self._error(
                    f"continuation of {_show(path)} does not follow a FILE or CONTINUATION record "
                    "of the same path"
                )
        else:
            if self._prev_kind is not None:
                try:
                    key = _check_follows(self._prev_key, self._prev_path, path)
                except ValueError as exc:
                    raise self._error(str(exc)) from None
            else:
                key = path_key(path)
            self._close_file()
            self._check_parent(key, path)
            self._prev_key = key
            if kind is Kind.DIR:
                self._dirs.append(key)
            elif kind is Kind.FILE:
                self._file_path, self._file_size, self._file_sum = path, record.size, 0
                if record.link_group:
                    self._link_targets.add(path)
            elif kind is Kind.HARDLINK and record.target not in self._link_targets:
                raise self._error(
                    f"hard link {_show(path)} names {_show(record.target)}, which is not an earlier "
                    "FILE record with a link group"
                )
        for ref in record.chunks:
            if ref.pack >= self._pack_count:
                raise self._error(
                    f"a chunk of {_show(path)} names pack {ref.pack}, but the backup has {self._pack_count}"
                )
            self._file_sum += ref.length
        if self._file_size is not None and self._file_sum > self._file_size:
            raise self._error(f"file {_show(path)} has size {self._file_size} but its chunks hold more bytes")
        self._prev_path, self._prev_kind = path, kind

    def _check_parent(self, key: tuple[bytes, ...], path: bytes) -> None:
        dirs = self._dirs
        while dirs and key[: len(dirs[-1])] != dirs[-1]:
            dirs.pop()
        parent = key[:-1]
        if parent and (not dirs or dirs[-1] != parent):
            if self._prev_kind is not None and self._prev_key == parent:
                name = "FILE" if self._prev_kind is Kind.CONTINUATION else self._prev_kind.name
                raise self._error(f"{_show(path)} is inside a {name} record, not a directory")
            raise self._error(f"the parent directory of {_show(path)} has no earlier DIR record")

    def _close_file(self) -> None:
        if self._file_size is not None and self._file_sum != self._file_size:
            raise self._error(
                f"file {_show(self._file_path)} has size {self._file_size} but its chunks hold "
                f"{self._file_sum} bytes"
            )
        self._file_size = None
        self._file_sum = 0

    def finish(self) -> None:
        """The stream has ended: check the last FILE's size against its chunks (FormatError)."""
        if self._count == 0:
            raise self._error("the stream holds no records")
        self._close_file()
