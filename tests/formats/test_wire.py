"""The shared strict codec (formats/_wire.py): every short, long or out-of-bound input is refused."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from formats._wire import Reader, Writer, expect_header
from formats.errors import FormatError

U64 = st.integers(min_value=0, max_value=2**64 - 1)


@given(a=st.integers(0, 0xFF), b=st.integers(0, 0xFFFF), c=st.integers(0, 2**32 - 1), d=U64)
def test_integers_round_trip_big_endian(a: int, b: int, c: int, d: int) -> None:
    data = Writer().u8(a).u16(b).u32(c).u64(d).getvalue()
    assert data == a.to_bytes(1, "big") + b.to_bytes(2, "big") + c.to_bytes(4, "big") + d.to_bytes(8, "big")
    r = Reader(data, "thing")
    assert (r.u8(), r.u16(), r.u32(), r.u64()) == (a, b, c, d)
    r.finish()


@given(
    x=st.binary(max_size=300), y=st.binary(max_size=300), z=st.binary(max_size=300), t=st.text(max_size=50)
)
def test_length_prefixed_round_trip(x: bytes, y: bytes, z: bytes, t: str) -> None:
    x = x[:255]
    data = Writer().bytes8(x).bytes16(y).bytes32(z).utf8_16(t).getvalue()
    assert data[0] == len(x)
    r = Reader(data, "thing")
    assert r.bytes8() == x
    assert r.bytes16() == y
    assert r.bytes32(1000) == z
    assert r.utf8_16() == t
    assert r.remaining == 0
    r.finish()


@given(data=st.binary(min_size=1, max_size=64), cut=st.integers(min_value=1))
def test_every_truncation_is_a_format_error(data: bytes, cut: int) -> None:
    encoded = Writer().u32(7).bytes16(data).u64(1).getvalue()
    short = encoded[: len(encoded) - 1 - cut % len(encoded)]

    def read_all() -> None:
        r = Reader(short, "thing")
        r.u32()
        r.bytes16()
        r.u64()

    with pytest.raises(FormatError, match="thing is corrupt: truncated"):
        read_all()


def test_truncation_message_names_object_sizes_and_offset() -> None:
    r = Reader(b"\x00\x01\x02", "pack index")
    r.u8()
    with pytest.raises(FormatError) as exc:
        r.u32()
    assert str(exc.value) == "pack index is corrupt: truncated (needs 4 bytes, 2 left) at offset 1"


def test_take_refuses_negative_length() -> None:
    with pytest.raises(FormatError, match="truncated"):
        Reader(b"abc", "thing").take(-1)


def test_trailing_bytes_are_an_error() -> None:
    r = Reader(b"\x00\x05xyz", "thing")
    r.u16()
    with pytest.raises(FormatError, match=r"3 trailing bytes at offset 2"):
        r.finish()


@pytest.mark.parametrize(
    ("data", "read", "limit"),
    [
        (b"\x05hello", "bytes8", 4),
        (b"\x00\x05hello", "bytes16", 4),
        (b"\x00\x00\x00\x05hello", "bytes32", 4),
        (b"\x00\x05hello", "utf8_16", 4),
    ],
)
def test_length_above_its_limit_is_refused_before_reading(data: bytes, read: str, limit: int) -> None:
    r = Reader(data, "thing")
    with pytest.raises(FormatError, match=f"length 5 exceeds the limit of {limit}"):
        getattr(r, read)(limit)
    # the whole payload is still unread: nothing past the length prefix was consumed
    assert r.remaining == 5


def test_huge_length_prefix_is_refused_without_allocating() -> None:
    r = Reader(b"\xff\xff\xff\xff" + b"x" * 10, "thing")
    with pytest.raises(FormatError, match="truncated"):
        r.bytes32(2**32)


def test_invalid_utf8_is_refused() -> None:
    with pytest.raises(FormatError, match="invalid UTF-8"):
        Reader(b"\x00\x02\xc3\x28", "thing").utf8_16()


def test_count_guard_refuses_counts_that_cannot_fit() -> None:
    r = Reader(bytes(40), "thing")
    assert r.count(4, 10) == 4
    assert r.count(0, 10) == 0
    with pytest.raises(FormatError, match="count 5 does not fit in the 40 bytes left"):
        r.count(5, 10)
    with pytest.raises(FormatError, match="does not fit"):
        r.count(2**32, 0)  # a minimum item size of 0 still counts as 1 byte


def test_expect_header_accepts_and_returns_version() -> None:
    r = Reader(b"OBXX\x00\x02rest", "thing")
    assert expect_header(r, b"OBXX", (1, 2)) == 2
    assert r.offset == 6


@pytest.mark.parametrize("data", [b"", b"OB", b"OBXY\x00\x01", b"obxx\x00\x01"])
def test_expect_header_wrong_or_missing_magic(data: bytes) -> None:
    with pytest.raises(FormatError, match=r"thing is not recognised: wrong magic bytes \(expected b'OBXX'\)"):
        expect_header(Reader(data, "thing"), b"OBXX", (1,))


def test_expect_header_unsupported_version_says_upgrade() -> None:
    with pytest.raises(FormatError, match=r"unsupported format version 3 .*reads 1, 2.*upgrade"):
        expect_header(Reader(b"OBXX\x00\x03", "thing"), b"OBXX", (1, 2))


def test_expect_header_checks_magic_before_version() -> None:
    with pytest.raises(FormatError, match="wrong magic"):
        expect_header(Reader(b"OBXY\x00\x09", "thing"), b"OBXX", (1,))


def test_expect_header_truncated_version() -> None:
    with pytest.raises(FormatError, match="truncated"):
        expect_header(Reader(b"OBXX\x00", "thing"), b"OBXX", (1,))


def test_writer_header_and_fixed() -> None:
    assert Writer().header(b"OBXX", 1).fixed(b"ab", 2).getvalue() == b"OBXX\x00\x01ab"
    with pytest.raises(ValueError, match="must be 3 bytes, got 2"):
        Writer().fixed(b"ab", 3)


@pytest.mark.parametrize(("method", "size"), [("bytes8", 0x100), ("bytes16", 0x10000)])
def test_writer_refuses_lengths_that_overflow_their_prefix(method: str, size: int) -> None:
    with pytest.raises(ValueError, match="does not fit its field"):
        getattr(Writer(), method)(bytes(size))


def test_reader_accepts_memoryview_and_bytearray() -> None:
    assert Reader(bytearray(b"\x00\x07"), "x").u16() == 7
    assert Reader(memoryview(b"\x00\x00\x00\x07"), "x").u32() == 7
