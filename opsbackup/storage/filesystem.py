"""The local filesystem backend: one file per object under a root directory.

Keys (already refused by :func:`check_key` if they hold ``..``, empty segments, leading dots or
upper case) map to paths under the root. Every path is walked one directory at a time with
``openat``-style calls and ``O_NOFOLLOW``, so a symlink planted anywhere under the root is never
followed and nothing outside the root is ever read or written. Writes follow the same protocol
as :mod:`crypto.atomic_file` (temporary file, fsync, link or rename, fsync of the directory) but
relative to directory descriptors: a conditional create is ``link()``, which fails if the name
exists, so exactly one of two racing creators wins. Temporary names start with a dot and end in
``.tmp``, which no key can, so they never collide with objects and listings skip them.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO, TypeVar

from opsbackup.errors import FormatError, IntegrityError, LocalIOError, NotFoundError
from opsbackup.storage.base import ObjectStore, check_key

__all__ = ["PIECE", "FilesystemStore"]

#: Streaming granularity, for reads and writes: memory use per operation is bounded by this.
PIECE = 1 << 20
FILE_MODE = 0o600
DIR_MODE = 0o700
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_NOT_THERE = (errno.ENOENT, errno.ENOTDIR, errno.ELOOP)
_T = TypeVar("_T")


class FilesystemStore(ObjectStore):
    """Objects as files under ``root`` (created with mode 0700 if missing)."""

    def __init__(self, root: Path) -> None:
        root = Path(root)
        root.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        self.root = root.resolve(strict=True)

    # -- directory walking -------------------------------------------------------------------

    def _open_dir(self, segments: list[str], *, create: bool) -> int:
        """A descriptor of root/segments..., never following a symlink; NotFoundError if absent."""
        fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            for segment in segments:
                try:
                    child = os.open(segment, _DIR_FLAGS, dir_fd=fd)
                except OSError as exc:
                    if exc.errno != errno.ENOENT or not create:
                        if exc.errno in _NOT_THERE:
                            raise NotFoundError(f"no such object directory: {segment!r}") from None
                        raise
                    with contextlib.suppress(FileExistsError):  # a racing creator made it first
                        os.mkdir(segment, DIR_MODE, dir_fd=fd)
                        os.fsync(fd)
                    child = os.open(segment, _DIR_FLAGS, dir_fd=fd)
                os.close(fd)
                fd = child
        except BaseException:
            os.close(fd)
            raise
        return fd

    @staticmethod
    def _split(key: str) -> tuple[list[str], str]:
        *dirs, name = check_key(key).split("/")
        return dirs, name

    def _open_object(self, key: str) -> int:
        dirs, name = self._split(key)
        dir_fd = self._open_dir(dirs, create=False)
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
        except OSError as exc:
            if exc.errno in _NOT_THERE:
                raise NotFoundError(f"object {key} does not exist") from None
            raise
        finally:
            os.close(dir_fd)
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise NotFoundError(f"object {key} does not exist")
        return fd

    # -- the interface -----------------------------------------------------------------------

    def put(
        self,
        key: str,
        source: BinaryIO,
        *,
        sha256: bytes | None = None,
        max_size: int | None = None,
        overwrite: bool = False,
    ) -> bool:
        dirs, name = self._split(key)
        dir_fd = self._open_dir(dirs, create=True)
        try:
            if not overwrite and _lexists(name, dir_fd):
                return False
            tmp = f".{name}.{os.urandom(8).hex()}.tmp"
            fd = os.open(
                tmp,
                os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                FILE_MODE,
                dir_fd=dir_fd,
            )
            try:
                try:
                    _copy_verified(source, fd, key, sha256=sha256, max_size=max_size)
                finally:
                    os.close(fd)
                try:
                    if overwrite:
                        os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
                        tmp = ""
                    else:
                        try:
                            os.link(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd, follow_symlinks=False)
                        except FileExistsError:
                            return False
                    os.fsync(dir_fd)
                except OSError as exc:
                    raise LocalIOError(f"cannot store object {key}: {exc.strerror or exc}") from exc
            finally:
                if tmp:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(tmp, dir_fd=dir_fd)
            return True
        finally:
            os.close(dir_fd)

    def get(self, key: str, *, offset: int = 0, length: int | None = None) -> Iterator[bytes]:
        if offset < 0 or (length is not None and length < 0):
            raise FormatError(f"invalid range for {key}: offset {offset}, length {length}")
        fd = self._open_object(key)  # raises now, not at the first piece
        size = os.fstat(fd).st_size
        if offset > size:
            os.close(fd)
            raise FormatError(f"range starts at {offset}, beyond the end of {key} ({size} bytes)")
        end = size if length is None else min(size, offset + length)
        return _read_range(os.fdopen(fd, "rb", buffering=0), offset, end)

    def size(self, key: str) -> int:
        fd = self._open_object(key)
        try:
            return os.fstat(fd).st_size
        finally:
            os.close(fd)

    def delete(self, key: str) -> bool:
        dirs, name = self._split(key)
        try:
            dir_fd = self._open_dir(dirs, create=False)
        except NotFoundError:
            return False
        try:
            try:
                st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            except FileNotFoundError:
                return False
            if not stat.S_ISREG(st.st_mode):
                return False
            try:
                os.unlink(name, dir_fd=dir_fd)
            except FileNotFoundError:
                return False  # a concurrent delete won
            os.fsync(dir_fd)
            return True
        finally:
            os.close(dir_fd)

    def list(self, prefix: str) -> Iterator[str]:
        fd = self._open_prefix(prefix)
        return iter(()) if fd is None else self._walk(fd, prefix, _key_only)

    def list_sizes(self, prefix: str, *, start_after: str | None = None) -> Iterator[tuple[str, int]]:
        """One ``fstatat`` per file, made when the walk reaches it (no open, unlike :meth:`size`).

        With ``start_after`` the walk neither opens nor scans a directory whose keys all sort
        at or before it: resuming a listing costs the directories on the way to that key, not
        everything before it.
        """
        after = None if start_after is None else check_key(start_after)
        fd = self._open_prefix(prefix)
        return iter(()) if fd is None else self._walk(fd, prefix, _key_and_size, after)

    def _open_prefix(self, prefix: str) -> int | None:
        """A descriptor of the directory ``prefix`` names, None if it does not exist."""
        if prefix and not prefix.endswith("/"):
            raise FormatError(f"invalid list prefix {prefix[:80]!r}: must be empty or end with '/'")
        if prefix:
            check_key(prefix[:-1])
        segments = prefix[:-1].split("/") if prefix else []
        try:
            return self._open_dir(segments, create=False)
        except NotFoundError:
            return None

    def _walk(
        self,
        fd: int,
        prefix: str,
        leaf: Callable[[int, str, str], _T | None],
        after: str | None = None,
    ) -> Iterator[_T]:
        """``leaf(dir_fd, name, key)`` for the files under the directory ``fd`` whose keys are
        greater than ``after`` (all if None), in sorted key order, lazily, skipping None (closes ``fd``).

        Sorting a directory's entries with ``name + "/"`` for subdirectories yields the global
        string order of keys: every key below ``d`` starts with ``d/``. So a subdirectory ``D/``
        whose path sorts below ``after`` and is not a prefix of it holds only keys below ``after``
        and is skipped unopened; one sorting above it holds only greater keys, as does every
        entry after it, so the comparisons stop there.
        """
        try:
            with os.scandir(fd) as it:
                entries = sorted(
                    (
                        (e.name + "/" if e.is_dir(follow_symlinks=False) else e.name),
                        e.is_file(follow_symlinks=False),
                    )
                    for e in it
                    if _is_key_segment(e.name)
                )
            for sort_name, is_file in entries:
                path = prefix + sort_name
                below = None  # the bound to pass down into a subdirectory
                if after is not None:
                    if path > after:
                        after = None  # this entry and all after it hold only greater keys
                    elif is_file or not after.startswith(path):
                        continue  # the key itself, or a directory of keys, at or before ``after``
                    else:
                        below = after  # ``after`` lies inside this directory
                if is_file:
                    item = leaf(fd, sort_name, path)
                    if item is not None:
                        yield item
                elif sort_name.endswith("/"):
                    try:
                        child = os.open(sort_name[:-1], _DIR_FLAGS, dir_fd=fd)
                    except OSError as exc:
                        if exc.errno in _NOT_THERE:
                            continue  # removed meanwhile, or replaced by a symlink: skip
                        raise
                    yield from self._walk(child, path, leaf, below)
        finally:
            os.close(fd)


def _key_only(_dir_fd: int, _name: str, key: str) -> str:
    return key


def _key_and_size(dir_fd: int, name: str, key: str) -> tuple[str, int] | None:
    """``(key, size)`` of a regular file, None if it was deleted (or replaced) since the scan."""
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except OSError as exc:
        if exc.errno in _NOT_THERE:
            return None
        raise
    return (key, st.st_size) if stat.S_ISREG(st.st_mode) else None


def _is_key_segment(name: str) -> bool:
    try:
        check_key(name)
    except FormatError:
        return False
    return True


def _lexists(name: str, dir_fd: int) -> bool:
    try:
        os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True


def _copy_verified(
    source: BinaryIO, fd: int, key: str, *, sha256: bytes | None, max_size: int | None
) -> None:
    digest = hashlib.sha256()
    total = 0
    while piece := source.read(PIECE):
        total += len(piece)
        if max_size is not None and total > max_size:
            raise FormatError(f"object {key} is larger than the limit of {max_size} bytes")
        digest.update(piece)
        view = memoryview(piece)
        try:
            while view:
                view = view[os.write(fd, view) :]
        except OSError as exc:
            raise LocalIOError(f"cannot store object {key}: {exc.strerror or exc}") from exc
    if sha256 is not None and digest.digest() != sha256:
        raise IntegrityError(f"object {key} does not match its SHA-256: nothing was stored")
    try:
        os.fsync(fd)
    except OSError as exc:
        raise LocalIOError(f"cannot store object {key}: {exc.strerror or exc}") from exc


def _read_range(f: BinaryIO, offset: int, end: int) -> Iterator[bytes]:
    with f:
        f.seek(offset)
        position = offset
        while position < end:
            piece = f.read(min(PIECE, end - position))
            if not piece:
                return  # the file shrank (it cannot, objects are immutable): stop rather than spin
            position += len(piece)
            yield piece
