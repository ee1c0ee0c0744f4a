"""An OpenPGP data recipient end to end, with the real gpg: back up, restore through gpg-agent.

The OpenPGP key is made in a temporary GNUPGHOME (ed25519 certify key, cv25519 encryption subkey);
its minimal export goes into the keyring as a data recipient. The host wraps each backup's keys to
it with gpg in a throwaway home holding only the pinned keys; the restore unwraps through the
user's gpg-agent with loopback pinentry (a smartcard would ask for its PIN the same way).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from crypto import gpg
from crypto.keyring import next_keyring_body
from crypto.private import sign_object
from crypto.unwrapper import OpenPgpUnwrapper
from formats import wrapped_key
from formats.roles import Role
from formats.wrapped_key import RecipientKind
from opsbackup.errors import WrongKeyError
from opsbackup.restore import list_snapshots, open_snapshot, restore
from opsbackup.server.accounts import Scope
from opsbackup.setup.rewrap import rewrap_all
from tests.backup.support import backup, small
from tests.client_support import ClientEnv
from tests.gpg_support import PASSPHRASE, Home, drop_home, make_home


@pytest.fixture(scope="module")
def homes() -> Iterator[tuple[Home, str, Home, str]]:
    """The administrator's GnuPG home with a key, and a stranger's home with another."""
    admin, stranger = make_home(), make_home()
    try:
        fprs = []
        for home, uid in ((admin, "admin@example.org"), (stranger, "stranger@example.org")):
            home.gpg("--quick-gen-key", f"Ops <{uid}>", "ed25519", "cert", "0")
            fpr = home.fingerprint(uid)
            home.gpg("--quick-add-key", fpr, "cv25519", "encr", "0")
            fprs.append(fpr)
        yield admin, fprs[0], stranger, fprs[1]
    finally:
        drop_home(admin)
        drop_home(stranger)


def add_openpgp_recipient(env: ClientEnv, public: bytes) -> None:
    admin = env.account(Scope.ADMIN)
    body = next_keyring_body(admin.keyring, add_openpgp=[(Role.DATA, public, "yubikey")])
    admin.repo.put_keyring(sign_object(env.keys.root, body))


def test_backup_wraps_to_gpg_and_restore_unwraps_through_the_agent(
    env: ClientEnv, tmp_path: Path, homes: tuple[Home, str, Home, str]
) -> None:
    admin_home, fpr, stranger_home, stranger_fpr = homes
    public = gpg.export_public_key(fpr, gnupghome=admin_home.path)
    add_openpgp_recipient(env, public)
    src = tmp_path / "src"
    src.mkdir()
    (src / "secret.txt").write_bytes(os.urandom(30_000))
    with small():
        done = backup(env, src)
    account = env.account(Scope.RESTORE)
    (vm,) = list_snapshots(account)
    key = OpenPgpUnwrapper(public, gnupghome=admin_home.path, passphrase=PASSPHRASE)
    snapshot = open_snapshot(account, vm, key)
    restore(account, snapshot, key, tmp_path / "out")
    assert next((tmp_path / "out").rglob("secret.txt")).read_bytes() == (src / "secret.txt").read_bytes()
    # The envelope holds an OpenPGP record of each key for it, beside the RSA ones.
    envelope = snapshot.envelopes.get(bytes.fromhex(done.backup_id))
    kinds = {(r.role, r.kind) for r in map(wrapped_key.decode, envelope.records)}
    assert (Role.DATA, RecipientKind.OPENPGP) in kinds
    assert (Role.BROWSE, RecipientKind.OPENPGP) in kinds
    # The RSA data key restores too: every recipient of the role gets every backup.
    restore(account, open_snapshot(account, vm, env.keys.data), env.keys.data, tmp_path / "rsa")

    # A stranger's OpenPGP key is no recipient; the right public key without its secret in the
    # home is refused by gpg; neither writes anything.
    stranger = gpg.export_public_key(stranger_fpr, gnupghome=stranger_home.path)
    with pytest.raises(WrongKeyError, match="neither a browse nor a data key"):
        open_snapshot(account, vm, OpenPgpUnwrapper(stranger, gnupghome=stranger_home.path))
    impostor = OpenPgpUnwrapper(public, gnupghome=stranger_home.path, passphrase=PASSPHRASE)
    with pytest.raises(WrongKeyError):
        open_snapshot(account, vm, impostor)
    assert not (tmp_path / "refused").exists()


def test_adding_an_openpgp_recipient_rewraps_earlier_backups(
    env: ClientEnv, tmp_path: Path, homes: tuple[Home, str, Home, str]
) -> None:
    admin_home, fpr, _, _ = homes
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_bytes(b"made before the escrow key was added")
    with small():
        backup(env, src)
    public = gpg.export_public_key(fpr, gnupghome=admin_home.path)
    add_openpgp_recipient(env, public)
    admin = env.account(Scope.ADMIN)
    report = rewrap_all(admin, keys=[env.keys.data, env.keys.browse], deletion_key=env.keys.deletion)
    assert report.rewrapped == 1
    account = env.account(Scope.RESTORE)
    (vm,) = list_snapshots(account)
    key = OpenPgpUnwrapper(public, gnupghome=admin_home.path, passphrase=PASSPHRASE)
    restore(account, open_snapshot(account, vm, key), key, tmp_path / "out")
    assert next((tmp_path / "out").rglob("f")).read_bytes() == b"made before the escrow key was added"
