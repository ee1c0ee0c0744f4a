"""Hostile snapshots, signed as if by a host: restore refuses each, and writes nothing anywhere.

These are what a compromised host (or anyone holding a metadata or data key) could make. The
target lives inside ``outer``, next to a sentinel; after each refusal the whole of ``outer`` is
byte for byte as before, so nothing was written outside the target either.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from crypto.primitives import random_bytes
from crypto.wrap import wrap_key
from formats import wrapped_key
from formats.backup_root import BackupRoot, PackKind, PackRef
from formats.manifest import Manifest, StoredObject
from formats.roles import Role
from formats.tree import ChunkRef, Kind, Record
from opsbackup.errors import FormatError, IntegrityError, NotFoundError, OpsbackupError
from opsbackup.restore import list_snapshots, open_snapshot, restore
from opsbackup.server.accounts import Scope
from tests.client_support import ClientEnv
from tests.restore._build import Builder, Built, Entry, dir_, envelope_key, file, hardlink, symlink, tamper
from tests.restore._support import reader, target_state, tree_state

BIG = os.urandom(60_000)
TEXT = b"".join(b"line %d of a compressible file\n" % i for i in range(2000))


def outer_dir(tmp_path: Path) -> tuple[Path, Path]:
    outer = tmp_path / "outer"
    target = outer / "target"
    (target / "etc").mkdir(parents=True)
    (target / "etc" / "passwd").write_bytes(b"current\n")
    (outer / "sentinel").write_bytes(b"outside the target\n")
    return outer, target


def hostile(
    env: ClientEnv,
    tmp_path: Path,
    entries: list[Entry],
    error: type[OpsbackupError],
    match: str,
    *,
    at_open: bool = False,
    envelope: Callable[[Built], list[bytes]] | None = None,
    **options: object,
) -> None:
    """Build and upload a hostile backup; opening or restoring it must fail, changing nothing.

    ``envelope`` gives the records of a hostile key envelope, stored as the server's disk would
    hold it (the API refuses wrong recipients).
    """
    builder = Builder(env.keys, env.account_id)
    built = builder.build(entries, **options)
    builder.upload(env, built)
    if envelope is not None:
        tamper(env, envelope_key(env, built.backup_id), builder.envelope(env, built, envelope(built)))
    outer, target = outer_dir(tmp_path)
    before_outer, before_target = tree_state(outer), target_state(target)
    account = reader(env)
    (vm,) = list_snapshots(account)
    if at_open:
        with pytest.raises(error, match=match):
            open_snapshot(account, vm, env.keys.data)
    else:
        snapshot = open_snapshot(account, vm, env.keys.data)
        with pytest.raises(error, match=match):
            restore(account, snapshot, env.keys.data, target)
    assert target_state(target) == before_target
    assert tree_state(outer) == before_outer


def rename(old: bytes, new: bytes) -> Callable[[list[Record]], list[Record]]:
    return lambda recs: [dataclasses.replace(r, path=new) if r.path == old else r for r in recs]


# Paths -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [b"../x", b"a/../../x", b"/etc/x", b"a//x", b"a/./x", b"a\0x"])
def test_unsafe_record_paths(env: ClientEnv, tmp_path: Path, bad: bytes) -> None:
    hostile(
        env,
        tmp_path,
        [dir_(b"a"), file(b"a/y", b"pwned")],
        FormatError,
        "tree node",
        records=rename(b"a/y", bad),
        raw=True,
    )


def test_unsafe_first_path_of_a_node(env: ClientEnv, tmp_path: Path) -> None:
    hostile(
        env,
        tmp_path,
        [file(b"x", b"pwned")],
        FormatError,
        "first path",
        at_open=True,
        records=rename(b"x", b"../x"),
        raw=True,
    )


def test_file_below_a_symlink(env: ClientEnv, tmp_path: Path) -> None:
    out = tmp_path / "outer"
    hostile(
        env,
        tmp_path,
        [symlink(b"a", os.fsencode(out)), file(b"a/sentinel", b"overwritten!")],
        FormatError,
        "inside a SYMLINK record",
    )


def test_directory_below_a_file(env: ClientEnv, tmp_path: Path) -> None:
    hostile(env, tmp_path, [file(b"a", b"f"), dir_(b"a/b")], FormatError, "inside a FILE record")


def test_record_without_its_parent_directory(env: ClientEnv, tmp_path: Path) -> None:
    hostile(env, tmp_path, [file(b"etc/passwd", b"root::0:0")], FormatError, "no earlier DIR record")


@pytest.mark.parametrize("target", [b"/etc/passwd", b"../../etc/passwd", b"etc/../../x"])
def test_hard_link_out_of_the_tree(env: ClientEnv, tmp_path: Path, target: bytes) -> None:
    hostile(
        env,
        tmp_path,
        [file(b"a", b"x", link_group=1), hardlink(b"b", b"a")],
        FormatError,
        "hard link",
        records=lambda recs: [
            dataclasses.replace(r, target=target) if r.kind is Kind.HARDLINK else r for r in recs
        ],
        raw=True,
    )


def test_hard_link_to_a_symlink(env: ClientEnv, tmp_path: Path) -> None:
    hostile(
        env,
        tmp_path,
        [symlink(b"a", b"/etc/shadow"), hardlink(b"b", b"a")],
        FormatError,
        "not an earlier FILE",
    )


def test_hard_link_to_a_file_that_is_not_in_the_tree(env: ClientEnv, tmp_path: Path) -> None:
    hostile(env, tmp_path, [file(b"b", b"x"), hardlink(b"c", b"a")], FormatError, "not an earlier FILE")


def test_duplicate_paths(env: ClientEnv, tmp_path: Path) -> None:
    hostile(
        env,
        tmp_path,
        [file(b"a", b"1"), file(b"b", b"2")],
        FormatError,
        "appears twice",
        records=rename(b"b", b"a"),
        raw=True,
    )


def test_a_symlink_pointing_outside_is_restored_as_a_link_never_followed(
    env: ClientEnv, tmp_path: Path
) -> None:
    outer, target = outer_dir(tmp_path)
    builder = Builder(env.keys, env.account_id)
    built = builder.build([symlink(b"escape", os.fsencode(outer / "sentinel")), symlink(b"up", b"../..")])
    builder.upload(env, built)
    account = reader(env)
    (vm,) = list_snapshots(account)
    before = (outer / "sentinel").read_bytes()
    restore(account, open_snapshot(account, vm, env.keys.data), env.keys.data, target)
    assert os.readlink(target / "escape") == str(outer / "sentinel")
    assert (outer / "sentinel").read_bytes() == before
    assert sorted(os.listdir(outer)) == ["sentinel", "target"]


# Root and manifest -----------------------------------------------------------------------------


def test_root_names_a_pack_the_manifest_does_not_sign(env: ClientEnv, tmp_path: Path) -> None:
    def add_pack(root: BackupRoot) -> BackupRoot:
        """One more data pack, last of the data run (chunk refs keep their indexes; nodes shift)."""
        extra = PackRef(b"\xff" * 32, 0, PackKind.DATA)
        data = [p for p in root.packs if p.kind is PackKind.DATA]
        tree = [p for p in root.packs if p.kind is PackKind.TREE]
        nodes = tuple(dataclasses.replace(n, pack=n.pack + 1) for n in root.nodes)
        return dataclasses.replace(root, packs=(*data, extra, *tree), nodes=nodes)

    hostile(
        env,
        tmp_path,
        [file(b"a", BIG)],
        IntegrityError,
        "not the objects its manifest signs",
        at_open=True,
        root=add_pack,
    )


def test_manifest_signs_an_object_the_root_does_not_name(env: ClientEnv, tmp_path: Path) -> None:
    extra = b"an object the backup root does not name"
    assert env.server.call(
        "PUT", f"/v1/objects/{hashlib.sha256(extra).hexdigest()}", env.tokens[Scope.HOST], data=extra
    ).ok

    def add(m: Manifest) -> Manifest:
        objects = sorted(
            [*m.objects, StoredObject(hashlib.sha256(extra).digest(), len(extra))], key=lambda o: o.name
        )
        return dataclasses.replace(m, objects=tuple(objects))

    hostile(
        env,
        tmp_path,
        [file(b"a", BIG)],
        IntegrityError,
        "not the objects its manifest signs",
        at_open=True,
        manifest=add,
    )


def test_chunk_ref_beyond_the_pack_table(env: ClientEnv, tmp_path: Path) -> None:
    def bad_ref(recs: list[Record]) -> list[Record]:
        return [
            dataclasses.replace(r, chunks=(ChunkRef(r.chunks[0].chunk_id, 7, r.chunks[0].length),))
            if r.chunks
            else r
            for r in recs
        ]

    hostile(env, tmp_path, [file(b"a", b"tiny")], FormatError, "names pack 7", records=bad_ref)


def test_chunk_ref_into_a_tree_pack(env: ClientEnv, tmp_path: Path) -> None:
    def tree_ref(recs: list[Record]) -> list[Record]:
        return [
            dataclasses.replace(r, chunks=(ChunkRef(r.chunks[0].chunk_id, 1, 4),)) if r.chunks else r
            for r in recs
        ]

    hostile(env, tmp_path, [file(b"a", b"tiny")], FormatError, "not a data pack", records=tree_ref)


def test_wrong_data_commitment_in_the_root(env: ClientEnv, tmp_path: Path) -> None:
    def commit(root: BackupRoot) -> BackupRoot:
        first = dataclasses.replace(root.sources[0], data_key_commitment=random_bytes(32))
        return dataclasses.replace(root, sources=(first, *root.sources[1:]))

    hostile(env, tmp_path, [file(b"a", BIG)], IntegrityError, "another data key", at_open=True, root=commit)


def test_root_of_another_backup(env: ClientEnv, tmp_path: Path) -> None:
    def other(root: BackupRoot) -> BackupRoot:
        first = dataclasses.replace(root.sources[0], backup_id=random_bytes(16))
        return dataclasses.replace(root, sources=(first, *root.sources[1:]))

    hostile(env, tmp_path, [file(b"a", BIG)], IntegrityError, "belongs to backup", at_open=True, root=other)


def test_wrong_metadata_commitment(env: ClientEnv, tmp_path: Path) -> None:
    hostile(
        env,
        tmp_path,
        [file(b"a", BIG)],
        IntegrityError,
        "metadata key .* does not match",
        at_open=True,
        manifest=lambda m: dataclasses.replace(m, metadata_key_commitment=random_bytes(32)),
    )


def test_data_key_record_wrapping_another_key(env: ClientEnv, tmp_path: Path) -> None:
    def swap(built: Built) -> list[bytes]:
        records = [wrapped_key.decode(r) for r in built.envelope_records]
        forged = wrap_key(
            random_bytes(32), role=Role.DATA, backup_id=built.backup_id, recipient=env.keys.data.public_key()
        )
        return [wrapped_key.encode(forged) if r.role is Role.DATA else wrapped_key.encode(r) for r in records]

    hostile(
        env,
        tmp_path,
        [file(b"a", BIG)],
        IntegrityError,
        "does not match the commitment the backup names",
        envelope=swap,
    )


def test_manifest_lists_a_pack_with_the_wrong_size(env: ClientEnv, tmp_path: Path) -> None:
    def resize(m: Manifest) -> Manifest:
        objects = list(m.objects)
        for i, obj in enumerate(objects):
            if obj.name not in (m.tree_root_pack, m.chunk_index) and obj.size > 5000:
                objects[i] = StoredObject(obj.name, obj.size - 1)
        return dataclasses.replace(m, objects=tuple(objects))

    hostile(env, tmp_path, [file(b"a", BIG)], IntegrityError, "longer than", manifest=resize)


def test_node_that_does_not_start_where_the_root_says(env: ClientEnv, tmp_path: Path) -> None:
    def shift(root: BackupRoot) -> BackupRoot:
        nodes = list(root.nodes)
        nodes[1] = dataclasses.replace(nodes[1], first_path=b"b0")
        return dataclasses.replace(root, nodes=tuple(nodes))

    entries = [file(b"a1", b"1"), file(b"a2", b"2"), file(b"b1", b"3"), file(b"b2", b"4")]
    hostile(env, tmp_path, entries, FormatError, "does not start at", root=shift, node_records=2)


# Chunks ----------------------------------------------------------------------------------------


def test_damaged_pack_signed_by_the_host(env: ClientEnv, tmp_path: Path) -> None:
    def damage(pack: bytes) -> bytes:
        """Flip a bit in the first entry, and fix the trailer's body hash so the layout still holds."""
        data = bytearray(pack)
        data[100] ^= 1
        index_length = int.from_bytes(data[-10:-6], "big")
        body_end = len(data) - 42 - index_length
        data[-42:-10] = hashlib.sha256(data[:body_end]).digest()
        return bytes(data)

    hostile(env, tmp_path, [file(b"a", BIG)], IntegrityError, "does not open", data_pack=damage)


def test_chunk_missing_from_its_pack(env: ClientEnv, tmp_path: Path) -> None:
    def other_id(recs: list[Record]) -> list[Record]:
        return [
            dataclasses.replace(
                r, chunks=(ChunkRef(random_bytes(32), r.chunks[0].pack, r.chunks[0].length), *r.chunks[1:])
            )
            if r.kind is Kind.FILE
            else r
            for r in recs
        ]

    hostile(
        env, tmp_path, [file(b"a", BIG)], IntegrityError, "not in the pack the backup names", records=other_id
    )


@pytest.mark.parametrize("content", [BIG, TEXT], ids=["stored", "zstd"])
def test_chunk_of_another_length(env: ClientEnv, tmp_path: Path, content: bytes) -> None:
    def shorter(recs: list[Record]) -> list[Record]:
        out = []
        for r in recs:
            if r.kind is Kind.FILE:
                first = r.chunks[0]
                r = dataclasses.replace(
                    r,
                    size=r.size - 1,
                    chunks=(ChunkRef(first.chunk_id, first.pack, first.length - 1), *r.chunks[1:]),
                )
            out.append(r)
        return out

    hostile(env, tmp_path, [file(b"a", content)], IntegrityError, "bytes, not the|declares", records=shorter)


def test_chunk_id_forged_by_a_host_is_caught_only_with_the_dedup_secret(
    env: ClientEnv, tmp_path: Path
) -> None:
    from crypto.dedup import ChunkIdKey

    builder = Builder(env.keys, env.account_id)
    built = builder.build([file(b"a", BIG)], chunk_id=lambda plain: hashlib.sha256(plain).digest())
    builder.upload(env, built)
    account = reader(env)
    (vm,) = list_snapshots(account)
    snapshot = open_snapshot(account, vm, env.keys.data)
    _, target = outer_dir(tmp_path)
    before = target_state(target)
    with pytest.raises(IntegrityError, match="does not match its chunk id"):
        restore(account, snapshot, env.keys.data, target, chunk_ids=ChunkIdKey(env.keys.dedup_secret))
    assert target_state(target) == before
    # Without the secret the reader cannot tell: the content is still authenticated by the data key.
    restore(account, snapshot, env.keys.data, target)
    assert (target / "a").read_bytes() == BIG


def test_missing_path_is_not_found(env: ClientEnv, tmp_path: Path) -> None:
    builder = Builder(env.keys, env.account_id)
    built = builder.build([dir_(b"etc"), file(b"etc/a", b"x")])
    builder.upload(env, built)
    account = reader(env)
    (vm,) = list_snapshots(account)
    _, target = outer_dir(tmp_path)
    before = target_state(target)
    with pytest.raises(NotFoundError, match="etc/b is not in backup"):
        restore(account, open_snapshot(account, vm, env.keys.data), env.keys.data, target, [b"etc/b"])
    assert target_state(target) == before
