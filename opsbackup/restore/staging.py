"""The staging directory: where a restore builds everything before it touches the target.

``TARGET/.opsbackup-restore-<random>`` is made fresh (mode 0700, ``mkdir`` fails if it exists).
Every operation inside it is relative to directory file descriptors opened one component at a
time with ``O_NOFOLLOW | O_DIRECTORY``, and every entry is created exclusively (``O_EXCL``,
``mkdir``, ``mkfifo``, ``symlink``, ``link`` all fail on an existing name). So nothing here
follows a symlink, even one this restore created, and nothing lands outside the staging
directory, whatever the (already checked) paths say.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import os
import secrets
import shutil
import stat
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import cast

from opsbackup.errors import LocalIOError
from opsbackup.restore.paths import show, split

__all__ = [
    "DIR_FLAGS",
    "HAS_SYNCFS",
    "PREFIX",
    "DirFds",
    "NewFiles",
    "Staging",
    "local_io",
    "open_dir_at",
    "pwrite_all",
    "sync_filesystem",
]

PREFIX = ".opsbackup-restore-"
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC
_DIR_CACHE = 64
_FILE_CACHE = 64
_IOV_MAX = 1024  # buffers per pwritev (Linux IOV_MAX)
_HAS_PWRITEV = hasattr(os, "pwritev")
Buffer = bytes | bytearray | memoryview


@contextmanager
def local_io(action: str, path: bytes | None = None) -> Iterator[None]:
    """Turn an OSError into one LocalIOError line: ``action`` (and ``path``, shown only then)."""
    try:
        yield
    except OSError as exc:
        what = action if path is None else f"{action} {show(path)}"
        raise LocalIOError(f"{what}: {exc.strerror or exc}") from None


def _syncfs() -> Callable[[int], int] | None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return cast("Callable[[int], int]", libc.syncfs)
    except (OSError, AttributeError):
        return None


_SYNCFS = _syncfs() if sys.platform.startswith("linux") else None
#: Whether :func:`sync_filesystem` works here.
HAS_SYNCFS = _SYNCFS is not None


def sync_filesystem(fd: int) -> bool:
    """Flush the whole filesystem holding ``fd`` to disk (Linux ``syncfs``): one call instead of
    an fsync per file. False where it is not available (then fsync each file instead)."""
    if _SYNCFS is None:
        return False
    if _SYNCFS(fd) != 0:
        err = ctypes.get_errno()
        raise LocalIOError(f"cannot flush the restored files to disk: {os.strerror(err)}")
    return True


def open_dir_at(base_fd: int, path: bytes) -> int:
    """A new fd of directory ``path`` below ``base_fd``, opened without following any symlink."""
    fd = os.dup(base_fd)
    try:
        for part in path.split(b"/") if path else []:
            new = os.open(part, DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = new
    except BaseException:
        os.close(fd)
        raise
    return fd


class DirFds:
    """Cached fds of the directories below ``base``, each opened from its deepest cached ancestor.

    Not thread-safe: the staging's own cache is used under its lock, and each thread that creates
    files (:class:`NewFiles`) keeps one of its own, so creating a file never waits for a lock.
    """

    def __init__(self, base: int, size: int = _DIR_CACHE) -> None:
        self._base, self._size = base, size
        self._cache: collections.OrderedDict[bytes, int] = collections.OrderedDict()

    def get(self, path: bytes) -> int:
        """An fd of directory ``path`` below the base (valid until the next call)."""
        if not path:
            return self._base
        cache = self._cache
        found = cache.get(path)
        if found is not None:
            cache.move_to_end(path)
            return found
        parts = path.split(b"/")
        depth, base = len(parts) - 1, self._base
        while depth > 0:
            ancestor = b"/".join(parts[:depth])
            found = cache.get(ancestor)
            if found is not None:
                cache.move_to_end(ancestor)
                base = found
                break
            depth -= 1
        for j in range(depth, len(parts)):
            base = os.open(parts[j], DIR_FLAGS, dir_fd=base)
            cache[b"/".join(parts[: j + 1])] = base
        while len(cache) > self._size:
            os.close(cache.popitem(last=False)[1])
        return base

    def close(self) -> None:
        for fd in self._cache.values():
            os.close(fd)
        self._cache.clear()


def pwrite_all(fd: int, buffers: Sequence[Buffer], offset: int) -> None:
    """Write ``buffers`` back to back from ``offset`` of ``fd`` (``pwritev``, short writes resumed)."""
    views = [memoryview(b).cast("B") for b in buffers if len(b)]
    while views:
        written = (
            os.pwritev(fd, views[:_IOV_MAX], offset) if _HAS_PWRITEV else os.pwrite(fd, views[0], offset)
        )
        offset += written
        while views and written >= len(views[0]):
            written -= len(views[0])
            views.pop(0)
        if written:
            views[0] = views[0][written:]


class NewFiles:
    """Files that one thread alone creates and fills: no lock, and no fd shared with another thread.

    A restore gives each pack's worker one of these for the files whose chunks all come from that
    pack (most small files): the first write creates the file (exclusively, like every staged entry)
    and the caller closes it once it is complete, so such a file costs one ``open``, its writes and
    one ``close``. Files other threads also write go through :meth:`Staging.write_run` instead.
    """

    def __init__(self, staging_fd: int) -> None:
        self._dirs = DirFds(staging_fd)
        self._fds: collections.OrderedDict[int, int] = collections.OrderedDict()  # file index -> fd
        self._created: set[int] = set()  # files created by this thread and closed before completion

    def write(self, index: int, path: bytes, buffers: Sequence[Buffer], offset: int) -> int:
        """Write ``buffers`` at ``offset`` of staged file ``path``, creating it on the first write;
        returns its fd, open until :meth:`close`."""
        with local_io("cannot write", path):
            fd = self._fds.get(index)
            if fd is None:
                parent, name = split(path)
                flags = _FILE_FLAGS if index in self._created else _FILE_FLAGS | os.O_CREAT | os.O_EXCL
                fd = self._fds[index] = os.open(name, flags, 0o600, dir_fd=self._dirs.get(parent))
                self._created.discard(index)
                while len(self._fds) > _FILE_CACHE:  # interleaved files: reopen later, do not re-create
                    evicted, old = self._fds.popitem(last=False)
                    self._created.add(evicted)
                    os.close(old)
            else:
                self._fds.move_to_end(index)
            pwrite_all(fd, buffers, offset)
        return fd

    def close(self, index: int) -> None:
        """Close file ``index`` (it is complete)."""
        os.close(self._fds.pop(index))

    def close_all(self) -> None:
        """Close every fd this thread holds (files and directories)."""
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()
        self._dirs.close()


class Staging:
    """A fresh private directory inside the target, and fd-relative creation inside it."""

    def __init__(self, target_fd: int) -> None:
        self.name = PREFIX + secrets.token_hex(16)
        self._target_fd = target_fd
        with local_io("cannot create the staging directory in the target"):
            os.mkdir(self.name, 0o700, dir_fd=target_fd)
            self.fd = os.open(self.name, DIR_FLAGS, dir_fd=target_fd)
        self.dev = os.fstat(self.fd).st_dev
        self.dirs: set[bytes] = set()
        self.children: dict[bytes, list[bytes]] = {}  # parent path -> names created in it
        self._dirs = DirFds(self.fd)
        self._file_fds: collections.OrderedDict[int, list[int]] = collections.OrderedDict()  # [fd, users]
        self._lock = threading.Lock()

    # Directory fds (callers hold the lock) -----------------------------------------------------

    def _dir(self, path: bytes) -> int:
        """A cached fd of staged directory ``path`` (valid until the next call)."""
        return self._dirs.get(path)

    def open_dir(self, path: bytes) -> int:
        """A new fd of staged directory ``path`` (the caller closes it)."""
        with self._lock:
            return os.dup(self._dir(path))

    def _note(self, path: bytes) -> None:
        parent, name = split(path)
        self.children.setdefault(parent, []).append(name)

    # Creation ----------------------------------------------------------------------------------

    def mkdir(self, path: bytes) -> None:
        with self._lock, local_io("cannot create directory", path):
            parent, name = split(path)
            os.mkdir(name, 0o700, dir_fd=self._dir(parent))
        self.dirs.add(path)
        self._note(path)

    def create_file(self, path: bytes) -> None:
        os.close(self.create_open(path))

    def create_open(self, path: bytes) -> int:
        """Create staged regular file ``path`` (exclusively) and return a write fd of it."""
        with self._lock, local_io("cannot create", path):
            parent, name = split(path)
            fd = os.open(name, _FILE_FLAGS | os.O_CREAT | os.O_EXCL, 0o600, dir_fd=self._dir(parent))
        self._note(path)
        return fd

    def note_file(self, path: bytes) -> None:
        """Count ``path`` in the staged tree now; a :class:`NewFiles` of a worker creates it later."""
        self._note(path)

    def new_files(self) -> NewFiles:
        """Lock-free creation and writes for files only the calling thread fills (close it after)."""
        return NewFiles(self.fd)

    def write(self, index: int, path: bytes, data: bytes, offset: int) -> None:
        """Write ``data`` at ``offset`` of staged file ``path`` (number ``index``); thread-safe."""
        self.write_run(index, path, [data], offset)

    def write_run(self, index: int, path: bytes, buffers: Sequence[Buffer], offset: int) -> None:
        """Write ``buffers`` back to back from ``offset`` of staged file ``path``, with ``pwritev``.

        Thread-safe; the lock guards only the fd cache, so threads write (and the kernel copies)
        at the same time. An fd in use is never closed by another thread's eviction.
        """
        with local_io("cannot write", path):
            fd = self._acquire(index, path)
            try:
                pwrite_all(fd, buffers, offset)
            finally:
                self._release(index)

    def _acquire(self, index: int, path: bytes) -> int:
        """The cached write fd of file ``index``, marked in use until :meth:`_release`."""
        with self._lock:
            slot = self._file_fds.get(index)
            if slot is None:
                parent, name = split(path)
                slot = self._file_fds[index] = [os.open(name, _FILE_FLAGS, dir_fd=self._dir(parent)), 1]
                self._evict()
            else:
                self._file_fds.move_to_end(index)
                slot[1] += 1
            return slot[0]

    def _release(self, index: int) -> None:
        with self._lock:
            self._file_fds[index][1] -= 1
            self._evict()

    def _evict(self) -> None:
        """Close the least recently used idle fds beyond the cache size (callers hold the lock)."""
        excess = len(self._file_fds) - _FILE_CACHE
        if excess <= 0:
            return
        for index in [i for i, (_, users) in self._file_fds.items() if not users][:excess]:
            os.close(self._file_fds.pop(index)[0])

    def open_file(self, path: bytes) -> int:
        """A new write fd of staged regular file ``path`` (the caller closes it)."""
        with self._lock, local_io("cannot open", path):
            parent, name = split(path)
            fd = os.open(name, _FILE_FLAGS, dir_fd=self._dir(parent))
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise LocalIOError(f"staged file {show(path)} is no longer a regular file")
        return fd

    def link(self, path: bytes, existing: bytes) -> None:
        """Hard link ``path`` to the staged file ``existing``."""
        src_parent, src_name = split(existing)
        parent, name = split(path)
        src_fd, dst_fd = self.open_dir(src_parent), self.open_dir(parent)
        try:
            with local_io("cannot hard link", path):
                os.link(src_name, name, src_dir_fd=src_fd, dst_dir_fd=dst_fd, follow_symlinks=False)
        finally:
            os.close(src_fd)
            os.close(dst_fd)
        self._note(path)

    def symlink(self, path: bytes, target: bytes) -> None:
        with self._lock, local_io("cannot create symlink", path):
            parent, name = split(path)
            os.symlink(target, name, dir_fd=self._dir(parent))
        self._note(path)

    def mkfifo(self, path: bytes) -> None:
        with self._lock, local_io("cannot create fifo", path):
            parent, name = split(path)
            os.mkfifo(name, 0o600, dir_fd=self._dir(parent))
        self._note(path)

    def mknod(self, path: bytes, kind: int, rdev: int) -> None:
        with self._lock, local_io("cannot create device", path):
            parent, name = split(path)
            os.mknod(name, kind | 0o600, rdev, dir_fd=self._dir(parent))
        self._note(path)

    # Cleanup -----------------------------------------------------------------------------------

    def close_files(self) -> None:
        with self._lock:
            for fd, _ in self._file_fds.values():
                os.close(fd)
            self._file_fds.clear()

    def close(self) -> None:
        """Close every fd this staging holds (the directory stays)."""
        self.close_files()
        with self._lock:
            self._dirs.close()

    def remove(self) -> None:
        """Close everything and delete the staging directory and all it holds (never following links)."""
        self.close()
        with contextlib.suppress(OSError):
            os.close(self.fd)
        with local_io(f"cannot remove the staging directory {self.name}"):
            shutil.rmtree(self.name, dir_fd=self._target_fd)
