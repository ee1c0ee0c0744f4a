"""Keyed FastCDC: native and reference agree, chunks tile the stream, boundaries resynchronise."""

from __future__ import annotations

import hashlib
import io
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opsbackup.chunking import Chunker, ChunkerParams, gear_table, native_available
from tests.conftest import load_vectors

SMALL = ChunkerParams(min_size=256, avg_bits=10, max_size=4096)
TABLE = gear_table(b"\x01" * 32)


def _data(n: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(n)


def _chunks(data: bytes, *, native: bool, params: ChunkerParams = SMALL, table: bytes = TABLE) -> list[bytes]:
    return list(Chunker(table, params, native=native).chunks(io.BytesIO(data), read_size=1000))


def test_native_extension_is_built() -> None:
    # CI builds the extension; a silent fallback to the slow reference would hide a build failure.
    assert native_available()


@settings(max_examples=40, deadline=None)
@given(st.binary(max_size=20_000), st.integers(min_value=1, max_value=9000))
def test_native_matches_reference_and_tiles_the_stream(data: bytes, read_size: int) -> None:
    native = list(Chunker(TABLE, SMALL, native=True).chunks(io.BytesIO(data), read_size=read_size))
    reference = _chunks(data, native=False)
    assert native == reference
    assert b"".join(native) == data
    assert all(len(c) <= SMALL.max_size for c in native)
    assert all(len(c) >= SMALL.min_size for c in native[:-1])


def test_native_matches_reference_on_structured_data() -> None:
    data = b"".join(b"line %d of a log file\n" % i for i in range(3000)) + b"\x00" * 9000
    assert _chunks(data, native=True) == _chunks(data, native=False)


def test_average_size_near_target() -> None:
    chunks = _chunks(_data(400_000, 1), native=True)
    mean = sum(map(len, chunks)) / len(chunks)
    assert 700 < mean < 2000  # 2**10 = 1024 average, clipped by min 256


def test_boundaries_resynchronise_after_an_insertion() -> None:
    data = _data(200_000, 2)
    edited = data[:50_000] + b"inserted bytes" + data[50_000:]
    before = set(_chunks(data, native=True))
    after = _chunks(edited, native=True)
    shared = sum(len(c) for c in after if c in before)
    assert shared > 0.9 * len(data)


def test_boundaries_depend_on_the_key() -> None:
    data = _data(100_000, 3)
    a = [len(c) for c in _chunks(data, native=True)]
    b = [len(c) for c in _chunks(data, native=True, table=gear_table(b"\x02" * 32))]
    assert a != b


def test_default_params_on_a_large_stream() -> None:
    data = _data(24 * 1024 * 1024, 4)
    chunks = list(Chunker(TABLE).chunks(io.BytesIO(data)))
    assert b"".join(chunks) == data
    assert all(512 * 1024 <= len(c) <= 8 * 1024 * 1024 for c in chunks[:-1])


@pytest.mark.parametrize(
    ("min_size", "avg_bits", "max_size"), [(10, 10, 4096), (2048, 10, 4096), (256, 10, 1024)]
)
def test_bad_params_refused(min_size: int, avg_bits: int, max_size: int) -> None:
    with pytest.raises(ValueError, match="chunker sizes"):
        ChunkerParams(min_size=min_size, avg_bits=avg_bits, max_size=max_size)


def test_bad_table_refused() -> None:
    with pytest.raises(ValueError, match="2048"):
        Chunker(b"short")


def _sha256_stream(n: int) -> bytes:
    out = bytearray()
    i = 0
    while len(out) < n:
        out += hashlib.sha256(i.to_bytes(8, "big")).digest()
        i += 1
    return bytes(out[:n])


def test_golden_vectors_boundaries_are_stable() -> None:
    # Changing the chunker changes every chunk id and breaks deduplication with earlier backups:
    # these lengths must never change within format version 1.
    vec = load_vectors("chunker")
    table = gear_table(bytes.fromhex(vec["chunker_key"]))
    assert hashlib.sha256(table).hexdigest() == vec["gear_table_sha256"]
    for case in vec["cases"]:
        params = ChunkerParams(case["min_size"], case["avg_bits"], case["max_size"])
        data = _sha256_stream(case["size"])
        for native in (True, False) if case["size"] < 100_000 else (True,):
            lengths = [len(c) for c in Chunker(table, params, native=native).chunks(io.BytesIO(data))]
            assert lengths == case["chunk_lengths"], (case["name"], native)
