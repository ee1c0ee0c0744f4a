"""Sealing and opening objects under a per-backup key: AES-256-GCM with a key commitment.

A per-backup key ``K`` (32 bytes) is never used directly. :class:`SealingKey` derives

* the AES-256-GCM key ``HKDF-SHA256(K, "opsbackup/v1/aead-key")``, and
* the key commitment ``HKDF-SHA256(K, "opsbackup/v1/key-commitment")``, which the manifest stores
  and every sealed object carries, so one ciphertext cannot open under two keys.

A sealed object is ``nonce (12) || commitment (32) || ciphertext || tag (16)`` and its AAD is
``"OBAD" || u16 1 || u8 object type || backup id || object id`` (``formats.sealed``;
docs/spec/sealed-object.md). Nonces are random 96-bit values, counted per key with a hard stop
(:class:`NonceLimitError`) at 2**28 encryptions, far below NIST's 2**32 bound for random nonces.
"""

from __future__ import annotations

import threading

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from crypto.primitives import GCM_NONCE_SIZE, KEY_SIZE, ct_equal, hkdf_sha256, random_bytes
from formats import sealed as fmt
from formats.errors import FormatError, IntegrityError, NonceLimitError

__all__ = ["AEAD_KEY_LABEL", "COMMITMENT_LABEL", "NONCE_LIMIT", "SealingKey"]

AEAD_KEY_LABEL = b"aead-key"
COMMITMENT_LABEL = b"key-commitment"
#: Hard limit of encryptions under one key (docs/crypto.md: random nonces, bound 2**32).
NONCE_LIMIT = 1 << 28


class SealingKey:
    """The subkeys of one per-backup key: the GCM key, the commitment, and a nonce counter.

    The per-backup key itself is not kept. :meth:`seal` may be called from several threads: the
    counter is taken under a lock before any encryption, so the limit holds exactly.

    One ``AESGCM`` object (its key schedule) serves every call: creating one per call cost more
    than sealing a small chunk. pyca's AEAD objects are safe to share between threads.
    """

    __slots__ = ("_aead", "_commitment", "_count", "_enc_key", "_limit", "_lock")

    def __init__(self, key: bytes, *, max_encryptions: int = NONCE_LIMIT) -> None:
        if len(key) != KEY_SIZE:
            raise ValueError(f"a per-backup key is {KEY_SIZE} bytes")
        if not 0 <= max_encryptions <= NONCE_LIMIT:
            raise ValueError(f"max_encryptions must be between 0 and {NONCE_LIMIT}")
        self._enc_key = hkdf_sha256(key, AEAD_KEY_LABEL)
        self._aead = AESGCM(self._enc_key)
        self._commitment = hkdf_sha256(key, COMMITMENT_LABEL)
        self._limit = max_encryptions
        self._count = 0
        self._lock = threading.Lock()

    @classmethod
    def generate(cls, *, max_encryptions: int = NONCE_LIMIT) -> tuple[bytes, SealingKey]:
        """A fresh per-backup key from the CSPRNG and its sealing key.

        The raw key is returned too, because it is what gets wrapped to the recipients.
        """
        key = random_bytes(KEY_SIZE)
        return key, cls(key, max_encryptions=max_encryptions)

    @property
    def commitment(self) -> bytes:
        """The 32-byte key commitment (stored in the manifest and in every sealed object)."""
        return self._commitment

    @property
    def encryptions(self) -> int:
        """How many encryptions this key has made (or reserved) so far."""
        with self._lock:
            return self._count

    def __repr__(self) -> str:  # never print key material
        return f"SealingKey(commitment={self._commitment.hex()[:16]}...)"

    def verify_commitment(self, expected: bytes) -> None:
        """Raise :class:`IntegrityError` unless ``expected`` (from a manifest) is this key's."""
        if not ct_equal(self._commitment, expected):
            raise IntegrityError("key commitment does not match: this is not the key the backup names")

    def seal(
        self, plaintext: bytes, *, obj_type: fmt.ObjectType, backup_id: bytes, object_id: bytes
    ) -> bytes:
        """Seal ``plaintext`` with a fresh random nonce; :class:`NonceLimitError` at the limit."""
        return self.seal_with_nonce(
            random_bytes(GCM_NONCE_SIZE),
            plaintext,
            obj_type=obj_type,
            backup_id=backup_id,
            object_id=object_id,
        )

    def seal_with_nonce(
        self, nonce: bytes, plaintext: bytes, *, obj_type: fmt.ObjectType, backup_id: bytes, object_id: bytes
    ) -> bytes:
        """Seal with an explicit ``nonce``: for golden vectors only; production code calls :meth:`seal`.

        A nonce MUST NOT repeat under one key. The call still counts against the limit.
        """
        if len(plaintext) > fmt.MAX_PLAINTEXT:
            raise ValueError(f"a sealed object holds at most {fmt.MAX_PLAINTEXT} bytes")
        if len(nonce) != GCM_NONCE_SIZE:
            raise ValueError(f"an AES-256-GCM nonce is {GCM_NONCE_SIZE} bytes")
        aad = fmt.aad(obj_type, backup_id, object_id)
        self._reserve()
        # GCM's output is ciphertext || tag, the layout of a sealed object after its two fixed
        # fields (``formats.sealed.join``), so one join makes the object without splitting it.
        return b"".join((nonce, self._commitment, self._aead.encrypt(nonce, plaintext, aad)))

    def open(
        self, sealed: bytes | memoryview, *, obj_type: fmt.ObjectType, backup_id: bytes, object_id: bytes
    ) -> bytes:
        """The plaintext of ``sealed``, which must have been sealed for exactly this AAD.

        The commitment is compared (constant time) before GCM runs. Every failure, including a
        malformed length, is an :class:`IntegrityError`.
        """
        aad = fmt.aad(obj_type, backup_id, object_id)
        if not fmt.OVERHEAD <= len(sealed) <= fmt.MAX_SEALED:
            try:
                fmt.split(bytes(sealed))  # raises the format's own message for a bad length
            except FormatError as exc:
                raise IntegrityError(f"cannot open sealed object: {exc}") from None
        view = memoryview(sealed)
        nonce_end = fmt.NONCE_SIZE
        body_start = nonce_end + fmt.COMMITMENT_SIZE
        if not ct_equal(bytes(view[nonce_end:body_start]), self._commitment):
            raise IntegrityError("sealed object was made under another key (key commitment differs)")
        # ciphertext || tag is the sealed object's tail as is: no split, no concatenation.
        return aes_gcm_decrypt(self._aead, bytes(view[:nonce_end]), view[body_start:], aad)

    def _reserve(self) -> None:
        with self._lock:
            if self._count >= self._limit:
                raise NonceLimitError(
                    f"this key has made {self._count} encryptions, its limit; start a new backup key"
                )
            self._count += 1


def aes_gcm_decrypt(aead: AESGCM, nonce: bytes, ciphertext_and_tag: bytes | memoryview, aad: bytes) -> bytes:
    """Open with a key's cached ``AESGCM``: the one place GCM runs on the read side.

    Any failure (tag, AAD, truncation) is an :class:`IntegrityError`, as in
    :func:`crypto.primitives.aes_gcm_decrypt`.
    """
    try:
        return aead.decrypt(nonce, ciphertext_and_tag, aad)
    except InvalidTag:
        raise IntegrityError(
            "authentication failed: encrypted data was altered or the key is wrong"
        ) from None
