"""The host's local cache (SQLite): the account's chunks, their packs, and which files are unchanged.

One database per account (pinned root key) and host, in the host's cache directory (dir 0700,
files 0600). Everything in it can be rebuilt from the server (``chunk_index_sync``): a lost or
corrupt cache is a warning and a rebuild, never an error. Tables:

* ``sources``: backups whose packs may be reused (backup id, data-key commitment), including
  runs that were interrupted before their manifest;
* ``packs``: data packs (name, size, source) that were present on the server when last checked;
* ``chunks``: chunk id -> pack and length; ``listed`` is 0 for chunks of a run whose chunk index
  was never uploaded (an interrupted run), so the next run that reuses them lists them;
* ``files``: (directory, name) -> stat fingerprint and chunk list (chunk id, length); an
  unchanged file whose chunks are all still known costs no reading. Keyed by directory so that a
  run asks for the rows of one directory at once (one query) instead of one query per file;
* ``manifests``: manifests already synced (host, backup id, time, hash, previous hash);
* ``run_index``: the chunks the current run must list in its chunk index.

Rows are streamed; nothing loads a whole table into memory. A run holds the ``files`` rows of the
directories it is in (the current one and its parents) and the chunk rows those files name
(prefetched with one query per directory, at most ``_MAX_HITS`` of them), so the lookups of an
unchanged file are dictionary lookups.

Schema versions: 3 keyed ``files`` by the whole path; it is migrated to 4 in place (rows kept, so
the first run after an upgrade reads nothing anew). Any other version is deleted and rebuilt.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from formats.backup_root import Source
from opsbackup.errors import AlreadyRunningError, LocalIOError

__all__ = ["SCHEMA_VERSION", "Cache", "ChunkHit", "FileRow", "PackInfo", "RunIndexRow", "cache_path"]

SCHEMA_VERSION = 4
_MIGRATES_FROM = 3  # the previous version, migrated in place
_U64 = 1 << 64
_I64_MAX = (1 << 63) - 1

_FILES_TABLE = """
CREATE TABLE files(
    dir BLOB NOT NULL,
    name BLOB NOT NULL,
    dev INTEGER NOT NULL,
    ino INTEGER NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    ctime_ns INTEGER NOT NULL,
    chunks BLOB NOT NULL,
    PRIMARY KEY(dir, name)) WITHOUT ROWID;
"""
_SCHEMA = (
    _FILES_TABLE
    + """
CREATE TABLE sources(
    id INTEGER PRIMARY KEY,
    backup_id BLOB NOT NULL UNIQUE,
    commitment BLOB NOT NULL,
    complete INTEGER NOT NULL DEFAULT 0);
CREATE TABLE packs(
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name BLOB NOT NULL UNIQUE,
    size INTEGER NOT NULL,
    source INTEGER NOT NULL);
CREATE TABLE chunks(
    chunk_id BLOB PRIMARY KEY,
    pack INTEGER NOT NULL,
    length INTEGER NOT NULL,
    listed INTEGER NOT NULL) WITHOUT ROWID;
CREATE INDEX chunks_by_pack ON chunks(pack);
CREATE TABLE manifests(
    host TEXT NOT NULL,
    backup_id TEXT NOT NULL,
    time INTEGER NOT NULL,
    hash BLOB NOT NULL,
    previous BLOB NOT NULL,
    PRIMARY KEY(host, backup_id)) WITHOUT ROWID;
CREATE TABLE run_index(chunk_id BLOB PRIMARY KEY) WITHOUT ROWID;
"""
)
_TABLES = ("sources", "packs", "chunks", "files", "manifests", "run_index")
#: A directory with more cached files than this is looked up one file at a time (bounded memory).
_MAX_DIR_ROWS = 50_000
#: At most this many prefetched chunk rows are held; a directory naming more is not prefetched.
_MAX_HITS = 1 << 16
#: Chunk ids per prefetch query (below SQLite's oldest limit of 999 bound variables).
_IN_BATCH = 900
_IN_SIZES = (8, 64, _IN_BATCH)
_IN_QUERIES = {
    n: "SELECT chunk_id, pack, length, listed FROM chunks WHERE chunk_id IN ({})".format(",".join("?" * n))  # noqa: S608 - only ?s
    for n in _IN_SIZES
}


def _i64(value: int) -> int:
    """A u64 (device and inode numbers) as SQLite's signed 64-bit integer."""
    return value - _U64 if value > _I64_MAX else value


class ChunkHit(NamedTuple):
    """Where the cache says a chunk is (a named tuple: one is made per chunk of every unchanged file)."""

    pack_id: int
    length: int
    listed: bool


_UNKNOWN = ChunkHit(-1, -1, False)  # not prefetched (a prefetched ``None`` means "not in the cache")


@dataclass(frozen=True)
class PackInfo:
    id: int
    name: bytes
    size: int
    source: int  # sources.id


class FileRow(NamedTuple):
    """A file as it was when last backed up, and its chunks (``n x (chunk id 32 | u32 length)``).

    A named tuple, made for every row of a directory the walk enters.
    """

    dev: int
    ino: int
    size: int
    mtime_ns: int
    ctime_ns: int
    chunks: bytes


_NOT_LOADED: dict[bytes, FileRow] = {}  # a directory whose rows are not loaded (compared by identity)


@dataclass(frozen=True)
class RunIndexRow:
    """One chunk of this run's chunk index."""

    chunk_id: bytes
    length: int
    pack_name: bytes
    source: int  # sources.id


def cache_path(cache_dir: Path, root_id: bytes, host: str, epoch: str) -> Path:
    """The database of one account (by its pinned root key), dedup epoch and host.

    ``epoch`` is :func:`crypto.dedup.epoch_tag` of the dedup secret: after a new dedup secret the
    old epoch's cache (chunk ids of the old secret) is left alone and a new one is built.
    """
    return cache_dir / f"cache-{root_id.hex()[:32]}-{epoch}-{host}.sqlite"


class _UnusableError(Exception):
    """The database is not a cache of this version."""


class Cache:
    """An open cache. Used from one thread (the engine's main thread)."""

    def __init__(self, conn: sqlite3.Connection, path: Path, lock: int) -> None:
        self.conn = conn
        self.path = path
        self._lock = lock  # an flock on "<database>.lock", held until close
        self._files: list[tuple[object, ...]] = []  # file rows waiting for one executemany
        # The files rows of the directories the walk is in (name -> row); None: too many, ask per file.
        self._dirs: dict[bytes, dict[bytes, FileRow] | None] = {}
        self._hits: dict[bytes, ChunkHit | None] = {}  # prefetched chunk rows (None: not in the cache)

    @classmethod
    def open(
        cls, cache_dir: Path, root_id: bytes, host: str, warn: Callable[[str], None], *, epoch: str
    ) -> Cache:
        """Open (or create) the cache; a corrupt or foreign one is deleted and rebuilt, with a warning.

        Holds a lock for as long as the cache is open: a second run of the same host and account
        gets :class:`AlreadyRunningError`.
        """
        path = cache_path(cache_dir, root_id, host, epoch)
        try:
            cache_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            os.chmod(cache_dir, 0o700)
            lock = os.open(f"{path}.lock", os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise LocalIOError(f"cannot use the cache directory {cache_dir}: {exc.strerror}") from None
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(lock)
            raise AlreadyRunningError(
                f"another backup of host {host!r} is running (it holds {path}.lock); try again when it ends"
            ) from None
        try:
            try:
                return cls._connect(path, lock)
            except (sqlite3.DatabaseError, _UnusableError) as exc:
                if isinstance(exc, sqlite3.OperationalError):
                    raise
                warn(
                    f"the local cache {path} is unusable ({exc}); it was deleted and rebuilt from the server"
                )
                remove_database(path)
                return cls._connect(path, lock)
        except (OSError, sqlite3.Error) as exc:
            os.close(lock)
            raise LocalIOError(f"cannot open the local cache {path}: {exc}") from None

    @classmethod
    def _connect(cls, path: Path, lock: int) -> Cache:
        if not path.exists():
            os.close(os.open(path, os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600))
        os.chmod(path, 0o600)
        conn = sqlite3.connect(path, timeout=30.0)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version == 0 and not conn.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchone():
                conn.executescript(_SCHEMA + f"PRAGMA user_version={SCHEMA_VERSION};")
            elif version == _MIGRATES_FROM:
                _migrate_files(conn)
            elif version != SCHEMA_VERSION:
                raise _UnusableError(f"schema version {version}, not {SCHEMA_VERSION}")
            for table in _TABLES:
                conn.execute(f"SELECT 1 FROM {table} LIMIT 1").fetchall()  # noqa: S608 - fixed names
            conn.execute("DELETE FROM run_index")
            conn.commit()
        except BaseException:
            conn.close()
            raise
        return cls(conn, path, lock)

    def close(self) -> None:
        """Commit what is pending, close the database and release the lock (idempotent)."""
        if self._lock < 0:
            return
        with contextlib.suppress(sqlite3.Error):
            self.commit()
        self.conn.close()
        os.close(self._lock)
        self._lock = -1

    def commit(self) -> None:
        """Write the pending file rows and commit."""
        self._flush_files()
        self.conn.commit()

    def _flush_files(self) -> None:
        if self._files:
            self.conn.executemany("INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?, ?, ?, ?)", self._files)
            self._files = []

    # Sources -----------------------------------------------------------------------------------

    def ensure_source(self, backup_id: bytes, commitment: bytes) -> int | None:
        """The row id of a source, added if new; None if the cache holds it with another commitment."""
        row = self.conn.execute(
            "SELECT id, commitment FROM sources WHERE backup_id = ?", (backup_id,)
        ).fetchone()
        if row is not None:
            return int(row[0]) if bytes(row[1]) == commitment else None
        cur = self.conn.execute(
            "INSERT INTO sources(backup_id, commitment) VALUES (?, ?)",
            (backup_id, commitment),
        )
        return int(cur.lastrowid or 0)

    def source(self, source_id: int) -> Source:
        backup_id, commitment = self.conn.execute(
            "SELECT backup_id, commitment FROM sources WHERE id = ?", (source_id,)
        ).fetchone()
        return Source(bytes(backup_id), bytes(commitment))

    def start_run(self, backup_id: bytes, commitment: bytes) -> int:
        """Record this run as a source (committed), before any of its packs is uploaded."""
        source_id = self.ensure_source(backup_id, commitment)
        assert source_id is not None  # a fresh random backup id
        self.conn.commit()
        return source_id

    # Packs and chunks --------------------------------------------------------------------------

    def pack(self, pack_id: int) -> PackInfo:
        name, size, source = self.conn.execute(
            "SELECT name, size, source FROM packs WHERE id = ?", (pack_id,)
        ).fetchone()
        return PackInfo(pack_id, bytes(name), int(size), int(source))

    def ensure_pack(self, name: bytes, size: int, source_id: int) -> int | None:
        """The row id of a pack, added if new; None if the cache knows it from another source."""
        row = self.conn.execute("SELECT id, source FROM packs WHERE name = ?", (name,)).fetchone()
        if row is not None:
            return int(row[0]) if int(row[1]) == source_id else None
        cur = self.conn.execute(
            "INSERT INTO packs(name, size, source) VALUES (?, ?, ?)", (name, size, source_id)
        )
        return int(cur.lastrowid or 0)

    def add_own_pack(
        self, name: bytes, size: int, source_id: int, chunks: Iterable[tuple[bytes, int]]
    ) -> int:
        """Record a pack this run uploaded and its chunks (unlisted, and in this run's index)."""
        pack_id = self.ensure_pack(name, size, source_id)
        assert pack_id is not None
        rows = [(cid, pack_id, length) for cid, length in chunks]
        self.conn.executemany("INSERT OR REPLACE INTO chunks VALUES (?, ?, ?, 0)", rows)
        hits = self._hits
        for cid, _, length in rows:
            if cid in hits:
                hits[cid] = ChunkHit(pack_id, length, False)
        self.conn.executemany("INSERT OR IGNORE INTO run_index VALUES (?)", ((r[0],) for r in rows))
        return pack_id

    def import_chunks(self, rows: Iterable[tuple[bytes, int, int]]) -> None:
        """Chunks listed by a synced chunk index: (chunk id, pack row id, length)."""
        self._hits.clear()
        self.conn.executemany(
            "INSERT INTO chunks VALUES (?, ?, ?, 1) ON CONFLICT(chunk_id) DO UPDATE SET listed = 1 "
            "WHERE chunks.pack = excluded.pack",
            rows,
        )

    def chunk(self, chunk_id: bytes) -> ChunkHit | None:
        """Where the cache says ``chunk_id`` is (prefetched with its file's directory, if it was)."""
        hit = self._hits.get(chunk_id, _UNKNOWN)
        if hit is not _UNKNOWN:
            return hit
        row = self.conn.execute(
            "SELECT pack, length, listed FROM chunks WHERE chunk_id = ?", (chunk_id,)
        ).fetchone()
        return None if row is None else ChunkHit(int(row[0]), int(row[1]), bool(row[2]))

    def list_in_run(self, chunk_id: bytes) -> None:
        """This run reuses an unlisted chunk (from an interrupted run): list it in this run's index."""
        self.conn.execute("INSERT OR IGNORE INTO run_index VALUES (?)", (chunk_id,))

    def pack_batches(self, size: int) -> Iterator[list[tuple[int, bytes]]]:
        """Every known pack as (row id, name), in batches of ``size`` (keyset pagination)."""
        last = 0
        while True:
            rows = self.conn.execute(
                "SELECT id, name FROM packs WHERE id > ? ORDER BY id LIMIT ?", (last, size)
            ).fetchall()
            if not rows:
                return
            last = int(rows[-1][0])
            yield [(int(i), bytes(n)) for i, n in rows]

    def forget_packs(self, pack_ids: Iterable[int]) -> None:
        """Packs gone from the server: forget them and their chunks (files using them are re-read)."""
        self._hits.clear()
        for pack_id in pack_ids:
            self.conn.execute("DELETE FROM chunks WHERE pack = ?", (pack_id,))
            self.conn.execute("DELETE FROM packs WHERE id = ?", (pack_id,))

    # Files -------------------------------------------------------------------------------------

    def file(self, path: bytes) -> FileRow | None:
        """The row of ``path`` (``dir/name``); the first lookup in a directory loads all of its rows."""
        directory, _, name = path.rpartition(b"/")
        rows = self._dirs.get(directory, _NOT_LOADED)
        if rows is _NOT_LOADED:
            rows = self._enter(directory)
        if rows is not None:
            return rows.get(name)
        row = self.conn.execute(
            "SELECT dev, ino, size, mtime_ns, ctime_ns, chunks FROM files WHERE dir = ? AND name = ?",
            (directory, name),
        ).fetchone()
        return None if row is None else FileRow(*row)

    def _enter(self, directory: bytes) -> dict[bytes, FileRow] | None:
        """Load the rows of ``directory`` and prefetch their chunks; keep only its parents' rows.

        The walk is depth-first, so the directories it may come back to are the parents of the
        one it enters: their rows stay, every other directory's are dropped.
        """
        self._dirs = {d: r for d, r in self._dirs.items() if not d or directory.startswith(d + b"/")}
        cur = self.conn.execute(
            "SELECT name, dev, ino, size, mtime_ns, ctime_ns, chunks FROM files WHERE dir = ?", (directory,)
        )
        found = cur.fetchmany(_MAX_DIR_ROWS + 1)
        if len(found) > _MAX_DIR_ROWS:
            cur.close()
            self._dirs[directory] = None
            return None
        rows = {r[0]: FileRow(r[1], r[2], r[3], r[4], r[5], r[6]) for r in found}
        self._dirs[directory] = rows
        self._prefetch([row.chunks for row in rows.values()])
        return rows

    def _prefetch(self, lists: list[bytes]) -> None:
        """Look the chunks of ``lists`` (file rows' chunk lists) up with a few ``IN`` queries."""
        hits = self._hits
        # Not ids.difference_update(hits): that walks all of ``hits`` for every directory.
        ids = {cid for c in lists for i in range(0, len(c), 36) if (cid := c[i : i + 32]) not in hits}
        if not ids or len(ids) > _MAX_HITS:
            return
        if len(hits) + len(ids) > _MAX_HITS:
            hits.clear()
        for cid in ids:
            hits[cid] = None
        todo = list(ids)
        for start in range(0, len(todo), _IN_BATCH):
            batch = todo[start : start + _IN_BATCH]
            # Padded (with a repeated id) to one of a few sizes: a few statements, compiled once each.
            size = next(n for n in _IN_SIZES if n >= len(batch))
            batch += batch[-1:] * (size - len(batch))
            for cid, pack, length, listed in self.conn.execute(_IN_QUERIES[size], batch):
                hits[cid] = ChunkHit(pack, length, bool(listed))

    def file_matches(self, row: FileRow, st: os.stat_result) -> bool:
        """Whether ``st`` is the fingerprint ``row`` was stored with."""
        return (row.dev, row.ino, row.size, row.mtime_ns, row.ctime_ns) == (
            _i64(st.st_dev),
            _i64(st.st_ino),
            st.st_size,
            st.st_mtime_ns,
            st.st_ctime_ns,
        )

    def put_file(self, path: bytes, st: os.stat_result, size: int, chunks: bytes) -> None:
        """Remember a file read whole (written in batches, and at the next commit)."""
        directory, _, name = path.rpartition(b"/")
        row = FileRow(_i64(st.st_dev), _i64(st.st_ino), size, st.st_mtime_ns, st.st_ctime_ns, chunks)
        self._files.append((directory, name, *row))
        rows = self._dirs.get(directory)
        if rows is not None:
            rows[name] = row
        if len(self._files) >= 1000:
            self._flush_files()

    # Manifests and the end of a run ------------------------------------------------------------

    def synced_manifests(self) -> set[tuple[str, str]]:
        return {(str(h), str(b)) for h, b in self.conn.execute("SELECT host, backup_id FROM manifests")}

    def add_manifest(
        self, host: str, backup_id: str, time: int, manifest_hash: bytes, previous: bytes
    ) -> None:
        self.conn.execute(
            "INSERT OR REPLACE INTO manifests VALUES (?, ?, ?, ?, ?)",
            (host, backup_id, time, manifest_hash, previous),
        )

    def newest_manifest(self, host: str, backup_ids: Iterable[str]) -> bytes | None:
        """Hash of the newest synced manifest of ``host`` among ``backup_ids``.

        Newest by time; manifests of the same second are ordered by their chain (one that another
        names as its previous is older), then by hash, so the choice never depends on listing order.
        """
        latest: list[tuple[bytes, bytes]] = []  # (hash, previous) of the manifests of the latest time
        latest_time = -1
        for backup_id in backup_ids:
            row = self.conn.execute(
                "SELECT time, hash, previous FROM manifests WHERE host = ? AND backup_id = ?",
                (host, backup_id),
            ).fetchone()
            if row is None or int(row[0]) < latest_time:
                continue
            if int(row[0]) > latest_time:
                latest_time, latest = int(row[0]), []
            latest.append((bytes(row[1]), bytes(row[2])))
        named = {previous for _, previous in latest}
        heads = sorted(h for h, _ in latest if h not in named) or sorted(h for h, _ in latest)
        return heads[-1] if heads else None

    def run_index_rows(self) -> Iterator[RunIndexRow]:
        """This run's chunk index, sorted by chunk id (streamed)."""
        cur = self.conn.execute(
            "SELECT r.chunk_id, c.length, p.name, p.source FROM run_index r "
            "JOIN chunks c ON c.chunk_id = r.chunk_id JOIN packs p ON p.id = c.pack ORDER BY r.chunk_id"
        )
        for chunk_id, length, name, source in cur:
            yield RunIndexRow(bytes(chunk_id), int(length), bytes(name), int(source))

    def finish_run(
        self, source_id: int, host: str, backup_id: str, time: int, manifest_hash: bytes, previous: bytes
    ) -> None:
        """The manifest is stored: this run's chunks are listed now, and its manifest synced."""
        self.conn.execute("UPDATE chunks SET listed = 1 WHERE chunk_id IN (SELECT chunk_id FROM run_index)")
        self.conn.execute("DELETE FROM run_index")
        self.conn.execute("UPDATE sources SET complete = 1 WHERE id = ?", (source_id,))
        self.add_manifest(host, backup_id, time, manifest_hash, previous)
        self.conn.commit()


def _migrate_files(conn: sqlite3.Connection) -> None:
    """Version 3 -> 4: ``files`` keyed by (directory, name) instead of the path, rows kept.

    One transaction: an interrupted migration leaves a version-3 cache, migrated by the next run.
    """
    conn.execute("BEGIN")
    try:
        conn.execute("ALTER TABLE files RENAME TO files_v3")
        conn.execute(_FILES_TABLE)
        cur = conn.execute("SELECT path, dev, ino, size, mtime_ns, ctime_ns, chunks FROM files_v3")
        while batch := cur.fetchmany(1000):
            conn.executemany(
                "INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(*_split(bytes(r[0])), *r[1:]) for r in batch],
            )
        conn.execute("DROP TABLE files_v3")
        conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        conn.commit()
    except BaseException:
        conn.rollback()
        raise


def _split(path: bytes) -> tuple[bytes, bytes]:
    directory, _, name = path.rpartition(b"/")
    return directory, name


def remove_database(path: Path) -> None:
    """Delete a cache database and its WAL files."""
    for suffix in ("", "-wal", "-shm", "-journal"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(f"{path}{suffix}")
