"""The cache and deduplication: unchanged files cost no reading, changes upload only what changed,
a lost or corrupt cache is rebuilt from the server, and packs of an interrupted run are reused."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from crypto.dedup import epoch_tag
from opsbackup.backup.cache import cache_path
from opsbackup.backup.tuning import Hooks
from opsbackup.errors import NotFoundError
from opsbackup.server.accounts import Scope
from tests.backup.reader import open_backup
from tests.backup.support import backup, object_names, small
from tests.backup.trees import make_tree
from tests.client_support import ClientEnv


class InjectedFaultError(Exception):
    """Raised by a fault-injection hook to interrupt a run at a chosen point."""


class Opens:
    """A ``before_open`` hook that remembers every file the engine opens."""

    def __init__(self) -> None:
        self.paths: list[bytes] = []

    def __call__(self, path: bytes) -> None:
        self.paths.append(path)


def data_packs_of(env: ClientEnv, backup_id: str) -> set[bytes]:
    opened = open_backup(env.account(Scope.RESTORE), env.keys, "web1", backup_id)
    return {p.name for p in opened.root.packs if p.kind == 1 and p.source == 0}


def test_an_unchanged_tree_is_backed_up_without_reading_a_file(env: ClientEnv, tmp_path: Path) -> None:
    src = make_tree(tmp_path)
    opens = Opens()
    with small(Hooks(before_open=opens)):
        first = backup(env, src)
        assert len(opens.paths) == 6  # every regular file once (hard links are not read twice)
        opens.paths.clear()
        before = object_names(env)
        second = backup(env, src)
    assert opens.paths == []
    assert second.new_chunks == 0
    assert second.new_bytes == 0
    assert second.reused_chunks == first.new_chunks + first.reused_chunks
    assert data_packs_of(env, second.backup_id) == set()  # no data pack of its own
    added = object_names(env) - before
    opened = open_backup(env.account(Scope.RESTORE), env.keys, "web1", second.backup_id)
    manifest = opened.verified.manifest
    tree_packs = {p.name for p in opened.root.packs if p.kind == 2}
    assert added == tree_packs | {manifest.tree_root_pack, manifest.chunk_index}
    assert second.uploaded_objects == len(added)
    assert (
        opened.content(os.fsencode(src / "dir" / "sub" / "random.bin")[1:])
        == (src / "dir" / "sub" / "random.bin").read_bytes()
    )


def test_a_small_change_uploads_only_the_chunks_around_it(env: ClientEnv, tmp_path: Path) -> None:
    src = make_tree(tmp_path, big=1_000_000)
    big = src / "dir" / "sub" / "random.bin"
    opens = Opens()
    with small(Hooks(before_open=opens)):
        backup(env, src)
        with big.open("r+b") as f:
            f.seek(500_000)
            f.write(b"changed!" * 4)
        opens.paths.clear()
        second = backup(env, src)
    assert opens.paths == [os.fsencode(big)]  # only the changed file is read
    # The edited chunk, and at most two more if the edit moved a cut point (FastCDC resyncs).
    assert 1 <= second.new_chunks <= 3
    assert second.new_bytes <= 3 * 16 * 1024  # chunks are at most 16 KiB here
    assert second.reused_chunks > 200
    data_bytes = sum(
        obj.size
        for obj in open_backup(
            env.account(Scope.RESTORE), env.keys, "web1", second.backup_id
        ).verified.manifest.objects
        if obj.name in data_packs_of(env, second.backup_id)
    )
    assert data_bytes < 4 * 16 * 1024  # the new chunks, sealed and packed: nothing else
    opened = open_backup(env.account(Scope.RESTORE), env.keys, "web1", second.backup_id)
    assert opened.content(os.fsencode(big)[1:]) == big.read_bytes()


def test_a_lost_cache_is_rebuilt_from_the_server_and_still_dedups(env: ClientEnv, tmp_path: Path) -> None:
    src = make_tree(tmp_path)
    opens = Opens()
    with small(Hooks(before_open=opens)):
        first = backup(env, src)
        for entry in (env.root / "cache" / "web1").iterdir():
            entry.unlink()
        opens.paths.clear()
        second = backup(env, src)
        assert len(opens.paths) == 6  # the file cache is gone: files are read again...
        assert second.new_chunks == 0  # ...but every chunk is known again from the chunk index
        assert second.warnings == ()
        # Another host of the account, with no cache at all, dedups against web1's chunks too.
        other = backup(env, src, host="web2")
    assert other.new_chunks == 0
    assert other.reused_chunks == first.new_chunks + first.reused_chunks


def test_a_corrupt_cache_is_a_warning_and_is_rebuilt(env: ClientEnv, tmp_path: Path) -> None:
    src = make_tree(tmp_path)
    with small():
        backup(env, src)
        db = cache_path(
            env.root / "cache" / "web1", env.account().root_id, "web1", epoch_tag(env.keys.dedup_secret)
        )
        assert db.exists()
        assert db.stat().st_mode & 0o777 == 0o600
        assert (env.root / "cache" / "web1").stat().st_mode & 0o777 == 0o700
        for suffix in ("-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        db.write_bytes(b"this is not a database" * 1000)
        second = backup(env, src)
    assert len(second.warnings) == 1
    assert "cache" in second.warnings[0]
    assert second.new_chunks == 0
    assert db.read_bytes().startswith(b"SQLite format 3")


def test_a_pack_gone_from_the_server_is_not_reused(env: ClientEnv, tmp_path: Path) -> None:
    src = make_tree(tmp_path)
    with small():
        first = backup(env, src)
        victim = sorted(data_packs_of(env, first.backup_id))[0]
        key = f"accounts/{env.account_id.hex()}/objects/{victim.hex()[:2]}/{victim.hex()}"
        assert env.server.store.delete(key)
        second = backup(env, src)
    assert second.new_chunks > 0  # the chunks of the lost pack are stored again
    opened = open_backup(env.account(Scope.RESTORE), env.keys, "web1", second.backup_id)
    assert victim not in {p.name for p in opened.root.packs}
    big = os.fsencode(src / "dir" / "sub" / "random.bin")
    assert opened.content(big[1:]) == (src / "dir" / "sub" / "random.bin").read_bytes()


def test_a_pack_swept_while_the_backup_runs_is_not_published(env: ClientEnv, tmp_path: Path) -> None:
    """A prune that deletes a reused pack mid-run: the backup refuses to publish a broken manifest."""
    src = make_tree(tmp_path)
    with small():
        first = backup(env, src)
    victim = sorted(data_packs_of(env, first.backup_id))[0]
    key = f"accounts/{env.account_id.hex()}/objects/{victim.hex()[:2]}/{victim.hex()}"
    manifests = env.account(Scope.RESTORE).repo.list_manifests()
    (src / "new.bin").write_bytes(os.urandom(300_000))  # so the second run uploads a pack

    def sweep_the_victim(name: bytes, created: bool) -> None:
        env.server.store.delete(key)  # what a concurrent prune's sweep does

    with small(Hooks(after_pack_upload=sweep_the_victim)), pytest.raises(NotFoundError, match="vanished"):
        backup(env, src)
    assert env.account(Scope.RESTORE).repo.list_manifests() == manifests  # nothing was published
    with small():
        third = backup(env, src)  # the cache forgot the swept pack: its chunks go up again
    opened = open_backup(env.account(Scope.RESTORE), env.keys, "web1", third.backup_id)
    assert victim not in {p.name for p in opened.root.packs}
    big = os.fsencode(src / "dir" / "sub" / "random.bin")
    assert opened.content(big[1:]) == (src / "dir" / "sub" / "random.bin").read_bytes()


def test_an_interrupted_run_leaves_packs_the_next_run_reuses(env: ClientEnv, tmp_path: Path) -> None:
    src = make_tree(tmp_path, big=1_000_000)
    uploads: list[tuple[bytes, bool]] = []

    def interrupt_after_the_second_pack(name: bytes, created: bool) -> None:
        uploads.append((name, created))
        if len(uploads) == 2:
            raise InjectedFaultError("interrupted after the second pack upload")

    with small(Hooks(after_pack_upload=interrupt_after_the_second_pack)), pytest.raises(InjectedFaultError):
        backup(env, src)
    stored = object_names(env)
    assert len(stored) >= 2  # packs went up; no manifest, tree or index
    assert env.account(Scope.RESTORE).repo.list_manifests() == []

    uploads.clear()
    with small(Hooks(after_pack_upload=lambda name, created: uploads.append((name, created)))):
        second = backup(env, src)
    assert uploads
    assert all(created for _, created in uploads)
    assert not {name for name, _ in uploads} & stored
    opened = open_backup(env.account(Scope.RESTORE), env.keys, "web1", second.backup_id)
    reused = {p.name for p in opened.root.packs if p.source != 0}
    assert reused == stored  # every pack of the interrupted run, under its own source
    assert len(opened.root.sources) == 2
    # The manifest names the interrupted run as a source, so the server keeps its key envelope.
    assert opened.verified.manifest.sources == (opened.root.sources[1].backup_id,)
    big = src / "dir" / "sub" / "random.bin"
    assert opened.content(os.fsencode(big)[1:]) == big.read_bytes()
    # The second run's chunk index lists the interrupted run's chunks: a fresh host dedups fully.
    with small():
        other = backup(env, src, host="web2")
    assert other.new_chunks == 0


def test_a_file_that_vanishes_before_it_is_read_is_a_warning(env: ClientEnv, tmp_path: Path) -> None:
    src = make_tree(tmp_path)
    victim = os.fsencode(src / "dir" / "log.txt")

    def delete_it(path: bytes) -> None:
        if path == victim:
            os.unlink(path)

    with small(Hooks(before_open=delete_it)):
        result = backup(env, src)
    assert len(result.warnings) == 1
    assert "log.txt" in result.warnings[0]
    assert "vanished" in result.warnings[0]
    opened = open_backup(env.account(Scope.RESTORE), env.keys, "web1", result.backup_id)
    assert victim[1:] not in opened.by_path()
    assert os.fsencode(src / "hello.txt")[1:] in opened.by_path()


def test_an_unreadable_file_is_a_warning(env: ClientEnv, tmp_path: Path) -> None:
    src = make_tree(tmp_path)
    victim = os.fsencode(src / "dir" / "log.txt")
    os.chmod(victim, 0)

    def fault_injection_eacces_for_root(path: bytes) -> None:
        """Root reads a mode-0 file, so as root the EACCES it would get is injected (a named fake)."""
        if path == victim and os.geteuid() == 0:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), path)

    with small(Hooks(before_open=fault_injection_eacces_for_root)):
        result = backup(env, src)
    assert len(result.warnings) == 1
    assert "log.txt" in result.warnings[0]
    assert "Permission denied" in result.warnings[0]
    opened = open_backup(env.account(Scope.RESTORE), env.keys, "web1", result.backup_id)
    assert victim[1:] not in opened.by_path()


def test_a_file_that_grows_while_read_is_recorded_as_read_with_a_warning(
    env: ClientEnv, tmp_path: Path
) -> None:
    src = make_tree(tmp_path)
    log = src / "dir" / "log.txt"
    extra = b"appended while the backup read the file\n" * 100

    appended: list[int] = []

    def append_once(path: bytes, total: int) -> None:
        if path == os.fsencode(log) and not appended:
            appended.append(total)
            with log.open("ab") as f:
                f.write(extra)

    opens = Opens()
    with small(Hooks(before_open=opens, after_block=append_once)):
        first = backup(env, src)
        assert len(first.warnings) == 1
        assert "log.txt" in first.warnings[0]
        assert "changed" in first.warnings[0]
        opened = open_backup(env.account(Scope.RESTORE), env.keys, "web1", first.backup_id)
        path = os.fsencode(log)[1:]
        assert opened.content(path) == log.read_bytes()  # the read went on to the new end
        assert opened.by_path()[path].size == len(log.read_bytes())
        opens.paths.clear()
        second = backup(env, src)
    assert opens.paths == [os.fsencode(log)]  # not trusted from the cache: read again
    assert second.warnings == ()


def test_a_hard_link_whose_first_path_vanished_is_backed_up_as_a_file(env: ClientEnv, tmp_path: Path) -> None:
    src = make_tree(tmp_path)
    first_path = os.fsencode(src / "dir" / "hard-hello")  # sorts before src/hello.txt

    def delete_it(path: bytes) -> None:
        if path == first_path:
            os.unlink(path)

    with small(Hooks(before_open=delete_it)):
        result = backup(env, src)
    assert len(result.warnings) == 1
    assert "vanished" in result.warnings[0]
    opened = open_backup(env.account(Scope.RESTORE), env.keys, "web1", result.backup_id)
    other = os.fsencode(src / "hello.txt")[1:]
    assert opened.by_path()[other].kind.name == "FILE"
    assert opened.content(other) == b"hello, world\n"
