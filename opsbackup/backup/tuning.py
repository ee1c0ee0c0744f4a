"""Engine sizes (pack and node targets, read block, in-flight budget) and test hooks.

Production code never changes these; tests and benchmarks do, through :func:`tuned`, to make
small trees span many packs or to inject a fault at a chosen point (fault injection, not mocks:
the engine runs for real and a hook merely raises or observes). The engine reads both once, at
the start of a run.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from formats.tree import MAX_CHUNKS_PER_RECORD
from opsbackup.chunking import ChunkerParams

__all__ = ["Hooks", "Tuning", "current", "tuned"]

MiB = 1 << 20


@dataclass(frozen=True)
class Tuning:
    """Sizes and limits of one run. Changing ``chunker`` changes chunk boundaries (and so dedup)."""

    pack_target: int = 16 * MiB  # cut data and tree packs at about this size
    node_target: int = 1 * MiB  # cut tree nodes at about this size
    read_block: int = 8 * MiB  # bytes per read() of a file
    chunker: ChunkerParams = field(default_factory=ChunkerParams)
    inflight_bytes: int = 16 * MiB  # chunk bytes read but not yet decided or packed (2 max chunks)
    inline_below: int = 64 * 1024  # smaller chunks are hashed and sealed on the calling thread
    upload_workers: int = 2  # packs queued or uploading at once (each is a pack in memory)
    racy_window_ns: int = 1_000_000_000  # files changed this recently are not trusted from the cache
    compression_level: int = 3
    sync_workers: int = 4  # chunk indexes fetched at once while rebuilding the cache
    max_refs_per_record: int = MAX_CHUNKS_PER_RECORD  # more chunks go to CONTINUATION records


@dataclass(frozen=True)
class Hooks:
    """Observation and fault-injection points; each runs on the engine's main thread."""

    before_open: Callable[[bytes], None] | None = None  # absolute path of a file about to be read
    after_block: Callable[[bytes, int], None] | None = None  # a file's path, bytes read so far
    after_pack_upload: Callable[[bytes, bool], None] | None = None  # data pack name, created?
    before_manifest: Callable[[tuple[bytes, ...]], None] | None = None  # names the manifest lists


_tuning = Tuning()
_hooks = Hooks()


def current() -> tuple[Tuning, Hooks]:
    """The tuning and hooks in force."""
    return _tuning, _hooks


@contextlib.contextmanager
def tuned(tuning: Tuning | None = None, hooks: Hooks | None = None, **changes: object) -> Iterator[Tuning]:
    """Run the body with other sizes (``tuning`` and/or field ``changes``) and hooks."""
    global _tuning, _hooks
    saved = (_tuning, _hooks)
    base = tuning if tuning is not None else _tuning
    _tuning = dataclasses.replace(base, **changes)  # type: ignore[arg-type]
    _hooks = hooks if hooks is not None else _hooks
    try:
        yield _tuning
    finally:
        _tuning, _hooks = saved
