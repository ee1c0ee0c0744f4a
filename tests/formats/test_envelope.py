"""Key envelope bodies (formats/envelope.py, docs/spec/key-envelope.md): vectors, round trips, refusals."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from formats import envelope, wrapped_key
from formats.envelope import Envelope
from formats.errors import FormatError
from formats.roles import Role
from formats.wrapped_key import RecipientKind, WrappedKey
from tests.conftest import load_vectors

VECTORS: Any = load_vectors("envelope")


@pytest.mark.parametrize("vector", VECTORS["good"], ids=lambda v: v["name"])
def test_golden_good_vectors(vector: dict[str, Any]) -> None:
    env = envelope.decode(bytes.fromhex(vector["hex"]))
    assert env.account_id.hex() == vector["account_id"]
    assert env.backup_id.hex() == vector["backup_id"]
    assert env.generation == vector["generation"]
    assert env.keyring_version == vector["keyring_version"]
    assert [r.hex() for r in env.records] == vector["records"]
    assert envelope.encode(env).hex() == vector["hex"]
    assert {k.role for k in env.wrapped_keys()} == {Role.DATA, Role.BROWSE}


@pytest.mark.parametrize("vector", VECTORS["bad"], ids=lambda v: v["name"])
def test_golden_bad_vectors_fail_as_each_one_says(vector: dict[str, str]) -> None:
    assert vector["error"] == "FormatError"
    with pytest.raises(FormatError, match=vector["match"]):
        envelope.decode(bytes.fromhex(vector["hex"]))


def _record(role: Role, backup_id: bytes, recipient: bytes) -> bytes:
    return wrapped_key.encode(
        WrappedKey(role, backup_id, RecipientKind.RSA_OAEP_SHA256, recipient, recipient * 16)
    )


@st.composite
def envelopes(draw: st.DrawFn) -> Envelope:
    backup_id = draw(st.binary(min_size=16, max_size=16))
    data_ids = draw(st.sets(st.binary(min_size=32, max_size=32), min_size=1, max_size=3))
    browse_ids = draw(st.sets(st.binary(min_size=32, max_size=32), min_size=1, max_size=3))
    records = {_record(Role.DATA, backup_id, i) for i in data_ids}
    records |= {_record(Role.BROWSE, backup_id, i) for i in browse_ids}
    return Envelope(
        account_id=draw(st.binary(min_size=16, max_size=16)),
        backup_id=backup_id,
        generation=draw(st.integers(min_value=0, max_value=2**64 - 1)),
        keyring_version=draw(st.integers(min_value=1, max_value=2**64 - 1)),
        records=tuple(sorted(records)),
    )


@given(envelopes())
def test_round_trip_is_canonical(env: Envelope) -> None:
    data = envelope.encode(env)
    assert data[:6] == b"OBKE\x00\x01"
    assert envelope.decode(data) == env
    assert envelope.encode(envelope.decode(data)) == data


@given(envelopes(), st.integers(min_value=0))
def test_every_strict_prefix_is_refused(env: Envelope, cut: int) -> None:
    data = envelope.encode(env)
    with pytest.raises(FormatError):
        envelope.decode(data[: cut % len(data)])


BID = bytes(range(16))
GOOD = Envelope(
    bytes(16),
    BID,
    0,
    1,
    tuple(sorted([_record(Role.DATA, BID, b"\x01" * 32), _record(Role.BROWSE, BID, b"\x02" * 32)])),
)


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"keyring_version": 0}, "keyring version a u64 >= 1"),
        ({"generation": -1}, "generation is a u64"),
        ({"generation": 2**64}, "generation is a u64"),
        ({"records": GOOD.records[:1]}, "2 to 256 records"),
        ({"records": GOOD.records[::-1]}, "sorted"),
        ({"records": (GOOD.records[0], GOOD.records[0])}, "duplicate"),
        ({"records": (b"", GOOD.records[0])}, "1 to 8192 bytes"),
        ({"backup_id": bytes(15) + b"\x01"}, "another backup"),
        ({"account_id": bytes(15)}, "16 bytes"),
        (
            {
                "records": tuple(
                    sorted([_record(Role.DATA, BID, b"\x01" * 32), _record(Role.DATA, BID, b"\x03" * 32)])
                )
            },
            "both the data and the browse role",
        ),
    ],
)
def test_encode_refuses_what_decode_would_refuse(change: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        envelope.encode(dataclasses.replace(GOOD, **change))


def test_the_layout_is_the_spec_table() -> None:
    data = envelope.encode(dataclasses.replace(GOOD, generation=3, keyring_version=9))
    assert data[6:22] == bytes(16)
    assert data[22:38] == BID
    assert data[38:46] == (3).to_bytes(8, "big")
    assert data[46:54] == (9).to_bytes(8, "big")
    assert data[54:56] == (2).to_bytes(2, "big")
    assert data[56:58] == len(GOOD.records[0]).to_bytes(2, "big")
    assert data[58 : 58 + len(GOOD.records[0])] == GOOD.records[0]
