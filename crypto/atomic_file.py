"""Write a file so that it is either wholly there or not there at all, and durable.

Temp file in the same directory (created with the final mode, never wider), write, fsync, rename
over the target, fsync the directory. Used for key files, the server's objects and restored files.
Lives in ``crypto`` (which does I/O for key files) so that both the client and the server, which
may not import private-key code, can share it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

__all__ = ["atomic_writer", "fsync_dir", "write_atomic"]


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_writer(path: Path, mode: int = 0o600, *, overwrite: bool = True) -> Iterator[BinaryIO]:
    """Yield a file to write; on success it replaces ``path`` atomically, on error it vanishes.

    With ``overwrite=False`` an existing ``path`` is never replaced (``FileExistsError``), checked
    atomically with a hard link, so two writers cannot both win.
    """
    path = Path(path)
    directory = path.parent
    fd, tmp_name = _mkstemp(directory, path.name, mode)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)  # fails with FileExistsError if the target exists
            tmp.unlink()
        fsync_dir(directory)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def write_atomic(path: Path, data: bytes, mode: int = 0o600, *, overwrite: bool = True) -> None:
    with atomic_writer(path, mode, overwrite=overwrite) as f:
        f.write(data)


def _mkstemp(directory: Path, name: str, mode: int) -> tuple[int, str]:
    for _ in range(100):
        tmp = directory / f".{name}.{os.urandom(6).hex()}.tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
        except FileExistsError:
            continue
        os.fchmod(fd, mode)  # the umask may have narrowed it; never widen beyond ``mode``
        return fd, str(tmp)
    raise FileExistsError(f"cannot create a temporary file in {directory}")
