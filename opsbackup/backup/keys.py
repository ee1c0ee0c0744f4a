"""The per-backup keys of one run: a fresh data key and metadata key, and their key envelope.

The data key is wrapped (role data) to every data key of the keyring; the metadata key (role
browse) to every browse key *and* every data key, so a data key file alone restores. The wrapped
keys go into the backup's key envelope (``crypto.envelope``), signed with the host key and stored
before the manifest. The raw keys stay in this object, in memory only, until the run ends: if the
keyring changes during the run the server refuses the envelope, and the run wraps them again to
the new keyring. Nothing here is ever written to disk.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric import rsa

from crypto.aead import SealingKey
from crypto.envelope import envelope_body, wrap_backup_keys
from crypto.keyring import Keyring
from crypto.primitives import random_bytes
from crypto.private import sign_object
from formats.manifest import BACKUP_ID_SIZE

__all__ = ["BackupKeys", "make_backup_keys"]


class BackupKeys:
    """This run's id and sealing keys; :meth:`envelope` wraps the raw keys to a keyring."""

    __slots__ = ("_data_raw", "_meta_raw", "backup_id", "data", "metadata")

    def __init__(self, backup_id: bytes, data_raw: bytes, meta_raw: bytes) -> None:
        self.backup_id = backup_id
        self._data_raw, self._meta_raw = data_raw, meta_raw
        self.data = SealingKey(data_raw)
        self.metadata = SealingKey(meta_raw)

    def envelope(self, keyring: Keyring, signing_key: rsa.RSAPrivateKey) -> bytes:
        """The signed generation-0 key envelope wrapping both keys to ``keyring``'s recipients.

        ``WrongKeyError`` when the keyring has no data key to wrap to.
        """
        records = wrap_backup_keys(
            self.backup_id, data_key=self._data_raw, metadata_key=self._meta_raw, keyring=keyring
        )
        body = envelope_body(
            account_id=keyring.account_id,
            backup_id=self.backup_id,
            generation=0,
            keyring_version=keyring.version,
            records=records,
        )
        return sign_object(signing_key, body)

    def __repr__(self) -> str:  # never print key material
        return f"BackupKeys(backup_id={self.backup_id.hex()})"


def make_backup_keys() -> BackupKeys:
    """Draw a backup id and both keys from the CSPRNG."""
    return BackupKeys(random_bytes(BACKUP_ID_SIZE), random_bytes(32), random_bytes(32))
