"""The per-backup keys a reader unwraps: a snapshot's metadata key and each source's data key.

The metadata key is wrapped (role-browse records) to every browse *and* every data recipient, so
either private key opens the tree; data keys (role-data records) only to data recipients. Each
unwrapped key is checked against the commitment the signed manifest (source 0) or the
authenticated backup root (earlier sources) names before anything is opened with it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence

from cryptography.hazmat.primitives.asymmetric import rsa

from crypto.aead import SealingKey
from crypto.primitives import public_key_id
from crypto.wrap import select_record, unwrap_key
from formats import wrapped_key
from formats.backup_root import BackupRoot
from formats.manifest import Manifest
from formats.roles import Role
from formats.wrapped_key import WrappedKey
from opsbackup.errors import IntegrityError, WrongKeyError

__all__ = ["DataKeys", "decode_records", "metadata_key"]


def decode_records(records: Sequence[bytes], what: str) -> list[WrappedKey]:
    """Strictly decode wrapped-key records (FormatError naming ``what``)."""
    return [wrapped_key.decode(rec, f"wrapped key {i} of {what}") for i, rec in enumerate(records)]


def _unwrap(
    records: Sequence[WrappedKey], key: rsa.RSAPrivateKey, *, role: Role, backup_id: bytes, what: str
) -> SealingKey:
    """Select the record of ``role`` for ``key``, unwrap it for ``backup_id`` (WrongKeyError if none)."""
    record = select_record(records, public_key_id(key.public_key()), role=role)
    if record.backup_id != backup_id:
        raise IntegrityError(f"the {role.label} key record of {what} names another backup; refusing it")
    return SealingKey(unwrap_key(record, key, role=role, backup_id=backup_id))


def _key_label(key: rsa.RSAPrivateKey) -> str:
    return public_key_id(key.public_key()).hex()[:16]


def metadata_key(manifest: Manifest, key: rsa.RSAPrivateKey) -> SealingKey:
    """The backup's metadata key, unwrapped with a browse or data private key and checked."""
    bid = manifest.backup_id.hex()
    records = decode_records(manifest.wrapped_keys, f"backup {bid}")
    try:
        sealing = _unwrap(records, key, role=Role.BROWSE, backup_id=manifest.backup_id, what=f"backup {bid}")
    except WrongKeyError:
        raise WrongKeyError(
            f"key {_key_label(key)} is neither a browse nor a data key of backup {bid}; use a key "
            "that was in the account keyring when the backup was made"
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

    def __init__(self, manifest: Manifest, root: BackupRoot, key: rsa.RSAPrivateKey) -> None:
        self._manifest = manifest
        self._root = root
        self._key = key
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
        this = self._manifest.backup_id.hex()
        if index == 0:
            records = decode_records(self._manifest.wrapped_keys, f"backup {bid}")
            what = f"backup {bid}"
        else:
            records = decode_records(src.wrapped_keys, f"source {bid} of backup {this}")
            what = f"backup {bid}, whose stored chunks backup {this} reuses"
        try:
            sealing = _unwrap(records, self._key, role=Role.DATA, backup_id=src.backup_id, what=what)
        except WrongKeyError:
            raise self._wrong_key(what) from None
        try:
            sealing.verify_commitment(src.data_key_commitment)
        except IntegrityError:
            raise IntegrityError(
                f"the data key of {what} does not match the commitment the backup names for it; refusing it"
            ) from None
        return sealing

    def _wrong_key(self, what: str) -> WrongKeyError:
        key_id = public_key_id(self._key.public_key())
        manifest_records = decode_records(self._manifest.wrapped_keys, "the manifest")
        roles = {rec.role for rec in manifest_records if rec.recipient_id == key_id}
        if Role.BROWSE in roles and Role.DATA not in roles:
            return WrongKeyError(
                f"key {_key_label(self._key)} is a browse key: it can list files but not read them; "
                "use a data key"
            )
        return WrongKeyError(
            f"key {_key_label(self._key)} is not a data key of {what}; use a data key that was in "
            "the account keyring when that backup was made"
        )
