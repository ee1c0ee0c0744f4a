"""crypto.keyfile: known answers, permissions, no clobbering, and a clear error for each mistake."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crypto import keyfile as ck
from crypto.primitives import public_key_id
from formats import errors
from formats import keyfile as fmt
from formats.errors import (
    FormatError,
    KeyPermissionError,
    LocalIOError,
    NotFoundError,
    OpsbackupError,
    UsageError,
    WrongPassphraseError,
    WrongRoleError,
)
from formats.roles import Role
from tests.conftest import load_vectors

VECTORS: dict[str, Any] = load_vectors("keyfile")
PASS = VECTORS["passphrase"]
FAST = ck.TEST_PARAMS


def _put(path: Path, data: bytes, mode: int = 0o600) -> Path:
    path.write_bytes(data)
    path.chmod(mode)
    return path


def _one_line(exc: BaseException) -> str:
    text = str(exc)
    assert text
    assert "\n" not in text
    return text


@pytest.mark.parametrize("vec", VECTORS["valid"], ids=lambda v: v["name"])
def test_known_answer_load(tmp_path: Path, vec: dict[str, Any]) -> None:
    path = _put(tmp_path / "k", bytes.fromhex(vec["hex"]))
    key = ck.load_key(path, PASS, expect_role=Role(vec["role"]))
    assert key.label == vec["label"]
    if "secret" in vec:
        assert key.secret.hex() == vec["secret"]
    else:
        assert key.key_id is not None
        assert key.key_id.hex() == vec["key_id"]
        assert ck.load_public(path).key_id.hex() == vec["key_id"]


@pytest.mark.parametrize("vec", VECTORS["invalid"], ids=lambda v: v["name"])
def test_invalid_vectors_raise_their_error(tmp_path: Path, vec: dict[str, Any]) -> None:
    path = _put(tmp_path / "k", bytes.fromhex(vec["hex"]))
    expect_role = Role(vec["expect_role"]) if "expect_role" in vec else None
    with pytest.raises(getattr(errors, vec["error"])) as info:
        ck.load_key(path, vec.get("passphrase", PASS), expect_role=expect_role)
    assert type(info.value).__name__ == vec["error"]
    assert str(path) in _one_line(info.value)


def test_wrong_passphrase_is_one_clear_line(tmp_path: Path) -> None:
    path = tmp_path / "dedup.key"
    ck.save_key(path, ck.generate_key(Role.DEDUP, label="dedup"), "right", cost=FAST)
    with pytest.raises(WrongPassphraseError) as info:
        ck.load_key(path, "wrong")
    assert _one_line(info.value) == f"wrong passphrase for key file {path}"


def test_truncated_key_file_is_format_error(tmp_path: Path) -> None:
    path = tmp_path / "dedup.key"
    ck.save_key(path, ck.generate_key(Role.DEDUP, label="dedup"), "pw", cost=FAST)
    _put(path, path.read_bytes()[:-10])
    with pytest.raises(FormatError) as info:
        ck.load_key(path, "pw")
    assert "corrupt" in _one_line(info.value)


def test_wrong_role_names_both_roles(tmp_path: Path, rsa3072: rsa.RSAPrivateKey) -> None:
    path = tmp_path / "host.key"
    ck.save_key(path, ck.PrivateKey(Role.HOST, "web-1", rsa_key=rsa3072), None)
    with pytest.raises(WrongRoleError) as info:
        ck.load_key(path, None, expect_role=Role.ROOT)
    assert _one_line(info.value) == f"key file {path} holds a host key; a root key is needed"
    with pytest.raises(WrongRoleError):
        ck.load_public(path, expect_role=Role.DELETION)


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o620, 0o644, 0o660])
def test_group_or_other_access_is_refused(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "dedup.key"
    ck.save_key(path, ck.generate_key(Role.DEDUP, label="d"), None)
    path.chmod(mode)
    with pytest.raises(KeyPermissionError) as info:
        ck.load_key(path, None)
    assert f"`chmod 600 {path}`" in _one_line(info.value)


def test_written_with_mode_0600_even_with_an_open_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        ck.save_key(tmp_path / "k", ck.generate_key(Role.DEDUP, label="d"), "pw", cost=FAST)
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "k").stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["k"]  # no temporary file left behind


def test_never_clobbers_an_existing_key(tmp_path: Path) -> None:
    path = tmp_path / "k"
    first = ck.generate_key(Role.DEDUP, label="first")
    ck.save_key(path, first, None)
    before = path.read_bytes()
    with pytest.raises(LocalIOError) as info:
        ck.save_key(path, ck.generate_key(Role.DEDUP, label="second"), None)
    assert "already exists" in _one_line(info.value)
    assert path.read_bytes() == before
    ck.save_key(path, ck.generate_key(Role.DEDUP, label="third"), None, overwrite=True)
    assert ck.load_key(path, None).label == "third"


def test_rsa_round_trip_and_public_half_without_passphrase(
    tmp_path: Path, rsa4096: rsa.RSAPrivateKey
) -> None:
    path = tmp_path / "data.key"
    ck.save_key(path, ck.PrivateKey(Role.DATA, "data 2024", rsa_key=rsa4096), "pw", cost=FAST)
    loaded = ck.load_key(path, "pw", expect_role=Role.DATA)
    assert loaded.key_id == public_key_id(rsa4096.public_key())
    assert loaded.private_key.private_numbers() == rsa4096.private_numbers()
    with pytest.raises(WrongRoleError):
        _ = loaded.secret
    path.chmod(0o644)  # the public half is not secret
    pub = ck.load_public(path, expect_role=Role.DATA)
    assert (pub.role, pub.label, pub.key_id) == (Role.DATA, "data 2024", loaded.key_id)
    assert ck.import_public_pem(ck.export_public_pem(pub.public_key)).public_numbers() == (
        rsa4096.public_key().public_numbers()
    )


def test_change_passphrase(tmp_path: Path) -> None:
    path = tmp_path / "k"
    key = ck.generate_key(Role.DEDUP, label="d")
    ck.save_key(path, key, "old", cost=FAST)
    ck.change_passphrase(path, "old", "new", cost=FAST)
    with pytest.raises(WrongPassphraseError):
        ck.load_key(path, "old")
    assert ck.load_key(path, "new").secret == key.secret
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    ck.change_passphrase(path, "new", None)  # dedup secret may become unattended
    assert fmt.decode(path.read_bytes()).kdf is fmt.Kdf.NONE


def test_passphrase_is_unicode_normalised(tmp_path: Path) -> None:
    path = tmp_path / "k"
    ck.save_key(path, ck.generate_key(Role.DEDUP, label="d"), "caf\u00e9", cost=FAST)
    assert ck.load_key(path, "cafe\u0301").role is Role.DEDUP


def test_defaults_are_rfc9106_second_recommendation(tmp_path: Path) -> None:
    assert ck.KdfCost(memory_kib=65536, iterations=3, lanes=4) == ck.DEFAULT_PARAMS
    ck.save_key(tmp_path / "k", ck.generate_key(Role.DEDUP, label="d"), "pw")
    p = fmt.decode((tmp_path / "k").read_bytes()).params
    assert p is not None
    assert (p.memory_kib, p.iterations, p.lanes) == (65536, 3, 4)


def test_unprotected_keys_only_for_hosts_and_dedup(tmp_path: Path, rsa4096: rsa.RSAPrivateKey) -> None:
    with pytest.raises(UsageError, match="passphrase"):
        ck.save_key(tmp_path / "root", ck.PrivateKey(Role.ROOT, "root", rsa_key=rsa4096), None)
    with pytest.raises(UsageError, match="empty passphrase"):
        ck.save_key(tmp_path / "root", ck.PrivateKey(Role.ROOT, "root", rsa_key=rsa4096), "", cost=FAST)
    assert not (tmp_path / "root").exists()


def test_key_of_the_wrong_size_for_its_role_is_not_saved(tmp_path: Path, rsa3072: rsa.RSAPrivateKey) -> None:
    with pytest.raises(WrongRoleError, match="RSA-4096"):
        ck.save_key(tmp_path / "k", ck.PrivateKey(Role.ROOT, "root", rsa_key=rsa3072), "pw", cost=FAST)


def test_missing_file_and_missing_passphrase(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError):
        ck.load_key(tmp_path / "nope", "pw")
    ck.save_key(tmp_path / "k", ck.generate_key(Role.DEDUP, label="d"), "pw", cost=FAST)
    with pytest.raises(WrongPassphraseError, match="none was given"):
        ck.load_key(tmp_path / "k", None)


def test_import_public_pem_refuses_garbage() -> None:
    with pytest.raises(FormatError):
        ck.import_public_pem(b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")


@settings(max_examples=100, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(data=st.data())
def test_any_single_byte_change_on_disk_is_detected(tmp_path: Path, data: st.DataObject) -> None:
    vec = data.draw(st.sampled_from(VECTORS["valid"]))
    raw = bytearray.fromhex(vec["hex"])
    pos = data.draw(st.integers(0, len(raw) - 1))
    raw[pos] ^= data.draw(st.integers(1, 255))
    path = _put(tmp_path / "flipped", bytes(raw))
    with pytest.raises(OpsbackupError):
        ck.load_key(path, PASS)
