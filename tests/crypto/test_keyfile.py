"""crypto.keyfile: known answers, permissions, no clobbering, and a clear error for each mistake."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crypto import keyfile as ck
from crypto.primitives import public_key_der, public_key_id
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
_ROOT_KEY = serialization.load_pem_private_key(VECTORS["keys"]["root"].encode(), password=None)
assert isinstance(_ROOT_KEY, rsa.RSAPrivateKey)
#: The account root every vector key file names (RSA-4096, made deterministically for the vectors).
ROOT = _ROOT_KEY.public_key()
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
    assert public_key_der(key.root_public_key) == public_key_der(ROOT)


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
    ck.save_key(path, ck.generate_key(Role.DEDUP, label="dedup"), "right", cost=FAST, root_public_key=ROOT)
    with pytest.raises(WrongPassphraseError) as info:
        ck.load_key(path, "wrong")
    assert _one_line(info.value) == f"wrong passphrase for key file {path}"


def test_two_threads_can_open_key_files_at_once(tmp_path: Path) -> None:
    """Argon2id with 4 lanes deadlocked when two threads derived at once; derivation is serialised."""
    cost = ck.KdfCost(memory_kib=fmt.MIN_MEMORY_KIB, iterations=1, lanes=4)
    paths = [tmp_path / f"dedup{i}.key" for i in range(2)]
    for path in paths:
        ck.save_key(path, ck.generate_key(Role.DEDUP, label="dedup"), "pw", cost=cost, root_public_key=ROOT)
    loaded: list[bytes] = []
    threads = [
        threading.Thread(target=lambda p=p: loaded.append(ck.load_key(p, "pw").secret), daemon=True)
        for p in paths
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "key derivation deadlocked"
    assert len(loaded) == 2


def test_truncated_key_file_is_format_error(tmp_path: Path) -> None:
    path = tmp_path / "dedup.key"
    ck.save_key(path, ck.generate_key(Role.DEDUP, label="dedup"), "pw", cost=FAST, root_public_key=ROOT)
    _put(path, path.read_bytes()[:-10])
    with pytest.raises(FormatError) as info:
        ck.load_key(path, "pw")
    assert "corrupt" in _one_line(info.value)


def test_wrong_role_names_both_roles(tmp_path: Path, rsa3072: rsa.RSAPrivateKey) -> None:
    path = tmp_path / "host.key"
    ck.save_key(path, ck.PrivateKey(Role.HOST, "web-1", rsa_key=rsa3072), None, root_public_key=ROOT)
    with pytest.raises(WrongRoleError) as info:
        ck.load_key(path, None, expect_role=Role.ROOT)
    assert _one_line(info.value) == f"key file {path} holds a host key; a root key is needed"
    with pytest.raises(WrongRoleError):
        ck.load_public(path, expect_role=Role.DELETION)


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o620, 0o644, 0o660])
def test_group_or_other_access_is_refused(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "dedup.key"
    ck.save_key(path, ck.generate_key(Role.DEDUP, label="d"), None, root_public_key=ROOT)
    path.chmod(mode)
    with pytest.raises(KeyPermissionError) as info:
        ck.load_key(path, None)
    assert f"`chmod 600 {path}`" in _one_line(info.value)


def test_written_with_mode_0600_even_with_an_open_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        ck.save_key(
            tmp_path / "k", ck.generate_key(Role.DEDUP, label="d"), "pw", cost=FAST, root_public_key=ROOT
        )
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "k").stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["k"]  # no temporary file left behind


def test_never_clobbers_an_existing_key(tmp_path: Path) -> None:
    path = tmp_path / "k"
    first = ck.generate_key(Role.DEDUP, label="first")
    ck.save_key(path, first, None, root_public_key=ROOT)
    before = path.read_bytes()
    with pytest.raises(LocalIOError) as info:
        ck.save_key(path, ck.generate_key(Role.DEDUP, label="second"), None, root_public_key=ROOT)
    assert "already exists" in _one_line(info.value)
    assert path.read_bytes() == before
    ck.save_key(path, ck.generate_key(Role.DEDUP, label="third"), None, overwrite=True, root_public_key=ROOT)
    assert ck.load_key(path, None).label == "third"


def test_rsa_round_trip_and_public_half_without_passphrase(
    tmp_path: Path, rsa4096: rsa.RSAPrivateKey
) -> None:
    path = tmp_path / "data.key"
    ck.save_key(
        path, ck.PrivateKey(Role.DATA, "data 2024", rsa_key=rsa4096), "pw", cost=FAST, root_public_key=ROOT
    )
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
    ck.save_key(path, key, "old", cost=FAST, root_public_key=ROOT)
    ck.change_passphrase(path, "old", "new", cost=FAST)
    with pytest.raises(WrongPassphraseError):
        ck.load_key(path, "old")
    assert ck.load_key(path, "new").secret == key.secret
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    ck.change_passphrase(path, "new", None)  # dedup secret may become unattended
    assert fmt.decode(path.read_bytes()).kdf is fmt.Kdf.NONE


def test_passphrase_is_unicode_normalised(tmp_path: Path) -> None:
    path = tmp_path / "k"
    ck.save_key(path, ck.generate_key(Role.DEDUP, label="d"), "caf\u00e9", cost=FAST, root_public_key=ROOT)
    assert ck.load_key(path, "cafe\u0301").role is Role.DEDUP


def test_defaults_are_rfc9106_second_recommendation(tmp_path: Path) -> None:
    assert ck.KdfCost(memory_kib=65536, iterations=3, lanes=4) == ck.DEFAULT_PARAMS
    ck.save_key(tmp_path / "k", ck.generate_key(Role.DEDUP, label="d"), "pw", root_public_key=ROOT)
    p = fmt.decode((tmp_path / "k").read_bytes()).params
    assert p is not None
    assert (p.memory_kib, p.iterations, p.lanes) == (65536, 3, 4)


def test_unprotected_keys_only_for_hosts_and_dedup(tmp_path: Path, rsa4096: rsa.RSAPrivateKey) -> None:
    with pytest.raises(UsageError, match="passphrase"):
        ck.save_key(
            tmp_path / "root",
            ck.PrivateKey(Role.ROOT, "root", rsa_key=rsa4096),
            None,
            root_public_key=rsa4096.public_key(),
        )
    with pytest.raises(UsageError, match="empty passphrase"):
        ck.save_key(
            tmp_path / "root",
            ck.PrivateKey(Role.ROOT, "root", rsa_key=rsa4096),
            "",
            cost=FAST,
            root_public_key=rsa4096.public_key(),
        )
    assert not (tmp_path / "root").exists()


def test_key_of_the_wrong_size_for_its_role_is_not_saved(tmp_path: Path, rsa3072: rsa.RSAPrivateKey) -> None:
    with pytest.raises(WrongRoleError, match="RSA-4096"):
        ck.save_key(
            tmp_path / "k",
            ck.PrivateKey(Role.ROOT, "root", rsa_key=rsa3072),
            "pw",
            cost=FAST,
            root_public_key=ROOT,
        )


def test_missing_file_and_missing_passphrase(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError):
        ck.load_key(tmp_path / "nope", "pw")
    ck.save_key(tmp_path / "k", ck.generate_key(Role.DEDUP, label="d"), "pw", cost=FAST, root_public_key=ROOT)
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


def test_every_key_file_names_its_root(tmp_path: Path, rsa3072: rsa.RSAPrivateKey) -> None:
    host, dedup = tmp_path / "host.key", tmp_path / "dedup.key"
    ck.save_key(host, ck.PrivateKey(Role.HOST, "web-1", rsa_key=rsa3072), None, root_public_key=ROOT)
    ck.save_key(dedup, ck.generate_key(Role.DEDUP, label="d"), "pw", cost=FAST, root_public_key=ROOT)
    root_der = public_key_der(ROOT)
    assert public_key_der(ck.load_key(host, None).root_public_key) == root_der
    assert public_key_der(ck.load_public(host).root_public_key) == root_der
    assert public_key_der(ck.load_key(dedup, "pw").root_public_key) == root_der
    assert public_key_der(ck.load_trusted_root(dedup)) == root_der
    ck.change_passphrase(dedup, "pw", "new", cost=FAST)
    assert public_key_der(ck.load_key(dedup, "new").root_public_key) == root_der


def test_a_root_key_file_names_itself(tmp_path: Path, rsa4096: rsa.RSAPrivateKey) -> None:
    path = tmp_path / "root.key"
    root = ck.PrivateKey(Role.ROOT, "root", rsa_key=rsa4096)
    with pytest.raises(ValueError, match="its own public key"):
        ck.save_key(path, root, "pw", cost=FAST, root_public_key=ROOT)
    assert not path.exists()
    ck.save_key(path, root, "pw", cost=FAST, root_public_key=rsa4096.public_key())
    loaded = ck.load_key(path, "pw", expect_role=Role.ROOT)
    assert public_key_der(loaded.root_public_key) == public_key_der(rsa4096.public_key())


def test_root_must_be_rsa_4096(tmp_path: Path, rsa3072: rsa.RSAPrivateKey) -> None:
    with pytest.raises(ValueError, match="RSA-4096"):
        ck.save_key(
            tmp_path / "k", ck.generate_key(Role.DEDUP, label="d"), None, root_public_key=rsa3072.public_key()
        )
    assert not (tmp_path / "k").exists()


def test_a_generated_key_names_no_root_until_saved() -> None:
    with pytest.raises(ValueError, match="names no root"):
        _ = ck.generate_key(Role.DEDUP, label="d").root_public_key


def _with_root(raw: bytes, new_root: bytes) -> bytes:
    """``raw`` with its root field replaced and the checksum fixed (the seal is left as it was)."""
    f = fmt.decode(raw)
    return fmt.encode(
        fmt.KeyFile(f.role, f.label, new_root, f.public_der, f.kdf, f.params, f.nonce, f.secret)
    )


def test_a_swapped_root_breaks_the_passphrase_seal(tmp_path: Path, rsa4096: rsa.RSAPrivateKey) -> None:
    path = tmp_path / "dedup.key"
    ck.save_key(path, ck.generate_key(Role.DEDUP, label="d"), "pw", cost=FAST, root_public_key=ROOT)
    _put(path, _with_root(path.read_bytes(), public_key_der(rsa4096.public_key())))
    assert public_key_der(ck.load_trusted_root(path)) == public_key_der(rsa4096.public_key())
    with pytest.raises(WrongPassphraseError):  # the root is in the AAD: a swap does not open
        ck.load_key(path, "pw")


def test_a_root_that_is_not_an_rsa_4096_key_is_refused(tmp_path: Path, rsa3072: rsa.RSAPrivateKey) -> None:
    path = tmp_path / "host.key"
    ck.save_key(path, ck.PrivateKey(Role.HOST, "web-1", rsa_key=rsa3072), None, root_public_key=ROOT)
    _put(path, _with_root(path.read_bytes(), public_key_der(rsa3072.public_key())))
    for load in (
        lambda: ck.load_key(path, None),
        lambda: ck.load_public(path),
        lambda: ck.load_trusted_root(path),
    ):
        with pytest.raises(FormatError) as info:
            load()
        assert "account root public key must be RSA-4096" in _one_line(info.value)
    _put(path, _with_root(path.read_bytes(), public_key_der(ROOT) + b"\0"))
    with pytest.raises(FormatError, match="account root public key"):
        ck.load_public(path)
