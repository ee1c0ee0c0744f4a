"""formats.wrapped_key: golden vectors, strict decoding, canonical round trips."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from formats import wrapped_key as wk
from formats.errors import FormatError
from formats.roles import Role
from tests.conftest import load_vectors

VECTORS: dict[str, Any] = load_vectors("wrapped_key")


@pytest.mark.parametrize("vec", VECTORS["valid"], ids=lambda v: v["name"])
def test_valid_vectors_decode_and_reencode(vec: dict[str, Any]) -> None:
    raw = bytes.fromhex(vec["hex"])
    rec = wk.decode(raw)
    assert rec.role == vec["role"]
    assert rec.backup_id.hex() == vec["backup_id"]
    assert rec.kind == vec["kind"]
    assert rec.recipient_id.hex() == vec["recipient_id"]
    assert wk.encode(rec) == raw


def test_rsa_record_is_570_bytes_with_wrapped_at_offset_58() -> None:
    raw = bytes.fromhex(VECTORS["valid"][0]["hex"])
    assert len(raw) == 570
    assert raw[56:58] == (512).to_bytes(2, "big")
    assert wk.decode(raw).wrapped == raw[58:]


@pytest.mark.parametrize("vec", VECTORS["invalid"], ids=lambda v: v["name"])
def test_invalid_vectors_are_format_errors(vec: dict[str, Any]) -> None:
    assert vec["error"] == "FormatError"
    with pytest.raises(FormatError) as info:
        wk.decode(bytes.fromhex(vec["hex"]))
    assert "\n" not in str(info.value)
    assert str(info.value)


records = st.builds(
    wk.WrappedKey,
    role=st.sampled_from([Role.DATA, Role.BROWSE]),
    backup_id=st.binary(min_size=16, max_size=16),
    kind=st.just(wk.RecipientKind.RSA_OAEP_SHA256),
    recipient_id=st.binary(min_size=32, max_size=32),
    wrapped=st.binary(min_size=512, max_size=512),
) | st.builds(
    wk.WrappedKey,
    role=st.sampled_from([Role.DATA, Role.BROWSE]),
    backup_id=st.binary(min_size=16, max_size=16),
    kind=st.just(wk.RecipientKind.OPENPGP),
    recipient_id=st.binary(min_size=32, max_size=32),
    wrapped=st.binary(min_size=1, max_size=600),
)


@given(records)
def test_encode_decode_round_trip(rec: wk.WrappedKey) -> None:
    raw = wk.encode(rec)
    assert wk.decode(raw) == rec
    assert wk.encode(wk.decode(raw)) == raw


@given(st.binary(max_size=700))
def test_arbitrary_bytes_decode_strictly_or_raise_format_error(data: bytes) -> None:
    try:
        rec = wk.decode(data)
    except FormatError:
        return
    assert wk.encode(rec) == data


@given(st.data())
def test_any_single_byte_change_is_refused_or_changes_a_field(data: st.DataObject) -> None:
    raw = bytes.fromhex(VECTORS["valid"][0]["hex"])
    original = wk.decode(raw)
    pos = data.draw(st.integers(0, len(raw) - 1))
    delta = data.draw(st.integers(1, 255))
    bad = raw[:pos] + bytes([raw[pos] ^ delta]) + raw[pos + 1 :]
    try:
        rec = wk.decode(bad)
    except FormatError:
        return
    assert rec != original  # a field changed: the crypto layer refuses it (tests/crypto/test_wrap.py)


@pytest.mark.parametrize(
    "change",
    [
        {"role": Role.ROOT},
        {"role": Role.DEDUP},
        {"wrapped": bytes(511)},
        {"backup_id": bytes(15)},
        {"recipient_id": bytes(33)},
        {"kind": wk.RecipientKind.OPENPGP, "wrapped": b""},
    ],
    ids=str,
)
def test_encode_refuses_invalid_records(change: dict[str, Any]) -> None:
    fields: dict[str, Any] = {
        "role": Role.DATA,
        "backup_id": bytes(16),
        "kind": wk.RecipientKind.RSA_OAEP_SHA256,
        "recipient_id": bytes(32),
        "wrapped": bytes(512),
    }
    with pytest.raises(ValueError):  # noqa: PT011 - encode's contract is a plain ValueError
        wk.encode(wk.WrappedKey(**{**fields, **change}))


def test_read_leaves_following_bytes_for_the_embedding_format() -> None:
    from formats._wire import Reader

    raw = bytes.fromhex(VECTORS["valid"][0]["hex"])
    r = Reader(raw + b"next", "list")
    assert wk.read(r) == wk.decode(raw)
    assert r.take(4) == b"next"
