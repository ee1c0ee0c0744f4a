"""The one reader of secret files: owner-only, regular (or an allowed pipe), bounded."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from crypto.private_file import read_private_file
from formats.errors import ConfigError, FormatError, KeyPermissionError, LocalIOError, NotFoundError


def _private(path: Path, data: bytes, mode: int = 0o600) -> Path:
    path.write_bytes(data)
    path.chmod(mode)
    return path


def test_reads_an_owner_only_file(tmp_path: Path) -> None:
    assert read_private_file(_private(tmp_path / "k", b"secret"), "key file", 100) == b"secret"


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o620, 0o602, 0o610, 0o601])
def test_any_access_by_group_or_others_is_refused(tmp_path: Path, mode: int) -> None:
    path = _private(tmp_path / "k", b"secret", mode)
    with pytest.raises(KeyPermissionError, match=f"mode {mode:04o}.*chmod 600"):
        read_private_file(path, "key file", 100)
    assert read_private_file(path, "key file", 100, check_mode=False) == b"secret"


def test_missing_unreadable_and_too_large_raise_the_callers_classes(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match=r"key file .* does not exist"):
        read_private_file(tmp_path / "absent", "key file", 100)
    with pytest.raises(ConfigError, match=r"credential file .* does not exist"):
        read_private_file(tmp_path / "absent", "credential file", 100, missing=ConfigError)
    with pytest.raises(LocalIOError, match="not a regular file"):
        read_private_file(tmp_path, "key file", 100)
    big = _private(tmp_path / "big", b"x" * 101)
    with pytest.raises(FormatError, match="too large"):
        read_private_file(big, "key file", 100)
    assert read_private_file(big, "key file", 101) == b"x" * 101


def test_a_fifo_is_refused_without_blocking_unless_allowed(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo, 0o600)
    with pytest.raises(LocalIOError, match="not a regular file"):
        read_private_file(fifo, "key file", 100)  # O_NONBLOCK: no writer needed to get here

    def writer() -> None:
        with open(fifo, "wb") as f:
            f.write(b"from a pipe\n")

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    assert read_private_file(fifo, "passphrase file", 100, allow_special=True) == b"from a pipe\n"
    thread.join(timeout=10)
