"""Count the S3 requests a backup, a re-backup, a restore, a check and a prune's listing cost.

A benchmark, not a test.

Runs the real TLS server over an :class:`S3Store` (default part size) on the moto server, backs up
``MIB`` MiB of random files (incompressible: every byte becomes a pack byte), and prints the S3 API
calls of each phase as counted by a botocore hook, and per GiB backed up. docs/scaling.md quotes
the figures. Usage: ``python -m tests.storage.s3_requests [MIB]`` (default 256).
"""

from __future__ import annotations

import collections
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from crypto.primitives import random_bytes
from crypto.private import generate_rsa_key
from opsbackup.backup import BackupRequest, run_backup
from opsbackup.ops.prune import list_objects
from opsbackup.restore import open_snapshot, resolve_snapshot, restore
from opsbackup.restore.check import check
from opsbackup.server.accounts import Scope
from opsbackup.storage.s3 import DEFAULT_PART_SIZE
from tests.client_support import AccountKeys
from tests.s3_support import new_store, s3_client_env

__all__ = ["main"]

T = TypeVar("T")
MiB = 1 << 20


def main() -> None:
    mib = int(sys.argv[1]) if len(sys.argv) > 1 else 256
    keys = AccountKeys(
        root=generate_rsa_key(4096),
        data=generate_rsa_key(4096),
        browse=generate_rsa_key(4096),
        deletion=generate_rsa_key(3072),
        hosts={"web1": generate_rsa_key(3072)},
        dedup_secret=random_bytes(32),
    )
    store = new_store(part_size=DEFAULT_PART_SIZE)
    counts: collections.Counter[str] = collections.Counter()
    lock = threading.Lock()

    def hook(model: Any, **_: Any) -> None:
        with lock:
            counts[model.name] += 1

    store.client.meta.events.register("before-call.s3", hook)
    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td)
        src = tmp / "src"
        src.mkdir()
        for i in range(max(1, mib // 8)):
            (src / f"f{i}").write_bytes(os.urandom(8 * MiB))
        with s3_client_env(tmp / "env", keys, store) as env:

            def phase(name: str, fn: Callable[[], T]) -> T:
                counts.clear()
                start = time.perf_counter()
                result = fn()
                took = time.perf_counter() - start
                calls = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
                per_gib = ", ".join(f"{k} {v * 1024 / mib:.0f}" for k, v in sorted(counts.items()))
                print(f"{name:<18} {calls}  ({took:.1f} s)\n{'':<18} per GiB: {per_gib}")
                return result

            first = phase(
                "backup",
                lambda: run_backup(
                    env.account(Scope.HOST, tmp / "state.json"), env.host(), BackupRequest(paths=(src,))
                ),
            )
            packs = [k for k in store.list("") if "/objects/" in k]
            print(f"{'':<18} {len(packs)} objects stored for {mib} MiB")
            phase(
                "backup unchanged",
                lambda: run_backup(
                    env.account(Scope.HOST, tmp / "state.json"), env.host(), BackupRequest(paths=(src,))
                ),
            )

            def restore_all() -> None:
                reader = env.account(Scope.RESTORE)
                snap = open_snapshot(reader, resolve_snapshot(reader, first.backup_id), keys.data)
                (tmp / "target").mkdir()
                restore(reader, snap, keys.data, tmp / "target")

            phase("restore", restore_all)
            phase("check --read-data", lambda: check(env.account(Scope.RESTORE), read_data=True))
            # What prune's first step costs: GET /v1/objects, every page (the objects above).
            listed = phase("prune: listing", lambda: list(list_objects(env.account(Scope.RESTORE))))
            print(f"{'':<18} {len(listed)} objects listed")


if __name__ == "__main__":
    main()
