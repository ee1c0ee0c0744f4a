"""Sealed-object layout, AAD and chunk envelope (formats/sealed.py, docs/spec/sealed-object.md)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from formats import errors, sealed
from formats.errors import FormatError
from formats.sealed import ChunkPayload, Compression, ObjectType, SealedObject
from tests.conftest import load_vectors

VECTORS: Any = load_vectors("sealed")


def test_sizes() -> None:
    assert sealed.OVERHEAD == 60
    assert sealed.AAD_SIZE == 55
    assert sealed.MAX_SEALED == sealed.MAX_PLAINTEXT + 60
    assert [t.value for t in ObjectType] == [1, 2, 3, 4]


@pytest.mark.parametrize("v", VECTORS["good"], ids=lambda v: v["name"])
def test_aad_vectors(v: dict[str, Any]) -> None:
    got = sealed.aad(ObjectType(v["obj_type"]), bytes.fromhex(v["backup_id"]), bytes.fromhex(v["object_id"]))
    assert got.hex() == v["aad"]
    assert got[:7] == b"OBAD\x00\x01" + bytes([v["obj_type"]])
    assert got[7:23].hex() == v["backup_id"]
    assert got[23:].hex() == v["object_id"]


def test_aad_refuses_wrong_sizes_and_types() -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        sealed.aad(ObjectType.DATA_CHUNK, bytes(15), bytes(32))
    with pytest.raises(ValueError, match="32 bytes"):
        sealed.aad(ObjectType.DATA_CHUNK, bytes(16), bytes(33))
    with pytest.raises(ValueError, match="not a valid ObjectType"):
        sealed.aad(9, bytes(16), bytes(32))  # type: ignore[arg-type]


@pytest.mark.parametrize("v", VECTORS["good"], ids=lambda v: v["name"])
def test_split_join_vectors(v: dict[str, Any]) -> None:
    data = bytes.fromhex(v["sealed"])
    parts = sealed.split(data)
    assert parts.nonce.hex() == v["nonce"]
    assert parts.commitment.hex() == VECTORS["commitment"]
    assert len(parts.ciphertext) == len(bytes.fromhex(v["plaintext"]))
    assert len(parts.tag) == 16
    assert sealed.join(parts) == data


@pytest.mark.parametrize("v", VECTORS["bad_split"], ids=lambda v: v["name"])
def test_split_bad_vectors(v: dict[str, Any]) -> None:
    with pytest.raises(getattr(errors, v["error"])):
        sealed.split(bytes.fromhex(v["hex"]))


@settings(max_examples=60)
@given(st.binary(min_size=60, max_size=300))
def test_split_join_roundtrip(data: bytes) -> None:
    parts = sealed.split(data)
    assert (parts.nonce, parts.commitment, parts.tag) == (data[:12], data[12:44], data[-16:])
    assert sealed.join(parts) == data


@given(st.binary(max_size=59))
def test_split_refuses_short(data: bytes) -> None:
    with pytest.raises(FormatError, match="shorter"):
        sealed.split(data)


def test_split_refuses_oversized() -> None:
    with pytest.raises(FormatError, match="exceeds"):
        sealed.split(bytes(sealed.MAX_SEALED + 1))
    assert len(sealed.split(bytes(sealed.MAX_SEALED)).ciphertext) == sealed.MAX_PLAINTEXT


@pytest.mark.parametrize(
    ("nonce", "commitment", "tag"),
    [(bytes(11), bytes(32), bytes(16)), (bytes(12), bytes(31), bytes(16)), (bytes(12), bytes(32), bytes(17))],
)
def test_join_refuses_wrong_field_sizes(nonce: bytes, commitment: bytes, tag: bytes) -> None:
    with pytest.raises(ValueError, match="field must be"):
        sealed.join(SealedObject(nonce, commitment, b"x", tag))


@pytest.mark.parametrize("v", VECTORS["chunk_good"], ids=lambda v: v["hex"][:12] or "empty payload")
def test_chunk_envelope_vectors(v: dict[str, Any]) -> None:
    chunk = sealed.decode_chunk_payload(bytes.fromhex(v["hex"]))
    assert chunk == ChunkPayload(Compression(v["compression"]), bytes.fromhex(v["payload"]))
    assert sealed.encode_chunk_payload(chunk).hex() == v["hex"]


@pytest.mark.parametrize("v", VECTORS["chunk_bad"], ids=lambda v: v["name"])
def test_chunk_envelope_bad_vectors(v: dict[str, Any]) -> None:
    with pytest.raises(getattr(errors, v["error"])):
        sealed.decode_chunk_payload(bytes.fromhex(v["hex"]))


@settings(max_examples=50)
@given(st.sampled_from(list(Compression)), st.binary(max_size=200))
def test_chunk_envelope_roundtrip(compression: Compression, payload: bytes) -> None:
    data = sealed.encode_chunk_payload(ChunkPayload(compression, payload))
    assert data[0] == compression
    assert data[1:] == payload
    assert sealed.decode_chunk_payload(data) == ChunkPayload(compression, payload)


@given(st.integers(2, 255), st.binary(max_size=20))
def test_chunk_envelope_refuses_every_unknown_compression(code: int, payload: bytes) -> None:
    with pytest.raises(FormatError, match=f"unknown compression {code}"):
        sealed.decode_chunk_payload(bytes([code]) + payload)


def test_chunk_envelope_size_limit() -> None:
    with pytest.raises(ValueError, match="at most"):
        sealed.encode_chunk_payload(ChunkPayload(Compression.NONE, bytes(sealed.MAX_PLAINTEXT)))
    with pytest.raises(FormatError, match="exceeds"):
        sealed.decode_chunk_payload(bytes(sealed.MAX_PLAINTEXT + 1))


@pytest.mark.parametrize("code", [0, 5, 255])
def test_object_type_from_code_refuses_unknown(code: int) -> None:
    with pytest.raises(FormatError, match=f"unknown object type {code}"):
        sealed.object_type_from_code(code, "test object")
    assert sealed.object_type_from_code(2, "x") is ObjectType.TREE_NODE
