"""Manifest body: what one backup is, travelling inside a signed object signed by its host key.

Layout (docs/spec/manifest.md; all integers big-endian)::

    magic "OBMF" | u16 version = 1 | backup id (16) | account id (16) | host key id (32)
    | u64 time | previous manifest hash (32) | u64 keyring version
    | data key commitment (32) | metadata key commitment (32)
    | tree root object id (32) | tree root pack (32) | chunk index (32)
    | u64 file count | u64 total bytes | u64 added bytes
    | utf8 host name | u8 tag count | tag count x utf8 tag
    | u16 source count | count x source backup id (16)
    | u32 object count | count x (object name (32) | u64 size) | root hash (32)

``root hash`` is SHA-256 of the exact encoded object list (from the u32 object count to the last
entry); the decoder recomputes it. ``tree root pack`` and ``chunk index`` (the object name of the
backup's chunk index, ``formats.chunk_index``) are two different names, both in the object list.
Every list is sorted and free of duplicates, every count and length is bounded, and
``encode(decode(b)) == b`` for every ``b`` that decodes. This module does no policy: that the
body's host key id equals the envelope's signer and that the chain of previous hashes holds are
checked in ``crypto``. The wrapped per-backup keys are not here: they are in the backup's key
envelope (``formats.envelope``), which a key rotation can replace; ``sources`` names the earlier
backups whose key envelopes a reader of this backup also needs.
"""

from __future__ import annotations

import bisect
import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from formats._wire import Reader, Writer, check_strictly_sorted, expect_header

__all__ = [
    "ACCOUNT_ID_SIZE",
    "BACKUP_ID_SIZE",
    "FIRST_PREVIOUS",
    "HASH_SIZE",
    "HOST_NAME_MAX",
    "MAGIC",
    "MAX_OBJECTS",
    "MAX_TAGS",
    "MAX_SOURCES",
    "MIN_OBJECTS",
    "TAG_MAX",
    "VERSION",
    "Manifest",
    "Statistics",
    "StoredObject",
    "decode",
    "encode",
    "object_list_hash",
]

MAGIC = b"OBMF"
VERSION = 1
BACKUP_ID_SIZE = 16
ACCOUNT_ID_SIZE = 16
HASH_SIZE = 32  # key ids, hashes, commitments, object ids and object names
#: The previous-manifest hash of a host's first backup.
FIRST_PREVIOUS = bytes(HASH_SIZE)
#: One DNS label; the same rule as the storage server's host label (opsbackup/server/common.py).
HOST_NAME_MAX = 63
TAG_MAX = 64
MAX_TAGS = 16
#: Earlier backups whose data keys seal packs this backup reuses (as in the backup root).
MAX_SOURCES = 0xFFFF
#: 2^22 objects: 160 MiB of object list, inside the signed envelope's 256 MiB body limit.
MAX_OBJECTS = 1 << 22
#: The tree root pack and the chunk index, at least.
MIN_OBJECTS = 2
_OBJECT_ENTRY_SIZE = HASH_SIZE + 8
_U64_MAX = (1 << 64) - 1

_HOST_NAME = re.compile(r"[a-z0-9][a-z0-9._-]*")
_TAG = re.compile(r"[A-Za-z0-9._:=@+-]+")


@dataclass(frozen=True)
class StoredObject:
    """One stored object the backup needs: its name (SHA-256 of its bytes) and its size."""

    name: bytes
    size: int


@dataclass(frozen=True)
class Statistics:
    """Counts reported to the user. Informational: restore never trusts them for bounds."""

    files: int = 0  # regular files in the tree
    total_bytes: int = 0  # sum of the sizes of those files
    added_bytes: int = 0  # bytes of stored objects this backup uploaded (not deduplicated)


@dataclass(frozen=True)
class Manifest:
    """A decoded manifest body. ``encode`` refuses (ValueError) any value that is not canonical."""

    backup_id: bytes
    account_id: bytes
    host_key_id: bytes
    time: int
    previous_manifest_hash: bytes
    keyring_version: int
    data_key_commitment: bytes
    metadata_key_commitment: bytes
    tree_root: bytes
    tree_root_pack: bytes
    chunk_index: bytes  # object name of the backup's chunk index (in the object list)
    host_name: str
    sources: tuple[bytes, ...]  # earlier backups whose packs this one reuses, sorted
    objects: tuple[StoredObject, ...]
    statistics: Statistics = field(default_factory=Statistics)
    tags: tuple[str, ...] = ()

    @property
    def root_hash(self) -> bytes:
        """SHA-256 of the encoded object list (see :func:`object_list_hash`)."""
        return object_list_hash(self.objects)


def _encode_objects(objects: Sequence[StoredObject]) -> bytes:
    w = Writer().u32(len(objects))
    for obj in objects:
        w.fixed(obj.name, HASH_SIZE).u64(obj.size)
    return w.getvalue()


def object_list_hash(objects: Sequence[StoredObject]) -> bytes:
    """The root hash: SHA-256 over ``u32 count || (name || u64 size)*`` exactly as encoded."""
    return hashlib.sha256(_encode_objects(objects)).digest()


# Field checks shared by encode (ValueError) and decode (FormatError, via _checked).


def _check_host_name(name: str) -> None:
    if not 1 <= len(name.encode("utf-8")) <= HOST_NAME_MAX or not _HOST_NAME.fullmatch(name):
        raise ValueError(
            f"host name must be 1 to {HOST_NAME_MAX} of a-z 0-9 . _ - starting with a letter or digit"
        )


def _check_tags(tags: Sequence[str]) -> None:
    if len(tags) > MAX_TAGS:
        raise ValueError(f"{len(tags)} tags, more than the limit of {MAX_TAGS}")
    for tag in tags:
        if not 1 <= len(tag.encode("utf-8")) <= TAG_MAX or not _TAG.fullmatch(tag):
            raise ValueError(f"tag {tag!r} must be 1 to {TAG_MAX} of A-Z a-z 0-9 . _ - : = @ +")
    check_strictly_sorted([t.encode("utf-8") for t in tags], "tags")


def _check_sources(sources: Sequence[bytes], backup_id: bytes) -> None:
    if len(sources) > MAX_SOURCES:
        raise ValueError(f"{len(sources)} sources; a manifest names at most {MAX_SOURCES}")
    if any(len(s) != BACKUP_ID_SIZE for s in sources):
        raise ValueError(f"a source is a {BACKUP_ID_SIZE}-byte backup id")
    check_strictly_sorted(sources, "sources")
    if _contains_sorted(sources, backup_id):
        raise ValueError("the backup names itself as a source")


def _check_objects(objects: Sequence[StoredObject], tree_root_pack: bytes, chunk_index: bytes) -> None:
    if not MIN_OBJECTS <= len(objects) <= MAX_OBJECTS:
        raise ValueError(f"{len(objects)} objects; a manifest lists {MIN_OBJECTS} to {MAX_OBJECTS}")
    for obj in objects:
        if len(obj.name) != HASH_SIZE or not 1 <= obj.size <= _U64_MAX:
            raise ValueError("an object needs a 32-byte name and a size of at least 1")
    names = [obj.name for obj in objects]
    check_strictly_sorted(names, "objects")
    if not _contains_sorted(names, tree_root_pack):
        raise ValueError("the tree root pack is not in the object list")
    if not _contains_sorted(names, chunk_index):
        raise ValueError("the chunk index is not in the object list")
    if chunk_index == tree_root_pack:
        raise ValueError("the chunk index and the tree root pack are the same object")


def _contains_sorted(names: Sequence[bytes], name: bytes) -> bool:
    i = bisect.bisect_left(names, name)
    return i < len(names) and names[i] == name


def _check_u64(value: int, what: str) -> None:
    if not 0 <= value <= _U64_MAX:
        raise ValueError(f"{what} does not fit a u64")


def encode(m: Manifest) -> bytes:
    """The canonical encoding of ``m``; raises ValueError for any value ``decode`` would refuse."""
    for value, what in (
        (m.time, "time"),
        (m.keyring_version, "keyring version"),
        (m.statistics.files, "file count"),
        (m.statistics.total_bytes, "total bytes"),
        (m.statistics.added_bytes, "added bytes"),
    ):
        _check_u64(value, what)
    _check_host_name(m.host_name)
    _check_tags(m.tags)
    _check_sources(m.sources, m.backup_id)
    _check_objects(m.objects, m.tree_root_pack, m.chunk_index)
    w = (
        Writer()
        .header(MAGIC, VERSION)
        .fixed(m.backup_id, BACKUP_ID_SIZE)
        .fixed(m.account_id, ACCOUNT_ID_SIZE)
        .fixed(m.host_key_id, HASH_SIZE)
        .u64(m.time)
        .fixed(m.previous_manifest_hash, HASH_SIZE)
        .u64(m.keyring_version)
        .fixed(m.data_key_commitment, HASH_SIZE)
        .fixed(m.metadata_key_commitment, HASH_SIZE)
        .fixed(m.tree_root, HASH_SIZE)
        .fixed(m.tree_root_pack, HASH_SIZE)
        .fixed(m.chunk_index, HASH_SIZE)
        .u64(m.statistics.files)
        .u64(m.statistics.total_bytes)
        .u64(m.statistics.added_bytes)
        .utf8_16(m.host_name)
        .u8(len(m.tags))
    )
    for tag in m.tags:
        w.utf8_16(tag)
    w.u16(len(m.sources))
    for source in m.sources:
        w.fixed(source, BACKUP_ID_SIZE)
    object_list = _encode_objects(m.objects)
    return w.raw(object_list).raw(hashlib.sha256(object_list).digest()).getvalue()


def _checked(r: Reader, check: Callable[..., None], *args: object) -> None:
    """Run a shared field check; its ValueError becomes a FormatError naming the offset."""
    try:
        check(*args)
    except ValueError as exc:
        raise r.error(str(exc)) from None


def decode(data: bytes, what: str = "manifest") -> Manifest:
    """Strictly decode a manifest body (the verified body of a signed ``OBMF`` object)."""
    r = Reader(data, what)
    expect_header(r, MAGIC, (VERSION,))
    backup_id = r.take(BACKUP_ID_SIZE)
    account_id = r.take(ACCOUNT_ID_SIZE)
    host_key_id = r.take(HASH_SIZE)
    time = r.u64()
    previous = r.take(HASH_SIZE)
    keyring_version = r.u64()
    data_commitment = r.take(HASH_SIZE)
    metadata_commitment = r.take(HASH_SIZE)
    tree_root = r.take(HASH_SIZE)
    tree_root_pack = r.take(HASH_SIZE)
    chunk_index = r.take(HASH_SIZE)
    stats = Statistics(files=r.u64(), total_bytes=r.u64(), added_bytes=r.u64())

    host_name = r.utf8_16(HOST_NAME_MAX)
    _checked(r, _check_host_name, host_name)

    n_tags = r.u8()
    if n_tags > MAX_TAGS:
        raise r.error(f"tag count {n_tags} exceeds the limit of {MAX_TAGS}")
    tags = tuple(r.utf8_16(TAG_MAX) for _ in range(r.count(n_tags, 2)))
    _checked(r, _check_tags, tags)

    sources = tuple(r.take(BACKUP_ID_SIZE) for _ in range(r.count(r.u16(), BACKUP_ID_SIZE)))
    _checked(r, _check_sources, sources, backup_id)

    list_start = r.offset
    n_objects = r.u32()
    if not MIN_OBJECTS <= n_objects <= MAX_OBJECTS:
        raise r.error(f"object count {n_objects} is not between {MIN_OBJECTS} and {MAX_OBJECTS}")
    objects = tuple(
        StoredObject(name=r.take(HASH_SIZE), size=r.u64())
        for _ in range(r.count(n_objects, _OBJECT_ENTRY_SIZE))
    )
    list_end = r.offset
    _checked(r, _check_objects, objects, tree_root_pack, chunk_index)
    root_hash = r.take(HASH_SIZE)
    if hashlib.sha256(data[list_start:list_end]).digest() != root_hash:
        raise r.error("root hash does not match the object list")
    r.finish()
    return Manifest(
        backup_id=backup_id,
        account_id=account_id,
        host_key_id=host_key_id,
        time=time,
        previous_manifest_hash=previous,
        keyring_version=keyring_version,
        data_key_commitment=data_commitment,
        metadata_key_commitment=metadata_commitment,
        tree_root=tree_root,
        tree_root_pack=tree_root_pack,
        chunk_index=chunk_index,
        host_name=host_name,
        sources=sources,
        objects=objects,
        statistics=stats,
        tags=tags,
    )
