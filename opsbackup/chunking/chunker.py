"""Split a stream into content-defined chunks whose boundaries depend on a secret key.

FastCDC with normalized chunking (Xia et al., 2016): a 64-bit gear hash ``h = (h << 1) + G[byte]``
is tested against a mask of its top bits; a harder mask before the average size and an easier one
after it keep chunk sizes close to the average. ``G`` is 256 secret 64-bit values derived from the
account's chunker key (``gear_table``), so without the dedup secret an observer of chunk sizes
learns nothing about content (the same reason restic draws a random Rabin polynomial per
repository). Hashing starts at the minimum size and depends only on the last 64 bytes, so after an
insertion or deletion the boundaries resynchronise within one chunk.

The scan runs in C (``_cdc.c``, without the GIL); :func:`_cut_reference` is the same algorithm in
pure Python, used where the extension could not be built and as the oracle in tests.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

from crypto.primitives import hkdf_sha256

__all__ = ["Chunker", "ChunkerParams", "gear_table", "native_available"]

GEAR_TABLE_SIZE = 256 * 8


#: cut(table, data, min_size, avg_bits, max_size, eof) -> chunk length, or -1 for "need more".
_CutFn = Callable[[bytes, bytes | memoryview, int, int, int, int], int]


try:
    from opsbackup.chunking._cdc import cut as _native_cut
except ImportError:  # pragma: no cover - exercised only where no C compiler was available
    _native_cut = None  # type: ignore[assignment]


def native_available() -> bool:
    return _native_cut is not None


@dataclass(frozen=True)
class ChunkerParams:
    """Chunk size bounds: 512 KiB minimum, 1 MiB average, 8 MiB maximum by default (as restic)."""

    min_size: int = 512 * 1024
    avg_bits: int = 20
    max_size: int = 8 * 1024 * 1024

    def __post_init__(self) -> None:
        if not (64 <= self.min_size < (1 << self.avg_bits) < self.max_size and 8 <= self.avg_bits <= 30):
            raise ValueError("chunker sizes must satisfy 64 <= min < 2**avg_bits < max")


def gear_table(chunker_key: bytes) -> bytes:
    """The secret gear table: 256 big-endian u64 values, HKDF-derived from the chunker key."""
    return hkdf_sha256(chunker_key, b"chunker/gear-table", GEAR_TABLE_SIZE)


def _cut_reference(
    table: bytes, data: bytes | memoryview, min_size: int, avg_bits: int, max_size: int, eof: int
) -> int:
    """Pure-Python FastCDC cut, bit-for-bit the same as the C version."""
    gear = struct.unpack(">256Q", table)
    n = len(data)
    if n <= min_size:
        return n if eof else -1
    limit = min(n, max_size)
    normal = min(1 << avg_bits, limit)
    mask_s = ((1 << (avg_bits + 2)) - 1) << (64 - (avg_bits + 2))
    mask_l = ((1 << (avg_bits - 2)) - 1) << (64 - (avg_bits - 2))
    full = (1 << 64) - 1
    h = 0
    for i in range(min_size, limit):
        h = ((h << 1) + gear[data[i]]) & full
        if not h & (mask_s if i < normal else mask_l):
            return i + 1
    return limit if (limit == max_size or eof) else -1


class Chunker:
    """Yields the chunks of a stream; memory stays below ``max_size + read_size``."""

    def __init__(
        self, table: bytes, params: ChunkerParams | None = None, *, native: bool | None = None
    ) -> None:
        if len(table) != GEAR_TABLE_SIZE:
            raise ValueError("a gear table is 2048 bytes")
        self._table = bytes(table)
        self.params = params or ChunkerParams()
        use_native = native_available() if native is None else native
        if use_native and _native_cut is None:
            raise RuntimeError("the native chunker is not built")
        self._cut: _CutFn = _native_cut if use_native else _cut_reference

    def cut(self, data: bytes | memoryview, *, eof: bool) -> int:
        """Length of the first chunk of ``data``, or -1 if more data may move the boundary."""
        p = self.params
        return int(self._cut(self._table, data, p.min_size, p.avg_bits, p.max_size, int(eof)))

    def chunks(self, stream: BinaryIO, read_size: int = 8 * 1024 * 1024) -> Iterator[bytes]:
        """Yield the chunks of ``stream`` in order; their concatenation is the stream."""
        buf = b""
        pos = 0
        eof = False
        while True:
            view = memoryview(buf)
            n = self.cut(view[pos:], eof=eof) if pos < len(buf) or not eof else 0
            if n > 0:
                yield bytes(view[pos : pos + n])
                pos += n
                continue
            if eof:
                return
            block = stream.read(read_size)
            eof = not block
            buf = buf[pos:] + block
            pos = 0
