"""Build a hostile-but-legal file tree and describe any tree exactly, for round-trip comparisons.

:func:`make_tree` writes every kind of entry a server holds: regular, empty and large files,
symlinks (dangling, absolute, relative), hard links, odd permissions (setgid dir, 0o000 file,
sticky), a fifo, empty directories, non-UTF-8 names and 255-byte names, deep paths.
:func:`describe` maps each relative path to what restore must reproduce: type, permission bits,
owner, mtime (ns), size, SHA-256 of content or link target, and the hard-link group.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

__all__ = ["describe", "make_tree"]

MiB = 1 << 20


def _write(path: Path, data: bytes, mode: int | None = None, mtime_ns: int | None = None) -> None:
    path.write_bytes(data)
    if mode is not None:
        os.chmod(path, mode)
    if mtime_ns is not None:
        os.utime(path, ns=(mtime_ns, mtime_ns))


def make_tree(root: Path, *, large_mib: int = 0) -> Path:
    """Create the sample tree under ``root / "data"``; a ``large_mib`` file when asked (random)."""
    top = root / "data"
    top.mkdir(parents=True)
    _write(top / "hello.txt", b"hello, world\n", 0o644, 1_600_000_000_123_456_789)
    _write(top / "empty", b"", 0o600)
    # Mode 0: only root reads it; as another user the backup would (rightly) report it unreadable.
    _write(top / "secret", b"no one may read me\n", 0o000 if os.geteuid() == 0 else 0o400)
    _write(top / "script.sh", b"#!/bin/sh\necho hi\n", 0o4755)
    (top / "emptydir").mkdir()
    (top / "emptydir").chmod(0o2775)
    (top / "sticky").mkdir(mode=0o1777)
    os.chmod(top / "sticky", 0o1777)  # noqa: S103 - a world-writable sticky dir like /tmp, on purpose
    deep = top.joinpath(*[f"level{i}" for i in range(30)])
    deep.mkdir(parents=True)
    _write(deep / "bottom.txt", b"deep\n")
    long_name = "L" * 255
    _write(top / long_name, b"a name of 255 bytes\n")
    raw = os.fsencode(top) + b"/caf\xe9-\xff\xfe.bin"  # not UTF-8
    with open(raw, "wb") as f:
        f.write(b"latin-1 name\n")
    _write(top / "compressible.log", b"GET /index.html 200\n" * 200_000)
    _write(top / "random.bin", os.urandom(3 * MiB + 12345))
    if large_mib:
        with (top / "large.bin").open("wb") as f:
            for _ in range(large_mib):
                f.write(os.urandom(MiB))
    os.symlink("hello.txt", top / "link-relative")
    os.symlink("/etc/hostname", top / "link-absolute")
    os.symlink("does/not/exist", top / "link-dangling")
    os.symlink("emptydir", top / "link-to-dir")
    os.link(top / "hello.txt", top / "hardlink-to-hello")
    (top / "sub").mkdir()
    os.link(top / "random.bin", top / "sub" / "hardlink-to-random")
    os.mkfifo(top / "fifo")
    os.utime(top / "sub", ns=(1_500_000_000_000_000_000, 1_500_000_000_000_000_000))
    return top


def describe(top: Path) -> dict[bytes, tuple[object, ...]]:
    """Relative path -> (type, perms, uid, gid, mtime_ns, size, content or target hash, link group)."""
    out: dict[bytes, tuple[object, ...]] = {}
    base = os.fsencode(top)
    groups: dict[tuple[int, int], bytes] = {}
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, base)
            st = os.lstat(full)
            kind = stat.S_IFMT(st.st_mode)
            digest = b""
            group = b""
            if stat.S_ISREG(st.st_mode):
                h = hashlib.sha256()
                fd = os.open(full, os.O_RDONLY | os.O_NOFOLLOW)  # also reads mode-0 files as root
                with os.fdopen(fd, "rb") as f:
                    while block := f.read(MiB):
                        h.update(block)
                digest = h.digest()
                if st.st_nlink > 1:
                    group = groups.setdefault((st.st_dev, st.st_ino), rel)
            elif stat.S_ISLNK(st.st_mode):
                digest = os.readlink(full)
            out[rel] = (
                kind,
                stat.S_IMODE(st.st_mode),
                st.st_uid,
                st.st_gid,
                st.st_mtime_ns,
                st.st_size if not stat.S_ISDIR(st.st_mode) else 0,
                digest,
                group,
            )
    return out
