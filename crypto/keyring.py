"""The account keyring: open a root-signed keyring safely, and build its next version.

:func:`open_keyring` verifies the root signature against the pinned root key, only then decodes
the body (:mod:`formats.keyring`), refuses rollback and equivocation, and checks every entry (key
id = SHA-256 of its DER, key size = its role's). This module needs public keys only: the storage
server imports it, so it MUST NOT import ``crypto.private`` or ``crypto.keyfile``. The admin signs
a body from :func:`new_keyring_body` / :func:`next_keyring_body` with
``crypto.private.sign_object(root_private_key, body)``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from crypto.primitives import ct_equal, public_key_der, public_key_id, random_bytes, sha256
from crypto.signing import verify
from formats import keyring as fmt
from formats import signed
from formats.errors import (
    FormatError,
    IntegrityError,
    NotFoundError,
    RollbackError,
    UsageError,
    WrongKeyError,
    WrongRoleError,
)
from formats.roles import KEY_BITS, Role

__all__ = [
    "KeyEntry",
    "Keyring",
    "keyring_digest",
    "new_keyring_body",
    "next_keyring_body",
    "open_keyring",
]

NewKey = tuple[Role, rsa.RSAPublicKey, str]


@dataclass(frozen=True)
class KeyEntry:
    """One public key of the keyring and its role; ``revoked_at`` is ``None`` while active."""

    role: Role
    key_id: bytes
    label: str
    public_der: bytes
    revoked_at: int | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def public_key(self) -> rsa.RSAPublicKey:
        """The RSA public key (checked against its key id and role when the keyring was opened)."""
        key = serialization.load_der_public_key(self.public_der)
        if not isinstance(key, rsa.RSAPublicKey):
            raise FormatError(f"keyring entry {self.key_id.hex()[:16]} is not an RSA public key")
        return key


@dataclass(frozen=True)
class Keyring:
    """A verified keyring: only :func:`open_keyring` makes one from untrusted bytes."""

    account_id: bytes
    version: int
    created: int
    entries: tuple[KeyEntry, ...]

    def keys_for(self, role: Role, *, include_revoked: bool = False) -> dict[bytes, rsa.RSAPublicKey]:
        """Key id -> public key of every (active, unless ``include_revoked``) key of ``role``."""
        return {
            e.key_id: e.public_key() for e in self.entries if e.role is role and (include_revoked or e.active)
        }

    def entry(self, key_id: bytes) -> KeyEntry:
        """The entry of ``key_id``; :class:`WrongKeyError` when the keyring does not list it."""
        for e in self.entries:
            if e.key_id == key_id:
                return e
        raise WrongKeyError(f"key {key_id.hex()[:16]} is not in the account keyring (version {self.version})")

    @property
    def root_id(self) -> bytes:
        """Key id of the one active root key."""
        return next(e.key_id for e in self.entries if e.role is Role.ROOT and e.active)


def keyring_digest(data: bytes) -> bytes:
    """SHA-256 of the signed body bytes inside the signed keyring ``data``.

    This is the value to remember with the version (``seen_digest``). It hashes the body, not the
    envelope, because RSA-PSS is randomised: signing the same body twice is not equivocation.
    """
    return sha256(signed.decode(data, "keyring").body)


def _check_entry(e: fmt.Entry) -> KeyEntry:
    entry = KeyEntry(e.role, e.key_id, e.label, e.public_der, e.revoked_at)
    name = f"keyring entry {e.key_id.hex()[:16]} ({e.role.label} key {e.label!r})"
    if not ct_equal(sha256(e.public_der), e.key_id):
        raise IntegrityError(f"{name}: key id is not the SHA-256 of its public key")
    try:
        key = entry.public_key()
    except (ValueError, UnsupportedAlgorithm):
        raise FormatError(f"{name}: the public key cannot be parsed") from None
    if key.key_size != KEY_BITS[e.role] or public_key_der(key) != e.public_der:
        raise FormatError(f"{name}: a {e.role.label} key must be a canonical RSA-{KEY_BITS[e.role]} key")
    return entry


def open_keyring(
    data: bytes,
    *,
    root_public_key: rsa.RSAPublicKey,
    min_version: int = 0,
    seen_digest: bytes | None = None,
) -> Keyring:
    """Verify, then decode, then check a signed keyring against the pinned root key.

    ``min_version`` is the highest version already seen: a lower one is a :class:`RollbackError`.
    ``seen_digest`` is :func:`keyring_digest` of that version: the same version with another body
    is an :class:`IntegrityError` (equivocation). Raises :class:`WrongKeyError` when the keyring
    is signed by another key or names another active root, :class:`IntegrityError` when the
    signature or a key id does not verify, :class:`FormatError` when the body is malformed.
    """
    root_id = public_key_id(root_public_key)
    obj = verify(data, type_tag=fmt.MAGIC, trusted={root_id: root_public_key}, what="keyring")
    body = fmt.decode(obj.body, "keyring")
    if body.version < min_version:
        raise RollbackError(
            f"keyring version {body.version} is older than version {min_version} already seen: "
            "refusing a rollback"
        )
    if (
        seen_digest is not None
        and body.version == min_version
        and not ct_equal(sha256(obj.body), seen_digest)
    ):
        raise IntegrityError(
            f"keyring version {body.version} differs from the version {min_version} already seen: "
            "the server is showing different keyrings (equivocation)"
        )
    keyring = Keyring(
        body.account_id, body.version, body.created, tuple(_check_entry(e) for e in body.entries)
    )
    if keyring.root_id != root_id:
        raise WrongKeyError(
            f"keyring version {body.version} names root key {keyring.root_id.hex()[:16]}, not the pinned "
            f"root key {root_id.hex()[:16]} that signed it"
        )
    return keyring


def _new_entry(role: Role, key: rsa.RSAPublicKey, label: str) -> fmt.Entry:
    if role not in KEY_BITS:
        raise WrongRoleError(f"a {role.label} key has no public half and cannot be in the keyring")
    if key.key_size != KEY_BITS[role]:
        raise WrongRoleError(f"a {role.label} key must be RSA-{KEY_BITS[role]}, not RSA-{key.key_size}")
    return fmt.Entry(role, public_key_id(key), label, public_key_der(key), None)


def _encode(account_id: bytes, version: int, created: int, entries: Iterable[fmt.Entry]) -> bytes:
    ordered = tuple(sorted(entries, key=lambda e: (e.role, e.key_id)))
    ids = [e.key_id for e in ordered]
    if len(set(ids)) != len(ids):
        raise UsageError("a key can be in the keyring only once, with one role")
    try:
        return fmt.encode(fmt.KeyringBody(account_id, version, created, ordered))
    except ValueError as exc:
        raise UsageError(f"cannot build keyring version {version}: {exc}") from None


def new_keyring_body(
    root_public_key: rsa.RSAPublicKey,
    *,
    root_label: str = "root",
    add: Iterable[NewKey] = (),
    account_id: bytes | None = None,
    now: int | None = None,
) -> bytes:
    """The body of keyring version 1 of a new account (fresh random account id unless given)."""
    entries = [_new_entry(Role.ROOT, root_public_key, root_label)]
    entries += [_new_entry(role, key, label) for role, key, label in add]
    created = int(time.time()) if now is None else now
    return _encode(account_id or random_bytes(fmt.ACCOUNT_ID_SIZE), 1, created, entries)


def next_keyring_body(
    current: Keyring,
    *,
    add: Iterable[NewKey] = (),
    revoke: Iterable[bytes] = (),
    now: int | None = None,
) -> bytes:
    """The body of version ``current.version + 1``: ``current`` plus ``add``, minus ``revoke``.

    Revoked keys stay listed with their revocation time (restore still needs to know them). To
    replace the root key, add the new root and revoke the old one in one call, and sign with the
    new root; clients must then pin the new root key.
    """
    stamp = int(time.time()) if now is None else now
    by_id = {
        e.key_id: fmt.Entry(e.role, e.key_id, e.label, e.public_der, e.revoked_at) for e in current.entries
    }
    for key_id in revoke:
        old = by_id.get(key_id)
        if old is None:
            raise NotFoundError(f"key {key_id.hex()[:16]} is not in keyring version {current.version}")
        if old.revoked_at is not None:
            raise UsageError(f"key {key_id.hex()[:16]} ({old.label!r}) is already revoked")
        by_id[key_id] = fmt.Entry(old.role, old.key_id, old.label, old.public_der, max(stamp, 1))
    for role, key, label in add:
        new = _new_entry(role, key, label)
        if new.key_id in by_id:
            held = by_id[new.key_id].role.label
            raise UsageError(f"key {new.key_id.hex()[:16]} is already in the keyring as a {held} key")
        by_id[new.key_id] = new
    return _encode(current.account_id, current.version + 1, stamp, by_id.values())
