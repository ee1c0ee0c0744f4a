#!/usr/bin/env python3
"""Make tests/vectors/envelope.json: golden key envelope bodies (docs/spec/key-envelope.md), hex.

Run from the repository root: ``.venv/bin/python tests/vectors/make_envelope_vectors.py``
(``--check`` fails if the file would change). Deterministic: every id and wrapped byte comes from
SHAKE-256 of a fixed label. The bytes are written here straight from the spec with the generic
``Writer``, not with ``formats.envelope``, so the tests check the module against the spec.

'good' vectors decode to their fields and re-encode to the same bytes. Each 'bad' vector names
the failure it expects, age-style: ``error`` (the class) and ``match`` (a fragment of the
message), in the order a decoder checks (spec, "Layout").
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from formats._wire import Writer  # noqa: E402

OUT = Path(__file__).resolve().parent / "envelope.json"
ACCOUNT = bytes(range(16))
BACKUP = bytes(range(0x40, 0x50))
OTHER_BACKUP = bytes(range(0x60, 0x70))


def _bytes(label: str, n: int) -> bytes:
    return hashlib.shake_256(label.encode()).digest(n)


def record(role: int, recipient: str, *, backup_id: bytes = BACKUP, kind: int = 1, size: int = 512) -> bytes:
    """An OBWK record (docs/spec/wrapped-key.md): the wrapped bytes are opaque to the format."""
    return (
        Writer()
        .raw(b"OBWK")
        .u16(1)
        .u8(role)
        .raw(backup_id)
        .u8(kind)
        .raw(_bytes(f"key id {recipient}", 32))
        .bytes16(_bytes(f"wrapped {recipient} {role} {backup_id.hex()}", size))
        .getvalue()
    )


def body(
    records: list[bytes],
    *,
    generation: int = 0,
    keyring_version: int = 1,
    count: int | None = None,
    magic: bytes = b"OBKE",
    version: int = 1,
    sort: bool = True,
) -> bytes:
    w = (
        Writer()
        .raw(magic)
        .u16(version)
        .raw(ACCOUNT)
        .raw(BACKUP)
        .u64(generation)
        .u64(keyring_version)
        .u16(len(records) if count is None else count)
    )
    for rec in sorted(records) if sort else records:
        w.raw(len(rec).to_bytes(2, "big") + rec)
    return w.getvalue()


DATA, BROWSE = 2, 3
R_DATA = record(DATA, "data-1")
R_BROWSE = record(BROWSE, "browse-1")
R_BROWSE_BY_DATA = record(BROWSE, "data-1")
R_OPENPGP = record(DATA, "escrow-openpgp", kind=2, size=300)


def _good(name: str, records: list[bytes], generation: int, keyring_version: int) -> dict[str, Any]:
    return {
        "name": name,
        "hex": body(records, generation=generation, keyring_version=keyring_version).hex(),
        "account_id": ACCOUNT.hex(),
        "backup_id": BACKUP.hex(),
        "generation": generation,
        "keyring_version": keyring_version,
        "records": [r.hex() for r in sorted(records)],
    }


def _bad(name: str, data: bytes, match: str) -> dict[str, str]:
    return {"name": name, "hex": data.hex(), "error": "FormatError", "match": match}


def vectors() -> dict[str, Any]:
    two = [R_DATA, R_BROWSE]
    base = body(two)
    head = 4 + 2 + 16 + 16 + 8 + 8  # magic .. keyring version: the record count follows
    ordered = sorted(two)
    unsorted = body(ordered[::-1], sort=False)
    duplicate = body([R_DATA, R_DATA], sort=False)
    good = [
        _good("host envelope: one data and one browse recipient", two, 0, 1),
        _good(
            "re-wrap: data key to an RSA and an OpenPGP recipient, metadata key to browse and data",
            [R_DATA, R_OPENPGP, R_BROWSE, R_BROWSE_BY_DATA],
            7,
            2**40,
        ),
    ]
    empty_record = body([], count=2) + b"\x00\x00" + b"\x00\x02xy"
    long_record = body([], count=2) + (8193).to_bytes(2, "big") + b"\x00" * 8193 + b"\x00\x01x"
    bad = [
        _bad("empty input", b"", "not recognised"),
        _bad("wrong magic", b"OBKX" + base[4:], "not recognised"),
        _bad("unsupported version", base[:4] + b"\x00\x02" + base[6:], "unsupported format version 2"),
        _bad("truncated in the fixed fields", base[:40], "truncated"),
        _bad("keyring version 0", body(two, keyring_version=0), "keyring version 0"),
        _bad("one record", body([R_DATA]), "record count 1 is not in 2..256"),
        _bad("257 records", base[:head] + (257).to_bytes(2, "big") + base[head + 2 :], "not in 2..256"),
        _bad(
            "record count past the end",
            base[:head] + (200).to_bytes(2, "big") + base[head + 2 : head + 102],
            "count 200 does not fit",
        ),
        _bad("empty record", empty_record, "empty record"),
        _bad("record longer than 8192 bytes", long_record, "exceeds the limit of 8192"),
        _bad("records unsorted", unsorted, "not sorted and unique"),
        _bad("record duplicated", duplicate, "not sorted and unique"),
        _bad("truncated record", base[:-1], "truncated"),
        _bad("trailing byte", base + b"\x00", "trailing"),
        _bad("record is not a wrapped key", body([R_DATA, b"OBXX" + R_BROWSE[4:]]), "not recognised"),
        _bad(
            "record of another backup",
            body([R_DATA, record(BROWSE, "b", backup_id=OTHER_BACKUP)]),
            "another backup",
        ),
        _bad("no browse record", body([R_DATA, record(DATA, "data-2")]), "both the data and the browse role"),
        _bad(
            "record of the host role", body([R_DATA, R_BROWSE, record(4, "h")]), "cannot hold a wrapped key"
        ),
    ]
    return {
        "description": "Key envelope bodies (docs/spec/key-envelope.md), unsigned. 'good' decode to "
        "their fields and re-encode to the same bytes; each 'bad' fails formats.envelope.decode with "
        "'error', its message containing 'match'.",
        "generator": "tests/vectors/make_envelope_vectors.py",
        "good": good,
        "bad": bad,
    }


def main() -> int:
    text = json.dumps(vectors(), indent=1) + "\n"
    if "--check" in sys.argv[1:]:
        if OUT.read_text(encoding="utf-8") != text:
            print(f"{OUT} is out of date: run {Path(__file__).name}", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
