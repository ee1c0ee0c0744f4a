"""Signing and verifying signed objects (crypto/private.py sign_object, crypto/signing.py verify)."""

from __future__ import annotations

from typing import Any
from unittest import mock

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from crypto import primitives, signing
from crypto.primitives import public_key_id
from crypto.private import sign_object
from crypto.signing import verify
from formats import signed
from formats.errors import FormatError, IntegrityError, WrongKeyError
from tests.conftest import load_vectors

SIGNED: Any = load_vectors("signed")
BODY = b"OBMF\x00\x01some manifest body"


def trust(*keys: rsa.RSAPrivateKey) -> dict[bytes, rsa.RSAPublicKey]:
    return {public_key_id(k.public_key()): k.public_key() for k in keys}


def test_sign_then_verify_returns_the_exact_body(rsa3072: rsa.RSAPrivateKey) -> None:
    data = sign_object(rsa3072, BODY)
    obj = verify(data, type_tag=b"OBMF", trusted=trust(rsa3072), what="manifest")
    assert obj.body == BODY
    assert obj.signer == public_key_id(rsa3072.public_key())
    assert len(obj.signature) == 384


def test_rsa4096_signatures(rsa4096: rsa.RSAPrivateKey) -> None:
    obj = verify(sign_object(rsa4096, b"OBKR\x00\x01x"), type_tag=b"OBKR", trusted=trust(rsa4096), what="k")
    assert len(obj.signature) == 512


def test_signatures_are_randomised_but_both_verify(rsa3072: rsa.RSAPrivateKey) -> None:
    a, b = sign_object(rsa3072, BODY), sign_object(rsa3072, BODY)
    assert a != b  # PSS salt is fresh each time
    for d in (a, b):
        verify(d, type_tag=b"OBMF", trusted=trust(rsa3072), what="manifest")


def test_untrusted_signer_is_wrong_key(rsa3072: rsa.RSAPrivateKey, rsa3072_other: rsa.RSAPrivateKey) -> None:
    data = sign_object(rsa3072_other, BODY)
    with pytest.raises(WrongKeyError, match="not trusted"):
        verify(data, type_tag=b"OBMF", trusted=trust(rsa3072), what="manifest")
    with pytest.raises(WrongKeyError):
        verify(data, type_tag=b"OBMF", trusted={}, what="manifest")


def test_altered_body_is_integrity_error(rsa3072: rsa.RSAPrivateKey) -> None:
    obj = signed.decode(sign_object(rsa3072, BODY))
    for i in range(len(BODY)):
        body = BODY[:i] + bytes([BODY[i] ^ 0x01]) + BODY[i + 1 :]
        forged = signed.encode(signed.SignedObject(obj.signer, body, obj.signature))
        with pytest.raises(IntegrityError, match="does not verify"):
            verify(forged, type_tag=b"OBMF", trusted=trust(rsa3072), what="manifest")


def test_altered_signature_is_integrity_error(rsa3072: rsa.RSAPrivateKey) -> None:
    obj = signed.decode(sign_object(rsa3072, BODY))
    sig = bytearray(obj.signature)
    sig[-1] ^= 0x80
    forged = signed.encode(signed.SignedObject(obj.signer, obj.body, bytes(sig)))
    with pytest.raises(IntegrityError):
        verify(forged, type_tag=b"OBMF", trusted=trust(rsa3072), what="manifest")


def test_claimed_signer_swapped_to_another_trusted_key(
    rsa3072: rsa.RSAPrivateKey, rsa3072_other: rsa.RSAPrivateKey
) -> None:
    obj = signed.decode(sign_object(rsa3072, BODY))
    claimed = signed.encode(
        signed.SignedObject(public_key_id(rsa3072_other.public_key()), BODY, obj.signature)
    )
    with pytest.raises(IntegrityError):
        verify(claimed, type_tag=b"OBMF", trusted=trust(rsa3072, rsa3072_other), what="manifest")


def test_wrong_type_tag_is_refused_after_a_valid_signature(rsa3072: rsa.RSAPrivateKey) -> None:
    data = sign_object(rsa3072, b"OBKR\x00\x01keyring")
    with pytest.raises(FormatError, match="expected a signed b'OBMF' object, got type tag b'OBKR'"):
        verify(data, type_tag=b"OBMF", trusted=trust(rsa3072), what="manifest")


def test_bad_signature_wins_over_a_bad_type_tag(rsa3072: rsa.RSAPrivateKey) -> None:
    obj = signed.decode(sign_object(rsa3072, b"OBKR\x00\x01keyring"))
    forged = signed.encode(signed.SignedObject(obj.signer, b"OBKR\x00\x01keyrinG", obj.signature))
    with pytest.raises(IntegrityError):
        verify(forged, type_tag=b"OBMF", trusted=trust(rsa3072), what="manifest")


def test_body_is_not_decoded_before_verification(rsa3072: rsa.RSAPrivateKey) -> None:
    # an undecodable body with a bad signature reports the signature, not the body's format
    junk = b"OBMF\xff\xff" + b"\x00" * 7
    obj = signed.decode(sign_object(rsa3072, BODY))
    forged = signed.encode(signed.SignedObject(obj.signer, junk, obj.signature))
    with mock.patch("formats.manifest.decode", side_effect=AssertionError("body parsed")) as dec:
        with pytest.raises(IntegrityError):
            verify(forged, type_tag=b"OBMF", trusted=trust(rsa3072), what="manifest")
        # and a well-signed undecodable body is returned as bytes, untouched
        good = verify(sign_object(rsa3072, junk), type_tag=b"OBMF", trusted=trust(rsa3072), what="manifest")
        assert good.body == junk
        dec.assert_not_called()


def test_signature_is_checked_before_the_type_tag(rsa3072: rsa.RSAPrivateKey) -> None:
    calls: list[str] = []
    real_verify, real_expect = primitives.rsa_pss_verify, signed.expect_type

    def spy_verify(*a: Any) -> None:
        calls.append("signature")
        real_verify(*a)

    def spy_expect(*a: Any) -> None:
        calls.append("type tag")
        real_expect(*a)

    with (
        mock.patch.object(signing, "rsa_pss_verify", spy_verify),
        mock.patch.object(signed, "expect_type", spy_expect),
    ):
        verify(sign_object(rsa3072, BODY), type_tag=b"OBMF", trusted=trust(rsa3072), what="manifest")
    assert calls == ["signature", "type tag"]


@pytest.mark.parametrize("salt", [0, 20, padding.PSS.MAX_LENGTH])
def test_other_pss_salt_lengths_are_refused(rsa3072: rsa.RSAPrivateKey, salt: Any) -> None:
    pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=salt)
    sig = rsa3072.sign(BODY, pss, hashes.SHA256())
    data = signed.encode(signed.SignedObject(public_key_id(rsa3072.public_key()), BODY, sig))
    with pytest.raises(IntegrityError):
        verify(data, type_tag=b"OBMF", trusted=trust(rsa3072), what="manifest")


def test_pkcs1v15_signature_is_refused(rsa3072: rsa.RSAPrivateKey) -> None:
    sig = rsa3072.sign(BODY, padding.PKCS1v15(), hashes.SHA256())
    data = signed.encode(signed.SignedObject(public_key_id(rsa3072.public_key()), BODY, sig))
    with pytest.raises(IntegrityError):
        verify(data, type_tag=b"OBMF", trusted=trust(rsa3072), what="manifest")


def vector_key() -> dict[bytes, rsa.RSAPublicKey]:
    key = serialization.load_pem_public_key(SIGNED["key"]["public_pem"].encode())
    assert isinstance(key, rsa.RSAPublicKey)
    assert public_key_id(key).hex() == SIGNED["key"]["key_id"]
    return {public_key_id(key): key}


def test_golden_vector_verifies_known_answer() -> None:
    for v in SIGNED["good"]:
        obj = verify(bytes.fromhex(v["hex"]), type_tag=v["type_tag"].encode(), trusted=vector_key(), what="x")
        assert obj.body.hex() == v["body"]


def test_golden_private_key_matches_public_key() -> None:
    priv = serialization.load_pem_private_key(SIGNED["key"]["private_pem"].encode(), password=None)
    assert isinstance(priv, rsa.RSAPrivateKey)
    assert priv.key_size == 3072
    assert public_key_id(priv.public_key()).hex() == SIGNED["key"]["key_id"]


ERRORS = {"FormatError": FormatError, "IntegrityError": IntegrityError, "WrongKeyError": WrongKeyError}


@pytest.mark.parametrize("vector", SIGNED["bad"], ids=lambda v: v["name"])
def test_golden_bad_vectors_are_refused_with_their_error(vector: dict[str, str]) -> None:
    with pytest.raises(ERRORS[vector["error"]]) as exc:
        verify(bytes.fromhex(vector["hex"]), type_tag=b"OBMF", trusted=vector_key(), what="x")
    assert type(exc.value) is ERRORS[vector["error"]]
