"""Known-answer tests of crypto/primitives.py, as opsbackup uses each primitive.

* AES-256-GCM with a 96-bit IV: test cases 13 to 16 of "The Galois/Counter Mode of Operation"
  (McGrew and Viega), the AES-256 cases NIST SP 800-38D's validation draws on.
* HMAC-SHA-256: RFC 4231 test cases 1 to 4, 6 and 7.
* HKDF-SHA-256: our ``hkdf_sha256`` (no salt, ``info = "opsbackup/v1/" || label``) equals RFC 5869
  extract-and-expand written out below with :mod:`hmac`; that reference is itself checked
  against RFC 5869 test cases 1 and 3 (3 is the one with no salt and no info).
"""

from __future__ import annotations

import hashlib
import hmac

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crypto.primitives import (
    HKDF_LABEL_PREFIX,
    aes_gcm_decrypt,
    aes_gcm_encrypt,
    ct_equal,
    hkdf_sha256,
    hmac_sha256,
    sha256,
)
from formats.errors import IntegrityError

h = bytes.fromhex

GCM_K = h("feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308")
GCM_IV = h("cafebabefacedbaddecaf888")
GCM_P = h(
    "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
    "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255"
)
GCM_C = h(
    "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
    "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662898015ad"
)
GCM_A = h("feedfacedeadbeeffeedfacedeadbeefabaddad2")

# (name, key, iv, plaintext, aad, ciphertext, tag)
GCM_CASES = [
    ("TC13", bytes(32), bytes(12), b"", b"", b"", h("530f8afbc74536b9a963b4f1c4cb738b")),
    (
        "TC14",
        bytes(32),
        bytes(12),
        bytes(16),
        b"",
        h("cea7403d4d606b6e074ec5d3baf39d18"),
        h("d0d1c8a799996bf0265b98b5d48ab919"),
    ),
    ("TC15", GCM_K, GCM_IV, GCM_P, b"", GCM_C, h("b094dac5d93471bdec1a502270e3cc6c")),
    ("TC16", GCM_K, GCM_IV, GCM_P[:60], GCM_A, GCM_C[:60], h("76fc6ece0f4e1768cddf8853bb2d551b")),
]


@pytest.mark.parametrize(("name", "key", "iv", "pt", "aad", "ct", "tag"), GCM_CASES)
def test_aes_256_gcm_known_answers(
    name: str, key: bytes, iv: bytes, pt: bytes, aad: bytes, ct: bytes, tag: bytes
) -> None:
    assert aes_gcm_encrypt(key, iv, pt, aad) == ct + tag
    assert aes_gcm_decrypt(key, iv, ct + tag, aad) == pt


@pytest.mark.parametrize("where", ["ciphertext", "tag", "aad", "iv"])
def test_aes_256_gcm_rejects_any_change(where: str) -> None:
    _, key, iv, _, aad, ct, tag = GCM_CASES[3]
    body = bytearray(ct + tag)
    if where == "ciphertext":
        body[0] ^= 1
    elif where == "tag":
        body[-1] ^= 0x80
    elif where == "aad":
        aad = aad[:-1] + b"\x00"
    else:
        iv = bytes(12)
    with pytest.raises(IntegrityError):
        aes_gcm_decrypt(key, iv, bytes(body), aad)


def test_aes_gcm_refuses_wrong_sizes() -> None:
    with pytest.raises(ValueError, match="32-byte key"):
        aes_gcm_encrypt(bytes(16), bytes(12), b"", b"")
    with pytest.raises(ValueError, match="12-byte nonce"):
        aes_gcm_decrypt(bytes(32), bytes(16), bytes(16), b"")


RFC4231 = [
    (b"\x0b" * 20, b"Hi There", "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"),
    (
        b"Jefe",
        b"what do ya want for nothing?",
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
    ),
    (b"\xaa" * 20, b"\xdd" * 50, "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"),
    (bytes(range(1, 26)), b"\xcd" * 50, "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b"),
    (
        b"\xaa" * 131,
        b"Test Using Larger Than Block-Size Key - Hash Key First",
        "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
    ),
    (
        b"\xaa" * 131,
        b"This is a test using a larger than block-size key and a larger than block-size data. "
        b"The key needs to be hashed before being used by the HMAC algorithm.",
        "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2",
    ),
]


@pytest.mark.parametrize(("key", "data", "mac"), RFC4231)
def test_hmac_sha256_rfc4231(key: bytes, data: bytes, mac: str) -> None:
    assert hmac_sha256(key, data).hex() == mac


def test_sha256_and_ct_equal() -> None:
    assert sha256(b"abc").hex() == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert ct_equal(b"abc", b"abc")
    assert not ct_equal(b"abc", b"abd")
    assert not ct_equal(b"abc", b"ab")


def rfc5869(ikm: bytes, salt: bytes, info: bytes, length: int) -> tuple[bytes, bytes]:
    """RFC 5869 written out: PRK = HMAC(salt or zeros, IKM); T(i) = HMAC(PRK, T(i-1) | info | i)."""
    prk = hmac.new(salt or bytes(32), ikm, hashlib.sha256).digest()
    okm, block = b"", b""
    for i in range(1, -(-length // 32) + 1):
        block = hmac.new(prk, block + info + bytes([i]), hashlib.sha256).digest()
        okm += block
    return prk, okm[:length]


def test_reference_hkdf_matches_rfc5869_case_1() -> None:
    prk, okm = rfc5869(b"\x0b" * 22, bytes(range(13)), bytes(range(0xF0, 0xFA)), 42)
    assert prk.hex() == "077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5"
    assert okm.hex() == (
        "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"
    )


def test_reference_hkdf_matches_rfc5869_case_3_no_salt_no_info() -> None:
    prk, okm = rfc5869(b"\x0b" * 22, b"", b"", 42)
    assert prk.hex() == "19ef24a32c717b167f33a91d6f648bdf96596776afdb6377ac434c1c293ccb04"
    assert okm.hex() == (
        "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8"
    )


@settings(max_examples=40, deadline=None)
@given(
    key=st.binary(min_size=1, max_size=64),
    label=st.binary(min_size=1, max_size=40),
    length=st.sampled_from([16, 32, 42, 64, 100]),
)
def test_hkdf_sha256_is_rfc5869_without_salt_and_with_prefixed_info(
    key: bytes, label: bytes, length: int
) -> None:
    assert hkdf_sha256(key, label, length) == rfc5869(key, b"", HKDF_LABEL_PREFIX + label, length)[1]


def test_hkdf_labels_used_by_sealing() -> None:
    key = bytes(range(32))
    for label in (b"aead-key", b"key-commitment", b"chunk-id", b"chunker"):
        assert hkdf_sha256(key, label) == rfc5869(key, b"", b"opsbackup/v1/" + label, 32)[1]
    assert hkdf_sha256(key, b"aead-key") != hkdf_sha256(key, b"key-commitment")


def test_hkdf_refuses_an_empty_label() -> None:
    with pytest.raises(ValueError, match="label"):
        hkdf_sha256(bytes(32), b"")
