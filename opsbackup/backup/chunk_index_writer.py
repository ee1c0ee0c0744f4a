"""This run's chunk index: every chunk it stored or first listed, sealed for the account's hosts.

Rows come from the cache's ``run_index`` sorted by chunk id (streamed from SQLite), are taken in
batches, cut into self-contained segments (``crypto.chunk_index.split_segments``) and sealed one
by one under the chunk-index key, so memory holds one batch and the sealed object being built.
Chunk ids increase strictly across batches, as the format requires across segments.
"""

from __future__ import annotations

import itertools

from crypto.chunk_index import chunk_index_key, split_segments
from formats import chunk_index as fmt
from formats.backup_root import Source
from formats.sealed import ObjectType
from opsbackup.backup.cache import Cache

__all__ = ["BATCH", "build_chunk_index"]

#: Entries taken from the cache at once (about 4 MB of segment plaintext).
BATCH = 100_000


def build_chunk_index(
    cache: Cache, *, backup_id: bytes, own_source_id: int, own_source: Source, dedup_secret: bytes
) -> bytes:
    """The stored ``OBCI`` object of this run."""
    key = chunk_index_key(dedup_secret)
    sealed: list[bytes] = []

    def seal_all(segments: list[fmt.Segment]) -> None:
        for segment in segments:
            sealed.append(
                key.seal(
                    fmt.encode_segment(segment),
                    obj_type=ObjectType.CHUNK_INDEX,
                    backup_id=backup_id,
                    object_id=fmt.segment_object_id(len(sealed)),
                )
            )

    rows = cache.run_index_rows()
    while batch := list(itertools.islice(rows, BATCH)):
        sources: list[Source] = []
        source_at: dict[int, int] = {}
        packs: list[tuple[bytes, int]] = []
        pack_at: dict[bytes, int] = {}
        entries: list[fmt.Entry] = []
        for row in batch:
            src = source_at.get(row.source)
            if src is None:
                src = source_at[row.source] = len(sources)
                sources.append(own_source if row.source == own_source_id else cache.source(row.source))
            pack = pack_at.get(row.pack_name)
            if pack is None:
                pack = pack_at[row.pack_name] = len(packs)
                packs.append((row.pack_name, src))
            entries.append(fmt.Entry(chunk_id=row.chunk_id, pack=pack, length=row.length))
        seal_all(split_segments(sources, packs, entries))
    if not sealed:
        seal_all(split_segments([], [], []))
    return fmt.encode_object(fmt.ChunkIndexObject(backup_id=backup_id, sealed_segments=tuple(sealed)))
