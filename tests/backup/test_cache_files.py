"""The cache's file rows by directory and its prefetched chunk rows: what a re-backup asks of it.

A run loads the rows of a directory at once and prefetches the chunks they name; these tests
check that those copies never say something the database would not: after a subdirectory the
parent's rows are still there, a row written in the run is seen, a chunk uploaded or forgotten
in the run is seen as such, a huge directory falls back to one query per file, and a cache of
schema version 3 is migrated with its rows (no rebuild, no warning).
"""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path

import pytest

from opsbackup.backup import cache as cache_module
from opsbackup.backup.cache import SCHEMA_VERSION, Cache, ChunkHit, cache_path

ROOT_ID = bytes(range(32))
EPOCH = "0a1b2c3d"


def fake_stat(ino: int, size: int = 10) -> os.stat_result:
    fields = (stat.S_IFREG | 0o644, ino, 7, 1, 0, 0, size, 0, 0, 0)
    return os.stat_result(fields, {"st_mtime_ns": 1_000 + ino, "st_ctime_ns": 2_000 + ino})


def chunk_list(*ids: bytes) -> bytes:
    return b"".join(cid + (100).to_bytes(4, "big") for cid in ids)


def cid(n: int) -> bytes:
    return bytes([n]) * 32


def open_cache(tmp_path: Path, warnings: list[str] | None = None) -> Cache:
    return Cache.open(
        tmp_path, ROOT_ID, "web1", (warnings if warnings is not None else []).append, epoch=EPOCH
    )


def test_rows_are_found_in_walk_order_after_leaving_and_reentering_directories(tmp_path: Path) -> None:
    paths = [b"top", b"a/f1", b"a/b/f2", b"a/b/c/f3", b"a/f4", b"a/z/f5", b"x/f6"]
    cache = open_cache(tmp_path)
    try:
        for n, path in enumerate(paths):
            cache.put_file(path, fake_stat(n), 10, chunk_list(cid(n)))
        cache.commit()
    finally:
        cache.close()
    cache = open_cache(tmp_path)
    try:
        for n, path in enumerate(paths):  # depth-first: "a/f4" comes back to "a" after "a/b/c"
            row = cache.file(path)
            assert row is not None, path
            assert cache.file_matches(row, fake_stat(n))
            assert row.chunks == chunk_list(cid(n))
        assert cache.file(b"a/missing") is None
        assert cache.file(b"nowhere/f") is None
    finally:
        cache.close()


def test_a_row_written_in_the_run_is_seen_in_a_loaded_directory(tmp_path: Path) -> None:
    cache = open_cache(tmp_path)
    try:
        assert cache.file(b"d/new") is None  # loads "d"
        cache.put_file(b"d/new", fake_stat(5), 10, chunk_list(cid(5)))
        row = cache.file(b"d/new")
        assert row is not None
        assert cache.file_matches(row, fake_stat(5))
    finally:
        cache.close()


def test_prefetched_chunks_follow_uploads_and_forgotten_packs(tmp_path: Path) -> None:
    cache = open_cache(tmp_path)
    try:
        source = cache.start_run(b"\x01" * 16, b"\x02" * 32)
        old_pack = cache.add_own_pack(b"p" * 32, 1000, source, [(cid(1), 100)])
        cache.put_file(b"d/known", fake_stat(1), 100, chunk_list(cid(1)))
        cache.put_file(b"d/lost", fake_stat(2), 100, chunk_list(cid(2)))
        cache.commit()
        assert cache.file(b"d/known") is not None  # prefetches cid(1) (a hit) and cid(2) (a miss)
        assert cache.chunk(cid(1)) == ChunkHit(old_pack, 100, False)
        assert cache.chunk(cid(2)) is None
        new_pack = cache.add_own_pack(b"q" * 32, 1000, source, [(cid(2), 100)])
        assert cache.chunk(cid(2)) == ChunkHit(new_pack, 100, False)
        cache.forget_packs([old_pack])
        assert cache.chunk(cid(1)) is None
        assert cache.chunk(cid(2)) == ChunkHit(new_pack, 100, False)
        cache.import_chunks([(cid(3), new_pack, 50)])
        assert cache.chunk(cid(3)) == ChunkHit(new_pack, 50, True)
    finally:
        cache.close()


def test_a_directory_too_large_to_load_is_looked_up_file_by_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cache_module, "_MAX_DIR_ROWS", 3)
    cache = open_cache(tmp_path)
    try:
        for n in range(5):
            cache.put_file(b"big/f%d" % n, fake_stat(n), 10, chunk_list(cid(n)))
        cache.put_file(b"big/sub/g", fake_stat(9), 10, chunk_list(cid(9)))
        cache.commit()
        for n in range(5):
            row = cache.file(b"big/f%d" % n)
            assert row is not None
            assert cache.file_matches(row, fake_stat(n))
        assert cache.file(b"big/sub/g") is not None
        assert cache.file(b"big/none") is None
        cache.put_file(b"big/f0", fake_stat(20), 10, chunk_list(cid(20)))
        cache.commit()
        row = cache.file(b"big/f0")
        assert row is not None
        assert cache.file_matches(row, fake_stat(20))
    finally:
        cache.close()


def make_version_3(path: Path, rows: list[tuple[bytes, int]]) -> None:
    """A cache as version 3 wrote it: ``files`` keyed by the whole path."""
    conn = sqlite3.connect(path)
    script = cache_module._SCHEMA.replace(cache_module._FILES_TABLE, "")
    conn.executescript(
        script
        + """CREATE TABLE files(
            path BLOB PRIMARY KEY, dev INTEGER NOT NULL, ino INTEGER NOT NULL, size INTEGER NOT NULL,
            mtime_ns INTEGER NOT NULL, ctime_ns INTEGER NOT NULL, chunks BLOB NOT NULL) WITHOUT ROWID;
        PRAGMA user_version=3;"""
    )
    for path_, ino in rows:
        st = fake_stat(ino)
        conn.execute(
            "INSERT INTO files VALUES (?, ?, ?, ?, ?, ?, ?)",
            (path_, st.st_dev, st.st_ino, 10, st.st_mtime_ns, st.st_ctime_ns, chunk_list(cid(ino))),
        )
    conn.execute("INSERT INTO manifests VALUES ('web1', 'b1', 5, ?, ?)", (b"h" * 32, bytes(32)))
    conn.commit()
    conn.close()


def test_a_version_3_cache_is_migrated_with_its_rows(tmp_path: Path) -> None:
    path = cache_path(tmp_path, ROOT_ID, "web1", EPOCH)
    tmp_path.mkdir(exist_ok=True)
    make_version_3(path, [(b"top", 1), (b"a/b/f", 2), (b"a/g", 3)])
    warnings: list[str] = []
    cache = open_cache(tmp_path, warnings)
    try:
        assert warnings == []
        assert cache.synced_manifests() == {("web1", "b1")}  # the other tables are kept as they are
        for path_, ino in [(b"top", 1), (b"a/b/f", 2), (b"a/g", 3)]:
            row = cache.file(path_)
            assert row is not None
            assert cache.file_matches(row, fake_stat(ino))
            assert row.chunks == chunk_list(cid(ino))
    finally:
        cache.close()
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert "files_v3" not in tables
    finally:
        conn.close()


@pytest.mark.parametrize("files", [1, 9, 65, 1000])
def test_every_chunk_of_a_directory_is_prefetched_whatever_its_count(tmp_path: Path, files: int) -> None:
    """Prefetch queries are padded to a few sizes and split above 900 ids: none is lost or invented."""
    cache = open_cache(tmp_path)
    try:
        source = cache.start_run(b"\x01" * 16, b"\x02" * 32)
        ids = [n.to_bytes(32, "big") for n in range(1, files + 1)]
        known = ids[::2]
        pack = cache.add_own_pack(b"p" * 32, 1000, source, [(c, 100) for c in known])
        for n, c in enumerate(ids):
            cache.put_file(b"d/f%d" % n, fake_stat(n), 100, chunk_list(c))
        cache.commit()
    finally:
        cache.close()
    cache = open_cache(tmp_path)
    try:
        assert cache.file(b"d/f0") is not None
        assert len(cache._hits) == files  # all prefetched with the directory
        for c in ids:
            assert cache.chunk(c) == (ChunkHit(pack, 100, False) if c in known else None)
    finally:
        cache.close()
