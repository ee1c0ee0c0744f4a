"""Wrapped-key record: one per-backup key, encrypted to one recipient.

Layout (docs/spec/wrapped-key.md)::

    magic "OBWK" | u16 version = 1 | u8 role | backup id (16) | u8 recipient kind
    | recipient key id (32) | bytes16 wrapped

``role`` is 2 (data) or 3 (browse). Recipient kind 1 is RSA-OAEP-SHA256 to an RSA-4096 key: the
recipient key id is the SHA-256 of the key's DER SubjectPublicKeyInfo and ``wrapped`` is exactly
512 bytes (the modulus size). Kind 2 is an OpenPGP (GnuPG) recipient: its ``wrapped`` bytes (1 to
4096) are an OpenPGP message, opaque here (docs/spec/openpgp-recipient.md; ``crypto.gpg``). Decoding
is strict: ``encode(decode(b)) == b``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from formats._wire import Reader, Writer, expect_header
from formats.roles import Role, role_from_code

__all__ = [
    "BACKUP_ID_SIZE",
    "KEY_ID_SIZE",
    "MAGIC",
    "MAX_OPENPGP_WRAPPED",
    "RSA_WRAPPED_SIZE",
    "VERSION",
    "WRAP_ROLES",
    "RecipientKind",
    "WrappedKey",
    "decode",
    "encode",
    "read",
    "write",
]

MAGIC = b"OBWK"
VERSION = 1
BACKUP_ID_SIZE = 16
KEY_ID_SIZE = 32
#: RSA-OAEP output is exactly the modulus size; data and browse keys are RSA-4096.
RSA_WRAPPED_SIZE = 512
#: Upper bound of the opaque bytes of an OpenPGP recipient's message.
MAX_OPENPGP_WRAPPED = 4096
#: The only roles a per-backup key is wrapped for.
WRAP_ROLES = frozenset({Role.DATA, Role.BROWSE})


class RecipientKind(enum.IntEnum):
    """How the key is wrapped, which fixes how the recipient key id and wrapped bytes are read."""

    RSA_OAEP_SHA256 = 1
    OPENPGP = 2  # a GnuPG recipient: an OpenPGP message, unwrapped through gpg-agent


@dataclass(frozen=True)
class WrappedKey:
    """One wrapped per-backup key. ``wrapped`` is the RSA-OAEP ciphertext for kind 1."""

    role: Role
    backup_id: bytes
    kind: RecipientKind
    recipient_id: bytes
    wrapped: bytes


def _wrapped_limits(kind: RecipientKind) -> tuple[int, int]:
    if kind is RecipientKind.RSA_OAEP_SHA256:
        return RSA_WRAPPED_SIZE, RSA_WRAPPED_SIZE
    return 1, MAX_OPENPGP_WRAPPED


def write(w: Writer, rec: WrappedKey) -> Writer:
    """Append the canonical encoding of ``rec`` to ``w``; invalid fields raise ``ValueError``."""
    if rec.role not in WRAP_ROLES:
        raise ValueError(f"a per-backup key is wrapped for the data or browse role, not {rec.role.label}")
    kind = RecipientKind(rec.kind)
    low, high = _wrapped_limits(kind)
    if not low <= len(rec.wrapped) <= high:
        raise ValueError(f"wrapped bytes of kind {kind.name} must be {low}..{high} bytes")
    return (
        w.header(MAGIC, VERSION)
        .u8(rec.role)
        .fixed(rec.backup_id, BACKUP_ID_SIZE)
        .u8(kind)
        .fixed(rec.recipient_id, KEY_ID_SIZE)
        .bytes16(rec.wrapped)
    )


def encode(rec: WrappedKey) -> bytes:
    """The canonical bytes of one record (570 bytes for an RSA recipient)."""
    return write(Writer(), rec).getvalue()


def read(r: Reader) -> WrappedKey:
    """Read one record from ``r`` (for formats that embed records); does not call ``finish``."""
    expect_header(r, MAGIC, (VERSION,))
    role = role_from_code(r.u8(), "wrapped key")
    if role not in WRAP_ROLES:
        raise r.error(f"role {role.label} cannot hold a wrapped key (only data or browse)")
    backup_id = r.take(BACKUP_ID_SIZE)
    kind_code = r.u8()
    try:
        kind = RecipientKind(kind_code)
    except ValueError:
        raise r.error(f"unknown recipient kind {kind_code}") from None
    recipient_id = r.take(KEY_ID_SIZE)
    low, high = _wrapped_limits(kind)
    wrapped = r.bytes16(high)
    if len(wrapped) < low:
        raise r.error(f"wrapped key of {len(wrapped)} bytes (kind {kind.name} needs {low}..{high})")
    return WrappedKey(role=role, backup_id=backup_id, kind=kind, recipient_id=recipient_id, wrapped=wrapped)


def decode(data: bytes, what: str = "wrapped key") -> WrappedKey:
    """Decode exactly one record; trailing bytes are an error."""
    r = Reader(data, what)
    rec = read(r)
    r.finish()
    return rec
