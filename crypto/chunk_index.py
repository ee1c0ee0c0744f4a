"""Sealing and opening a backup's chunk index under the key every host of the account derives.

The chunk-index key is ``SealingKey(HKDF-SHA256(dedup secret, "opsbackup/v1/chunk-index"))``: the
hosts of an account hold the dedup secret, the server does not. Segment ``i`` is sealed with
object type ``CHUNK_INDEX``, the backup's id and object id ``segment_object_id(i)``, so a segment
moved to another slot, another backup's index or another object type does not open
(docs/spec/chunk-index.md).

Rules across segments (checked by both :func:`seal_chunk_index` and :func:`open_chunk_index`):
chunk ids increase strictly across the whole index, not only inside each segment, and only a
chunk index of exactly one segment may have an empty one. Dropping whole trailing segments is
not visible here: the object's name (its SHA-256) in the signed manifest covers that.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from crypto.aead import SealingKey
from crypto.primitives import KEY_SIZE, ct_equal, hkdf_sha256
from formats import chunk_index as fmt
from formats.backup_root import Source
from formats.errors import FormatError, IntegrityError
from formats.sealed import COMMITMENT_SIZE, MAX_PLAINTEXT, NONCE_SIZE, ObjectType

__all__ = [
    "of_other_epoch",
    "CHUNK_INDEX_LABEL",
    "chunk_index_key",
    "open_chunk_index",
    "seal_chunk_index",
    "split_segments",
]

CHUNK_INDEX_LABEL = b"chunk-index"


def chunk_index_key(dedup_secret: bytes) -> SealingKey:
    """The sealing key of every chunk index of the account: ``HKDF(secret, "chunk-index")``."""
    if len(dedup_secret) != KEY_SIZE:
        raise ValueError(f"the dedup secret is {KEY_SIZE} bytes")
    return SealingKey(hkdf_sha256(dedup_secret, CHUNK_INDEX_LABEL))


def _check_across(segments: Sequence[fmt.Segment]) -> None:
    """The cross-segment rules (ValueError): ids strictly increasing overall; no stray empty segment."""
    if len(segments) > 1 and any(not s.entries for s in segments):
        raise ValueError("a chunk index of several segments has an empty segment")
    for prev, cur in itertools.pairwise(segments):
        if prev.entries and cur.entries and cur.entries[0].chunk_id <= prev.entries[-1].chunk_id:
            raise ValueError("chunk ids do not increase strictly from one segment to the next")


def seal_chunk_index(segments: Sequence[fmt.Segment], *, dedup_secret: bytes, backup_id: bytes) -> bytes:
    """The stored ``OBCI`` object of ``segments`` (as cut by :func:`split_segments`); ValueError
    for an empty list, a segment the format refuses, or a break of the cross-segment rules."""
    if not 1 <= len(segments) <= fmt.MAX_SEGMENTS:
        raise ValueError(f"a chunk index holds 1 to {fmt.MAX_SEGMENTS} segments, not {len(segments)}")
    if len(backup_id) != fmt.BACKUP_ID_SIZE:
        raise ValueError("a backup id is 16 bytes")
    _check_across(segments)
    plaintexts = [fmt.encode_segment(s) for s in segments]
    key = chunk_index_key(dedup_secret)
    sealed = tuple(
        key.seal(p, obj_type=ObjectType.CHUNK_INDEX, backup_id=backup_id, object_id=fmt.segment_object_id(i))
        for i, p in enumerate(plaintexts)
    )
    return fmt.encode_object(fmt.ChunkIndexObject(backup_id=backup_id, sealed_segments=sealed))


def of_other_epoch(data: bytes, *, dedup_secret: bytes) -> bool:
    """Whether a chunk index that did not open was sealed under another dedup secret's key.

    True when its first segment carries the key commitment of another key: a backup of another
    dedup epoch (docs/keys.md), whose chunk ids can never match this secret's, so a host skips it
    quietly. Only a hint for that choice: :func:`open_chunk_index` is what authenticates.
    """
    try:
        first = fmt.decode_object(data).sealed_segments[0]
    except FormatError:
        return False
    commitment = first[NONCE_SIZE : NONCE_SIZE + COMMITMENT_SIZE]
    return not ct_equal(commitment, chunk_index_key(dedup_secret).commitment)


def open_chunk_index(data: bytes, *, dedup_secret: bytes, backup_id: bytes) -> tuple[fmt.Segment, ...]:
    """The segments of a stored chunk index that must belong to ``backup_id``.

    FormatError if the object or a segment is malformed; IntegrityError if it names another
    backup, or a segment does not open (wrong secret, altered, moved, swapped or truncated).
    Every segment is authenticated before any is parsed.
    """
    obj = fmt.decode_object(data)
    if len(backup_id) != fmt.BACKUP_ID_SIZE or not ct_equal(obj.backup_id, backup_id):
        raise IntegrityError("the chunk index belongs to another backup than its manifest names")
    key = chunk_index_key(dedup_secret)
    plaintexts: list[bytes] = []
    for i, sealed in enumerate(obj.sealed_segments):
        try:
            plaintexts.append(
                key.open(
                    sealed,
                    obj_type=ObjectType.CHUNK_INDEX,
                    backup_id=backup_id,
                    object_id=fmt.segment_object_id(i),
                )
            )
        except IntegrityError:
            raise IntegrityError(
                f"chunk index segment {i} does not open: it was altered or moved, or the dedup "
                "secret is not this account's"
            ) from None
    segments = tuple(fmt.decode_segment(p, f"chunk index segment {i}") for i, p in enumerate(plaintexts))
    try:
        _check_across(segments)
    except ValueError as exc:
        raise FormatError(f"chunk index is corrupt: {exc}") from None
    return segments


def split_segments(
    sources: Sequence[Source],
    packs: Sequence[tuple[bytes, int]],
    entries: Sequence[fmt.Entry],
    *,
    max_size: int = MAX_PLAINTEXT,
) -> list[fmt.Segment]:
    """Cut one global table of added chunks into segments of at most ``max_size`` bytes each.

    The arguments have the shape of a :class:`~formats.chunk_index.Segment` but may be in any
    order and as large as a backup: ``packs`` rows are ``(pack name, index into sources)`` and an
    entry's ``pack`` indexes ``packs``. Entries are sorted by chunk id (a repeated chunk id is a
    ValueError) and filled greedily; each segment gets its own sorted source and pack tables with
    only the rows its entries use. No entries give one empty segment. ValueError if one entry
    with its pack and source cannot fit a segment on its own.
    """
    if not fmt.MIN_SEGMENT_SIZE <= max_size <= MAX_PLAINTEXT:
        raise ValueError(f"max_size must be between {fmt.MIN_SEGMENT_SIZE} and {MAX_PLAINTEXT}")
    for name, src in packs:
        if not 0 <= src < len(sources):
            raise ValueError(f"pack {name.hex()[:16]} names source {src}, but there are {len(sources)}")
    for entry in entries:
        if not 0 <= entry.pack < len(packs):
            raise ValueError(f"an entry names pack {entry.pack}, but there are {len(packs)}")
    ordered = sorted(entries, key=lambda e: e.chunk_id)
    for prev, cur in itertools.pairwise(ordered):
        if prev.chunk_id == cur.chunk_id:
            raise ValueError(f"chunk id {cur.chunk_id.hex()[:16]} is listed twice")
    source_sizes = [fmt.source_size(s) for s in sources]

    groups: list[list[fmt.Entry]] = []
    current: list[fmt.Entry] = []
    size = fmt.MIN_SEGMENT_SIZE
    seen_packs: set[int] = set()
    seen_sources: set[int] = set()
    for entry in ordered:
        src = packs[entry.pack][1]
        cost = fmt.ENTRY_SIZE
        cost += 0 if entry.pack in seen_packs else fmt.PACK_ENTRY_SIZE
        cost += 0 if src in seen_sources else source_sizes[src]
        if size + cost > max_size and current:
            groups.append(current)
            current, seen_packs, seen_sources = [], set(), set()
            size = fmt.MIN_SEGMENT_SIZE
            cost = fmt.ENTRY_SIZE + fmt.PACK_ENTRY_SIZE + source_sizes[src]
        if size + cost > max_size:
            raise ValueError(f"one entry with its pack and source needs more than {max_size} bytes")
        current.append(entry)
        seen_packs.add(entry.pack)
        seen_sources.add(src)
        size += cost
    if current or not groups:
        groups.append(current)
    return [_segment(sources, packs, group) for group in groups]


def _segment(
    sources: Sequence[Source], packs: Sequence[tuple[bytes, int]], group: list[fmt.Entry]
) -> fmt.Segment:
    """One segment of ``group`` (sorted entries) with local, sorted source and pack tables."""
    pack_ids = sorted({e.pack for e in group}, key=lambda p: packs[p][0])
    source_ids = sorted({packs[p][1] for p in pack_ids}, key=lambda s: sources[s].backup_id)
    source_at = {s: i for i, s in enumerate(source_ids)}
    pack_at = {p: i for i, p in enumerate(pack_ids)}
    return fmt.Segment(
        sources=tuple(sources[s] for s in source_ids),
        packs=tuple((packs[p][0], source_at[packs[p][1]]) for p in pack_ids),
        entries=tuple(fmt.Entry(chunk_id=e.chunk_id, pack=pack_at[e.pack], length=e.length) for e in group),
    )
