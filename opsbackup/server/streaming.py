"""Bridge an ASGI request body (async chunks) to the blocking file object an ObjectStore reads.

The store's ``put`` runs in a worker thread (``run_in_threadpool``); each ``read`` it makes pulls
the next chunk from the event loop with :func:`anyio.from_thread.run`. Only one chunk is held at a
time, so an upload of any size is streamed to storage, never held whole in memory. Reading past
``limit`` bytes raises :class:`BodyTooLargeError` at once, before the excess is stored.
"""

from __future__ import annotations

import io
from collections.abc import AsyncIterator

import anyio.from_thread

__all__ = ["BodyReader", "BodyTooLargeError"]


class BodyTooLargeError(Exception):
    """The body grew past the limit while it was being read."""


class BodyReader(io.RawIOBase):
    """A read-only raw file over an async chunk iterator (use from a worker thread only)."""

    def __init__(self, chunks: AsyncIterator[bytes], limit: int) -> None:
        super().__init__()
        self._chunks = chunks
        self._limit = limit
        self._buf = b""
        self._pos = 0
        self._eof = False
        self.size = 0

    def readable(self) -> bool:
        return True

    async def _next(self) -> bytes:
        async for chunk in self._chunks:
            if chunk:
                return chunk
        return b""

    def readinto(self, b: memoryview | bytearray) -> int:  # type: ignore[override]
        if self._pos >= len(self._buf):
            if self._eof:
                return 0
            chunk = anyio.from_thread.run(self._next)
            if not chunk:
                self._eof = True
                return 0
            self.size += len(chunk)
            if self.size > self._limit:
                raise BodyTooLargeError(f"body is larger than the limit of {self._limit} bytes")
            self._buf, self._pos = chunk, 0
        n = min(len(b), len(self._buf) - self._pos)
        b[:n] = self._buf[self._pos : self._pos + n]
        self._pos += n
        return n
