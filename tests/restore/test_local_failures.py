"""Local trouble during a restore: a full disk, a bad target; and what progress is told."""

from __future__ import annotations

import contextlib
import os
import resource
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from opsbackup.errors import LocalIOError, NotFoundError, UsageError
from opsbackup.restore import list_snapshots, open_snapshot, restore
from opsbackup.restore.tree_reader import Snapshot
from tests.client_support import ClientEnv
from tests.restore._build import Builder, dir_, file
from tests.restore._support import reader, target_state

BIG = os.urandom(400_000)


def snapshot(env: ClientEnv) -> Snapshot:
    builder = Builder(env.keys, env.account_id)
    built = builder.build([dir_(b"d"), file(b"d/big", BIG), file(b"d/small", b"s")])
    builder.upload(env, built)
    account = reader(env)
    (vm,) = list_snapshots(account)
    return open_snapshot(account, vm, env.keys.data)


@contextlib.contextmanager
def file_size_limit() -> Iterator[None]:
    """Writes past 100 kB fail with EFBIG, as a full disk fails them with ENOSPC."""
    old_limit = resource.getrlimit(resource.RLIMIT_FSIZE)
    old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, old_limit[1]))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, old_limit)
        signal.signal(signal.SIGXFSZ, old_handler)


def test_a_full_disk_leaves_the_target_as_it_was(env: ClientEnv, tmp_path: Path) -> None:
    snap = snapshot(env)
    target = tmp_path / "target"
    (target / "d").mkdir(parents=True)
    (target / "d" / "big").write_bytes(b"the old big file")
    before = target_state(target)
    account = reader(env)
    with file_size_limit(), pytest.raises(LocalIOError, match=r"cannot write d/big: File too large"):
        restore(account, snap, env.keys.data, target)
    assert target_state(target) == before


def test_a_new_target_is_removed_again_after_a_failure(env: ClientEnv, tmp_path: Path) -> None:
    snap = snapshot(env)
    account = reader(env)
    env.server.store.delete(
        f"accounts/{env.account_id.hex()}/objects/"
        + next(p.name.hex()[:2] + "/" + p.name.hex() for p in snap.root.packs if p.kind == 1)
    )
    with pytest.raises(NotFoundError, match="missing from the server"):
        restore(account, snap, env.keys.data, tmp_path / "new")
    assert not (tmp_path / "new").exists()


def test_a_target_that_is_a_file(env: ClientEnv, tmp_path: Path) -> None:
    snap = snapshot(env)
    (tmp_path / "f").write_bytes(b"x")
    with pytest.raises(UsageError, match="not a directory"):
        restore(reader(env), snap, env.keys.data, tmp_path / "f")
    assert (tmp_path / "f").read_bytes() == b"x"


class Recorder:
    def __init__(self) -> None:
        self.stages: list[tuple[str, int | None]] = []
        self.done = 0
        self.closed = False

    def stage(self, name: str, total: int | None = None, unit: str = "B") -> None:
        self.stages.append((name, total))

    def advance(self, n: int) -> None:
        self.done += n

    def close(self) -> None:
        self.closed = True


def test_progress_counts_every_restored_byte(env: ClientEnv, tmp_path: Path) -> None:
    snap = snapshot(env)
    progress = Recorder()
    result = restore(reader(env), snap, env.keys.data, tmp_path / "t", progress=progress, workers=2)
    assert progress.stages == [("restore", len(BIG) + 1)]
    assert progress.done == result.bytes == len(BIG) + 1
    assert progress.closed
    assert result.packs >= 2
