"""The end-to-end round trip on the S3 backend: the real TLS server over an S3Store on moto.

The same hostile tree as ``test_round_trip.py`` (with an 8 MiB large file), backed up through
the server into a bucket and restored bit-identical with its metadata; a second backup after a
small change uploads only the change; ``check --read-data`` finds nothing wrong and the audit
chains verify. The store uses 5 MiB parts, so packs go up as multipart uploads.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from opsbackup.backup import BackupRequest, BackupResult, run_backup
from opsbackup.restore import open_snapshot, resolve_snapshot, restore
from opsbackup.restore.check import check
from opsbackup.server.accounts import Scope
from opsbackup.server.audit_log import list_chains, verify_chain
from opsbackup.storage.s3 import S3Store
from tests.client_support import AccountKeys, ClientEnv
from tests.e2e.test_round_trip import restored_root
from tests.e2e.trees import describe, make_tree
from tests.s3_support import new_store, s3_client_env

pytestmark = pytest.mark.slow

LARGE_MIB = 8


@dataclass
class World:
    env: ClientEnv
    store: S3Store
    src: Path
    first: BackupResult
    tmp: Path


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, account_keys: AccountKeys) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("e2e-s3")
    src = make_tree(tmp / "src", large_mib=LARGE_MIB)
    store = new_store(prefix="backups/")
    with s3_client_env(tmp / "env", account_keys, store) as env:
        first = run_backup(
            env.account(Scope.HOST, tmp / "host-state.json"), env.host(), BackupRequest(paths=(src,))
        )
        yield World(env, store, src, first, tmp)


def _restore(world: World, backup_id: str, name: str) -> Path:
    reader = world.env.account(Scope.RESTORE)
    snapshot = open_snapshot(reader, resolve_snapshot(reader, backup_id), world.env.keys.data)
    target = world.tmp / name
    target.mkdir()
    restore(reader, snapshot, world.env.keys.data, target)
    return target


def test_the_tree_restores_bit_identical_from_the_bucket(world: World) -> None:
    assert world.first.warnings == ()
    packs = [k for k in world.store.list("") if "/objects/" in k]
    assert len(packs) >= 3  # a data pack at least, a tree pack, the chunk index
    assert max(world.store.size(k) for k in packs) > world.store.part_size  # some went up in parts
    target = _restore(world, world.first.backup_id, "target")
    assert describe(restored_root(target, world.src)) == describe(world.src)


def test_a_second_backup_uploads_only_the_change_and_everything_checks(world: World) -> None:
    with (world.src / "large.bin").open("r+b") as f:
        f.seek(LARGE_MIB << 19)
        f.write(os.urandom(100))
    second = run_backup(
        world.env.account(Scope.HOST, world.tmp / "host-state.json"),
        world.env.host(),
        BackupRequest(paths=(world.src,)),
    )
    assert second.new_chunks <= 3, second
    assert second.reused_chunks > 10, second
    target = _restore(world, second.backup_id, "target-2")
    assert describe(restored_root(target, world.src)) == describe(world.src)
    result = check(world.env.account(Scope.RESTORE), read_data=True)
    assert result.errors == []
    assert result.counts["manifests"] == 2
    chains = list_chains(world.store)
    assert world.env.account_id.hex() in chains
    for chain in chains:
        report = verify_chain(world.store, chain)
        assert report.ok, report.problem
