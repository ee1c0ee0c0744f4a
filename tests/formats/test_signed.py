"""The signed-object envelope (formats/signed.py, docs/spec/signed-object.md)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from formats import signed
from formats.errors import FormatError
from formats.signed import SignedObject
from tests.conftest import load_vectors

VECTORS: Any = load_vectors("signed")

objects = st.builds(
    SignedObject,
    signer=st.binary(min_size=32, max_size=32),
    body=st.binary(min_size=4, max_size=200),
    signature=st.binary(min_size=1, max_size=512),
)


@given(objects)
def test_round_trip_and_layout(obj: SignedObject) -> None:
    data = signed.encode(obj)
    assert signed.decode(data) == obj
    # the layout of the spec: magic, version, signer, u32 body length, body, u16 sig length, sig
    n = len(obj.body)
    assert data[:6] == b"OBSO\x00\x01"
    assert data[6:38] == obj.signer
    assert int.from_bytes(data[38:42], "big") == n
    assert data[42 : 42 + n] == obj.body
    assert int.from_bytes(data[42 + n : 44 + n], "big") == len(obj.signature)
    assert data[44 + n :] == obj.signature


@given(objects)
def test_decode_then_encode_is_identity_on_valid_input(obj: SignedObject) -> None:
    raw = signed.encode(obj)
    assert signed.encode(signed.decode(raw)) == raw


@given(objects, st.integers(min_value=0))
def test_every_strict_prefix_is_refused(obj: SignedObject, cut: int) -> None:
    raw = signed.encode(obj)
    with pytest.raises(FormatError):
        signed.decode(raw[: cut % len(raw)])


@given(objects, st.binary(min_size=1, max_size=8))
def test_trailing_bytes_are_refused(obj: SignedObject, extra: bytes) -> None:
    with pytest.raises(FormatError, match="trailing"):
        signed.decode(signed.encode(obj) + extra)


def test_decode_never_parses_the_body() -> None:
    body = b"OBMF" + b"\xff" * 50  # not a valid manifest; the envelope does not care
    obj = signed.decode(signed.encode(SignedObject(bytes(32), body, b"s")))
    assert obj.body == body
    assert obj.type_tag == b"OBMF"


def test_what_names_the_object_in_errors() -> None:
    with pytest.raises(FormatError, match=r"^keyring is not recognised"):
        signed.decode(b"nope", "keyring")


@pytest.mark.parametrize(
    ("obj", "problem"),
    [
        (SignedObject(bytes(32), b"OBM", b"s"), "type tag"),
        (SignedObject(bytes(32), b"OBMF", b""), "signature length"),
        (SignedObject(bytes(32), b"OBMF", bytes(513)), "signature length"),
        (SignedObject(bytes(31), b"OBMF", b"s"), "32 bytes"),
    ],
)
def test_encode_refuses_out_of_range_fields(obj: SignedObject, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        signed.encode(obj)


def test_expect_type() -> None:
    obj = SignedObject(bytes(32), b"OBKR\x00\x01", b"s")
    signed.expect_type(obj, b"OBKR", "keyring")
    with pytest.raises(FormatError, match="expected a signed b'OBMF' object, got type tag b'OBKR'"):
        signed.expect_type(obj, b"OBMF", "manifest")


def test_golden_good_vectors_decode_to_their_fields() -> None:
    assert VECTORS["good"]
    for v in VECTORS["good"]:
        obj = signed.decode(bytes.fromhex(v["hex"]))
        assert obj.signer.hex() == v["signer"] == VECTORS["key"]["key_id"]
        assert obj.body.hex() == v["body"]
        assert obj.signature.hex() == v["signature"]
        assert obj.type_tag == v["type_tag"].encode()
        assert signed.encode(obj).hex() == v["hex"]


@pytest.mark.parametrize(
    "vector", [v for v in VECTORS["bad"] if v["stage"] == "decode"], ids=lambda v: v["name"]
)
def test_golden_bad_vectors_fail_to_decode(vector: dict[str, str]) -> None:
    assert vector["error"] == "FormatError"
    with pytest.raises(FormatError):
        signed.decode(bytes.fromhex(vector["hex"]))


@pytest.mark.parametrize(
    "vector", [v for v in VECTORS["bad"] if v["stage"] == "verify"], ids=lambda v: v["name"]
)
def test_golden_verify_stage_vectors_are_well_formed_envelopes(vector: dict[str, str]) -> None:
    # they must get past the envelope decoder so that verification is what refuses them
    signed.decode(bytes.fromhex(vector["hex"]))
