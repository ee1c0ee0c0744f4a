"""crypto.chunk_index: seal and open a backup's chunk index; every swap, move or cut is refused."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crypto.aead import SealingKey
from crypto.chunk_index import (
    chunk_index_key,
    of_other_epoch,
    open_chunk_index,
    seal_chunk_index,
    split_segments,
)
from crypto.primitives import hkdf_sha256
from formats import chunk_index as ci
from formats import errors
from formats.backup_root import Source
from formats.errors import FormatError, IntegrityError
from formats.sealed import ObjectType
from tests.conftest import load_vectors

VECTORS: Any = load_vectors("chunk_index")
SECRET = bytes.fromhex(VECTORS["dedup_secret"])
BACKUP_ID = bytes.fromhex(VECTORS["backup_id"])
OTHER_ID = bytes(range(16))


def h(label: str) -> bytes:
    return hashlib.sha256(label.encode()).digest()


def table(
    n_sources: int, n_packs: int, n_entries: int
) -> tuple[list[Source], list[tuple[bytes, int]], list[ci.Entry]]:
    """A global table in no particular order: packs spread over sources, entries over packs."""
    sources = [Source(h(f"src {i}")[:16], h(f"commit {i}")) for i in range(n_sources)]
    packs = [(h(f"pack {i}"), i % n_sources) for i in range(n_packs)]
    entries = [ci.Entry(h(f"chunk {i}"), i % n_packs, 1000 + i) for i in range(n_entries)]
    return sources, packs, entries


def flatten(segments: list[ci.Segment] | tuple[ci.Segment, ...]) -> list[tuple[bytes, bytes, bytes, int]]:
    """Every entry as (chunk id, pack name, source backup id, length), resolved through its tables."""
    out = []
    for seg in segments:
        for e in seg.entries:
            name, src = seg.packs[e.pack]
            out.append((e.chunk_id, name, seg.sources[src].backup_id, e.length))
    return out


def test_key_is_hkdf_of_the_dedup_secret_under_its_own_label() -> None:
    assert hkdf_sha256(SECRET, b"chunk-index").hex() == VECTORS["chunk_index_key"]
    key = chunk_index_key(SECRET)
    assert key.commitment == SealingKey(bytes.fromhex(VECTORS["chunk_index_key"])).commitment
    assert key.commitment != SealingKey(hkdf_sha256(SECRET, b"chunk-id")).commitment
    with pytest.raises(ValueError, match="32 bytes"):
        chunk_index_key(SECRET[:31])


def test_golden_object_opens_to_its_segments() -> None:
    segments = open_chunk_index(
        bytes.fromhex(VECTORS["good_object"]["hex"]), dedup_secret=SECRET, backup_id=BACKUP_ID
    )
    assert [ci.encode_segment(s) for s in segments] == [
        bytes.fromhex(p) for p in VECTORS["good_object"]["segments"]
    ]


@pytest.mark.parametrize("vec", VECTORS["bad_sealed"], ids=lambda v: v["name"])
def test_golden_bad_objects_are_refused(vec: dict[str, str]) -> None:
    secret = bytes.fromhex(vec.get("dedup_secret", VECTORS["dedup_secret"]))
    backup_id = bytes.fromhex(vec.get("expect_backup_id", VECTORS["backup_id"]))
    with pytest.raises(getattr(errors, vec["error"])) as info:
        open_chunk_index(bytes.fromhex(vec["hex"]), dedup_secret=secret, backup_id=backup_id)
    assert type(info.value).__name__ == vec["error"]
    assert vec["match"] in str(info.value)
    assert "\n" not in str(info.value)


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 4), st.integers(1, 6), st.integers(0, 60), st.integers(300, 2000))
def test_split_seal_open_round_trip(n_sources: int, n_packs: int, n_entries: int, max_size: int) -> None:
    sources, packs, entries = table(n_sources, max(n_packs, n_sources), n_entries)
    segments = split_segments(sources, packs, entries, max_size=max_size)
    assert all(len(ci.encode_segment(s)) <= max_size for s in segments)
    # nothing lost, nothing added, every entry still resolves to its pack and source
    expect = sorted(
        (e.chunk_id, packs[e.pack][0], sources[packs[e.pack][1]].backup_id, e.length) for e in entries
    )
    assert flatten(segments) == expect
    data = seal_chunk_index(segments, dedup_secret=SECRET, backup_id=BACKUP_ID)
    assert open_chunk_index(data, dedup_secret=SECRET, backup_id=BACKUP_ID) == tuple(segments)
    obj = ci.decode_object(data)
    assert obj.backup_id == BACKUP_ID
    assert len(obj.sealed_segments) == len(segments)


def test_no_entries_give_one_empty_segment() -> None:
    segments = split_segments([], [], [])
    assert segments == [ci.Segment((), (), ())]
    data = seal_chunk_index(segments, dedup_secret=SECRET, backup_id=BACKUP_ID)
    assert len(data) == 106  # the smallest chunk index (docs/spec/chunk-index.md)
    assert open_chunk_index(data, dedup_secret=SECRET, backup_id=BACKUP_ID) == (ci.Segment((), (), ()),)


def test_split_keeps_only_the_rows_each_segment_uses() -> None:
    sources, packs, entries = table(3, 6, 40)
    segments = split_segments(sources, packs, entries, max_size=700)
    assert len(segments) > 3
    for seg in segments:
        ci.encode_segment(seg)  # every pack and source used, tables sorted: encode would refuse otherwise
    assert [e.chunk_id for s in segments for e in s.entries] == sorted(e.chunk_id for e in entries)


def test_split_refuses_bad_input() -> None:
    sources, packs, entries = table(2, 2, 4)
    with pytest.raises(ValueError, match="listed twice"):
        split_segments(sources, packs, [*entries, entries[0]])
    with pytest.raises(ValueError, match="names pack 7"):
        split_segments(sources, packs, [ci.Entry(h("x"), 7, 1)])
    with pytest.raises(ValueError, match="names source 5"):
        split_segments(sources, [(h("p"), 5)], [])
    with pytest.raises(ValueError, match="needs more than 100 bytes"):
        split_segments(sources, packs, entries, max_size=100)
    with pytest.raises(ValueError, match="max_size"):
        split_segments(sources, packs, entries, max_size=10)


def _sealed() -> tuple[bytes, list[bytes], tuple[ci.Segment, ...]]:
    sources, packs, entries = table(2, 4, 30)
    segments = tuple(split_segments(sources, packs, entries, max_size=600))
    assert len(segments) >= 3
    data = seal_chunk_index(segments, dedup_secret=SECRET, backup_id=BACKUP_ID)
    return data, list(ci.decode_object(data).sealed_segments), segments


def _obj(sealed: list[bytes], backup_id: bytes = BACKUP_ID) -> bytes:
    return ci.encode_object(ci.ChunkIndexObject(backup_id=backup_id, sealed_segments=tuple(sealed)))


_SEALED = _sealed()


def test_wrong_secret_is_refused() -> None:
    data, _, _ = _sealed()
    with pytest.raises(IntegrityError, match="segment 0 does not open"):
        open_chunk_index(data, dedup_secret=bytes(32), backup_id=BACKUP_ID)


def test_wrong_backup_id_is_refused() -> None:
    data, sealed, _ = _sealed()
    with pytest.raises(IntegrityError, match="another backup"):
        open_chunk_index(data, dedup_secret=SECRET, backup_id=OTHER_ID)
    # relabelling the object does not help: every segment's AAD binds the backup id
    with pytest.raises(IntegrityError, match="segment 0 does not open"):
        open_chunk_index(_obj(sealed, OTHER_ID), dedup_secret=SECRET, backup_id=OTHER_ID)


def test_swapped_reordered_and_foreign_segments_are_refused() -> None:
    _, sealed, _ = _sealed()
    other = ci.decode_object(
        seal_chunk_index(
            split_segments(*table(2, 4, 30), max_size=600), dedup_secret=SECRET, backup_id=OTHER_ID
        )
    ).sealed_segments
    for bad, where in [
        ([sealed[1], sealed[0], *sealed[2:]], 0),  # swapped
        ([*sealed[:-2], sealed[-1], sealed[-2]], len(sealed) - 2),  # last two swapped
        ([sealed[0], *sealed[2:]], 1),  # one dropped from the middle
        ([sealed[0], sealed[0], *sealed[2:]], 1),  # one repeated
        ([sealed[0], other[1], *sealed[2:]], 1),  # from another backup's index
        ([*sealed[:-1], sealed[-1][:-1]], len(sealed) - 1),  # truncated by one byte
        ([*sealed[:-1], sealed[-1][:-16] + bytes(16)], len(sealed) - 1),  # tag replaced
    ]:
        with pytest.raises(IntegrityError, match=f"segment {where} does not open"):
            open_chunk_index(_obj(bad), dedup_secret=SECRET, backup_id=BACKUP_ID)


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_any_byte_change_of_the_object_is_refused(data: st.DataObject) -> None:
    raw = _SEALED[0]
    i = data.draw(st.integers(0, len(raw) - 1), label="position")
    changed = raw[:i] + bytes([raw[i] ^ data.draw(st.integers(1, 255), label="xor")]) + raw[i + 1 :]
    with pytest.raises((FormatError, IntegrityError)):
        open_chunk_index(changed, dedup_secret=SECRET, backup_id=BACKUP_ID)


def test_truncated_object_is_refused() -> None:
    data, _, _ = _SEALED
    for cut in (0, 10, 26, 30, len(data) // 2, len(data) - 1):
        with pytest.raises(FormatError):
            open_chunk_index(data[:cut], dedup_secret=SECRET, backup_id=BACKUP_ID)


def _seal_raw(plaintexts: list[bytes]) -> bytes:
    key = chunk_index_key(SECRET)
    sealed = [
        key.seal(p, obj_type=ObjectType.CHUNK_INDEX, backup_id=BACKUP_ID, object_id=ci.segment_object_id(i))
        for i, p in enumerate(plaintexts)
    ]
    return _obj(sealed)


def test_rules_across_segments() -> None:
    _, _, segments = _SEALED
    plains = [ci.encode_segment(s) for s in segments]
    with pytest.raises(FormatError, match="do not increase strictly"):  # each sealed for its slot
        open_chunk_index(_seal_raw(plains[::-1]), dedup_secret=SECRET, backup_id=BACKUP_ID)
    empty = ci.encode_segment(ci.Segment((), (), ()))
    with pytest.raises(FormatError, match="empty segment"):
        open_chunk_index(_seal_raw([*plains, empty]), dedup_secret=SECRET, backup_id=BACKUP_ID)
    with pytest.raises(ValueError, match="do not increase strictly"):
        seal_chunk_index(segments[::-1], dedup_secret=SECRET, backup_id=BACKUP_ID)
    with pytest.raises(ValueError, match="empty segment"):
        seal_chunk_index([*segments, ci.Segment((), (), ())], dedup_secret=SECRET, backup_id=BACKUP_ID)
    with pytest.raises(ValueError, match="1 to 65536 segments"):
        seal_chunk_index([], dedup_secret=SECRET, backup_id=BACKUP_ID)
    with pytest.raises(ValueError, match="16 bytes"):
        seal_chunk_index(segments, dedup_secret=SECRET, backup_id=BACKUP_ID[:15])


def test_a_chunk_index_segment_is_not_another_object_type() -> None:
    _, sealed, _ = _SEALED
    key = chunk_index_key(SECRET)
    for obj_type in (ObjectType.TREE_NODE, ObjectType.DATA_CHUNK, ObjectType.PACK_INDEX):
        with pytest.raises(IntegrityError):
            key.open(sealed[0], obj_type=obj_type, backup_id=BACKUP_ID, object_id=ci.segment_object_id(0))


def test_an_index_of_another_dedup_epoch_is_recognised_by_its_commitment() -> None:
    data, _, _ = _sealed()
    assert of_other_epoch(data, dedup_secret=bytes(32))  # sealed under another secret's key
    assert not of_other_epoch(data, dedup_secret=SECRET)  # this epoch's (it opens)
    damaged = bytearray(data)
    damaged[-1] ^= 1  # a damaged tag, same commitment: damage, not another epoch
    assert not of_other_epoch(bytes(damaged), dedup_secret=SECRET)
    assert not of_other_epoch(b"not a chunk index", dedup_secret=SECRET)
