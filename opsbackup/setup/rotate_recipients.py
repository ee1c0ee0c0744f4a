"""``keys rotate --role data|browse``: a new decryption key, every backup re-wrapped to it, no data moved.

The steps, each of which a re-run recognises from the key directory and the keyring, so a
rotation killed at any point finishes when run again (docs/keys.md, "Rotate the data key"):

1. **new key file**: ``<role>.key.next`` is generated and written atomically (mode 0600, the same
   passphrase and Argon2id cost as the key it replaces). Until it exists nothing else happens.
2. **keyring**: version ``v + 1`` adds the new key and revokes the old one, signed by the root
   key. From then on hosts wrap new backups to the new key only (the server refuses anything else).
3. **re-wrap**: every backup's key envelope is re-wrapped and verified (:mod:`.rewrap`). Until an
   envelope is re-wrapped its backup opens with the old key; afterwards with the new one. With
   both key files at hand, every backup is readable at every moment.
4. **swap files** (:func:`opsbackup.setup.key_swap.swap_in`): the old file is kept as
   ``<role>.key.replaced-<id>`` and ``<role>.key.next`` becomes ``<role>.key``, which exists at
   every moment. The replaced file no longer opens anything the server holds; destroy it (or keep
   it offline if old copies of the server's storage exist: they still hold the old wrapped keys).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from crypto.keyfile import PrivateKey
from crypto.keyring import next_keyring_body
from crypto.primitives import public_key_id
from crypto.private import sign_object
from formats.roles import Role
from opsbackup.client.account import Account, open_account
from opsbackup.errors import LocalIOError, UsageError
from opsbackup.setup.admin import KEY_FILE_NAMES, load_admin_key
from opsbackup.setup.key_swap import Step, next_key_path, pending_key, swap_in
from opsbackup.setup.rewrap import RewrapReport, rewrap_all

__all__ = ["RotationResult", "next_key_path", "rotate"]


@dataclass(frozen=True)
class RotationResult:
    role: Role
    old_key_id: bytes
    new_key_id: bytes
    keyring_version: int
    rewrap: RewrapReport
    replaced_file: Path


def _publish(account: Account, root: PrivateKey, role: Role, old_id: bytes, new: PrivateKey) -> Account:
    """Step 2, unless the keyring already lists the new key (then only a missing revocation)."""
    keyring = account.keyring
    new_id = public_key_id(new.private_key.public_key())
    listed = {e.key_id: e for e in keyring.entries}
    old = listed.get(old_id)
    add = [] if new_id in listed else [(role, new.private_key.public_key(), f"{role.label} (rotated)")]
    revoke = [old_id] if old is not None and old.active else []
    if not add and not revoke:
        return account
    body = next_keyring_body(keyring, add=add, revoke=revoke)
    account.repo.put_keyring(sign_object(root.private_key, body))
    return open_account(account.repo, account.root_public_key, account.state)


def rotate(
    account: Account,
    directory: Path,
    role: Role,
    passphrase: str,
    *,
    progress: Callable[[RewrapReport], None] | None = None,
    after_step: Step | None = None,
) -> RotationResult:
    """Rotate the administrator's ``role`` key (data or browse) in ``directory``; see the module doc.

    ``account`` is opened with an admin credential. ``after_step`` is called with ``"key"``,
    ``"keyring"``, ``"rewrap"`` and ``"swap-middle"`` after each step (tests kill the rotation there).
    """
    step: Step = after_step or (lambda _name: None)
    if role not in (Role.DATA, Role.BROWSE):
        raise UsageError(f"re-wrapping rotates the data or browse key, not the {role.label} key")
    directory = Path(directory)
    current = directory / KEY_FILE_NAMES[role]
    pending = next_key_path(directory, role)
    root = load_admin_key(directory, Role.ROOT, passphrase)
    deletion = load_admin_key(directory, Role.DELETION, passphrase)
    if not current.exists():
        raise LocalIOError(f"{current} is missing: the rotation needs the {role.label} key it replaces")
    old = load_admin_key(directory, role, passphrase)
    old_id = public_key_id(old.private_key.public_key())
    new = pending_key(directory, role, passphrase, old=current, root=root)
    new_id = public_key_id(new.private_key.public_key())
    step("key")
    account = _publish(account, root, role, old_id, new)
    step("keyring")
    report = rewrap_all(
        account,
        keys=[old.private_key, new.private_key],
        deletion_key=deletion.private_key,
        progress=progress,
    )
    step("rewrap")
    replaced = swap_in(directory, role, old_id, step)
    assert not pending.exists()
    return RotationResult(role, old_id, new_id, account.keyring.version, report, replaced)
