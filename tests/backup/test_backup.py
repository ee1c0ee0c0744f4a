"""A backup through the live server: what it stores, opened with the data key, and its manifest."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from crypto.manifest_check import manifest_hash
from formats.backup_root import PackKind
from formats.manifest import FIRST_PREVIOUS
from formats.tree import Kind
from opsbackup.backup import BackupRequest, run_backup
from opsbackup.client.state import ClientState
from opsbackup.errors import UsageError
from opsbackup.server.accounts import Scope
from tests.backup.reader import open_backup
from tests.backup.support import backup, object_names, small
from tests.backup.trees import describe_fs, describe_records, make_tree
from tests.client_support import AccountKeys, ClientEnv, client_env


@pytest.fixture
def env(tmp_path: Path, account_keys: AccountKeys) -> Iterator[ClientEnv]:
    with client_env(tmp_path / "env", account_keys) as e, small():
        yield e


def test_a_backup_holds_every_entry_and_byte_of_the_tree(env: ClientEnv, tmp_path: Path) -> None:
    src = make_tree(tmp_path)
    result = backup(env, src, tags=("nightly", "db"))
    assert result.warnings == ()
    opened = open_backup(env.account(Scope.RESTORE), env.keys, "web1", result.backup_id)
    assert describe_records(opened.records, src) == describe_fs(src)
    for path, (kind, *_rest) in describe_fs(src).items():
        if kind is Kind.FILE:
            assert opened.content(path) == (Path("/") / os.fsdecode(path)).read_bytes()
    # The parents of the given path come first, as directories.
    parents = [r for r in opened.records if not r.path.startswith(os.fsencode(src)[1:])]
    assert [r.kind for r in parents] == [Kind.DIR] * len(parents)
    assert parents[0].path == os.fsencode(src)[1:].split(b"/")[0]
    # The random file spans many chunks: FILE with 16 refs, then CONTINUATION records.
    big = [r for r in opened.records if r.path.endswith(b"sub/random.bin")]
    assert big[0].kind is Kind.FILE
    assert len(big[0].chunks) == 16
    assert {r.kind for r in big[1:]} == {Kind.CONTINUATION}
    assert result.files == 6
    sizes = [int(str(v[5])) for v in describe_fs(src).values() if v[0] is Kind.FILE]
    assert result.total_bytes == sum(sizes)
    refs = [ref.chunk_id for r in opened.records for ref in r.chunks]
    assert result.new_chunks == len(set(refs))  # the log repeats itself: a few chunks recur
    assert result.reused_chunks == len(refs) - len(set(refs))


def test_the_manifest_verifies_and_lists_exactly_what_the_server_holds(
    env: ClientEnv, tmp_path: Path
) -> None:
    # 600 kB of random data is ~150 chunk refs (~6 KiB of refs): more than three 2 KiB nodes
    # whatever the chunker's cut points (300 kB sometimes filled only three).
    src = make_tree(tmp_path, big=600_000)
    result = backup(env, src, tags=("nightly",))
    reader = env.account(Scope.RESTORE)
    opened = open_backup(reader, env.keys, "web1", result.backup_id)
    manifest = opened.verified.manifest
    listed = {obj.name for obj in manifest.objects}
    assert listed == object_names(env)
    assert reader.repo.present(listed) == listed
    assert listed == {p.name for p in opened.root.packs} | {manifest.tree_root_pack, manifest.chunk_index}
    assert result.uploaded_objects == len(listed)
    assert (
        result.uploaded_bytes == sum(obj.size for obj in manifest.objects) == manifest.statistics.added_bytes
    )
    assert manifest.tags == ("nightly",)
    assert manifest.previous_manifest_hash == FIRST_PREVIOUS
    assert manifest.statistics.files == result.files
    kinds = [p.kind for p in opened.root.packs]
    assert kinds == sorted(kinds)  # data packs first, then tree packs
    assert kinds.count(PackKind.DATA) > 3  # 64 KiB packs
    assert len(opened.root.sources) == 1  # nothing earlier to reuse
    assert manifest.sources == ()
    assert len(opened.root.nodes) > 3  # 2 KiB nodes


def test_each_backup_names_the_previous_one_of_its_host(env: ClientEnv, tmp_path: Path) -> None:
    src = make_tree(tmp_path)
    first = backup(env, src)
    second = backup(env, src)
    reader = env.account(Scope.RESTORE)
    one = reader.fetch_manifest("web1", first.backup_id)
    two = reader.fetch_manifest("web1", second.backup_id)
    assert two.manifest.previous_manifest_hash == one.hash == manifest_hash(one.signed)
    # A client with no state file finds the newest manifest of its host on the server.
    fresh = env.account(Scope.HOST)
    third = run_backup(fresh, env.host(), BackupRequest(paths=(src,)))
    assert reader.fetch_manifest("web1", third.backup_id).manifest.previous_manifest_hash == two.hash
    assert ClientState(env.root / "state-web1.json").head(fresh.root_id, "web1") == two.hash


def test_stdin_is_backed_up_as_one_file_beside_the_paths(env: ClientEnv, tmp_path: Path) -> None:
    src = make_tree(tmp_path)
    dump = os.urandom(100_000) + b"-- end of dump\n"
    result = backup(env, src, stdin=io.BytesIO(dump), stdin_name="db.sql")
    opened = open_backup(env.account(Scope.RESTORE), env.keys, "web1", result.backup_id)
    record = opened.by_path()[b"db.sql"]
    assert record.kind is Kind.FILE
    assert record.mode == 0o100600
    assert (record.uid, record.gid) == (os.getuid(), os.getgid())
    assert opened.content(b"db.sql") == dump
    assert opened.records[0].path == b"db.sql"  # "db.sql" sorts before the first path component
    only = backup(env, stdin=io.BytesIO(b"x" * 10), stdin_name="only.txt")
    assert [
        r.path for r in open_backup(env.account(Scope.RESTORE), env.keys, "web1", only.backup_id).records
    ] == [b"only.txt"]


def test_a_missing_path_fails_before_anything_is_uploaded(env: ClientEnv, tmp_path: Path) -> None:
    src = make_tree(tmp_path)
    with pytest.raises(UsageError, match="no such file"):
        backup(env, src, tmp_path / "missing")
    with pytest.raises(UsageError, match="tag"):
        backup(env, src, tags=("bad tag",))
    with pytest.raises(UsageError, match="nothing to back up"):
        backup(env)
    assert object_names(env) == set()


def test_a_tree_without_data_still_makes_a_complete_backup(env: ClientEnv, tmp_path: Path) -> None:
    src = tmp_path / "bare"
    (src / "a" / "b").mkdir(parents=True)
    (src / "empty").write_bytes(b"")
    result = backup(env, src)
    assert (result.new_chunks, result.files) == (0, 1)
    opened = open_backup(env.account(Scope.RESTORE), env.keys, "web1", result.backup_id)
    assert {p.kind for p in opened.root.packs} == {PackKind.TREE}
    assert describe_records(opened.records, src) == describe_fs(src)
    assert result.uploaded_objects == 3  # one tree pack, the tree root pack, the chunk index


def test_excludes_and_device_nodes(env: ClientEnv, tmp_path: Path) -> None:
    src = make_tree(tmp_path)
    result = backup(env, src, Path("/dev/null"), excludes=("*.txt", f"{src}/dir/sub"))
    opened = open_backup(env.account(Scope.RESTORE), env.keys, "web1", result.backup_id)
    paths = opened.by_path()
    base = os.fsencode(src)[1:]
    assert base + b"/dir" in paths
    assert not [p for p in paths if p.endswith(b".txt") or p.startswith(base + b"/dir/sub")]
    null = paths[b"dev/null"]
    assert null.kind is Kind.SPECIAL
    assert null.rdev == os.lstat("/dev/null").st_rdev
    assert paths[b"dev"].kind is Kind.DIR
