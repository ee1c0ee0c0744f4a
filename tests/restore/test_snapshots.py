"""Listing and naming snapshots: order, specs, hosts, errors that name the manifest, rollback."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsbackup.errors import IntegrityError, NotFoundError, RollbackError, UsageError
from opsbackup.restore import list_snapshots, resolve_snapshot
from tests.client_support import ClientEnv
from tests.restore._build import Builder, Built, file, manifest_key, tamper
from tests.restore._support import reader


def make(env: ClientEnv, host: str = "web1", **options: object) -> Built:
    builder = Builder(env.keys, env.account_id, host)
    built = builder.build([file(b"f", b"content")], **options)
    builder.upload(env, built)
    return built


def chain(env: ClientEnv, n: int, host: str = "web1", start: int = 1_700_000_000) -> list[Built]:
    out: list[Built] = []
    for i in range(n):
        previous = out[-1].hash if out else bytes(32)
        out.append(make(env, host, time=start + 100 * i, previous=previous))
    return out


def test_list_is_verified_and_sorted(env: ClientEnv) -> None:
    b = make(env, "web2", time=1_700_000_050)
    a1, a2 = chain(env, 2)
    account = reader(env)
    assert [vm.backup_id for vm in list_snapshots(account)] == [a1.id, b.id, a2.id]
    assert [vm.backup_id for vm in list_snapshots(account, "web1")] == [a1.id, a2.id]
    assert list_snapshots(account, "web3") == []


def test_a_bad_manifest_is_an_error_naming_it_not_skipped(env: ClientEnv) -> None:
    a, _ = chain(env, 2)
    signed = bytearray(a.signed)
    signed[-5] ^= 1  # in the signature
    tamper(env, manifest_key(env, "web1", a.id), bytes(signed))
    with pytest.raises(IntegrityError, match=f"manifest web1/{a.id}"):
        list_snapshots(reader(env))


def test_resolve_by_latest_id_prefix_and_host(env: ClientEnv) -> None:
    a1, a2 = chain(env, 2)
    b = make(env, "web2", time=1_600_000_000)
    account = reader(env)
    assert resolve_snapshot(account, "latest", "web1").backup_id == a2.id
    assert resolve_snapshot(account, "web2/latest").backup_id == b.id
    assert resolve_snapshot(account, a1.id).backup_id == a1.id
    assert resolve_snapshot(account, a1.id[:8].upper()).backup_id == a1.id
    assert resolve_snapshot(account, f"web2/{b.id[:9]}").backup_id == b.id
    with pytest.raises(UsageError, match=r"several hosts have backups .* --host"):
        resolve_snapshot(account, "latest")
    with pytest.raises(UsageError, match="not a snapshot"):
        resolve_snapshot(account, a1.id[:7])
    with pytest.raises(NotFoundError, match="no backup matches"):
        resolve_snapshot(account, f"web2/{a1.id}")
    with pytest.raises(UsageError, match="names host"):
        resolve_snapshot(account, f"web2/{b.id}", host="web1")
    with pytest.raises(NotFoundError, match="host web9 has no backups"):
        resolve_snapshot(account, "latest", "web9")


def test_latest_of_the_only_host_needs_no_host(env: ClientEnv) -> None:
    _, newest = chain(env, 2)
    assert resolve_snapshot(reader(env), "latest").backup_id == newest.id


def test_ambiguous_prefix(env: ClientEnv) -> None:
    make(env, backup_id=bytes.fromhex("abcdef01" + "00" * 12), time=1)
    make(env, backup_id=bytes.fromhex("abcdef01" + "11" * 12), time=2)
    with pytest.raises(UsageError, match="matches several backups"):
        resolve_snapshot(reader(env), "abcdef01")
    assert resolve_snapshot(reader(env), "abcdef0111").backup_id.startswith("abcdef0111")


def test_latest_records_the_head_and_refuses_an_older_one(env: ClientEnv, tmp_path: Path) -> None:
    a, b, c = chain(env, 3)
    state = tmp_path / "state.json"
    account = env.account(state=state)
    assert resolve_snapshot(account, "latest").backup_id == c.id
    assert account.state.head(account.root_id, "web1") == c.hash
    env.server.store.delete(manifest_key(env, "web1", c.id))
    with pytest.raises(RollbackError, match="older backup of host web1"):
        resolve_snapshot(env.account(state=state), "latest")
    # A fresh client has nothing to compare with: it takes the newest it is shown.
    assert resolve_snapshot(reader(env), "latest").backup_id == b.id
    # Naming a backup by id is not "latest": no chain is needed.
    assert resolve_snapshot(env.account(state=state), a.id).backup_id == a.id


def test_newer_backups_and_pruned_ones_pass_the_chain_check(env: ClientEnv, tmp_path: Path) -> None:
    a, b = chain(env, 2)
    state = tmp_path / "state.json"
    assert resolve_snapshot(env.account(state=state), "latest").backup_id == b.id
    c = make(env, time=1_700_000_300, previous=b.hash)
    d = make(env, time=1_700_000_400, previous=c.hash)
    env.server.store.delete(manifest_key(env, "web1", b.id))  # pruned, as a signed delete would
    env.server.store.delete(manifest_key(env, "web1", a.id))
    assert resolve_snapshot(env.account(state=state), "latest").backup_id == d.id


def test_a_newest_backup_off_the_seen_chain_is_refused(env: ClientEnv, tmp_path: Path) -> None:
    a, b = chain(env, 2)
    state = tmp_path / "state.json"
    resolve_snapshot(env.account(state=state), "latest")
    make(env, time=1_700_000_500, previous=a.hash)  # a fork that skips b, the head this client saw
    env.server.store.delete(manifest_key(env, "web1", b.id))
    with pytest.raises(RollbackError):
        resolve_snapshot(env.account(state=state), "latest")


def test_a_chain_going_back_in_time_does_not_reach_the_head(env: ClientEnv, tmp_path: Path) -> None:
    (a,) = chain(env, 1)
    state = tmp_path / "state.json"
    resolve_snapshot(env.account(state=state), "latest")
    older = make(env, time=1_600_000_000, previous=a.hash)  # signed, but dated before its previous
    newest = make(env, time=1_800_000_000, previous=older.hash)
    with pytest.raises(RollbackError):
        resolve_snapshot(env.account(state=state), "latest")
    assert newest.id


def test_listing_names_are_checked_before_use(env: ClientEnv) -> None:
    a = make(env, time=5)
    # A manifest stored under a name that is not a backup id is refused, not fetched blindly.
    tamper(env, manifest_key(env, "web1", "zz" * 16), a.signed)
    with pytest.raises(IntegrityError, match="invalid name"):
        list_snapshots(reader(env))


def test_backups_made_in_one_second_keep_their_chain_order(env: ClientEnv, tmp_path: Path) -> None:
    ids = [bytes([0xF0 - i]) * 16 for i in range(3)]  # ids sort against the chain
    chain_ids: list[Built] = []
    for backup_id in ids:
        previous = chain_ids[-1].hash if chain_ids else bytes(32)
        chain_ids.append(make(env, time=1_700_000_000, previous=previous, backup_id=backup_id))
    account = env.account(state=tmp_path / "state.json")
    assert [vm.backup_id for vm in list_snapshots(account)] == [b.id for b in chain_ids]
    assert resolve_snapshot(account, "latest").backup_id == chain_ids[-1].id
    # The head is recorded, and the same listing passes the chain check next time.
    assert (
        resolve_snapshot(env.account(state=tmp_path / "state.json"), "latest").backup_id == chain_ids[-1].id
    )
