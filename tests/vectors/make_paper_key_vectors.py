#!/usr/bin/env python3
"""Regenerate tests/vectors/paper_key.json, deterministically.

Run from the repository root: ``python tests/vectors/make_paper_key_vectors.py``. The pages are
written here straight from docs/spec/paper-key.md with ``base64`` and ``hashlib`` (not with
``formats.paper_key``, the module under test), from fixed bytes: SHAKE-256 of fixed seeds and
the first valid key file of tests/vectors/keyfile.json (a real, Argon2id-sealed key file). Running
it again gives the same file byte for byte.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent


def det(seed: str, n: int) -> bytes:
    return hashlib.shake_256(seed.encode()).digest(n)


def b32(data: bytes) -> str:
    return base64.b32encode(data).decode("ascii").rstrip("=")


def page(files: list[tuple[str, bytes]], account: bytes | None = None, root: bytes | None = None) -> str:
    header = ["opsbackup paper key v1"]
    if account is not None:
        header.append("account " + account.hex())
    if root is not None:
        header.append("root " + root.hex())
    header.append(f"files {len(files)}")
    out = list(header)
    n = 0
    for i, (name, data) in enumerate(files, 1):
        lines = [f"file {i} {name} {len(data)} bytes", "sha256 " + hashlib.sha256(data).hexdigest()]
        header += lines
        out += lines
        for start in range(0, len(data), 30):
            n += 1
            chunk = data[start : start + 30]
            text = b32(chunk)
            groups = " ".join(text[k : k + 4] for k in range(0, len(text), 4))
            check = hashlib.sha256(n.to_bytes(4, "big") + chunk).hexdigest()[:4]
            out.append(f"{n:04d}: {groups}  {check}")
    end = hashlib.sha256("".join(line + "\n" for line in header).encode("ascii")).hexdigest()[:8]
    out.append("end " + end)
    return "".join(line + "\n" for line in out)


def valid() -> list[dict[str, Any]]:
    keyfile = bytes.fromhex(json.loads((OUT / "keyfile.json").read_text())["valid"][0]["hex"])
    cases = [
        ("one byte", [("a", b"\x00")], None, None),
        ("one full line (30 bytes)", [("x.key", det("full", 30))], None, None),
        ("31 bytes: a second line of one byte", [("x.key", det("31", 31))], None, None),
        ("last line of 4 bytes (7 base32 characters)", [("x.key", det("34", 34))], None, None),
        (
            "a real key file (dedup secret, Argon2id) with account and root",
            [("dedup.key", keyfile)],
            det("account", 16),
            hashlib.sha256(det("root", 550)).digest(),
        ),
        (
            "two files",
            [("data.key", det("data", 95)), ("browse.key", det("browse", 61))],
            det("acct", 16),
            None,
        ),
    ]
    return [
        {
            "name": name,
            "account": None if account is None else account.hex(),
            "root": None if root is None else root.hex(),
            "files": [{"name": n, "hex": d.hex()} for n, d in files],
            "page": page(files, account, root),
        }
        for name, files, account, root in cases
    ]


def invalid(base: str) -> list[dict[str, str]]:
    lines = base.splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("0001:"))
    second = first + 1
    typo = lines[second][:12] + ("A" if lines[second][12] != "A" else "B") + lines[second][13:]

    def join(ls: list[str]) -> str:
        return "".join(line + "\n" for line in ls)

    return [
        {"name": "wrong version", "page": base.replace("key v1", "key v2", 1), "error": "version v2"},
        {"name": "not a paper key", "page": "hello\n", "error": "not an opsbackup paper key"},
        {
            "name": "typo in line 2",
            "page": join([*lines[:second], typo, *lines[second + 1 :]]),
            "error": "line 2 does not match its check",
        },
        {
            "name": "lines 1 and 2 swapped",
            "page": join([*lines[:first], lines[second], lines[first], *lines[second + 1 :]]),
            "error": "line 1 is missing",
        },
        {"name": "line 2 missing", "page": join(lines[:second] + lines[second + 1 :]), "error": "line 2"},
        {
            "name": "line 1 repeated",
            "page": join(lines[: first + 1] + lines[first:]),
            "error": "line 1 is out of order",
        },
        {"name": "truncated: no end line", "page": join(lines[:-1]), "error": "truncated"},
        {"name": "wrong end check", "page": join([*lines[:-1], "end 00000000"]), "error": "end line"},
        {"name": "text after the end", "page": base + "0099: AAAA  0000\n", "error": "after its end line"},
    ]


def main() -> None:
    cases = valid()
    base = next(c["page"] for c in cases if c["name"] == "two files")
    doc = {
        "description": "paper key pages (docs/spec/paper-key.md); made by make_paper_key_vectors.py",
        "valid": cases,
        "invalid": invalid(base),
    }
    (OUT / "paper_key.json").write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
