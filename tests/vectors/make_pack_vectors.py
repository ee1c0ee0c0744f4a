#!/usr/bin/env python3
"""Make tests/vectors/sealed.json and tests/vectors/pack.json (golden vectors, hex).

Run from the repository root: ``/tmp/venv/bin/python tests/vectors/make_pack_vectors.py``.
Everything is deterministic: keys, ids and nonces are fixed below (they are test values, never
used for anything real) and sealing goes through ``SealingKey.seal_with_nonce``. ``--check``
regenerates in memory and fails if a file would change.

Bad vectors name the error class they expect. Bad packs are built by :func:`raw_pack`, which
lays bytes out without the writer's checks, and most of them carry a correct body hash and a
correctly sealed index, so that each one reaches the very check it is about.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

from crypto.aead import SealingKey
from crypto.dedup import ChunkIdKey, chunker_key
from crypto.primitives import hkdf_sha256
from formats import pack, sealed
from formats._wire import Writer
from formats.sealed import ChunkPayload, Compression, ObjectType

HERE = Path(__file__).resolve().parent


def fixed(label: str, n: int = 32) -> bytes:
    """A fixed test value: the first ``n`` bytes of SHA-256 of ``label``."""
    return hashlib.sha256(label.encode()).digest()[:n]


KEY = fixed("vector per-backup key")
OTHER_KEY = fixed("vector other per-backup key")
BACKUP_ID = fixed("vector backup id", 16)
OTHER_BACKUP_ID = fixed("vector other backup id", 16)
DEDUP_SECRET = fixed("vector dedup secret")


def nonce(i: int) -> bytes:
    return fixed(f"vector nonce {i}", 12)


def seal(key: bytes, n: int, plaintext: bytes, t: ObjectType, backup_id: bytes, object_id: bytes) -> bytes:
    return SealingKey(key).seal_with_nonce(
        nonce(n), plaintext, obj_type=t, backup_id=backup_id, object_id=object_id
    )


def sealed_vectors() -> dict[str, Any]:
    k = SealingKey(KEY)
    good: list[dict[str, Any]] = []
    cases = [
        ("data chunk", ObjectType.DATA_CHUNK, fixed("object id 1"), b"\x00hello, world\n"),
        ("tree node", ObjectType.TREE_NODE, fixed("object id 2"), b"OBTR\x00\x01 a tree node"),
        ("empty plaintext", ObjectType.DATA_CHUNK, fixed("object id 3"), b""),
    ]
    for i, (name, t, oid, pt) in enumerate(cases):
        good.append(
            {
                "name": name,
                "obj_type": int(t),
                "backup_id": BACKUP_ID.hex(),
                "object_id": oid.hex(),
                "nonce": nonce(i).hex(),
                "plaintext": pt.hex(),
                "aad": sealed.aad(t, BACKUP_ID, oid).hex(),
                "sealed": seal(KEY, i, pt, t, BACKUP_ID, oid).hex(),
            }
        )
    base = bytes.fromhex(good[0]["sealed"])
    oid = fixed("object id 1")
    dc = int(ObjectType.DATA_CHUNK)

    def bad(name: str, data: bytes, *, t: int = dc, b: bytes = BACKUP_ID, o: bytes = oid) -> dict[str, Any]:
        return {"name": name, "sealed": data.hex(), "obj_type": t, "backup_id": b.hex(), "object_id": o.hex()}

    def flip(data: bytes, i: int) -> bytes:
        return data[:i] + bytes([data[i] ^ 1]) + data[i + 1 :]

    other = SealingKey(OTHER_KEY)
    forged = sealed.split(seal(OTHER_KEY, 0, b"\x00hello, world\n", ObjectType.DATA_CHUNK, BACKUP_ID, oid))
    bad_open = [
        bad("other backup id", base, b=OTHER_BACKUP_ID),
        bad("other object id", base, o=fixed("object id 9")),
        bad("other object type", base, t=int(ObjectType.TREE_NODE)),
        bad("flipped nonce", flip(base, 0)),
        bad("flipped commitment", flip(base, 12)),
        bad("flipped ciphertext", flip(base, 44)),
        bad("flipped tag", flip(base, len(base) - 1)),
        bad("truncated to 59 bytes", base[:59]),
        bad(
            "sealed under another key",
            seal(OTHER_KEY, 0, b"\x00hello, world\n", ObjectType.DATA_CHUNK, BACKUP_ID, oid),
        ),
        bad(
            "another key's ciphertext carrying this key's commitment",
            sealed.join(sealed.SealedObject(forged.nonce, k.commitment, forged.ciphertext, forged.tag)),
        ),
    ]
    for v in bad_open:
        v["error"] = "IntegrityError"
    chunk_good: list[dict[str, Any]] = [
        {"compression": 0, "payload": b"plain bytes".hex()},
        {"compression": 1, "payload": bytes.fromhex("28b52ffd").hex()},
        {"compression": 0, "payload": ""},
    ]
    for c in chunk_good:
        c["hex"] = sealed.encode_chunk_payload(
            ChunkPayload(Compression(c["compression"]), bytes.fromhex(c["payload"]))
        ).hex()
    return {
        "description": "Sealed objects (docs/spec/sealed-object.md). 'good' open under 'key' to 'plaintext' "
        "and re-seal with 'nonce' to 'sealed'; 'bad_open' fail SealingKey(key).open with the given AAD "
        "fields; 'bad_split' fail formats.sealed.split; chunk envelopes decode and re-encode exactly.",
        "generator": "tests/vectors/make_pack_vectors.py",
        "key": KEY.hex(),
        "other_key": OTHER_KEY.hex(),
        "aead_key": hkdf_sha256(KEY, b"aead-key").hex(),
        "commitment": k.commitment.hex(),
        "other_commitment": other.commitment.hex(),
        "good": good,
        "bad_open": bad_open,
        "bad_split": [
            {"name": "empty", "hex": "", "error": "FormatError"},
            {"name": "59 bytes", "hex": base[:59].hex(), "error": "FormatError"},
        ],
        "chunk_good": chunk_good,
        "chunk_bad": [
            {"name": "empty envelope", "hex": "", "error": "FormatError"},
            {"name": "unknown compression 2", "hex": "02abcd", "error": "FormatError"},
            {"name": "unknown compression 255", "hex": "ff", "error": "FormatError"},
        ],
    }


def raw_pack(
    entries: list[tuple[int, bytes, bytes]],
    *,
    key: bytes = KEY,
    backup_id: bytes = BACKUP_ID,
    header: bytes | None = None,
    index: list[tuple[int, bytes, int, int]] | None = None,
    index_backup_id: bytes | None = None,
    body_hash: bytes | None = None,
    trailer: bytes | None = None,
) -> bytes:
    """A pack laid out from raw parts; whatever is not given is made correctly from the rest."""
    body = Writer().raw(header if header is not None else pack.MAGIC + b"\x00\x01" + backup_id)
    computed = []
    pos = pack.HEADER_SIZE
    for code, oid, data in entries:
        body.u8(code).raw(oid).u32(len(data)).raw(data)
        computed.append((code, oid, pos + pack.ENTRY_HEADER_SIZE, len(data)))
        pos += pack.ENTRY_HEADER_SIZE + len(data)
    body.u8(0)
    body_bytes = body.getvalue()
    iw = Writer().header(pack.INDEX_MAGIC, 1).u32(len(index if index is not None else computed))
    for code, oid, off, length in index if index is not None else computed:
        iw.u8(code).raw(oid).u32(off).u32(length)
    digest = hashlib.sha256(body_bytes).digest()
    sealed_index = seal(key, 99, iw.getvalue(), ObjectType.PACK_INDEX, index_backup_id or backup_id, digest)
    if trailer is None:
        trailer = Writer().raw(body_hash or digest).u32(len(sealed_index)).u16(1).raw(b"OBPT").getvalue()
    return body_bytes + sealed_index + trailer


def pack_vectors() -> dict[str, Any]:
    ids = ChunkIdKey(DEDUP_SECRET)
    contents = [b"hello, world\n", b"second chunk: " + bytes(range(40))]
    objects: list[tuple[ObjectType, bytes, bytes, bytes]] = []
    for content in contents:
        pt = sealed.encode_chunk_payload(ChunkPayload(Compression.NONE, content))
        objects.append((ObjectType.DATA_CHUNK, ids.chunk_id(content), pt, content))
    tree = b"OBTR\x00\x01 root node"
    objects.append((ObjectType.TREE_NODE, fixed("tree node id"), tree, b""))
    w = pack.PackWriter(BACKUP_ID)
    entries: list[dict[str, Any]] = []
    for i, (t, oid, pt, content) in enumerate(objects):
        data = seal(KEY, 10 + i, pt, t, BACKUP_ID, oid)
        where = w.add(t, oid, data)
        entries.append(
            {
                "obj_type": int(t),
                "object_id": oid.hex(),
                "nonce": nonce(10 + i).hex(),
                "plaintext": pt.hex(),
                "content": content.hex(),
                "offset": where.offset,
                "length": where.length,
            }
        )
    index_pt = w.index_plaintext()
    body_hash = w.body_hash()
    good_bytes = w.finish(seal(KEY, 99, index_pt, ObjectType.PACK_INDEX, BACKUP_ID, body_hash))
    raw: list[tuple[int, bytes, bytes]] = [
        (
            e["obj_type"],
            bytes.fromhex(e["object_id"]),
            seal(
                KEY,
                10 + i,
                bytes.fromhex(e["plaintext"]),
                ObjectType(e["obj_type"]),
                BACKUP_ID,
                bytes.fromhex(e["object_id"]),
            ),
        )
        for i, e in enumerate(entries)
    ]
    assert raw_pack(raw) == good_bytes
    n = len(good_bytes)
    tail = pack.TRAILER_SIZE
    idx = [(int(e.object_type), e.object_id, e.offset, e.length) for e in w.index()]
    altered = good_bytes[:70] + bytes([good_bytes[70] ^ 1]) + good_bytes[71:]
    body_end = n - tail - pack.sealed_index_size(len(entries))
    rehashed = altered[: n - tail] + hashlib.sha256(altered[:body_end]).digest() + altered[n - tail + 32 :]
    bad: list[tuple[str, bytes, str]] = [
        ("empty file", b"", "FormatError"),
        ("wrong magic", b"OBPX" + good_bytes[4:], "FormatError"),
        ("version 2", raw_pack(raw, header=pack.MAGIC + b"\x00\x02" + BACKUP_ID), "FormatError"),
        ("truncated trailer", good_bytes[:-1], "FormatError"),
        ("trailing byte", good_bytes + b"\x00", "FormatError"),
        ("trailer magic wrong", good_bytes[:-1] + b"X", "FormatError"),
        ("trailer version 2", good_bytes[: n - 6] + b"\x00\x02" + good_bytes[-4:], "FormatError"),
        ("no entries", raw_pack([]), "FormatError"),
        ("entry of object type 3 (pack index)", raw_pack([(3, raw[0][1], raw[0][2])]), "FormatError"),
        ("entry of unknown object type 7", raw_pack([(7, raw[0][1], raw[0][2])]), "FormatError"),
        (
            "entry shorter than the minimum sealed length",
            raw_pack([(1, raw[0][1], bytes(60))]),
            "FormatError",
        ),
        (
            "entry length above the limit",
            good_bytes[:55] + b"\xff\xff\xff\xff" + good_bytes[59:],
            "FormatError",
        ),
        (
            "entry length runs past the end",
            good_bytes[:55] + n.to_bytes(4, "big") + good_bytes[59:],
            "FormatError",
        ),
        ("duplicate object id", raw_pack([raw[0], (1, raw[0][1], raw[1][2])]), "FormatError"),
        ("body hash in trailer altered", raw_pack(raw, body_hash=bytes(32)), "FormatError"),
        ("entry altered, trailer hash recomputed", rehashed, "IntegrityError"),
        ("index lists a wrong object type", raw_pack(raw, index=[(2, *idx[0][1:]), *idx[1:]]), "FormatError"),
        (
            "index offsets not contiguous",
            raw_pack(raw, index=[(idx[0][0], idx[0][1], idx[0][2] + 1, idx[0][3]), *idx[1:]]),
            "FormatError",
        ),
        ("index omits the last entry", raw_pack(raw, index=idx[:-1]), "FormatError"),
        (
            "sealed index tag flipped",
            good_bytes[: n - tail - 1] + bytes([good_bytes[n - tail - 1] ^ 1]) + good_bytes[-tail:],
            "IntegrityError",
        ),
        ("index sealed under another key", raw_pack(raw, key=OTHER_KEY), "IntegrityError"),
        (
            "pack of another backup (header and index)",
            raw_pack(raw, backup_id=OTHER_BACKUP_ID),
            "IntegrityError",
        ),
        ("index sealed for another backup", raw_pack(raw, index_backup_id=OTHER_BACKUP_ID), "IntegrityError"),
    ]
    return {
        "description": "Packs (docs/spec/pack.md). The good pack opens with crypto.packs.open_pack(hex, "
        "SealingKey(key), backup_id) to the given index; each entry opens to 'plaintext' and, for data "
        "chunks, 'content' has chunk id 'object_id' under the dedup secret; entries sealed with their "
        "'nonce' and the index with 'index_nonce' rebuild the exact bytes. Each 'bad' pack fails "
        "open_pack with the named error.",
        "generator": "tests/vectors/make_pack_vectors.py",
        "key": KEY.hex(),
        "backup_id": BACKUP_ID.hex(),
        "dedup_secret": DEDUP_SECRET.hex(),
        "chunk_id_key": hkdf_sha256(DEDUP_SECRET, b"chunk-id").hex(),
        "chunker_key": chunker_key(DEDUP_SECRET).hex(),
        "good": {
            "hex": good_bytes.hex(),
            "body_hash": body_hash.hex(),
            "index_plaintext": index_pt.hex(),
            "index_nonce": nonce(99).hex(),
            "entries": entries,
        },
        "bad": [{"name": name, "hex": data.hex(), "error": err} for name, data, err in bad],
    }


def render(obj: Any) -> str:
    return json.dumps(obj, indent=1) + "\n"


def main() -> int:
    outputs = {HERE / "sealed.json": render(sealed_vectors()), HERE / "pack.json": render(pack_vectors())}
    check = "--check" in sys.argv[1:]
    stale = [p for p, text in outputs.items() if not p.exists() or p.read_text(encoding="utf-8") != text]
    if check:
        for p in stale:
            print(f"{p} is out of date; run {Path(__file__).name}", file=sys.stderr)
        return 1 if stale else 0
    for p, text in outputs.items():
        p.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
