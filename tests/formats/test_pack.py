"""Pack files (formats/pack.py, crypto/packs.py, docs/spec/pack.md)."""

from __future__ import annotations

import io
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crypto.aead import SealingKey
from crypto.packs import finish_pack, open_entry, open_index, open_pack, read_pack_index
from formats import errors, pack
from formats.errors import FormatError, IntegrityError
from formats.pack import PackEntry, PackStreamReader, PackWriter
from formats.sealed import ObjectType
from tests.conftest import load_vectors

VECTORS: Any = load_vectors("pack")
KEY = bytes.fromhex(VECTORS["key"])
BID = bytes.fromhex(VECTORS["backup_id"])
GOOD = bytes.fromhex(VECTORS["good"]["hex"])
OTHER_BID = bytes(16)
DATA = ObjectType.DATA_CHUNK


class Trickle(io.RawIOBase):
    """A stream that hands out at most 7 bytes per read, to exercise short reads."""

    def __init__(self, data: bytes) -> None:
        self._data, self._pos = data, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buf: Any) -> int:
        n = min(len(buf), 7, len(self._data) - self._pos)
        buf[:n] = self._data[self._pos : self._pos + n]
        self._pos += n
        return n


def build(key: SealingKey, backup_id: bytes, objects: list[tuple[ObjectType, bytes, bytes]]) -> bytes:
    w = PackWriter(backup_id)
    for t, oid, pt in objects:
        w.add(t, oid, key.seal(pt, obj_type=t, backup_id=backup_id, object_id=oid))
    return finish_pack(w, key)


def stream(data: bytes) -> tuple[list[PackEntry], PackStreamReader]:
    reader = PackStreamReader(io.BufferedReader(Trickle(data), buffer_size=5))
    return list(reader), reader


# --- the golden vector -------------------------------------------------------------------------


def test_good_vector_opens_to_its_entries() -> None:
    k = SealingKey(KEY)
    opened = open_pack(GOOD, k, backup_id=BID)
    want = VECTORS["good"]["entries"]
    assert [(int(e.object_type), e.object_id.hex(), e.offset, e.length) for e in opened.index] == [
        (e["obj_type"], e["object_id"], e["offset"], e["length"]) for e in want
    ]
    for entry, w in zip(opened.pack.entries, want, strict=True):
        assert open_entry(entry, k, backup_id=BID).hex() == w["plaintext"]
        assert GOOD[w["offset"] : w["offset"] + w["length"]] == entry.sealed


def test_decoded_entries_are_views_into_the_pack_not_copies() -> None:
    data = bytes(GOOD)
    decoded = pack.decode(data)
    for entry, w in zip(decoded.entries, VECTORS["good"]["entries"], strict=True):
        assert isinstance(entry.sealed, memoryview)
        assert entry.sealed.obj is data  # no 16 MiB copy per pack on restore
        assert entry.sealed == data[w["offset"] : w["offset"] + w["length"]]


def test_good_vector_reencodes_and_rebuilds_exactly() -> None:
    assert pack.encode(pack.decode(GOOD)) == GOOD
    k = SealingKey(KEY)
    w = PackWriter(BID)
    for e in VECTORS["good"]["entries"]:
        t, oid = ObjectType(e["obj_type"]), bytes.fromhex(e["object_id"])
        w.add(
            t,
            oid,
            k.seal_with_nonce(
                bytes.fromhex(e["nonce"]),
                bytes.fromhex(e["plaintext"]),
                obj_type=t,
                backup_id=BID,
                object_id=oid,
            ),
        )
    assert w.final_size == len(GOOD)
    assert w.body_hash().hex() == VECTORS["good"]["body_hash"]
    assert w.index_plaintext().hex() == VECTORS["good"]["index_plaintext"]
    index = k.seal_with_nonce(
        bytes.fromhex(VECTORS["good"]["index_nonce"]),
        w.index_plaintext(),
        obj_type=ObjectType.PACK_INDEX,
        backup_id=BID,
        object_id=w.body_hash(),
    )
    assert w.finish(index) == GOOD


def test_good_vector_layout() -> None:
    assert GOOD[:6] == b"OBPK\x00\x01"
    assert GOOD[6:22] == BID
    assert GOOD[-6:] == b"\x00\x01OBPT"
    trailer = pack.decode_trailer(GOOD[-42:])
    assert trailer.body_hash.hex() == VECTORS["good"]["body_hash"]
    start, end = trailer.index_range(len(GOOD))
    assert GOOD[start - 1] == pack.END_MARKER
    assert end - start == pack.sealed_index_size(len(VECTORS["good"]["entries"]))


def test_good_vector_streams_and_tail_reads_the_same() -> None:
    k = SealingKey(KEY)
    whole = open_pack(GOOD, k, backup_id=BID)
    entries, reader = stream(GOOD)
    assert reader.backup_id == BID
    assert tuple(entries) == whole.pack.entries
    assert reader.tail is not None
    assert reader.tail == pack.read_tail(io.BytesIO(GOOD))
    assert open_index(reader.tail, k, backup_id=BID) == whole.index
    assert read_pack_index(io.BytesIO(GOOD), k, backup_id=BID) == whole.index
    with pytest.raises(ValueError, match="only once"):
        list(reader)


@pytest.mark.parametrize("v", VECTORS["bad"], ids=lambda v: v["name"])
def test_bad_vectors(v: dict[str, Any]) -> None:
    with pytest.raises(getattr(errors, v["error"])):
        open_pack(bytes.fromhex(v["hex"]), SealingKey(KEY), backup_id=BID)


@pytest.mark.parametrize("v", VECTORS["bad"], ids=lambda v: v["name"])
def test_bad_vectors_fail_through_the_stream_too(v: dict[str, Any]) -> None:
    def read_and_check(data: bytes) -> None:
        entries, reader = stream(data)
        assert reader.tail is not None
        pack.check_index(open_index(reader.tail, SealingKey(KEY), backup_id=BID), entries)

    with pytest.raises((FormatError, IntegrityError)):
        read_and_check(bytes.fromhex(v["hex"]))


# --- every byte is covered ---------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(st.integers(0, len(GOOD) - 1), st.integers(1, 255))
def test_flipping_any_byte_is_detected(position: int, mask: int) -> None:
    bad = bytearray(GOOD)
    bad[position] ^= mask
    with pytest.raises((FormatError, IntegrityError)):
        open_pack(bytes(bad), SealingKey(KEY), backup_id=BID)


def test_flipping_each_byte_is_detected_exhaustively() -> None:
    k = SealingKey(KEY)
    for position in range(len(GOOD)):
        bad = bytearray(GOOD)
        bad[position] ^= 0x01
        with pytest.raises((FormatError, IntegrityError)):
            open_pack(bytes(bad), k, backup_id=BID)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, len(GOOD) - 1))
def test_truncation_is_detected(size: int) -> None:
    with pytest.raises((FormatError, IntegrityError)):
        open_pack(GOOD[:size], SealingKey(KEY), backup_id=BID)
    with pytest.raises(FormatError):
        stream(GOOD[:size])


def test_wrong_key_and_wrong_backup() -> None:
    with pytest.raises(IntegrityError):
        open_pack(GOOD, SealingKey(bytes(32)), backup_id=BID)
    with pytest.raises(IntegrityError, match="belongs to backup"):
        open_pack(GOOD, SealingKey(KEY), backup_id=OTHER_BID)
    with pytest.raises(IntegrityError):
        read_pack_index(io.BytesIO(GOOD), SealingKey(KEY), backup_id=OTHER_BID)


def test_moving_a_sealed_chunk_is_detected() -> None:
    """A sealed chunk copied into a well-formed pack under another backup, id or type does not open."""
    k = SealingKey(KEY)
    entry = pack.decode(GOOD).entries[0]
    assert entry.object_type is DATA
    other_id = bytes(32)
    for backup_id, object_id, obj_type in [
        (OTHER_BID, entry.object_id, DATA),
        (BID, other_id, DATA),
        (BID, entry.object_id, ObjectType.TREE_NODE),
    ]:
        w = PackWriter(backup_id)
        w.add(obj_type, object_id, entry.sealed)
        moved = open_pack(finish_pack(w, k), k, backup_id=backup_id)  # the pack itself is fine
        with pytest.raises(IntegrityError):
            open_entry(moved.pack.entries[0], k, backup_id=backup_id)


# --- property tests over random packs ---------------------------------------------------------

objects = st.lists(
    st.tuples(st.sampled_from(sorted(pack.PACKABLE_TYPES)), st.binary(min_size=32, max_size=32),
              st.binary(min_size=1, max_size=120)),
    min_size=1, max_size=6, unique_by=lambda o: o[1],
)  # fmt: skip


@settings(max_examples=40, deadline=None)
@given(objects, st.binary(min_size=16, max_size=16))
def test_random_packs_roundtrip_every_way(
    objs: list[tuple[ObjectType, bytes, bytes]], backup_id: bytes
) -> None:
    k = SealingKey(KEY)
    data = build(k, backup_id, objs)
    assert pack.encode(pack.decode(data)) == data
    opened = open_pack(data, k, backup_id=backup_id)
    assert [open_entry(e, k, backup_id=backup_id) for e in opened.pack.entries] == [o[2] for o in objs]
    entries, reader = stream(data)
    assert tuple(entries) == opened.pack.entries
    assert reader.tail == pack.read_tail(io.BytesIO(data))
    assert read_pack_index(io.BytesIO(data), k, backup_id=backup_id) == opened.index


# --- the writer ----------------------------------------------------------------------------------


def test_writer_sizes_are_exact() -> None:
    k = SealingKey(KEY)
    w = PackWriter(BID)
    assert w.size == pack.HEADER_SIZE
    assert w.entry_count == 0
    where = w.add(DATA, bytes(32), k.seal(b"\x00abc", obj_type=DATA, backup_id=BID, object_id=bytes(32)))
    assert where.offset == pack.HEADER_SIZE + pack.ENTRY_HEADER_SIZE
    assert where.length == 64
    assert w.size == where.offset + where.length
    final = w.final_size
    assert len(finish_pack(w, k)) == final == w.size + 1 + pack.sealed_index_size(1) + pack.TRAILER_SIZE


def test_writer_refuses_invalid_entries() -> None:
    w = PackWriter(BID)
    box = bytes(pack.MIN_SEALED)
    with pytest.raises(ValueError, match="cannot be a pack entry"):
        w.add(ObjectType.PACK_INDEX, bytes(32), box)
    with pytest.raises(ValueError, match="32 bytes"):
        w.add(DATA, bytes(31), box)
    with pytest.raises(ValueError, match="outside"):
        w.add(DATA, bytes(32), box[:-1])
    w.add(DATA, bytes(32), box)
    with pytest.raises(ValueError, match="already in the pack"):
        w.add(ObjectType.TREE_NODE, bytes(32), box)
    with pytest.raises(ValueError, match="wrong length"):
        w.finish(bytes(10))
    with pytest.raises(ValueError, match="16 bytes"):
        PackWriter(bytes(15))


def test_writer_refuses_empty_and_finished_packs() -> None:
    k = SealingKey(KEY)
    with pytest.raises(ValueError, match="at least one entry"):
        finish_pack(PackWriter(BID), k)
    w = PackWriter(BID)
    w.add(DATA, bytes(32), bytes(pack.MIN_SEALED))
    finish_pack(w, k)
    with pytest.raises(ValueError, match="finished"):
        w.add(DATA, bytes(range(32)), bytes(pack.MIN_SEALED))


def test_writer_cuts_at_the_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pack, "MAX_ENTRIES", 2)
    w = PackWriter(BID)
    for i in range(2):
        assert w.fits(pack.MIN_SEALED)
        w.add(DATA, bytes([i]) * 32, bytes(pack.MIN_SEALED))
    assert not w.fits(pack.MIN_SEALED)
    with pytest.raises(ValueError, match="full"):
        w.add(DATA, bytes([9]) * 32, bytes(pack.MIN_SEALED))
    fresh = PackWriter(BID)
    limit = fresh.final_size + pack.ENTRY_HEADER_SIZE + pack.INDEX_ENTRY_SIZE + 100
    monkeypatch.setattr(pack, "MAX_PACK_SIZE", limit)
    assert fresh.fits(100)
    assert not fresh.fits(101)
    fresh.add(DATA, bytes(32), bytes(100))
    assert fresh.final_size == limit


# --- the index, the trailer and the tail ------------------------------------------------------


def test_index_is_strict() -> None:
    plaintext = bytes.fromhex(VECTORS["good"]["index_plaintext"])
    body_end = len(GOOD) - pack.TRAILER_SIZE - len(pack.decode(GOOD).sealed_index)
    index = pack.decode_index(plaintext, body_end=body_end)
    assert pack.encode_index(index) == plaintext
    for bad, match in [
        (plaintext + b"\x00", "trailing"),
        (plaintext[:-1], "does not fit"),
        (b"OBPX" + plaintext[4:], "magic"),
        (plaintext[:4] + b"\x00\x02" + plaintext[6:], "version"),
        (plaintext[:6] + b"\x00\x00\x00\x00", "count 0"),
        (plaintext[:6] + b"\x00\x00\x00\x09" + plaintext[10:], "does not fit"),
        (plaintext[:43] + bytes([0, 0, 0, 60]) + plaintext[47:], "contiguous"),
        (plaintext[:47] + bytes([0, 0, 0, 60]) + plaintext[51:], "outside"),
        (plaintext[:10] + b"\x03" + plaintext[11:], "cannot be a pack entry"),
        (plaintext[:10] + b"\x00" + plaintext[11:], "unknown object type 0"),
        (plaintext[:52] + plaintext[11:43] + plaintext[84:], "listed twice"),
    ]:
        with pytest.raises(FormatError, match=match):
            pack.decode_index(bad, body_end=body_end)
    with pytest.raises(FormatError, match="body at"):
        pack.decode_index(plaintext, body_end=body_end + 1)


def test_trailer_is_strict() -> None:
    trailer = GOOD[-42:]
    assert pack.encode_trailer(pack.decode_trailer(trailer)) == trailer
    for bad, match in [
        (trailer[:-1], "not recognised"),
        (trailer[:-1] + b"Q", "not recognised"),
        (trailer[:36] + b"\x00\x02" + trailer[38:], "version"),
        (trailer[:32] + (70).to_bytes(4, "big") + trailer[36:], "not the length"),
        (trailer[:32] + (112).to_bytes(4, "big") + trailer[36:], "not the length"),
    ]:
        with pytest.raises(FormatError, match=match):
            pack.decode_trailer(bad)
    t = pack.decode_trailer(trailer)
    for size in (0, 100, pack.MAX_PACK_SIZE + 1):
        with pytest.raises(FormatError):
            t.index_range(size)


def test_tail_reader_refuses_short_files() -> None:
    with pytest.raises(FormatError, match="truncated"):
        pack.read_tail(io.BytesIO(GOOD[-41:]))
    with pytest.raises(FormatError, match="larger than the pack"):
        pack.read_tail(io.BytesIO(GOOD[-200:]))


def test_stream_refuses_trailing_bytes() -> None:
    with pytest.raises(FormatError, match="trailing"):
        stream(GOOD + b"\x00")


def test_decode_refuses_oversized_packs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pack, "MAX_PACK_SIZE", len(GOOD) - 1)
    with pytest.raises(FormatError, match="exceeds"):
        pack.decode(GOOD)
