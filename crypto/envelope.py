"""Key envelopes: wrap a backup's two keys to the keyring's recipients, and open an envelope safely.

A backup's per-backup data key and metadata key are wrapped (``crypto.wrap``) into one key
envelope (:mod:`formats.envelope`), a signed object kept beside the manifest and replaceable, so
that a key rotation can re-wrap every backup's keys and *remove* the old wrapped keys. The
manifest signs only the keys' commitments; whatever envelope the server serves, a reader checks
the unwrapped key against that commitment before using it.

Who may sign an envelope (``storers_trusted_signers``, ``readers_trusted_signers``):
generation 0 the host key that made the backup; later generations a deletion key of the account
(a re-wrap removes wrapped keys, so it needs the key that authorises removal). Which records it
must hold (:func:`check_recipients`): for the data key exactly the keyring's active data
recipients, for the metadata key exactly its active browse and data recipients, so that a data
key file alone restores. The checking and opening half lives in :mod:`crypto.envelope_check`
(re-exported here): this module imports ``crypto.wrap``, which unwraps with private keys, so the
storage server imports that one instead.
"""

from __future__ import annotations

from collections.abc import Iterable

from cryptography.hazmat.primitives.asymmetric import rsa

from crypto.envelope_check import (
    check_recipients,
    expected_recipients,
    open_envelope,
    readers_trusted_signers,
    storers_trusted_signers,
)
from crypto.gpg import PinnedKeys
from crypto.keyring import Keyring
from crypto.wrap import wrap_to_recipients
from formats import envelope as fmt
from formats import wrapped_key
from formats.envelope import Envelope
from formats.errors import WrongKeyError
from formats.roles import Role
from formats.wrapped_key import RecipientKind, WrappedKey

__all__ = [
    "check_recipients",
    "envelope_body",
    "expected_recipients",
    "open_envelope",
    "readers_trusted_signers",
    "storers_trusted_signers",
    "wrap_backup_keys",
    "wrap_role",
]


def _recipients(keyring: Keyring, role: Role) -> tuple[dict[bytes, rsa.RSAPublicKey], dict[bytes, bytes]]:
    """RSA and OpenPGP recipients of a record of ``role`` (browse records: browse and data keys)."""
    roles = (Role.DATA, Role.BROWSE) if role is Role.BROWSE else (Role.DATA,)
    rsa_keys: dict[bytes, rsa.RSAPublicKey] = {}
    openpgp: dict[bytes, bytes] = {}
    for r in roles:
        rsa_keys.update(keyring.keys_for(r))
        openpgp.update(keyring.openpgp_keys_for(r))
    return rsa_keys, openpgp


def wrap_role(keyring: Keyring, role: Role, backup_id: bytes, key: bytes) -> list[bytes]:
    """Encoded records of ``key`` (role data or browse) for every current recipient of ``keyring``.

    RSA recipients are wrapped with RSA-OAEP; OpenPGP recipients with gpg, in a throwaway
    GNUPGHOME holding only the keyring's pinned OpenPGP keys (:class:`crypto.gpg.PinnedKeys`).
    ``WrongKeyError`` when the role has no recipient at all.
    """
    rsa_keys, openpgp = _recipients(keyring, role)
    if not rsa_keys and not openpgp:
        raise WrongKeyError(f"the keyring has no active {role.label} key to wrap this backup's key to")
    records = (
        list(wrap_to_recipients(key, role=role, backup_id=backup_id, recipients=rsa_keys)) if rsa_keys else []
    )
    if openpgp:
        with PinnedKeys(openpgp.values()) as pinned:
            for key_id, public in sorted(openpgp.items()):
                wrapped = pinned.wrap(key, role=role, backup_id=backup_id, recipient=public)
                records.append(WrappedKey(role, backup_id, RecipientKind.OPENPGP, key_id, wrapped))
    return [wrapped_key.encode(rec) for rec in records]


def wrap_backup_keys(
    backup_id: bytes, *, data_key: bytes, metadata_key: bytes, keyring: Keyring
) -> tuple[bytes, ...]:
    """Every record of one backup under ``keyring``: encoded OBWK records, sorted."""
    records = wrap_role(keyring, Role.DATA, backup_id, data_key)
    records += wrap_role(keyring, Role.BROWSE, backup_id, metadata_key)
    return tuple(sorted(records))


def envelope_body(
    *, account_id: bytes, backup_id: bytes, generation: int, keyring_version: int, records: Iterable[bytes]
) -> bytes:
    """The canonical envelope body (sign it with ``crypto.private.sign_object``)."""
    env = Envelope(account_id, backup_id, generation, keyring_version, tuple(sorted(records)))
    return fmt.encode(env)
