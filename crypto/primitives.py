"""Symmetric and public-key cryptography of opsbackup, on pyca/cryptography and hashlib.

Only operations that need no private key live here, so that the storage server can import this
module (to verify signatures) without importing any private-key code; those are in
:mod:`crypto.private`.

Everything else in ``crypto`` is built from these functions; nothing outside ``crypto`` calls
pyca/cryptography's hazmat layer for anything but loading and serialising keys. Parameters and
their reasons are in ``docs/crypto.md``. Verification raises :class:`IntegrityError`; nothing
here returns a bool for an authentication decision except :func:`ct_equal`, which is the
constant-time comparison the raising checks are made of.
"""

from __future__ import annotations

import hashlib
import hmac
import os

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from formats.errors import IntegrityError

__all__ = [
    "GCM_NONCE_SIZE",
    "GCM_TAG_SIZE",
    "HKDF_LABEL_PREFIX",
    "KEY_SIZE",
    "RSA_PUBLIC_EXPONENT",
    "aes_gcm_decrypt",
    "aes_gcm_encrypt",
    "ct_equal",
    "hkdf_sha256",
    "oaep_padding",
    "PSS_PADDING",
    "hmac_sha256",
    "public_key_der",
    "public_key_id",
    "random_bytes",
    "rsa_oaep_wrap",
    "rsa_pss_verify",
    "sha256",
]

KEY_SIZE = 32  # AES-256 keys, HMAC keys, HKDF outputs
GCM_NONCE_SIZE = 12  # 96-bit random nonces (NIST SP 800-38D 8.2.2)
GCM_TAG_SIZE = 16
RSA_PUBLIC_EXPONENT = 65537
#: Every HKDF ``info`` starts with this, so no opsbackup subkey can equal another protocol's.
HKDF_LABEL_PREFIX = b"opsbackup/v1/"


def random_bytes(n: int) -> bytes:
    """``n`` bytes from the operating system's CSPRNG."""
    return os.urandom(n)


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def hmac_sha256(key: bytes, data: bytes) -> bytes:
    return hmac.digest(key, data, "sha256")


def ct_equal(a: bytes, b: bytes) -> bool:
    """Constant-time equality of two byte strings (time depends only on the lengths)."""
    return hmac.compare_digest(a, b)


def hkdf_sha256(key: bytes, label: bytes, length: int = KEY_SIZE) -> bytes:
    """HKDF-SHA256 (RFC 5869), no salt, ``info = "opsbackup/v1/" || label``."""
    if not label:
        raise ValueError("every HKDF subkey needs its own label")
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=HKDF_LABEL_PREFIX + label).derive(
        key
    )


def aes_gcm_encrypt(key: bytes, nonce: bytes, plaintext: bytes, aad: bytes) -> bytes:
    """AES-256-GCM; returns ciphertext || 16-byte tag. The caller owns nonce uniqueness."""
    if len(key) != KEY_SIZE or len(nonce) != GCM_NONCE_SIZE:
        raise ValueError("AES-256-GCM needs a 32-byte key and a 12-byte nonce")
    return AESGCM(key).encrypt(nonce, plaintext, aad)


def aes_gcm_decrypt(key: bytes, nonce: bytes, ciphertext: bytes, aad: bytes) -> bytes:
    """AES-256-GCM open; any failure (tag, AAD, truncation) raises :class:`IntegrityError`."""
    if len(key) != KEY_SIZE or len(nonce) != GCM_NONCE_SIZE:
        raise ValueError("AES-256-GCM needs a 32-byte key and a 12-byte nonce")
    try:
        return AESGCM(key).decrypt(nonce, ciphertext, aad)
    except InvalidTag:
        raise IntegrityError(
            "authentication failed: encrypted data was altered or the key is wrong"
        ) from None


def public_key_der(key: rsa.RSAPublicKey) -> bytes:
    """The key's DER SubjectPublicKeyInfo: the one canonical encoding of a public key."""
    return key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


def public_key_id(key: rsa.RSAPublicKey) -> bytes:
    """A key's 32-byte id: SHA-256 of its DER SubjectPublicKeyInfo (its fingerprint)."""
    return sha256(public_key_der(key))


def oaep_padding(label: bytes) -> padding.OAEP:
    return padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA256()), algorithm=hashes.SHA256(), label=label)


def rsa_oaep_wrap(public_key: rsa.RSAPublicKey, key: bytes, label: bytes) -> bytes:
    """RSA-OAEP with SHA-256 and MGF1-SHA-256; ``label`` binds the wrap to its context."""
    return public_key.encrypt(key, oaep_padding(label))


PSS_PADDING = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)


def rsa_pss_verify(public_key: rsa.RSAPublicKey, message: bytes, signature: bytes) -> None:
    """Raises :class:`IntegrityError` unless ``signature`` is valid for ``message``."""
    try:
        public_key.verify(signature, message, PSS_PADDING, hashes.SHA256())
    except InvalidSignature:
        raise IntegrityError("signature verification failed") from None
