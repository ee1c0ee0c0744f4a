"""Owner, mode and modification time of restored entries, and the warnings a restore collects.

Order per entry: owner first (``chown`` clears set-id bits), then mode, then times. Owners are
set only when asked (by default when running as root); without them, set-user-id and
set-group-id bits are dropped, so a restore never makes set-id programs owned by whoever ran it.
Symlinks get owner and times with ``follow_symlinks=False``; Linux has no mode for them.
"""

from __future__ import annotations

import errno
import os
import stat
import threading
from collections.abc import Iterator

from formats.tree import Record
from opsbackup.restore.paths import show

__all__ = ["Warnings", "apply_fd", "apply_link", "apply_path", "permission_bits"]

_SETID = stat.S_ISUID | stat.S_ISGID
_EXAMPLES = 3


class Warnings:
    """Problems that did not stop the restore, grouped by kind: one line per kind.

    Thread-safe: restore workers finish files (and may warn) while other workers do the same.
    """

    def __init__(self) -> None:
        self._kinds: dict[str, list[bytes]] = {}
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()

    def add(self, kind: str, path: bytes) -> None:
        with self._lock:
            self._counts[kind] = self._counts.get(kind, 0) + 1
            examples = self._kinds.setdefault(kind, [])
            if len(examples) < _EXAMPLES:
                examples.append(path)

    def lines(self) -> list[str]:
        out = []
        with self._lock:
            kinds = [(kind, list(examples)) for kind, examples in self._kinds.items()]
        for kind, examples in kinds:
            count = self._counts[kind]
            shown = ", ".join(show(p) for p in examples) + (", ..." if count > len(examples) else "")
            out.append(f"{kind}: {count} entr{'y' if count == 1 else 'ies'} ({shown})")
        return out

    def __iter__(self) -> Iterator[str]:
        return iter(self.lines())


def permission_bits(record: Record, owners: bool) -> int:
    """The permission bits to set: all 12, without the set-id bits when owners are not restored."""
    bits = stat.S_IMODE(record.mode)
    return bits if owners else bits & ~_SETID


def _chown_failed(exc: OSError, warnings: Warnings, path: bytes) -> None:
    if exc.errno not in (errno.EPERM, errno.EINVAL):
        raise exc
    warnings.add("could not set the owner (not permitted)", path)


def apply_fd(fd: int, record: Record, *, owners: bool, warnings: Warnings, path: bytes) -> None:
    """Set owner, mode and mtime of an open file or directory."""
    if owners:
        try:
            os.fchown(fd, record.uid, record.gid)
        except OSError as exc:
            _chown_failed(exc, warnings, path)
    os.fchmod(fd, permission_bits(record, owners))
    os.utime(fd, ns=(record.mtime_ns, record.mtime_ns))


def apply_path(
    dir_fd: int, name: bytes, record: Record, *, owners: bool, warnings: Warnings, path: bytes
) -> None:
    """Set owner, mode and mtime of a special file ``name`` this restore just made in ``dir_fd``."""
    if owners:
        try:
            os.chown(name, record.uid, record.gid, dir_fd=dir_fd, follow_symlinks=False)
        except OSError as exc:
            _chown_failed(exc, warnings, path)
    os.chmod(name, permission_bits(record, owners), dir_fd=dir_fd)
    os.utime(name, ns=(record.mtime_ns, record.mtime_ns), dir_fd=dir_fd, follow_symlinks=False)


def apply_link(
    dir_fd: int, name: bytes, record: Record, *, owners: bool, warnings: Warnings, path: bytes
) -> None:
    """Set owner and mtime of symlink ``name`` itself (never of what it points to)."""
    if owners:
        try:
            os.chown(name, record.uid, record.gid, dir_fd=dir_fd, follow_symlinks=False)
        except OSError as exc:
            _chown_failed(exc, warnings, path)
    try:
        os.utime(name, ns=(record.mtime_ns, record.mtime_ns), dir_fd=dir_fd, follow_symlinks=False)
    except NotImplementedError:
        warnings.add("could not set the time of a symlink (unsupported here)", path)
