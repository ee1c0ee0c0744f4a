"""verify_manifest (crypto/manifest_check.py): signature first, then decode, then signer == host."""

from __future__ import annotations

import dataclasses
import hashlib
import subprocess
import sys
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crypto.manifest_check import manifest_hash, verify_manifest
from crypto.primitives import public_key_id
from crypto.private import sign_object
from formats import manifest, signed
from formats.errors import FormatError, IntegrityError, OpsbackupError, WrongKeyError
from formats.manifest import Manifest
from tests.conftest import load_vectors
from tests.manifests import sample_manifest

VECTORS: Any = load_vectors("manifest")
ERRORS = {"FormatError": FormatError, "IntegrityError": IntegrityError, "WrongKeyError": WrongKeyError}


def keys(*ks: rsa.RSAPrivateKey) -> dict[bytes, rsa.RSAPublicKey]:
    return {public_key_id(k.public_key()): k.public_key() for k in ks}


def make(host: rsa.RSAPrivateKey, **change: Any) -> Manifest:
    return sample_manifest(host, **change)


@pytest.fixture(scope="module")
def signed_manifest(rsa3072: rsa.RSAPrivateKey) -> bytes:
    return sign_object(rsa3072, manifest.encode(make(rsa3072)))


def test_verifies_and_decodes(
    rsa3072: rsa.RSAPrivateKey, rsa3072_other: rsa.RSAPrivateKey, signed_manifest: bytes
) -> None:
    m = verify_manifest(signed_manifest, host_keys=keys(rsa3072, rsa3072_other))
    assert m == make(rsa3072)


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_single_byte_change_is_detected(
    rsa3072: rsa.RSAPrivateKey, rsa3072_other: rsa.RSAPrivateKey, signed_manifest: bytes, data: st.DataObject
) -> None:
    i = data.draw(st.integers(0, len(signed_manifest) - 1), label="position")
    x = data.draw(st.integers(1, 255), label="xor")
    changed = signed_manifest[:i] + bytes([signed_manifest[i] ^ x]) + signed_manifest[i + 1 :]
    with pytest.raises((FormatError, IntegrityError, WrongKeyError)):
        verify_manifest(changed, host_keys=keys(rsa3072, rsa3072_other))


def test_signed_by_another_trusted_host_is_refused(
    rsa3072: rsa.RSAPrivateKey, rsa3072_other: rsa.RSAPrivateKey
) -> None:
    # host B signs a manifest that claims to be host A's: signer != body.host_key_id
    forged = sign_object(rsa3072_other, manifest.encode(make(rsa3072)))
    with pytest.raises(IntegrityError, match=r"names host key .* but is signed by host key"):
        verify_manifest(forged, host_keys=keys(rsa3072, rsa3072_other))


def test_signed_by_an_unknown_key_is_refused(
    rsa3072: rsa.RSAPrivateKey, rsa3072_other: rsa.RSAPrivateKey
) -> None:
    data = sign_object(rsa3072_other, manifest.encode(make(rsa3072_other)))
    with pytest.raises(WrongKeyError):
        verify_manifest(data, host_keys=keys(rsa3072))


def test_revoked_host_key_is_refused(rsa3072: rsa.RSAPrivateKey, signed_manifest: bytes) -> None:
    with pytest.raises(WrongKeyError):
        verify_manifest(signed_manifest, host_keys={})


def test_edited_and_resigned_by_an_attacker_is_refused(
    rsa3072: rsa.RSAPrivateKey, rsa3072_other: rsa.RSAPrivateKey, signed_manifest: bytes
) -> None:
    body = signed.decode(signed_manifest).body
    edited = manifest.encode(dataclasses.replace(manifest.decode(body), time=1))
    # the attacker's key is not a host key of the account
    with pytest.raises(WrongKeyError):
        verify_manifest(sign_object(rsa3072_other, edited), host_keys=keys(rsa3072))
    # the edited body under the original signature (signer unchanged)
    obj = signed.decode(signed_manifest)
    spliced = signed.encode(signed.SignedObject(obj.signer, edited, obj.signature))
    with pytest.raises(IntegrityError):
        verify_manifest(spliced, host_keys=keys(rsa3072))


def test_signature_checked_before_body_is_decoded(
    rsa3072: rsa.RSAPrivateKey, monkeypatch: pytest.MonkeyPatch, signed_manifest: bytes
) -> None:
    obj = signed.decode(signed_manifest)
    bad = signed.encode(signed.SignedObject(obj.signer, b"OBMF\x00\x01" + b"\xff" * 9, obj.signature))
    monkeypatch.setattr(manifest, "decode", lambda *a: pytest.fail("decoded an unverified body"))
    with pytest.raises(IntegrityError):
        verify_manifest(bad, host_keys=keys(rsa3072))


def test_other_signed_types_are_not_manifests(rsa3072: rsa.RSAPrivateKey) -> None:
    with pytest.raises(FormatError, match="expected a signed b'OBMF' object"):
        verify_manifest(sign_object(rsa3072, b"OBKR\x00\x01whatever"), host_keys=keys(rsa3072))


def test_validly_signed_malformed_body_is_format_error(rsa3072: rsa.RSAPrivateKey) -> None:
    body = manifest.encode(make(rsa3072)) + b"\x00"
    with pytest.raises(FormatError, match="trailing"):
        verify_manifest(sign_object(rsa3072, body), host_keys=keys(rsa3072))


def test_manifest_hash_chains(rsa3072: rsa.RSAPrivateKey, signed_manifest: bytes) -> None:
    prev = manifest_hash(signed_manifest)
    assert prev == hashlib.sha256(signed_manifest).digest()
    nxt = sign_object(rsa3072, manifest.encode(make(rsa3072, previous_manifest_hash=prev)))
    assert verify_manifest(nxt, host_keys=keys(rsa3072)).previous_manifest_hash == prev


def test_module_is_public_key_only() -> None:
    # in a fresh interpreter (this one has crypto.private loaded by conftest)
    code = (
        "import sys, crypto.manifest_check; "
        "print(sorted(m for m in sys.modules if m in ('crypto.private', 'crypto.keyfile')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def vector_keys() -> dict[bytes, rsa.RSAPublicKey]:
    key = serialization.load_pem_public_key(VECTORS["key"]["public_pem"].encode())
    assert isinstance(key, rsa.RSAPublicKey)
    return {public_key_id(key): key}


@pytest.mark.parametrize("vector", VECTORS["good"], ids=lambda v: v["name"])
def test_golden_signed_manifests_verify(vector: dict[str, Any]) -> None:
    m = verify_manifest(bytes.fromhex(vector["signed"]), host_keys=vector_keys())
    assert manifest.encode(m).hex() == vector["body"]
    assert m.host_key_id.hex() == VECTORS["key"]["key_id"]


@pytest.mark.parametrize("vector", VECTORS["bad_signed"], ids=lambda v: v["name"])
def test_golden_bad_signed_manifests_are_refused(vector: dict[str, str]) -> None:
    with pytest.raises(OpsbackupError) as exc:
        verify_manifest(bytes.fromhex(vector["signed"]), host_keys=vector_keys())
    assert type(exc.value) is ERRORS[vector["error"]]
