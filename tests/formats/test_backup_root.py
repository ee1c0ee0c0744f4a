"""The backup root (formats/backup_root.py, docs/spec/backup-root.md): strict, canonical, bounded."""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from formats import backup_root, tree
from formats._wire import Reader, Writer
from formats.backup_root import BackupRoot, NodeRef, PackKind, PackRef, Source
from formats.errors import FormatError
from tests.conftest import load_vectors

VECTORS: Any = load_vectors("backup_root")
STABLE_FULL_SHA256 = "6f602db43f65d4305d244b7cd0ce9181b1529a081c58cc69ae6948e36443e6d0"

H32 = st.binary(min_size=32, max_size=32)
ID16 = st.binary(min_size=16, max_size=16)
NAME = st.binary(min_size=1, max_size=5).filter(
    lambda n: b"/" not in n and b"\0" not in n and n not in (b".", b"..")
)
PATH = st.lists(NAME, min_size=1, max_size=3).map(b"/".join)


@st.composite
def roots(draw: st.DrawFn) -> BackupRoot:
    this = draw(ID16)
    earlier = sorted(draw(st.lists(ID16.filter(lambda x: x != this), max_size=4, unique=True)))
    sources = [Source(this, draw(H32))] + [Source(backup_id, draw(H32)) for backup_id in earlier]
    names = sorted(draw(st.lists(H32, min_size=1, max_size=8, unique=True)))
    tree_at = draw(st.integers(0, len(names) - 1))  # at least one tree pack
    packs = []
    for i, name in enumerate(names):
        kind = PackKind.TREE if i == tree_at else draw(st.sampled_from(PackKind))
        source = 0 if kind is PackKind.TREE else draw(st.integers(0, len(sources) - 1))
        packs.append(PackRef(name, source, kind))
    packs.sort(key=lambda p: (p.kind, p.name))
    tree_packs = [i for i, p in enumerate(packs) if p.kind is PackKind.TREE]
    paths = sorted(draw(st.lists(PATH, min_size=1, max_size=6)), key=tree.path_key)
    nodes = tuple(NodeRef(draw(H32), draw(st.sampled_from(tree_packs)), path) for path in paths)
    return BackupRoot(sources=tuple(sources), packs=tuple(packs), nodes=nodes)


@settings(max_examples=150)
@given(roots())
def test_round_trip(root: BackupRoot) -> None:
    data = backup_root.encode(root)
    assert backup_root.decode(data) == root
    assert backup_root.encode(backup_root.decode(data)) == data


@settings(max_examples=50)
@given(roots(), st.integers(min_value=0))
def test_every_strict_prefix_is_refused(root: BackupRoot, cut: int) -> None:
    data = backup_root.encode(root)
    with pytest.raises(FormatError):
        backup_root.decode(data[: cut % len(data)])


@settings(max_examples=30)
@given(roots(), st.binary(min_size=1, max_size=8))
def test_trailing_bytes_are_refused(root: BackupRoot, extra: bytes) -> None:
    with pytest.raises(FormatError, match="trailing"):
        backup_root.decode(backup_root.encode(root) + extra)


@settings(max_examples=300)
@given(roots(), st.data())
def test_any_byte_change_decodes_differently_or_fails(root: BackupRoot, data: st.DataObject) -> None:
    raw = backup_root.encode(root)
    i = data.draw(st.integers(0, len(raw) - 1), label="position")
    x = data.draw(st.integers(1, 255), label="xor")
    changed = raw[:i] + bytes([raw[i] ^ x]) + raw[i + 1 :]
    try:
        other = backup_root.decode(changed)
    except FormatError:
        return
    assert other != root
    assert backup_root.encode(other) == changed


def from_fields(f: dict[str, Any]) -> BackupRoot:
    return BackupRoot(
        sources=tuple(
            Source(bytes.fromhex(s["backup_id"]), bytes.fromhex(s["data_key_commitment"]))
            for s in f["sources"]
        ),
        packs=tuple(PackRef(bytes.fromhex(n), s, PackKind[k]) for n, s, k in f["packs"]),
        nodes=tuple(NodeRef(bytes.fromhex(o), p, bytes.fromhex(path)) for o, p, path in f["nodes"]),
    )


@pytest.mark.parametrize("vector", VECTORS["good"], ids=lambda v: v["name"])
def test_golden_good_vectors(vector: dict[str, Any]) -> None:
    data = bytes.fromhex(vector["hex"])
    root = from_fields(vector["fields"])
    assert backup_root.decode(data) == root
    assert backup_root.encode(root) == data


@pytest.mark.parametrize("vector", VECTORS["bad"], ids=lambda v: v["name"])
def test_golden_bad_vectors(vector: dict[str, str]) -> None:
    assert vector["error"] == "FormatError"
    with pytest.raises(
        FormatError, match=r"^backup root (is corrupt|is not recognised|has unsupported)"
    ) as exc:
        backup_root.decode(bytes.fromhex(vector["hex"]))
    assert vector["match"] in str(exc.value)
    assert "\n" not in str(exc.value)


def test_format_is_stable() -> None:
    """The exact bytes of the smallest root, written out by hand from docs/spec/backup-root.md."""
    root = BackupRoot(
        sources=(Source(bytes(range(16)), b"\xcc" * 32),),
        packs=(PackRef(b"\xaa" * 32, 0, PackKind.TREE),),
        nodes=(NodeRef(b"\xbb" * 32, 0, b"etc"),),
    )
    expected = (
        "4f425254" "0001"  # OBRT, version 1
        "0001" + bytes(range(16)).hex() + "cc" * 32  # 1 source: backup id, data key commitment
        + "00000001" + "aa" * 32 + "0000" "02"  # 1 pack: name, source 0, kind tree
        + "00000001" + "bb" * 32 + "00000000" "0003" "657463"  # 1 node: id, pack 0, "etc"
    )  # fmt: skip
    assert backup_root.encode(root).hex() == expected
    full = bytes.fromhex(VECTORS["good"][-1]["hex"])
    assert hashlib.sha256(full).hexdigest() == STABLE_FULL_SHA256


GOOD = from_fields(VECTORS["good"][-1]["fields"])
S0, S1, S2 = GOOD.sources
TREE = next(i for i, p in enumerate(GOOD.packs) if p.kind is PackKind.TREE)
DATA = next(i for i, p in enumerate(GOOD.packs) if p.kind is PackKind.DATA)


def with_node(i: int, **change: Any) -> tuple[NodeRef, ...]:
    nodes = list(GOOD.nodes)
    nodes[i] = dataclasses.replace(nodes[i], **change)
    return tuple(nodes)


def with_pack(i: int, **change: Any) -> tuple[PackRef, ...]:
    packs = list(GOOD.packs)
    packs[i] = dataclasses.replace(packs[i], **change)
    return tuple(packs)


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"sources": ()}, "1 to 65535"),
        ({"sources": (S0, S2, S1)}, "sources after source 0 are not sorted"),
        ({"sources": (S0, S1, S1)}, "duplicate"),
        ({"sources": (S0, dataclasses.replace(S1, backup_id=S0.backup_id))}, "repeats the backup id"),
        (
            {"sources": (S0, S1, dataclasses.replace(S0, data_key_commitment=S2.data_key_commitment), S2)},
            "repeats the backup id",
        ),
        ({"sources": (S0, dataclasses.replace(S1, backup_id=bytes(17)), S2)}, "16-byte backup id"),
        ({"sources": (S0, S1, dataclasses.replace(S2, data_key_commitment=bytes(33)))}, "32-byte"),
        ({"sources": (dataclasses.replace(S0, backup_id=bytes(15)), S1, S2)}, "16-byte backup id"),
        ({"sources": (dataclasses.replace(S0, data_key_commitment=bytes(31)), S1, S2)}, "32-byte"),
        ({"packs": ()}, "packs; a backup root holds 1 to"),
        ({"packs": GOOD.packs[::-1]}, "packs are not sorted"),
        ({"packs": (GOOD.packs[TREE], *(p for i, p in enumerate(GOOD.packs) if i != TREE))}, "not sorted"),
        ({"packs": (GOOD.packs[0], *GOOD.packs)}, "duplicate"),
        ({"packs": with_pack(0, name=bytes(31))}, "32 bytes"),
        ({"packs": with_pack(DATA, source=3)}, "names source 3"),
        ({"packs": with_pack(DATA, source=-1)}, "names source -1"),
        ({"packs": with_pack(TREE, source=1)}, "tree packs belong to source 0"),
        ({"packs": with_pack(DATA, kind=3)}, "unknown pack kind"),
        ({"nodes": ()}, "nodes; a backup root holds 1 to"),
        ({"nodes": with_node(0, pack=len(GOOD.packs))}, "names pack"),
        ({"nodes": with_node(0, pack=DATA)}, "not a tree pack"),
        ({"nodes": with_node(0, first_path=b"../x")}, "'..' component"),
        ({"nodes": with_node(0, first_path=b"/etc")}, "absolute"),
        ({"nodes": with_node(0, first_path=b"a//b")}, "empty component"),
        ({"nodes": with_node(0, object_id=b"short")}, "32 bytes"),
        ({"nodes": GOOD.nodes[::-1]}, "out of order"),
    ],
)
def test_encode_refuses_non_canonical_values(change: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        backup_root.encode(dataclasses.replace(GOOD, **change))


def test_equal_first_paths_are_allowed() -> None:
    """A node may start with the continuation of the file the node before it started with."""
    paths = [n.first_path for n in GOOD.nodes]
    assert len(set(paths)) < len(paths)
    assert backup_root.decode(backup_root.encode(GOOD)) == GOOD


def test_source_is_exactly_48_bytes() -> None:
    """docs/spec/backup-root.md: a source is backup id (16) and data key commitment (32), nothing else."""
    assert backup_root.SOURCE_SIZE == 48
    data = backup_root.encode(GOOD)
    for i, src in enumerate(GOOD.sources):
        assert data[8 + 48 * i : 8 + 48 * (i + 1)] == src.backup_id + src.data_key_commitment
    assert int.from_bytes(data[8 + 48 * 3 : 8 + 48 * 3 + 4], "big") == len(GOOD.packs)
    one_less = dataclasses.replace(
        GOOD,
        sources=GOOD.sources[:2],
        packs=tuple(dataclasses.replace(p, source=min(p.source, 1)) for p in GOOD.packs),
    )
    assert len(data) == len(backup_root.encode(one_less)) + 48


def test_smallest_root_is_138_bytes() -> None:
    """docs/spec/backup-root.md: one source, one pack, one node with a one-byte first path."""
    root = BackupRoot(
        sources=(Source(bytes(16), bytes(32)),),
        packs=(PackRef(bytes(32), 0, PackKind.TREE),),
        nodes=(NodeRef(bytes(32), 0, b"a"),),
    )
    assert len(backup_root.encode(root)) == 6 + 2 + 48 + 4 + 35 + 4 + 39 == 138


def test_source_helpers_round_trip() -> None:
    w = Writer()
    backup_root.write_source(w, S1)
    raw = w.getvalue()
    assert raw == S1.backup_id + S1.data_key_commitment
    r = Reader(raw + b"tail", "source")
    assert backup_root.read_source(r) == S1
    assert r.remaining == 4
    backup_root.check_source(S1)
    with pytest.raises(ValueError, match="16-byte backup id"):
        backup_root.check_source(Source(bytes(16), bytes(31)))


def test_source_zero_is_not_ordered_against_the_others() -> None:
    """Source 0 (this backup) may sort anywhere among the earlier sources; only its id is excluded."""
    assert S1.backup_id < S0.backup_id < S2.backup_id  # so in the golden vector, too
    for this in (bytes(16), b"\xff" * 16):
        root = dataclasses.replace(GOOD, sources=(dataclasses.replace(S0, backup_id=this), S1, S2))
        assert backup_root.decode(backup_root.encode(root)) == root


def test_hostile_counts_are_refused_before_allocating() -> None:
    head = b"OBRT\x00\x01" + b"\xff\xff"
    with pytest.raises(FormatError, match="does not fit"):
        backup_root.decode(head + bytes(100))
    minimal = bytes.fromhex(VECTORS["good"][0]["hex"])
    pack_count_at = 6 + 2 + backup_root.SOURCE_SIZE
    forged = (
        minimal[:pack_count_at] + (backup_root.MAX_PACKS).to_bytes(4, "big") + minimal[pack_count_at + 4 :]
    )
    with pytest.raises(FormatError, match="does not fit"):
        backup_root.decode(forged)
