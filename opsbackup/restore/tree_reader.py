"""An opened snapshot: its verified backup root, and its tree nodes read lazily, pack by pack.

:func:`open_snapshot` goes from a verified manifest to a verified backup root: unwrap the
metadata key from the backup's key envelope (browse or data private key) and check its
commitment, fetch the tree root pack
(SHA-256 and size from the signed object list), open it (the pack index authenticates the whole
pack under the metadata key and this backup's id), open the root entry, decode it, and check it
against the manifest: source 0 is this backup with the signed data-key commitment, the other
sources are the earlier backups the manifest signs, and the
root's packs plus the tree root pack and the chunk index are exactly the signed object list.
Tree nodes are then fetched on demand; a few opened tree packs and decoded nodes are cached.
"""

from __future__ import annotations

import bisect
import collections
from collections.abc import Iterator

from crypto.aead import SealingKey
from crypto.packs import open_entry, open_pack
from crypto.unwrapper import ReaderKey
from formats import backup_root, tree
from formats.backup_root import BackupRoot, PackKind
from formats.pack import PackEntry
from formats.sealed import ObjectType
from formats.tree import Record, StreamChecker, path_key
from opsbackup.client.account import Account, VerifiedManifest
from opsbackup.client.repository import Repository
from opsbackup.errors import FormatError, IntegrityError
from opsbackup.restore.keys import Envelopes, metadata_key
from opsbackup.restore.paths import normalize, show, within

__all__ = ["Snapshot", "fetch_pack", "open_snapshot"]

_PACK_CACHE = 4
_NODE_CACHE = 8


class Snapshot:
    """An opened snapshot whose metadata can be read: the manifest, the root, and the tree."""

    def __init__(
        self,
        repo: Repository,
        manifest: VerifiedManifest,
        root: BackupRoot,
        mkey: SealingKey,
        envelopes: Envelopes,
    ) -> None:
        self.manifest = manifest
        self.root = root
        self.envelopes = envelopes
        self._repo = repo
        self._mkey = mkey
        self._bid = manifest.manifest.backup_id
        self.sizes = {obj.name: obj.size for obj in manifest.manifest.objects}
        self._packs: collections.OrderedDict[int, dict[bytes, PackEntry]] = collections.OrderedDict()
        self._nodes: collections.OrderedDict[int, tuple[Record, ...]] = collections.OrderedDict()
        self._node_keys = [path_key(node.first_path) for node in root.nodes]

    @property
    def backup_id(self) -> str:
        return self._bid.hex()

    def __repr__(self) -> str:
        return f"Snapshot({self.manifest.host}/{self.backup_id})"

    # The record stream ---------------------------------------------------------------------------

    def records(self, under: bytes | None = None) -> Iterator[Record]:
        """The records in stream order, checked by ``formats.tree.StreamChecker``.

        With ``under``, only that path and its subtree, found by seeking with the nodes' first
        paths; they are checked together with their ancestors and the earlier files their hard
        links name (see :func:`opsbackup.restore.selection.select`). NotFoundError if absent.
        """
        path = normalize(under) if under is not None else b""
        if path:
            from opsbackup.restore.selection import select  # selection builds on this module

            yield from (rec for rec in select(self, [path]) if within(rec.path, path))
            return
        checker = StreamChecker(
            pack_count=len(self.root.packs), what=f"metadata tree of backup {self.backup_id}"
        )
        for index in range(len(self.root.nodes)):
            for rec in self.node_records(index):
                checker.feed(rec)
                yield rec
        checker.finish()

    def node_records(self, index: int) -> tuple[Record, ...]:
        """The decoded records of node ``index`` (each valid alone; the stream is checked by callers)."""
        cached = self._nodes.get(index)
        if cached is not None:
            self._nodes.move_to_end(index)
            return cached
        node = self.root.nodes[index]
        entry = self._tree_pack(node.pack).get(node.object_id)
        what = f"tree node {index} of backup {self.backup_id}"
        if entry is None or entry.object_type is not ObjectType.TREE_NODE:
            raise IntegrityError(f"{what} is not in the tree pack the backup root names; refusing the backup")
        records = tree.decode(open_entry(entry, self._mkey, backup_id=self._bid), what)
        if records[0].path != node.first_path:
            raise FormatError(f"{what} does not start at {show(node.first_path)}, as the backup root says")
        self._nodes[index] = records
        if len(self._nodes) > _NODE_CACHE:
            self._nodes.popitem(last=False)
        return records

    def seek(self, path: bytes) -> int:
        """The node where the records of ``path`` (if any) can start: the last one that begins before it."""
        return max(bisect.bisect_left(self._node_keys, path_key(path)) - 1, 0)

    def stream_from(self, node: int) -> Iterator[Record]:
        """The records from node ``node`` on, unchecked across nodes."""
        for index in range(node, len(self.root.nodes)):
            yield from self.node_records(index)

    def subtree(self, path: bytes) -> list[Record]:
        """The records of ``path`` and below it, in stream order (empty if ``path`` is not there)."""
        key = path_key(path)
        out: list[Record] = []
        for rec in self.stream_from(self.seek(path)):
            if within(rec.path, path):
                out.append(rec)
            elif path_key(rec.path) > key:
                break
        return out

    def find(self, path: bytes) -> list[Record]:
        """The records of exactly ``path`` (a FILE with its CONTINUATIONs, or one record)."""
        key = path_key(path)
        out: list[Record] = []
        for rec in self.stream_from(self.seek(path)):
            rec_key = path_key(rec.path)
            if rec_key == key:
                out.append(rec)
            elif rec_key > key:
                break
        return out

    # Packs ---------------------------------------------------------------------------------------

    def _tree_pack(self, index: int) -> dict[bytes, PackEntry]:
        cached = self._packs.get(index)
        if cached is not None:
            self._packs.move_to_end(index)
            return cached
        ref = self.root.packs[index]
        if ref.kind is not PackKind.TREE:
            raise FormatError(f"backup root of {self.backup_id} puts a tree node in a data pack")
        entries = fetch_pack(self._repo, ref.name, self.sizes[ref.name], self._mkey, self._bid, "tree pack")
        self._packs[index] = entries
        if len(self._packs) > _PACK_CACHE:
            self._packs.popitem(last=False)
        return entries


def fetch_pack(
    repo: Repository, name: bytes, size: int, key: SealingKey, backup_id: bytes, what: str
) -> dict[bytes, PackEntry]:
    """Fetch a pack (SHA-256 and size checked), open its index, and map object ids to entries."""
    data = repo.get_object(name, size=size, what=what)
    try:
        opened = open_pack(data, key, backup_id=backup_id)
    except IntegrityError as exc:
        raise IntegrityError(f"{what} {name.hex()[:16]} does not open: {exc}") from None
    except FormatError as exc:
        raise FormatError(f"{what} {name.hex()[:16]}: {exc}") from None
    return {entry.object_id: entry for entry in opened.pack.entries}


def open_snapshot(account: Account, snapshot: VerifiedManifest, key: ReaderKey) -> Snapshot:
    """Open ``snapshot`` with a browse or data private key: verify and decode its backup root."""
    m = snapshot.manifest
    bid = m.backup_id.hex()
    envelopes = Envelopes(account)
    mkey = metadata_key(m, envelopes, key)
    sizes = {obj.name: obj.size for obj in m.objects}
    entries = fetch_pack(
        account.repo, m.tree_root_pack, sizes[m.tree_root_pack], mkey, m.backup_id, "tree pack"
    )
    entry = entries.get(m.tree_root)
    if entry is None or entry.object_type is not ObjectType.TREE_NODE:
        raise IntegrityError(f"the tree root of backup {bid} is not in the pack its manifest names")
    root = backup_root.decode(open_entry(entry, mkey, backup_id=m.backup_id), f"backup root of {bid}")
    source0 = root.sources[0]
    if source0.backup_id != m.backup_id:
        raise IntegrityError(f"the backup root of {bid} belongs to backup {source0.backup_id.hex()}")
    if source0.data_key_commitment != m.data_key_commitment:
        raise IntegrityError(f"the backup root of {bid} names another data key than its manifest signs")
    if tuple(src.backup_id for src in root.sources[1:]) != m.sources:
        raise IntegrityError(
            f"the backup root of {bid} names other earlier backups than its manifest signs; refusing it"
        )
    # The tree root pack cannot be in the root's table (its name is a hash over the root): the
    # signed object list is exactly the table's packs, the tree root pack and the chunk index.
    listed = sorted([*(pack.name for pack in root.packs), m.tree_root_pack, m.chunk_index])
    if listed != [obj.name for obj in m.objects]:
        raise IntegrityError(
            f"the packs of backup {bid} are not the objects its manifest signs; refusing the backup"
        )
    return Snapshot(account.repo, snapshot, root, mkey, envelopes)
