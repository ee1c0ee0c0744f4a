"""The restore plan: what to create, and which chunk of which pack goes to which file offsets.

Built from the checked selection (``selection.select``) before anything is fetched or written.
A hard link whose target was not selected becomes a regular file holding the target's content
(and metadata); later links to the same target link to it. Every chunk ref must name a data
pack and a length a sealed chunk can hold; one chunk id of one pack must have one length.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from formats.backup_root import BackupRoot, PackKind
from formats.tree import MAX_CHUNK_LENGTH, ChunkRef, Kind, Record
from opsbackup.errors import FormatError
from opsbackup.restore.paths import ancestors, outermost, show, within

__all__ = ["ChunkUse", "FileJob", "Plan", "make_plan"]


@dataclass
class FileJob:
    """One regular file to write: where, with which metadata, and its chunks in order."""

    path: bytes
    record: Record  # the FILE record whose mode, owner and mtime the file gets
    chunks: list[ChunkRef] = field(default_factory=list)
    #: Its chunks come from more than one pack, so several threads write it (else one pack's
    #: worker creates, fills and finishes it alone).
    multi_pack: bool = False


@dataclass
class ChunkUse:
    """One chunk of one pack: its plaintext length and every (file index, offset) it fills."""

    length: int
    places: list[tuple[int, int]] = field(default_factory=list)


@dataclass
class Plan:
    """Everything a restore creates, in stream order, and the chunks it needs per pack."""

    dirs: list[Record] = field(default_factory=list)
    files: list[FileJob] = field(default_factory=list)
    links: list[tuple[bytes, bytes]] = field(default_factory=list)  # (new path, restored file path)
    symlinks: list[Record] = field(default_factory=list)
    specials: list[Record] = field(default_factory=list)
    selected: list[bytes] = field(default_factory=list)  # the requested roots (b"" = everything)
    packs: dict[int, dict[bytes, ChunkUse]] = field(default_factory=dict)  # pack index -> chunk id -> use
    total_bytes: int = 0

    def sources(self, root: BackupRoot) -> set[int]:
        """The sources whose data keys the needed packs are sealed under."""
        return {root.packs[index].source for index in self.packs}

    def is_selected(self, path: bytes) -> bool:
        """Whether ``path`` is inside a requested path (not merely an ancestor of one)."""
        return any(within(path, root) for root in self.selected)


def make_plan(records: Sequence[Record], root: BackupRoot, paths: Sequence[bytes]) -> Plan:
    """The plan for ``records`` (a checked selection) restoring ``paths`` (all when empty)."""
    plan = Plan(selected=outermost(paths) or [b""])
    parents = {a for root_path in plan.selected for a in ancestors(root_path)}
    outside: dict[bytes, FileJob] = {}  # FILE records only present as link targets
    restored: dict[bytes, bytes] = {}  # link-target path -> path of the restored file holding it
    current: FileJob | None = None
    for rec in records:
        if rec.kind is Kind.CONTINUATION:
            if current is None or current.path != rec.path:
                raise FormatError(f"continuation of {show(rec.path)} follows no file")
            current.chunks.extend(rec.chunks)
            continue
        current = None
        if not plan.is_selected(rec.path):
            if rec.kind is Kind.DIR and rec.path in parents:
                plan.dirs.append(rec)
            elif rec.kind is Kind.FILE:
                current = outside[rec.path] = FileJob(rec.path, rec, list(rec.chunks))
            continue
        if rec.kind is Kind.DIR:
            plan.dirs.append(rec)
        elif rec.kind is Kind.FILE:
            current = FileJob(rec.path, rec, list(rec.chunks))
            plan.files.append(current)
            if rec.link_group:
                restored[rec.path] = rec.path
        elif rec.kind is Kind.HARDLINK:
            if rec.target in restored:
                plan.links.append((rec.path, restored[rec.target]))
            elif rec.target in outside:
                source = outside[rec.target]
                plan.files.append(FileJob(rec.path, source.record, source.chunks))
                restored[rec.target] = rec.path
            else:
                raise FormatError(
                    f"hard link {show(rec.path)} names {show(rec.target)}, which is not in the tree"
                )
        elif rec.kind is Kind.SYMLINK:
            plan.symlinks.append(rec)
        elif rec.kind is Kind.SPECIAL:
            plan.specials.append(rec)
    for index, job in enumerate(plan.files):
        plan.total_bytes += _place(plan, root, index, job)
    return plan


def _place(plan: Plan, root: BackupRoot, index: int, job: FileJob) -> int:
    """Record where each chunk of ``job`` goes; returns the file's size."""
    offset = 0
    packs = {ref.pack for ref in job.chunks}
    job.multi_pack = len(packs) > 1
    for ref in job.chunks:
        if not 0 <= ref.pack < len(root.packs) or root.packs[ref.pack].kind is not PackKind.DATA:
            raise FormatError(f"a chunk of {show(job.path)} names pack {ref.pack}, which is not a data pack")
        if not 1 <= ref.length <= MAX_CHUNK_LENGTH:
            raise FormatError(f"a chunk of {show(job.path)} has impossible length {ref.length}")
        use = plan.packs.setdefault(ref.pack, {}).setdefault(ref.chunk_id, ChunkUse(ref.length))
        if use.length != ref.length:
            raise FormatError(f"chunk {ref.chunk_id.hex()[:16]} is listed with two different lengths")
        use.places.append((index, offset))
        offset += ref.length
    if offset != job.record.size:
        raise FormatError(
            f"file {show(job.path)} has size {job.record.size} but its chunks hold {offset} bytes"
        )
    return offset
