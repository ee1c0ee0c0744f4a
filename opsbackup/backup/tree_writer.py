"""The metadata tree: records spooled during the walk, cut into nodes, sealed into tree packs at the end.

Why spool: a chunk ref names its pack by index into the backup root's pack table, which is
sorted and only known once every data pack of the run is uploaded. So during the walk each
record goes to the spool with its chunk refs packed as ``n x (chunk id | u32 per-run pack slot |
u32 length)``; records are grouped into nodes of about ``node_target`` encoded bytes
(``formats.tree.encoded_size``) and each group is pickled, as tuples of plain values (a quarter
of the cost of pickling ``Record`` objects; each record is made once, when it is sealed), to an
unlinked temporary file in the cache directory (written and read only by this run; the host has
the files themselves, so the spool reveals nothing new). At the end, one node at a time, the
refs get their final pack indexes, the stream is checked (``StreamChecker``), encoded, sealed
under the metadata key and packed. Memory: one node, plus one small entry per node.
"""

from __future__ import annotations

import pickle
import struct
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from crypto.aead import SealingKey
from crypto.packs import finish_pack
from crypto.primitives import random_bytes
from formats import tree
from formats.manifest import StoredObject
from formats.pack import ENTRY_HEADER_SIZE, INDEX_ENTRY_SIZE, PackWriter
from formats.sealed import ObjectType
from opsbackup.backup.packer import Uploader

__all__ = ["REF", "SealedNode", "SpoolItem", "TreeSpool", "seal_tree"]

#: A spooled chunk ref: chunk id, per-run pack slot (or ``pipeline.NEW``), plaintext length.
REF = struct.Struct(">32sII")
OBJECT_ID_SIZE = 32

SealedNode = tuple[bytes, int, bytes]  # object id, tree pack number (this run), first path
#: A spooled record: kind (as an int), path, mode, uid, gid, mtime_ns, size, link_group, target,
#: rdev, and its packed refs (``REF``); the fields of ``tree.Record`` but its chunks.
SpoolItem = tuple[int, bytes, int, int, int, int, int, int, bytes, int, bytes]
_KIND = {int(kind): kind for kind in tree.Kind}


class TreeSpool:
    """Records in stream order, grouped into nodes, kept in a temporary file."""

    def __init__(self, directory: Path, node_target: int) -> None:
        self._file = tempfile.TemporaryFile(dir=directory, prefix="tree-spool-")  # noqa: SIM115 - see close()
        self._target = node_target
        self._items: list[SpoolItem] = []
        self._size = tree.HEADER_SIZE
        self.nodes = 0
        self.records = 0

    def add(self, record: tree.Record, refs: bytes = b"") -> None:
        """Spool ``record`` (whose ``chunks`` are empty) with its packed ``refs``."""
        size = tree.encoded_size(record) + len(refs)
        if self._items and self._size + size > self._target:
            self._flush()
        self._items.append(
            (
                int(record.kind),
                record.path,
                record.mode,
                record.uid,
                record.gid,
                record.mtime_ns,
                record.size,
                record.link_group,
                record.target,
                record.rdev,
                bytes(refs),
            )
        )
        self._size += size
        self.records += 1

    def _flush(self) -> None:
        pickle.dump(self._items, self._file, protocol=pickle.HIGHEST_PROTOCOL)
        self.nodes += 1
        self._items = []
        self._size = tree.HEADER_SIZE

    def read_nodes(self) -> Iterator[list[SpoolItem]]:
        """Every node, in order (the spool cannot be added to afterwards)."""
        if self._items:
            self._flush()
        self._file.flush()
        self._file.seek(0)
        for _ in range(self.nodes):
            items: list[SpoolItem] = pickle.load(self._file)  # noqa: S301 - written by this run, unlinked
            yield items

    def close(self) -> None:
        self._file.close()


def _record(item: SpoolItem, resolve: Callable[[bytes, int], int]) -> tree.Record:
    """The record of a spooled item, with its chunk refs' packs numbered as in the root's table."""
    kind, path, mode, uid, gid, mtime_ns, size, link_group, target, rdev, refs = item
    chunks = (
        tuple(tree.ChunkRef(cid, resolve(cid, slot), length) for cid, slot, length in REF.iter_unpack(refs))
        if refs
        else ()
    )
    return tree.Record(
        kind=_KIND[kind],
        path=path,
        mode=mode,
        uid=uid,
        gid=gid,
        mtime_ns=mtime_ns,
        size=size,
        link_group=link_group,
        target=target,
        rdev=rdev,
        chunks=chunks,
    )


def seal_tree(
    spool: TreeSpool,
    *,
    resolve: Callable[[bytes, int], int],
    data_pack_count: int,
    key: SealingKey,
    backup_id: bytes,
    uploader: Uploader,
    pack_target: int,
    tree_packs: list[StoredObject | None],
) -> list[SealedNode]:
    """Renumber, check, seal and pack every node; ``tree_packs`` receives each tree pack's name and size.

    ``resolve(chunk id, slot)`` is the final index of a spooled ref's pack in the root's table.
    Returns the nodes in order with the run-local number of the tree pack holding each.
    """
    checker = tree.StreamChecker(pack_count=data_pack_count, what="the tree of this backup")
    nodes: list[SealedNode] = []
    writer: PackWriter | None = None

    def done(tag: object, name: bytes, size: int, created: bool) -> None:
        assert isinstance(tag, int)
        tree_packs[tag] = StoredObject(name, size)

    def cut() -> None:
        nonlocal writer
        if writer is not None:
            uploader.submit(finish_pack(writer, key), len(tree_packs) - 1, done)
            writer = None

    for items in spool.read_nodes():
        records = [_record(item, resolve) for item in items]
        for record in records:
            checker.feed(record)
        object_id = random_bytes(OBJECT_ID_SIZE)
        sealed = key.seal(
            tree.encode(records), obj_type=ObjectType.TREE_NODE, backup_id=backup_id, object_id=object_id
        )
        if writer is not None and (
            not writer.fits(len(sealed))
            or writer.final_size + ENTRY_HEADER_SIZE + len(sealed) + INDEX_ENTRY_SIZE > pack_target
        ):
            cut()
        if writer is None:
            writer = PackWriter(backup_id)
            tree_packs.append(None)
        writer.add(ObjectType.TREE_NODE, object_id, sealed)
        nodes.append((object_id, len(tree_packs) - 1, records[0].path))
    checker.finish()
    cut()
    uploader.drain()
    return nodes
