"""Add or remove a data or browse recipient (an escrow key, an auditor's key), then re-wrap every backup.

A role may have several keys; every backup's keys are wrapped to all of them. Adding a recipient
publishes the keyring's next version naming it and re-wraps every envelope (so earlier backups
gain it too); removing one revokes it and re-wraps (so they lose it). Both are resumable: the
keyring step is skipped when it is already done, and the re-wrap pass skips envelopes already
current (``opsbackup.setup.rewrap``). The administrator's data key unwraps what is re-wrapped.
"""

from __future__ import annotations

from collections.abc import Sequence

from cryptography.hazmat.primitives.asymmetric import rsa

from crypto.gpg import openpgp_key_id
from crypto.keyring import next_keyring_body
from crypto.primitives import public_key_id
from crypto.private import sign_object
from formats.roles import Role
from opsbackup.client.account import Account, open_account
from opsbackup.errors import NotFoundError, UsageError, WrongRoleError
from opsbackup.setup.rewrap import RewrapReport, rewrap_all

__all__ = ["add_recipient", "find_entry", "remove_recipient"]

_RECIPIENT_ROLES = (Role.DATA, Role.BROWSE)


def _publish(account: Account, root: rsa.RSAPrivateKey, body: bytes) -> Account:
    account.repo.put_keyring(sign_object(root, body))
    return open_account(account.repo, account.root_public_key, account.state)


def add_recipient(
    account: Account,
    *,
    role: Role,
    label: str,
    root: rsa.RSAPrivateKey,
    deletion: rsa.RSAPrivateKey,
    unwrap_keys: Sequence[rsa.RSAPrivateKey],
    rsa_public: rsa.RSAPublicKey | None = None,
    openpgp_public: bytes | None = None,
) -> tuple[Account, RewrapReport]:
    """Name one more ``role`` recipient (RSA or OpenPGP) in the keyring, then re-wrap every backup."""
    if role not in _RECIPIENT_ROLES:
        raise WrongRoleError(f"a recipient is a data or browse key, not a {role.label} key")
    if (rsa_public is None) == (openpgp_public is None):
        raise UsageError("give exactly one recipient: an RSA public key or an OpenPGP key")
    key_id = public_key_id(rsa_public) if rsa_public is not None else openpgp_key_id(openpgp_public or b"")
    listed = {e.key_id: e for e in account.keyring.entries}
    entry = listed.get(key_id)
    if entry is None:
        body = next_keyring_body(
            account.keyring,
            add=[(role, rsa_public, label)] if rsa_public is not None else [],
            add_openpgp=[(role, openpgp_public, label)] if openpgp_public is not None else [],
        )
        account = _publish(account, root, body)
    elif entry.role is not role or not entry.active:
        raise UsageError(
            f"key {key_id.hex()[:16]} is already in the keyring as a {entry.role.label} key"
            f"{'' if entry.active else ' (revoked)'}; a revoked key is not added again"
        )
    return account, rewrap_all(account, keys=unwrap_keys, deletion_key=deletion)


def find_entry(account: Account, prefix: str) -> bytes:
    """The key id of the one active data or browse recipient whose hex id starts with ``prefix``."""
    prefix = prefix.lower()
    if len(prefix) < 8:
        raise UsageError("give at least 8 hex digits of the key id ('opsbackup keys list' shows them)")
    found = [
        e.key_id
        for e in account.keyring.entries
        if e.role in _RECIPIENT_ROLES and e.active and e.key_id.hex().startswith(prefix)
    ]
    if not found:
        raise NotFoundError(
            f"no active data or browse key {prefix} in keyring version {account.keyring.version}"
        )
    if len(found) > 1:
        raise UsageError(f"key id prefix {prefix} names {len(found)} keys; give more digits")
    return found[0]


def remove_recipient(
    account: Account,
    key_id: bytes,
    *,
    root: rsa.RSAPrivateKey,
    deletion: rsa.RSAPrivateKey,
    unwrap_keys: Sequence[rsa.RSAPrivateKey],
) -> tuple[Account, RewrapReport]:
    """Revoke one data or browse recipient, then re-wrap every backup without it.

    Refused when it is the role's last data key, or an RSA key the re-wrap would need.
    """
    entry = account.keyring.entry(key_id)
    if entry.role not in _RECIPIENT_ROLES:
        raise WrongRoleError(f"key {key_id.hex()[:16]} is a {entry.role.label} key, not a recipient")
    if entry.active:
        data_left = account.keyring.recipient_ids(Role.DATA) - {key_id}
        if not data_left:
            raise UsageError(
                "this is the last data key: every backup would become unreadable; add another first"
            )
        held = {public_key_id(k.public_key()) for k in unwrap_keys}
        if held <= {key_id}:
            raise UsageError("the re-wrap needs another data key than the one being removed")
        account = _publish(account, root, next_keyring_body(account.keyring, revoke=[key_id]))
    # An entry already revoked: an earlier run was interrupted after the keyring step; finish it.
    return account, rewrap_all(account, keys=unwrap_keys, deletion_key=deletion)
