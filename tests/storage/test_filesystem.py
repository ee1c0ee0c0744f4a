"""The filesystem backend: the conformance suite, plus what only a filesystem can get wrong."""

from __future__ import annotations

import errno
import io
import os
import stat
from pathlib import Path

import pytest

from opsbackup.errors import FormatError, IntegrityError, LocalIOError, NotFoundError
from opsbackup.storage.base import ObjectStore
from opsbackup.storage.filesystem import FilesystemStore
from tests.storage.conformance import ObjectStoreConformance, PatternSource


class TestFilesystemConformance(ObjectStoreConformance):
    @pytest.fixture
    def store(self, tmp_path: Path) -> ObjectStore:
        return FilesystemStore(tmp_path / "objects")


@pytest.fixture
def fs(tmp_path: Path) -> FilesystemStore:
    return FilesystemStore(tmp_path / "objects")


def _all_files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if not p.is_dir())


def test_symlinked_object_is_not_followed(fs: FilesystemStore, tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_bytes(b"outside the root")
    (fs.root / "leak").symlink_to(secret)
    with pytest.raises(NotFoundError):
        fs.read("leak")
    with pytest.raises(NotFoundError):
        fs.size("leak")
    assert list(fs.list("")) == []
    assert fs.put("leak", io.BytesIO(b"x")) is False  # the name is taken; nothing written through it
    assert fs.delete("leak") is False
    assert secret.read_bytes() == b"outside the root"


def test_symlinked_directory_is_not_followed(fs: FilesystemStore, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "obj").write_bytes(b"outside")
    (fs.root / "data").symlink_to(outside, target_is_directory=True)
    with pytest.raises(NotFoundError):
        fs.read("data/obj")
    assert list(fs.list("")) == []
    assert list(fs.list("data/")) == []
    with pytest.raises((NotFoundError, OSError)):
        fs.put("data/new", io.BytesIO(b"x"))
    assert sorted(p.name for p in outside.iterdir()) == ["obj"]
    assert fs.delete("data/obj") is False
    assert (outside / "obj").read_bytes() == b"outside"


def test_overwrite_through_planted_symlink_replaces_the_link_only(
    fs: FilesystemStore, tmp_path: Path
) -> None:
    target = tmp_path / "target"
    target.write_bytes(b"keep me")
    (fs.root / "obj").symlink_to(target)
    assert fs.put("obj", io.BytesIO(b"new"), overwrite=True)
    assert fs.read("obj") == b"new"
    assert target.read_bytes() == b"keep me"


def test_temp_files_cleaned_after_failures(fs: FilesystemStore) -> None:
    with pytest.raises(IntegrityError):
        fs.put("a/b", io.BytesIO(b"abc"), sha256=b"\0" * 32)
    with pytest.raises(FormatError):
        fs.put("a/c", io.BytesIO(b"abcdef"), max_size=3)
    fs.put("a/d", io.BytesIO(b"1"))
    assert fs.put("a/d", io.BytesIO(b"2")) is False
    fs.put("a/d", io.BytesIO(b"3"), overwrite=True)
    assert _all_files(fs.root) == ["a/d"]


def test_temp_files_hidden_from_listing(fs: FilesystemStore) -> None:
    fs.put("a/b", io.BytesIO(b"1"))
    (fs.root / "a" / ".b.0123.tmp").write_bytes(b"partial")
    (fs.root / "a" / "Upper").write_bytes(b"not a key")
    assert list(fs.list("")) == ["a/b"]


def test_file_and_directory_modes(fs: FilesystemStore) -> None:
    old = os.umask(0)
    try:
        fs.put("dir/sub/obj", io.BytesIO(b"x"))
    finally:
        os.umask(old)
    assert stat.S_IMODE((fs.root / "dir" / "sub" / "obj").stat().st_mode) == 0o600
    assert stat.S_IMODE((fs.root / "dir" / "sub").stat().st_mode) == 0o700
    assert stat.S_IMODE((fs.root / "dir").stat().st_mode) == 0o700


def test_reader_keeps_its_version_during_overwrite(fs: FilesystemStore) -> None:
    fs.put("k", io.BytesIO(b"A" * (3 << 20)))
    pieces = fs.get("k")
    first = next(pieces)
    fs.put("k", io.BytesIO(b"B" * 10), overwrite=True)
    rest = b"".join(pieces)
    assert set(first + rest) == {ord("A")}
    assert len(first + rest) == 3 << 20
    assert fs.read("k") == b"B" * 10


def test_keys_map_under_root(fs: FilesystemStore) -> None:
    fs.put("data/ab/cd", io.BytesIO(b"x"))
    assert (fs.root / "data" / "ab" / "cd").read_bytes() == b"x"


def test_existing_root_directory_is_used(tmp_path: Path) -> None:
    root = tmp_path / "r"
    root.mkdir()
    (root / "k").write_bytes(b"pre-existing")
    assert FilesystemStore(root).read("k") == b"pre-existing"


def test_disk_full_is_a_clear_error_and_leaves_nothing(
    fs: FilesystemStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    fs.put("a/keep", io.BytesIO(b"1"))
    real_write = os.write
    calls = {"n": 0}

    def full(fd: int, data: bytes | memoryview) -> int:
        calls["n"] += 1
        if calls["n"] > 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", full)
    with pytest.raises(LocalIOError, match="No space left"):
        fs.put("a/new", PatternSource(3 << 20))  # type: ignore[arg-type]
    monkeypatch.undo()
    assert _all_files(fs.root) == ["a/keep"]


def test_start_after_skips_the_directories_before_it_unscanned(
    fs: FilesystemStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Resuming a listing scans the directories on the way to ``start_after`` and those after it only.

    The real ``os.scandir`` runs; the wrapper only records which directory each call scanned.
    """
    for d in range(16):
        for n in range(3):
            fs.put(f"o/{d:02x}/{d:02x}{n}", io.BytesIO(b"." * n))
    scanned: list[str] = []
    real_scandir = os.scandir

    def recording_scandir(fd: int) -> object:
        scanned.append(str(Path(os.readlink(f"/proc/self/fd/{fd}")).relative_to(fs.root)))
        return real_scandir(fd)

    monkeypatch.setattr(os, "scandir", recording_scandir)
    listed = list(fs.list_sizes("o/", start_after="o/08/081"))
    assert listed == [("o/08/082", 2)] + [
        (f"o/{d:02x}/{d:02x}{n}", n) for d in range(9, 16) for n in range(3)
    ]
    assert scanned == ["o"] + [f"o/{d:02x}" for d in range(8, 16)]
    scanned.clear()
    assert list(fs.list_sizes("o/", start_after="o/0f/0f2")) == []
    assert scanned == ["o", "o/0f"]
    scanned.clear()
    assert list(fs.list_sizes("o/", start_after="o/0f/zz")) == []
    assert scanned == ["o", "o/0f"]
