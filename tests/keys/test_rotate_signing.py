"""Rotating the deletion key and the root key: resumable, the old key refused, clients follow.

Real parts: a live TLS server, backups by the backup engine, restores by the restore engine,
forget and prune through the server's signed delete endpoint, key files on disk, the commands
through click's runner. A rotation is killed between its steps by raising from its step hook (as
``tests/keys/test_rotate_data.py`` does): nothing after the raise runs, and the re-run must finish
from what is on disk and on the server.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from crypto.keyfile import PrivateKey, export_public_pem, load_key, load_public, load_trusted_root, save_key
from crypto.keyring import next_keyring_body
from crypto.primitives import public_key_id
from crypto.private import generate_rsa_key, sign_object
from formats import signed
from formats.roles import Role
from opsbackup.client.account import open_account
from opsbackup.client.config import ServerSettings, render_config, root_fingerprint
from opsbackup.client.repository import Repository
from opsbackup.client.state import ClientState
from opsbackup.commands import keys_add_host, keys_rotate
from opsbackup.errors import ServerRefusedError, WrongKeyError
from opsbackup.ops.forget import delete_in_batches
from opsbackup.ops.prune import DEFAULT_GRACE, prune
from opsbackup.restore import open_snapshot, restore
from opsbackup.server.accounts import Scope
from opsbackup.setup.admin import KEY_FILE_NAMES
from opsbackup.setup.rotate_keyring import rotate_signing_key
from opsbackup.setup.rotate_recipients import rotate
from tests.backup.support import backup, small
from tests.client_support import ClientEnv
from tests.keys.test_revoke_host import invoke, private_file, two_backups
from tests.keys.test_rotate_data import PASSPHRASE, KilledError, keys_dir


def deletion_key(directory: Path, name: str = "deletion.key") -> rsa.RSAPrivateKey:
    return load_key(directory / name, PASSPHRASE, expect_role=Role.DELETION).private_key


def test_rotate_deletion_key_forget_and_prune_use_the_new_key_only(env: ClientEnv, tmp_path: Path) -> None:
    expected = two_backups(env, tmp_path)
    first, second = expected
    directory = keys_dir(env, tmp_path / "keys")
    rotate(env.account(Scope.ADMIN), directory, Role.DATA, PASSPHRASE)  # envelopes signed by the old key
    new_data = load_key(directory / "data.key", PASSPHRASE, expect_role=Role.DATA).private_key
    version = env.account().keyring.version
    done = rotate_signing_key(env.account(Scope.ADMIN), directory, Role.DELETION, PASSPHRASE)
    assert done.keyring_version == version + 1
    assert done.old_key_id == public_key_id(env.keys.deletion.public_key())
    new = load_key(directory / "deletion.key", PASSPHRASE, expect_role=Role.DELETION).private_key
    assert public_key_id(new.public_key()) == done.new_key_id
    assert done.replaced_file == directory / f"deletion.key.replaced-{done.old_key_id.hex()[:16]}"
    assert not (directory / "deletion.key.next").exists()
    keyring = env.account().keyring
    assert set(keyring.keys_for(Role.DELETION)) == {done.new_key_id}
    assert not keyring.entry(done.old_key_id).active
    assert load_trusted_root(directory / "deletion.key") == env.keys.root.public_key()

    admin = env.account(Scope.ADMIN)
    forget_first = [("web1", bytes.fromhex(first))]
    with pytest.raises(ServerRefusedError, match="not signed by a deletion key"):
        delete_in_batches(admin, env.keys.deletion, manifests=forget_first)
    assert delete_in_batches(admin, new, manifests=forget_first)["deleted_manifests"] == 1
    t0 = 1_000_000_000.0
    marks = tmp_path / "marks"
    assert prune(admin, new, marks_dir=marks, now=t0).marked > 0
    with pytest.raises(ServerRefusedError, match="not signed by a deletion key"):
        prune(admin, env.keys.deletion, marks_dir=marks, now=t0 + 2 * DEFAULT_GRACE)
    swept = prune(env.account(Scope.ADMIN), new, marks_dir=marks, now=t0 + 2 * DEFAULT_GRACE)
    assert swept.deleted_objects > 0
    assert swept.deleted_envelopes == 1
    # The remaining backup was re-wrapped under the old deletion key: it still restores.
    account = env.account(Scope.RESTORE)
    vm = account.fetch_manifest("web1", second)
    restore(account, open_snapshot(account, vm, new_data), new_data, tmp_path / "t")
    assert next((tmp_path / "t").rglob("f.bin")).read_bytes() == expected[second]


@pytest.mark.parametrize("kill_at", ["key", "keyring", "swap-middle"])
def test_deletion_rotation_killed_and_run_again_finishes(
    env: ClientEnv, tmp_path: Path, kill_at: str
) -> None:
    directory = keys_dir(env, tmp_path / "keys")

    def step(name: str) -> None:
        if name == kill_at:
            raise KilledError(name)

    with pytest.raises(KilledError):
        rotate_signing_key(env.account(Scope.ADMIN), directory, Role.DELETION, PASSPHRASE, after_step=step)
    assert (directory / "deletion.key").exists()  # at every moment
    pending = load_key(directory / "deletion.key.next", PASSPHRASE, expect_role=Role.DELETION)
    done = rotate_signing_key(env.account(Scope.ADMIN), directory, Role.DELETION, PASSPHRASE)
    assert done.new_key_id == public_key_id(pending.private_key.public_key())
    assert done.keyring_version == 2  # published once, whatever the kill
    assert set(env.account().keyring.keys_for(Role.DELETION)) == {done.new_key_id}
    assert public_key_id(deletion_key(directory).public_key()) == done.new_key_id
    replaced = deletion_key(directory, f"deletion.key.replaced-{done.old_key_id.hex()[:16]}")
    assert public_key_id(replaced.public_key()) == done.old_key_id
    assert not (directory / "deletion.key.next").exists()


def admin_config(env: ClientEnv, tmp_path: Path, directory: Path) -> Path:
    """The admin's config.toml pinning the account's first root (``root.pub.pem``), as keys publish writes."""
    (directory / "root.pub.pem").write_bytes(export_public_pem(env.keys.root.public_key()))
    cred = private_file(tmp_path / "admin.cred", env.tokens[Scope.ADMIN])
    text = render_config(
        server=ServerSettings(env.server.url, env.server.ca, cred),
        account=("root.pub.pem", root_fingerprint(env.keys.root.public_key())),
        keys_dir=".",
    )
    config = directory / "config.toml"
    config.write_text(text)
    config.chmod(0o600)
    return config


def test_rotate_root_clients_follow_the_handover(env: ClientEnv, tmp_path: Path) -> None:
    expected = two_backups(env, tmp_path)
    first = next(iter(expected))
    directory = keys_dir(env, tmp_path / "keys")
    config = admin_config(env, tmp_path, directory)
    dedup = PrivateKey(role=Role.DEDUP, label="dedup", dedup_secret=env.keys.dedup_secret)
    save_key(directory / "dedup.key", dedup, None, root_public_key=env.keys.root.public_key())
    old_data = tmp_path / "old-data.key"  # a copy from before: it names the old root
    shutil.copy2(directory / "data.key", old_data)
    phrase = private_file(tmp_path / "passphrase", PASSPHRASE)
    args = ["--config", str(config), "--passphrase-file", str(phrase)]
    done = invoke(keys_rotate.command, ["--role", "root", *args], tmp_path)
    assert done.exit_code == 0, done.output
    old_id = public_key_id(env.keys.root.public_key())
    new_root = load_key(directory / "root.key", PASSPHRASE, expect_role=Role.ROOT)
    new_id = public_key_id(new_root.private_key.public_key())
    assert (
        f"keyring version 3: the root key is now {new_id.hex()[:16]} (was {old_id.hex()[:16]})" in done.output
    )
    # The handover (v2, signed by the old root) and v3 signed by the new root.
    repo = Repository(env.transport(Scope.RESTORE))
    assert signed.decode(repo.get_keyring()).signer == new_id
    # The key directory names the new root everywhere; root.pub.pem (pinned by configs) stays.
    for role in (Role.DATA, Role.BROWSE, Role.DELETION, Role.DEDUP):
        path = directory / KEY_FILE_NAMES[role]
        if path.exists():
            assert public_key_id(load_trusted_root(path)) == new_id, path
    assert public_key_id(load_public(directory / "root.key").root_public_key) == new_id
    assert (directory / f"root.key.replaced-{old_id.hex()[:16]}").exists()
    assert (directory / f"root-{new_id.hex()[:16]}.pub.pem").exists()

    # A fresh machine holding only a key file from before pins the OLD root, walks and restores.
    pin = load_key(old_data, PASSPHRASE, expect_role=Role.DATA)
    assert public_key_id(pin.root_public_key) == old_id
    account = open_account(repo, pin.root_public_key, ClientState(None))
    assert account.keyring.version == 3
    assert account.keyring.root_id == new_id
    vm = account.fetch_manifest("web1", first)
    restore(account, open_snapshot(account, vm, pin.private_key), pin.private_key, tmp_path / "t")
    assert next((tmp_path / "t").rglob("f.bin")).read_bytes() == expected[first]
    # A host that remembers keyring v1 under the old root follows too and backs up.
    src = tmp_path / "src-web1"
    (src / "f.bin").write_bytes(os.urandom(10_000))
    with small():
        later = backup(env, src, host="web1")
    assert env.account(Scope.RESTORE).fetch_manifest("web1", later.backup_id).manifest.keyring_version == 3

    # keys add-host with the new root.key, the config still pinning the old root: works.
    pem = tmp_path / "web3.pub.pem"
    pem.write_bytes(export_public_pem(generate_rsa_key(3072).public_key()))
    added = invoke(keys_add_host.command, ["web3", "--public-key", str(pem), *args], tmp_path)
    assert added.exit_code == 0, added.output
    assert "keyring version 4: host web3 may now back up" in added.output
    # The old root signs nothing any more: the server refuses a keyring version it signed.
    body = next_keyring_body(env.account().keyring)
    with pytest.raises(ServerRefusedError):
        Repository(env.transport(Scope.ADMIN)).put_keyring(sign_object(env.keys.root, body))
    # And the replaced root key file cannot add a host either (refused before signing).
    replaced = directory / f"root.key.replaced-{old_id.hex()[:16]}"
    old_dir = tmp_path / "old-keys"
    old_dir.mkdir(mode=0o700)
    shutil.copy2(replaced, old_dir / "root.key")
    flags = [
        "--server",
        env.server.url,
        "--ca",
        str(env.server.ca),
        "--credential-file",
        str(tmp_path / "admin.cred"),
    ]
    command = [
        "web4",
        "--public-key",
        str(pem),
        "--dir",
        str(old_dir),
        "--passphrase-file",
        str(phrase),
        *flags,
    ]
    refused = invoke(keys_add_host.command, command, tmp_path)
    assert isinstance(refused.exception, WrongKeyError)


@pytest.mark.parametrize("kill_at", ["key", "handover", "keyring", "rekey", "swap-middle"])
def test_root_rotation_killed_and_run_again_finishes(env: ClientEnv, tmp_path: Path, kill_at: str) -> None:
    expected = two_backups(env, tmp_path)
    directory = keys_dir(env, tmp_path / "keys")

    def step(name: str) -> None:
        if name == kill_at:
            raise KilledError(name)

    with pytest.raises(KilledError):
        rotate_signing_key(env.account(Scope.ADMIN), directory, Role.ROOT, PASSPHRASE, after_step=step)
    assert (directory / "root.key").exists()  # at every moment
    # Killed anywhere, every backup still verifies for a fresh client pinning the old root.
    fresh = open_account(
        Repository(env.transport(Scope.RESTORE)), env.keys.root.public_key(), ClientState(None)
    )
    for backup_id in expected:
        fresh.fetch_manifest("web1", backup_id)
    pending = load_key(directory / "root.key.next", PASSPHRASE, expect_role=Role.ROOT)
    done = rotate_signing_key(env.account(Scope.ADMIN), directory, Role.ROOT, PASSPHRASE)
    new_id = public_key_id(pending.private_key.public_key())
    assert done.new_key_id == new_id
    assert done.keyring_version == 3  # the handover and one version signed by the new root, once
    keyring = env.account().keyring
    assert keyring.root_id == new_id
    assert not keyring.entry(public_key_id(env.keys.root.public_key())).active
    assert signed.decode(Repository(env.transport()).get_keyring()).signer == new_id
    assert not (directory / "root.key.next").exists()
    assert public_key_id(load_public(directory / "root.key").public_key) == new_id
    for name in ("data.key", "browse.key", "deletion.key"):
        assert public_key_id(load_trusted_root(directory / name)) == new_id
    # A machine pinning the new root opens the newest version without walking.
    pinned_new = open_account(
        Repository(env.transport(Scope.RESTORE)), pending.private_key.public_key(), ClientState(None)
    )
    assert pinned_new.keyring.version == 3
    data = env.keys.data
    for backup_id, content in expected.items():
        vm = pinned_new.fetch_manifest("web1", backup_id)
        target = tmp_path / f"r-{backup_id}"
        restore(pinned_new, open_snapshot(pinned_new, vm, data), data, target)
        assert next(target.rglob("f.bin")).read_bytes() == content
