"""Rotating the data and browse keys: every backup re-wrapped, no pack changed, the old key useless.

Real parts throughout: a live TLS server, backups made by the backup engine, restores by the
restore engine, key files on disk. A rotation is killed between its steps (and in the middle of its
re-wrap pass) by raising from its step hook, as a SIGKILL would stop it: nothing after the raise
runs, and the re-run must finish from what is on disk and on the server.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from crypto.keyfile import TEST_PARAMS, PrivateKey, load_key, save_key
from formats.roles import Role
from opsbackup.errors import WrongKeyError
from opsbackup.restore import list_snapshots, open_snapshot, restore
from opsbackup.server.accounts import Scope
from opsbackup.setup.admin import KEY_FILE_NAMES
from opsbackup.setup.rewrap import RewrapReport
from opsbackup.setup.rotate_recipients import next_key_path, rotate
from tests.backup.support import backup, small
from tests.client_support import ClientEnv

PASSPHRASE = "correct horse battery staple"


class KilledError(Exception):
    """Stands for SIGKILL at a step boundary (a named fake: the real signal would end pytest)."""


def keys_dir(env: ClientEnv, path: Path) -> Path:
    """The administrator's key directory holding the session keys (cheap KDF for speed)."""
    path.mkdir(mode=0o700)
    root = env.keys.root.public_key()
    for role, key in (
        (Role.ROOT, env.keys.root),
        (Role.DATA, env.keys.data),
        (Role.BROWSE, env.keys.browse),
        (Role.DELETION, env.keys.deletion),
    ):
        secret = PrivateKey(role=role, label=role.label, rsa_key=key)
        save_key(path / KEY_FILE_NAMES[role], secret, PASSPHRASE, root_public_key=root, cost=TEST_PARAMS)
    return path


def make_backups(env: ClientEnv, tmp_path: Path) -> dict[str, bytes]:
    """Three backups of two hosts (the later ones reuse earlier chunks); backup id -> file bytes."""
    src = tmp_path / "src"
    src.mkdir()
    out = {}
    with small():
        for i, host in enumerate(("web1", "web2", "web1")):
            (src / "f.bin").write_bytes(os.urandom(50_000) + b"shared" * 10_000 + bytes([i]))
            out[backup(env, src, host=host).backup_id] = (src / "f.bin").read_bytes()
    return out


def stored_objects(env: ClientEnv) -> dict[str, str]:
    """Every object on the server: store key -> SHA-256 of its bytes."""
    prefix = f"accounts/{env.account_id.hex()}/objects/"
    store = env.server.store
    return {key: hashlib.sha256(store.read(key)).hexdigest() for key in store.list(prefix)}


def restores_with(env: ClientEnv, key: rsa.RSAPrivateKey, expected: dict[str, bytes], tmp: Path) -> None:
    account = env.account(Scope.RESTORE)
    for vm in list_snapshots(account):
        target = tmp / f"t-{vm.backup_id}-{os.urandom(4).hex()}"
        restore(account, open_snapshot(account, vm, key), key, target)
        found = next(target.rglob("f.bin"))
        assert found.read_bytes() == expected[vm.backup_id]


def refused_with(env: ClientEnv, key: rsa.RSAPrivateKey) -> None:
    account = env.account(Scope.RESTORE)
    for vm in list_snapshots(account):
        with pytest.raises(WrongKeyError, match="rotated out"):
            open_snapshot(account, vm, key)


def readable_with_either(
    env: ClientEnv, keys: list[rsa.RSAPrivateKey], expected: dict[str, bytes], tmp: Path
) -> None:
    """Every backup restores with one of ``keys`` (the old or the new data key)."""
    account = env.account(Scope.RESTORE)
    for vm in list_snapshots(account):
        for key in keys:
            try:
                snapshot = open_snapshot(account, vm, key)
            except WrongKeyError:
                continue
            target = tmp / f"e-{vm.backup_id}-{os.urandom(4).hex()}"
            restore(account, snapshot, key, target)
            assert next(target.rglob("f.bin")).read_bytes() == expected[vm.backup_id]
            break
        else:
            pytest.fail(f"backup {vm.backup_id} opens with neither the old nor the new data key")


def new_data_key(directory: Path) -> rsa.RSAPrivateKey:
    path = directory / "data.key"
    return load_key(path, PASSPHRASE, expect_role=Role.DATA).private_key


def test_rotate_data_key_rewraps_every_backup_and_changes_no_object(env: ClientEnv, tmp_path: Path) -> None:
    expected = make_backups(env, tmp_path)
    directory = keys_dir(env, tmp_path / "keys")
    before = stored_objects(env)
    version = env.account().keyring.version
    result = rotate(env.account(Scope.ADMIN), directory, Role.DATA, PASSPHRASE)
    assert result.rewrap.checked == result.rewrap.rewrapped == 3
    assert result.keyring_version == version + 1
    assert stored_objects(env) == before  # no pack, tree pack or chunk index touched
    new = new_data_key(directory)
    assert not next_key_path(directory, Role.DATA).exists()
    assert (directory / f"data.key.replaced-{result.old_key_id.hex()[:16]}").exists()
    restores_with(env, new, expected, tmp_path)
    refused_with(env, env.keys.data)
    # The keyring lists the old key as revoked; the browse key still lists every backup.
    keyring = env.account().keyring
    assert not keyring.entry(result.old_key_id).active
    account = env.account(Scope.RESTORE)
    for vm in list_snapshots(account):
        open_snapshot(account, vm, env.keys.browse)
    # A second run finds nothing to re-wrap... after another rotation only (it rotates again).
    again = rotate(env.account(Scope.ADMIN), directory, Role.DATA, PASSPHRASE)
    assert again.rewrap.rewrapped == 3
    restores_with(env, new_data_key(directory), expected, tmp_path)
    refused_with(env, new)


def test_backup_after_rotation_is_wrapped_to_the_new_key_only(env: ClientEnv, tmp_path: Path) -> None:
    expected = make_backups(env, tmp_path)
    directory = keys_dir(env, tmp_path / "keys")
    rotate(env.account(Scope.ADMIN), directory, Role.DATA, PASSPHRASE)
    src = tmp_path / "src"
    with small():
        later = backup(env, src, host="web2")  # this host's state still remembers keyring v1
    expected[later.backup_id] = (src / "f.bin").read_bytes()
    restores_with(env, new_data_key(directory), expected, tmp_path)
    refused_with(env, env.keys.data)


def test_rotate_browse_key_keeps_data_records(env: ClientEnv, tmp_path: Path) -> None:
    expected = make_backups(env, tmp_path)
    directory = keys_dir(env, tmp_path / "keys")
    rotate(env.account(Scope.ADMIN), directory, Role.BROWSE, PASSPHRASE)
    new_browse = load_key(directory / "browse.key", PASSPHRASE, expect_role=Role.BROWSE).private_key
    account = env.account(Scope.RESTORE)
    for vm in list_snapshots(account):
        open_snapshot(account, vm, new_browse)
        with pytest.raises(WrongKeyError, match="rotated out"):
            open_snapshot(account, vm, env.keys.browse)
    restores_with(env, env.keys.data, expected, tmp_path)  # the data key was not touched


@pytest.mark.parametrize("kill_at", ["key", "keyring", "rewrap-middle", "rewrap", "swap-middle"])
def test_rotation_killed_and_run_again_finishes(env: ClientEnv, tmp_path: Path, kill_at: str) -> None:
    expected = make_backups(env, tmp_path)
    directory = keys_dir(env, tmp_path / "keys")
    before = stored_objects(env)

    def step(name: str) -> None:
        if name == kill_at:
            raise KilledError(name)

    def progress(report: RewrapReport) -> None:
        if kill_at == "rewrap-middle" and report.checked == 1:
            raise KilledError("rewrap-middle")

    admin = env.account(Scope.ADMIN)
    with pytest.raises(KilledError):
        rotate(admin, directory, Role.DATA, PASSPHRASE, after_step=step, progress=progress)
    assert (directory / "data.key").exists()  # the key file is never missing, not even mid-swap
    pending = load_key(next_key_path(directory, Role.DATA), PASSPHRASE, expect_role=Role.DATA).private_key
    readable_with_either(env, [env.keys.data, pending], expected, tmp_path)
    result = rotate(env.account(Scope.ADMIN), directory, Role.DATA, PASSPHRASE)
    assert stored_objects(env) == before
    new = new_data_key(directory)
    restores_with(env, new, expected, tmp_path)
    refused_with(env, env.keys.data)
    assert result.new_key_id != result.old_key_id
