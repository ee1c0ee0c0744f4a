#!/usr/bin/env python3
"""Make tests/vectors/backup_root.json: golden vectors of backup roots (docs/spec/backup-root.md).

Run from the repository root: ``.venv/bin/python tests/vectors/make_backup_root_vectors.py``.
Everything is fixed here (ids, names and commitments are SHA-256 of labels; a source is a backup
id and a data key commitment, no wrapped key: those are in key envelopes). ``--check`` regenerates
in memory and fails if the file would change.

* ``good``: roots with every field, decoded by ``formats.backup_root.decode``.
* ``bad``: bytes ``decode`` refuses with a ``FormatError`` whose message contains ``match``, laid
  out by :func:`raw_root` without the encoder's checks.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

from formats import backup_root
from formats._wire import Writer
from formats.backup_root import BackupRoot, NodeRef, PackKind, PackRef, Source

HERE = Path(__file__).resolve().parent
OUT = HERE / "backup_root.json"


def h(label: str, n: int = 32) -> bytes:
    return hashlib.sha256(label.encode()).digest()[:n]


THIS = h("this backup", 16)
EARLIER = sorted([h("earlier backup a", 16), h("earlier backup b", 16)])

MINIMAL = BackupRoot(
    sources=(Source(THIS, h("data commitment")),),
    packs=(PackRef(h("tree pack"), 0, PackKind.TREE),),
    nodes=(NodeRef(h("node 0"), 0, b"etc"),),
)


def _packs() -> tuple[PackRef, ...]:
    rows = [
        (h("data pack 0"), 0, PackKind.DATA),
        (h("data pack 1"), 1, PackKind.DATA),
        (h("data pack 2"), 2, PackKind.DATA),
        (h("tree pack 0"), 0, PackKind.TREE),
        (h("tree pack 1"), 0, PackKind.TREE),
    ]
    return tuple(PackRef(*r) for r in sorted(rows, key=lambda r: (r[2], r[0])))


FULL_PACKS = _packs()
TREE_PACKS = [i for i, p in enumerate(FULL_PACKS) if p.kind is PackKind.TREE]
DATA_PACK = next(i for i, p in enumerate(FULL_PACKS) if p.kind is PackKind.DATA)
FULL = BackupRoot(
    sources=(
        Source(THIS, h("data commitment 2")),
        Source(EARLIER[0], h("commitment a")),
        Source(EARLIER[1], h("commitment b")),
    ),
    packs=FULL_PACKS,
    nodes=(
        NodeRef(h("node 0"), TREE_PACKS[0], b"etc"),
        NodeRef(h("node 1"), TREE_PACKS[0], b"home/ann/big.iso"),
        NodeRef(h("node 2"), TREE_PACKS[1], b"home/ann/big.iso"),  # a node starting with a continuation
        NodeRef(h("node 3"), TREE_PACKS[1], b"home/ann/caf\xe9"),
        NodeRef(h("node 4"), TREE_PACKS[1], b"var"),
    ),
)


def fields(root: BackupRoot) -> dict[str, Any]:
    return {
        "sources": [
            {"backup_id": s.backup_id.hex(), "data_key_commitment": s.data_key_commitment.hex()}
            for s in root.sources
        ],
        "packs": [[p.name.hex(), p.source, p.kind.name] for p in root.packs],
        "nodes": [[n.object_id.hex(), n.pack, n.first_path.hex()] for n in root.nodes],
    }


Src = tuple[bytes, bytes]  # backup id, data key commitment


def raw_root(
    root: BackupRoot,
    *,
    magic: bytes = b"OBRT",
    version: int = 1,
    sources: list[Src] | None = None,
    packs: list[tuple[bytes, int, int]] | None = None,
    nodes: list[tuple[bytes, int, bytes]] | None = None,
    source_count: int | None = None,
    pack_count: int | None = None,
    node_count: int | None = None,
) -> bytes:
    """Lay out a backup root like encode, without its checks; keywords replace raw fields."""
    srcs = sources if sources is not None else [(s.backup_id, s.data_key_commitment) for s in root.sources]
    pks = packs if packs is not None else [(p.name, p.source, int(p.kind)) for p in root.packs]
    nds = nodes if nodes is not None else [(n.object_id, n.pack, n.first_path) for n in root.nodes]
    w = Writer().raw(magic).u16(version).u16(len(srcs) if source_count is None else source_count)
    for backup_id, commitment in srcs:
        w.raw(backup_id).raw(commitment)
    w.u32(len(pks) if pack_count is None else pack_count)
    for name, source, kind in pks:
        w.raw(name).u16(source).u8(kind)
    w.u32(len(nds) if node_count is None else node_count)
    for object_id, pack, path in nds:
        w.raw(object_id).u32(pack).bytes16(path)
    return w.getvalue()


def bad() -> list[tuple[str, bytes, str]]:
    r = FULL
    good = backup_root.encode(r)
    s = [(x.backup_id, x.data_key_commitment) for x in r.sources]
    p = [(x.name, x.source, int(x.kind)) for x in r.packs]
    n = [(x.object_id, x.pack, x.first_path) for x in r.nodes]
    t = TREE_PACKS[0]
    return [
        ("empty input", b"", "wrong magic"),
        ("wrong magic", raw_root(r, magic=b"OBTR"), "wrong magic"),
        ("unsupported version 2", raw_root(r, version=2), "unsupported format version 2"),
        ("truncated inside source 2", good[:130], "does not fit"),
        ("truncated inside the pack count", good[: 8 + 3 * 48 + 2], "truncated"),
        ("truncated: last byte missing", good[:-1], "truncated"),
        ("trailing byte", good + b"\x00", "trailing"),
        ("no sources", raw_root(r, sources=[]), "source count 0"),
        ("source count beyond the bytes left", raw_root(r, source_count=5000), "does not fit"),
        (
            "source 0 followed by a record count (the withdrawn layout)",
            raw_root(MINIMAL)[:56] + b"\x00\x00" + raw_root(MINIMAL)[56:],
            "pack count 0",
        ),
        ("sources not sorted by backup id", raw_root(r, sources=[s[0], s[2], s[1]]), "not sorted"),
        ("duplicate source", raw_root(r, sources=[s[0], s[1], s[1]]), "duplicate"),
        (
            "source repeating this backup's id",
            raw_root(r, sources=[s[0], (s[0][0], s[1][1])]),
            "repeats the backup id of source 0",
        ),
        (
            "source repeating this backup's id in sorted position among the others",
            raw_root(r, sources=[s[0], s[1], (s[0][0], h("commitment x")), s[2]]),
            "repeats the backup id of source 0",
        ),
        ("no packs", raw_root(r, packs=[]), "pack count 0"),
        ("pack count beyond the bytes left", raw_root(r, pack_count=100000), "does not fit"),
        ("pack count above the limit", raw_root(r, pack_count=backup_root.MAX_PACKS + 1), "pack count"),
        ("packs not sorted", raw_root(r, packs=p[::-1]), "not sorted"),
        ("duplicate pack", raw_root(r, packs=[p[0], *p]), "duplicate"),
        ("unknown pack kind 0", raw_root(r, packs=[(p[0][0], p[0][1], 0), *p[1:]]), "unknown pack kind 0"),
        ("unknown pack kind 3", raw_root(r, packs=[(p[0][0], p[0][1], 3), *p[1:]]), "unknown pack kind 3"),
        ("pack source index out of range", raw_root(r, packs=[(p[0][0], 3, 1), *p[1:]]), "names source 3"),
        (
            "tree pack of an earlier source",
            raw_root(r, packs=[*p[:t], (p[t][0], 1, 2), *p[t + 1 :]]),
            "tree packs belong to source 0",
        ),
        ("no nodes", raw_root(r, nodes=[]), "node count 0"),
        ("node count beyond the bytes left", raw_root(r, node_count=1000), "does not fit"),
        (
            "node pack index out of range",
            raw_root(r, nodes=[(n[0][0], len(p), n[0][2]), *n[1:]]),
            f"names pack {len(p)}",
        ),
        (
            "node in a data pack",
            raw_root(r, nodes=[(n[0][0], DATA_PACK, n[0][2]), *n[1:]]),
            "not a tree pack",
        ),
        (
            "first path with a '..' component",
            raw_root(r, nodes=[(n[0][0], t, b"../etc"), *n[1:]]),
            "'..' component",
        ),
        ("absolute first path", raw_root(r, nodes=[(n[0][0], t, b"/etc"), *n[1:]]), "absolute"),
        ("empty first path", raw_root(r, nodes=[(n[0][0], t, b""), *n[1:]]), "a path is 1 to"),
        ("first path with NUL", raw_root(r, nodes=[(n[0][0], t, b"e\x00tc"), *n[1:]]), "NUL"),
        ("first paths out of order", raw_root(r, nodes=[n[1], n[0], *n[2:]]), "out of order"),
        (
            "first paths out of order by component",
            raw_root(r, nodes=[(n[0][0], t, b"a.b"), (n[1][0], t, b"a/b")]),
            "out of order",
        ),
    ]


def build() -> dict[str, Any]:
    return {
        "description": "Backup roots (docs/spec/backup-root.md). 'bad' fail formats.backup_root.decode "
        "with a FormatError containing 'match'. Ids, names and commitments are SHA-256 of labels; "
        "a source is a backup id and a data key commitment (wrapped keys are in key envelopes).",
        "generator": "tests/vectors/make_backup_root_vectors.py",
        "good": [
            {"name": name, "hex": backup_root.encode(root).hex(), "fields": fields(root)}
            for name, root in (
                ("one source, one tree pack, one node", MINIMAL),
                ("three sources, data and tree packs, five nodes", FULL),
            )
        ],
        "bad": [{"name": nm, "hex": b.hex(), "error": "FormatError", "match": m} for nm, b, m in bad()],
    }


def main() -> int:
    text = json.dumps(build(), indent=1) + "\n"
    if "--check" in sys.argv[1:]:
        if not OUT.exists() or OUT.read_text(encoding="utf-8") != text:
            print(f"{OUT} is out of date; run {Path(__file__).name}", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
