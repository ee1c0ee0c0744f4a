"""Sign and verify :mod:`formats.signed` objects. Verify first; only then may the body be parsed.

:func:`verify` takes the set of public keys allowed to have signed this kind of object (for a
manifest: the account's current host keys; for a keyring: the pinned root key). It checks the type
tag and the signature over the exact body bytes, and returns the body only when both hold.
"""

from __future__ import annotations

from collections.abc import Mapping

from cryptography.hazmat.primitives.asymmetric import rsa

from crypto.primitives import rsa_pss_verify
from formats import signed
from formats.errors import IntegrityError, WrongKeyError

__all__ = ["verify"]


def verify(
    data: bytes,
    *,
    type_tag: bytes,
    trusted: Mapping[bytes, rsa.RSAPublicKey],
    what: str,
) -> signed.SignedObject:
    """Decode the envelope, check the signer is trusted and the signature holds; return it.

    ``trusted`` maps key ids to the public keys allowed to sign ``type_tag`` objects. Raises
    :class:`WrongKeyError` when the signer is not among them, :class:`IntegrityError` when the
    signature does not verify, :class:`FormatError` when the envelope or type tag is wrong.
    Only after this returns may the caller decode ``result.body``.
    """
    obj = signed.decode(data, what)
    key = trusted.get(obj.signer)
    if key is None:
        raise WrongKeyError(f"{what} is signed by key {obj.signer.hex()[:16]}, which is not trusted for it")
    try:
        rsa_pss_verify(key, obj.body, obj.signature)
    except IntegrityError:
        raise IntegrityError(f"{what}: signature does not verify; it was altered or forged") from None
    signed.expect_type(obj, type_tag, what)
    return obj
