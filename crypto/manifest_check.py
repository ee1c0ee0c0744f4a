"""Verify a signed manifest: signature first, then decode, then the signer must be the body's host.

Public-key only: this module never imports ``crypto.private`` or ``crypto.keyfile``, so the
storage server and the audit tools may use it. The keyring (verified against the pinned root
key) says which host keys are current; the caller passes them as ``host_keys``.
"""

from __future__ import annotations

from collections.abc import Mapping

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from crypto.primitives import ct_equal, sha256
from crypto.signing import verify
from formats import manifest
from formats.errors import IntegrityError
from formats.manifest import Manifest

__all__ = ["manifest_hash", "verify_manifest"]


def verify_manifest(data: bytes, *, host_keys: Mapping[bytes, RSAPublicKey]) -> Manifest:
    """Verify and decode a signed manifest (``OBSO`` envelope around an ``OBMF`` body).

    ``host_keys`` maps key ids to the account's current host public keys. Raises
    :class:`WrongKeyError` if the signer is not one of them, :class:`IntegrityError` if the
    signature does not verify or the body names another host key than the one that signed it,
    :class:`FormatError` if the envelope, the type tag or the (verified) body is malformed.
    """
    obj = verify(data, type_tag=manifest.MAGIC, trusted=host_keys, what="manifest")
    body = manifest.decode(obj.body)
    if not ct_equal(body.host_key_id, obj.signer):
        raise IntegrityError(
            f"manifest of backup {body.backup_id.hex()} names host key {body.host_key_id.hex()[:16]} "
            f"but is signed by host key {obj.signer.hex()[:16]}; refusing it"
        )
    return body


def manifest_hash(data: bytes) -> bytes:
    """SHA-256 of a signed manifest's exact bytes: the next manifest's ``previous_manifest_hash``."""
    return sha256(data)
