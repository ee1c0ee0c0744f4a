"""Wrap a 32-byte per-backup key to recipients with RSA-OAEP, and unwrap it with a private key.

The OAEP label is ``b"opsbackup/v1/wrap/" || role code (u8) || backup id (16)``, so a wrapped key
cannot be moved to another role or another backup: unwrapping it under any other label fails.
Layout of the record and the label: docs/spec/wrapped-key.md.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from cryptography.hazmat.primitives.asymmetric import rsa

from crypto.primitives import KEY_SIZE, public_key_id, rsa_oaep_wrap
from crypto.private import rsa_oaep_unwrap
from formats.errors import FormatError, IntegrityError, WrongKeyError, WrongRoleError
from formats.roles import KEY_BITS, Role
from formats.wrapped_key import BACKUP_ID_SIZE, WRAP_ROLES, RecipientKind, WrappedKey

__all__ = ["LABEL_PREFIX", "oaep_label", "select_record", "unwrap_key", "wrap_key", "wrap_to_recipients"]

LABEL_PREFIX = b"opsbackup/v1/wrap/"


def oaep_label(role: Role, backup_id: bytes) -> bytes:
    """``"opsbackup/v1/wrap/" || u8 role || backup id``: the OAEP label of every wrap."""
    if role not in WRAP_ROLES:
        raise ValueError(f"per-backup keys are wrapped for data or browse, not {role.label}")
    if len(backup_id) != BACKUP_ID_SIZE:
        raise ValueError(f"a backup id is {BACKUP_ID_SIZE} bytes")
    return LABEL_PREFIX + bytes([role]) + backup_id


def wrap_key(key: bytes, *, role: Role, backup_id: bytes, recipient: rsa.RSAPublicKey) -> WrappedKey:
    """Wrap ``key`` (32 bytes) to one RSA-4096 ``recipient`` of ``role`` for backup ``backup_id``."""
    if len(key) != KEY_SIZE:
        raise ValueError(f"a per-backup key is {KEY_SIZE} bytes")
    label = oaep_label(role, backup_id)
    if recipient.key_size != KEY_BITS[role]:
        raise WrongRoleError(
            f"a {role.label} recipient must be an RSA-{KEY_BITS[role]} key, not RSA-{recipient.key_size}"
        )
    return WrappedKey(
        role=role,
        backup_id=backup_id,
        kind=RecipientKind.RSA_OAEP_SHA256,
        recipient_id=public_key_id(recipient),
        wrapped=rsa_oaep_wrap(recipient, key, label),
    )


def wrap_to_recipients(
    key: bytes, *, role: Role, backup_id: bytes, recipients: Mapping[bytes, rsa.RSAPublicKey]
) -> tuple[WrappedKey, ...]:
    """Wrap ``key`` to every recipient (key id -> public key); records sorted by recipient id.

    The key ids are checked against the keys, so a mislabelled recipient map cannot produce a
    record that names one key and opens under another. No recipients is a ``WrongKeyError``: a
    key wrapped to nobody could never be recovered.
    """
    if not recipients:
        raise WrongKeyError(f"the keyring has no active {role.label} key to wrap this backup's key to")
    records = []
    for key_id, public in sorted(recipients.items()):
        if public_key_id(public) != key_id:
            raise ValueError("recipient key id does not match its public key")
        records.append(wrap_key(key, role=role, backup_id=backup_id, recipient=public))
    return tuple(records)


def select_record(records: Iterable[WrappedKey], key_id: bytes, *, role: Role) -> WrappedKey:
    """The one record of ``role`` wrapped to ``key_id``.

    Raises :class:`WrongKeyError` when none is (the key is not a recipient of this backup) and
    :class:`FormatError` when two are (a canonical record list never holds duplicates).
    """
    found = [rec for rec in records if rec.role == role and rec.recipient_id == key_id]
    if not found:
        raise WrongKeyError(
            f"key {key_id.hex()[:16]} is not a {role.label} recipient of this backup; "
            "use a key that was in the keyring when the backup was made"
        )
    if len(found) > 1:
        raise FormatError(f"the wrapped keys list key {key_id.hex()[:16]} twice for the {role.label} role")
    return found[0]


def unwrap_key(record: WrappedKey, private_key: rsa.RSAPrivateKey, *, role: Role, backup_id: bytes) -> bytes:
    """Unwrap ``record`` with ``private_key``, expecting ``role`` and ``backup_id``; 32 bytes.

    Checks first, in this order, that the record is an RSA record of ``role`` for ``backup_id``
    wrapped to this very key (:class:`WrongKeyError` if not), then unwraps under the label made
    from the *expected* role and backup id, so a record that lies about them cannot open.
    Unwrap failures and a result that is not 32 bytes raise :class:`IntegrityError`.
    """
    label = oaep_label(role, backup_id)
    if record.kind != RecipientKind.RSA_OAEP_SHA256:
        raise WrongKeyError(
            f"this wrapped key is for an {RecipientKind(record.kind).name} recipient, not an RSA key file"
        )
    if record.role != role:
        raise WrongKeyError(f"this wrapped key is for the {record.role.label} role, not {role.label}")
    if record.backup_id != backup_id:
        raise WrongKeyError(
            f"this wrapped key belongs to backup {record.backup_id.hex()}, not {backup_id.hex()}"
        )
    own_id = public_key_id(private_key.public_key())
    if record.recipient_id != own_id:
        raise WrongKeyError(
            f"this wrapped key is for key {record.recipient_id.hex()[:16]}, not for key {own_id.hex()[:16]}"
        )
    key = rsa_oaep_unwrap(private_key, record.wrapped, label)
    if len(key) != KEY_SIZE:
        raise IntegrityError(f"unwrapped key has {len(key)} bytes, not {KEY_SIZE}: the record was forged")
    return key
