"""Interop: OpenSSL's command line unwraps opsbackup's wrapped keys, following only the spec.

The record is sliced at the offsets in docs/spec/wrapped-key.md and the OAEP label is built from
the spec's text, not from opsbackup's code, so a drift between spec and code fails here.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from crypto.primitives import public_key_id
from crypto.wrap import unwrap_key, wrap_key
from formats import wrapped_key as wk
from formats.roles import Role
from tests.conftest import load_vectors

VECTORS: dict[str, Any] = load_vectors("wrapped_key")


def spec_label(role_code: int, backup_id: bytes) -> bytes:
    """docs/spec/wrapped-key.md: "opsbackup/v1/wrap/" (18 ASCII bytes) || u8 role || backup id."""
    return "opsbackup/v1/wrap/".encode("ascii") + role_code.to_bytes(1, "big") + backup_id


def openssl_oaep(args: list[str], key_pem: Path, label: bytes, data: bytes) -> bytes:
    done = subprocess.run(
        ["openssl", "pkeyutl", *args, "-inkey", str(key_pem),
         "-pkeyopt", "rsa_padding_mode:oaep", "-pkeyopt", "rsa_oaep_md:sha256",
         "-pkeyopt", "rsa_mgf1_md:sha256", "-pkeyopt", f"rsa_oaep_label:{label.hex()}"],
        input=data, capture_output=True, check=False, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    return done.stdout


def _write_pem(tmp_path: Path, key: rsa.RSAPrivateKey) -> Path:
    path = tmp_path / "key.pem"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    path.chmod(0o600)
    return path


def _openssl_unwrap(record: bytes, pem: Path) -> bytes:
    assert record[:4] == b"OBWK"
    assert record[4:6] == b"\x00\x01"
    role_code, backup_id = record[6], record[7:23]
    assert record[23] == 1  # recipient kind RSA-OAEP-SHA256
    length = int.from_bytes(record[56:58], "big")
    assert length == 512
    assert len(record) == 58 + length
    return openssl_oaep(["-decrypt"], pem, spec_label(role_code, backup_id), record[58:])


@pytest.mark.parametrize("role", [Role.DATA, Role.BROWSE])
def test_openssl_unwraps_a_fresh_record(tmp_path: Path, rsa4096: rsa.RSAPrivateKey, role: Role) -> None:
    key, bid = bytes(range(100, 132)), bytes(range(16))
    record = wk.encode(wrap_key(key, role=role, backup_id=bid, recipient=rsa4096.public_key()))
    assert _openssl_unwrap(record, _write_pem(tmp_path, rsa4096)) == key


def test_openssl_unwraps_the_golden_vector(tmp_path: Path) -> None:
    vec = VECTORS["valid"][0]
    pem = tmp_path / "data.pem"
    pem.write_text(VECTORS["keys"]["data"], encoding="utf-8")
    assert _openssl_unwrap(bytes.fromhex(vec["hex"]), pem).hex() == vec["key"]


def test_openssl_refuses_a_record_under_another_label(tmp_path: Path, rsa4096: rsa.RSAPrivateKey) -> None:
    record = wk.encode(
        wrap_key(bytes(32), role=Role.DATA, backup_id=bytes(16), recipient=rsa4096.public_key())
    )
    done = subprocess.run(
        ["openssl", "pkeyutl", "-decrypt", "-inkey", str(_write_pem(tmp_path, rsa4096)),
         "-pkeyopt", "rsa_padding_mode:oaep", "-pkeyopt", "rsa_oaep_md:sha256",
         "-pkeyopt", "rsa_mgf1_md:sha256", "-pkeyopt", f"rsa_oaep_label:{spec_label(3, bytes(16)).hex()}"],
        input=record[58:], capture_output=True, check=False, timeout=60,
    )  # fmt: skip
    assert done.returncode != 0


def test_opsbackup_unwraps_what_openssl_wrapped(tmp_path: Path, rsa4096: rsa.RSAPrivateKey) -> None:
    pub = tmp_path / "pub.pem"
    pub.write_bytes(
        rsa4096.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    key, bid = bytes(range(7, 39)), bytes(range(50, 66))
    wrapped = openssl_oaep(["-encrypt", "-pubin"], pub, spec_label(2, bid), key)
    record = (
        b"OBWK" + (1).to_bytes(2, "big") + bytes([2]) + bid + bytes([1])
        + public_key_id(rsa4096.public_key()) + len(wrapped).to_bytes(2, "big") + wrapped
    )  # fmt: skip
    assert unwrap_key(wk.decode(record), rsa4096, role=Role.DATA, backup_id=bid) == key
