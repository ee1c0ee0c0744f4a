"""Re-backups through the cache's per-directory lookups: unchanged files are never opened, a
changed one is, wherever the walk leaves and re-enters a directory, in a directory too large to
load at once, and with a cache of the previous schema version (migrated, not rebuilt)."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from crypto.dedup import epoch_tag
from opsbackup.backup import cache as cache_module
from opsbackup.backup.cache import cache_path
from opsbackup.backup.tuning import Hooks
from opsbackup.server.accounts import Scope
from tests.backup.reader import open_backup
from tests.backup.support import backup, small
from tests.client_support import ClientEnv


class Opens:
    """A ``before_open`` hook that remembers every file the engine opens."""

    def __init__(self) -> None:
        self.paths: list[bytes] = []

    def __call__(self, path: bytes) -> None:
        self.paths.append(path)


def make_nested(root: Path) -> Path:
    """Files of a directory on both sides of its subdirectories, and one crowded directory."""
    top = root / "src"
    for rel in ("a/b/c", "a/z", "crowded"):
        (top / rel).mkdir(parents=True)
    for rel in (
        "0.txt",
        "a/1.txt",
        "a/b/2.txt",
        "a/b/c/3.txt",
        "a/b/4.txt",
        "a/m.txt",
        "a/z/5.txt",
        "zz.txt",
    ):
        (top / rel).write_bytes(f"{rel}\n".encode() * 400 + os.urandom(300))
    for n in range(12):
        (top / "crowded" / f"f{n:02}").write_bytes(os.urandom(2000 + n))
    return top


def abs_paths(top: Path, *rels: str) -> list[bytes]:
    return [os.fsencode(top / rel) for rel in rels]


@pytest.fixture(autouse=True)
def small_directories(monkeypatch: pytest.MonkeyPatch) -> None:
    """Directories of more than 5 cached files are looked up file by file ("crowded" is one)."""
    monkeypatch.setattr(cache_module, "_MAX_DIR_ROWS", 5)


def test_an_unchanged_tree_opens_nothing_and_a_changed_file_is_read_again(
    env: ClientEnv, tmp_path: Path
) -> None:
    top = make_nested(tmp_path)
    opens = Opens()
    with small(Hooks(before_open=opens)):
        first = backup(env, top)
        assert len(opens.paths) == 20
        opens.paths.clear()
        second = backup(env, top)
        assert opens.paths == []
        assert second.new_chunks == 0
        assert second.reused_chunks == first.new_chunks + first.reused_chunks
        for rel in ("a/m.txt", "a/b/4.txt", "crowded/f03"):  # after a subdirectory; in the crowded one
            with open(top / rel, "ab") as f:
                f.write(b"changed\n")
        third = backup(env, top)
    assert sorted(opens.paths) == sorted(abs_paths(top, "a/m.txt", "a/b/4.txt", "crowded/f03"))
    assert third.new_chunks > 0
    opened = open_backup(env.account(Scope.RESTORE), env.keys, "web1", third.backup_id)
    for rel in ("a/m.txt", "a/b/c/3.txt", "crowded/f03", "crowded/f11", "zz.txt"):
        assert opened.content(os.fsencode(top / rel)[1:]) == (top / rel).read_bytes()


def downgrade_to_version_3(path: Path) -> None:
    """Rewrite a cache's ``files`` table the way schema version 3 kept it (keyed by the whole path)."""
    conn = sqlite3.connect(path)
    rows = conn.execute("SELECT dir, name, dev, ino, size, mtime_ns, ctime_ns, chunks FROM files").fetchall()
    assert rows
    conn.executescript(
        """
        DROP TABLE files;
        CREATE TABLE files(
            path BLOB PRIMARY KEY, dev INTEGER NOT NULL, ino INTEGER NOT NULL, size INTEGER NOT NULL,
            mtime_ns INTEGER NOT NULL, ctime_ns INTEGER NOT NULL, chunks BLOB NOT NULL) WITHOUT ROWID;
        PRAGMA user_version=3;
        """
    )
    conn.executemany(
        "INSERT INTO files VALUES (?, ?, ?, ?, ?, ?, ?)",
        [(d + b"/" + n if d else n, *rest) for d, n, *rest in rows],
    )
    conn.commit()
    conn.close()


def test_a_cache_of_version_3_is_migrated_and_nothing_is_read_again(env: ClientEnv, tmp_path: Path) -> None:
    top = make_nested(tmp_path)
    opens = Opens()
    with small(Hooks(before_open=opens)):
        backup(env, top)
        downgrade_to_version_3(
            cache_path(
                env.root / "cache" / "web1", env.account().root_id, "web1", epoch_tag(env.keys.dedup_secret)
            )
        )
        opens.paths.clear()
        second = backup(env, top)
    assert second.warnings == ()
    assert opens.paths == []
    assert second.new_chunks == 0
