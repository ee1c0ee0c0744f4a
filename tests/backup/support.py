"""Shared pieces of the engine tests: small sizes, a live account, a backup call, server listings."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from opsbackup.backup import BackupRequest, BackupResult, run_backup
from opsbackup.backup.tuning import Hooks, Tuning, tuned
from opsbackup.chunking import ChunkerParams
from opsbackup.server.accounts import Scope
from tests.client_support import ClientEnv

__all__ = ["SMALL", "backup", "object_names", "small"]

#: Chunks of 1 to 16 KiB (4 KiB average), packs of 64 KiB, nodes of 2 KiB, 16 refs per record:
#: a tree of a few hundred KiB spans many chunks, packs, nodes and CONTINUATION records.
SMALL = Tuning(
    chunker=ChunkerParams(min_size=1024, avg_bits=12, max_size=16 * 1024),
    pack_target=64 * 1024,
    node_target=2048,
    max_refs_per_record=16,
    inline_below=4096,
    inflight_bytes=256 * 1024,
    upload_workers=2,
    racy_window_ns=0,
    read_block=64 * 1024,
)


@contextlib.contextmanager
def small(hooks: Hooks | None = None, **changes: object) -> Iterator[Tuning]:
    with tuned(SMALL, hooks, **changes) as t:
        yield t


def backup(env: ClientEnv, *paths: Path, host: str = "web1", **request: object) -> BackupResult:
    """One backup as ``host``, with the client state file shared by the test's runs."""
    account = env.account(Scope.HOST, env.root / f"state-{host}.json")
    return run_backup(account, env.host(host), BackupRequest(paths=paths, **request))  # type: ignore[arg-type]


def object_names(env: ClientEnv) -> set[bytes]:
    """Names of every object the server holds for the account."""
    prefix = f"accounts/{env.account_id.hex()}/objects/"
    return {bytes.fromhex(key.rsplit("/", 1)[-1]) for key in env.server.store.list(prefix)}
