"""What a reader unwraps per-backup keys with: an RSA key file, or an OpenPGP key through gpg-agent.

Restore and listing take a :data:`ReaderKey`: an RSA private key (a data or browse key file), or
an :class:`OpenPgpUnwrapper` for a recipient whose secret key lives in GnuPG (a YubiKey, say).
:func:`as_unwrapper` gives both the one interface the readers use: the key id that selects the
record addressed to it, and ``unwrap`` for that record.
"""

from __future__ import annotations

from typing import Protocol

from cryptography.hazmat.primitives.asymmetric import rsa

from crypto import gpg
from crypto.primitives import public_key_id
from crypto.wrap import unwrap_key
from formats.errors import WrongKeyError
from formats.roles import Role
from formats.wrapped_key import RecipientKind, WrappedKey

__all__ = ["OpenPgpUnwrapper", "ReaderKey", "RsaUnwrapper", "Unwrapper", "as_unwrapper"]


class Unwrapper(Protocol):
    """A recipient's private half, however it is held."""

    @property
    def key_id(self) -> bytes:
        """The recipient key id its records name (the keyring's key id)."""
        ...

    def unwrap(self, record: WrappedKey, *, role: Role, backup_id: bytes) -> bytes:
        """The 32-byte key ``record`` holds, for ``role`` of ``backup_id``; raises on any mismatch."""
        ...


class RsaUnwrapper:
    """An RSA data or browse private key (from a key file)."""

    def __init__(self, private_key: rsa.RSAPrivateKey) -> None:
        self._key = private_key
        self._id = public_key_id(private_key.public_key())

    @property
    def key_id(self) -> bytes:
        return self._id

    def unwrap(self, record: WrappedKey, *, role: Role, backup_id: bytes) -> bytes:
        return unwrap_key(record, self._key, role=role, backup_id=backup_id)


class OpenPgpUnwrapper:
    """An OpenPGP recipient of the keyring whose secret key gpg-agent holds (or a smartcard).

    ``public_key`` is the recipient's exported public key as the keyring lists it; ``gnupghome``
    the user's GnuPG home (``None``: gpg's default). The agent asks for the PIN or passphrase;
    ``passphrase`` is for tests and scripts only (loopback pinentry).
    """

    def __init__(self, public_key: bytes, *, gnupghome: str | None, passphrase: str | None = None) -> None:
        self._public = public_key
        self._id = gpg.openpgp_key_id(public_key)
        self._home = gnupghome
        self._passphrase = passphrase

    @property
    def key_id(self) -> bytes:
        return self._id

    def unwrap(self, record: WrappedKey, *, role: Role, backup_id: bytes) -> bytes:
        if record.kind != RecipientKind.OPENPGP or record.recipient_id != self._id:
            raise WrongKeyError("this wrapped key is not addressed to this OpenPGP key")
        if record.role != role or record.backup_id != backup_id:
            raise WrongKeyError(f"this wrapped key is not the {role.label} key of backup {backup_id.hex()}")
        return gpg.unwrap(
            record.wrapped,
            role=role,
            backup_id=backup_id,
            recipient_public_key=self._public,
            gnupghome=self._home,
            passphrase=self._passphrase,
        )


#: What restore, dump, ls and find accept as the reader's key.
ReaderKey = rsa.RSAPrivateKey | Unwrapper


def as_unwrapper(key: ReaderKey) -> Unwrapper:
    """The unwrapper of ``key`` (an RSA private key is wrapped in :class:`RsaUnwrapper`)."""
    if isinstance(key, rsa.RSAPrivateKey):
        return RsaUnwrapper(key)
    return key
