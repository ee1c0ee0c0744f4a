"""Backup root (``OBRT``): the first object a reader opens after the manifest.

Sealed (object type ``TREE_NODE``) under the backup's metadata key; the manifest's ``tree root``
is its object id and ``tree root pack`` the pack holding it. It says where everything of the
backup is and which per-backup data keys open it:

* **sources**: every backup whose packs this backup's files use (deduplication reaches into
  earlier backups, whose chunks stay sealed under *their* data keys). Source 0 is this backup
  itself. Each source carries the data-key commitment of that backup, against which a reader
  checks the data key it unwraps from that backup's key envelope (``formats.envelope``); the
  manifest names the same earlier backups (its ``sources``), so the server keeps their envelopes
  for as long as this backup needs them.
* **packs**: every pack the backup needs (data packs and tree packs), with the source whose key
  sealed it. The manifest's object list holds these names and the chunk index's (and nothing else).
* **nodes**: the tree nodes (``formats.tree``) in stream order: object id, pack, and the path of
  the node's first record (for seeking to a path without reading every node).

Layout (docs/spec/backup-root.md; integers big-endian)::

    "OBRT" | u16 version = 1
    | u16 source count S (>= 1) | S x source
        source: backup id (16) | data key commitment (32)
    | u32 pack count P | P x (pack name (32) | u16 source index | u8 pack kind)
    | u32 node count N (>= 1) | N x (object id (32) | u32 pack index | bytes16 first path)

Rules: source 0's backup id is the manifest's; other sources are sorted by backup id, unique,
and are exactly the manifest's ``sources``. Packs are ordered data first, then
tree, each run sorted by name, unique; kind 1 = data (sealed under its source's data key),
2 = tree (always source 0: tree nodes are never shared between backups). A node's pack is a
tree pack. First paths are non-decreasing by component (``formats.tree.path_key``).

Settled details (docs/spec/backup-root.md): no source after source 0 repeats source 0's backup
id; there is at least one pack; each
first path is a canonical path (``formats.tree.check_path``). The source encoding is the same as
in ``formats.chunk_index``.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from formats._wire import Reader, Writer, check_strictly_sorted, expect_header
from formats.tree import MAX_PATH, check_path, path_key

__all__ = [
    "BACKUP_ID_SIZE",
    "HASH_SIZE",
    "MAGIC",
    "MAX_NODES",
    "MAX_PACKS",
    "MAX_SOURCES",
    "NODE_ENTRY_MIN_SIZE",
    "PACK_ENTRY_SIZE",
    "SOURCE_SIZE",
    "VERSION",
    "BackupRoot",
    "NodeRef",
    "PackKind",
    "PackRef",
    "Source",
    "decode",
    "check_source",
    "encode",
    "read_source",
    "write_source",
]

MAGIC = b"OBRT"
VERSION = 1
MAX_SOURCES = 0xFFFF
MAX_PACKS = 1 << 22  # the manifest's object limit
MAX_NODES = 1 << 22
BACKUP_ID_SIZE = 16
HASH_SIZE = 32  # commitments, pack names, object ids
#: A source: backup id and data key commitment.
SOURCE_SIZE = BACKUP_ID_SIZE + HASH_SIZE
#: pack name, u16 source index, u8 kind.
PACK_ENTRY_SIZE = HASH_SIZE + 2 + 1
#: object id, u32 pack index, first path of one byte.
NODE_ENTRY_MIN_SIZE = HASH_SIZE + 4 + 2 + 1


class PackKind(enum.IntEnum):
    DATA = 1
    TREE = 2


@dataclass(frozen=True)
class Source:
    """A backup whose data key sealed some of this backup's packs."""

    backup_id: bytes  # 16
    data_key_commitment: bytes  # 32


@dataclass(frozen=True)
class PackRef:
    name: bytes  # 32: SHA-256 of the pack's bytes
    source: int  # index into BackupRoot.sources
    kind: PackKind


@dataclass(frozen=True)
class NodeRef:
    object_id: bytes  # 32: the node's object id (bound into its AAD)
    pack: int  # index into BackupRoot.packs (a TREE pack)
    first_path: bytes  # path of the node's first record


@dataclass(frozen=True)
class BackupRoot:
    sources: tuple[Source, ...]
    packs: tuple[PackRef, ...]
    nodes: tuple[NodeRef, ...]


# Checks shared by encode (ValueError) and decode (FormatError, via _checked).


def check_source(src: Source) -> None:
    """ValueError unless ``src`` has a 16-byte backup id and a 32-byte commitment."""
    if len(src.backup_id) != BACKUP_ID_SIZE or len(src.data_key_commitment) != HASH_SIZE:
        raise ValueError("a source needs a 16-byte backup id and a 32-byte data key commitment")


def write_source(w: Writer, src: Source) -> None:
    """A source's bytes (the same in a backup root and in a chunk-index segment)."""
    w.fixed(src.backup_id, BACKUP_ID_SIZE).fixed(src.data_key_commitment, HASH_SIZE)


def read_source(r: Reader) -> Source:
    """Read one source (its fixed 48 bytes)."""
    return Source(backup_id=r.take(BACKUP_ID_SIZE), data_key_commitment=r.take(HASH_SIZE))


def _check_sources(sources: Sequence[Source]) -> None:
    if not 1 <= len(sources) <= MAX_SOURCES:
        raise ValueError(f"{len(sources)} sources; a backup root holds 1 to {MAX_SOURCES}")
    for src in sources:
        check_source(src)
    ids = [s.backup_id for s in sources[1:]]
    check_strictly_sorted(ids, "sources after source 0")
    if sources[0].backup_id in ids:
        raise ValueError("a source repeats the backup id of source 0 (this backup)")


def _check_pack(pack: PackRef, source_count: int) -> None:
    if len(pack.name) != HASH_SIZE:
        raise ValueError("a pack name is 32 bytes")
    if not isinstance(pack.kind, PackKind):
        raise ValueError(f"unknown pack kind {pack.kind!r}")
    if not 0 <= pack.source < source_count:
        raise ValueError(f"a pack names source {pack.source}, but the root has {source_count}")
    if pack.kind is PackKind.TREE and pack.source != 0:
        raise ValueError(f"a tree pack names source {pack.source}: tree packs belong to source 0")


def _check_packs(packs: Sequence[PackRef], source_count: int) -> None:
    if not 1 <= len(packs) <= MAX_PACKS:
        raise ValueError(f"{len(packs)} packs; a backup root holds 1 to {MAX_PACKS}")
    for pack in packs:
        _check_pack(pack, source_count)
    _check_pack_order(packs)


def _check_pack_order(packs: Sequence[PackRef]) -> None:
    """Data packs first, then tree packs, each run sorted by name, no name twice.

    A writer must know every data pack's index before it seals the tree nodes that name them,
    and the tree packs' names exist only after those nodes are sealed: so tree packs come last.
    """
    if len({p.name for p in packs}) != len(packs):
        raise ValueError("packs hold a duplicate entry")
    check_strictly_sorted([bytes([p.kind]) + p.name for p in packs], "packs")


def _check_node(node: NodeRef, packs: Sequence[PackRef]) -> None:
    if len(node.object_id) != HASH_SIZE:
        raise ValueError("a node object id is 32 bytes")
    if not 0 <= node.pack < len(packs):
        raise ValueError(f"a node names pack {node.pack}, but the root has {len(packs)}")
    if packs[node.pack].kind is not PackKind.TREE:
        raise ValueError(f"a node names pack {node.pack}, which is not a tree pack")
    try:
        check_path(node.first_path)
    except ValueError as exc:
        raise ValueError(f"a node's first path: {exc}") from None


def _check_nodes(nodes: Sequence[NodeRef], packs: Sequence[PackRef]) -> None:
    if not 1 <= len(nodes) <= MAX_NODES:
        raise ValueError(f"{len(nodes)} nodes; a backup root holds 1 to {MAX_NODES}")
    prev: tuple[bytes, ...] | None = None
    for node in nodes:
        _check_node(node, packs)
        key = path_key(node.first_path)
        if prev is not None and key < prev:
            raise ValueError("node first paths are out of order")
        prev = key


def encode(root: BackupRoot) -> bytes:
    """Canonical plaintext of ``root``; ValueError for anything :func:`decode` would refuse."""
    _check_sources(root.sources)
    _check_packs(root.packs, len(root.sources))
    _check_nodes(root.nodes, root.packs)
    w = Writer().header(MAGIC, VERSION).u16(len(root.sources))
    for src in root.sources:
        write_source(w, src)
    w.u32(len(root.packs))
    for pack in root.packs:
        w.raw(pack.name).u16(pack.source).u8(pack.kind)
    w.u32(len(root.nodes))
    for node in root.nodes:
        w.raw(node.object_id).u32(node.pack).bytes16(node.first_path)
    return w.getvalue()


def _checked(r: Reader, check: Callable[..., None], *args: object) -> None:
    """Run a shared check; its ValueError becomes a FormatError naming the offset."""
    try:
        check(*args)
    except ValueError as exc:
        raise r.error(str(exc)) from None


def _read_pack(r: Reader, source_count: int) -> PackRef:
    name = r.take(HASH_SIZE)
    source = r.u16()
    code = r.u8()
    try:
        kind = PackKind(code)
    except ValueError:
        raise r.error(f"unknown pack kind {code}") from None
    pack = PackRef(name=name, source=source, kind=kind)
    _checked(r, _check_pack, pack, source_count)
    return pack


def _read_node(r: Reader, packs: Sequence[PackRef]) -> NodeRef:
    node = NodeRef(object_id=r.take(HASH_SIZE), pack=r.u32(), first_path=r.bytes16(MAX_PATH))
    _checked(r, _check_node, node, packs)
    return node


def decode(data: bytes, what: str = "backup root") -> BackupRoot:
    """Strictly decode a backup root plaintext (FormatError). Does not check source 0's id
    against the manifest: the caller (which knows the manifest) does."""
    r = Reader(data, what)
    expect_header(r, MAGIC, (VERSION,))
    n_sources = r.u16()
    if not 1 <= n_sources <= MAX_SOURCES:
        raise r.error(f"source count {n_sources} is not between 1 and {MAX_SOURCES}")
    sources = tuple(read_source(r) for _ in range(r.count(n_sources, SOURCE_SIZE)))
    _checked(r, _check_sources, sources)

    n_packs = r.u32()
    if not 1 <= n_packs <= MAX_PACKS:
        raise r.error(f"pack count {n_packs} is not between 1 and {MAX_PACKS}")
    packs = tuple(_read_pack(r, n_sources) for _ in range(r.count(n_packs, PACK_ENTRY_SIZE)))
    _checked(r, _check_pack_order, packs)

    n_nodes = r.u32()
    if not 1 <= n_nodes <= MAX_NODES:
        raise r.error(f"node count {n_nodes} is not between 1 and {MAX_NODES}")
    nodes: list[NodeRef] = []
    prev: tuple[bytes, ...] | None = None
    for _ in range(r.count(n_nodes, NODE_ENTRY_MIN_SIZE)):
        node = _read_node(r, packs)
        key = path_key(node.first_path)
        if prev is not None and key < prev:
            raise r.error("node first paths are out of order")
        prev = key
        nodes.append(node)
    r.finish()
    return BackupRoot(sources=sources, packs=packs, nodes=tuple(nodes))
