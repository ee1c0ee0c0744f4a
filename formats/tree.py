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
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "CHUNK_REF_SIZE",
    "MAGIC",
    "MAX_CHUNKS_PER_RECORD",
    "MAX_COMPONENT",
    "MAX_PATH",
    "MAX_RECORDS",
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
CHUNK_REF_SIZE = 32 + 4 + 4
MAX_RECORDS = 1 << 20


class Kind(enum.IntEnum):
    FILE = 1
    DIR = 2
    SYMLINK = 3
    HARDLINK = 4
    CONTINUATION = 5
    SPECIAL = 6


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


def check_path(path: bytes) -> None:
    """Raise ValueError unless ``path`` is a canonical relative path (rules in the module doc)."""
    raise NotImplementedError


def path_key(path: bytes) -> tuple[bytes, ...]:
    """The sort key of the stream: the path's components (depth-first, siblings by name bytes)."""
    return tuple(path.split(b"/"))


def encoded_size(record: Record) -> int:
    """Bytes ``record`` takes in a node (to cut nodes at a target size without encoding twice)."""
    raise NotImplementedError


def encode(records: Iterable[Record]) -> bytes:
    """Node plaintext holding ``records`` (at least one); ValueError for any non-canonical value.

    Checks each record alone (path rules, kind-specific fields, type bits of ``mode``, chunk
    lengths >= 1, at most MAX_CHUNKS_PER_RECORD refs) and the order inside the node (path keys
    non-decreasing; equal only for a CONTINUATION following the record it continues).
    """
    raise NotImplementedError


def decode(data: bytes, what: str = "tree node") -> tuple[Record, ...]:
    """Strictly decode a node plaintext (FormatError); the same checks as :func:`encode`."""
    raise NotImplementedError


class StreamChecker:
    """Checks the whole record stream, node after node, as a reader walks it (FormatError).

    Rules across records and nodes: path keys non-decreasing (equal only for a CONTINUATION of
    the FILE or CONTINUATION just before it); every record's parent directory is a DIR record
    that came earlier (top-level records have no parent), so a symlink, file or special file is
    never a parent; a HARDLINK's target is an earlier FILE record of the stream; a
    CONTINUATION follows a FILE or CONTINUATION of the same path; pack indexes are below
    ``pack_count``. Memory: the stack of open directories, the previous record, and the set of
    FILE paths with a non-zero link group (hard-link targets).
    """

    def __init__(self, *, pack_count: int, what: str = "metadata tree") -> None:
        raise NotImplementedError

    def feed(self, record: Record) -> None:
        """Check ``record`` as the next of the stream; FormatError naming the rule it breaks."""
        raise NotImplementedError

    def finish(self) -> None:
        """The stream has ended: check the last FILE's size against its chunks (FormatError)."""
        raise NotImplementedError
