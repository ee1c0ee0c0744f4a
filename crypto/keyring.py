"""The account keyring: open a root-signed keyring safely, and build its next version.

:func:`open_keyring` verifies the root signature against the trusted root key (the active root of
the version before), only then decodes the body (:mod:`formats.keyring`), refuses rollback and
equivocation, and checks every entry (key id = SHA-256 of its public key bytes; an RSA key has its
role's size; an OpenPGP key, kind 2, is checked structurally only: gpg is not needed here). This
module needs public keys only: the storage server imports it, so it MUST NOT import
``crypto.private``, ``crypto.keyfile`` or ``crypto.gpg``. The admin signs a body from
:func:`new_keyring_body` / :func:`next_keyring_body` with
``crypto.private.sign_object(root_private_key, body)``; a root handover is signed by the old root.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
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
from formats.keyring import KeyKind
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
#: (role, OpenPGP transferable public key bytes as ``gpg --export --export-options export-minimal``, label)
NewOpenPGPKey = tuple[Role, bytes, str]


@dataclass(frozen=True)
class KeyEntry:
    """One public key of the keyring and its role; ``revoked_at`` is ``None`` while active.

    ``public_bytes`` is DER SubjectPublicKeyInfo for ``kind`` RSA and an OpenPGP transferable
    public key for ``kind`` OPENPGP. ``trusted_head`` is, for a revoked host key, the SHA-256 of its
    last trusted signed manifest (32 zero bytes: none is trusted); zeros for every other entry.
    """

    role: Role
    key_id: bytes
    label: str
    public_bytes: bytes
    revoked_at: int | None
    kind: KeyKind = KeyKind.RSA
    trusted_head: bytes = fmt.NO_HEAD

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def public_key(self) -> rsa.RSAPublicKey:
        """The RSA public key (checked against its key id and role when the keyring was opened)."""
        if self.kind is not KeyKind.RSA:
            raise WrongKeyError(
                f"keyring entry {self.key_id.hex()[:16]} ({self.role.label} key {self.label!r}) is an "
                "OpenPGP key: it is used through gpg, not as an RSA key"
            )
        key = serialization.load_der_public_key(self.public_bytes)
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
        """Key id -> RSA public key of every (active, unless ``include_revoked``) RSA key of ``role``.

        OpenPGP entries are left out: see :meth:`openpgp_keys_for` and :meth:`recipient_ids`.
        """
        return {
            e.key_id: e.public_key()
            for e in self.entries
            if e.role is role and e.kind is KeyKind.RSA and (include_revoked or e.active)
        }

    def openpgp_keys_for(self, role: Role) -> dict[bytes, bytes]:
        """Key id -> OpenPGP public key bytes of every active OpenPGP key of ``role``."""
        return {
            e.key_id: e.public_bytes
            for e in self.entries
            if e.role is role and e.kind is KeyKind.OPENPGP and e.active
        }

    def recipient_ids(self, role: Role) -> frozenset[bytes]:
        """Key ids of every active key of ``role``, of any kind (whom a backup's keys go to)."""
        return frozenset(e.key_id for e in self.entries if e.role is role and e.active)

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

    @property
    def root_public_key(self) -> rsa.RSAPublicKey:
        """The active root key: the one that must sign the next version."""
        return self.entry(self.root_id).public_key()


def keyring_digest(data: bytes) -> bytes:
    """SHA-256 of the signed body bytes inside the signed keyring ``data``.

    This is the value to remember with the version (``seen_digest``). It hashes the body, not the
    envelope, because RSA-PSS is randomised: signing the same body twice is not equivocation.
    """
    return sha256(signed.decode(data, "keyring").body)


def _check_entry(e: fmt.Entry) -> KeyEntry:
    entry = KeyEntry(e.role, e.key_id, e.label, e.public_bytes, e.revoked_at, e.kind, e.trusted_head)
    name = f"keyring entry {e.key_id.hex()[:16]} ({e.role.label} key {e.label!r})"
    if not ct_equal(sha256(e.public_bytes), e.key_id):
        raise IntegrityError(f"{name}: key id is not the SHA-256 of its public key")
    if e.kind is KeyKind.OPENPGP:
        return entry  # opaque here: role and length were checked by the decoder, the id just above
    try:
        key = entry.public_key()
    except (ValueError, UnsupportedAlgorithm):
        raise FormatError(f"{name}: the public key cannot be parsed") from None
    if key.key_size != KEY_BITS[e.role] or public_key_der(key) != e.public_bytes:
        raise FormatError(f"{name}: a {e.role.label} key must be a canonical RSA-{KEY_BITS[e.role]} key")
    return entry


def open_keyring(
    data: bytes,
    *,
    root_public_key: rsa.RSAPublicKey,
    min_version: int = 0,
    seen_digest: bytes | None = None,
) -> Keyring:
    """Verify, then decode, then check a signed keyring against the trusted root key.

    ``root_public_key`` is the trusted root for the version *before* this one (for version 1, the
    account's first root): it must have signed ``data``. The keyring either keeps it as its active
    root, or hands over: it names another active root and lists ``root_public_key`` as a revoked
    root; the caller then trusts the new root (``keyring.root_public_key``) for the next version.

    ``min_version`` is the highest version already seen: a lower one is a :class:`RollbackError`.
    ``seen_digest`` is :func:`keyring_digest` of that version: the same version with another body
    is an :class:`IntegrityError` (equivocation). Raises :class:`WrongKeyError` when the keyring
    is signed by another key or names another active root without revoking its signer,
    :class:`IntegrityError` when the signature or a key id does not verify, :class:`FormatError`
    when the body is malformed.
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
    if keyring.root_id != root_id and not any(
        e.key_id == root_id and e.role is Role.ROOT and not e.active for e in keyring.entries
    ):
        raise WrongKeyError(
            f"keyring version {body.version} names root key {keyring.root_id.hex()[:16]}, not the pinned "
            f"root key {root_id.hex()[:16]} that signed it, and does not revoke the signer (a root "
            "handover lists the old root revoked)"
        )
    return keyring


def _new_entry(role: Role, key: rsa.RSAPublicKey, label: str) -> fmt.Entry:
    if role not in KEY_BITS:
        raise WrongRoleError(f"a {role.label} key has no public half and cannot be in the keyring")
    if key.key_size != KEY_BITS[role]:
        raise WrongRoleError(f"a {role.label} key must be RSA-{KEY_BITS[role]}, not RSA-{key.key_size}")
    return fmt.Entry(role, public_key_id(key), label, public_key_der(key), None)


def _new_openpgp_entry(role: Role, public: bytes, label: str) -> fmt.Entry:
    if role not in fmt.OPENPGP_ROLES:
        raise WrongRoleError(f"an OpenPGP key can be a data or browse key, not a {role.label} key")
    if not 0 < len(public) <= fmt.MAX_OPENPGP_KEY:
        raise UsageError(f"an OpenPGP public key is 1 to {fmt.MAX_OPENPGP_KEY} bytes, not {len(public)}")
    return fmt.Entry(role, sha256(public), label, public, None, KeyKind.OPENPGP)


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
    add_openpgp: Iterable[NewOpenPGPKey] = (),
    account_id: bytes | None = None,
    now: int | None = None,
) -> bytes:
    """The body of keyring version 1 of a new account (fresh random account id unless given)."""
    entries = [_new_entry(Role.ROOT, root_public_key, root_label)]
    entries += [_new_entry(role, key, label) for role, key, label in add]
    entries += [_new_openpgp_entry(role, key, label) for role, key, label in add_openpgp]
    created = int(time.time()) if now is None else now
    return _encode(account_id or random_bytes(fmt.ACCOUNT_ID_SIZE), 1, created, entries)


def next_keyring_body(
    current: Keyring,
    *,
    add: Iterable[NewKey] = (),
    add_openpgp: Iterable[NewOpenPGPKey] = (),
    revoke: Iterable[bytes] = (),
    trusted_heads: Mapping[bytes, bytes] | None = None,
    now: int | None = None,
) -> bytes:
    """The body of version ``current.version + 1``: ``current`` plus ``add``, minus ``revoke``.

    Revoked keys stay listed with their revocation time (restore still needs to know them). A
    revoked host key records ``trusted_heads[key_id]``, the :func:`crypto.manifest_check.manifest_hash`
    of its last trusted manifest (no entry: none of its manifests is trusted any more). To replace
    the root key, add the new root and revoke the old one in one call, and sign with the OLD root
    (the version after is signed by the new one).
    """
    heads = dict(trusted_heads or {})
    revoking = list(revoke)
    stray = [k for k in heads if k not in revoking]
    if stray:
        raise UsageError(f"a trusted head is given for key {stray[0].hex()[:16]}, which is not being revoked")
    stamp = int(time.time()) if now is None else now
    by_id = {
        e.key_id: fmt.Entry(e.role, e.key_id, e.label, e.public_bytes, e.revoked_at, e.kind, e.trusted_head)
        for e in current.entries
    }
    for key_id in revoking:
        old = by_id.get(key_id)
        if old is None:
            raise NotFoundError(f"key {key_id.hex()[:16]} is not in keyring version {current.version}")
        if old.revoked_at is not None:
            raise UsageError(f"key {key_id.hex()[:16]} ({old.label!r}) is already revoked")
        head = heads.get(key_id, fmt.NO_HEAD)
        if head != fmt.NO_HEAD and old.role is not Role.HOST:
            raise UsageError(
                f"only a host key has a trusted head, not the {old.role.label} key {old.label!r}"
            )
        if len(head) != fmt.HEAD_SIZE:
            raise UsageError("a trusted head is a 32-byte manifest hash")
        by_id[key_id] = fmt.Entry(
            old.role, old.key_id, old.label, old.public_bytes, max(stamp, 1), old.kind, head
        )
    new = [_new_entry(role, key, label) for role, key, label in add]
    new += [_new_openpgp_entry(role, key, label) for role, key, label in add_openpgp]
    for entry in new:
        if entry.key_id in by_id:
            held = by_id[entry.key_id].role.label
            raise UsageError(f"key {entry.key_id.hex()[:16]} is already in the keyring as a {held} key")
        by_id[entry.key_id] = entry
    return _encode(current.account_id, current.version + 1, stamp, by_id.values())
