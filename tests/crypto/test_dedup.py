"""Keyed chunk ids and the chunker key (crypto/dedup.py)."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crypto.dedup import ChunkIdKey, chunk_id, chunker_key, verify_chunk_id
from crypto.primitives import hkdf_sha256
from formats.errors import IntegrityError
from tests.conftest import load_vectors

VECTORS: Any = load_vectors("pack")
SECRET = bytes.fromhex(VECTORS["dedup_secret"])


def test_derived_keys_match_vectors_and_labels() -> None:
    assert chunker_key(SECRET).hex() == VECTORS["chunker_key"]
    assert hkdf_sha256(SECRET, b"chunk-id").hex() == VECTORS["chunk_id_key"]
    assert chunker_key(SECRET) == hkdf_sha256(SECRET, b"chunker")
    assert VECTORS["chunker_key"] != VECTORS["chunk_id_key"]


def test_chunk_ids_of_the_pack_vector() -> None:
    key = ChunkIdKey(SECRET)
    mac_key = bytes.fromhex(VECTORS["chunk_id_key"])
    for e in VECTORS["good"]["entries"]:
        if e["obj_type"] != 1:
            continue
        content = bytes.fromhex(e["content"])
        expected = hmac.new(mac_key, content, hashlib.sha256).hexdigest()
        assert e["object_id"] == expected == key.chunk_id(content).hex() == chunk_id(key, content).hex()
        verify_chunk_id(key, content, bytes.fromhex(expected))


@settings(max_examples=40)
@given(st.binary(max_size=200), st.data())
def test_verify_detects_any_change(content: bytes, data: st.DataObject) -> None:
    key = ChunkIdKey(SECRET)
    cid = key.chunk_id(content)
    key.verify(content, cid)
    bad_id = bytearray(cid)
    bad_id[data.draw(st.integers(0, 31))] ^= 1
    with pytest.raises(IntegrityError, match="chunk id"):
        verify_chunk_id(key, content, bytes(bad_id))
    altered = content + b"\x00" if not content else content[:-1] + bytes([content[-1] ^ 1])
    with pytest.raises(IntegrityError):
        key.verify(altered, cid)
    with pytest.raises(IntegrityError):
        key.verify(content, cid[:31])


def test_ids_depend_on_the_secret() -> None:
    other = ChunkIdKey(bytes(32))
    assert ChunkIdKey(SECRET).chunk_id(b"x") != other.chunk_id(b"x")
    assert ChunkIdKey(SECRET).chunk_id(b"x") != hashlib.sha256(b"x").digest()
    with pytest.raises(IntegrityError):
        other.verify(b"x", ChunkIdKey(SECRET).chunk_id(b"x"))


def test_secret_must_be_32_bytes() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        ChunkIdKey(bytes(31))
    with pytest.raises(ValueError, match="32 bytes"):
        chunker_key(bytes(33))
    assert repr(ChunkIdKey(SECRET)) == "ChunkIdKey(...)"
