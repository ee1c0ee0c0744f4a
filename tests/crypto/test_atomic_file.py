"""Atomic, durable, mode-exact file writes (crypto/atomic_file.py)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from crypto.atomic_file import atomic_writer, write_atomic


def _leftovers(directory: Path) -> list[str]:
    return [p.name for p in directory.iterdir() if p.name.endswith(".tmp")]


def test_writes_with_exact_mode_despite_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        write_atomic(tmp_path / "k", b"secret", 0o600)
    finally:
        os.umask(old)
    assert (tmp_path / "k").read_bytes() == b"secret"
    assert stat.S_IMODE((tmp_path / "k").stat().st_mode) == 0o600


def test_overwrite_replaces_whole_file(tmp_path: Path) -> None:
    write_atomic(tmp_path / "f", b"old contents", 0o644)
    write_atomic(tmp_path / "f", b"new", 0o644)
    assert (tmp_path / "f").read_bytes() == b"new"
    assert _leftovers(tmp_path) == []


def test_no_clobber_refuses_existing_and_keeps_it(tmp_path: Path) -> None:
    write_atomic(tmp_path / "k", b"first")
    with pytest.raises(FileExistsError):
        write_atomic(tmp_path / "k", b"second", overwrite=False)
    assert (tmp_path / "k").read_bytes() == b"first"
    assert _leftovers(tmp_path) == []


def test_failure_mid_write_leaves_target_untouched_and_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "f"
    target.write_bytes(b"intact")

    class BoomError(Exception):
        pass

    def write_then_fail() -> None:
        with atomic_writer(target) as f:
            f.write(b"partial")
            raise BoomError

    with pytest.raises(BoomError):
        write_then_fail()
    assert target.read_bytes() == b"intact"
    assert _leftovers(tmp_path) == []


def test_does_not_follow_planted_symlink_at_target(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_bytes(b"do not touch")
    (tmp_path / "f").symlink_to(victim)
    write_atomic(tmp_path / "f", b"new")
    assert victim.read_bytes() == b"do not touch"
    assert not (tmp_path / "f").is_symlink()
    assert (tmp_path / "f").read_bytes() == b"new"
