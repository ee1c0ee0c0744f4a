"""The benchmark's corpora: many small real files, one large mixed file, and small edits of both.

- ``small``: a copy of /usr/share (regular files, symlinks and directories), capped at a size: real
  files of every kind (text, compressed docs, images, locale catalogues), mostly a few KiB each.
- ``large``: one file of compressible text with incompressible (random) blocks in between, built
  from a fixed seed so every run stores the same bytes.
- The edits: a few small files changed and one added; bytes *inserted* at several places in the
  large file, which shifts everything after them (content-defined chunking must resynchronise).
"""

from __future__ import annotations

import os
import random
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

__all__ = ["Corpus", "copy_small_files", "edit_large_file", "edit_small_files", "make_large_file"]

BLOCK = 4 << 20
INSERT_AT = (0.1, 0.5, 0.9)


@dataclass(frozen=True)
class Corpus:
    """A directory to back up, what it holds, and its size in bytes."""

    name: str
    root: Path
    files: int
    size: int


def copy_small_files(source: Path, target: Path, cap_bytes: int) -> Corpus:
    """Copy regular files, symlinks and directories of ``source`` until ``cap_bytes`` are copied."""
    files = size = 0
    target.mkdir(parents=True)
    for dirpath, dirnames, filenames in os.walk(source):
        dirnames.sort()
        rel = Path(dirpath).relative_to(source)
        (target / rel).mkdir(exist_ok=True)
        for name in sorted(filenames):
            src = Path(dirpath) / name
            dst = target / rel / name
            if src.is_symlink():
                dst.symlink_to(os.readlink(src))
                continue
            if not src.is_file():
                continue
            try:
                n = src.stat().st_size
                if size + n > cap_bytes:
                    continue
                shutil.copy2(src, dst)
            except OSError:
                continue  # unreadable files are not part of the corpus
            files += 1
            size += n
        if size >= cap_bytes * 0.999:
            break
    return Corpus("small files", target, files, size)


def _text_block(rng: random.Random, size: int) -> bytes:
    words = [
        "backup",
        "restore",
        "chunk",
        "pack",
        "manifest",
        "keyring",
        "server",
        "host",
        "the",
        "of",
        "and",
        "error",
        "warning",
        "info",
        "GET",
        "PUT",
        "200",
        "404",
        "/var/log/syslog",
        "2026-11-23",
    ]
    lines = []
    total = 0
    while total < size:
        line = f"{rng.randrange(1 << 32):08x} " + " ".join(rng.choice(words) for _ in range(12)) + "\n"
        lines.append(line)
        total += len(line)
    return "".join(lines).encode()[:size]


def make_large_file(path: Path, size: int, seed: int = 9) -> Corpus:
    """Write ``size`` bytes: 3/4 compressible log-like text, 1/4 random, in 4 MiB blocks."""
    rng = random.Random(seed)
    # A few distinct text blocks, reused with a changing header, so building 1 GiB stays quick.
    texts = [_text_block(rng, BLOCK) for _ in range(4)]
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        written = 0
        i = 0
        while written < size:
            if i % 4 == 3:
                block = rng.randbytes(BLOCK)
            else:
                block = f"block {i} {rng.random()}\n".encode() + texts[i % 4]
            block = block[: min(BLOCK, size - written)]
            f.write(block)
            written += len(block)
            i += 1
    return Corpus("large file", path.parent, 1, size)


def edit_large_file(path: Path, inserted: int = 100) -> int:
    """Insert ``inserted`` bytes at 10%, 50% and 90% of the file, in place; return the bytes inserted."""
    size = path.stat().st_size
    tmp = path.with_name(path.name + ".edit")
    with path.open("rb") as src, tmp.open("wb") as dst:
        pos = 0
        for k, frac in enumerate(INSERT_AT):
            at = int(size * frac)
            _copy(src, dst, at - pos)
            dst.write(f"[inserted {k}]".encode().ljust(inserted, b"#"))
            pos = at
        _copy(src, dst, size - pos)
    tmp.replace(path)
    return inserted * len(INSERT_AT)


def _copy(src: BinaryIO, dst: BinaryIO, n: int) -> None:
    while n > 0:
        buf = src.read(min(n, BLOCK))
        if not buf:
            break
        dst.write(buf)
        n -= len(buf)


def edit_small_files(root: Path, count: int = 20) -> int:
    """Append a line to ``count`` files spread over the tree and add one new file; return bytes changed."""
    files = sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink())
    step = max(1, len(files) // count)
    changed = 0
    for p in files[::step][:count]:
        with p.open("ab") as f:
            f.write(b"edited by the benchmark\n")
        changed += 24
    new = root / "benchmark-new-file.txt"
    new.write_bytes(b"a new file\n" * 1000)
    return changed + 11_000
