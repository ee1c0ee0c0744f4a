"""The demo's sample tree, and an exact comparison of two trees.

:func:`make_sample_tree` writes a few hundred files of log-like text and random bytes (``size``
bytes in all), with odd modes and sub-second mtimes, a copy of a large file (deduplicated inside
the first backup), relative and absolute symlinks, a hard link, an empty directory and a file
whose name is not UTF-8. :func:`compare_trees` lists every difference restore must not make:
type, permission bits, mtime (files and directories, to the nanosecond), content, symlink
target, hard-link groups, and entries missing or extra.
"""

from __future__ import annotations

import os
import random
import stat
from dataclasses import dataclass
from pathlib import Path

__all__ = ["SampleStats", "compare_trees", "make_sample_tree"]

KiB = 1 << 10
MiB = 1 << 20
_WORDS = [
    *("backup", "restore", "chunk", "pack", "manifest", "keyring", "signature", "verify", "encrypt"),
    *("decrypt", "host", "server", "client", "request", "accepted", "refused", "upload", "download"),
    *("index", "tree", "node", "cache", "dedup", "commit", "rotate", "revoke", "nginx", "postgres"),
    *("systemd", "cron", "timer", "disk", "network", "latency", "error", "warning", "info", "debug"),
]


@dataclass(frozen=True)
class SampleStats:
    """What :func:`make_sample_tree` made."""

    root: Path
    files: int
    dirs: int
    total_bytes: int
    text_bytes: int
    random_bytes: int


def _text(rng: random.Random, size: int) -> bytes:
    """Log-like lines (compressible, not repetitive enough to be trivial)."""
    lines: list[str] = []
    total = 0
    stamp = rng.randrange(1_600_000_000, 1_700_000_000)
    while total < size:
        stamp += rng.randrange(0, 3)
        words = " ".join(rng.choices(_WORDS, k=rng.randrange(4, 14)))
        pid, tag = rng.randrange(1, 65536), rng.getrandbits(32)
        line = f"{stamp} host{rng.randrange(10)} app[{pid}]: {words} id={tag:08x}\n"
        lines.append(line)
        total += len(line)
    return "".join(lines).encode("ascii")[:size]


def _put(path: bytes, data: bytes, rng: random.Random, mode: int = 0o644) -> None:
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, mode)
    mtime = rng.randrange(1_500_000_000, 1_700_000_000) * 1_000_000_000 + rng.randrange(1_000_000_000)
    os.utime(path, ns=(mtime, mtime))


def make_sample_tree(root: Path, size: int, *, seed: int = 2024) -> SampleStats:
    """Write the sample tree into the new directory ``root``, about ``size`` bytes of file data."""
    rng = random.Random(seed)  # noqa: S311 - sample data, not secrets
    root.mkdir(parents=True)
    base = os.fsencode(root)
    dirs = [b"etc", b"etc/app", b"var", b"var/log", b"srv", b"srv/data", b"srv/data/blobs", b"home", b"empty"]
    for d in dirs:
        os.mkdir(os.path.join(base, d))
    os.chmod(os.path.join(base, b"etc/app"), 0o750)  # noqa: S103 - sample data with a varied mode
    files = 0
    text_bytes = random_bytes = 0
    # Small files take about a tenth of ``size`` each (text, then binary); large ones the rest.
    text_max = max(2 * (size // 10) // 220, 400)
    blob_max = max(2 * (size // 10) // 100, 400)
    for i in range(220):
        data = _text(rng, rng.randrange(200, text_max))
        where = rng.choice([b"etc", b"etc/app", b"home", b"srv"])
        _put(os.path.join(base, where, b"file-%03d.txt" % i), data, rng, rng.choice([0o644, 0o600, 0o640]))
        files += 1
        text_bytes += len(data)
    # Small binary files.
    for i in range(100):
        data = rng.randbytes(rng.randrange(1, blob_max))
        _put(os.path.join(base, b"srv/data/blobs", b"blob-%03d.bin" % i), data, rng)
        files += 1
        random_bytes += len(data)
    # Large files make up the rest: logs (text) and data (random), plus one exact copy.
    rest = max(size - text_bytes - random_bytes, 0)
    large = [rest // 9] * 8  # and one copy of table-1.db: nine shares
    for i, n in enumerate(large):
        if i % 2 == 0:
            data = _text(rng, n)
            name = os.path.join(base, b"var/log", b"app-%d.log" % i)
            text_bytes += n
        else:
            data = rng.randbytes(n)
            name = os.path.join(base, b"srv/data", b"table-%d.db" % i)
            random_bytes += n
        _put(name, data, rng, 0o640)
        files += 1
        if i == 1:
            _put(os.path.join(base, b"srv/data/table-1.copy"), data, rng)
            files += 1
            random_bytes += n
    script = b"#!/bin/sh\nexec opsbackup backup --json\n"
    _put(os.path.join(base, b"home/backup.sh"), script, rng, 0o755)
    latin1 = "café, in Latin-1\n".encode("latin-1")
    _put(os.path.join(base, b"home/caf\xe9-latin1.txt"), latin1, rng)  # the name is not UTF-8
    files += 2
    text_bytes += len(script) + len(latin1)
    os.symlink(b"app/file-000.txt", os.path.join(base, b"etc/current.txt"))
    os.symlink(b"/etc/hostname", os.path.join(base, b"etc/hostname-link"))
    os.link(os.path.join(base, b"srv/data/table-3.db"), os.path.join(base, b"srv/data/table-3.hardlink"))
    for d in [*reversed(dirs), b""]:  # children first: setting a child's time touches no parent
        mtime = rng.randrange(1_500_000_000, 1_700_000_000) * 1_000_000_000 + rng.randrange(1_000_000_000)
        os.utime(os.path.join(base, d) if d else base, ns=(mtime, mtime))
    return SampleStats(root, files, len(dirs) + 1, text_bytes + random_bytes, text_bytes, random_bytes)


def _same_content(a: bytes, b: bytes) -> bool:
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            x, y = fa.read(MiB), fb.read(MiB)
            if x != y:
                return False
            if not x:
                return True


def _entries(top: bytes) -> dict[bytes, os.stat_result]:
    out = {b".": os.lstat(top)}
    for dirpath, dirnames, filenames in os.walk(top):
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            out[os.path.relpath(full, top)] = os.lstat(full)
    return out


def compare_trees(original: Path, restored: Path) -> tuple[int, list[str]]:
    """``(entries compared, differences)``; no differences means restore was exact."""
    a, b = os.fsencode(original), os.fsencode(restored)
    if not os.path.isdir(b):
        return 0, [f"{restored} does not exist"]
    left, right = _entries(a), _entries(b)
    problems = [f"missing: {p!r}" for p in sorted(left.keys() - right.keys())]
    problems += [f"extra: {p!r}" for p in sorted(right.keys() - left.keys())]
    groups_left: dict[tuple[int, int], list[bytes]] = {}
    groups_right: dict[tuple[int, int], list[bytes]] = {}
    for rel in sorted(left.keys() & right.keys()):
        sa, sb = left[rel], right[rel]
        if stat.S_IFMT(sa.st_mode) != stat.S_IFMT(sb.st_mode):
            problems.append(f"type differs: {rel!r}")
            continue
        if stat.S_ISLNK(sa.st_mode):
            if os.readlink(os.path.join(a, rel)) != os.readlink(os.path.join(b, rel)):
                problems.append(f"symlink target differs: {rel!r}")
            continue
        if stat.S_IMODE(sa.st_mode) != stat.S_IMODE(sb.st_mode):
            problems.append(
                f"mode differs: {rel!r} {stat.S_IMODE(sa.st_mode):o} != {stat.S_IMODE(sb.st_mode):o}"
            )
        if sa.st_mtime_ns != sb.st_mtime_ns:
            problems.append(f"mtime differs: {rel!r} {sa.st_mtime_ns} != {sb.st_mtime_ns}")
        if stat.S_ISREG(sa.st_mode):
            if sa.st_size != sb.st_size or not _same_content(os.path.join(a, rel), os.path.join(b, rel)):
                problems.append(f"content differs: {rel!r}")
            groups_left.setdefault((sa.st_dev, sa.st_ino), []).append(rel)
            groups_right.setdefault((sb.st_dev, sb.st_ino), []).append(rel)
    linked_left = sorted(sorted(g) for g in groups_left.values() if len(g) > 1)
    linked_right = sorted(sorted(g) for g in groups_right.values() if len(g) > 1)
    if linked_left != linked_right:
        problems.append(f"hard links differ: {linked_left!r} != {linked_right!r}")
    return len(left), problems
