"""``run_backup``: walk, chunk, dedup, seal, pack and upload, then the tree, the chunk index and the manifest.

Order of a run (docs/design.md, "The objects of a backup"):

1. check the request (missing paths, stdin name, tags) before anything is uploaded;
2. draw the backup id and keys, wrap them; open the cache, sync it with the server's manifests
   and drop packs the server no longer has; record this run as a source (so an interrupted run's
   packs are reused by the next one);
3. walk in stream order; unchanged files come from the cache, others are read and chunked;
   chunk ids are computed and new chunks sealed on a thread pool; data packs upload as they fill
   and are recorded in the cache as soon as each upload succeeds;
4. seal the spooled tree into tree packs, then the backup root into the tree root pack;
5. upload the chunk index, then sign and store the manifest, and remember it as the host's head.
"""

from __future__ import annotations

import dataclasses
import os
import sqlite3
import stat
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from crypto.dedup import ChunkIdKey, chunker_key, epoch_tag
from formats.backup_root import Source
from formats.manifest import Statistics, StoredObject
from formats.tree import Kind, Record
from opsbackup.backup.cache import Cache, remove_database
from opsbackup.backup.chunk_index_sync import check_packs, sync_cache
from opsbackup.backup.chunk_index_writer import build_chunk_index
from opsbackup.backup.chunk_pipeline import ChunkSealer, FileReader
from opsbackup.backup.excludes import Excludes
from opsbackup.backup.keys import BackupKeys, make_backup_keys
from opsbackup.backup.malloc import tune_malloc
from opsbackup.backup.manifest_writer import check_labels, put_envelope, put_manifest
from opsbackup.backup.model import BackupRequest, BackupResult
from opsbackup.backup.packer import DataPacker, PackRegistry, Slot, Uploader
from opsbackup.backup.pipeline import NEW, FileJob, Meta, Pipeline, RunStats
from opsbackup.backup.root_writer import data_table, seal_root
from opsbackup.backup.tree_writer import TreeSpool, seal_tree
from opsbackup.backup.tuning import Hooks, Tuning, current
from opsbackup.backup.walker import Entry, StdinEntry, Walker, prepare_roots, show
from opsbackup.chunking import Chunker, gear_table
from opsbackup.client.account import Account
from opsbackup.client.identity import HostIdentity
from opsbackup.client.progress import NullProgress, Progress
from opsbackup.errors import LocalIOError, NotFoundError, ObjectsMissingError, UsageError

__all__ = ["run_backup"]


def _default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def run_backup(
    account: Account,
    host: HostIdentity,
    request: BackupRequest,
    *,
    progress: Progress | None = None,
    workers: int | None = None,
    now: Callable[[], float] = time.time,
) -> BackupResult:
    """Back up ``request`` as ``host`` into ``account``; the one entry point of the engine."""
    started = time.monotonic()
    if not request.paths and request.stdin is None:
        raise UsageError("nothing to back up: give at least one path or a stdin stream")
    if (request.stdin is None) != (request.stdin_name is None):
        raise UsageError("a stdin stream and its name (stdin_name) go together")
    roots, stdin_name = prepare_roots(request.paths, request.stdin_name)
    excludes = Excludes(request.excludes)
    tags = check_labels(host.name, request.tags)
    tuning, hooks = current()
    tune_malloc()
    warnings: list[str] = []
    keys = make_backup_keys()
    cache = Cache.open(
        host.cache_dir, account.root_id, host.name, warnings.append, epoch=epoch_tag(host.dedup_secret)
    )
    run = _Run(account, host, request, keys, cache, tuning, hooks, progress or NullProgress(), warnings, now)
    try:
        result = run.execute(
            roots=roots,
            stdin_name=stdin_name,
            excludes=excludes,
            tags=tags,
            backup_time=int(now()),
            workers=workers or _default_workers(),
        )
    except sqlite3.OperationalError as exc:  # disk full, I/O error: the cache itself is fine
        raise LocalIOError(f"the local cache {cache.path} could not be written ({exc})") from None
    except sqlite3.DatabaseError as exc:
        cache.close()
        remove_database(cache.path)
        raise LocalIOError(
            f"the local cache {cache.path} failed ({exc}); it was removed and the next backup rebuilds it"
        ) from None
    except OSError as exc:  # the spool or the cache directory (files being read only cause warnings)
        where = f" ({exc.filename})" if exc.filename else ""
        raise LocalIOError(f"local I/O failed during the backup: {exc.strerror or exc}{where}") from None
    finally:
        cache.close()
    return dataclasses.replace(result, duration=time.monotonic() - started, warnings=tuple(warnings))


@dataclass(frozen=True)
class _Stored:
    """What a run stored before its manifest: the names the manifest needs, and the counts."""

    stats: RunStats
    tree_root: bytes
    tree_root_pack: StoredObject
    chunk_index: StoredObject
    objects: tuple[StoredObject, ...]  # every object the manifest lists
    sources: tuple[bytes, ...]  # backup ids of the earlier backups whose packs the run reuses
    count: int  # objects uploaded
    bytes: int  # bytes uploaded


class _Run:
    """The state of one run (used once)."""

    def __init__(
        self,
        account: Account,
        host: HostIdentity,
        request: BackupRequest,
        keys: BackupKeys,
        cache: Cache,
        tuning: Tuning,
        hooks: Hooks,
        progress: Progress,
        warnings: list[str],
        now: Callable[[], float],
    ) -> None:
        self.account, self.host, self.request, self.keys = account, host, request, keys
        self.cache, self.tuning, self.hooks, self.progress = cache, tuning, hooks, progress
        self.warnings = warnings
        self.now = now
        self.links: dict[tuple[int, int], bytes] = {}  # (dev, ino) -> path of the FILE record
        self.link_groups = 0
        self.salvaging = False
        self.own_source_id = 0

    def warn(self, message: str) -> None:
        self.warnings.append(message)

    def execute(
        self,
        *,
        roots: list[bytes],
        stdin_name: bytes | None,
        excludes: Excludes,
        tags: tuple[str, ...],
        backup_time: int,
        workers: int,
    ) -> BackupResult:
        account, host, keys, cache = self.account, self.host, self.keys, self.cache
        sync = sync_cache(
            cache,
            account,
            host=host.name,
            dedup_secret=host.dedup_secret,
            workers=self.tuning.sync_workers,
            warn=self.warn,
        )
        check_packs(cache, account)
        previous = account.state.head(account.root_id, host.name) or sync.previous_hash
        # The envelope goes up before any pack: an interrupted run's packs stay readable (and
        # reusable as a source) because its wrapped keys are already on the server.
        account = self.account = put_envelope(account, host, keys)
        self.own_source_id = cache.start_run(keys.backup_id, keys.data.commitment)
        walker = Walker(
            roots,
            stdin_name=stdin_name,
            excludes=excludes,
            one_file_system=self.request.one_file_system,
            warn=self.warn,
        )
        stored = self._store(walker, workers)
        stats = stored.stats
        digest, chained_to = self._publish(stored, account, backup_time, previous, tags)
        cache.finish_run(self.own_source_id, host.name, keys.backup_id.hex(), backup_time, digest, chained_to)
        return BackupResult(
            backup_id=keys.backup_id.hex(),
            host=host.name,
            time=backup_time,
            files=stats.files,
            dirs=stats.dirs,
            total_bytes=stats.total_bytes,
            new_chunks=stats.new_chunks,
            reused_chunks=stats.reused_chunks,
            new_bytes=stats.new_bytes,
            uploaded_objects=stored.count,
            uploaded_bytes=stored.bytes,
            duration=0.0,
            warnings=(),
        )

    def _publish(
        self,
        stored: _Stored,
        account: Account,
        backup_time: int,
        previous: bytes | None,
        tags: tuple[str, ...],
    ) -> tuple[bytes, bytes]:
        """Sign and store the manifest; refuse to leave one naming an object the server lacks.

        A prune that ran while this backup did may have swept a pack the backup reuses from its
        cache (docs/operations.md, "Prune"). The server checks, in the manifest PUT itself, that
        every object the manifest names is stored, and refuses it otherwise (409, nothing
        stored): the check and the store happen in one request, so no client-side recheck is
        made before it (it would cost the same HEAD requests again). On that refusal the cache
        forgets the vanished packs and the error asks for another run, which uploads their
        chunks again.
        """
        stats = stored.stats
        if self.hooks.before_manifest is not None:
            self.hooks.before_manifest(tuple(obj.name for obj in stored.objects))
        try:
            return put_manifest(
                account,
                self.host,
                self.keys,
                time=backup_time,
                previous=previous,
                tree_root=stored.tree_root,
                tree_root_pack=stored.tree_root_pack.name,
                chunk_index=stored.chunk_index.name,
                objects=stored.objects,
                sources=stored.sources,
                statistics=Statistics(
                    files=stats.files, total_bytes=stats.total_bytes, added_bytes=stored.bytes
                ),
                tags=tags,
            )
        except ObjectsMissingError as exc:
            check_packs(self.cache, self.account, doomed=exc.deleting)
            raise NotFoundError(
                f"{exc.missing} objects this backup needs vanished from the server while it ran "
                "(a prune?); nothing was published: run the backup again"
            ) from None

    def _store(self, walker: Walker, workers: int) -> _Stored:
        """Walk and upload everything but the manifest; on failure, record the packs that made it."""
        keys, tuning = self.keys, self.tuning
        self.progress.stage("backup", None)
        cpu = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="opsbackup-seal")
        uploader = Uploader(self.account.repo, tuning.upload_workers)
        spool = TreeSpool(self.host.cache_dir, tuning.node_target)
        registry = PackRegistry(self.cache)
        packer = DataPacker(
            key=keys.data,
            backup_id=keys.backup_id,
            registry=registry,
            uploader=uploader,
            pool=cpu,
            seal=ChunkSealer(keys.data, keys.backup_id, tuning.compression_level),
            inline_below=tuning.inline_below,
            pack_target=tuning.pack_target,
            on_uploaded=self._recorded,
        )
        pipeline = Pipeline(
            cache=self.cache,
            registry=registry,
            packer=packer,
            pool=cpu,
            chunk_id=ChunkIdKey(self.host.dedup_secret).chunk_id,
            inline_below=tuning.inline_below,
            inflight_bytes=tuning.inflight_bytes,
            emit=spool.add,
            max_refs_per_record=tuning.max_refs_per_record,
        )
        reader = FileReader(
            Chunker(gear_table(chunker_key(self.host.dedup_secret)), tuning.chunker),
            block=tuning.read_block,
            progress=self.progress,
            racy_window_ns=tuning.racy_window_ns,
            before_open=self.hooks.before_open,
            after_block=self.hooks.after_block,
        )
        try:
            for entry in walker:
                self._entry(entry, pipeline, reader)
            pipeline.finish()
            self.cache.commit()
            if not spool.records:
                raise UsageError("nothing to back up: every given path was excluded or vanished")
            return self._seal(spool, registry, packer.run_new, uploader, pipeline.stats)
        except BaseException:
            self.salvaging = True
            uploader.salvage()
            self.cache.commit()
            raise
        finally:
            cpu.shutdown(wait=True, cancel_futures=True)
            uploader.close()
            spool.close()
            self.progress.close()

    def _seal(
        self,
        spool: TreeSpool,
        registry: PackRegistry,
        run_new: dict[bytes, int],
        uploader: Uploader,
        stats: RunStats,
    ) -> _Stored:
        """The data packs are all up: number them, then seal the tree, the root and the chunk index."""
        keys = self.keys
        table = data_table(registry.slots, self.cache)
        index_of_slot = table.index_of_slot

        def resolve(chunk_id: bytes, slot: int) -> int:
            return index_of_slot[run_new[chunk_id] if slot == NEW else slot]

        tree_packs: list[StoredObject | None] = []
        nodes = seal_tree(
            spool,
            resolve=resolve,
            data_pack_count=len(table.packs),
            key=keys.metadata,
            backup_id=keys.backup_id,
            uploader=uploader,
            pack_target=self.tuning.pack_target,
            tree_packs=tree_packs,
        )
        trees = [t for t in tree_packs if t is not None]
        own = Source(keys.backup_id, keys.data.commitment)
        root = seal_root(
            table, own=own, tree_packs=trees, nodes=nodes, key=keys.metadata, backup_id=keys.backup_id
        )
        root_pack = StoredObject(uploader.upload(root.pack), len(root.pack))
        index = build_chunk_index(
            self.cache,
            backup_id=keys.backup_id,
            own_source_id=self.own_source_id,
            own_source=own,
            dedup_secret=self.host.dedup_secret,
        )
        chunk_index = StoredObject(uploader.upload(index), len(index))
        return _Stored(
            stats=stats,
            tree_root=root.object_id,
            tree_root_pack=root_pack,
            chunk_index=chunk_index,
            objects=(*table.objects, *trees, root_pack, chunk_index),
            sources=tuple(src.backup_id for src in table.sources),
            count=uploader.objects,
            bytes=uploader.bytes,
        )

    def _recorded(self, slot: Slot, name: bytes, size: int, created: bool) -> None:
        """A data pack of this run is on the server: record it and its chunks in the cache now."""
        self.cache.add_own_pack(name, size, self.own_source_id, slot.chunks)
        slot.chunks = []
        self.cache.commit()
        if self.hooks.after_pack_upload is not None and not self.salvaging:
            self.hooks.after_pack_upload(name, created)

    # The walk ----------------------------------------------------------------------------------

    def _entry(self, entry: Entry | StdinEntry, pipeline: Pipeline, reader: FileReader) -> None:
        if isinstance(entry, StdinEntry):
            self._stdin(entry.path, pipeline, reader)
            return
        st, path = entry.st, entry.path
        mode = st.st_mode
        if stat.S_ISREG(mode):
            self._file(entry, pipeline, reader)
            return
        meta = {"mode": mode, "uid": st.st_uid, "gid": st.st_gid, "mtime_ns": st.st_mtime_ns}
        if stat.S_ISDIR(mode):
            pipeline.add_record(Record(kind=Kind.DIR, path=path, **meta))  # type: ignore[arg-type]
        elif stat.S_ISLNK(mode):
            try:
                target = os.readlink(entry.abs)
            except OSError as exc:
                self.warn(f"{show(entry.abs)}: symlink cannot be read ({exc.strerror}); skipped")
                return
            pipeline.add_record(Record(kind=Kind.SYMLINK, path=path, target=target, **meta))  # type: ignore[arg-type]
        elif stat.S_ISFIFO(mode) or stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            pipeline.add_record(Record(kind=Kind.SPECIAL, path=path, rdev=st.st_rdev, **meta))  # type: ignore[arg-type]
        else:
            self.warn(f"{show(entry.abs)}: has an unknown file type; skipped")

    def _file(self, entry: Entry, pipeline: Pipeline, reader: FileReader) -> None:
        st, path = entry.st, entry.path
        key = (st.st_dev, st.st_ino) if st.st_nlink > 1 else None
        if key is not None and key in self.links:
            pipeline.add_record(Record(kind=Kind.HARDLINK, path=path, target=self.links[key]))
            return
        group = 0
        if key is not None:
            self.link_groups += 1
            group = self.link_groups
        row = self.cache.file(path)
        if row is not None and self.cache.file_matches(row, st):
            refs = pipeline.cached_refs(row.chunks)
            if refs is not None:
                job = FileJob(path, Meta.of(st), group)
                job.refs, job.ok, job.done = refs, True, True
                pipeline.add_file(job)
                pipeline.pump(block=False)
                self.progress.advance(st.st_size)
                if key is not None:
                    self.links[key] = path
                return
        job = FileJob(path, Meta.of(st), group)
        pipeline.add_file(job)
        outcome = reader.read_file(entry.abs, lambda data: pipeline.add_chunk(job, data), self.warn)
        if outcome is not None:
            job.meta = Meta.of(outcome.st)
            job.cache_st = outcome.st if outcome.cacheable else None
            if key is not None:
                self.links[key] = path
        pipeline.end_file(job, ok=outcome is not None)

    def _stdin(self, name: bytes, pipeline: Pipeline, reader: FileReader) -> None:
        stream = self.request.stdin
        assert stream is not None
        meta = Meta(stat.S_IFREG | 0o600, os.getuid(), os.getgid(), int(self.now() * 1e9))
        job = FileJob(name, meta, 0)
        pipeline.add_file(job)
        try:
            reader.read_stream(stream, lambda data: pipeline.add_chunk(job, data))
        except OSError as exc:
            self.warn(f"stdin ({show(name)}): could not be read ({exc.strerror}); skipped")
            pipeline.end_file(job, ok=False)
            return
        pipeline.end_file(job, ok=True)
