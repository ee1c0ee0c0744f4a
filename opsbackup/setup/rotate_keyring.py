"""``keys rotate --role deletion|root``: a new signing key in the next keyring version, resumable.

The steps, each recognised on a re-run from the key directory and the keyring, so a rotation
killed at any point finishes when run again (docs/keys.md, "Root and deletion keys"):

1. **key** (``after_step("key")``): ``<role>.key.next`` is generated and written atomically
   (mode 0600, the passphrase and Argon2id cost of the key it replaces). It names the account's
   root: the active root for a deletion key, itself for a new root (a root key file names its
   own public key). Until it exists nothing else happens.
2. **keyring**. Deletion: version ``v + 1`` adds the new key and revokes the old one, signed by
   the root; from then on the server accepts delete requests signed by the new key only.
   Root: the **handover** (``after_step("handover")``), version ``v + 1`` listing the new root
   active and the old one revoked, signed by the OLD root; then version ``v + 2``, the same keys
   signed by the NEW root, so a machine that pins the new root opens the newest version at once
   (docs/spec/keyring.md, "Replacing the root key"). Recognised by the keyring's active root and
   the signer of its newest version.
3. **rekey** (root only, ``after_step("rekey")``): every other administrator key file in the
   directory (data, browse, deletion, dedup, and any ``.next`` of theirs) is re-saved naming the
   new root (same key, same passphrase and cost, atomic), so the directory names one root and a
   fresh machine restoring with ``data.key`` pins the new root; the new root's public key is
   written to ``root-<id16>.pub.pem`` (``root.pub.pem``, which configs pin by fingerprint, is left
   alone: clients follow the handover from it). Files that already name the new root are skipped.
4. **swap** (``after_step("swap-middle")`` between its two moves): ``<role>.key`` is linked to
   ``<role>.key.replaced-<id16>``, then ``<role>.key.next`` replaces ``<role>.key`` in one rename,
   so ``<role>.key`` exists at every moment (the old key until the rename, the new one after).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from crypto.atomic_file import write_atomic
from crypto.keyfile import (
    PrivateKey,
    export_public_pem,
    load_key,
    save_key,
)
from crypto.keyring import next_keyring_body
from crypto.primitives import public_key_id
from crypto.private import sign_object
from formats import signed
from formats.roles import Role
from opsbackup.client.account import Account, open_account
from opsbackup.errors import LocalIOError, UsageError, WrongKeyError
from opsbackup.setup.admin import KEY_FILE_NAMES
from opsbackup.setup.key_swap import Step, cost_of, next_key_path, pending_key, swap_in

__all__ = ["REKEYED_ROLES", "SigningRotation", "rotate_signing_key"]

#: The key files a root rotation re-saves naming the new root (each with its ``.next``, if any).
REKEYED_ROLES = (Role.DATA, Role.BROWSE, Role.DELETION, Role.DEDUP)


@dataclass(frozen=True)
class SigningRotation:
    """What a rotation did; ``root_public_file`` (root only) holds the new root's public key."""

    role: Role
    old_key_id: bytes
    new_key_id: bytes
    keyring_version: int
    replaced_file: Path
    root_public_file: Path | None = None
    rekeyed: tuple[Path, ...] = ()


def _newest_signer(account: Account) -> bytes:
    """Key id of the key that signed the newest stored keyring version."""
    return signed.decode(account.repo.get_keyring(), "keyring").signer


def _publish(account: Account, signer: PrivateKey, body: bytes) -> Account:
    account.repo.put_keyring(sign_object(signer.private_key, body))
    return open_account(account.repo, account.root_public_key, account.state)


def _rekey(directory: Path, passphrase: str, new_root: PrivateKey) -> tuple[Path, ...]:
    """Step 3 (root): re-save every other admin key file naming the new root; returns those changed."""
    root_public = new_root.private_key.public_key()
    changed: list[Path] = []
    for role in REKEYED_ROLES:
        for path in (directory / KEY_FILE_NAMES[role], next_key_path(directory, role)):
            if not path.exists():
                continue
            secret = None if role is Role.DEDUP else passphrase
            key = load_key(path, secret, expect_role=role)
            if public_key_id(key.root_public_key) == public_key_id(root_public):
                continue
            save_key(path, key, secret, root_public_key=root_public, cost=cost_of(path), overwrite=True)
            changed.append(path)
    return tuple(changed)


def _root_public_file(directory: Path, new_root: PrivateKey) -> Path:
    key = new_root.private_key.public_key()
    path = directory / f"root-{public_key_id(key).hex()[:16]}.pub.pem"
    try:
        write_atomic(path, export_public_pem(key), 0o644)
    except OSError as exc:
        raise LocalIOError(f"cannot write {path}: {exc.strerror or exc}") from None
    return path


def _rotate_root(account: Account, directory: Path, passphrase: str, step: Step) -> SigningRotation:
    current = directory / KEY_FILE_NAMES[Role.ROOT]
    old = load_key(current, passphrase, expect_role=Role.ROOT)
    old_id = public_key_id(old.private_key.public_key())
    for role in REKEYED_ROLES:  # every file the rekey step needs opens: refuse before changing anything
        path = directory / KEY_FILE_NAMES[role]
        if path.exists():
            load_key(path, None if role is Role.DEDUP else passphrase, expect_role=role)
    pending_path = next_key_path(directory, Role.ROOT)
    if account.keyring.root_id != old_id and not pending_path.exists():
        raise WrongKeyError(
            f"{current} holds key {old_id.hex()[:16]}, not the active root "
            f"{account.keyring.root_id.hex()[:16]} of keyring version {account.keyring.version}"
        )
    new = pending_key(directory, Role.ROOT, passphrase, old=current, root=None)
    new_id = public_key_id(new.private_key.public_key())
    step("key")
    if account.keyring.root_id == old_id:
        body = next_keyring_body(
            account.keyring,
            add=[(Role.ROOT, new.private_key.public_key(), "root (rotated)")],
            revoke=[old_id],
        )
        account = _publish(account, old, body)
        step("handover")
    if account.keyring.root_id != new_id:
        raise WrongKeyError(
            f"keyring version {account.keyring.version} names root {account.keyring.root_id.hex()[:16]}, "
            f"neither {current} nor {pending_path}: is this the account's key directory?"
        )
    if _newest_signer(account) != new_id:
        account = _publish(account, new, next_keyring_body(account.keyring))
    step("keyring")
    rekeyed = _rekey(directory, passphrase, new)
    public_file = _root_public_file(directory, new)
    step("rekey")
    replaced = swap_in(directory, Role.ROOT, old_id, step)
    return SigningRotation(Role.ROOT, old_id, new_id, account.keyring.version, replaced, public_file, rekeyed)


def _rotate_deletion(account: Account, directory: Path, passphrase: str, step: Step) -> SigningRotation:
    root = load_key(directory / KEY_FILE_NAMES[Role.ROOT], passphrase, expect_role=Role.ROOT)
    if public_key_id(root.private_key.public_key()) != account.keyring.root_id:
        raise WrongKeyError(
            f"{directory / KEY_FILE_NAMES[Role.ROOT]} is not the active root of keyring version "
            f"{account.keyring.version}"
        )
    current = directory / KEY_FILE_NAMES[Role.DELETION]
    old = load_key(current, passphrase, expect_role=Role.DELETION)
    old_id = public_key_id(old.private_key.public_key())
    listed = {e.key_id: e for e in account.keyring.entries}
    if old_id not in listed or listed[old_id].role is not Role.DELETION:
        raise WrongKeyError(
            f"{current} holds no deletion key of this account (keyring {account.keyring.version})"
        )
    new = pending_key(directory, Role.DELETION, passphrase, old=current, root=root)
    new_id = public_key_id(new.private_key.public_key())
    step("key")
    add = [] if new_id in listed else [(Role.DELETION, new.private_key.public_key(), "deletion (rotated)")]
    revoke = [old_id] if listed[old_id].active else []
    if add or revoke:
        account = _publish(account, root, next_keyring_body(account.keyring, add=add, revoke=revoke))
    step("keyring")
    replaced = swap_in(directory, Role.DELETION, old_id, step)
    return SigningRotation(Role.DELETION, old_id, new_id, account.keyring.version, replaced)


def rotate_signing_key(
    account: Account,
    directory: Path,
    role: Role,
    passphrase: str,
    *,
    after_step: Step | None = None,
) -> SigningRotation:
    """Rotate the administrator's deletion or root key in ``directory``; see the module doc.

    ``account`` is opened with an admin credential against the pinned root (which may be the old
    root: the client follows the handover). ``after_step`` is called after each step (tests kill
    the rotation there): ``"key"``, ``"handover"`` (root), ``"keyring"``, ``"rekey"`` (root) and
    ``"swap-middle"``.
    """
    if role not in (Role.DELETION, Role.ROOT):
        raise UsageError(f"this rotates the deletion or root key, not the {role.label} key")
    directory = Path(directory)
    step: Step = after_step or (lambda _name: None)
    current = directory / KEY_FILE_NAMES[role]
    if not current.exists():
        raise LocalIOError(f"{current} is missing: the rotation needs the {role.label} key it replaces")
    if role is Role.ROOT:
        return _rotate_root(account, directory, passphrase, step)
    return _rotate_deletion(account, directory, passphrase, step)
