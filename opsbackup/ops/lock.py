"""The run lock: ``fcntl.flock`` on a file that is created once and never deleted.

The kernel releases a flock when its holder's file descriptor closes, including when the process
is killed with SIGKILL, so a crashed run never leaves a stale lock behind (no PID files, no
staleness guesses). Deleting the file would let two runs lock two different inodes; it stays.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from opsbackup.errors import AlreadyRunningError, LocalIOError

__all__ = ["LOCK_NAME", "run_lock"]

LOCK_NAME = "run.lock"


@contextlib.contextmanager
def run_lock(path: Path, *, wait: bool = False) -> Iterator[None]:
    """Hold the exclusive lock on ``path`` (created 0600 if missing) for the ``with`` block.

    Without ``wait`` a lock held by another process is :class:`AlreadyRunningError` (exit 5);
    with ``wait`` this blocks until the other run ends.
    """
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    except OSError as exc:
        raise LocalIOError(f"cannot open the lock file {path}: {exc.strerror or exc}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            raise AlreadyRunningError(
                f"another opsbackup run holds the lock {path}; not starting a second one (use --wait to wait)"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode("ascii"))  # for a human; the lock is the flock
        yield
    finally:
        os.close(fd)
