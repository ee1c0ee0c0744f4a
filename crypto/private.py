"""Operations that use an RSA private key: generation, unwrapping and signing.

Kept apart from :mod:`crypto.primitives` so that the storage server, which must never hold or
import private-key code, can be checked not to import this module (import-linter, in CI).
"""

from __future__ import annotations

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa

from crypto.primitives import PSS_PADDING, RSA_PUBLIC_EXPONENT, oaep_padding, public_key_id
from formats import signed
from formats.errors import IntegrityError

__all__ = ["generate_rsa_key", "rsa_oaep_unwrap", "rsa_pss_sign", "sign_object"]


def generate_rsa_key(bits: int) -> rsa.RSAPrivateKey:
    """A fresh RSA key from the OS CSPRNG (via OpenSSL), e = 65537."""
    if bits not in (3072, 4096):
        raise ValueError("opsbackup uses RSA-3072 or RSA-4096 keys only")
    return rsa.generate_private_key(public_exponent=RSA_PUBLIC_EXPONENT, key_size=bits)


def rsa_oaep_unwrap(private_key: rsa.RSAPrivateKey, wrapped: bytes, label: bytes) -> bytes:
    """Inverse of :func:`rsa_oaep_wrap`; any failure raises :class:`IntegrityError`."""
    try:
        return private_key.decrypt(wrapped, oaep_padding(label))
    except ValueError:
        raise IntegrityError("cannot unwrap key: wrong private key, or the wrapped key was altered") from None


def rsa_pss_sign(private_key: rsa.RSAPrivateKey, message: bytes) -> bytes:
    """RSA-PSS, SHA-256, MGF1-SHA-256, salt length 32 (= digest length), over ``message``."""
    return private_key.sign(message, PSS_PADDING, hashes.SHA256())


def sign_object(private_key: rsa.RSAPrivateKey, body: bytes) -> bytes:
    """Encode a :mod:`formats.signed` object: ``body`` (which starts with its type tag) signed."""
    return signed.encode(
        signed.SignedObject(
            signer=public_key_id(private_key.public_key()),
            body=body,
            signature=rsa_pss_sign(private_key, body),
        )
    )
