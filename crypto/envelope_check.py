"""Check and open key envelopes with public keys only: the storage server's half of ``crypto.envelope``.

:func:`check_recipients` says whether an envelope is wrapped to exactly the keyring's active
recipients (docs/spec/key-envelope.md, "Which recipients"); :func:`open_envelope` verifies the
signed object against the trusted signers and only then decodes it. This module never imports
``crypto.private``, ``crypto.keyfile`` or ``crypto.wrap`` (which unwraps), so the storage server
may import it; :mod:`crypto.envelope` re-exports everything here beside the wrapping code.
"""

from __future__ import annotations

from collections.abc import Mapping

from cryptography.hazmat.primitives.asymmetric import rsa

from crypto.keyring import Keyring
from crypto.primitives import ct_equal
from crypto.signing import verify
from formats import envelope as fmt
from formats.envelope import Envelope
from formats.errors import IntegrityError, WrongKeyError
from formats.roles import Role

__all__ = [
    "check_recipients",
    "expected_recipients",
    "open_envelope",
    "readers_trusted_signers",
    "storers_trusted_signers",
]


def expected_recipients(keyring: Keyring, role: Role) -> frozenset[bytes]:
    """Key ids a record of ``role`` must be wrapped to under ``keyring``'s active keys.

    Role data (the data key): the active data keys. Role browse (the metadata key): the active
    browse keys *and* the active data keys.
    """
    roles = {Role.DATA, Role.BROWSE} if role is Role.BROWSE else {Role.DATA}
    return frozenset(e.key_id for e in keyring.entries if e.role in roles and e.active)


def check_recipients(env: Envelope, keyring: Keyring) -> None:
    """``WrongKeyError`` unless ``env`` is wrapped to exactly ``keyring``'s active recipients.

    The server checks this for every envelope it stores, so that no backup made or re-wrapped
    after a keyring change is readable only by a key that change removed. A recipient listed
    twice for one role (two records with other wrapped bytes) is refused too.
    """
    if env.keyring_version != keyring.version:
        raise WrongKeyError(
            f"the key envelope of backup {env.backup_id.hex()} is wrapped to keyring version "
            f"{env.keyring_version}, but the current keyring is version {keyring.version}; re-wrap it"
        )
    records = env.wrapped_keys()
    for role in (Role.DATA, Role.BROWSE):
        got = sorted(rec.recipient_id for rec in records if rec.role is role)
        want = sorted(expected_recipients(keyring, role))
        if got != want:
            raise WrongKeyError(
                f"the key envelope of backup {env.backup_id.hex()} does not wrap its {role.label} "
                f"record to exactly the {len(want)} recipients of keyring version {keyring.version}"
            )


def readers_trusted_signers(keyring: Keyring, host_key_id: bytes | None) -> dict[bytes, rsa.RSAPublicKey]:
    """Signers a reader accepts for a backup's envelope: its host key and every deletion key.

    Revoked keys included: the records are checked against the signed commitments anyway, and a
    backup re-wrapped under a deletion key that has since been rotated stays readable.
    ``host_key_id=None`` (the backup's host is not known: an earlier source whose manifest may be
    gone): any host key of the keyring, since the commitment in the reading backup's
    authenticated root, not the signer, is what makes the unwrapped key trustworthy.
    """
    trusted = dict(keyring.keys_for(Role.DELETION, include_revoked=True))
    hosts = keyring.keys_for(Role.HOST, include_revoked=True)
    if host_key_id is None:
        trusted.update(hosts)
    elif host_key_id in hosts:
        trusted[host_key_id] = hosts[host_key_id]
    return trusted


def storers_trusted_signers(keyring: Keyring) -> dict[bytes, rsa.RSAPublicKey]:
    """Signers the server accepts for a new envelope: the *active* host and deletion keys.

    Which of the two a generation needs (host for 0, deletion for the rest) is checked after
    verification, against the signer's role.
    """
    return {**keyring.keys_for(Role.HOST), **keyring.keys_for(Role.DELETION)}


def open_envelope(
    data: bytes,
    *,
    trusted: Mapping[bytes, rsa.RSAPublicKey],
    account_id: bytes,
    backup_id: bytes,
) -> tuple[Envelope, bytes]:
    """Verify, then decode, then check ``data`` is the envelope of ``backup_id`` in ``account_id``.

    Returns the envelope and its signer's key id. :class:`WrongKeyError` for an untrusted
    signer, :class:`IntegrityError` for a bad signature or an envelope of another backup or
    account, :class:`FormatError` for a malformed one.
    """
    what = f"key envelope of backup {backup_id.hex()}"
    obj = verify(data, type_tag=fmt.MAGIC, trusted=trusted, what=what)
    env = fmt.decode(obj.body, what)
    if not ct_equal(env.backup_id, backup_id) or not ct_equal(env.account_id, account_id):
        raise IntegrityError(f"the {what} was served for another backup or account; refusing it")
    return env, obj.signer
