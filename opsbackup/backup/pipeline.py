"""The ordered middle of a backup: records wait here, in stream order, until their chunks are decided.

The walker adds records and files in stream order. A file's chunks are hashed (keyed chunk ids)
on worker threads; here, on the main thread and in order, each id is *decided*: already stored
by this run, known to the cache (a reused pack), or new (sealed and packed by
:class:`~opsbackup.backup.packer.DataPacker`). A file's records leave, in order, once all its
chunks are decided. Chunk refs of new chunks carry the pack slot ``NEW`` and are resolved when
the tree is sealed (``run_new``); those of reused chunks carry their registry slot.

Memory is bounded by ``inflight_bytes``: chunks read but not yet decided, plus chunks waiting to
be sealed and packed. A file's refs are kept compactly (40 bytes each) until its records leave.
"""

from __future__ import annotations

import collections
import os
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass

from formats.tree import MAX_CHUNKS_PER_RECORD, Kind, Record
from opsbackup.backup.cache import Cache, ChunkHit
from opsbackup.backup.packer import DataPacker, PackRegistry, Pending, Ready
from opsbackup.backup.tree_writer import REF

__all__ = ["NEW", "FileJob", "Meta", "Pipeline", "RunStats"]

#: The pack field of a ref to a chunk this run stores (resolved through ``DataPacker.run_new``).
NEW = 0xFFFFFFFF
_REF = REF


@dataclass
class RunStats:
    """Counters of one run."""

    files: int = 0
    dirs: int = 0
    total_bytes: int = 0
    new_chunks: int = 0
    reused_chunks: int = 0
    new_bytes: int = 0


@dataclass(frozen=True)
class Meta:
    """The metadata a FILE record carries besides its chunks."""

    mode: int
    uid: int
    gid: int
    mtime_ns: int

    @classmethod
    def of(cls, st: os.stat_result) -> Meta:
        return cls(st.st_mode, st.st_uid, st.st_gid, st.st_mtime_ns)


class FileJob:
    """A FILE record in the making: its metadata, chunks waiting for their ids, and decided refs."""

    __slots__ = ("cache_st", "done", "link_group", "meta", "ok", "path", "pending", "refs")

    def __init__(self, path: bytes, meta: Meta, link_group: int) -> None:
        self.path = path
        self.meta = meta  # recorded mode, uid, gid, mtime (from the fstat of the opened file)
        self.link_group = link_group
        self.pending: collections.deque[tuple[bytes, Pending[bytes]]] = collections.deque()
        self.refs = bytearray()  # n x (chunk id | u32 pack | u32 length)
        self.done = False
        self.ok = False
        self.cache_st: os.stat_result | None = None  # store in the file cache under this fingerprint


class Pipeline:
    """Keeps records in stream order while chunk ids are computed, and decides each chunk."""

    def __init__(
        self,
        *,
        cache: Cache,
        registry: PackRegistry,
        packer: DataPacker,
        pool: Executor,
        chunk_id: Callable[[bytes], bytes],
        inline_below: int,
        inflight_bytes: int,
        emit: Callable[[Record, bytes], None],
        max_refs_per_record: int = MAX_CHUNKS_PER_RECORD,
    ) -> None:
        self._cache = cache
        self._registry = registry
        self._packer = packer
        self._pool = pool
        self._chunk_id = chunk_id
        self._inline_below = inline_below
        self._budget = inflight_bytes
        self._emit = emit
        self._per_record = max_refs_per_record
        self._items: collections.deque[Record | FileJob] = collections.deque()
        self._hashing = 0  # bytes of chunks waiting for their id
        self.stats = RunStats()

    # Input, in stream order --------------------------------------------------------------------

    def add_record(self, record: Record) -> None:
        self._items.append(record)
        self.pump(block=False)

    def add_file(self, job: FileJob) -> None:
        self._items.append(job)

    def add_chunk(self, job: FileJob, data: bytes) -> None:
        """A chunk of ``job`` (the file being read); waits while too much is in flight."""
        while self._hashing + self._packer.inflight + len(data) > self._budget and (
            self._hashing or self._packer.inflight
        ):
            if not self.pump(block=True):
                self._packer.poll(block=True)
        future: Pending[bytes]
        if len(data) < self._inline_below:
            future = Ready(self._chunk_id(data))
        else:
            future = self._pool.submit(self._chunk_id, data)
        job.pending.append((data, future))
        self._hashing += len(data)

    def end_file(self, job: FileJob, *, ok: bool) -> None:
        job.ok, job.done = ok, True
        self.pump(block=False)

    def cached_refs(self, chunks: bytes) -> bytearray | None:
        """Refs for a file cache entry (``n x (id | u32 length)``) if every chunk is still known."""
        hits: list[tuple[bytes, int, ChunkHit | None]] = []
        for offset in range(0, len(chunks), 36):
            chunk_id = chunks[offset : offset + 32]
            length = int.from_bytes(chunks[offset + 32 : offset + 36], "big")
            if chunk_id in self._packer.run_new:
                hits.append((chunk_id, length, None))
                continue
            hit = self._cache.chunk(chunk_id)
            if hit is None or hit.length != length:
                return None
            hits.append((chunk_id, length, hit))
        refs = bytearray()
        for chunk_id, length, hit in hits:
            pack = NEW
            if hit is not None:
                pack = self._registry.reuse(hit.pack_id)
                if not hit.listed:
                    self._cache.list_in_run(chunk_id)
            refs += _REF.pack(chunk_id, pack, length)
        self.stats.reused_chunks += len(hits)
        return refs

    # Progress ----------------------------------------------------------------------------------

    def pump(self, *, block: bool) -> bool:
        """Decide chunks and emit records from the head of the queue; True if anything moved.

        Never waits for more than one chunk id (and only if ``block`` and nothing else moved).
        """
        moved = self._packer.poll(block=False)
        items = self._items
        while items:
            head = items[0]
            if isinstance(head, Record):
                self._emit_counted(head)
                items.popleft()
                moved = True
                continue
            while head.pending and (head.pending[0][1].done() or (block and not moved)):
                data, future = head.pending.popleft()
                self._decide(head, data, future.result())
                moved = True
            if head.pending or not head.done:
                break
            items.popleft()
            self._finish_file(head)
            moved = True
        return moved

    def finish(self) -> None:
        """Every input has been added: decide and emit everything, and pack the new chunks."""
        while self._items:
            if not self.pump(block=True):
                raise AssertionError("a file was left unfinished")
        self._packer.flush()

    def _decide(self, job: FileJob, data: bytes, chunk_id: bytes) -> None:
        length = len(data)
        self._hashing -= length
        stats = self.stats
        if chunk_id in self._packer.run_new:
            pack = NEW
            stats.reused_chunks += 1
        else:
            hit = self._cache.chunk(chunk_id)
            if hit is not None and hit.length == length:
                pack = self._registry.reuse(hit.pack_id)
                if not hit.listed:
                    self._cache.list_in_run(chunk_id)
                stats.reused_chunks += 1
            else:
                self._packer.submit(chunk_id, data)
                pack = NEW
                stats.new_chunks += 1
                stats.new_bytes += length
        job.refs += _REF.pack(chunk_id, pack, length)

    def _finish_file(self, job: FileJob) -> None:
        if not job.ok:
            return
        refs = job.refs
        size = sum(length for _, _, length in _REF.iter_unpack(refs))
        meta = job.meta
        step = self._per_record * _REF.size
        for first in range(0, max(len(refs), 1), step):
            if first == 0:
                record = Record(
                    kind=Kind.FILE,
                    path=job.path,
                    mode=meta.mode,
                    uid=meta.uid,
                    gid=meta.gid,
                    mtime_ns=meta.mtime_ns,
                    size=size,
                    link_group=job.link_group,
                )
            else:
                record = Record(kind=Kind.CONTINUATION, path=job.path)
            self._emit_counted(record, bytes(refs[first : first + step]))
        if job.cache_st is not None:
            entries = b"".join(cid + length.to_bytes(4, "big") for cid, _, length in _REF.iter_unpack(refs))
            self._cache.put_file(job.path, job.cache_st, size, entries)

    def _emit_counted(self, record: Record, refs: bytes = b"") -> None:
        stats = self.stats
        if record.kind is Kind.FILE:
            stats.files += 1
            stats.total_bytes += record.size
        elif record.kind is Kind.DIR:
            stats.dirs += 1
        self._emit(record, refs)
