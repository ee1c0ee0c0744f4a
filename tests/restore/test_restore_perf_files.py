"""Files created, filled and finished by the pack workers (the fast path for small files).

A file whose chunks all come from one pack is created by that pack's worker on its first write
and gets its owner, mode and time on the same fd when its last byte is written; files of several
packs go through the staging's shared fds and are finished after every pack. These tests check
that both kinds (and empty files) end up exactly as backed up, that a failure after some files
were finished still leaves the target untouched, and that the lock-free helpers keep the
staging rules (exclusive creation, no symlink followed).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from formats.backup_root import PackKind
from formats.tree import Kind
from opsbackup.client.account import Account
from opsbackup.errors import IntegrityError, LocalIOError
from opsbackup.restore import list_snapshots, open_snapshot, restore
from opsbackup.restore import staging as staging_mod
from opsbackup.restore.planner import make_plan
from opsbackup.restore.selection import select
from opsbackup.restore.staging import DirFds, Staging
from opsbackup.restore.tree_reader import Snapshot
from tests.client_support import ClientEnv
from tests.restore._build import Builder, Built, Entry, dir_, file, object_key, tamper
from tests.restore._support import reader, target_state, tree_state

SMALL = {f"d/s{i:02d}".encode(): os.urandom(500 + 900 * i) for i in range(20)}
BIG = os.urandom(180_000)  # 16 KiB chunks in 48 KiB packs: several packs


def _entries() -> list[Entry]:
    files = [
        file(path, data, (0o640, 0o444, 0o600, 0o755)[i % 4], mtime_ns=1_000_000_000 * i + 3)
        for i, (path, data) in enumerate(SMALL.items())
    ]
    files += [
        file(b"d/big", BIG, 0o604, mtime_ns=1_234_567_890_123_456_789),
        file(b"d/empty", b"", 0o400, mtime_ns=42),
        file(b"d/zero-mode", b"secret\n", 0o000, mtime_ns=43),
    ]
    return [dir_(b"d", 0o750, mtime_ns=1_500_000_000_000_000_007), *sorted(files, key=lambda e: e.path)]


def _backup(env: ClientEnv) -> Built:
    builder = Builder(env.keys, env.account_id)
    built = builder.build(_entries(), compress=True)
    builder.upload(env, built)
    return built


def _snapshot(env: ClientEnv) -> tuple[Account, Snapshot]:
    account = reader(env)
    (vm,) = list_snapshots(account)
    return account, open_snapshot(account, vm, env.keys.data)


def _source(tmp_path: Path) -> Path:
    """The same tree written directly, to compare the restore with."""
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    for e in _entries():
        if e.kind is Kind.FILE:
            (src / e.path.decode()).write_bytes(e.content)
    for e in reversed(_entries()):  # the directory last, after its files
        path = src / e.path.decode()
        os.chmod(path, e.mode & 0o7777)
        os.utime(path, ns=(0, e.mtime_ns))
    return src


@pytest.mark.parametrize("workers", [1, 3])
def test_one_pack_several_pack_and_empty_files_get_content_mode_and_time(
    env: ClientEnv, tmp_path: Path, workers: int
) -> None:
    _backup(env)
    account, snap = _snapshot(env)
    plan = make_plan(select(snap, []), snap.root, [])
    kinds = {(bool(job.chunks), job.multi_pack) for job in plan.files}
    assert kinds == {(True, False), (True, True), (False, False)}  # every path is exercised
    result = restore(account, snap, env.keys.data, tmp_path / "t", workers=workers)
    assert result.files == len(SMALL) + 3
    assert tree_state(tmp_path / "t") == tree_state(_source(tmp_path))
    assert not [p for p in (tmp_path / "t").iterdir() if p.name.startswith(staging_mod.PREFIX)]


def test_a_damaged_last_pack_after_finished_files_leaves_the_target_as_it_was(
    env: ClientEnv, tmp_path: Path
) -> None:
    built = _backup(env)
    account, snap = _snapshot(env)
    last = max(i for i, p in enumerate(snap.root.packs) if p.kind is PackKind.DATA)
    name = snap.root.packs[last].name
    assert name in built.pack_names(PackKind.DATA)
    data = bytearray(built.objects[name])
    data[len(data) // 2] ^= 1
    tamper(env, object_key(env, name), bytes(data))
    target = tmp_path / "t"
    (target / "d").mkdir(parents=True)
    (target / "d" / "s00").write_bytes(b"the operator's file\n")
    before = target_state(target)
    with pytest.raises(IntegrityError, match="does not match the hash"):
        restore(account, snap, env.keys.data, target, workers=1)  # packs in order: the last fails
    assert target_state(target) == before


def _staging(tmp_path: Path) -> tuple[int, Staging]:
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    return fd, Staging(fd)


def test_new_files_are_created_exclusively(tmp_path: Path) -> None:
    fd, staged = _staging(tmp_path)
    try:
        staged.create_file(b"taken")
        new = staged.new_files()
        try:
            with pytest.raises(LocalIOError, match="cannot write taken: File exists"):
                new.write(0, b"taken", [b"x"], 0)
        finally:
            new.close_all()
    finally:
        staged.remove()
        os.close(fd)


def test_new_files_reopened_after_eviction_are_not_created_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(staging_mod, "_FILE_CACHE", 2)
    fd, staged = _staging(tmp_path)
    try:
        staged.mkdir(b"a")
        names = [f"a/f{i}".encode() for i in range(5)]
        new = staged.new_files()
        for rnd in range(3):  # interleaved: every file is evicted and reopened
            for i, name in enumerate(names):
                new.write(i, name, [bytes([65 + rnd]) * 10, b"."], rnd * 11)
        for i in range(len(names)):
            if i in new._fds:
                new.close(i)
        new.close_all()
        for name in names:
            assert (
                tmp_path / staged.name / name.decode()
            ).read_bytes() == b"AAAAAAAAAA.BBBBBBBBBB.CCCCCCCCCC."
    finally:
        staged.remove()
        os.close(fd)


def test_dir_fds_open_nested_directories_and_never_follow_a_symlink(tmp_path: Path) -> None:
    (tmp_path / "a" / "b" / "c").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    (tmp_path / "a" / "link").symlink_to(tmp_path / "outside")
    base = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    dirs = DirFds(base, size=2)
    try:
        deep = dirs.get(b"a/b/c")
        assert os.path.samestat(os.fstat(deep), os.stat(tmp_path / "a" / "b" / "c"))
        assert dirs.get(b"") == base
        assert os.path.samestat(os.fstat(dirs.get(b"a/b")), os.stat(tmp_path / "a" / "b"))
        for path in (b"a/link", b"a/link/x"):
            with pytest.raises(OSError, match=r"Not a directory|Too many levels of symbolic links"):
                dirs.get(path)
    finally:
        dirs.close()
        os.close(base)
