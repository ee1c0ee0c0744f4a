"""Restore: plan, verify and write everything into a staging directory, then move it into place.

Order (docs/design.md, "Restore order"): select and check the records, plan the files and the
chunks per pack, unwrap every data key the plan needs (a wrong key fails before anything is
fetched), create the staging directory, create directories and empty files, fetch the needed
packs in parallel (each checked against the signed object list, opened under its source's key),
write each verified chunk at its offsets; a file whose chunks all come from one pack is created by
that pack's worker and gets its owner, mode and time as soon as its last byte is written, the
others once every pack is done. Then hard links, symlinks and special files; one ``syncfs`` (or an
fsync per file where that is missing). Until here the target holds nothing new but the
staging directory; any failure removes it and leaves the target as it was (even its times).
Then the staged entries are moved into the target (planned first, so a conflict refuses before
the first move) and directories get their metadata, deepest first.
"""

from __future__ import annotations

import contextlib
import os
import stat
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from crypto.dedup import ChunkIdKey
from crypto.unwrapper import ReaderKey
from opsbackup.client.account import Account
from opsbackup.client.progress import NullProgress, Progress
from opsbackup.client.transport import parallel
from opsbackup.errors import LocalIOError, UsageError
from opsbackup.restore.attrs import Warnings, apply_fd, apply_link, apply_path
from opsbackup.restore.chunks import fetch_data_pack
from opsbackup.restore.keys import DataKeys
from opsbackup.restore.mover import MovePlan, apply_moves, plan_moves
from opsbackup.restore.paths import normalize, show, split
from opsbackup.restore.planner import Plan, make_plan
from opsbackup.restore.results import RestoreResult
from opsbackup.restore.selection import select
from opsbackup.restore.staging import DIR_FLAGS, HAS_SYNCFS, DirFds, Staging, local_io, sync_filesystem
from opsbackup.restore.tree_reader import Snapshot

__all__ = ["DEFAULT_WORKERS", "restore"]

#: Packs fetched and opened at once (each holds about twice its size in memory while it is opened);
#: 3 rather than 4 keeps the peak RSS below restic's at no measurable cost in speed (docs/benchmarks.md).
DEFAULT_WORKERS = 3
#: Verified chunk bytes gathered into one ``pwritev`` (per worker, at most).
RUN_BYTES = 8 << 20


class _Run:
    """One pack's verified chunks, gathered into runs that follow each other in one file.

    A run is written with one ``pwritev``. A file whose chunks all come from this pack is created
    by its first run (:class:`NewFiles`, no lock) and finished (``finish``: size check, owner,
    mode, time) by the run that completes it, on the same fd; other files go through the
    staging's shared fds and are finished after every pack.
    """

    def __init__(
        self, staging: Staging, plan: Plan, progress: Progress, finish: Callable[[int, int], None]
    ) -> None:
        self._staging, self._plan, self._progress, self._finish = staging, plan, progress, finish
        self._new = staging.new_files()
        self._left: dict[int, int] = {}  # file index -> bytes still to write (own files begun)
        self._file = -1
        self._start = self._end = 0
        self._buffers: list[bytes] = []
        self.done = 0

    def add(self, file_index: int, offset: int, data: bytes) -> None:
        if file_index != self._file or offset != self._end or self._end - self._start >= RUN_BYTES:
            self.flush()
            self._file, self._start, self._end = file_index, offset, offset
        self._buffers.append(data)
        self._end += len(data)

    def flush(self) -> None:
        if not self._buffers:
            return
        index = self._file
        job = self._plan.files[index]
        size = self._end - self._start
        if job.multi_pack:
            self._staging.write_run(index, job.path, self._buffers, self._start)
        else:
            fd = self._new.write(index, job.path, self._buffers, self._start)
            left = self._left.get(index, job.record.size) - size
            if left:
                self._left[index] = left
            else:
                self._left.pop(index, None)
                try:
                    self._finish(index, fd)
                finally:
                    self._new.close(index)
        self.done += size
        self._progress.advance(size)
        self._buffers = []

    def close(self) -> None:
        """Close this pack's fds (every own file is complete and closed when nothing failed)."""
        self._new.close_all()


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def _open_target(target: Path) -> tuple[int, bool]:
    """An fd of the target directory, creating it (mode 0700) if it does not exist."""
    created = False
    with local_io(f"cannot use {target} as the restore target"):
        try:
            fd = os.open(target, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError:
            os.mkdir(target, 0o700)
            created = True
            fd = os.open(target, DIR_FLAGS)
        except NotADirectoryError:
            raise UsageError(f"restore target {target} exists and is not a directory") from None
    return fd, created


def restore(
    account: Account,
    snapshot: Snapshot,
    data_key: ReaderKey,
    target: Path,
    paths: Sequence[bytes] = (),
    *,
    progress: Progress | None = None,
    workers: int | None = None,
    restore_owners: bool | None = None,
    chunk_ids: ChunkIdKey | None = None,
) -> RestoreResult:
    """Restore ``paths`` (everything when empty) of ``snapshot`` into ``target``, verified first.

    ``data_key`` is a data private key (a browse key raises WrongKeyError before anything is
    written). ``restore_owners`` defaults to running as root. ``chunk_ids`` (from the account's
    dedup secret) additionally checks every chunk id against its content.
    """
    started = time.monotonic()
    progress = progress or NullProgress()
    owners = _is_root() if restore_owners is None else restore_owners
    wanted = [normalize(p) for p in paths]
    plan = make_plan(select(snapshot, wanted), snapshot.root, wanted)
    keys = DataKeys(snapshot.manifest.manifest, snapshot.root, data_key, snapshot.envelopes)
    keys.load({0} | plan.sources(snapshot.root))
    target = Path(target)
    warnings = Warnings()
    target_fd, created = _open_target(target)
    try:
        before = os.fstat(target_fd)
        staging: Staging | None = None
        try:
            staging = Staging(target_fd)
            _build(account, snapshot, plan, keys, staging, progress, workers, chunk_ids, owners, warnings)
            sync_filesystem(staging.fd)  # every staged byte is on disk before anything moves
            moves = plan_moves(staging, target_fd, str(target))
        except BaseException as exc:
            _abandon(staging, target_fd, before, target if created else None)
            if isinstance(exc, OSError):
                raise LocalIOError(f"restore into {target} failed: {exc.strerror or exc}") from None
            raise
        try:
            apply_moves(staging, target_fd, str(target), moves)
        except LocalIOError as exc:
            with contextlib.suppress(LocalIOError):
                staging.remove()
            raise LocalIOError(f"{exc}; the target now holds part of the restore") from None
        staging.remove()
        _finish_dirs(target_fd, plan, moves, owners, warnings)
        if not sync_filesystem(target_fd):
            with local_io(f"cannot sync {target}"):
                os.fsync(target_fd)
    finally:
        os.close(target_fd)
        progress.close()
    return RestoreResult(
        files=len(plan.files),
        dirs=len(plan.dirs),
        bytes=plan.total_bytes,
        symlinks=len(plan.symlinks),
        hardlinks=len(plan.links),
        specials=len(plan.specials),
        packs=len(plan.packs),
        warnings=warnings.lines(),
        duration=time.monotonic() - started,
    )


def _abandon(staging: Staging | None, target_fd: int, before: os.stat_result, created: Path | None) -> None:
    """Undo everything before the move: remove staging, put back the target's times (or the target)."""
    with contextlib.suppress(OSError, LocalIOError):
        if staging is not None:
            staging.remove()
        os.utime(target_fd, ns=(before.st_atime_ns, before.st_mtime_ns))
        if created is not None:
            os.rmdir(created)


def _build(
    account: Account,
    snapshot: Snapshot,
    plan: Plan,
    keys: DataKeys,
    staging: Staging,
    progress: Progress,
    workers: int | None,
    chunk_ids: ChunkIdKey | None,
    owners: bool,
    warnings: Warnings,
) -> None:
    """Everything up to (not including) the move, inside ``staging``."""
    for rec in plan.dirs:
        staging.mkdir(rec.path)
    bulk_sync = HAS_SYNCFS  # one syncfs before the move; without it, each file is fsynced
    finished = [False] * len(plan.files)

    def finish(index: int, fd: int) -> None:
        """Check a complete staged file's size, then set its owner, mode and time (on its fd)."""
        job = plan.files[index]
        with local_io("cannot finish", job.path):
            if os.fstat(fd).st_size != job.record.size:
                raise LocalIOError(f"staged file {show(job.path)} does not have its {job.record.size} bytes")
            if not bulk_sync:
                os.fsync(fd)
            apply_fd(fd, job.record, owners=owners, warnings=warnings, path=job.path)
        finished[index] = True

    for index, job in enumerate(plan.files):
        if not job.chunks:  # empty: created and finished here
            fd = staging.create_open(job.path)
            try:
                finish(index, fd)
            finally:
                os.close(fd)
        elif job.multi_pack:  # written by several threads through the staging's shared fds
            staging.create_file(job.path)
        else:  # created by the worker of its one pack
            staging.note_file(job.path)
    progress.stage("restore", total=plan.total_bytes, unit="B")
    root, sizes = snapshot.root, snapshot.sizes

    def fetch(index: int) -> int:
        pack = fetch_data_pack(account.repo, root, sizes, keys, index)
        run = _Run(staging, plan, progress, finish)
        try:
            for chunk_id, use in plan.packs[index].items():
                data = pack.chunk(chunk_id, use.length, chunk_ids, release=True)  # verified, then queued
                for file_index, offset in use.places:
                    run.add(file_index, offset, data)
            run.flush()
        finally:
            run.close()
        return run.done

    parallel(
        fetch, sorted(plan.packs), workers=workers or min(DEFAULT_WORKERS, account.repo.transport.workers)
    )
    staging.close_files()
    for index, job in enumerate(plan.files):
        if finished[index]:
            continue
        if not job.multi_pack:  # every chunk was written, so its last run finished it
            raise LocalIOError(f"staged file {show(job.path)} was not completed")
        fd = staging.open_file(job.path)
        try:
            finish(index, fd)
        finally:
            os.close(fd)
    for path, existing in plan.links:
        staging.link(path, existing)
    for rec in plan.symlinks:
        staging.symlink(rec.path, rec.target)
        with _parent(staging, rec.path) as (fd, name):
            apply_link(fd, name, rec, owners=owners, warnings=warnings, path=rec.path)
    for rec in plan.specials:
        kind = stat.S_IFMT(rec.mode)
        if kind == stat.S_IFIFO:
            staging.mkfifo(rec.path)
        elif _is_root():
            staging.mknod(rec.path, kind, rec.rdev)
        else:
            warnings.add("skipped a device file (making devices needs root)", rec.path)
            continue
        with _parent(staging, rec.path) as (fd, name):
            apply_path(fd, name, rec, owners=owners, warnings=warnings, path=rec.path)


@contextlib.contextmanager
def _parent(staging: Staging, path: bytes) -> Iterator[tuple[int, bytes]]:
    """An fd of the staged parent of ``path`` and its name there, for setting its metadata."""
    parent, name = split(path)
    fd = staging.open_dir(parent)
    try:
        with local_io("cannot set the metadata of", path):
            yield fd, name
    finally:
        os.close(fd)


def _finish_dirs(target_fd: int, plan: Plan, moves: MovePlan, owners: bool, warnings: Warnings) -> None:
    """Directory metadata, deepest first, on the moved entries; pre-existing ancestors are left alone."""
    merged = set(moves.merged)
    dirs = DirFds(target_fd)  # each directory opened from its cached parent, not from the target
    try:
        for rec in reversed(plan.dirs):
            if rec.path in merged and not plan.is_selected(rec.path):
                continue
            try:
                fd = dirs.get(rec.path)
            except OSError:
                warnings.add("could not set the metadata of a directory", rec.path)
                continue
            try:
                apply_fd(fd, rec, owners=owners, warnings=warnings, path=rec.path)
                if not HAS_SYNCFS:  # else one syncfs (in restore) covers every directory
                    os.fsync(fd)
            except OSError:
                warnings.add("could not set the metadata of a directory", rec.path)
    finally:
        dirs.close()
