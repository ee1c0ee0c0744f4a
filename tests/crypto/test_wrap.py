"""crypto.wrap: known-answer unwrapping, round trips, and every way a record can be misused."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crypto.primitives import public_key_id
from crypto.wrap import oaep_label, select_record, unwrap_key, wrap_key, wrap_to_recipients
from formats import errors
from formats import wrapped_key as wk
from formats.errors import FormatError, OpsbackupError, WrongKeyError, WrongRoleError
from formats.roles import Role
from tests.conftest import load_vectors

VECTORS: dict[str, Any] = load_vectors("wrapped_key")


def _pem_key(name: str) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(VECTORS["keys"][name].encode(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return key


DATA_KEY = _pem_key("data")
BROWSE_KEY = _pem_key("browse")
FIRST = VECTORS["valid"][0]


def test_label_is_exactly_the_spec_bytes() -> None:
    bid = bytes(range(16))
    assert oaep_label(Role.DATA, bid) == b"opsbackup/v1/wrap/\x02" + bid
    assert oaep_label(Role.BROWSE, bid) == b"opsbackup/v1/wrap/\x03" + bid
    assert oaep_label(Role.DATA, bid).hex() == "6f70736261636b75702f76312f777261702f02" + bid.hex()
    for vec in VECTORS["valid"][:2]:
        assert oaep_label(Role(vec["role"]), bytes.fromhex(vec["backup_id"])).hex() == vec["label"]


@pytest.mark.parametrize("vec", VECTORS["valid"][:2], ids=lambda v: v["name"])
def test_known_answer_unwrap(vec: dict[str, Any]) -> None:
    rec = wk.decode(bytes.fromhex(vec["hex"]))
    key = _pem_key(vec["private_key"])
    assert rec.recipient_id == public_key_id(key.public_key())
    got = unwrap_key(rec, key, role=Role(vec["role"]), backup_id=bytes.fromhex(vec["backup_id"]))
    assert got.hex() == vec["key"]


@pytest.mark.parametrize("vec", VECTORS["unwrap_invalid"], ids=lambda v: v["name"])
def test_unwrap_invalid_vectors(vec: dict[str, Any]) -> None:
    rec = wk.decode(bytes.fromhex(vec["hex"]))
    role = Role(vec.get("expect_role", 2))
    bid = bytes.fromhex(vec.get("expect_backup_id", FIRST["backup_id"]))
    with pytest.raises(getattr(errors, vec["error"])) as info:
        unwrap_key(rec, DATA_KEY, role=role, backup_id=bid)
    assert type(info.value).__name__ == vec["error"]
    assert str(info.value)
    assert "\n" not in str(info.value)


def test_openpgp_record_cannot_be_unwrapped_with_an_rsa_key() -> None:
    rec = wk.decode(bytes.fromhex(VECTORS["valid"][2]["hex"]))
    with pytest.raises(WrongKeyError, match="OPENPGP"):
        unwrap_key(rec, DATA_KEY, role=Role.DATA, backup_id=rec.backup_id)


def test_round_trip_with_a_fresh_wrap(rsa4096: rsa.RSAPrivateKey) -> None:
    key, bid = bytes(range(32)), bytes(16)
    rec = wrap_key(key, role=Role.BROWSE, backup_id=bid, recipient=rsa4096.public_key())
    assert rec.kind is wk.RecipientKind.RSA_OAEP_SHA256
    assert rec.recipient_id == public_key_id(rsa4096.public_key())
    assert len(rec.wrapped) == 512
    again = wk.decode(wk.encode(rec))
    assert unwrap_key(again, rsa4096, role=Role.BROWSE, backup_id=bid) == key
    # the same key wrapped twice gives different bytes (OAEP is randomised)
    assert wrap_key(key, role=Role.BROWSE, backup_id=bid, recipient=rsa4096.public_key()) != rec


def test_wrong_private_key_is_wrong_key_error(rsa4096: rsa.RSAPrivateKey) -> None:
    rec = wrap_key(bytes(32), role=Role.DATA, backup_id=bytes(16), recipient=rsa4096.public_key())
    with pytest.raises(WrongKeyError, match="not for key"):
        unwrap_key(rec, DATA_KEY, role=Role.DATA, backup_id=bytes(16))


def test_recipient_of_the_wrong_size_is_refused(rsa3072: rsa.RSAPrivateKey) -> None:
    with pytest.raises(WrongRoleError, match="RSA-4096"):
        wrap_key(bytes(32), role=Role.DATA, backup_id=bytes(16), recipient=rsa3072.public_key())


@pytest.mark.parametrize(("key", "bid", "role"), [(bytes(31), bytes(16), Role.DATA),
                                                  (bytes(32), bytes(15), Role.DATA),
                                                  (bytes(32), bytes(16), Role.HOST)])  # fmt: skip
def test_wrap_refuses_bad_arguments(key: bytes, bid: bytes, role: Role) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - programming errors are ValueError
        wrap_key(key, role=role, backup_id=bid, recipient=DATA_KEY.public_key())


def test_wrap_to_recipients_and_select(rsa4096: rsa.RSAPrivateKey) -> None:
    recipients = {public_key_id(k.public_key()): k.public_key() for k in (rsa4096, DATA_KEY)}
    key, bid = bytes(range(32)), bytes(range(16))
    recs = wrap_to_recipients(key, role=Role.DATA, backup_id=bid, recipients=recipients)
    assert [r.recipient_id for r in recs] == sorted(recipients)
    for priv in (rsa4096, DATA_KEY):
        rec = select_record(recs, public_key_id(priv.public_key()), role=Role.DATA)
        assert unwrap_key(rec, priv, role=Role.DATA, backup_id=bid) == key
    with pytest.raises(WrongKeyError, match="not a browse recipient"):
        select_record(recs, public_key_id(DATA_KEY.public_key()), role=Role.BROWSE)
    with pytest.raises(WrongKeyError, match="not a data recipient"):
        select_record(recs, public_key_id(BROWSE_KEY.public_key()), role=Role.DATA)
    with pytest.raises(FormatError, match="twice"):
        select_record([recs[0], recs[0]], recs[0].recipient_id, role=Role.DATA)


def test_wrap_to_recipients_refuses_no_recipient_and_mislabelled_ids() -> None:
    with pytest.raises(WrongKeyError, match="no active data key"):
        wrap_to_recipients(bytes(32), role=Role.DATA, backup_id=bytes(16), recipients={})
    with pytest.raises(ValueError, match="does not match"):
        wrap_to_recipients(
            bytes(32), role=Role.DATA, backup_id=bytes(16), recipients={bytes(32): DATA_KEY.public_key()}
        )


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(pos=st.integers(0, 569), delta=st.integers(1, 255))
def test_any_single_byte_change_of_a_record_is_detected(pos: int, delta: int) -> None:
    raw = bytearray.fromhex(FIRST["hex"])
    raw[pos] ^= delta
    bid = bytes.fromhex(FIRST["backup_id"])
    with pytest.raises(OpsbackupError):
        unwrap_key(wk.decode(bytes(raw)), DATA_KEY, role=Role.DATA, backup_id=bid)
