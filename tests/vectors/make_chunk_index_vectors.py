#!/usr/bin/env python3
"""Make tests/vectors/chunk_index.json (golden vectors, hex), deterministically.

Run from the repository root: ``.venv/bin/python tests/vectors/make_chunk_index_vectors.py``;
``--check`` regenerates in memory and fails if the file would change.

Independence: segment and object bytes are laid out here straight from docs/spec/chunk-index.md
with the generic ``Writer`` (not with formats.chunk_index), and sealing is done with pyca's
AES-GCM and HKDF directly from docs/crypto.md and docs/spec/sealed-object.md (fixed nonces), so
the vectors check the layouts, the key derivation and the AAD of the modules under test. Bad
vectors name the error class and a piece of the message (the rule) that the tests expect.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from cryptography.hazmat.primitives import hashes  # noqa: E402
from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # noqa: E402
from cryptography.hazmat.primitives.kdf.hkdf import HKDF  # noqa: E402

from formats._wire import Writer  # noqa: E402

OUT = Path(__file__).resolve().parent / "chunk_index.json"

Src = tuple[bytes, bytes]  # backup id, data key commitment
Row = tuple[bytes, int]  # pack name, source index
Ent = tuple[bytes, int, int]  # chunk id, pack index, length


def h(label: str, n: int = 32) -> bytes:
    return hashlib.sha256(label.encode()).digest()[:n]


def hkdf(key: bytes, label: bytes) -> bytes:
    return HKDF(hashes.SHA256(), 32, salt=None, info=b"opsbackup/v1/" + label).derive(key)


SECRET = h("chunk index vector dedup secret")
OTHER_SECRET = h("chunk index vector other dedup secret")
BACKUP_ID = h("chunk index vector backup id", 16)
OTHER_BACKUP_ID = h("chunk index vector other backup id", 16)


def seal(secret: bytes, plaintext: bytes, backup_id: bytes, number: int, nonce: bytes) -> bytes:
    """docs/spec/chunk-index.md "Sealing", written out: HKDF chain, AAD, AES-256-GCM."""
    k = hkdf(secret, b"chunk-index")
    enc, commitment = hkdf(k, b"aead-key"), hkdf(k, b"key-commitment")
    aad = b"OBAD" + b"\x00\x01" + b"\x04" + backup_id + bytes(28) + number.to_bytes(4, "big")
    body = AESGCM(enc).encrypt(nonce, plaintext, aad)
    return nonce + commitment + body


def source(backup_id: bytes, commitment: bytes) -> bytes:
    """A source as docs/spec/chunk-index.md lays it out: backup id (16), commitment (32)."""
    return Writer().raw(backup_id).raw(commitment).getvalue()


def segment(
    sources: list[Src],
    packs: list[Row],
    entries: list[Ent],
    *,
    magic: bytes = b"OBCS",
    version: int = 1,
    raw_sources: list[bytes] | None = None,
    pack_count: int | None = None,
    entry_count: int | None = None,
) -> bytes:
    w = Writer().raw(magic).u16(version)
    blobs = raw_sources if raw_sources is not None else [source(*s) for s in sources]
    w.u16(len(blobs))
    for b in blobs:
        w.raw(b)
    w.u32(len(packs) if pack_count is None else pack_count)
    for name, src in packs:
        w.raw(name).u16(src)
    w.u32(len(entries) if entry_count is None else entry_count)
    for cid, pack, length in entries:
        w.raw(cid).u32(pack).u32(length)
    return w.getvalue()


def obj(sealed: list[bytes], *, backup_id: bytes = BACKUP_ID, magic: bytes = b"OBCI", version: int = 1,
        count: int | None = None) -> bytes:  # fmt: skip
    w = Writer().raw(magic).u16(version).raw(backup_id).u32(len(sealed) if count is None else count)
    for s in sealed:
        w.bytes32(s)
    return w.getvalue()


# A segment with two sources, three packs and five entries (all sorted as the spec says).
SOURCES: list[Src] = sorted(
    [
        (h("source a", 16), h("commitment a")),
        (h("source b", 16), h("commitment b")),
    ]
)
PACK_NAMES = sorted(h(f"pack {i}") for i in range(3))
PACKS: list[Row] = [(PACK_NAMES[0], 0), (PACK_NAMES[1], 1), (PACK_NAMES[2], 0)]
IDS = sorted(h(f"chunk {i}") for i in range(5))
ENTRIES: list[Ent] = [(IDS[0], 0, 4096), (IDS[1], 1, 1), (IDS[2], 2, 8 * 1024 * 1024), (IDS[3], 0, 65536),
                      (IDS[4], 1, 777)]  # fmt: skip


def fields(sources: list[Src], packs: list[Row], entries: list[Ent]) -> dict[str, Any]:
    return {
        "sources": [{"backup_id": b.hex(), "data_key_commitment": c.hex()} for b, c in sources],
        "packs": [[n.hex(), s] for n, s in packs],
        "entries": [[c.hex(), p, n] for c, p, n in entries],
    }


def good_segments() -> list[dict[str, Any]]:
    full = (SOURCES, PACKS, ENTRIES)
    one = ([SOURCES[1]], [(PACK_NAMES[1], 0)], [(IDS[1], 0, 1)])
    return [
        {"name": name, "hex": segment(*f).hex(), "fields": fields(*f)}
        for name, f in (
            ("empty segment", ([], [], [])),
            ("one entry", one),
            ("two sources, three packs", full),
        )
    ]


def bad_segments() -> list[tuple[str, bytes, str]]:
    s, p, e = SOURCES, PACKS, ENTRIES
    good = segment(s, p, e)
    return [
        ("empty input", b"", "wrong magic"),
        ("wrong magic", segment(s, p, e, magic=b"OBCI"), "wrong magic"),
        ("version 2", segment(s, p, e, version=2), "unsupported format version 2"),
        ("truncated: last byte missing", good[:-1], "does not fit"),
        ("truncated inside the second source", good[:80], "does not fit"),
        ("truncated inside the pack count", good[:8 + 2 * 48 + 2], "truncated"),
        ("trailing byte", good + b"\x00", "trailing byte"),
        ("source count larger than the bytes that remain", good[:6] + b"\xff\xff" + good[8:], "does not fit"),
        ("no sources, packs naming one", segment([], p, e), "pack names source 0, but the segment has"),
        ("sources not sorted", segment(s[::-1], [(n, 1 - i) for n, i in p], e), "sources are not sorted"),
        ("duplicate source", segment([s[0], s[0]], [(n, 0) for n, _ in p[:2]] + [(p[2][0], 1)], e),
         "sources hold a duplicate"),
        ("pack names a missing source", segment(s, [*p[:2], (p[2][0], 2)], e), "pack names source 2"),
        ("packs not sorted", segment(s, [p[1], p[0], p[2]], [(c, [1, 0, 2][i], n) for c, i, n in e]),
         "packs are not sorted"),
        ("duplicate pack", segment(s, [p[0], p[0], p[1]], [(c, min(i, 2), n) for c, i, n in e]),
         "packs hold a duplicate"),
        ("pack count above the limit", segment(s, p, e, pack_count=(1 << 24) // 34 + 1), "pack count"),
        ("pack count larger than the bytes that remain", segment(s, p, e, pack_count=1000), "does not fit"),
        ("entry names a missing pack", segment(s, p, [*e[:4], (e[4][0], 3, 1)]), "entry names pack 3"),
        ("entry of length 0", segment(s, p, [*e[:4], (e[4][0], 1, 0)]), "entry length 0"),
        ("entries not sorted", segment(s, p, [e[1], e[0], *e[2:]]), "entries are not sorted"),
        ("duplicate entry", segment(s, p, [e[0], *e[:4]]), "entries hold a duplicate"),
        ("entry count above the limit", segment(s, p, e, entry_count=(1 << 24) // 40 + 1), "entry count"),
        ("entry count larger than the bytes that remain", segment(s, p, e, entry_count=6), "does not fit"),
        ("pack used by no entry", segment(s, p, [x for x in e if x[1] != 2]), "pack is used by no entry"),
        ("source used by no pack",
         segment(s, [p[0], p[2]], [(c, {0: 0, 2: 1}[i], n) for c, i, n in e if i != 1]),
         "source is used by no pack"),
    ]  # fmt: skip


def nonce(i: int) -> bytes:
    return h(f"chunk index vector nonce {i}", 12)


def good_object() -> tuple[dict[str, Any], list[bytes], list[bytes]]:
    """Two segments that split the five entries 3 + 2, sealed with fixed nonces."""
    seg0 = segment(SOURCES, PACKS, ENTRIES[:3])
    p1 = [(PACK_NAMES[0], 0), (PACK_NAMES[1], 1)]
    seg1 = segment(SOURCES, p1, [(ENTRIES[3][0], 0, ENTRIES[3][2]), (ENTRIES[4][0], 1, ENTRIES[4][2])])
    plains = [seg0, seg1]
    sealed = [seal(SECRET, pt, BACKUP_ID, i, nonce(i)) for i, pt in enumerate(plains)]
    doc = {
        "name": "two segments",
        "hex": obj(sealed).hex(),
        "segments": [pt.hex() for pt in plains],
    }
    return doc, plains, sealed


def bad_objects(sealed: list[bytes]) -> list[tuple[str, bytes, str]]:
    good = obj(sealed)
    empty = seal(SECRET, segment([], [], []), BACKUP_ID, 0, nonce(9))
    return [
        ("empty input", b"", "wrong magic"),
        ("wrong magic", obj(sealed, magic=b"OBCS"), "wrong magic"),
        ("version 2", obj(sealed, version=2), "unsupported format version 2"),
        ("truncated: last byte missing", good[:-1], "truncated"),
        ("trailing byte", good + b"\x00", "trailing byte"),
        ("no segments", obj([]), "segment count 0"),
        ("segment count above the limit", obj(sealed, count=(1 << 16) + 1), "segment count 65537"),
        ("segment count larger than the bytes that remain", obj(sealed, count=100), "does not fit"),
        ("sealed segment shorter than 76 bytes", obj([empty[:75], sealed[0]]), "shorter than 76"),
        ("sealed segment length above the limit",
         obj([empty])[:26] + ((1 << 24) + 61).to_bytes(4, "big") + empty, "exceeds the limit"),
    ]  # fmt: skip


def bad_sealed(plains: list[bytes], sealed: list[bytes]) -> list[dict[str, Any]]:
    flipped = bytearray(sealed[1])
    flipped[80] ^= 1
    other_backup = [seal(SECRET, pt, OTHER_BACKUP_ID, i, nonce(i)) for i, pt in enumerate(plains)]
    cases: list[tuple[str, bytes, str, str, dict[str, str]]] = [
        ("index of another backup", obj(sealed), "IntegrityError", "another backup",
         {"expect_backup_id": OTHER_BACKUP_ID.hex()}),
        ("wrong dedup secret", obj(sealed), "IntegrityError", "does not open",
         {"dedup_secret": OTHER_SECRET.hex()}),
        ("segments swapped", obj(sealed[::-1]), "IntegrityError", "segment 0 does not open", {}),
        ("segment moved from another backup's index", obj([sealed[0], other_backup[1]]), "IntegrityError",
         "segment 1 does not open", {}),
        ("object relabelled with another backup id", obj(other_backup, backup_id=BACKUP_ID), "IntegrityError",
         "segment 0 does not open", {}),
        ("byte of a sealed segment flipped", obj([sealed[0], bytes(flipped)]), "IntegrityError",
         "segment 1 does not open", {}),
        ("sealed segment truncated by one byte", obj([sealed[0], sealed[1][:-1]]), "IntegrityError",
         "segment 1 does not open", {}),
        ("segments in the wrong order, each sealed for its slot",
         obj([seal(SECRET, plains[1 - i], BACKUP_ID, i, nonce(i + 2)) for i in range(2)]), "FormatError",
         "do not increase strictly", {}),
        ("empty segment among two",
         obj([sealed[0], seal(SECRET, segment([], [], []), BACKUP_ID, 1, nonce(5))]), "FormatError",
         "empty segment", {}),
        ("sealed segment that is not a segment",
         obj([seal(SECRET, b"OBCX" + bytes(12), BACKUP_ID, 0, nonce(6))]), "FormatError", "wrong magic", {}),
    ]  # fmt: skip
    return [{"name": n, "hex": d.hex(), "error": e, "match": m, **x} for n, d, e, m, x in cases]


def vectors() -> dict[str, Any]:
    doc, plains, sealed = good_object()
    return {
        "description": "Chunk index (docs/spec/chunk-index.md). 'bad_segments' fail "
        "formats.chunk_index.decode_segment, 'bad_objects' fail decode_object, 'bad_sealed' fail "
        "crypto.chunk_index.open_chunk_index with dedup_secret and backup_id as given at the top "
        "unless a vector says otherwise. 'match' is a piece of the expected message.",
        "generator": "tests/vectors/make_chunk_index_vectors.py",
        "dedup_secret": SECRET.hex(),
        "backup_id": BACKUP_ID.hex(),
        "chunk_index_key": hkdf(SECRET, b"chunk-index").hex(),
        "good_segments": good_segments(),
        "good_object": doc,
        "bad_segments": [{"name": n, "hex": b.hex(), "error": "FormatError", "match": m}
                         for n, b, m in bad_segments()],
        "bad_objects": [{"name": n, "hex": b.hex(), "error": "FormatError", "match": m}
                        for n, b, m in bad_objects(sealed)],
        "bad_sealed": bad_sealed(plains, sealed),
    }  # fmt: skip


def main(argv: list[str]) -> int:
    text = json.dumps(vectors(), indent=1) + "\n"
    if "--check" in argv:
        if not OUT.exists() or OUT.read_text(encoding="utf-8") != text:
            print("out of date: chunk_index.json", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text, encoding="utf-8")
    print("wrote tests/vectors/chunk_index.json")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
