"""Audit-log entry: one request the storage server saw, chained to the entry before it.

Layout (docs/spec/audit-log.md)::

    magic "OBAL" | u16 version = 1 | u64 sequence | u64 time (microseconds)
    | previous entry hash (32) | account id (16) | bytes8 credential id
    | utf8 remote address | utf8 method | utf8 path | u16 status | u8 outcome | utf8 reason

``previous`` is 32 zero bytes for entry 0 and otherwise the SHA-256 of the previous entry's exact
encoded bytes (:func:`entry_hash`), so editing, removing or reordering any entry breaks the chain at
the entry after it. An all-zero account id marks the server-wide chain (requests that named no
account). The credential id is the credential's short public id, never its token. Decoding is
strict: ``encode(decode(b)) == b``.
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass

from formats._wire import Reader, Writer, expect_header
from formats.errors import FormatError

__all__ = [
    "ACCOUNT_ID_SIZE",
    "HASH_SIZE",
    "MAGIC",
    "MAX_CREDENTIAL_ID",
    "MAX_METHOD",
    "MAX_PATH",
    "MAX_REASON",
    "MAX_REMOTE",
    "NO_ACCOUNT",
    "VERSION",
    "ZERO_HASH",
    "AuditEntry",
    "Outcome",
    "decode",
    "encode",
    "entry_hash",
]

MAGIC = b"OBAL"
VERSION = 1
HASH_SIZE = 32
ACCOUNT_ID_SIZE = 16
#: The ``previous`` field of entry 0.
ZERO_HASH = bytes(HASH_SIZE)
#: The account id of the server-wide chain (requests that named no known account).
NO_ACCOUNT = bytes(ACCOUNT_ID_SIZE)
MAX_CREDENTIAL_ID = 32
MAX_REMOTE = 255
MAX_METHOD = 16
MAX_PATH = 2048
MAX_REASON = 1024
_MAX_U64 = 2**64 - 1


class Outcome(enum.IntEnum):
    """What the server decided: the request was served, refused (4xx) or failed (5xx)."""

    ALLOWED = 1
    REFUSED = 2
    FAILED = 3


@dataclass(frozen=True)
class AuditEntry:
    """One decoded audit entry. Text fields are bounded (see the ``MAX_*`` constants, in bytes)."""

    sequence: int
    time_us: int
    previous: bytes
    account_id: bytes
    credential_id: bytes
    remote: str
    method: str
    path: str
    status: int
    outcome: Outcome
    reason: str


def _text(value: str, limit: int, field: str) -> bytes:
    raw = value.encode("utf-8")
    if len(raw) > limit:
        raise ValueError(f"audit entry {field} is {len(raw)} bytes, more than {limit}")
    return raw


def encode(entry: AuditEntry) -> bytes:
    """The canonical bytes of ``entry``; out-of-range fields raise ``ValueError``."""
    if not 0 <= entry.sequence <= _MAX_U64 or not 0 <= entry.time_us <= _MAX_U64:
        raise ValueError("audit entry sequence and time are u64")
    if not 100 <= entry.status <= 999:
        raise ValueError("audit entry status must be an HTTP status code (100-999)")
    if len(entry.credential_id) > MAX_CREDENTIAL_ID:
        raise ValueError(f"audit entry credential id is longer than {MAX_CREDENTIAL_ID} bytes")
    if entry.sequence == 0 and entry.previous != ZERO_HASH:
        raise ValueError("audit entry 0 has an all-zero previous hash")
    return (
        Writer()
        .header(MAGIC, VERSION)
        .u64(entry.sequence)
        .u64(entry.time_us)
        .fixed(entry.previous, HASH_SIZE)
        .fixed(entry.account_id, ACCOUNT_ID_SIZE)
        .bytes8(entry.credential_id)
        .bytes16(_text(entry.remote, MAX_REMOTE, "remote address"))
        .bytes16(_text(entry.method, MAX_METHOD, "method"))
        .bytes16(_text(entry.path, MAX_PATH, "path"))
        .u16(entry.status)
        .u8(Outcome(entry.outcome))
        .bytes16(_text(entry.reason, MAX_REASON, "reason"))
        .getvalue()
    )


def decode(data: bytes, what: str = "audit entry") -> AuditEntry:
    """Strictly decode one entry; any deviation from the canonical encoding is a ``FormatError``."""
    r = Reader(data, what)
    expect_header(r, MAGIC, (VERSION,))
    sequence = r.u64()
    time_us = r.u64()
    previous = r.take(HASH_SIZE)
    if sequence == 0 and previous != ZERO_HASH:
        raise r.error("entry 0 must have an all-zero previous hash")
    account_id = r.take(ACCOUNT_ID_SIZE)
    credential_id = r.bytes8(MAX_CREDENTIAL_ID)
    remote = r.utf8_16(MAX_REMOTE)
    method = r.utf8_16(MAX_METHOD)
    path = r.utf8_16(MAX_PATH)
    status = r.u16()
    if not 100 <= status <= 999:
        raise r.error(f"status {status} is not an HTTP status code")
    code = r.u8()
    try:
        outcome = Outcome(code)
    except ValueError:
        raise FormatError(f"{what} is corrupt: unknown outcome {code}") from None
    reason = r.utf8_16(MAX_REASON)
    r.finish()
    return AuditEntry(
        sequence=sequence,
        time_us=time_us,
        previous=previous,
        account_id=account_id,
        credential_id=credential_id,
        remote=remote,
        method=method,
        path=path,
        status=status,
        outcome=outcome,
        reason=reason,
    )


def entry_hash(data: bytes) -> bytes:
    """SHA-256 of an entry's exact encoded bytes: the ``previous`` field of the entry after it."""
    return hashlib.sha256(data).digest()
