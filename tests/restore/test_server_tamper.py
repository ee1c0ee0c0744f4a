"""A hostile server: objects and manifests rewritten on its disk. Restore refuses, target untouched."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from crypto.private import sign_object
from formats.backup_root import PackKind
from opsbackup.errors import IntegrityError, NotFoundError, OpsbackupError, RollbackError, WrongKeyError
from opsbackup.restore import open_snapshot, resolve_snapshot, restore
from tests.client_support import ClientEnv
from tests.restore._build import Builder, Built, dir_, file, manifest_key, object_key, tamper
from tests.restore._support import reader, target_state

CONTENT = os.urandom(150_000)  # several chunks and packs


def backup(env: ClientEnv, host: str = "web1", **options: object) -> Built:
    builder = Builder(env.keys, env.account_id, host)
    built = builder.build([dir_(b"etc"), file(b"etc/data", CONTENT)], **options)
    builder.upload(env, built)
    return built


def existing_target(tmp_path: Path) -> Path:
    target = Path(tempfile.mkdtemp(dir=tmp_path)) / "target"
    (target / "etc").mkdir(parents=True)
    (target / "etc" / "data").write_bytes(b"the operator's current file\n")
    (target / "notes").write_bytes(b"keep me\n")
    return target


def attempt(env: ClientEnv, target: Path, spec: str = "latest", host: str | None = "web1") -> None:
    account = reader(env)
    snapshot = open_snapshot(account, resolve_snapshot(account, spec, host), env.keys.data)
    restore(account, snapshot, env.keys.data, target)


def refused(env: ClientEnv, tmp_path: Path, error: type[OpsbackupError], match: str, **kw: str) -> None:
    target = existing_target(tmp_path)
    before = target_state(target)
    with pytest.raises(error, match=match):
        attempt(env, target, **kw)
    assert target_state(target) == before


def test_honest_server_restores(env: ClientEnv, tmp_path: Path) -> None:
    backup(env)
    target = existing_target(tmp_path)
    attempt(env, target)
    assert (target / "etc" / "data").read_bytes() == CONTENT


def test_flipped_byte_in_a_data_pack(env: ClientEnv, tmp_path: Path) -> None:
    built = backup(env)
    name = built.pack_names(PackKind.DATA)[-1]
    data = bytearray(built.objects[name])
    data[len(data) // 2] ^= 1
    tamper(env, object_key(env, name), bytes(data))
    refused(env, tmp_path, IntegrityError, "does not match the hash the manifest signs")


def test_truncated_data_pack(env: ClientEnv, tmp_path: Path) -> None:
    built = backup(env)
    name = built.pack_names(PackKind.DATA)[0]
    tamper(env, object_key(env, name), built.objects[name][:-100])
    refused(env, tmp_path, IntegrityError, "truncated")


def test_extended_data_pack(env: ClientEnv, tmp_path: Path) -> None:
    built = backup(env)
    name = built.pack_names(PackKind.DATA)[0]
    tamper(env, object_key(env, name), built.objects[name] + b"\0")
    refused(env, tmp_path, IntegrityError, "longer than")


def test_missing_data_pack(env: ClientEnv, tmp_path: Path) -> None:
    built = backup(env)
    env.server.store.delete(object_key(env, built.pack_names(PackKind.DATA)[1]))
    refused(env, tmp_path, NotFoundError, "missing from the server")


def test_data_pack_swapped_for_another_pack(env: ClientEnv, tmp_path: Path) -> None:
    built = backup(env)
    first, second = built.pack_names(PackKind.DATA)[:2]
    tamper(env, object_key(env, first), built.objects[second])
    refused(env, tmp_path, IntegrityError, "altered")


def test_flipped_byte_in_the_tree_pack(env: ClientEnv, tmp_path: Path) -> None:
    built = backup(env)
    name = built.pack_names(PackKind.TREE)[0]
    data = bytearray(built.objects[name])
    data[40] ^= 0x80
    tamper(env, object_key(env, name), bytes(data))
    target = existing_target(tmp_path)
    before = target_state(target)
    account = reader(env)
    snapshot = open_snapshot(account, resolve_snapshot(account, "latest", "web1"), env.keys.data)
    with pytest.raises(IntegrityError, match="tree pack"):
        restore(account, snapshot, env.keys.data, target)
    assert target_state(target) == before


def test_manifest_swapped_for_another_backups(env: ClientEnv, tmp_path: Path) -> None:
    old = backup(env, time=1_700_000_000)
    new = backup(env, time=1_700_000_100, previous=old.hash)
    tamper(env, manifest_key(env, "web1", old.id), new.signed)
    refused(env, tmp_path, IntegrityError, f"manifest web1/{old.id} holds backup {new.id}")
    refused(env, tmp_path, IntegrityError, "another manifest was put in its place", spec=old.id[:10])


def test_manifest_of_another_host_under_this_hosts_path(env: ClientEnv, tmp_path: Path) -> None:
    backup(env, time=1_700_000_000)
    other = backup(env, host="web2", time=1_700_000_500)
    tamper(env, manifest_key(env, "web1", other.id), other.signed)
    refused(env, tmp_path, IntegrityError, "a manifest of another host was put in its place")


def test_manifest_resigned_by_an_unknown_key(
    env: ClientEnv, tmp_path: Path, rsa3072_other: rsa.RSAPrivateKey
) -> None:
    from formats import manifest as fmt

    built = backup(env)
    forged = sign_object(rsa3072_other, fmt.encode(built.manifest))
    tamper(env, manifest_key(env, "web1", built.id), forged)
    refused(env, tmp_path, WrongKeyError, f"manifest web1/{built.id}.*not trusted")


def test_manifest_with_a_flipped_bit(env: ClientEnv, tmp_path: Path) -> None:
    built = backup(env)
    data = bytearray(built.signed)
    data[200] ^= 4
    tamper(env, manifest_key(env, "web1", built.id), bytes(data))
    refused(env, tmp_path, IntegrityError, f"manifest web1/{built.id}")


def test_server_hiding_the_newest_backup_is_a_rollback(env: ClientEnv, tmp_path: Path) -> None:
    old = backup(env, time=1_700_000_000)
    new = backup(env, time=1_700_000_100, previous=old.hash)
    state = tmp_path / "state.json"
    account = env.account(state=state)
    assert resolve_snapshot(account, "latest").backup_id == new.id
    env.server.store.delete(manifest_key(env, "web1", new.id))
    target = existing_target(tmp_path)
    before = target_state(target)
    with pytest.raises(RollbackError, match="older backup of host web1 than one already seen"):
        resolve_snapshot(env.account(state=state), "latest")
    assert target_state(target) == before
