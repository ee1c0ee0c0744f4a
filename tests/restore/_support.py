"""Helpers of the restore tests: a byte-exact picture of a directory tree, and the reader's account."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path
from typing import NamedTuple

from opsbackup.client.account import Account
from opsbackup.server.accounts import Scope
from tests.client_support import ClientEnv

__all__ = ["Node", "State", "reader", "target_state", "tree_state"]


class Node(NamedTuple):
    """What one entry looks like on disk."""

    mode: int
    uid: int
    gid: int
    size: int
    mtime: int
    detail: object  # content hash, link target or device number
    first: bytes  # the first path seen with this inode (hard links share it)


State = dict[bytes, Node]


def tree_state(root: Path, *, times: bool = True) -> State:
    """Every entry below ``root`` (not ``root`` itself): type, mode, owner, size, mtime, content
    hash or link target, and inode groups of hard links. Nothing is followed."""
    out: State = {}
    inodes: dict[tuple[int, int], bytes] = {}
    base = os.fsencode(root)
    for dirpath, dirnames, filenames in os.walk(base, followlinks=False):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, base)
            st = os.lstat(full)
            if stat.S_ISREG(st.st_mode):
                with open(full, "rb") as f:
                    detail: object = hashlib.sha256(f.read()).hexdigest()
                first = inodes.setdefault((st.st_dev, st.st_ino), rel)
            elif stat.S_ISLNK(st.st_mode):
                detail, first = os.readlink(full), rel
            else:
                detail, first = st.st_rdev if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) else 0, rel
            size = 0 if stat.S_ISDIR(st.st_mode) else st.st_size
            out[rel] = Node(
                st.st_mode, st.st_uid, st.st_gid, size, st.st_mtime_ns if times else 0, detail, first
            )
    return out


def target_state(target: Path) -> tuple[object, ...]:
    """The target directory itself (mode, times) and everything below it, byte for byte."""
    st = os.lstat(target)
    return (st.st_mode, st.st_mtime_ns, tree_state(target))


def reader(env: ClientEnv) -> Account:
    """The account as an operator restoring sees it: the RESTORE credential, state in memory."""
    return env.account(Scope.RESTORE)
