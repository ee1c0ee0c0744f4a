"""What a caller asks of a backup (:class:`BackupRequest`) and what it gets back (:class:`BackupResult`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

__all__ = ["BackupRequest", "BackupResult"]


@dataclass(frozen=True)
class BackupRequest:
    """The paths to back up, what to leave out, an optional stdin stream, tags and walk options.

    ``excludes`` are fnmatch patterns: one holding ``/`` matches the absolute path (and so
    everything under it), any other matches the base name. ``stdin`` is backed up as one file
    named ``stdin_name`` (a single path component) at the top of the tree.
    """

    paths: tuple[Path, ...] = ()
    excludes: tuple[str, ...] = ()
    stdin: BinaryIO | None = None
    stdin_name: str | None = None
    tags: tuple[str, ...] = ()
    one_file_system: bool = False


@dataclass(frozen=True)
class BackupResult:
    """The summary of one finished backup (what the CLI prints, and its ``--json`` form)."""

    backup_id: str
    host: str
    time: int
    files: int
    dirs: int
    total_bytes: int
    new_chunks: int
    reused_chunks: int
    new_bytes: int  # plaintext bytes of the chunks this run stored
    uploaded_objects: int
    uploaded_bytes: int
    duration: float
    warnings: tuple[str, ...]

    def to_json(self) -> dict[str, object]:
        """A JSON-ready dict of every field (warnings as a list)."""
        return {
            "backup_id": self.backup_id,
            "host": self.host,
            "time": self.time,
            "files": self.files,
            "dirs": self.dirs,
            "total_bytes": self.total_bytes,
            "new_chunks": self.new_chunks,
            "reused_chunks": self.reused_chunks,
            "new_bytes": self.new_bytes,
            "uploaded_objects": self.uploaded_objects,
            "uploaded_bytes": self.uploaded_bytes,
            "duration": round(self.duration, 3),
            "warnings": list(self.warnings),
        }
