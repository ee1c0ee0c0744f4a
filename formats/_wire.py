"""Strict big-endian reading and canonical writing of byte formats.

A :class:`Reader` never reads past its buffer: every short read is a :class:`FormatError`, and
:meth:`Reader.finish` makes trailing bytes an error, so a decoder that ends with ``finish()``
accepts exactly one encoding. :func:`expect_header` checks magic, then version, before anything
else is touched. Each format module builds on these and on nothing else.
"""

from __future__ import annotations

import itertools
import struct
from collections.abc import Sequence

from formats.errors import FormatError

__all__ = ["Reader", "Writer", "check_strictly_sorted", "expect_header"]

_U8 = struct.Struct(">B")
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")


class Reader:
    """Consumes a byte string front to back; every accessor raises ``FormatError`` when short."""

    __slots__ = ("_buf", "_pos", "_what")

    def __init__(self, data: bytes | bytearray | memoryview, what: str) -> None:
        self._buf = memoryview(data).cast("B")
        self._pos = 0
        self._what = what

    @property
    def what(self) -> str:
        """The name of the object being decoded, for error messages."""
        return self._what

    @property
    def offset(self) -> int:
        return self._pos

    @property
    def remaining(self) -> int:
        return len(self._buf) - self._pos

    def error(self, problem: str) -> FormatError:
        """A ``FormatError`` naming the object and the offset where decoding stopped."""
        return FormatError(f"{self._what} is corrupt: {problem} at offset {self._pos}")

    def take(self, n: int) -> bytes:
        if n < 0 or self.remaining < n:
            raise self.error(f"truncated (needs {n} bytes, {max(self.remaining, 0)} left)")
        out = bytes(self._buf[self._pos : self._pos + n])
        self._pos += n
        return out

    def view(self, n: int) -> memoryview:
        """The next ``n`` bytes without a copy: a view into the decoded buffer (for large fields,
        such as a pack's sealed entries; it keeps that buffer alive and changes if it does)."""
        if n < 0 or self.remaining < n:
            raise self.error(f"truncated (needs {n} bytes, {max(self.remaining, 0)} left)")
        out = self._buf[self._pos : self._pos + n]
        self._pos += n
        return out

    def u8(self) -> int:
        return int(_U8.unpack(self.take(1))[0])

    def u16(self) -> int:
        return int(_U16.unpack(self.take(2))[0])

    def u32(self) -> int:
        return int(_U32.unpack(self.take(4))[0])

    def u64(self) -> int:
        return int(_U64.unpack(self.take(8))[0])

    def bytes8(self, max_len: int = 0xFF) -> bytes:
        """A byte string prefixed by its length as u8."""
        return self._bounded(self.u8(), max_len)

    def bytes16(self, max_len: int = 0xFFFF) -> bytes:
        """A byte string prefixed by its length as u16."""
        return self._bounded(self.u16(), max_len)

    def bytes32(self, max_len: int) -> bytes:
        """A byte string prefixed by its length as u32, at most ``max_len`` bytes."""
        return self._bounded(self.u32(), max_len)

    def utf8_16(self, max_len: int = 0xFFFF) -> str:
        """A UTF-8 string prefixed by its byte length as u16; invalid UTF-8 is an error."""
        raw = self.bytes16(max_len)
        try:
            return raw.decode("utf-8", errors="strict")
        except UnicodeDecodeError:
            raise self.error("invalid UTF-8 text") from None

    def count(self, n: int, min_item_size: int) -> int:
        """Check that ``n`` items of at least ``min_item_size`` bytes can still fit, and return n.

        Call this before allocating for a count read from the input, so that a hostile count
        cannot make the decoder allocate or loop beyond the input's own size.
        """
        if n * max(min_item_size, 1) > self.remaining:
            raise self.error(f"count {n} does not fit in the {self.remaining} bytes left")
        return n

    def _bounded(self, n: int, max_len: int) -> bytes:
        if n > max_len:
            raise self.error(f"length {n} exceeds the limit of {max_len}")
        return self.take(n)

    def finish(self) -> None:
        """Every byte must have been consumed: trailing bytes are an error."""
        if self.remaining:
            n = self.remaining
            raise self.error(f"{n} trailing byte{'s' if n != 1 else ''}")


def expect_header(r: Reader, magic: bytes, versions: tuple[int, ...]) -> int:
    """Check the magic, then a u16 version among ``versions``; returns the version."""
    got = r.take(len(magic)) if r.remaining >= len(magic) else None
    if got != magic:
        raise FormatError(f"{r.what} is not recognised: wrong magic bytes (expected {magic!r})")
    version = r.u16()
    if version not in versions:
        raise FormatError(
            f"{r.what} has unsupported format version {version} (this opsbackup reads "
            f"{', '.join(map(str, versions))}); upgrade opsbackup"
        )
    return version


class Writer:
    """Builds a canonical encoding; length prefixes are checked against their field width."""

    __slots__ = ("_parts",)

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def raw(self, data: bytes) -> Writer:
        self._parts.append(bytes(data))
        return self

    def header(self, magic: bytes, version: int) -> Writer:
        return self.raw(magic).u16(version)

    def u8(self, v: int) -> Writer:
        self._parts.append(_U8.pack(_fits(v, 0xFF)))
        return self

    def u16(self, v: int) -> Writer:
        self._parts.append(_U16.pack(_fits(v, 0xFFFF)))
        return self

    def u32(self, v: int) -> Writer:
        self._parts.append(_U32.pack(_fits(v, 0xFFFFFFFF)))
        return self

    def u64(self, v: int) -> Writer:
        self._parts.append(_U64.pack(_fits(v, 0xFFFFFFFFFFFFFFFF)))
        return self

    def bytes8(self, data: bytes) -> Writer:
        return self.u8(_fits(len(data), 0xFF)).raw(data)

    def bytes16(self, data: bytes) -> Writer:
        return self.u16(_fits(len(data), 0xFFFF)).raw(data)

    def bytes32(self, data: bytes) -> Writer:
        return self.u32(_fits(len(data), 0xFFFFFFFF)).raw(data)

    def utf8_16(self, text: str) -> Writer:
        return self.bytes16(text.encode("utf-8"))

    def fixed(self, data: bytes, size: int) -> Writer:
        """A field of exactly ``size`` bytes (ids, nonces, hashes)."""
        if len(data) != size:
            raise ValueError(f"field must be {size} bytes, got {len(data)}")
        return self.raw(data)

    def getvalue(self) -> bytes:
        return b"".join(self._parts)


def _fits(n: int, limit: int) -> int:
    if not 0 <= n <= limit:
        raise ValueError(f"value {n} does not fit its field (0 to {limit})")
    return n


def check_strictly_sorted(items: Sequence[bytes], what: str) -> None:
    """ValueError unless ``items`` increase strictly: the canonical-list rule every format shares."""
    for prev, cur in itertools.pairwise(items):
        if cur == prev:
            raise ValueError(f"{what} hold a duplicate entry")
        if cur < prev:
            raise ValueError(f"{what} are not sorted")
