"""Bring the local cache up to date with the server: new manifests' chunk indexes in, vanished packs out.

:func:`sync_cache` verifies every manifest the cache has not seen (``Account.verify_manifest``),
fetches its chunk index (named and sized by the signed manifest; ``Repository.get_object``
checks the hash), opens it with the dedup secret and inserts its sources, packs and chunks. A
manifest that does not verify, or whose index does not open, is a warning: its chunks are simply
not reused. A backup of another dedup epoch (its index sealed under another dedup secret, after
the account started a new epoch) is skipped quietly and not fetched again: its chunk ids can never
match this secret's. :func:`check_packs` asks the server, in batches, which known packs still exist and
forgets the rest, so no backup references a pack that is gone.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

from crypto.chunk_index import of_other_epoch, open_chunk_index
from formats.chunk_index import Segment
from opsbackup.backup.cache import Cache
from opsbackup.client.account import Account, VerifiedManifest
from opsbackup.client.repository import QUERY_BATCH
from opsbackup.errors import IntegrityError, OpsbackupError

__all__ = ["SyncResult", "check_packs", "ordered_map", "sync_cache"]

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class SyncResult:
    """What the sync learned: how many manifests it read, and this host's newest manifest hash."""

    manifests: int
    previous_hash: bytes | None
    other_epoch: int = 0  # manifests skipped: their chunk index is of another dedup epoch


def ordered_map(fn: Callable[[T], R], items: Iterable[T], workers: int) -> Iterator[Future[R]]:
    """Run ``fn`` over ``items`` on ``workers`` threads; yield the futures in order, few at a time."""
    window: collections.deque[Future[R]] = collections.deque()
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="opsbackup-sync") as pool:
        try:
            for item in items:
                if len(window) >= 2 * max(1, workers):
                    yield window.popleft()
                window.append(pool.submit(fn, item))
            while window:
                yield window.popleft()
        finally:
            for future in window:
                future.cancel()


def _fetch(
    account: Account, secret: bytes, name: tuple[str, str]
) -> tuple[VerifiedManifest, tuple[Segment, ...] | None]:
    """The verified manifest and its opened chunk index; ``None`` for an index of another epoch."""
    host, backup_id = name
    verified = account.fetch_manifest(host, backup_id)
    manifest = verified.manifest
    sizes = {obj.name: obj.size for obj in manifest.objects}
    data = account.repo.get_object(
        manifest.chunk_index, size=sizes[manifest.chunk_index], what=f"chunk index of {host}/{backup_id}"
    )
    try:
        return verified, open_chunk_index(data, dedup_secret=secret, backup_id=manifest.backup_id)
    except IntegrityError:
        if of_other_epoch(data, dedup_secret=secret):
            return verified, None
        raise


def _import(cache: Cache, verified: VerifiedManifest, segments: Iterable[Segment]) -> None:
    """Insert a chunk index's rows; a pack the manifest does not list (with its size) is skipped."""
    sizes = {obj.name: obj.size for obj in verified.manifest.objects}
    for segment in segments:
        source_ids = [cache.ensure_source(s.backup_id, s.data_key_commitment) for s in segment.sources]
        pack_ids: list[int | None] = []
        for name, source in segment.packs:
            size, source_id = sizes.get(name), source_ids[source]
            if size is None or source_id is None:
                pack_ids.append(None)
            else:
                pack_ids.append(cache.ensure_pack(name, size, source_id))
        cache.import_chunks(
            (e.chunk_id, pack_id, e.length)
            for e in segment.entries
            if (pack_id := pack_ids[e.pack]) is not None
        )


def sync_cache(
    cache: Cache,
    account: Account,
    *,
    host: str,
    dedup_secret: bytes,
    workers: int,
    warn: Callable[[str], None],
) -> SyncResult:
    """Import the chunk index of every manifest of the account the cache has not seen yet."""
    listing = account.repo.list_manifests()
    synced = cache.synced_manifests()
    todo = [name for name in listing if name not in synced]
    count = other_epoch = 0
    for name, future in zip(
        todo, ordered_map(lambda n: _fetch(account, dedup_secret, n), todo, workers), strict=True
    ):
        try:
            verified, segments = future.result()
        except OpsbackupError as exc:
            warn(f"manifest {name[0]}/{name[1]} was not used for deduplication: {exc}")
            continue
        if segments is None:
            other_epoch += 1  # recorded as seen, so it is not fetched again
        else:
            _import(cache, verified, segments)
        manifest = verified.manifest
        cache.add_manifest(
            verified.host, verified.backup_id, manifest.time, verified.hash, manifest.previous_manifest_hash
        )
        cache.commit()
        count += 1
    own = [backup_id for h, backup_id in listing if h == host]
    return SyncResult(
        manifests=count, previous_hash=cache.newest_manifest(host, own), other_epoch=other_epoch
    )


def check_packs(cache: Cache, account: Account, doomed: Iterable[bytes] = ()) -> int:
    """Forget every cached pack the server no longer has, and every pack in ``doomed`` (a prune is
    deleting it, so it may still exist for a moment); returns how many were forgotten."""
    gone: list[int] = []
    doomed_names = set(doomed)
    for batch in cache.pack_batches(QUERY_BATCH):
        present = account.repo.present(name for _, name in batch)
        gone.extend(pack_id for pack_id, name in batch if name not in present or name in doomed_names)
    cache.forget_packs(gone)
    cache.commit()
    return len(gone)
