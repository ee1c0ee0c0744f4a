"""Packs: sealed objects gathered into packs of a target size and uploaded on a bounded thread pool.

* :class:`Uploader` PUTs packs in parallel (a data pack is finished, hashed and named on the
  upload thread, and sent from its parts: :class:`PackBody`) with at most ``workers`` packs queued
  or in flight; completions are handled on the main thread, in order, by a callback (which records
  data packs in the cache at once).
* :class:`PackRegistry` numbers every pack this run references (reused from the cache, or its
  own) with a per-run slot number; the backup root's pack table is built from it at the end.
* :class:`DataPacker` takes sealed chunks (sealed on worker threads), fills data packs, cuts them
  at the target size and hands them to the uploader.
"""

from __future__ import annotations

import collections
import io
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from crypto.aead import SealingKey
from crypto.packs import finish_pack_parts
from crypto.primitives import sha256
from formats.pack import ENTRY_HEADER_SIZE, INDEX_ENTRY_SIZE, PackWriter
from formats.sealed import ObjectType
from opsbackup.backup.cache import Cache
from opsbackup.client.repository import Repository

__all__ = [
    "DataPacker",
    "PackBody",
    "PackRegistry",
    "Pending",
    "Ready",
    "Slot",
    "Uploader",
]

T = TypeVar("T")
OnDone = Callable[[object, bytes, int, bool], None]  # tag, name, size, created


class Ready(Generic[T]):
    """A value computed on the calling thread, with the two methods of a future the engine uses."""

    __slots__ = ("_value",)

    def __init__(self, value: T) -> None:
        self._value = value

    def done(self) -> bool:
        return True

    def result(self) -> T:
        return self._value


Pending = Future[T] | Ready[T]


class PackBody:
    """A request body made of a finished pack's parts: sent part by part, never joined.

    The HTTP stack (requests, urllib3) sends an iterable body of known length (``len``) with a
    Content-Length header and one ``sendall`` per part (the parts are sealed chunks, about 1 MiB).
    The transport re-sends a body on retry only if it is seekable: iterating starts again at the
    first part each time, so seeking to the start is all a retry needs, and the body says so.
    """

    __slots__ = ("_parts", "_size")

    def __init__(self, parts: list[bytes]) -> None:
        self._parts = parts
        self._size = sum(len(part) for part in parts)

    def __len__(self) -> int:
        return self._size

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._parts)

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return 0

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        """Only back to the start (what a retry does): each iteration starts there anyway."""
        if offset != 0 or whence != io.SEEK_SET:
            raise io.UnsupportedOperation("a pack body is only re-sent from its start")
        return 0


def _upload(repo: Repository, data: bytes) -> tuple[bytes, bool]:
    name = sha256(data)
    return name, repo.put_object(data, name)


def _finish_and_upload(repo: Repository, writer: PackWriter, key: SealingKey) -> tuple[bytes, bool]:
    """Seal the index, finish the pack into its parts and PUT them, on an upload thread.

    One hash pass (the writer's running hash) and no joined copy (``PackWriter.finish_parts``).
    """
    parts, name = finish_pack_parts(writer, key)
    return name, repo.put_object(PackBody(parts), name)


class Uploader:
    """Uploads objects on ``workers`` threads; ``on_done(tag, name, size, created)`` runs on the caller.

    At most ``workers`` uploads are queued or in flight: each is a whole pack in memory (16 MiB),
    so the caller waits for the oldest before handing over another rather than letting finished
    packs pile up behind busy threads (one more pack, the one being filled, is the caller's).
    """

    def __init__(self, repo: Repository, workers: int) -> None:
        self._repo = repo
        self._workers = max(1, workers)
        self._pool = ThreadPoolExecutor(max_workers=self._workers, thread_name_prefix="opsbackup-upload")
        self._pending: collections.deque[tuple[Future[tuple[bytes, bool]], int, object, OnDone]] = (
            collections.deque()
        )
        self.objects = 0
        self.bytes = 0

    @property
    def pending(self) -> int:
        """Uploads queued or in flight whose completion has not been handled yet."""
        return len(self._pending)

    def _make_room(self) -> None:
        """Handle finished uploads; wait for the oldest while ``workers`` are pending."""
        self.poll()
        while len(self._pending) >= self._workers:
            self._complete_one()

    def submit(self, data: bytes, tag: object, on_done: OnDone) -> None:
        """Queue one upload (after waiting for room)."""
        self._make_room()
        self._pending.append((self._pool.submit(_upload, self._repo, data), len(data), tag, on_done))

    def submit_pack(self, writer: PackWriter, key: SealingKey, tag: object, on_done: OnDone) -> None:
        """:meth:`submit` for a pack still to be finished: hashing, sealing its index and finishing
        it run on the upload thread, not on the caller's (the engine's main thread)."""
        self._make_room()
        future = self._pool.submit(_finish_and_upload, self._repo, writer, key)
        self._pending.append((future, writer.final_size, tag, on_done))

    def upload(self, data: bytes) -> bytes:
        """Upload one object now (after the queued ones) and return its name."""
        self.drain()
        name, _created = _upload(self._repo, data)
        self.objects += 1
        self.bytes += len(data)
        return name

    def poll(self) -> None:
        """Handle every finished upload at the head of the queue, without waiting."""
        while self._pending and self._pending[0][0].done():
            self._complete_one()

    def drain(self) -> None:
        while self._pending:
            self._complete_one()

    def _complete_one(self) -> None:
        future, size, tag, on_done = self._pending.popleft()
        name, created = future.result()
        self.objects += 1
        self.bytes += size
        on_done(tag, name, size, created)

    def salvage(self) -> None:
        """After a failure: wait for uploads in flight and handle those that succeeded; drop the rest."""
        while self._pending:
            future, size, tag, on_done = self._pending.popleft()
            try:
                name, created = future.result()
            except BaseException:  # noqa: BLE001, S112 - the first failure is already being raised
                continue
            self.objects += 1
            self.bytes += size
            on_done(tag, name, size, created)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


@dataclass
class Slot:
    """A pack this run references: its name once known, size, and cache source (None: this run)."""

    name: bytes | None
    size: int
    source: int | None
    chunks: list[tuple[bytes, int]] = field(default_factory=list)  # own packs until recorded


class PackRegistry:
    """Per-run numbers of the data packs this run references (the pack table is sorted at the end)."""

    def __init__(self, cache: Cache) -> None:
        self._cache = cache
        self.slots: list[Slot] = []
        self._by_pack_id: dict[int, int] = {}

    def reuse(self, pack_id: int) -> int:
        """The slot of a cached pack, numbered on first use."""
        slot = self._by_pack_id.get(pack_id)
        if slot is None:
            info = self._cache.pack(pack_id)
            slot = len(self.slots)
            self.slots.append(Slot(info.name, info.size, info.source))
            self._by_pack_id[pack_id] = slot
        return slot

    def new_own(self) -> int:
        self.slots.append(Slot(None, 0, None))
        return len(self.slots) - 1


class DataPacker:
    """Seals new chunks (on ``pool``), fills data packs in order and uploads each when full.

    ``run_new`` maps each chunk stored by this run to its pack slot (-1 until it is in a pack).
    """

    def __init__(
        self,
        *,
        key: SealingKey,
        backup_id: bytes,
        registry: PackRegistry,
        uploader: Uploader,
        pool: Executor,
        seal: Callable[[bytes, bytes], bytes],
        inline_below: int,
        pack_target: int,
        on_uploaded: Callable[[Slot, bytes, int, bool], None],
    ) -> None:
        self._key = key
        self._backup_id = backup_id
        self._registry = registry
        self._uploader = uploader
        self._pool = pool
        self._seal = seal
        self._inline_below = inline_below
        self._target = pack_target
        self._on_uploaded = on_uploaded
        self._queue: collections.deque[tuple[bytes, int, Pending[bytes]]] = collections.deque()
        self._writer: PackWriter | None = None
        self._slot = -1
        self.run_new: dict[bytes, int] = {}
        self.inflight = 0  # plaintext bytes queued for sealing

    def submit(self, chunk_id: bytes, data: bytes) -> None:
        """Store a new chunk: seal it (here if small, else on the pool) and queue it for a pack."""
        self.run_new[chunk_id] = -1
        future: Pending[bytes]
        if len(data) < self._inline_below:
            future = Ready(self._seal(chunk_id, data))
        else:
            future = self._pool.submit(self._seal, chunk_id, data)
        self._queue.append((chunk_id, len(data), future))
        self.inflight += len(data)

    def poll(self, *, block: bool) -> bool:
        """Move sealed chunks into packs (waiting for the oldest if ``block``); True if any moved."""
        moved = False
        while self._queue and (self._queue[0][2].done() or (block and not moved)):
            chunk_id, length, future = self._queue.popleft()
            self._add(chunk_id, length, future.result())
            self.inflight -= length
            moved = True
        self._uploader.poll()
        return moved

    def _add(self, chunk_id: bytes, length: int, sealed: bytes) -> None:
        writer = self._writer
        if writer is not None and (
            not writer.fits(len(sealed))
            or writer.final_size + ENTRY_HEADER_SIZE + len(sealed) + INDEX_ENTRY_SIZE > self._target
        ):
            self._cut()
            writer = None
        if writer is None:
            writer = self._writer = PackWriter(self._backup_id)
            self._slot = self._registry.new_own()
        writer.add(ObjectType.DATA_CHUNK, chunk_id, sealed)
        self._registry.slots[self._slot].chunks.append((chunk_id, length))
        self.run_new[chunk_id] = self._slot

    def _cut(self) -> None:
        writer, self._writer = self._writer, None
        if writer is None or not writer.entry_count:
            return
        self._uploader.submit_pack(writer, self._key, self._registry.slots[self._slot], self._done)

    def _done(self, tag: object, name: bytes, size: int, created: bool) -> None:
        assert isinstance(tag, Slot)
        tag.name, tag.size = name, size
        self._on_uploaded(tag, name, size, created)

    def flush(self) -> None:
        """Pack every queued chunk, upload the last pack, and wait for every upload."""
        while self._queue:
            self.poll(block=True)
        self._cut()
        self._uploader.drain()
