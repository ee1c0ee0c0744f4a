"""Sealing and opening under a per-backup key (crypto/aead.py, docs/spec/sealed-object.md)."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import crypto.aead
from crypto.aead import NONCE_LIMIT, SealingKey
from crypto.primitives import hkdf_sha256
from formats import errors, sealed
from formats.errors import IntegrityError, NonceLimitError
from formats.sealed import ObjectType
from tests.conftest import load_vectors

VECTORS: Any = load_vectors("sealed")
KEY = bytes.fromhex(VECTORS["key"])
OTHER_KEY = bytes.fromhex(VECTORS["other_key"])
BID = bytes(range(16))
OID = bytes(range(32))
DATA = ObjectType.DATA_CHUNK

ids16 = st.binary(min_size=16, max_size=16)
ids32 = st.binary(min_size=32, max_size=32)
types = st.sampled_from(list(ObjectType))


def test_subkeys_match_the_vectors_and_the_labels() -> None:
    k = SealingKey(KEY)
    assert k.commitment.hex() == VECTORS["commitment"]
    assert k.commitment == hkdf_sha256(KEY, b"key-commitment")
    assert VECTORS["aead_key"] == hkdf_sha256(KEY, b"aead-key").hex()
    assert SealingKey(OTHER_KEY).commitment.hex() == VECTORS["other_commitment"]


@pytest.mark.parametrize("v", VECTORS["good"], ids=lambda v: v["name"])
def test_good_vectors_open_and_reseal_exactly(v: dict[str, Any]) -> None:
    k = SealingKey(KEY)
    t, bid, oid = ObjectType(v["obj_type"]), bytes.fromhex(v["backup_id"]), bytes.fromhex(v["object_id"])
    assert (
        k.open(bytes.fromhex(v["sealed"]), obj_type=t, backup_id=bid, object_id=oid).hex() == v["plaintext"]
    )
    pt = bytes.fromhex(v["plaintext"])
    resealed = k.seal_with_nonce(bytes.fromhex(v["nonce"]), pt, obj_type=t, backup_id=bid, object_id=oid)
    assert resealed.hex() == v["sealed"]


@pytest.mark.parametrize("v", VECTORS["bad_open"], ids=lambda v: v["name"])
def test_bad_vectors_fail_to_open(v: dict[str, Any]) -> None:
    with pytest.raises(getattr(errors, v["error"])):
        SealingKey(KEY).open(
            bytes.fromhex(v["sealed"]),
            obj_type=ObjectType(v["obj_type"]),
            backup_id=bytes.fromhex(v["backup_id"]),
            object_id=bytes.fromhex(v["object_id"]),
        )


@settings(max_examples=40, deadline=None)
@given(st.binary(max_size=300), types, ids16, ids32)
def test_roundtrip(plaintext: bytes, t: ObjectType, bid: bytes, oid: bytes) -> None:
    k = SealingKey(KEY)
    box = k.seal(plaintext, obj_type=t, backup_id=bid, object_id=oid)
    assert len(box) == len(plaintext) + sealed.OVERHEAD
    assert box[12:44] == k.commitment
    assert k.open(box, obj_type=t, backup_id=bid, object_id=oid) == plaintext


@settings(max_examples=40, deadline=None)
@given(st.binary(max_size=64), types, types, ids16, ids16, ids32, ids32)
def test_moving_to_another_type_backup_or_slot_fails(
    plaintext: bytes, t: ObjectType, t2: ObjectType, bid: bytes, bid2: bytes, oid: bytes, oid2: bytes
) -> None:
    k = SealingKey(KEY)
    box = k.seal(plaintext, obj_type=t, backup_id=bid, object_id=oid)
    for moved in ((t2, bid, oid), (t, bid2, oid), (t, bid, oid2)):
        if moved == (t, bid, oid):
            continue
        with pytest.raises(IntegrityError):
            k.open(box, obj_type=moved[0], backup_id=moved[1], object_id=moved[2])


@settings(max_examples=30, deadline=None)
@given(st.binary(max_size=64), st.data())
def test_any_flipped_byte_fails(plaintext: bytes, data: st.DataObject) -> None:
    k = SealingKey(KEY)
    box = bytearray(k.seal(plaintext, obj_type=DATA, backup_id=BID, object_id=OID))
    box[data.draw(st.integers(0, len(box) - 1))] ^= data.draw(st.integers(1, 255))
    with pytest.raises(IntegrityError):
        k.open(bytes(box), obj_type=DATA, backup_id=BID, object_id=OID)


def test_wrong_key_is_integrity_error() -> None:
    box = SealingKey(KEY).seal(b"secret", obj_type=DATA, backup_id=BID, object_id=OID)
    with pytest.raises(IntegrityError, match="another key"):
        SealingKey(OTHER_KEY).open(box, obj_type=DATA, backup_id=BID, object_id=OID)


def test_commitment_is_checked_before_gcm(monkeypatch: pytest.MonkeyPatch) -> None:
    box = SealingKey(OTHER_KEY).seal(b"secret", obj_type=DATA, backup_id=BID, object_id=OID)
    calls: list[bytes] = []

    def spy(key: bytes, nonce: bytes, ciphertext: bytes, aad: bytes) -> bytes:
        calls.append(nonce)
        return b""

    monkeypatch.setattr(crypto.aead, "aes_gcm_decrypt", spy)
    with pytest.raises(IntegrityError, match="commitment"):
        SealingKey(KEY).open(box, obj_type=DATA, backup_id=BID, object_id=OID)
    assert calls == []


@pytest.mark.parametrize("size", [0, 1, 59])
def test_malformed_length_is_integrity_error(size: int) -> None:
    with pytest.raises(IntegrityError, match="shorter"):
        SealingKey(KEY).open(bytes(size), obj_type=DATA, backup_id=BID, object_id=OID)


def test_nonces_are_random_and_fresh() -> None:
    k = SealingKey(KEY)
    boxes = [k.seal(b"same", obj_type=DATA, backup_id=BID, object_id=OID) for _ in range(50)]
    assert len({b[:12] for b in boxes}) == 50
    assert len(set(boxes)) == 50


def test_nonce_limit_is_enforced() -> None:
    assert NONCE_LIMIT == 2**28
    k = SealingKey(KEY, max_encryptions=3)
    boxes = [k.seal(bytes([i]), obj_type=DATA, backup_id=BID, object_id=OID) for i in range(2)]
    k.seal_with_nonce(bytes(12), b"x", obj_type=DATA, backup_id=BID, object_id=OID)  # counts too
    assert k.encryptions == 3
    with pytest.raises(NonceLimitError, match="limit"):
        k.seal(b"one too many", obj_type=DATA, backup_id=BID, object_id=OID)
    with pytest.raises(NonceLimitError):
        k.seal_with_nonce(bytes(12), b"x", obj_type=DATA, backup_id=BID, object_id=OID)
    assert k.encryptions == 3
    assert k.open(boxes[1], obj_type=DATA, backup_id=BID, object_id=OID) == b"\x01"  # opening is free


def test_nonce_counter_is_thread_safe() -> None:
    k = SealingKey(KEY, max_encryptions=400)
    ok: list[int] = []
    refused: list[int] = []

    def work() -> None:
        for _ in range(100):
            try:
                k.seal(b"x", obj_type=DATA, backup_id=BID, object_id=OID)
                ok.append(1)
            except NonceLimitError:
                refused.append(1)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert (len(ok), len(refused), k.encryptions) == (400, 400, 400)


def test_generate_uses_fresh_keys() -> None:
    key1, k1 = SealingKey.generate()
    key2, k2 = SealingKey.generate(max_encryptions=1)
    assert len(key1) == 32
    assert key1 != key2
    assert k1.commitment == SealingKey(key1).commitment != k2.commitment
    box = k1.seal(b"data", obj_type=DATA, backup_id=BID, object_id=OID)
    assert SealingKey(key1).open(box, obj_type=DATA, backup_id=BID, object_id=OID) == b"data"


def test_verify_commitment() -> None:
    k = SealingKey(KEY)
    k.verify_commitment(bytes.fromhex(VECTORS["commitment"]))
    with pytest.raises(IntegrityError, match="commitment"):
        k.verify_commitment(bytes.fromhex(VECTORS["other_commitment"]))


def test_repr_does_not_leak_key_material() -> None:
    text = repr(SealingKey(KEY))
    assert KEY.hex()[:16] not in text
    assert hkdf_sha256(KEY, b"aead-key").hex()[:16] not in text


def test_argument_checks() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        SealingKey(bytes(16))
    with pytest.raises(ValueError, match="max_encryptions"):
        SealingKey(KEY, max_encryptions=NONCE_LIMIT + 1)
    with pytest.raises(ValueError, match="at most"):
        SealingKey(KEY).seal(bytes(sealed.MAX_PLAINTEXT + 1), obj_type=DATA, backup_id=BID, object_id=OID)
