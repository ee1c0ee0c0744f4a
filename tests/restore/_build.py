"""Build snapshots for restore tests directly from the formats and crypto APIs, honest or hostile.

:class:`Builder` turns a list of :class:`Entry` (or a real directory, :func:`entries_from_dir`)
into everything one backup leaves on the server: data packs (chunks sealed under a fresh data
key), tree packs (nodes under a fresh metadata key), the backup root alone in the tree root pack,
a chunk index, and a manifest signed by the host key. Hooks let a test make it hostile: records
the format refuses (``raw=True`` encodes without any check), a changed root or manifest, a
damaged pack (before it is hashed, so the manifest signs the damage).

The backup root cannot list the pack that holds it (a hash cannot cover itself), so the root
is alone in the tree root pack and that pack is not in its table. The table holds the data
packs sorted by name, then the (one) tree pack, so chunk refs are known before nodes are sealed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import stat
import struct
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import zstandard
from cryptography.hazmat.primitives.asymmetric import rsa

from crypto.aead import SealingKey
from crypto.chunk_index import seal_chunk_index, split_segments
from crypto.dedup import ChunkIdKey
from crypto.envelope import envelope_body
from crypto.packs import finish_pack
from crypto.primitives import public_key_id, random_bytes
from crypto.private import sign_object
from crypto.wrap import wrap_to_recipients
from formats import backup_root, manifest, tree, wrapped_key
from formats.backup_root import BackupRoot, NodeRef, PackKind, PackRef, Source
from formats.chunk_index import Entry as IndexEntry
from formats.manifest import FIRST_PREVIOUS, Manifest, StoredObject
from formats.pack import PackWriter
from formats.roles import Role
from formats.sealed import ChunkPayload, Compression, ObjectType, encode_chunk_payload
from formats.tree import ChunkRef, Kind, Record
from opsbackup.client.repository import Repository
from tests.client_support import AccountKeys, ClientEnv

__all__ = [
    "Built",
    "Builder",
    "Entry",
    "dir_",
    "entries_from_dir",
    "fifo",
    "file",
    "hardlink",
    "envelope_key",
    "manifest_key",
    "object_key",
    "raw_node",
    "raw_root",
    "symlink",
    "tamper",
]

MTIME = 1_600_000_000_123_456_789


@dataclass(frozen=True)
class Entry:
    """One path of a test tree; ``content`` for files, ``target`` for links."""

    kind: Kind
    path: bytes
    content: bytes = b""
    mode: int = 0
    uid: int = 0
    gid: int = 0
    mtime_ns: int = MTIME
    target: bytes = b""
    rdev: int = 0
    link_group: int = 0


def file(
    path: bytes, content: bytes = b"", mode: int = 0o644, *, mtime_ns: int = MTIME, link_group: int = 0
) -> Entry:
    return Entry(Kind.FILE, path, content, mode | stat.S_IFREG, mtime_ns=mtime_ns, link_group=link_group)


def dir_(path: bytes, mode: int = 0o755, *, mtime_ns: int = MTIME) -> Entry:
    return Entry(Kind.DIR, path, mode=mode | stat.S_IFDIR, mtime_ns=mtime_ns)


def symlink(path: bytes, target: bytes, *, mtime_ns: int = MTIME) -> Entry:
    return Entry(Kind.SYMLINK, path, mode=0o777 | stat.S_IFLNK, target=target, mtime_ns=mtime_ns)


def hardlink(path: bytes, target: bytes) -> Entry:
    return Entry(Kind.HARDLINK, path, target=target)


def fifo(path: bytes, mode: int = 0o640) -> Entry:
    return Entry(Kind.SPECIAL, path, mode=mode | stat.S_IFIFO)


def entries_from_dir(root: Path) -> list[Entry]:
    """Every entry below ``root`` in stream order (as a backup engine would see it)."""
    out: list[Entry] = []
    links: dict[tuple[int, int], bytes] = {}
    group = 0

    def walk(directory: bytes, rel: bytes) -> None:
        nonlocal group
        for name in sorted(os.listdir(directory)):
            full, path = directory + b"/" + name, (rel + b"/" + name if rel else name)
            st = os.lstat(full)
            meta = Entry(
                Kind.DIR, path, mode=st.st_mode, uid=st.st_uid, gid=st.st_gid, mtime_ns=st.st_mtime_ns
            )
            if stat.S_ISDIR(st.st_mode):
                out.append(meta)
                walk(full, path)
            elif stat.S_ISLNK(st.st_mode):
                out.append(dataclasses.replace(meta, kind=Kind.SYMLINK, target=os.readlink(full)))
            elif stat.S_ISREG(st.st_mode):
                key = (st.st_dev, st.st_ino)
                if st.st_nlink > 1 and key in links:
                    out.append(Entry(Kind.HARDLINK, path, target=links[key]))
                    continue
                link_group = 0
                if st.st_nlink > 1:
                    group += 1
                    link_group, links[key] = group, path
                with open(full, "rb") as f:
                    content = f.read()
                out.append(dataclasses.replace(meta, kind=Kind.FILE, content=content, link_group=link_group))
            else:
                out.append(dataclasses.replace(meta, kind=Kind.SPECIAL, rdev=st.st_rdev))

    walk(os.fsencode(root), b"")
    return out


# Raw encoders: the layouts of formats.tree and formats.backup_root, with no check at all.


def _b16(data: bytes) -> bytes:
    return struct.pack(">H", len(data)) + data


def raw_node(records: Sequence[Record]) -> bytes:
    out = [b"OBTR", struct.pack(">HI", 1, len(records))]
    for r in records:
        out.append(struct.pack(">B", r.kind) + _b16(r.path))
        if r.kind in (Kind.FILE, Kind.DIR, Kind.SYMLINK, Kind.SPECIAL):
            out.append(struct.pack(">IIIQ", r.mode, r.uid, r.gid, r.mtime_ns & ((1 << 64) - 1)))
        if r.kind is Kind.FILE:
            out.append(struct.pack(">QQ", r.size, r.link_group))
        if r.kind in (Kind.FILE, Kind.CONTINUATION):
            out.append(struct.pack(">I", len(r.chunks)))
            out.extend(c.chunk_id + struct.pack(">II", c.pack, c.length) for c in r.chunks)
        if r.kind in (Kind.SYMLINK, Kind.HARDLINK):
            out.append(_b16(r.target))
        if r.kind is Kind.SPECIAL:
            out.append(struct.pack(">Q", r.rdev))
    return b"".join(out)


def raw_root(root: BackupRoot) -> bytes:
    out = [b"OBRT", struct.pack(">HH", 1, len(root.sources))]
    out.extend(s.backup_id + s.data_key_commitment for s in root.sources)
    out.append(struct.pack(">I", len(root.packs)))
    out.extend(p.name + struct.pack(">HB", p.source, p.kind) for p in root.packs)
    out.append(struct.pack(">I", len(root.nodes)))
    out.extend(n.object_id + struct.pack(">I", n.pack) + _b16(n.first_path) for n in root.nodes)
    return b"".join(out)


@dataclass
class Built:
    """Everything one built backup consists of, and what a later backup needs to reuse it."""

    host: str
    backup_id: bytes
    manifest: Manifest
    signed: bytes
    objects: dict[bytes, bytes]  # every object this backup uploads: name -> bytes
    sizes: dict[bytes, int]  # every object its manifest lists: name -> size
    root: BackupRoot
    records: list[Record]
    data_key: SealingKey
    envelope_records: tuple[bytes, ...]  # its key envelope's wrapped-key records
    chunks: dict[bytes, tuple[bytes, int]] = field(default_factory=dict)  # chunk id -> (pack, length)

    @property
    def id(self) -> str:
        return self.backup_id.hex()

    @property
    def hash(self) -> bytes:
        return hashlib.sha256(self.signed).digest()

    def pack_names(self, kind: PackKind) -> list[bytes]:
        return [p.name for p in self.root.packs if p.kind is kind]


@dataclass
class Options:
    """How to build (sizes small, so tiny trees span several packs and nodes) and how to tamper."""

    chunk_size: int = 16 << 10
    pack_target: int = 48 << 10
    node_records: int = 4
    refs_per_record: int = 3
    compress: bool = True
    time: int = 1_700_000_000
    previous: bytes = FIRST_PREVIOUS
    reuse: Sequence[Built] = ()
    raw: bool = False  # encode nodes and the root without checks (hostile trees)
    records: Callable[[list[Record]], list[Record]] | None = None
    root: Callable[[BackupRoot], BackupRoot] | None = None
    manifest: Callable[[Manifest], Manifest] | None = None
    data_pack: Callable[[bytes], bytes] | None = None  # damage a data pack before it is named
    chunk_id: Callable[[bytes], bytes] | None = None  # how chunk ids are made (default: the HMAC)
    backup_id: bytes | None = None


class Builder:
    """Makes backups of one account for one host (see the module doc)."""

    def __init__(self, keys: AccountKeys, account_id: bytes, host: str = "web1") -> None:
        self.keys = keys
        self.account_id = account_id
        self.host = host
        self.ids = ChunkIdKey(keys.dedup_secret)

    def build(self, entries: Iterable[Entry], **options: object) -> Built:
        opt = Options(**options)  # type: ignore[arg-type]
        backup_id = opt.backup_id or random_bytes(16)
        data_raw, data_key = SealingKey.generate()
        meta_raw, meta_key = SealingKey.generate()
        entries = list(entries)

        # Sources: this backup, then every reused one (sorted by backup id).
        reused = sorted(opt.reuse, key=lambda b: b.backup_id)
        sources = [Source(backup_id, data_key.commitment)] + [
            Source(b.backup_id, b.data_key.commitment) for b in reused
        ]
        source_of = {b.backup_id: i + 1 for i, b in enumerate(reused)}
        known: dict[bytes, tuple[bytes, int, int]] = {}  # chunk id -> (pack name, length, source)
        for b in reused:
            for cid, (pack, length) in b.chunks.items():
                known[cid] = (pack, length, source_of[b.backup_id])

        # Data packs.
        objects: dict[bytes, bytes] = {}
        own_chunks: dict[bytes, tuple[bytes, int]] = {}
        pending: dict[bytes, tuple[int, int]] = {}  # chunk id -> (temporary pack number, length)
        pack_names: dict[int, bytes] = {}
        writer = PackWriter(backup_id)
        number = 0

        def flush() -> None:
            nonlocal writer, number
            if writer.entry_count:
                data = finish_pack(writer, data_key)
                if opt.data_pack is not None:
                    data = opt.data_pack(data)
                name = hashlib.sha256(data).digest()
                objects[name] = data
                pack_names[number] = name
                number += 1
                writer = PackWriter(backup_id)

        file_chunks: dict[bytes, list[tuple[bytes, int]]] = {}
        for e in entries:
            if e.kind is not Kind.FILE:
                continue
            refs = []
            for start in range(0, len(e.content), opt.chunk_size):
                plain = e.content[start : start + opt.chunk_size]
                cid = opt.chunk_id(plain) if opt.chunk_id is not None else self.ids.chunk_id(plain)
                refs.append((cid, len(plain)))
                if cid in known or cid in pending:
                    continue
                packed = zstandard.ZstdCompressor().compress(plain) if opt.compress else plain
                payload = (
                    ChunkPayload(Compression.ZSTD, packed)
                    if opt.compress and len(packed) < len(plain)
                    else ChunkPayload(Compression.NONE, plain)
                )
                sealed = data_key.seal(
                    encode_chunk_payload(payload),
                    obj_type=ObjectType.DATA_CHUNK,
                    backup_id=backup_id,
                    object_id=cid,
                )
                if not writer.fits(len(sealed)) or writer.size > opt.pack_target:
                    flush()
                writer.add(ObjectType.DATA_CHUNK, cid, sealed)
                pending[cid] = (number, len(plain))
            file_chunks[e.path] = refs
        flush()
        for cid, (num, length) in pending.items():
            own_chunks[cid] = (pack_names[num], length)
            known[cid] = (pack_names[num], length, 0)

        sizes = {name: len(data) for name, data in objects.items()}
        for b in reused:
            for p in b.root.packs:
                if p.kind is PackKind.DATA and p.name not in sizes:
                    sizes[p.name] = b.sizes[p.name]
        used_data = sorted({known[c][0] for refs in file_chunks.values() for c, _ in refs})
        data_table = [(name, known_source(known, name)) for name in used_data]
        index_of = {name: i for i, (name, _) in enumerate(data_table)}

        records = self._records(entries, file_chunks, known, index_of, opt)
        if opt.records is not None:
            records = opt.records(records)

        # Tree nodes, in one tree pack (after the data packs in the table).
        nodes = [records[i : i + opt.node_records] for i in range(0, len(records), opt.node_records)]
        encode = raw_node if opt.raw else tree.encode
        node_ids = [random_bytes(32) for _ in nodes]
        tree_writer = PackWriter(backup_id)
        for oid, node in zip(node_ids, nodes, strict=True):
            sealed_node = meta_key.seal(
                encode(node), obj_type=ObjectType.TREE_NODE, backup_id=backup_id, object_id=oid
            )
            tree_writer.add(ObjectType.TREE_NODE, oid, sealed_node)
        tree_pack = finish_pack(tree_writer, meta_key)
        tree_name = hashlib.sha256(tree_pack).digest()
        objects[tree_name] = tree_pack
        sizes[tree_name] = len(tree_pack)
        packs = [PackRef(name, src, PackKind.DATA) for name, src in data_table]
        packs.append(PackRef(tree_name, 0, PackKind.TREE))
        root = BackupRoot(
            sources=tuple(sources),
            packs=tuple(packs),
            nodes=tuple(
                NodeRef(oid, len(packs) - 1, n[0].path) for oid, n in zip(node_ids, nodes, strict=True)
            ),
        )
        if opt.root is not None:
            root = opt.root(root)
        root_plain = raw_root(root) if opt.raw else backup_root.encode(root)
        root_id = random_bytes(32)
        root_writer = PackWriter(backup_id)
        root_writer.add(
            ObjectType.TREE_NODE,
            root_id,
            meta_key.seal(root_plain, obj_type=ObjectType.TREE_NODE, backup_id=backup_id, object_id=root_id),
        )
        root_pack = finish_pack(root_writer, meta_key)
        root_pack_name = hashlib.sha256(root_pack).digest()
        objects[root_pack_name] = root_pack
        sizes[root_pack_name] = len(root_pack)

        # Chunk index: the chunks this backup added.
        own_packs = sorted({pack for pack, _ in own_chunks.values()})
        data_records = self._wrap(data_raw, Role.DATA, backup_id, self._recipients(Role.DATA))
        pack_at = {name: i for i, name in enumerate(own_packs)}
        segments = split_segments(
            [Source(backup_id, data_key.commitment)] if own_packs else [],
            [(name, 0) for name in own_packs],
            [IndexEntry(cid, pack_at[pack], length) for cid, (pack, length) in own_chunks.items()],
        )
        chunk_index = seal_chunk_index(segments, dedup_secret=self.keys.dedup_secret, backup_id=backup_id)
        ci_name = hashlib.sha256(chunk_index).digest()
        objects[ci_name] = chunk_index
        sizes[ci_name] = len(chunk_index)

        browse = {**self._recipients(Role.BROWSE), **self._recipients(Role.DATA)}
        wrapped = tuple(sorted(data_records + self._wrap(meta_raw, Role.BROWSE, backup_id, browse)))
        listed = [p.name for p in packs] + [root_pack_name, ci_name]
        m = Manifest(
            backup_id=backup_id,
            account_id=self.account_id,
            host_key_id=public_key_id(self.keys.hosts[self.host].public_key()),
            time=opt.time,
            previous_manifest_hash=opt.previous,
            keyring_version=1,
            data_key_commitment=data_key.commitment,
            metadata_key_commitment=meta_key.commitment,
            tree_root=root_id,
            tree_root_pack=root_pack_name,
            chunk_index=ci_name,
            host_name=self.host,
            sources=tuple(b.backup_id for b in reused),
            objects=tuple(StoredObject(name, sizes[name]) for name in sorted(set(listed))),
        )
        if opt.manifest is not None:
            m = opt.manifest(m)
        signed = sign_object(self.keys.hosts[self.host], manifest.encode(m))
        return Built(
            host=self.host,
            backup_id=backup_id,
            manifest=m,
            signed=signed,
            objects=objects,
            sizes=sizes,
            root=root,
            records=records,
            data_key=data_key,
            envelope_records=wrapped,
            chunks={**{c: (p, n) for c, (p, n, _) in known.items()}, **own_chunks},
        )

    def envelope(self, env: ClientEnv, built: Built, records: Sequence[bytes] | None = None) -> bytes:
        """The backup's generation-0 key envelope for the server's current keyring, host-signed.

        ``records`` replaces the honest wrapped keys (a hostile envelope, to be stored with
        :func:`tamper` at :func:`envelope_key`, since the server refuses wrong recipients).
        """
        body = envelope_body(
            account_id=self.account_id,
            backup_id=built.backup_id,
            generation=0,
            keyring_version=env.account().keyring.version,
            records=built.envelope_records if records is None else records,
        )
        return sign_object(self.keys.hosts[self.host], body)

    def _recipients(self, role: Role) -> dict[bytes, rsa.RSAPublicKey]:
        key = self.keys.data if role is Role.DATA else self.keys.browse
        return {public_key_id(key.public_key()): key.public_key()}

    @staticmethod
    def _wrap(
        raw: bytes, role: Role, backup_id: bytes, recipients: dict[bytes, rsa.RSAPublicKey]
    ) -> tuple[bytes, ...]:
        records = wrap_to_recipients(raw, role=role, backup_id=backup_id, recipients=recipients)
        return tuple(sorted(wrapped_key.encode(r) for r in records))

    @staticmethod
    def _records(
        entries: Sequence[Entry],
        file_chunks: dict[bytes, list[tuple[bytes, int]]],
        known: dict[bytes, tuple[bytes, int, int]],
        index_of: dict[bytes, int],
        opt: Options,
    ) -> list[Record]:
        out: list[Record] = []
        for e in entries:
            if e.kind is Kind.FILE:
                refs = [ChunkRef(cid, index_of[known[cid][0]], n) for cid, n in file_chunks[e.path]]
                first, rest = refs[: opt.refs_per_record], refs[opt.refs_per_record :]
                out.append(
                    Record(
                        Kind.FILE,
                        e.path,
                        mode=e.mode,
                        uid=e.uid,
                        gid=e.gid,
                        mtime_ns=e.mtime_ns,
                        size=len(e.content),
                        link_group=e.link_group,
                        chunks=tuple(first),
                    )
                )
                for i in range(0, len(rest), opt.refs_per_record):
                    out.append(
                        Record(Kind.CONTINUATION, e.path, chunks=tuple(rest[i : i + opt.refs_per_record]))
                    )
            elif e.kind is Kind.HARDLINK:
                out.append(Record(Kind.HARDLINK, e.path, target=e.target))
            else:
                out.append(
                    Record(
                        e.kind,
                        e.path,
                        mode=e.mode,
                        uid=e.uid,
                        gid=e.gid,
                        mtime_ns=e.mtime_ns,
                        target=e.target,
                        rdev=e.rdev,
                    )
                )
        return out

    def upload(self, env: ClientEnv, built: Built, *, manifest: bool = True) -> None:
        """Put the backup's objects, key envelope (and manifest) on the server, HOST credential."""
        repo = Repository(env.transport())
        try:
            for name, data in built.objects.items():
                repo.put_object(data, name)
            repo.put_envelope(built.backup_id, self.envelope(env, built))
            if manifest:
                repo.put_manifest(built.host, built.id, built.signed)
        finally:
            repo.close()


def known_source(known: dict[bytes, tuple[bytes, int, int]], pack: bytes) -> int:
    return next(src for p, _, src in known.values() if p == pack)


def object_key(env: ClientEnv, name: bytes) -> str:
    """The server store key of object ``name`` (as opsbackup.server.common.object_key names it)."""
    return f"accounts/{env.account_id.hex()}/objects/{name.hex()[:2]}/{name.hex()}"


def manifest_key(env: ClientEnv, host: str, backup_id: str) -> str:
    return f"accounts/{env.account_id.hex()}/manifests/{host}/{backup_id}"


def envelope_key(env: ClientEnv, backup_id: bytes, generation: int = 0) -> str:
    """The server store key of one generation of a backup's key envelope (routes_envelopes)."""
    return f"accounts/{env.account_id.hex()}/envelopes/{backup_id.hex()}/{generation:020d}"


def tamper(env: ClientEnv, key: str, data: bytes) -> None:
    """Rewrite one stored object or manifest, as an attacker holding the server's disk would."""
    env.server.store.put(key, io.BytesIO(data), overwrite=True)


def replace_field(m: Manifest, **change: object) -> Manifest:
    return dataclasses.replace(m, **change)  # type: ignore[arg-type]
