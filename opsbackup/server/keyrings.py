"""The account keyring as the server keeps it: every version an immutable object.

Version ``v`` is stored at ``accounts/<id>/keyrings/<v:020d>`` (created with
``put(overwrite=False)``, so two racing uploads of one version cannot both win); the current
keyring is the highest version. Version ``v + 1`` is accepted only when it is exactly the next
version and is signed by the active root of version ``v`` (version 1 by the account's root), so
a root handover (``docs/spec/keyring.md``) needs no change to the account record.

Stateless: the trusted root of a version is derived from the stored versions before it, by
walking the chain from version 1 (signed by the account record's root). Stored versions never
change, so each verified version is remembered in a small per-process cache keyed by its
digest; several server instances over one bucket each walk once and then agree.
"""

from __future__ import annotations

import io
import threading

from crypto.keyring import Keyring, keyring_digest, open_keyring
from formats.errors import RollbackError, WrongKeyError
from opsbackup.server.accounts import Account
from opsbackup.storage.base import ObjectStore

__all__ = [
    "KeyringConflictError",
    "KeyringVersionError",
    "current_keyring",
    "keyring_version",
    "load_keyring",
    "store_keyring",
]

_CACHE_LIMIT = 4096
_cache: dict[tuple[bytes, int, bytes], Keyring] = {}
_cache_lock = threading.Lock()


def _prefix(account: Account) -> str:
    return f"accounts/{account.account_id.hex()}/keyrings/"


def _key(account: Account, version: int) -> str:
    return f"{_prefix(account)}{version:020d}"


def current_keyring(store: ObjectStore, account: Account) -> tuple[int, bytes] | None:
    """``(version, signed bytes)`` of the account's newest keyring, or ``None`` if it has none."""
    keys = list(store.list(_prefix(account)))
    if not keys:
        return None
    return int(keys[-1].rsplit("/", 1)[1]), store.read(keys[-1])


def keyring_version(store: ObjectStore, account: Account, version: int) -> bytes | None:
    """The signed bytes of stored keyring ``version``, or ``None`` if there is no such version."""
    if version < 1 or not store.exists(_key(account, version)):
        return None
    return store.read(_key(account, version))


def _open_stored(store: ObjectStore, account: Account, version: int, data: bytes) -> Keyring:
    """Stored version ``version`` (bytes ``data``), verified along the chain from version 1."""
    digest = keyring_digest(data)
    cached = _cache.get((account.account_id, version, digest))
    if cached is not None:
        return cached
    if version == 1:
        trusted = account.root_public_key
    else:
        previous = keyring_version(store, account, version - 1)
        if previous is None:
            raise WrongKeyError(f"keyring version {version - 1} is missing from storage")
        trusted = _open_stored(store, account, version - 1, previous).root_public_key
    keyring = open_keyring(data, root_public_key=trusted)
    if keyring.version != version:
        raise WrongKeyError(f"the keyring stored as version {version} is version {keyring.version}")
    with _cache_lock:
        if len(_cache) >= _CACHE_LIMIT:
            _cache.clear()
        _cache[(account.account_id, version, digest)] = keyring
    return keyring


def load_keyring(store: ObjectStore, account: Account) -> Keyring | None:
    """The account's newest keyring, verified along its chain of roots; ``None`` if it has none."""
    current = current_keyring(store, account)
    if current is None:
        return None
    return _open_stored(store, account, *current)


class KeyringConflictError(Exception):
    """A different keyring is already stored under this version (equivocation is refused)."""


class KeyringVersionError(Exception):
    """The uploaded keyring is not the next version (it skips one)."""


def store_keyring(store: ObjectStore, account: Account, data: bytes) -> tuple[Keyring, bool]:
    """Verify ``data`` and store it as the next version; returns ``(keyring, created)``.

    The keyring must be signed by the active root of the current version (the account's root for
    version 1). Raises :class:`RollbackError` for a version lower than the current one,
    :class:`KeyringVersionError` for a version above current + 1, :class:`KeyringConflictError`
    for the current version with another body, and what :func:`open_keyring` raises
    (:class:`WrongKeyError`, :class:`IntegrityError`, :class:`FormatError`) for a keyring the
    trusted root did not sign or that is malformed. The same keyring again is not an error
    (``created`` is False). A keyring naming another account is a :class:`WrongKeyError`.
    """
    current = current_keyring(store, account)
    if current is None:
        version, trusted = 0, account.root_public_key
    else:
        version, trusted = current[0], _open_stored(store, account, *current).root_public_key
        if keyring_digest(data) == keyring_digest(current[1]):  # the same keyring again (re-signed?)
            signer = account.root_public_key
            if version > 1:
                previous = keyring_version(store, account, version - 1)
                if previous is None:
                    raise WrongKeyError(f"keyring version {version - 1} is missing from storage")
                signer = _open_stored(store, account, version - 1, previous).root_public_key
            return open_keyring(data, root_public_key=signer), False
    try:
        keyring = open_keyring(data, root_public_key=trusted)
    except WrongKeyError as exc:
        raise WrongKeyError(
            f"keyring version {version + 1} must be signed by the active root key of version {version}"
            if version
            else f"keyring version 1 must be signed by the account's root key ({exc})"
        ) from None
    if keyring.account_id != account.account_id:
        raise WrongKeyError(
            f"this keyring is for account {keyring.account_id.hex()}, not {account.account_id.hex()}"
        )
    if keyring.version <= version:
        if keyring.version == version:
            raise KeyringConflictError(f"keyring version {keyring.version} is already stored with other keys")
        raise RollbackError(f"keyring version {keyring.version} is older than the stored version {version}")
    if keyring.version != version + 1:
        raise KeyringVersionError(
            f"keyring version {keyring.version} skips a version: the next version must be {version + 1}"
        )
    if store.put(_key(account, keyring.version), io.BytesIO(data), overwrite=False):
        return keyring, True
    if keyring_digest(store.read(_key(account, keyring.version))) != keyring_digest(data):
        raise KeyringConflictError(f"keyring version {keyring.version} is already stored with other keys")
    return keyring, False
