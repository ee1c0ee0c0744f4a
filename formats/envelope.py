"""Key envelope body: one backup's wrapped per-backup keys, kept apart from its signed manifest.

Layout (docs/spec/key-envelope.md)::

    magic "OBKE" | u16 version = 1 | account id (16) | backup id (16) | u64 generation
    | u64 keyring version | u16 record count R | R x bytes16 record (an OBWK record each)

The envelope travels inside a signed object (:mod:`formats.signed`, type tag ``OBKE``): generation
0 is signed by the host key that made the backup, every later generation (a re-wrap after a key
rotation) by a deletion key of the account. The manifest holds only the keys' commitments, so a
rotation can replace the envelope and the old wrapped keys are gone from the server afterwards.

Records are sorted by their bytes with no duplicates; every record holds a key of *this* backup
(its backup id equals the envelope's), of role data or browse, and both roles are present.
Decoding is strict: ``encode(decode(b)) == b``.
"""

from __future__ import annotations

from dataclasses import dataclass

from formats import wrapped_key
from formats._wire import Reader, Writer, check_strictly_sorted, expect_header
from formats.errors import FormatError
from formats.roles import Role
from formats.wrapped_key import WrappedKey

__all__ = [
    "ACCOUNT_ID_SIZE",
    "BACKUP_ID_SIZE",
    "MAGIC",
    "MAX_RECORDS",
    "MAX_RECORD_SIZE",
    "VERSION",
    "Envelope",
    "decode",
    "encode",
]

MAGIC = b"OBKE"
VERSION = 1
ACCOUNT_ID_SIZE = 16
BACKUP_ID_SIZE = 16
#: 64 data records plus 128 metadata-key records (browse and data recipients) fit with room.
MAX_RECORDS = 256
#: A record is at most a wrapped-key header plus 4096 opaque OpenPGP bytes.
MAX_RECORD_SIZE = 8192
_MAX_U64 = 2**64 - 1
#: The shortest record the count check allows for (the full check decodes every record).
_MIN_RECORD = 1


@dataclass(frozen=True)
class Envelope:
    """A decoded key envelope. ``records`` are encoded OBWK records, sorted and unique."""

    account_id: bytes
    backup_id: bytes
    generation: int
    keyring_version: int
    records: tuple[bytes, ...]

    def wrapped_keys(self) -> tuple[WrappedKey, ...]:
        """The records decoded (they were checked when the envelope was decoded or encoded)."""
        return tuple(wrapped_key.decode(rec) for rec in self.records)


def _check_records(records: tuple[bytes, ...], backup_id: bytes, what: str) -> None:
    """FormatError unless every record decodes, is of this backup, and both roles are present."""
    roles: set[Role] = set()
    for i, rec in enumerate(records):
        key = wrapped_key.decode(rec, f"record {i} of {what}")
        if key.backup_id != backup_id:
            raise FormatError(f"{what} is corrupt: record {i} holds a key of another backup")
        roles.add(key.role)
    if roles != {Role.DATA, Role.BROWSE}:
        raise FormatError(f"{what} is corrupt: it must hold records of both the data and the browse role")


def encode(env: Envelope, what: str = "key envelope") -> bytes:
    """The canonical body bytes; anything non-canonical raises ``ValueError``."""
    if not 0 <= env.generation <= _MAX_U64 or not 1 <= env.keyring_version <= _MAX_U64:
        raise ValueError("generation is a u64 and keyring version a u64 >= 1")
    if not 2 <= len(env.records) <= MAX_RECORDS:
        raise ValueError(f"an envelope holds 2 to {MAX_RECORDS} records")
    if any(not 1 <= len(rec) <= MAX_RECORD_SIZE for rec in env.records):
        raise ValueError(f"a record is 1 to {MAX_RECORD_SIZE} bytes")
    check_strictly_sorted(env.records, "envelope records")
    try:
        _check_records(env.records, env.backup_id, what)
    except FormatError as exc:
        raise ValueError(str(exc)) from None
    w = (
        Writer()
        .header(MAGIC, VERSION)
        .fixed(env.account_id, ACCOUNT_ID_SIZE)
        .fixed(env.backup_id, BACKUP_ID_SIZE)
        .u64(env.generation)
        .u64(env.keyring_version)
        .u16(len(env.records))
    )
    for rec in env.records:
        w.bytes16(rec)
    return w.getvalue()


def decode(data: bytes, what: str = "key envelope") -> Envelope:
    """Strictly decode a (verified) body; any deviation is a :class:`FormatError`."""
    r = Reader(data, what)
    expect_header(r, MAGIC, (VERSION,))
    account_id = r.take(ACCOUNT_ID_SIZE)
    backup_id = r.take(BACKUP_ID_SIZE)
    generation = r.u64()
    keyring_version = r.u64()
    if keyring_version < 1:
        raise r.error("keyring version 0")
    count = r.u16()
    if not 2 <= count <= MAX_RECORDS:
        raise r.error(f"record count {count} is not in 2..{MAX_RECORDS}")
    r.count(count, 2 + _MIN_RECORD)
    records: list[bytes] = []
    for _ in range(count):
        rec = r.bytes16(MAX_RECORD_SIZE)
        if not rec:
            raise r.error("empty record")
        if records and rec <= records[-1]:
            raise r.error("records are not sorted and unique")
        records.append(rec)
    r.finish()
    _check_records(tuple(records), backup_id, what)
    return Envelope(account_id, backup_id, generation, keyring_version, tuple(records))
