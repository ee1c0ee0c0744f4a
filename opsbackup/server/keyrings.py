"""The account keyring as the server keeps it: every version an immutable object.

Version ``v`` is stored at ``accounts/<id>/keyrings/<v:020d>`` (created with
``put(overwrite=False)``, so two racing uploads of one version cannot both win); the current
keyring is the highest version. The server opens it with the account's root public key
(:func:`crypto.keyring.open_keyring`) whenever it needs the host or deletion keys.
"""

from __future__ import annotations

import io

from crypto.keyring import Keyring, keyring_digest, open_keyring
from formats.errors import RollbackError, WrongKeyError
from opsbackup.server.accounts import Account
from opsbackup.storage.base import ObjectStore

__all__ = ["KeyringConflictError", "current_keyring", "load_keyring", "store_keyring"]


def _prefix(account: Account) -> str:
    return f"accounts/{account.account_id.hex()}/keyrings/"


def current_keyring(store: ObjectStore, account: Account) -> tuple[int, bytes] | None:
    """``(version, signed bytes)`` of the account's newest keyring, or ``None`` if it has none."""
    keys = list(store.list(_prefix(account)))
    if not keys:
        return None
    return int(keys[-1].rsplit("/", 1)[1]), store.read(keys[-1])


def load_keyring(store: ObjectStore, account: Account) -> Keyring | None:
    """The account's newest keyring, verified with its root key; ``None`` if it has none."""
    current = current_keyring(store, account)
    if current is None:
        return None
    return open_keyring(current[1], root_public_key=account.root_public_key)


class KeyringConflictError(Exception):
    """A different keyring is already stored under this version (equivocation is refused)."""


def store_keyring(store: ObjectStore, account: Account, data: bytes) -> tuple[Keyring, bool]:
    """Verify ``data`` and store it as the next version; returns ``(keyring, created)``.

    Raises :class:`RollbackError` for a version lower than the current one,
    :class:`KeyringConflictError` for the current version with another body, and what
    :func:`open_keyring` raises (:class:`WrongKeyError`, :class:`IntegrityError`,
    :class:`FormatError`) for a keyring the account's root key did not sign or that is malformed.
    The same keyring again is not an error (``created`` is False). A keyring naming another
    account is a :class:`WrongKeyError`.
    """
    keyring = open_keyring(data, root_public_key=account.root_public_key)
    if keyring.account_id != account.account_id:
        raise WrongKeyError(
            f"this keyring is for account {keyring.account_id.hex()}, not {account.account_id.hex()}"
        )
    current = current_keyring(store, account)
    if current is not None and keyring.version < current[0]:
        raise RollbackError(
            f"keyring version {keyring.version} is older than the stored version {current[0]}"
        )
    key = f"{_prefix(account)}{keyring.version:020d}"
    if store.put(key, io.BytesIO(data), overwrite=False):
        return keyring, True
    if keyring_digest(store.read(key)) != keyring_digest(data):
        raise KeyringConflictError(f"keyring version {keyring.version} is already stored with other keys")
    return keyring, False
