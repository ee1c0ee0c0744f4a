"""formats.keyfile: golden vectors, strict decoding, the checksum, and the sealing AAD."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from formats import keyfile as kf
from formats.errors import FormatError
from formats.roles import Role
from tests.conftest import load_vectors

VECTORS: dict[str, Any] = load_vectors("keyfile")
ROOT_DER = bytes.fromhex(VECTORS["root_public_der"])


@pytest.mark.parametrize("vec", VECTORS["valid"], ids=lambda v: v["name"])
def test_valid_vectors_decode_and_reencode(vec: dict[str, Any]) -> None:
    raw = bytes.fromhex(vec["hex"])
    f = kf.decode(raw)
    assert (f.role, f.label, f.kdf) == (vec["role"], vec["label"], vec["kdf"])
    assert kf.encode(f) == raw
    assert f.root_public_der == ROOT_DER
    if f.kdf is kf.Kdf.NONE and "secret" in vec:
        assert f.secret.hex() == vec["secret"]


def test_argon2_vector_layout_and_aad() -> None:
    raw = bytes.fromhex(VECTORS["valid"][0]["hex"])  # dedup secret, label "dedup"
    f = kf.decode(raw)
    n = len(ROOT_DER)  # 550: an RSA-4096 SubjectPublicKeyInfo
    # magic 4 | version 2 | role 1 | label 2+5 | root 2+n | public 2+0 | kdf 1 | m 4 | t 4 | p 1
    # | salt 16 = 44 + n: the root is inside the AAD
    assert raw[14 : 16 + n] == n.to_bytes(2, "big") + ROOT_DER
    a = 44 + n
    assert kf.sealing_aad(f) == raw[:a]
    assert raw[a : a + 12] == f.nonce
    assert raw[a + 12 : a + 14] == (48).to_bytes(2, "big")
    assert raw[a + 14 : a + 62] == f.secret
    assert len(raw) == a + 62 + 32
    assert f.params == kf.Argon2Params(8192, 1, 1, raw[a - 16 : a])


@pytest.mark.parametrize(
    "vec", [v for v in VECTORS["invalid"] if v["stage"] == "decode"], ids=lambda v: v["name"]
)
def test_invalid_vectors_are_refused_by_decode(vec: dict[str, Any]) -> None:
    with pytest.raises(FormatError) as info:
        kf.decode(bytes.fromhex(vec["hex"]))
    assert str(info.value)
    assert "\n" not in str(info.value)


@given(st.data())
def test_every_single_byte_change_is_a_format_error(data: st.DataObject) -> None:
    raw = bytes.fromhex(data.draw(st.sampled_from([v["hex"] for v in VECTORS["valid"]])))
    pos = data.draw(st.integers(0, len(raw) - 1))
    delta = data.draw(st.integers(1, 255))
    with pytest.raises(FormatError):
        kf.decode(raw[:pos] + bytes([raw[pos] ^ delta]) + raw[pos + 1 :])


@given(st.data())
def test_every_truncation_is_a_format_error(data: st.DataObject) -> None:
    raw = bytes.fromhex(data.draw(st.sampled_from([v["hex"] for v in VECTORS["valid"]])))
    with pytest.raises(FormatError):
        kf.decode(raw[: data.draw(st.integers(0, len(raw) - 1))])


params = st.builds(
    kf.Argon2Params,
    memory_kib=st.integers(kf.MIN_MEMORY_KIB, kf.MAX_MEMORY_KIB),
    iterations=st.integers(1, kf.MAX_ITERATIONS),
    lanes=st.integers(1, kf.MAX_LANES),
    salt=st.binary(min_size=16, max_size=16),
)


@st.composite
def key_files(draw: st.DrawFn) -> kf.KeyFile:
    role = draw(st.sampled_from(list(Role)))
    kdf = draw(
        st.sampled_from([kf.Kdf.ARGON2ID, kf.Kdf.NONE] if role in kf.UNPROTECTED_ROLES else [kf.Kdf.ARGON2ID])
    )
    tag = kf.TAG_SIZE if kdf is kf.Kdf.ARGON2ID else 0
    if role is Role.DEDUP:
        public, secret = b"", draw(st.binary(min_size=32 + tag, max_size=32 + tag))
    else:
        public = draw(st.binary(min_size=1, max_size=600))
        secret = draw(st.binary(min_size=1 + tag, max_size=300))
    label = draw(st.text(max_size=40))
    sealed = kdf is kf.Kdf.ARGON2ID
    root = public if role is Role.ROOT else draw(st.binary(min_size=1, max_size=600))
    return kf.KeyFile(
        role=role,
        label=label,
        root_public_der=root,
        public_der=public,
        kdf=kdf,
        params=draw(params) if sealed else None,
        nonce=draw(st.binary(min_size=12, max_size=12)) if sealed else b"",
        secret=secret,
    )


@given(key_files())
def test_round_trip(f: kf.KeyFile) -> None:
    raw = kf.encode(f)
    assert kf.decode(raw) == f
    assert kf.encode(kf.decode(raw)) == raw
    if f.kdf is kf.Kdf.ARGON2ID:
        assert raw.startswith(kf.sealing_aad(f) + f.nonce)


@given(st.binary(max_size=300))
def test_arbitrary_bytes_only_ever_raise_format_error(data: bytes) -> None:
    with pytest.raises(FormatError):  # no checksum can match by chance
        kf.decode(data)


def test_encode_refuses_files_that_break_the_rules() -> None:
    p = kf.Argon2Params(8192, 1, 1, bytes(16))
    with pytest.raises(ValueError, match="passphrase"):
        kf.encode(kf.KeyFile(Role.ROOT, "r", b"x", b"x", kf.Kdf.NONE, None, b"", b"s"))
    with pytest.raises(ValueError, match="public key field"):
        kf.encode(kf.KeyFile(Role.DEDUP, "d", b"r", b"x", kf.Kdf.NONE, None, b"", bytes(32)))
    with pytest.raises(ValueError, match="iterations"):
        kf.encode(kf.KeyFile(Role.HOST, "h", b"r", b"x", kf.Kdf.ARGON2ID,
                             kf.Argon2Params(8192, 0, 1, bytes(16)), bytes(12), bytes(20)))  # fmt: skip
    with pytest.raises(ValueError, match="secret of 32 bytes"):
        kf.encode(kf.KeyFile(Role.DEDUP, "d", b"r", b"", kf.Kdf.ARGON2ID, p, bytes(12), bytes(32)))
    with pytest.raises(ValueError, match="root key file must name its own public key"):
        kf.encode(kf.KeyFile(Role.ROOT, "r", b"other", b"x", kf.Kdf.ARGON2ID, p, bytes(12), bytes(20)))
    with pytest.raises(ValueError, match="root public key of 0 bytes"):
        kf.encode(kf.KeyFile(Role.HOST, "h", b"", b"x", kf.Kdf.NONE, None, b"", b"s"))
    with pytest.raises(ValueError, match="root public key of 2049 bytes"):
        kf.encode(kf.KeyFile(Role.HOST, "h", bytes(2049), b"x", kf.Kdf.NONE, None, b"", b"s"))


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("no root public key", "root public key is empty"),
        ("root public key above 2048 bytes", "exceeds the limit of 2048"),
        ("root key file naming another root", "root key file must name its own public key"),
    ],
)
def test_root_rules_are_named_when_decoding(name: str, message: str) -> None:
    vec = next(v for v in VECTORS["invalid"] if v["name"] == name)
    with pytest.raises(FormatError, match=message):
        kf.decode(bytes.fromhex(vec["hex"]))


def test_repr_shows_no_secret_bytes() -> None:
    f = kf.decode(bytes.fromhex(VECTORS["valid"][1]["hex"]))
    assert f.secret.hex() not in repr(f)
    assert str(f.secret) not in repr(f)
