"""Which private key reads what: browse lists, data restores, others fail clearly; reused sources."""

from __future__ import annotations

import dataclasses
import io
import os
from pathlib import Path

import pytest

from crypto.primitives import random_bytes
from crypto.wrap import wrap_key
from formats import wrapped_key
from formats.backup_root import BackupRoot
from formats.roles import Role
from formats.tree import Kind
from opsbackup.errors import IntegrityError, WrongKeyError
from opsbackup.restore import dump, list_snapshots, open_snapshot, restore
from tests.client_support import ClientEnv
from tests.restore._build import Builder, Built, Entry, dir_, envelope_key, file, manifest_key, tamper
from tests.restore._support import reader, target_state

SHARED = os.urandom(80_000)


def upload(env: ClientEnv, entries: list[Entry], **options: object) -> Built:
    builder = Builder(env.keys, env.account_id)
    built = builder.build(entries, **options)
    builder.upload(env, built)
    return built


def test_browse_key_lists_but_cannot_restore_or_dump(env: ClientEnv, tmp_path: Path) -> None:
    upload(env, [dir_(b"etc"), file(b"etc/secret", b"top secret")])
    account = reader(env)
    (vm,) = list_snapshots(account)
    snapshot = open_snapshot(account, vm, env.keys.browse)
    assert [r.path for r in snapshot.records()] == [b"etc", b"etc/secret"]
    target = tmp_path / "target"
    target.mkdir()
    before = target_state(target)
    with pytest.raises(WrongKeyError, match="can list files but not read them; use a data key"):
        restore(account, snapshot, env.keys.browse, target)
    assert target_state(target) == before
    with pytest.raises(WrongKeyError, match="use a data key"):
        dump(account, snapshot, env.keys.browse, b"etc/secret", io.BytesIO())
    # The snapshot opened with the browse key restores with the data key.
    restore(account, snapshot, env.keys.data, target)
    assert (target / "etc" / "secret").read_bytes() == b"top secret"


def test_a_key_of_no_recipient_opens_nothing(env: ClientEnv, tmp_path: Path) -> None:
    upload(env, [file(b"a", b"x")])
    account = reader(env)
    (vm,) = list_snapshots(account)
    with pytest.raises(WrongKeyError, match="neither a browse nor a data key"):
        open_snapshot(account, vm, env.keys.root)
    snapshot = open_snapshot(account, vm, env.keys.data)
    with pytest.raises(WrongKeyError, match="is not a data key of backup"):
        restore(account, snapshot, env.keys.root, tmp_path / "t")
    assert not (tmp_path / "t").exists()


def test_reused_chunks_restore_with_the_earlier_backups_key(env: ClientEnv, tmp_path: Path) -> None:
    first = upload(env, [file(b"a", SHARED)], time=1_700_000_000)
    second = upload(
        env, [file(b"a", SHARED), file(b"b", SHARED[:40_000] + b"new")], time=1_700_000_100, reuse=[first]
    )
    assert len(second.root.sources) == 2
    # Forgetting the first backup's manifest breaks nothing: its wrapped keys are in the second's root.
    env.server.store.delete(manifest_key(env, "web1", first.id))
    account = reader(env)
    (vm,) = list_snapshots(account)
    assert vm.backup_id == second.id
    restore(account, open_snapshot(account, vm, env.keys.data), env.keys.data, tmp_path / "t")
    assert (tmp_path / "t" / "a").read_bytes() == SHARED
    assert (tmp_path / "t" / "b").read_bytes() == SHARED[:40_000] + b"new"


def test_reused_source_with_a_wrong_commitment(env: ClientEnv, tmp_path: Path) -> None:
    first = upload(env, [file(b"a", SHARED)], time=1_700_000_000)

    def forge(root: BackupRoot) -> BackupRoot:
        src = dataclasses.replace(root.sources[1], data_key_commitment=random_bytes(32))
        return dataclasses.replace(root, sources=(root.sources[0], src))

    upload(env, [file(b"a", SHARED)], time=1_700_000_100, reuse=[first], root=forge)
    account = reader(env)
    newest = list_snapshots(account)[-1]
    snapshot = open_snapshot(account, newest, env.keys.data)
    with pytest.raises(IntegrityError, match=f"data key of backup {first.id}.*commitment the backup names"):
        restore(account, snapshot, env.keys.data, tmp_path / "t")
    assert not (tmp_path / "t").exists()


def test_reused_source_whose_records_name_another_backup(env: ClientEnv, tmp_path: Path) -> None:
    other = upload(env, [file(b"z", b"other")], time=1_699_999_999)
    first = upload(env, [file(b"a", SHARED)], time=1_700_000_000)
    upload(env, [file(b"a", SHARED)], time=1_700_000_100, reuse=[first])
    # The server serves the other backup's envelope as the reused one's.
    tamper(env, envelope_key(env, first.backup_id), env.server.store.read(envelope_key(env, other.backup_id)))
    account = reader(env)
    snapshot = open_snapshot(account, list_snapshots(account)[-1], env.keys.data)
    with pytest.raises(IntegrityError, match="served for another backup"):
        restore(account, snapshot, env.keys.data, tmp_path / "t")


def test_reused_source_not_wrapped_to_this_data_key(env: ClientEnv, tmp_path: Path) -> None:
    builder = Builder(env.keys, env.account_id)
    first = upload(env, [file(b"a", SHARED)], time=1_700_000_000)
    record = wrap_key(
        random_bytes(32), role=Role.DATA, backup_id=first.backup_id, recipient=env.keys.root.public_key()
    )
    browse = [r for r in first.envelope_records if wrapped_key.decode(r).role is Role.BROWSE]
    elsewhere = builder.envelope(env, first, [wrapped_key.encode(record), *browse])
    tamper(env, envelope_key(env, first.backup_id), elsewhere)
    upload(env, [file(b"a", SHARED)], time=1_700_000_100, reuse=[first])
    account = reader(env)
    snapshot = open_snapshot(account, list_snapshots(account)[-1], env.keys.data)
    with pytest.raises(WrongKeyError, match=f"not a data key of backup {first.id}, whose stored chunks"):
        restore(account, snapshot, env.keys.data, tmp_path / "t")
    assert not (tmp_path / "t").exists()


def test_find_style_listing_with_the_data_key(env: ClientEnv) -> None:
    upload(env, [dir_(b"d"), file(b"d/f", b"1"), file(b"g", b"2")])
    account = reader(env)
    (vm,) = list_snapshots(account)
    kinds = [r.kind for r in open_snapshot(account, vm, env.keys.data).records()]
    assert kinds == [Kind.DIR, Kind.FILE, Kind.FILE]
