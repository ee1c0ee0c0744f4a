"""The per-backup keys a reader unwraps: a snapshot's metadata key and each source's data key.

Each backup's wrapped keys are in its key envelope (``docs/spec/key-envelope.md``), fetched from
the server and verified (signed by the backup's host key or a deletion key of the keyring) before
it is parsed. The metadata key is wrapped (role-browse records) to every browse *and* every data
recipient, so either private key opens the tree; data keys (role-data records) only to data
recipients. Each unwrapped key is checked against the commitment the signed manifest (source 0)
or the authenticated backup root (earlier sources) names before anything is opened with it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

from crypto.aead import SealingKey
from crypto.envelope import open_envelope, readers_trusted_signers
from crypto.keyring import Keyring
from crypto.unwrapper import ReaderKey, as_unwrapper
from crypto.wrap import select_record
from formats.backup_root import BackupRoot
from formats.envelope import Envelope
from formats.manifest import Manifest
from formats.roles import Role
from opsbackup.client.account import Account
from opsbackup.errors import IntegrityError, NotFoundError, WrongKeyError

__all__ = ["DataKeys", "Envelopes", "metadata_key"]


class Envelopes:
    """The verified key envelopes of one account's backups, fetched on first use and cached."""

    def __init__(self, account: Account) -> None:
        self._account = account
        self._cache: dict[bytes, Envelope] = {}
        self._lock = threading.Lock()

    @property
    def keyring(self) -> Keyring:
        """The verified keyring the envelopes are checked against."""
        return self._account.keyring

    def get(self, backup_id: bytes, *, host_key_id: bytes | None = None) -> Envelope:
        """The envelope of ``backup_id``, verified before it is parsed.

        ``host_key_id`` (the manifest's host key, for the backup being read) restricts the host
        signer to that key; an earlier source's envelope may be signed by any host key of the
        keyring. Deletion keys (re-wraps) are accepted for both.
        """
        with self._lock:
            found = self._cache.get(backup_id)
            if found is None:
                found = self._cache[backup_id] = self._fetch(backup_id, host_key_id)
            return found

    def _fetch(self, backup_id: bytes, host_key_id: bytes | None) -> Envelope:
        keyring = self._account.keyring
        trusted = readers_trusted_signers(keyring, host_key_id)
        try:
            data = self._account.repo.get_envelope(backup_id)
        except NotFoundError:
            raise NotFoundError(
                f"the server has no key envelope for backup {backup_id.hex()}: its wrapped keys are "
                "missing, so it cannot be read"
            ) from None
        env, _ = open_envelope(data, trusted=trusted, account_id=keyring.account_id, backup_id=backup_id)
        return env


def _key_label(key: ReaderKey) -> str:
    return as_unwrapper(key).key_id.hex()[:16]


def _unwrap(env: Envelope, key: ReaderKey, role: Role) -> SealingKey:
    """Select the record of ``role`` for ``key`` and unwrap it (WrongKeyError if there is none)."""
    unwrapper = as_unwrapper(key)
    record = select_record(env.wrapped_keys(), unwrapper.key_id, role=role)
    return SealingKey(unwrapper.unwrap(record, role=role, backup_id=env.backup_id))


def metadata_key(manifest: Manifest, envelopes: Envelopes, key: ReaderKey) -> SealingKey:
    """The backup's metadata key, unwrapped with a browse or data private key and checked."""
    bid = manifest.backup_id.hex()
    env = envelopes.get(manifest.backup_id, host_key_id=manifest.host_key_id)
    try:
        sealing = _unwrap(env, key, Role.BROWSE)
    except WrongKeyError:
        raise WrongKeyError(
            f"key {_key_label(key)} is neither a browse nor a data key of backup {bid}: it is not "
            "one of the account's current keys, or it was rotated out; use the current key file"
        ) from None
    try:
        sealing.verify_commitment(manifest.metadata_key_commitment)
    except IntegrityError:
        raise IntegrityError(
            f"the metadata key of backup {bid} does not match the commitment its manifest signs; refusing it"
        ) from None
    return sealing


class DataKeys:
    """The data key of each source of one backup, unwrapped on first use and cached (thread-safe)."""

    def __init__(self, manifest: Manifest, root: BackupRoot, key: ReaderKey, envelopes: Envelopes) -> None:
        self._manifest = manifest
        self._root = root
        self._key = key
        self._envelopes = envelopes
        self._keys: dict[int, SealingKey] = {}
        self._lock = threading.Lock()

    def get(self, source: int) -> SealingKey:
        """The checked data key of source ``source`` (WrongKeyError, IntegrityError)."""
        with self._lock:
            found = self._keys.get(source)
            if found is None:
                found = self._keys[source] = self._unwrap(source)
            return found

    def load(self, sources: Iterable[int]) -> None:
        """Unwrap every key of ``sources`` now, so a wrong key fails before anything is fetched."""
        for source in sorted(set(sources)):
            self.get(source)

    def _unwrap(self, index: int) -> SealingKey:
        src = self._root.sources[index]
        bid = src.backup_id.hex()
        if index == 0:
            env = self._envelopes.get(src.backup_id, host_key_id=self._manifest.host_key_id)
            what = f"backup {bid}"
        else:
            env = self._envelopes.get(src.backup_id)
            what = f"backup {bid}, whose stored chunks backup {self._manifest.backup_id.hex()} reuses"
        try:
            sealing = _unwrap(env, self._key, Role.DATA)
        except WrongKeyError:
            raise self._wrong_key(env, what) from None
        try:
            sealing.verify_commitment(src.data_key_commitment)
        except IntegrityError:
            raise IntegrityError(
                f"the data key of {what} does not match the commitment the backup names for it; refusing it"
            ) from None
        return sealing

    def _wrong_key(self, env: Envelope, what: str) -> WrongKeyError:
        key_id = as_unwrapper(self._key).key_id
        listed = [e for e in self._envelopes.keyring.entries if e.key_id == key_id]
        if listed and listed[0].role is Role.BROWSE:
            return WrongKeyError(
                f"key {_key_label(self._key)} is a browse key: it can list files but not read them; "
                "use a data key"
            )
        return WrongKeyError(
            f"key {_key_label(self._key)} is not a data key of {what}: it is not one of the "
            "account's current data keys, or it was rotated out; use the current data key file"
        )
