#!/usr/bin/env python3
"""Make tests/vectors/tree.json: golden vectors of metadata tree nodes (docs/spec/tree.md), hex.

Run from the repository root: ``.venv/bin/python tests/vectors/make_tree_vectors.py``.
Everything is fixed here (chunk ids are SHA-256 of labels). ``--check`` regenerates in memory and
fails if the file would change.

* ``good``: nodes with every field of every record, decoded by ``formats.tree.decode``.
* ``bad_nodes``: bytes ``decode`` refuses with a ``FormatError`` whose message contains ``match``.
  They are laid out by :func:`raw_node` / :func:`rec`, without the encoder's checks.
* ``good_streams`` / ``bad_streams``: lists of nodes (each decodes) that
  ``formats.tree.StreamChecker(pack_count=...)`` accepts, or refuses (in ``feed`` or ``finish``)
  with a ``FormatError`` whose message contains ``match``.
"""

from __future__ import annotations

import hashlib
import json
import stat
import sys
from pathlib import Path
from typing import Any

from formats import tree
from formats._wire import Writer
from formats.tree import ChunkRef, Kind, Record

HERE = Path(__file__).resolve().parent
OUT = HERE / "tree.json"

REG, DIR, LNK = stat.S_IFREG, stat.S_IFDIR, stat.S_IFLNK


def cid(label: str) -> bytes:
    """A fixed 32-byte stand-in for a keyed chunk id."""
    return hashlib.sha256(label.encode()).digest()


def ref(label: str, pack: int, length: int) -> ChunkRef:
    return ChunkRef(cid(label), pack, length)


# One small backup: every kind, a hard link, a continuation, a negative mtime, a non-UTF-8 name.
STREAM: tuple[Record, ...] = (
    Record(Kind.DIR, b"etc", mode=DIR | 0o755, uid=0, gid=0, mtime_ns=1_700_000_000_123_456_789),
    Record(
        Kind.FILE,
        b"etc/hostname",
        mode=REG | 0o644,
        mtime_ns=1_700_000_001_000_000_000,
        size=6,
        chunks=(ref("hostname", 0, 6),),
    ),
    Record(
        Kind.SYMLINK,
        b"etc/localtime",
        mode=LNK | 0o777,
        mtime_ns=1_600_000_000_000_000_000,
        target=b"/usr/share/zoneinfo/UTC",
    ),
    Record(Kind.DIR, b"home", mode=DIR | 0o755, mtime_ns=-1),
    Record(Kind.DIR, b"home/ann", mode=DIR | 0o700, uid=1000, gid=1000, mtime_ns=-86_400_000_000_000),
    Record(
        Kind.FILE,
        b"home/ann/big.iso",
        mode=REG | 0o600,
        uid=1000,
        gid=1000,
        mtime_ns=1_700_000_002_000_000_000,
        size=3 * 1024 * 1024 + 10,
        link_group=1,
        chunks=(ref("iso 0", 1, 1024 * 1024), ref("iso 1", 1, 1024 * 1024)),
    ),
    Record(
        Kind.CONTINUATION, b"home/ann/big.iso", chunks=(ref("iso 2", 2, 1024 * 1024), ref("iso 3", 2, 10))
    ),
    Record(Kind.FILE, b"home/ann/caf\xe9", mode=REG | 0o640, uid=1000, gid=100, mtime_ns=0, size=0),
    Record(Kind.HARDLINK, b"home/ann/copy.iso", target=b"home/ann/big.iso"),
    Record(Kind.SPECIAL, b"home/ann/fifo", mode=stat.S_IFIFO | 0o600, uid=1000, gid=1000),
    Record(Kind.SPECIAL, b"null", mode=stat.S_IFCHR | 0o666, mtime_ns=5, rdev=(1 << 8) | 3),
    Record(Kind.SPECIAL, b"sda", mode=stat.S_IFBLK | 0o660, gid=6, rdev=(8 << 8)),
)
#: The stream cut in three nodes, the second cut inside the file continued by a CONTINUATION.
NODES = (STREAM[:6], STREAM[6:9], STREAM[9:])
PACK_COUNT = 3


def record_fields(r: Record) -> dict[str, Any]:
    return {
        "kind": r.kind.name,
        "path": r.path.hex(),
        "mode": r.mode,
        "uid": r.uid,
        "gid": r.gid,
        "mtime_ns": r.mtime_ns,
        "size": r.size,
        "link_group": r.link_group,
        "target": r.target.hex(),
        "rdev": r.rdev,
        "chunks": [[c.chunk_id.hex(), c.pack, c.length] for c in r.chunks],
    }


# Raw layout without the encoder's checks.


def meta(mode: int = REG | 0o644, uid: int = 0, gid: int = 0, mtime: int = 0) -> bytes:
    return Writer().u32(mode).u32(uid).u32(gid).u64(mtime).getvalue()


def chunk_list(*refs: tuple[bytes, int, int], count: int | None = None) -> bytes:
    w = Writer().u32(len(refs) if count is None else count)
    for chunk_id, pack, length in refs:
        w.raw(chunk_id).u32(pack).u32(length)
    return w.getvalue()


def rec(kind: int, path: bytes, body: bytes) -> bytes:
    return Writer().u8(kind).bytes16(path).raw(body).getvalue()


def file_rec(path: bytes, size: int = 0, *refs: tuple[bytes, int, int], mode: int = REG | 0o644) -> bytes:
    return rec(1, path, meta(mode) + Writer().u64(size).u64(0).getvalue() + chunk_list(*refs))


def dir_rec(path: bytes, mode: int = DIR | 0o755) -> bytes:
    return rec(2, path, meta(mode))


def raw_node(*records: bytes, count: int | None = None, magic: bytes = b"OBTR", version: int = 1) -> bytes:
    w = Writer().raw(magic).u16(version).u32(len(records) if count is None else count)
    for r in records:
        w.raw(r)
    return w.getvalue()


C1 = (cid("c1"), 0, 100)


def bad_nodes() -> list[tuple[str, bytes, str]]:
    good = tree.encode(NODES[0])
    f = file_rec(b"a")
    return [
        ("empty input", b"", "wrong magic"),
        ("wrong magic", raw_node(f, magic=b"OBRT"), "wrong magic"),
        ("unsupported version 2", raw_node(f, version=2), "unsupported format version 2"),
        ("truncated inside the header", good[:8], "truncated"),
        ("truncated: last byte missing (chunk count no longer fits)", good[:-1], "does not fit"),
        ("truncated inside the last mtime", tree.encode(NODES[0][:1])[:-1], "truncated"),
        ("trailing byte", good + b"\x00", "trailing"),
        ("no records", raw_node(count=0), "record count 0"),
        ("record count beyond the bytes left", raw_node(f, count=1000), "does not fit"),
        ("record count above the limit", raw_node(f, count=tree.MAX_RECORDS + 1), "record count"),
        ("unknown record kind 0", raw_node(rec(0, b"a", meta())), "unknown record kind 0"),
        ("unknown record kind 7", raw_node(rec(7, b"a", meta())), "unknown record kind 7"),
        ("path length past the end", raw_node(f)[:11] + b"\x01\x00" + b"a" * 10, "truncated"),
        ("empty path", raw_node(file_rec(b"")), "a path is 1 to"),
        ("absolute path", raw_node(file_rec(b"/etc/passwd")), "absolute"),
        ("'..' component", raw_node(file_rec(b"../x")), "'..' component"),
        ("'..' component inside", raw_node(file_rec(b"a/../../x")), "'..' component"),
        ("'.' component", raw_node(file_rec(b"./x")), "'.' component"),
        ("NUL in a path", raw_node(file_rec(b"a\x00b")), "NUL"),
        ("doubled slash (empty component)", raw_node(file_rec(b"a//b")), "empty component"),
        ("trailing slash (empty component)", raw_node(file_rec(b"a/")), "empty component"),
        ("component of 256 bytes", raw_node(file_rec(b"a" * 256)), "longer than 255"),
        ("FILE record with directory type bits", raw_node(file_rec(b"a", mode=DIR | 0o644)), "type bits"),
        ("DIR record with regular-file type bits", raw_node(dir_rec(b"a", mode=REG | 0o755)), "type bits"),
        (
            "SPECIAL record for a socket",
            raw_node(rec(6, b"s", meta(stat.S_IFSOCK | 0o755) + bytes(8))),
            "type bits",
        ),
        ("mode with bits above the type bits", raw_node(file_rec(b"a", mode=0o1100644)), "beyond type"),
        ("chunk length 0", raw_node(file_rec(b"a", 0, (cid("c"), 0, 0))), "chunk length 0"),
        (
            "chunk length above the sealed limit",
            raw_node(file_rec(b"a", 1 << 25, (cid("c"), 0, tree.MAX_CHUNK_LENGTH + 1))),
            "chunk length",
        ),
        (
            "chunk count beyond the bytes left",
            raw_node(rec(1, b"a", meta() + bytes(16) + chunk_list(C1, count=2))),
            "does not fit",
        ),
        (
            "chunk count above the limit",
            raw_node(rec(1, b"a", meta() + bytes(16) + chunk_list(C1, count=tree.MAX_CHUNKS_PER_RECORD + 1))),
            "chunk ref count",
        ),
        ("file size below the sum of its chunks", raw_node(file_rec(b"a", 99, C1)), "size 99"),
        (
            "file size above the sum of its chunks",
            raw_node(file_rec(b"a", 101, C1), file_rec(b"b")),
            "size 101",
        ),
        ("continuation with no chunks", raw_node(f, rec(5, b"a", chunk_list())), "chunk ref count 0"),
        (
            "continuation after a directory",
            raw_node(dir_rec(b"a"), rec(5, b"a", chunk_list(C1))),
            "does not follow a FILE",
        ),
        (
            "continuation of another path",
            raw_node(file_rec(b"a", 200, C1), rec(5, b"b", chunk_list(C1))),
            "does not follow a FILE",
        ),
        (
            "continuation beyond the file's size",
            raw_node(file_rec(b"a", 150, C1), rec(5, b"a", chunk_list(C1))),
            "size 150",
        ),
        ("records not sorted", raw_node(file_rec(b"b"), file_rec(b"a")), "out of order"),
        ("records not sorted by component", raw_node(file_rec(b"a.b"), dir_rec(b"a")), "out of order"),
        ("duplicate path", raw_node(file_rec(b"a"), file_rec(b"a")), "appears twice"),
        (
            "DIR record carrying a chunk list",
            raw_node(rec(2, b"a", meta(DIR | 0o755) + chunk_list())),
            "trailing",
        ),
        ("symlink with an empty target", raw_node(rec(3, b"l", meta(LNK | 0o777) + b"\x00\x00")), "target"),
        ("symlink target with NUL", raw_node(rec(3, b"l", meta(LNK | 0o777) + b"\x00\x02a\x00")), "target"),
        ("hard link to an absolute path", raw_node(rec(4, b"b", b"\x00\x02/a")), "absolute"),
        ("hard link to '..'", raw_node(rec(4, b"b", b"\x00\x04../a")), "'..' component"),
        ("hard link to a later path", raw_node(rec(4, b"a", b"\x00\x01b")), "does not come before"),
        ("hard link to itself", raw_node(rec(4, b"a", b"\x00\x01a")), "does not come before"),
    ]


def bad_streams() -> list[tuple[str, list[bytes], int, str]]:
    one = tree.encode
    d = Record(Kind.DIR, b"a", mode=DIR | 0o755)
    f = Record(Kind.FILE, b"a", mode=REG | 0o644)
    link = Record(Kind.SYMLINK, b"a", mode=LNK | 0o777, target=b"b")
    special = Record(Kind.SPECIAL, b"a", mode=stat.S_IFIFO | 0o644)
    group = Record(Kind.FILE, b"a", mode=REG | 0o644, size=100, link_group=9, chunks=(ref("c1", 0, 100),))
    return [
        (
            "child of a symlink",
            [one([link, Record(Kind.FILE, b"a/x", mode=REG | 0o644)])],
            1,
            "inside a SYMLINK record",
        ),
        (
            "child of a file",
            [one([f]), one([Record(Kind.DIR, b"a/x", mode=DIR | 0o755)])],
            1,
            "inside a FILE record",
        ),
        (
            "child of a special file",
            [one([special, Record(Kind.FILE, b"a/x", mode=REG | 0o644)])],
            1,
            "inside a SPECIAL record",
        ),
        (
            "parent directory missing",
            [one([Record(Kind.FILE, b"a/x", mode=REG | 0o644)])],
            1,
            "no earlier DIR record",
        ),
        (
            "parent directory missing deeper",
            [one([d, Record(Kind.FILE, b"a/b/c", mode=REG | 0o644)])],
            1,
            "no earlier DIR record",
        ),
        (
            "hard link to an unknown path",
            [one([d, Record(Kind.HARDLINK, b"b", target=b"a/x")])],
            1,
            "not an earlier FILE record",
        ),
        (
            "hard link to a file without a link group",
            [one([f, Record(Kind.HARDLINK, b"b", target=b"a")])],
            1,
            "not an earlier FILE record",
        ),
        (
            "hard link to a directory",
            [one([d, Record(Kind.HARDLINK, b"b", target=b"a")])],
            1,
            "not an earlier FILE record",
        ),
        (
            "continuation first in the stream",
            [one([Record(Kind.CONTINUATION, b"a", chunks=(ref("c", 0, 1),))])],
            1,
            "does not follow a FILE",
        ),
        (
            "continuation without a file, across nodes",
            [one([d]), one([Record(Kind.CONTINUATION, b"a", chunks=(ref("c", 0, 1),))])],
            1,
            "does not follow a FILE",
        ),
        (
            "continuation of another file, across nodes",
            [one([group]), one([Record(Kind.CONTINUATION, b"b", chunks=(ref("c", 0, 1),))])],
            1,
            "does not follow a FILE",
        ),
        (
            "records out of order across nodes",
            [one([Record(Kind.FILE, b"b", mode=REG)]), one([f])],
            1,
            "out of order",
        ),
        ("duplicate path across nodes", [one([f]), one([f])], 1, "appears twice"),
        ("pack index out of range", [one([group])], 0, "names pack 0, but the backup has 0"),
        (
            "continuation's pack index out of range",
            [
                one([dataclass_replace(group, size=101)]),
                one([Record(Kind.CONTINUATION, b"a", chunks=(ref("c", 5, 1),))]),
            ],
            2,
            "names pack 5",
        ),
        (
            "wrong size sum: file larger than its chunks at the end of the stream",
            [one([dataclass_replace(group, size=150)])],
            1,
            "size 150 but its chunks hold 100 bytes",
        ),
        (
            "wrong size sum: continuation in the next node goes beyond the size",
            [one([group]), one([Record(Kind.CONTINUATION, b"a", chunks=(ref("c", 0, 1),))])],
            1,
            "size 100",
        ),
        ("no records at all", [], 1, "no records"),
    ]


def dataclass_replace(r: Record, **change: Any) -> Record:
    return Record(**{**r.__dict__, **change})


def build() -> dict[str, Any]:
    good = [
        {
            "name": f"node {i} of the sample stream",
            "hex": tree.encode(n).hex(),
            "records": [record_fields(r) for r in n],
        }
        for i, n in enumerate(NODES)
    ]
    good.append(
        {
            "name": "whole sample stream in one node",
            "hex": tree.encode(STREAM).hex(),
            "records": [record_fields(r) for r in STREAM],
        }
    )
    return {
        "description": "Metadata tree nodes (docs/spec/tree.md). 'bad_nodes' fail formats.tree.decode "
        "with a FormatError containing 'match'. Streams are lists of node plaintexts fed, record by "
        "record, to formats.tree.StreamChecker(pack_count=...); 'bad_streams' fail in feed or finish "
        "with a FormatError containing 'match'. Chunk ids are SHA-256 of labels (stand-ins).",
        "generator": "tests/vectors/make_tree_vectors.py",
        "good": good,
        "bad_nodes": [
            {"name": n, "hex": b.hex(), "error": "FormatError", "match": m} for n, b, m in bad_nodes()
        ],
        "good_streams": [
            {
                "name": "sample stream in three nodes",
                "pack_count": PACK_COUNT,
                "nodes": [tree.encode(n).hex() for n in NODES],
            },
        ],
        "bad_streams": [
            {
                "name": n,
                "pack_count": p,
                "nodes": [x.hex() for x in nodes],
                "error": "FormatError",
                "match": m,
            }
            for n, nodes, p, m in bad_streams()
        ],
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
