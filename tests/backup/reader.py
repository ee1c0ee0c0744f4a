"""A minimal, test-only reader of what a backup left on the server, opened with the test's data key.

It follows the restore order of docs/design.md closely enough to prove contents: verify the
manifest, unwrap and check both keys, open the root from the tree root pack, walk the nodes
(checked as one stream), and read a file's chunks from their packs, checking each chunk id.
The real restore engine is ``opsbackup.restore``; this exists so the engine's tests do not
depend on it.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import zstandard

from crypto.aead import SealingKey
from crypto.dedup import ChunkIdKey
from crypto.envelope import open_envelope, readers_trusted_signers
from crypto.packs import OpenedPack, open_entry, open_pack
from crypto.primitives import public_key_id
from crypto.wrap import select_record, unwrap_key
from formats import backup_root, tree
from formats.backup_root import BackupRoot, PackKind
from formats.roles import Role
from formats.sealed import Compression, decode_chunk_payload
from opsbackup.client.account import Account, VerifiedManifest
from tests.client_support import AccountKeys

__all__ = ["OpenedBackup", "open_backup"]


def _unwrap(account: Account, keys: AccountKeys, role: Role, backup_id: bytes) -> SealingKey:
    """The key of ``role`` of ``backup_id``, from its key envelope on the server (verified)."""
    keyring = account.keyring
    env, _ = open_envelope(
        account.repo.get_envelope(backup_id),
        trusted=readers_trusted_signers(keyring, None),
        account_id=keyring.account_id,
        backup_id=backup_id,
    )
    own = public_key_id(keys.data.public_key())
    record = select_record(env.wrapped_keys(), own, role=role)
    return SealingKey(unwrap_key(record, keys.data, role=role, backup_id=backup_id))


@dataclass
class OpenedBackup:
    """A backup opened with the data key: its manifest, root and records, and file contents."""

    account: Account
    keys: AccountKeys
    verified: VerifiedManifest
    root: BackupRoot
    metadata_key: SealingKey
    records: list[tree.Record] = field(default_factory=list)
    _packs: dict[bytes, OpenedPack] = field(default_factory=dict)

    @property
    def backup_id(self) -> bytes:
        return self.verified.manifest.backup_id

    def by_path(self) -> dict[bytes, tree.Record]:
        """The first record of each path (a FILE, not its continuations)."""
        out: dict[bytes, tree.Record] = {}
        for record in self.records:
            out.setdefault(record.path, record)
        return out

    @functools.cached_property
    def _sizes(self) -> dict[bytes, int]:
        return {obj.name: obj.size for obj in self.verified.manifest.objects}

    def source_key(self, source: int) -> SealingKey:
        src = self.root.sources[source]
        key = _unwrap(self.account, self.keys, Role.DATA, src.backup_id)
        key.verify_commitment(src.data_key_commitment)
        return key

    def pack(self, index: int) -> OpenedPack:
        ref = self.root.packs[index]
        if ref.name not in self._packs:
            data = self.account.repo.get_object(ref.name, size=self._sizes[ref.name], what="pack")
            if ref.kind is PackKind.TREE:
                key, owner = self.metadata_key, self.backup_id
            else:
                key, owner = self.source_key(ref.source), self.root.sources[ref.source].backup_id
            self._packs[ref.name] = open_pack(data, key, backup_id=owner)
        return self._packs[ref.name]

    def content(self, path: bytes) -> bytes:
        """The bytes of the FILE record at ``path`` (and its continuations), chunk ids checked."""
        id_key = ChunkIdKey(self.keys.dedup_secret)
        out = bytearray()
        for record in self.records:
            if record.path != path or record.kind not in (tree.Kind.FILE, tree.Kind.CONTINUATION):
                continue
            for ref in record.chunks:
                opened = self.pack(ref.pack)
                ref_pack = self.root.packs[ref.pack]
                entry = next(e for e in opened.pack.entries if e.object_id == ref.chunk_id)
                key = self.source_key(ref_pack.source)
                owner = self.root.sources[ref_pack.source].backup_id
                payload = decode_chunk_payload(open_entry(entry, key, backup_id=owner))
                data = payload.payload
                if payload.compression is Compression.ZSTD:
                    data = zstandard.ZstdDecompressor().decompress(data, max_output_size=ref.length)
                assert len(data) == ref.length
                id_key.verify(data, ref.chunk_id)
                out += data
        return bytes(out)


def open_backup(account: Account, keys: AccountKeys, host: str, backup_id: str) -> OpenedBackup:
    """Verify and open one backup; every node is read and the stream checked."""
    verified = account.fetch_manifest(host, backup_id)
    manifest = verified.manifest
    meta = _unwrap(account, keys, Role.BROWSE, manifest.backup_id)
    meta.verify_commitment(manifest.metadata_key_commitment)
    sizes = {obj.name: obj.size for obj in manifest.objects}
    root_pack = open_pack(
        account.repo.get_object(manifest.tree_root_pack, size=sizes[manifest.tree_root_pack]),
        meta,
        backup_id=manifest.backup_id,
    )
    entry = next(e for e in root_pack.pack.entries if e.object_id == manifest.tree_root)
    root = backup_root.decode(open_entry(entry, meta, backup_id=manifest.backup_id))
    assert root.sources[0].backup_id == manifest.backup_id
    assert root.sources[0].data_key_commitment == manifest.data_key_commitment
    opened = OpenedBackup(account, keys, verified, root, meta)
    checker = tree.StreamChecker(pack_count=len(root.packs))
    for node in root.nodes:
        pack = opened.pack(node.pack)
        node_entry = next(e for e in pack.pack.entries if e.object_id == node.object_id)
        records = tree.decode(open_entry(node_entry, meta, backup_id=manifest.backup_id))
        assert records[0].path == node.first_path
        for record in records:
            checker.feed(record)
            opened.records.append(record)
    checker.finish()
    return opened
