"""The manifest body (formats/manifest.py, docs/spec/manifest.md): strict, canonical, bounded."""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from formats import manifest
from formats.errors import FormatError
from formats.manifest import Manifest, Statistics, StoredObject
from tests.conftest import load_vectors

VECTORS: Any = load_vectors("manifest")

H32 = st.binary(min_size=32, max_size=32)
ID16 = st.binary(min_size=16, max_size=16)
U64 = st.integers(min_value=0, max_value=2**64 - 1)
HOST = st.from_regex(r"[a-z0-9][a-z0-9._-]{0,62}", fullmatch=True)
TAG = st.from_regex(r"[A-Za-z0-9._:=@+-]{1,64}", fullmatch=True)


@st.composite
def manifests(draw: st.DrawFn) -> Manifest:
    names = draw(st.lists(H32, min_size=2, max_size=8, unique=True))
    tree_root_pack, chunk_index = draw(st.permutations(names))[:2]
    objects = tuple(
        sorted((StoredObject(n, draw(st.integers(1, 2**64 - 1))) for n in names), key=lambda o: o.name)
    )
    backup_id = draw(ID16)
    return Manifest(
        backup_id=backup_id,
        account_id=draw(st.binary(min_size=16, max_size=16)),
        host_key_id=draw(H32),
        time=draw(U64),
        previous_manifest_hash=draw(st.one_of(st.just(manifest.FIRST_PREVIOUS), H32)),
        keyring_version=draw(U64),
        data_key_commitment=draw(H32),
        metadata_key_commitment=draw(H32),
        tree_root=draw(H32),
        tree_root_pack=tree_root_pack,
        chunk_index=chunk_index,
        host_name=draw(HOST),
        sources=tuple(sorted(draw(st.lists(ID16.filter(lambda b: b != backup_id), max_size=6, unique=True)))),
        objects=objects,
        statistics=Statistics(draw(U64), draw(U64), draw(U64)),
        tags=tuple(sorted(draw(st.lists(TAG, max_size=manifest.MAX_TAGS, unique=True)))),
    )


def from_fields(f: dict[str, Any]) -> Manifest:
    return Manifest(
        backup_id=bytes.fromhex(f["backup_id"]),
        account_id=bytes.fromhex(f["account_id"]),
        host_key_id=bytes.fromhex(f["host_key_id"]),
        time=f["time"],
        previous_manifest_hash=bytes.fromhex(f["previous_manifest_hash"]),
        keyring_version=f["keyring_version"],
        data_key_commitment=bytes.fromhex(f["data_key_commitment"]),
        metadata_key_commitment=bytes.fromhex(f["metadata_key_commitment"]),
        tree_root=bytes.fromhex(f["tree_root"]),
        tree_root_pack=bytes.fromhex(f["tree_root_pack"]),
        chunk_index=bytes.fromhex(f["chunk_index"]),
        host_name=f["host_name"],
        sources=tuple(bytes.fromhex(s) for s in f["sources"]),
        objects=tuple(StoredObject(bytes.fromhex(n), s) for n, s in f["objects"]),
        statistics=Statistics(**f["statistics"]),
        tags=tuple(f["tags"]),
    )


@given(manifests())
def test_round_trip(m: Manifest) -> None:
    data = manifest.encode(m)
    assert manifest.decode(data) == m
    assert manifest.encode(manifest.decode(data)) == data


@given(manifests())
def test_fixed_offsets_and_root_hash_as_specified(m: Manifest) -> None:
    data = manifest.encode(m)
    assert data[0:6] == b"OBMF\x00\x01"
    assert data[6:22] == m.backup_id
    assert data[38:70] == m.host_key_id
    assert int.from_bytes(data[70:78], "big") == m.time
    assert data[78:110] == m.previous_manifest_hash
    assert data[214:246] == m.tree_root_pack
    assert data[246:278] == m.chunk_index
    assert int.from_bytes(data[278:286], "big") == m.statistics.files
    assert int.from_bytes(data[294:302], "big") == m.statistics.added_bytes
    assert data[304 : 304 + int.from_bytes(data[302:304], "big")] == m.host_name.encode()
    # the object list is the last 4 + 40 n bytes before the root hash
    n = len(m.objects)
    list_at = len(data) - 32 - 4 - 40 * n
    object_list = data[list_at:-32]
    assert int.from_bytes(object_list[:4], "big") == n
    assert data[-32:] == hashlib.sha256(object_list).digest() == m.root_hash
    # the sources are the u16 count and 16 S bytes right before the object list
    s = len(m.sources)
    sources_at = list_at - 16 * s
    assert int.from_bytes(data[sources_at - 2 : sources_at], "big") == s
    assert [data[sources_at + 16 * i : sources_at + 16 * (i + 1)] for i in range(s)] == list(m.sources)


@settings(max_examples=30)
@given(manifests(), st.integers(min_value=0))
def test_every_strict_prefix_is_refused(m: Manifest, cut: int) -> None:
    data = manifest.encode(m)
    with pytest.raises(FormatError):
        manifest.decode(data[: cut % len(data)])


@settings(max_examples=30)
@given(manifests(), st.binary(min_size=1, max_size=8))
def test_trailing_bytes_are_refused(m: Manifest, extra: bytes) -> None:
    with pytest.raises(FormatError, match="trailing"):
        manifest.decode(manifest.encode(m) + extra)


@settings(max_examples=200)
@given(manifests(), st.data())
def test_any_byte_change_decodes_differently_or_fails(m: Manifest, data: st.DataObject) -> None:
    raw = manifest.encode(m)
    i = data.draw(st.integers(0, len(raw) - 1), label="position")
    x = data.draw(st.integers(1, 255), label="xor")
    changed = raw[:i] + bytes([raw[i] ^ x]) + raw[i + 1 :]
    try:
        other = manifest.decode(changed)
    except FormatError:
        return
    # strictness: a different byte string that still decodes is a different manifest
    assert other != m
    assert manifest.encode(other) == changed


@pytest.mark.parametrize("vector", VECTORS["good"], ids=lambda v: v["name"])
def test_golden_good_vectors(vector: dict[str, Any]) -> None:
    body = bytes.fromhex(vector["body"])
    m = manifest.decode(body)
    assert m == from_fields(vector["fields"])
    assert manifest.encode(m) == body
    assert m.root_hash.hex() == vector["root_hash"] == body[-32:].hex()


@pytest.mark.parametrize("vector", VECTORS["bad_bodies"], ids=lambda v: v["name"])
def test_golden_bad_vectors(vector: dict[str, str]) -> None:
    assert vector["error"] == "FormatError"
    with pytest.raises(FormatError, match=r"^manifest (is corrupt|is not recognised|has unsupported)"):
        manifest.decode(bytes.fromhex(vector["body"]))


GOOD = from_fields(VECTORS["good"][1]["fields"])

#: The source-list vectors and the rule each one breaks (docs/spec/manifest.md, decoding step 5).
SOURCE_VECTORS = {
    "sources not sorted": "sources are not sorted",
    "duplicate source": "sources hold a duplicate entry",
    "source names the backup itself": "the backup names itself as a source",
    "source count larger than the bytes that remain": "count 65535 does not fit",
}


@pytest.mark.parametrize(("name", "problem"), SOURCE_VECTORS.items())
def test_golden_source_vectors_name_the_rule(name: str, problem: str) -> None:
    (vector,) = [v for v in VECTORS["bad_bodies"] if v["name"] == name]
    with pytest.raises(FormatError, match=problem):
        manifest.decode(bytes.fromhex(vector["body"]))


def test_golden_vectors_hold_no_wrapped_keys_only_sources() -> None:
    first, later = (from_fields(v["fields"]) for v in VECTORS["good"])
    assert first.sources == ()
    assert len(later.sources) == 3
    assert all("wrapped_keys" not in v["fields"] for v in VECTORS["good"])


def test_smallest_manifest_is_424_bytes() -> None:
    """docs/spec/manifest.md: one-byte host name, no tags, no sources, two objects."""
    smallest = dataclasses.replace(GOOD, host_name="a", tags=(), sources=(), objects=GOOD.objects[:2])
    smallest = dataclasses.replace(
        smallest, tree_root_pack=smallest.objects[0].name, chunk_index=smallest.objects[1].name
    )
    data = manifest.encode(smallest)
    assert len(data) == 302 + 3 + 1 + 2 + 4 + 80 + 32 == 424
    assert manifest.decode(data) == smallest


def test_each_source_is_sixteen_bytes() -> None:
    base = dataclasses.replace(GOOD, sources=())
    assert len(manifest.encode(GOOD)) == len(manifest.encode(base)) + 16 * len(GOOD.sources)


def test_source_limit_is_the_u16_count() -> None:
    ids = tuple(i.to_bytes(16, "big") for i in range(1, manifest.MAX_SOURCES + 1))
    m = dataclasses.replace(GOOD, backup_id=bytes(16), sources=ids)
    assert manifest.decode(manifest.encode(m)).sources == ids


def test_sources_may_sort_on_either_side_of_the_backup_id() -> None:
    """Only the backup's own id is excluded; where it would sort among the sources is irrelevant."""
    middle = (GOOD.sources[0], GOOD.sources[-1])
    between = (int.from_bytes(middle[0], "big") + 1).to_bytes(16, "big")
    assert middle[0] < between < middle[1]
    m = dataclasses.replace(GOOD, backup_id=between)
    assert manifest.decode(manifest.encode(m)) == m


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"host_name": "../x"}, "host name"),
        ({"host_name": ""}, "host name"),
        ({"host_name": "a" * 64}, "host name"),
        ({"host_name": "Web-1"}, "host name"),
        ({"host_name": "-web"}, "host name"),
        ({"host_name": "wéb"}, "host name"),
        ({"tags": ("b", "a")}, "tags are not sorted"),
        ({"tags": ("a", "a")}, "duplicate"),
        ({"tags": ("has space",)}, "tag"),
        ({"tags": tuple(f"t{i:02}" for i in range(17))}, "tags"),
        ({"sources": GOOD.sources[::-1]}, "sources are not sorted"),
        ({"sources": (GOOD.sources[0], *GOOD.sources)}, "sources hold a duplicate"),
        ({"sources": tuple(sorted((*GOOD.sources, GOOD.backup_id)))}, "names itself as a source"),
        ({"sources": (bytes(15),)}, "16-byte backup id"),
        ({"sources": (bytes(17),)}, "16-byte backup id"),
        ({"sources": tuple(i.to_bytes(16, "big") for i in range(manifest.MAX_SOURCES + 1))}, "at most 65535"),
        ({"objects": ()}, "objects"),
        ({"objects": GOOD.objects[::-1]}, "not sorted"),
        ({"objects": (GOOD.objects[0], *GOOD.objects)}, "duplicate"),
        ({"objects": (StoredObject(GOOD.objects[0].name, 0), *GOOD.objects[1:])}, "size"),
        ({"objects": (StoredObject(b"short", 1), *GOOD.objects)}, "32-byte name"),
        ({"objects": tuple(o for o in GOOD.objects if o.name == GOOD.tree_root_pack)}, "lists 2 to"),
        ({"tree_root_pack": bytes(32)}, "tree root pack is not in the object list"),
        ({"chunk_index": bytes(32)}, "chunk index is not in the object list"),
        ({"chunk_index": GOOD.tree_root_pack}, "chunk index and the tree root pack are the same"),
        ({"time": -1}, "time"),
        ({"keyring_version": 2**64}, "keyring version"),
        ({"statistics": Statistics(files=2**64)}, "file count"),
        ({"backup_id": bytes(15)}, "16 bytes"),
        ({"host_key_id": bytes(33)}, "32 bytes"),
    ],
)
def test_encode_refuses_non_canonical_values(change: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        manifest.encode(dataclasses.replace(GOOD, **change))


def test_first_previous_is_all_zero() -> None:
    assert bytes(32) == manifest.FIRST_PREVIOUS
    assert manifest.decode(bytes.fromhex(VECTORS["good"][0]["body"])).previous_manifest_hash == bytes(32)


def test_object_list_hash_covers_count_and_sizes() -> None:
    objs = GOOD.objects
    assert manifest.object_list_hash(objs) != manifest.object_list_hash(objs[:-1])
    bumped = (*objs[:-1], StoredObject(objs[-1].name, objs[-1].size + 1))
    assert manifest.object_list_hash(objs) != manifest.object_list_hash(bumped)
