"""Sample trees for the engine tests, and an exact description of a tree to compare with a backup."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from formats.tree import Kind, Record

__all__ = ["describe_fs", "describe_records", "make_tree"]


def make_tree(root: Path, *, big: int = 300_000) -> Path:
    """Every kind of entry: files (empty, small, compressible, random), links, a fifo, odd names."""
    top = root / "src"
    (top / "dir" / "sub").mkdir(parents=True)
    (top / "emptydir").mkdir()
    (top / "empty").write_bytes(b"")
    (top / "hello.txt").write_bytes(b"hello, world\n")
    (top / "dir" / "log.txt").write_bytes(b"GET /index.html 200\n" * 5000)
    (top / "dir" / "sub" / "random.bin").write_bytes(os.urandom(big))
    (top / ("N" * 255)).write_bytes(b"a name of 255 bytes\n")
    with open(os.fsencode(top) + b"/caf\xe9-\xff.bin", "wb") as f:
        f.write(b"not utf-8\n")
    os.symlink("hello.txt", top / "link")
    os.symlink("does/not/exist", top / "dangling")
    os.link(top / "hello.txt", top / "dir" / "hard-hello")
    os.link(top / "dir" / "sub" / "random.bin", top / "zz-hard-random")
    os.mkfifo(top / "fifo")
    os.chmod(top / "hello.txt", 0o640)
    os.utime(top / "dir", ns=(1_500_000_000_123_456_789, 1_500_000_000_123_456_789))
    return top


def describe_fs(top: Path) -> dict[bytes, tuple[object, ...]]:
    """Record path -> (kind, mode, uid, gid, mtime, size, target) for everything under ``top``."""
    out: dict[bytes, tuple[object, ...]] = {}
    first_link: dict[tuple[int, int], bytes] = {}
    base = os.fsencode(top)
    paths = [base]
    for dirpath, dirnames, filenames in os.walk(base):
        paths += [os.path.join(dirpath, n) for n in dirnames + filenames]
    for full in sorted(paths, key=lambda p: p.split(b"/")):
        st = os.lstat(full)
        path = full[1:]
        meta = (st.st_mode, st.st_uid, st.st_gid, st.st_mtime_ns)
        if stat.S_ISDIR(st.st_mode):
            out[path] = (Kind.DIR, *meta, 0, b"")
        elif stat.S_ISLNK(st.st_mode):
            out[path] = (Kind.SYMLINK, *meta, 0, os.readlink(full))
        elif stat.S_ISREG(st.st_mode):
            key = (st.st_dev, st.st_ino)
            if st.st_nlink > 1 and key in first_link:
                out[path] = (Kind.HARDLINK, 0, 0, 0, 0, 0, first_link[key])
                continue
            first_link[key] = path
            out[path] = (Kind.FILE, *meta, st.st_size, b"")
        else:
            out[path] = (Kind.SPECIAL, *meta, 0, b"")
    return out


def describe_records(records: list[Record], base: Path) -> dict[bytes, tuple[object, ...]]:
    """The same description built from a backup's records (those under ``base``)."""
    prefix = os.fsencode(base)[1:]
    out: dict[bytes, tuple[object, ...]] = {}
    for r in records:
        if r.kind is Kind.CONTINUATION or not (r.path == prefix or r.path.startswith(prefix + b"/")):
            continue
        meta = (r.mode, r.uid, r.gid, r.mtime_ns)
        if r.kind is Kind.HARDLINK:
            out[r.path] = (Kind.HARDLINK, 0, 0, 0, 0, 0, r.target)
        else:
            out[r.path] = (r.kind, *meta, r.size, r.target)
    return out
