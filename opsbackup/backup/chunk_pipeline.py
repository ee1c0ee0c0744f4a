"""Reading files into keyed content-defined chunks, and sealing new chunks.

:class:`FileReader` reads a file in large blocks into one reused buffer, cuts chunks with the
keyed FastCDC chunker (C, without the GIL) and hands each chunk (one copy) to a callback. It
never follows a symlink, never blocks on a fifo swapped in for a file, and reports a file that
vanishes, cannot be read or changes while read as a warning. :class:`ChunkSealer` is what worker
threads run for each new chunk: zstd (kept only if smaller), the chunk envelope, AES-256-GCM.
"""

from __future__ import annotations

import os
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

import zstandard

from crypto.aead import SealingKey
from formats.sealed import ChunkPayload, Compression, ObjectType, encode_chunk_payload
from opsbackup.backup.walker import show
from opsbackup.chunking import Chunker
from opsbackup.client.progress import Progress

__all__ = ["ChunkSealer", "FileReader", "ReadOutcome"]

_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_NOATIME = getattr(os, "O_NOATIME", 0)


#: Chunks at least this large are probed before compressing: three 16 KiB samples at zstd level 1.
PROBE_FROM = 128 * 1024
_SAMPLE = 16 * 1024
#: A probe that saves less than this fraction means "incompressible": store the chunk as is.
_MIN_SAVING = 0.02


class ChunkSealer:
    """Compress (zstd, only if smaller), envelope and seal one chunk; safe to call from many threads.

    Large chunks are probed first (start, middle and end, at the fastest level): data that is
    already compressed or encrypted is then stored as is without paying for a full zstd pass.
    """

    def __init__(self, key: SealingKey, backup_id: bytes, level: int) -> None:
        self._key = key
        self._backup_id = backup_id
        self._level = level
        self._local = threading.local()

    def _compressors(self) -> tuple[zstandard.ZstdCompressor, zstandard.ZstdCompressor]:
        pair: tuple[zstandard.ZstdCompressor, zstandard.ZstdCompressor] | None = getattr(
            self._local, "zstd", None
        )
        if pair is None:
            pair = self._local.zstd = (
                zstandard.ZstdCompressor(level=self._level),
                zstandard.ZstdCompressor(level=1),
            )
        return pair

    def __call__(self, chunk_id: bytes, data: bytes) -> bytes:
        compressor, prober = self._compressors()
        packed = data
        n = len(data)
        if n >= PROBE_FROM:
            sample = data[:_SAMPLE] + data[n // 2 : n // 2 + _SAMPLE] + data[n - _SAMPLE :]
            if len(prober.compress(sample)) < len(sample) * (1 - _MIN_SAVING):
                packed = compressor.compress(data)
        else:
            packed = compressor.compress(data)
        if len(packed) < n:
            payload = ChunkPayload(Compression.ZSTD, packed)
        else:
            payload = ChunkPayload(Compression.NONE, data)
        return self._key.seal(
            encode_chunk_payload(payload),
            obj_type=ObjectType.DATA_CHUNK,
            backup_id=self._backup_id,
            object_id=chunk_id,
        )


@dataclass(frozen=True)
class ReadOutcome:
    """A file read to its end: what was opened (``st``), the bytes read, and whether to cache it."""

    st: os.stat_result
    size: int
    cacheable: bool


def _open(path: bytes) -> int:
    try:
        fd = os.open(path, _OPEN_FLAGS | _NOATIME)
    except PermissionError:  # O_NOATIME needs ownership; retry without it
        fd = os.open(path, _OPEN_FLAGS)
    return fd


class FileReader:
    """Reads files and streams into chunks; one instance per run (it owns the read buffer)."""

    def __init__(
        self,
        chunker: Chunker,
        *,
        block: int,
        progress: Progress,
        racy_window_ns: int,
        before_open: Callable[[bytes], None] | None = None,
        after_block: Callable[[bytes, int], None] | None = None,
    ) -> None:
        self._chunker = chunker
        self._block = block
        self._buffer = bytearray()  # block + one maximum chunk, made at the first read
        self._progress = progress
        self._racy_window = racy_window_ns
        self._before_open = before_open
        self._after_block = after_block

    def read_file(
        self, abs_path: bytes, on_chunk: Callable[[bytes], None], warn: Callable[[str], None]
    ) -> ReadOutcome | None:
        """Chunk the regular file at ``abs_path``; None (and a warning) if it cannot be read whole."""
        try:
            if self._before_open is not None:
                self._before_open(abs_path)  # a test hook; inside the try, so it can inject an OSError
            fd = _open(abs_path)
        except FileNotFoundError:
            warn(f"{show(abs_path)}: vanished before it was read; skipped")
            return None
        except OSError as exc:
            warn(f"{show(abs_path)}: cannot be opened ({exc.strerror}); skipped")
            return None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                warn(
                    f"{show(abs_path)}: was replaced by something that is not a file while backed up; skipped"
                )
                return None
            os.set_blocking(fd, True)
            if hasattr(os, "posix_fadvise"):
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
            started = time.time_ns()
            size = self._chunk(lambda view: os.readv(fd, [view]), on_chunk, abs_path)
            after = os.fstat(fd)
        except OSError as exc:
            warn(f"{show(abs_path)}: could not be read ({exc.strerror}); skipped")
            return None
        finally:
            os.close(fd)
        changed = size != st.st_size or (after.st_size, after.st_mtime_ns, after.st_ctime_ns) != (
            st.st_size,
            st.st_mtime_ns,
            st.st_ctime_ns,
        )
        if changed:
            warn(f"{show(abs_path)}: changed while it was read; backed up as read ({size} bytes)")
        racy = max(st.st_mtime_ns, st.st_ctime_ns) >= started - self._racy_window
        return ReadOutcome(st=st, size=size, cacheable=not changed and not racy)

    def read_stream(self, stream: BinaryIO, on_chunk: Callable[[bytes], None]) -> int:
        """Chunk ``stream`` to its end; returns the bytes read (OSError propagates)."""
        readinto = getattr(stream, "readinto", None)

        def fill(view: memoryview) -> int:
            if readinto is not None:
                return int(readinto(view) or 0)
            data = stream.read(len(view))
            view[: len(data)] = data
            return len(data)

        return self._chunk(fill, on_chunk)

    def _chunk(
        self, read: Callable[[memoryview], int], on_chunk: Callable[[bytes], None], path: bytes = b""
    ) -> int:
        """Fill the buffer block by block, cut chunks, keep the uncut tail for the next block."""
        if not self._buffer:  # a run that reads nothing (every file unchanged) never holds it
            self._buffer = bytearray(self._block + self._chunker.params.max_size)
        view = memoryview(self._buffer)
        block, cut = self._block, self._chunker.cut
        held = total = 0
        eof = False
        while not eof:
            got = 0
            while got < block:
                n = read(view[held + got : held + block])
                if n <= 0:
                    eof = True
                    break
                got += n
            total += got
            if got:
                self._progress.advance(got)
                if self._after_block is not None and path:
                    self._after_block(path, total)
            end, pos = held + got, 0
            while pos < end:
                n = cut(view[pos:end], eof=eof)
                if n < 0:
                    break
                on_chunk(bytes(view[pos : pos + n]))
                pos += n
            held = end - pos
            if held:
                view[:held] = bytes(view[pos:end])
        return total
