"""The read side: list and name snapshots, open one, restore, dump and find files, check the repository.

Every path here verifies before it trusts: manifests against the keyring (and, for ``latest``,
against the newest one seen before), keys against their signed commitments, every object against
the signed object list, every pack index and chunk under its key; a restore writes into a staging
directory and moves into the target only when everything it needs was verified.
"""

from __future__ import annotations

from opsbackup.restore.check import check
from opsbackup.restore.dump import dump
from opsbackup.restore.find import find
from opsbackup.restore.results import CheckResult, RestoreResult
from opsbackup.restore.snapshots import list_snapshots, resolve_snapshot
from opsbackup.restore.tree_reader import Snapshot, open_snapshot
from opsbackup.restore.writer import restore

__all__ = [
    "CheckResult",
    "RestoreResult",
    "Snapshot",
    "check",
    "dump",
    "find",
    "list_snapshots",
    "open_snapshot",
    "resolve_snapshot",
    "restore",
]
