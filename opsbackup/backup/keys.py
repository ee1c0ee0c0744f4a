"""The per-backup keys of one run: a fresh data key and metadata key, wrapped to the keyring's recipients.

The data key is wrapped (role data) to every data key of the keyring; the metadata key (role
browse) to every browse key *and* every data key, so a data key file alone restores. The raw
keys are dropped once wrapped: the host keeps only the sealing keys, for this run.
"""

from __future__ import annotations

from dataclasses import dataclass

from crypto.aead import SealingKey
from crypto.keyring import Keyring
from crypto.primitives import random_bytes
from crypto.wrap import wrap_to_recipients
from formats import wrapped_key
from formats.manifest import BACKUP_ID_SIZE
from formats.roles import Role

__all__ = ["BackupKeys", "make_backup_keys"]


@dataclass(frozen=True, repr=False)
class BackupKeys:
    """This run's id, sealing keys and encoded wrapped-key records."""

    backup_id: bytes
    data: SealingKey
    metadata: SealingKey
    data_records: tuple[bytes, ...]  # encoded OBWK records of the data key, sorted
    wrapped_keys: tuple[bytes, ...]  # every record (data and metadata key), sorted: the manifest's

    def __repr__(self) -> str:  # never print key material
        return f"BackupKeys(backup_id={self.backup_id.hex()})"


def make_backup_keys(keyring: Keyring) -> BackupKeys:
    """Draw the backup id and both keys, and wrap them (WrongKeyError if a role has no recipient)."""
    backup_id = random_bytes(BACKUP_ID_SIZE)
    data_raw, data_key = SealingKey.generate()
    meta_raw, meta_key = SealingKey.generate()
    data_recipients = keyring.keys_for(Role.DATA)
    meta_recipients = {**keyring.keys_for(Role.BROWSE), **data_recipients}
    data_records = sorted(
        wrapped_key.encode(rec)
        for rec in wrap_to_recipients(
            data_raw, role=Role.DATA, backup_id=backup_id, recipients=data_recipients
        )
    )
    meta_records = sorted(
        wrapped_key.encode(rec)
        for rec in wrap_to_recipients(
            meta_raw, role=Role.BROWSE, backup_id=backup_id, recipients=meta_recipients
        )
    )
    return BackupKeys(
        backup_id=backup_id,
        data=data_key,
        metadata=meta_key,
        data_records=tuple(data_records),
        wrapped_keys=tuple(sorted(data_records + meta_records)),
    )
