"""Keyring body: the account's public keys and their roles, at one version, signed by the root key.

Layout (docs/spec/keyring.md)::

    magic "OBKR" | u16 version = 1 | account id (16) | u64 keyring version | u64 created
    | u16 entry count | entries
    entry: u8 role | u8 kind | key id (32) | utf8 label | bytes16 public key | u8 status
           | u64 revoked at | last trusted manifest (32)

Kind 1 is an RSA key (DER SubjectPublicKeyInfo, at most 2048 bytes); kind 2 is an OpenPGP
transferable public key (at most 8192 bytes, opaque here), allowed only for the data and browse
roles. Entries are sorted by (role, key id), and a key id appears at most once (one key, one
role). Status 0 is active (revoked-at 0), status 1 is revoked (revoked-at > 0). The last trusted
manifest is non-zero only for a revoked host key. Exactly one active root entry. The decoder
checks structure only; ``crypto.keyring`` checks that each key id is the SHA-256 of its public
key bytes, that each RSA key has its role's size, and the root signature, which it verifies
*before* calling :func:`decode`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from formats._wire import Reader, Writer, expect_header
from formats.errors import FormatError
from formats.roles import ASYMMETRIC_ROLES, Role, role_from_code

__all__ = [
    "ACCOUNT_ID_SIZE",
    "HEAD_SIZE",
    "KEY_ID_SIZE",
    "MAGIC",
    "MAX_ENTRIES",
    "MAX_LABEL",
    "MAX_OPENPGP_KEY",
    "MAX_PUBLIC_DER",
    "NO_HEAD",
    "OPENPGP_ROLES",
    "VERSION",
    "Entry",
    "KeyKind",
    "KeyringBody",
    "decode",
    "encode",
    "max_public_size",
]

MAGIC = b"OBKR"
VERSION = 1
ACCOUNT_ID_SIZE = 16
KEY_ID_SIZE = 32
HEAD_SIZE = 32
NO_HEAD = bytes(HEAD_SIZE)
MAX_LABEL = 255
MAX_PUBLIC_DER = 2048
MAX_OPENPGP_KEY = 8192
MAX_ENTRIES = 0xFFFF
_STATUS_ACTIVE = 0
_STATUS_REVOKED = 1
#: role + kind + key id + label length + key length (+1 byte at least) + status + revoked-at + head
_MIN_ENTRY = 1 + 1 + KEY_ID_SIZE + 2 + 2 + 1 + 1 + 8 + HEAD_SIZE


class KeyKind(enum.IntEnum):
    """What the public key bytes of an entry are."""

    RSA = 1  # DER SubjectPublicKeyInfo
    OPENPGP = 2  # a binary OpenPGP transferable public key (gpg --export), opaque to the keyring


#: The roles an OpenPGP key may hold: it only ever unwraps per-backup keys.
OPENPGP_ROLES = frozenset({Role.DATA, Role.BROWSE})


def max_public_size(kind: KeyKind) -> int:
    """The longest public key of ``kind``, in bytes."""
    return MAX_OPENPGP_KEY if kind is KeyKind.OPENPGP else MAX_PUBLIC_DER


@dataclass(frozen=True)
class Entry:
    """One key of the keyring. ``revoked_at`` is ``None`` while the key is active.

    ``trusted_head`` is the SHA-256 of the last manifest trusted from a revoked host key (32 zero
    bytes when none is, and for every other entry).
    """

    role: Role
    key_id: bytes
    label: str
    public_bytes: bytes
    revoked_at: int | None = None
    kind: KeyKind = KeyKind.RSA
    trusted_head: bytes = NO_HEAD


@dataclass(frozen=True)
class KeyringBody:
    account_id: bytes
    version: int
    created: int
    entries: tuple[Entry, ...]


def _entry_problem(e: Entry) -> str | None:
    """The first per-entry rule ``e`` breaks (beyond what the wire layout enforces), or ``None``."""
    if e.kind is KeyKind.OPENPGP and e.role not in OPENPGP_ROLES:
        return f"an OpenPGP key cannot be a {e.role.label} key (data and browse only)"
    if len(e.trusted_head) != HEAD_SIZE:
        return "a last trusted manifest hash is 32 bytes"
    if e.trusted_head != NO_HEAD and (e.role is not Role.HOST or e.revoked_at is None):
        return "only a revoked host key has a last trusted manifest"
    return None


def _rule_problem(body: KeyringBody) -> str | None:
    """The first whole-keyring rule ``body`` breaks, or ``None``."""
    if body.version < 1:
        return "keyring version must be at least 1"
    if not body.entries:
        return "a keyring holds at least its root key"
    seen: set[bytes] = set()
    for prev, cur in zip((None, *body.entries), body.entries, strict=False):
        if cur.key_id in seen:
            return f"key {cur.key_id.hex()[:16]} is listed twice"
        seen.add(cur.key_id)
        if prev is not None and (prev.role, prev.key_id) >= (cur.role, cur.key_id):
            return "entries are not sorted by (role, key id)"
        problem = _entry_problem(cur)
        if problem is not None:
            return problem
    roots = [e for e in body.entries if e.role is Role.ROOT and e.revoked_at is None]
    if len(roots) != 1:
        return f"a keyring needs exactly one active root key, this one has {len(roots)}"
    return None


def encode(body: KeyringBody) -> bytes:
    """Canonical bytes of ``body`` (the bytes the root key signs); broken rules raise ValueError."""
    problem = _rule_problem(body)
    if problem is not None:
        raise ValueError(problem)
    w = Writer().header(MAGIC, VERSION).fixed(body.account_id, ACCOUNT_ID_SIZE)
    w.u64(body.version).u64(body.created).u16(len(body.entries))
    for e in body.entries:
        if e.role not in ASYMMETRIC_ROLES:
            raise ValueError(f"the keyring lists public keys only, not a {e.role.label} secret")
        kind = KeyKind(e.kind)
        if not 0 < len(e.public_bytes) <= max_public_size(kind) or len(e.label.encode("utf-8")) > MAX_LABEL:
            raise ValueError("public key or label length out of range")
        if e.revoked_at is not None and e.revoked_at <= 0:
            raise ValueError("a revocation time is a positive number of seconds")
        w.u8(e.role).u8(kind).fixed(e.key_id, KEY_ID_SIZE).utf8_16(e.label).bytes16(e.public_bytes)
        w.u8(_STATUS_ACTIVE if e.revoked_at is None else _STATUS_REVOKED).u64(e.revoked_at or 0)
        w.fixed(e.trusted_head, HEAD_SIZE)
    return w.getvalue()


def _entry(r: Reader) -> Entry:
    role = role_from_code(r.u8(), "keyring entry")
    if role not in ASYMMETRIC_ROLES:
        raise r.error(f"role {role.label} has no public key and cannot be in a keyring")
    code = r.u8()
    if code not in tuple(KeyKind):
        raise r.error(f"unknown key kind {code}")
    kind = KeyKind(code)
    if kind is KeyKind.OPENPGP and role not in OPENPGP_ROLES:
        raise r.error(f"an OpenPGP key cannot be a {role.label} key (data and browse only)")
    key_id = r.take(KEY_ID_SIZE)
    label = r.utf8_16(MAX_LABEL)
    public_bytes = r.bytes16(max_public_size(kind))
    if not public_bytes:
        raise r.error("empty public key")
    status = r.u8()
    revoked_at = r.u64()
    if status == _STATUS_ACTIVE:
        if revoked_at != 0:
            raise r.error("an active key has a revocation time")
    elif status == _STATUS_REVOKED:
        if revoked_at == 0:
            raise r.error("a revoked key has no revocation time")
    else:
        raise r.error(f"unknown key status {status}")
    head = r.take(HEAD_SIZE)
    if head != NO_HEAD and (role is not Role.HOST or status != _STATUS_REVOKED):
        raise r.error("only a revoked host key has a last trusted manifest")
    return Entry(role, key_id, label, public_bytes, revoked_at or None, kind, head)


def decode(data: bytes, what: str = "keyring") -> KeyringBody:
    """Decode a keyring body strictly. Call only on bytes whose signature has been verified."""
    r = Reader(data, what)
    expect_header(r, MAGIC, (VERSION,))
    account_id = r.take(ACCOUNT_ID_SIZE)
    version = r.u64()
    created = r.u64()
    n = r.count(r.u16(), _MIN_ENTRY)
    entries = tuple(_entry(r) for _ in range(n))
    r.finish()
    body = KeyringBody(account_id=account_id, version=version, created=created, entries=entries)
    problem = _rule_problem(body)
    if problem is not None:
        raise FormatError(f"{what} is corrupt: {problem}")
    return body
