"""formats.chunk_index (docs/spec/chunk-index.md): strict, canonical, bounded; golden vectors."""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from formats import backup_root
from formats import chunk_index as ci
from formats.backup_root import Source
from formats.errors import FormatError
from formats.sealed import MAX_PLAINTEXT, MAX_SEALED
from tests.conftest import load_vectors

VECTORS: Any = load_vectors("chunk_index")

H32 = st.binary(min_size=32, max_size=32)
H16 = st.binary(min_size=16, max_size=16)


@st.composite
def segments(draw: st.DrawFn) -> ci.Segment:
    """A valid segment: every source used by a pack, every pack by an entry, all tables sorted."""
    n_sources = draw(st.integers(0, 3))
    source_ids = sorted(draw(st.lists(H16, min_size=n_sources, max_size=n_sources, unique=True)))
    sources = tuple(Source(backup_id=b, data_key_commitment=draw(H32)) for b in source_ids)
    if not sources:
        return ci.Segment(sources=(), packs=(), entries=())
    n_packs = draw(st.integers(len(sources), len(sources) + 3))
    names = sorted(draw(st.lists(H32, min_size=n_packs, max_size=n_packs, unique=True)))
    owners = list(range(len(sources))) + [
        draw(st.integers(0, len(sources) - 1)) for _ in range(n_packs - len(sources))
    ]
    owners = draw(st.permutations(owners))
    packs = tuple(zip(names, owners, strict=True))
    n_entries = draw(st.integers(n_packs, n_packs + 6))
    ids = sorted(draw(st.lists(H32, min_size=n_entries, max_size=n_entries, unique=True)))
    extra = [draw(st.integers(0, n_packs - 1)) for _ in range(n_entries - n_packs)]
    pack_of = draw(st.permutations(list(range(n_packs)) + extra))
    entries = tuple(
        ci.Entry(chunk_id=c, pack=p, length=draw(st.integers(1, 2**32 - 1)))
        for c, p in zip(ids, pack_of, strict=True)
    )
    return ci.Segment(sources=sources, packs=packs, entries=entries)


def from_fields(f: dict[str, Any]) -> ci.Segment:
    return ci.Segment(
        sources=tuple(
            Source(
                backup_id=bytes.fromhex(s["backup_id"]),
                data_key_commitment=bytes.fromhex(s["data_key_commitment"]),
            )
            for s in f["sources"]
        ),
        packs=tuple((bytes.fromhex(n), i) for n, i in f["packs"]),
        entries=tuple(ci.Entry(bytes.fromhex(c), p, n) for c, p, n in f["entries"]),
    )


@given(segments())
def test_segment_round_trip(seg: ci.Segment) -> None:
    data = ci.encode_segment(seg)
    assert ci.decode_segment(data) == seg
    assert ci.encode_segment(ci.decode_segment(data)) == data


@given(segments())
def test_segment_layout_as_specified(seg: ci.Segment) -> None:
    data = ci.encode_segment(seg)
    assert data[:6] == b"OBCS\x00\x01"
    assert int.from_bytes(data[6:8], "big") == len(seg.sources)
    for i, src in enumerate(seg.sources):  # each source: backup id (16) | data key commitment (32)
        assert data[8 + 48 * i : 56 + 48 * i] == src.backup_id + src.data_key_commitment
    packs_at = 8 + 48 * len(seg.sources)
    assert int.from_bytes(data[packs_at : packs_at + 4], "big") == len(seg.packs)
    tail = data[-(4 + 40 * len(seg.entries)) :]  # the entry table is last
    assert int.from_bytes(tail[:4], "big") == len(seg.entries)
    for i, e in enumerate(seg.entries):
        row = tail[4 + 40 * i : 44 + 40 * i]
        assert (row[:32], int.from_bytes(row[32:36], "big"), int.from_bytes(row[36:], "big")) == (
            e.chunk_id,
            e.pack,
            e.length,
        )
    assert len(data) == 16 + 48 * len(seg.sources) + 34 * len(seg.packs) + 40 * len(seg.entries)
    assert all(ci.source_size(src) == 48 for src in seg.sources)


@settings(max_examples=50)
@given(segments(), st.integers(min_value=0))
def test_every_strict_prefix_of_a_segment_is_refused(seg: ci.Segment, cut: int) -> None:
    data = ci.encode_segment(seg)
    with pytest.raises(FormatError):
        ci.decode_segment(data[: cut % len(data)])


@settings(max_examples=200)
@given(segments(), st.data())
def test_any_byte_change_decodes_differently_or_fails(seg: ci.Segment, data: st.DataObject) -> None:
    raw = ci.encode_segment(seg)
    i = data.draw(st.integers(0, len(raw) - 1), label="position")
    changed = raw[:i] + bytes([raw[i] ^ data.draw(st.integers(1, 255), label="xor")]) + raw[i + 1 :]
    try:
        other = ci.decode_segment(changed)
    except FormatError:
        return
    assert other != seg
    assert ci.encode_segment(other) == changed


@given(st.sampled_from([b"OBCS\x00\x01", b"OBCI\x00\x01", b""]), st.binary(max_size=200))
def test_arbitrary_bytes_only_ever_raise_format_error(prefix: bytes, data: bytes) -> None:
    for decode in (ci.decode_segment, ci.decode_object):
        with contextlib.suppress(FormatError):
            decode(prefix + data)


@pytest.mark.parametrize("vec", VECTORS["good_segments"], ids=lambda v: v["name"])
def test_golden_good_segments(vec: dict[str, Any]) -> None:
    raw = bytes.fromhex(vec["hex"])
    seg = ci.decode_segment(raw)
    assert seg == from_fields(vec["fields"])
    assert ci.encode_segment(seg) == raw


def test_golden_empty_segment_is_sixteen_bytes() -> None:
    empty = ci.encode_segment(ci.Segment((), (), ()))
    assert empty == bytes.fromhex(VECTORS["good_segments"][0]["hex"]) == b"OBCS\x00\x01" + bytes(10)
    assert len(empty) == ci.MIN_SEGMENT_SIZE


@pytest.mark.parametrize("vec", VECTORS["bad_segments"], ids=lambda v: v["name"])
def test_golden_bad_segments_name_the_rule(vec: dict[str, str]) -> None:
    with pytest.raises(FormatError) as info:
        ci.decode_segment(bytes.fromhex(vec["hex"]))
    message = str(info.value)
    assert message.startswith("chunk index segment ")
    assert vec["match"] in message
    assert "\n" not in message


def test_golden_good_object() -> None:
    raw = bytes.fromhex(VECTORS["good_object"]["hex"])
    obj = ci.decode_object(raw)
    assert obj.backup_id.hex() == VECTORS["backup_id"]
    assert len(obj.sealed_segments) == len(VECTORS["good_object"]["segments"])
    assert ci.encode_object(obj) == raw


@pytest.mark.parametrize("vec", VECTORS["bad_objects"], ids=lambda v: v["name"])
def test_golden_bad_objects_name_the_rule(vec: dict[str, str]) -> None:
    with pytest.raises(FormatError) as info:
        ci.decode_object(bytes.fromhex(vec["hex"]))
    assert str(info.value).startswith("chunk index ")
    assert vec["match"] in str(info.value)


@given(
    H16,
    st.lists(st.binary(min_size=ci.MIN_SEALED_SEGMENT, max_size=ci.MIN_SEALED_SEGMENT + 40), min_size=1,
             max_size=5),
)  # fmt: skip
def test_object_round_trip(backup_id: bytes, sealed: list[bytes]) -> None:
    obj = ci.ChunkIndexObject(backup_id=backup_id, sealed_segments=tuple(sealed))
    data = ci.encode_object(obj)
    assert data[:6] == b"OBCI\x00\x01"
    assert data[6:22] == backup_id
    assert int.from_bytes(data[22:26], "big") == len(sealed)
    assert ci.decode_object(data) == obj
    for cut in (len(data) - 1, 25, 0):
        with pytest.raises(FormatError):
            ci.decode_object(data[:cut])


def test_segment_object_id() -> None:
    assert ci.segment_object_id(0) == bytes(32)
    assert ci.segment_object_id(258) == bytes(30) + b"\x01\x02"
    with pytest.raises(ValueError, match="segment number"):
        ci.segment_object_id(ci.MAX_SEGMENTS)


GOOD = from_fields(VECTORS["good_segments"][2]["fields"])
SRC = GOOD.sources[0]


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"sources": GOOD.sources[::-1]}, "sources are not sorted"),
        ({"sources": (SRC, SRC)}, "sources hold a duplicate"),
        ({"sources": (dataclasses.replace(SRC, backup_id=bytes(15)), GOOD.sources[1])}, "16-byte backup id"),
        ({"sources": (dataclasses.replace(SRC, data_key_commitment=b"c"), GOOD.sources[1])}, "commitment"),
        ({"packs": GOOD.packs[::-1]}, "packs are not sorted"),
        ({"packs": ((b"short", 0), *GOOD.packs[1:])}, "pack name is 32 bytes"),
        ({"packs": (*GOOD.packs[:2], (GOOD.packs[2][0], 5))}, "pack names source 5"),
        ({"entries": GOOD.entries[::-1]}, "entries are not sorted"),
        ({"entries": (GOOD.entries[0], *GOOD.entries)}, "entries hold a duplicate"),
        ({"entries": (dataclasses.replace(GOOD.entries[0], length=0), *GOOD.entries[1:])}, "entry length 0"),
        (
            {"entries": (dataclasses.replace(GOOD.entries[0], length=2**32), *GOOD.entries[1:])},
            "entry length",
        ),
        (
            {"entries": (dataclasses.replace(GOOD.entries[0], pack=9), *GOOD.entries[1:])},
            "entry names pack 9",
        ),
        ({"entries": (dataclasses.replace(GOOD.entries[0], chunk_id=b"x"), *GOOD.entries[1:])}, "chunk id"),
        ({"entries": tuple(e for e in GOOD.entries if e.pack != 2)}, "pack is used by no entry"),
        ({"entries": ()}, "pack is used by no entry"),
    ],
)
def test_encode_segment_refuses_what_decode_refuses(change: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        ci.encode_segment(dataclasses.replace(GOOD, **change))


def test_source_used_by_no_pack_is_refused() -> None:
    entries = tuple(dataclasses.replace(e, pack=0) for e in GOOD.entries if e.pack == 0)
    seg = ci.Segment(sources=GOOD.sources, packs=(GOOD.packs[0],), entries=entries)
    with pytest.raises(ValueError, match="source is used by no pack"):
        ci.encode_segment(seg)


def test_segment_size_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    # The real limit: a 2^24 + 1 byte input is refused before anything is parsed.
    empty = ci.encode_segment(ci.Segment((), (), ()))
    with pytest.raises(FormatError, match="exceeds the limit"):
        ci.decode_segment(empty + bytes(MAX_PLAINTEXT - len(empty) + 1))
    # The boundary, exactly, under a small limit (a 2^24-byte segment takes 400k entries to build):
    # one source, one pack, E entries are 16 + 48 + 34 + 40 E bytes.
    limit = 16 + 48 + 34 + 40 * 3
    monkeypatch.setattr(ci, "MAX_PLAINTEXT", limit)
    source = (Source(bytes(16), bytes(32)),)
    packs = ((bytes(32), 0),)
    entries = tuple(ci.Entry(i.to_bytes(32, "big"), 0, 1) for i in range(4))
    fits = ci.Segment(source, packs, entries[:3])
    data = ci.encode_segment(fits)
    assert len(data) == limit
    assert ci.decode_segment(data) == fits
    with pytest.raises(ValueError, match="exceeds the limit"):
        ci.encode_segment(ci.Segment(source, packs, entries))
    with pytest.raises(FormatError, match="exceeds the limit"):
        ci.decode_segment(data + bytes(1))


def test_source_encoding_is_the_backup_roots() -> None:
    """docs/spec/chunk-index.md: a segment's source is the same 48 bytes as a backup root's."""
    seg = ci.Segment(sources=(SRC,), packs=((GOOD.packs[0][0], 0),), entries=(GOOD.entries[0],))
    seg = dataclasses.replace(seg, entries=(dataclasses.replace(GOOD.entries[0], pack=0),))
    root = backup_root.BackupRoot(
        sources=(SRC,),
        packs=(backup_root.PackRef(bytes(32), 0, backup_root.PackKind.TREE),),
        nodes=(backup_root.NodeRef(bytes(32), 0, b"a"),),
    )
    assert (
        ci.encode_segment(seg)[8:56]
        == backup_root.encode(root)[8:56]
        == SRC.backup_id + SRC.data_key_commitment
    )
    assert ci.source_size(SRC) == backup_root.SOURCE_SIZE == 48


@pytest.mark.parametrize(
    ("obj", "problem"),
    [
        (ci.ChunkIndexObject(bytes(16), ()), "1 to 65536"),
        (ci.ChunkIndexObject(bytes(15), (bytes(76),)), "16 bytes"),
        (ci.ChunkIndexObject(bytes(16), (bytes(75),)), "sealed segment of 75 bytes"),
        (ci.ChunkIndexObject(bytes(16), (bytes(MAX_SEALED + 1),)), "sealed segment of"),
    ],
)
def test_encode_object_refuses_what_decode_refuses(obj: ci.ChunkIndexObject, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        ci.encode_object(obj)
