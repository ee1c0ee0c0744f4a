"""Keyed chunk ids and the chunker key, both derived from the account's dedup secret.

``chunk id = HMAC-SHA256(HKDF-SHA256(secret, "opsbackup/v1/chunk-id"), plaintext)`` and the
chunker's key is ``HKDF-SHA256(secret, "opsbackup/v1/chunker")``. Without the dedup secret, chunk
ids and chunk boundaries say nothing about content (docs/design.md, "Chunk ids"). The plaintext
a chunk id covers is the chunk's content before compression and before the envelope byte.
"""

from __future__ import annotations

from crypto.primitives import KEY_SIZE, ct_equal, hkdf_sha256, hmac_sha256
from formats.errors import IntegrityError

__all__ = [
    "CHUNKER_LABEL",
    "CHUNK_ID_LABEL",
    "CHUNK_ID_SIZE",
    "ChunkIdKey",
    "chunk_id",
    "chunker_key",
    "epoch_tag",
    "verify_chunk_id",
]

CHUNK_ID_LABEL = b"chunk-id"
CHUNKER_LABEL = b"chunker"
EPOCH_LABEL = b"cache-epoch"
CHUNK_ID_SIZE = 32


def _check_secret(secret: bytes) -> None:
    if len(secret) != KEY_SIZE:
        raise ValueError(f"the dedup secret is {KEY_SIZE} bytes")


def chunker_key(secret: bytes) -> bytes:
    """The 32-byte key of the content-defined chunker: ``HKDF(secret, "chunker")``."""
    _check_secret(secret)
    return hkdf_sha256(secret, CHUNKER_LABEL)


def epoch_tag(secret: bytes) -> str:
    """8 hex digits naming the dedup epoch (``HKDF(secret, "cache-epoch")``), for local file names.

    A new dedup secret is a new epoch: chunk ids change, so a host's cache of the old epoch is of
    no use and is not opened. The tag says nothing about the secret.
    """
    _check_secret(secret)
    return hkdf_sha256(secret, EPOCH_LABEL)[:4].hex()


class ChunkIdKey:
    """The HMAC key that turns chunk plaintexts into chunk ids: ``HKDF(secret, "chunk-id")``."""

    __slots__ = ("_key",)

    def __init__(self, secret: bytes) -> None:
        _check_secret(secret)
        self._key = hkdf_sha256(secret, CHUNK_ID_LABEL)

    def __repr__(self) -> str:  # never print key material
        return "ChunkIdKey(...)"

    def chunk_id(self, plaintext: bytes) -> bytes:
        """The 32-byte id of a chunk: HMAC-SHA256 of its plaintext under this key."""
        return hmac_sha256(self._key, plaintext)

    def verify(self, plaintext: bytes, expected: bytes) -> None:
        """Raise :class:`IntegrityError` unless ``plaintext`` has id ``expected`` (constant time)."""
        if not ct_equal(self.chunk_id(plaintext), expected):
            raise IntegrityError("chunk content does not match its chunk id")


def chunk_id(key: ChunkIdKey, plaintext: bytes) -> bytes:
    """``key.chunk_id(plaintext)``."""
    return key.chunk_id(plaintext)


def verify_chunk_id(key: ChunkIdKey, plaintext: bytes, expected: bytes) -> None:
    """``key.verify(plaintext, expected)``: :class:`IntegrityError` on a mismatch."""
    key.verify(plaintext, expected)
