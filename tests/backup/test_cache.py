"""The local cache on its own: one run at a time, rebuilt when foreign, u64 inode numbers kept."""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path

import pytest

from opsbackup.backup.cache import Cache, cache_path
from opsbackup.errors import AlreadyRunningError, LocalIOError

ROOT_ID = bytes(range(32))
EPOCH = "0a1b2c3d"


def fake_stat(ino: int, dev: int, size: int, mtime_ns: int, ctime_ns: int) -> os.stat_result:
    fields = (stat.S_IFREG | 0o644, ino, dev, 1, 0, 0, size, 0, 0, 0)
    return os.stat_result(fields, {"st_mtime_ns": mtime_ns, "st_ctime_ns": ctime_ns})


def test_a_second_run_of_the_same_host_is_refused_while_the_first_holds_the_cache(tmp_path: Path) -> None:
    first = Cache.open(tmp_path, ROOT_ID, "web1", print, epoch=EPOCH)
    try:
        with pytest.raises(AlreadyRunningError, match="web1"):
            Cache.open(tmp_path, ROOT_ID, "web1", print, epoch=EPOCH)
        other = Cache.open(tmp_path, ROOT_ID, "web2", print, epoch=EPOCH)  # another host has its own cache
        other.close()
    finally:
        first.close()
    Cache.open(tmp_path, ROOT_ID, "web1", print, epoch=EPOCH).close()  # released on close


def test_a_cache_of_another_schema_version_is_rebuilt_with_a_warning(tmp_path: Path) -> None:
    path = cache_path(tmp_path, ROOT_ID, "web1", EPOCH)
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE foreign_table(x)")
    conn.execute("PRAGMA user_version=99")
    conn.commit()
    conn.close()
    warnings: list[str] = []
    cache = Cache.open(tmp_path, ROOT_ID, "web1", warnings.append, epoch=EPOCH)
    try:
        assert len(warnings) == 1
        assert "schema version 99" in warnings[0]
        assert cache.synced_manifests() == set()
    finally:
        cache.close()


def test_file_fingerprints_keep_u64_device_and_inode_numbers(tmp_path: Path) -> None:
    st = fake_stat(ino=(1 << 64) - 5, dev=(1 << 63) + 7, size=10, mtime_ns=-1_000, ctime_ns=2_000)
    cache = Cache.open(tmp_path, ROOT_ID, "web1", print, epoch=EPOCH)
    try:
        cache.put_file(b"a/b", st, 10, b"\x01" * 36)
        cache.commit()
        row = cache.file(b"a/b")
        assert row is not None
        assert row.chunks == b"\x01" * 36
        assert cache.file_matches(row, st)
        assert not cache.file_matches(row, fake_stat((1 << 64) - 4, (1 << 63) + 7, 10, -1_000, 2_000))
        assert not cache.file_matches(row, fake_stat((1 << 64) - 5, (1 << 63) + 7, 10, -1_000, 2_001))
    finally:
        cache.close()
    assert stat.S_IMODE(cache_path(tmp_path, ROOT_ID, "web1", EPOCH).stat().st_mode) == 0o600


def test_an_unusable_cache_directory_is_a_local_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_bytes(b"")
    with pytest.raises(LocalIOError, match="cache directory"):
        Cache.open(blocker / "cache", ROOT_ID, "web1", print, epoch=EPOCH)


def test_the_newest_manifest_of_a_host_is_found_by_time_then_by_chain(tmp_path: Path) -> None:
    cache = Cache.open(tmp_path, ROOT_ID, "web1", print, epoch=EPOCH)
    try:
        a, b, c, old = (bytes([n]) * 32 for n in (1, 2, 3, 4))
        # Three backups in the same second, chained a <- b <- c (hashes chosen so c sorts first).
        cache.add_manifest("web1", "ids-c", 100, a, bytes(32))
        cache.add_manifest("web1", "ids-b", 100, c, a)
        cache.add_manifest("web1", "ids-a", 100, b, c)
        cache.add_manifest("web1", "ids-old", 99, old, bytes(32))
        cache.add_manifest("web2", "ids-x", 500, bytes([9]) * 32, bytes(32))
        for order in (["ids-a", "ids-b", "ids-c", "ids-old"], ["ids-old", "ids-c", "ids-b", "ids-a"]):
            assert cache.newest_manifest("web1", order) == b
        assert cache.newest_manifest("web1", ["ids-old", "ids-c"]) == a
        assert cache.newest_manifest("web1", ["ids-x"]) is None
    finally:
        cache.close()
