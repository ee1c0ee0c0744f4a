"""Interop with the openssl command line, following only docs/spec/signed-object.md.

The envelope is taken apart (and put together) by the offsets of the spec, in this file, without
``formats.signed``: so this checks the spec as much as the code. openssl must accept opsbackup's
signatures with exactly RSA-PSS / SHA-256 / MGF1-SHA-256 / salt 32, and opsbackup must accept
openssl's.
"""

from __future__ import annotations

import dataclasses
import hashlib
import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from crypto.manifest_check import verify_manifest
from crypto.primitives import public_key_id
from crypto.private import sign_object
from crypto.signing import verify
from formats import manifest
from formats.errors import IntegrityError
from formats.manifest import Manifest
from tests.manifests import SAMPLE_PACK, sample_manifest, sample_objects

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")

PSS_OPTS = [
    "-sigopt", "rsa_padding_mode:pss",
    "-sigopt", "rsa_pss_saltlen:32",
    "-sigopt", "rsa_mgf1_md:sha256",
]  # fmt: skip


def split_envelope(data: bytes) -> tuple[bytes, bytes, bytes]:
    """(signer, body, signature) by the offsets of docs/spec/signed-object.md."""
    assert data[0:4] == b"OBSO"
    assert struct.unpack(">H", data[4:6])[0] == 1
    signer = data[6:38]
    (body_len,) = struct.unpack(">I", data[38:42])
    body = data[42 : 42 + body_len]
    (sig_len,) = struct.unpack(">H", data[42 + body_len : 44 + body_len])
    signature = data[44 + body_len : 44 + body_len + sig_len]
    assert len(data) == 44 + body_len + sig_len
    return signer, body, signature


def join_envelope(signer: bytes, body: bytes, signature: bytes) -> bytes:
    return (
        b"OBSO"
        + struct.pack(">H", 1)
        + signer
        + struct.pack(">I", len(body))
        + body
        + (struct.pack(">H", len(signature)) + signature)
    )


def a_manifest(key: rsa.RSAPrivateKey) -> Manifest:
    return sample_manifest(
        key,
        backup_id=b"B" * 16,
        account_id=b"A" * 16,
        keyring_version=1,
        objects=sample_objects((SAMPLE_PACK, 4096)),
        tags=("daily",),
    )


def write_keys(tmp: Path, key: rsa.RSAPrivateKey) -> tuple[Path, Path]:
    priv, pub = tmp / "key.pem", tmp / "pub.pem"
    priv.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    pub.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return priv, pub


def openssl_verify(tmp: Path, pub: Path, body: bytes, sig: bytes) -> subprocess.CompletedProcess[str]:
    (tmp / "body.bin").write_bytes(body)
    (tmp / "sig.bin").write_bytes(sig)
    cmd = ["openssl", "dgst", "-sha256", *PSS_OPTS, "-verify", str(pub), "-signature",
           str(tmp / "sig.bin"), str(tmp / "body.bin")]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, check=False)


def openssl_sign(tmp: Path, priv: Path, body: bytes, saltlen: int = 32) -> bytes:
    (tmp / "body.bin").write_bytes(body)
    opts = [o if o != "rsa_pss_saltlen:32" else f"rsa_pss_saltlen:{saltlen}" for o in PSS_OPTS]
    cmd = ["openssl", "dgst", "-sha256", *opts, "-sign", str(priv), "-out", str(tmp / "sig.bin"),
           str(tmp / "body.bin")]  # fmt: skip
    subprocess.run(cmd, capture_output=True, check=True)
    return (tmp / "sig.bin").read_bytes()


def test_openssl_verifies_an_opsbackup_manifest_signature(tmp_path: Path, rsa3072: rsa.RSAPrivateKey) -> None:
    _, pub = write_keys(tmp_path, rsa3072)
    data = sign_object(rsa3072, manifest.encode(a_manifest(rsa3072)))
    signer, body, sig = split_envelope(data)
    assert (
        signer
        == hashlib.sha256(
            rsa3072.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        ).digest()
    )
    assert body[:4] == b"OBMF"
    result = openssl_verify(tmp_path, pub, body, sig)
    assert result.returncode == 0, result.stderr
    assert "Verified OK" in result.stdout


def test_openssl_refuses_an_altered_body(tmp_path: Path, rsa3072: rsa.RSAPrivateKey) -> None:
    _, pub = write_keys(tmp_path, rsa3072)
    data = sign_object(rsa3072, manifest.encode(a_manifest(rsa3072)))
    _, body, sig = split_envelope(data)
    altered = body[:-1] + bytes([body[-1] ^ 1])
    assert openssl_verify(tmp_path, pub, altered, sig).returncode != 0
    # the signature covers exactly the body bytes, not the envelope around them
    assert openssl_verify(tmp_path, pub, data, sig).returncode != 0
    assert openssl_verify(tmp_path, pub, body, sig).returncode == 0


def test_openssl_signature_verifies_in_opsbackup(tmp_path: Path, rsa3072: rsa.RSAPrivateKey) -> None:
    priv, _ = write_keys(tmp_path, rsa3072)
    body = manifest.encode(a_manifest(rsa3072))
    sig = openssl_sign(tmp_path, priv, body)
    assert len(sig) == 384
    data = join_envelope(public_key_id(rsa3072.public_key()), body, sig)
    trusted = {public_key_id(rsa3072.public_key()): rsa3072.public_key()}
    assert verify(data, type_tag=b"OBMF", trusted=trusted, what="manifest").body == body
    assert verify_manifest(data, host_keys=trusted) == a_manifest(rsa3072)


def test_openssl_signature_with_another_salt_length_is_refused(
    tmp_path: Path, rsa3072: rsa.RSAPrivateKey
) -> None:
    priv, _ = write_keys(tmp_path, rsa3072)
    body = manifest.encode(dataclasses.replace(a_manifest(rsa3072), time=5))
    sig = openssl_sign(tmp_path, priv, body, saltlen=20)
    data = join_envelope(public_key_id(rsa3072.public_key()), body, sig)
    with pytest.raises(IntegrityError):
        verify_manifest(data, host_keys={public_key_id(rsa3072.public_key()): rsa3072.public_key()})
