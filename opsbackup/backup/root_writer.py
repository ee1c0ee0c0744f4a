"""The end of a run's tree: the backup root's pack table and sources, and the root in its own pack.

Pack table order: data packs sorted by name, then tree packs sorted by name. Chunk refs inside
tree nodes index this table, and the tree packs' names are only known after those nodes are
sealed, so data packs must come first for their indexes to be fixed before any node is sealed.
The root itself lives alone in the *tree root pack*, which cannot be listed in the table it is
part of (its name is the hash of its bytes): the manifest lists it, beside the table's packs and
the chunk index.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from crypto.aead import SealingKey
from crypto.packs import finish_pack
from crypto.primitives import random_bytes
from formats import backup_root
from formats.backup_root import BackupRoot, NodeRef, PackKind, PackRef, Source
from formats.manifest import StoredObject
from formats.pack import PackWriter
from formats.sealed import ObjectType
from opsbackup.backup.cache import Cache
from opsbackup.backup.packer import Slot
from opsbackup.backup.tree_writer import SealedNode

__all__ = ["DataTable", "RootPack", "data_table", "seal_root"]


@dataclass(frozen=True)
class DataTable:
    """The data part of the pack table: index of each registry slot, pack refs and sources."""

    index_of_slot: list[int]
    packs: tuple[PackRef, ...]
    objects: tuple[StoredObject, ...]
    sources: tuple[Source, ...]  # every source but source 0, sorted by backup id


@dataclass(frozen=True)
class RootPack:
    object_id: bytes  # the manifest's tree root
    pack: bytes  # the pack's bytes


def data_table(slots: Sequence[Slot], cache: Cache) -> DataTable:
    """Sort the run's data packs by name and number their sources (0 is this run)."""
    source_rows = sorted({s.source for s in slots if s.source is not None})
    sources = sorted((cache.source(row) for row in source_rows), key=lambda s: s.backup_id)
    by_backup = {src.backup_id: i + 1 for i, src in enumerate(sources)}
    row_index = {row: by_backup[cache.source(row).backup_id] for row in source_rows}
    order = sorted(range(len(slots)), key=lambda i: slots[i].name or b"")
    index_of_slot = [0] * len(slots)
    packs, objects = [], []
    for rank, i in enumerate(order):
        slot = slots[i]
        assert slot.name is not None, "a data pack of this run was never uploaded"
        index_of_slot[i] = rank
        source = 0 if slot.source is None else row_index[slot.source]
        packs.append(PackRef(name=slot.name, source=source, kind=PackKind.DATA))
        objects.append(StoredObject(slot.name, slot.size))
    return DataTable(index_of_slot, tuple(packs), tuple(objects), tuple(sources))


def seal_root(
    table: DataTable,
    *,
    own: Source,
    tree_packs: Sequence[StoredObject],
    nodes: Sequence[SealedNode],
    key: SealingKey,
    backup_id: bytes,
) -> RootPack:
    """Build, seal and pack the backup root (alone in its pack, sealed under the metadata key)."""
    tree_order = sorted(range(len(tree_packs)), key=lambda i: tree_packs[i].name)
    base = len(table.packs)
    tree_index = {i: base + rank for rank, i in enumerate(tree_order)}
    packs = table.packs + tuple(PackRef(tree_packs[i].name, 0, PackKind.TREE) for i in tree_order)
    root = BackupRoot(
        sources=(own, *table.sources),
        packs=packs,
        nodes=tuple(NodeRef(object_id=oid, pack=tree_index[n], first_path=path) for oid, n, path in nodes),
    )
    object_id = random_bytes(32)
    sealed = key.seal(
        backup_root.encode(root), obj_type=ObjectType.TREE_NODE, backup_id=backup_id, object_id=object_id
    )
    writer = PackWriter(backup_id)
    writer.add(ObjectType.TREE_NODE, object_id, sealed)
    return RootPack(object_id=object_id, pack=finish_pack(writer, key))
