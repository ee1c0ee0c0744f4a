"""End to end through the real TLS server on loopback: back up a hostile tree, restore it exactly.

The tree (``tests/e2e/trees.py``) holds regular, empty and large (> 100 MiB) files, symlinks,
hard links, odd permissions, a fifo, empty directories, non-UTF-8 and 255-byte names. Restore must
reproduce every byte and every bit of metadata ``describe`` records; a second backup after a small
change must upload only the change; a browse key lists but cannot read.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from opsbackup.backup import BackupRequest, BackupResult, run_backup
from opsbackup.errors import WrongKeyError
from opsbackup.restore import open_snapshot, resolve_snapshot, restore
from opsbackup.server.accounts import Scope
from tests.client_support import AccountKeys, ClientEnv, client_env
from tests.e2e.trees import describe, make_tree

pytestmark = pytest.mark.slow

LARGE_MIB = 110


@dataclass
class World:
    env: ClientEnv
    src: Path
    first: BackupResult
    tmp: Path


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, account_keys: AccountKeys) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("e2e")
    src = make_tree(tmp / "src", large_mib=LARGE_MIB)
    with client_env(tmp / "env", account_keys) as env:
        first = run_backup(
            env.account(Scope.HOST, tmp / "host-state.json"), env.host(), BackupRequest(paths=(src,))
        )
        yield World(env, src, first, tmp)


def restored_root(target: Path, src: Path) -> Path:
    """Record paths are the absolute source paths without their leading '/'."""
    return target / src.relative_to("/")


def test_a_hostile_tree_restores_bit_identical_with_its_metadata(world: World) -> None:
    assert world.first.warnings == ()
    assert world.first.total_bytes > LARGE_MIB << 20
    reader = world.env.account(Scope.RESTORE)
    snapshot = open_snapshot(reader, resolve_snapshot(reader, world.first.backup_id), world.env.keys.data)
    target = world.tmp / "target"
    target.mkdir()
    restore(reader, snapshot, world.env.keys.data, target)
    assert describe(restored_root(target, world.src)) == describe(world.src)
    assert sorted(os.listdir(target)) == [world.src.parts[1]]  # nothing else: no staging left behind


def test_a_second_backup_after_a_small_change_uploads_only_the_change(world: World) -> None:
    src = world.src
    with (src / "large.bin").open("r+b") as f:  # insert 100 bytes in the middle: content shifts
        f.seek(LARGE_MIB << 19)
        tail = f.read()
        f.seek(LARGE_MIB << 19)
        f.write(os.urandom(100) + tail)
    (src / "hello.txt").write_bytes(b"hello, changed world\n")
    second = run_backup(
        world.env.account(Scope.HOST, world.tmp / "host-state.json"),
        world.env.host(),
        BackupRequest(paths=(src,)),
    )
    assert second.new_chunks <= 4, second
    assert second.new_bytes < 24 << 20, second  # at most a few chunks of ~1 MiB (8 MiB at most)
    assert second.reused_chunks > 80  # the ~100 chunks of the large file, less the one edited
    reader = world.env.account(Scope.RESTORE)
    snapshot = open_snapshot(reader, resolve_snapshot(reader, second.backup_id), world.env.keys.data)
    target = world.tmp / "target-2"
    target.mkdir()
    restore(reader, snapshot, world.env.keys.data, target)
    assert describe(restored_root(target, src)) == describe(src)


def test_the_browse_key_lists_but_cannot_read(world: World) -> None:
    reader = world.env.account(Scope.RESTORE)
    verified = resolve_snapshot(reader, world.first.backup_id)
    snapshot = open_snapshot(reader, verified, world.env.keys.browse)
    names = {r.path for r in snapshot.records()}
    assert os.fsencode(world.src / "hello.txt")[1:] in names
    target = world.tmp / "browse-target"
    target.mkdir()
    with pytest.raises(WrongKeyError):
        restore(reader, snapshot, world.env.keys.browse, target)
    assert os.listdir(target) == []
