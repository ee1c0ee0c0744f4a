"""Read a small secret file (key file, credential, passphrase) that only its owner may access.

One place for the rule every secret file follows: opened without following a FIFO's writer
(``O_NONBLOCK``), refused unless it is a regular file (or, where allowed, a pipe), refused when
group or others have any access to it (``chmod 600``), and bounded in size before it is read.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from formats.errors import FormatError, KeyPermissionError, LocalIOError, NotFoundError, OpsbackupError

__all__ = ["read_private_file"]


def read_private_file(
    path: Path,
    what: str,
    max_size: int,
    *,
    check_mode: bool = True,
    allow_special: bool = False,
    missing: type[OpsbackupError] = NotFoundError,
    unreadable: type[OpsbackupError] = LocalIOError,
    too_large: type[OpsbackupError] = FormatError,
) -> bytes:
    """The bytes of ``path`` (at most ``max_size``), described to the user as ``what``.

    :class:`KeyPermissionError` when group or others may access it (``check_mode``); ``missing``
    when it does not exist; ``unreadable`` when it cannot be opened or is not a regular file
    (with ``allow_special`` a pipe or device is accepted, unchecked, for
    ``--passphrase-file <(pass show x)``);
    ``too_large`` when it holds more than ``max_size`` bytes.
    """
    flags = os.O_RDONLY | os.O_CLOEXEC | (0 if allow_special else os.O_NONBLOCK)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise missing(f"{what} {path} does not exist") from None
    except OSError as exc:
        raise unreadable(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    st = os.fstat(fd)
    regular = stat.S_ISREG(st.st_mode)
    if not regular and (not allow_special or stat.S_ISDIR(st.st_mode)):
        os.close(fd)
        raise unreadable(f"{what} {path} is not a regular file")
    with os.fdopen(fd, "rb") as f:
        if check_mode and regular and st.st_mode & 0o077:
            raise KeyPermissionError(
                f"{what} {path} is accessible by group or others "
                f"(mode {stat.S_IMODE(st.st_mode):04o}): run `chmod 600 {path}`"
            )
        data = f.read(max_size + 1)
    if len(data) > max_size:
        raise too_large(f"{what} {path} is too large (more than {max_size} bytes)")
    return data
