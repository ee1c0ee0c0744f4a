"""Prune: delete the objects and key envelopes no remaining manifest needs, by mark and sweep.

The API cannot say when an object was created, so the grace period is measured from when a prune
first *saw* an object unreferenced (the mark). Each prune lists every object (``GET
/v1/objects``), then verifies every manifest and takes the union of their object lists. An
unreferenced object is deleted only if an earlier prune on this machine already found it
unreferenced at least ``grace`` seconds ago and it is still unreferenced now; every other
unreferenced object is (re)marked. The marks live in a local file next to the client state.

Why this is safe against a concurrent backup: a backup uploads its packs first and its manifest
last, and it may reference packs of earlier backups. Objects it uploaded or reused are either
referenced again by its manifest before the sweep (kept) or belong to a run that has lasted
longer than the grace (considered dead). Listing objects before manifests means an object that
appears in between is never a candidate. And a manifest stored after this prune read the
manifests (one that reuses a long-marked pack) is covered by the server: every delete request
names the manifests its plan was computed from (its *basis*), and the server keeps whatever a
manifest outside the basis, stored or being stored, needs; those count as ``kept``
(docs/spec/delete-request.md, "Deletes and concurrent manifests").

Key envelopes are swept the same way. An envelope is live while a remaining manifest is that
backup or names it among its ``sources`` (it reuses packs sealed under that backup's data key).
A backup uploads its envelope before its manifest, so an in-flight backup's envelope is
unreferenced for a while exactly as its packs are, and the same grace protects it; envelopes are
listed after the objects and before the manifests for the same reason.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

from cryptography.hazmat.primitives.asymmetric import rsa

from crypto.atomic_file import write_atomic
from opsbackup.client.account import Account
from opsbackup.errors import FormatError, LocalIOError
from opsbackup.ops.forget import delete_in_batches
from opsbackup.restore.snapshots import list_snapshots

__all__ = ["DEFAULT_GRACE", "PruneResult", "list_objects", "marks_file", "prune"]

#: The default grace: 24 hours.
DEFAULT_GRACE = 24 * 3600
_PAGE = 10_000


@dataclass
class PruneResult:
    """What one prune found and did (sizes in bytes as the server reports them)."""

    objects: int = 0
    referenced: int = 0
    unreferenced: int = 0
    marked: int = 0  # unreferenced, but not yet for the whole grace: kept for now
    deleted_objects: int = 0
    deleted_bytes: int = 0
    envelopes: int = 0
    unreferenced_envelopes: int = 0
    marked_envelopes: int = 0  # unreferenced, but not yet for the whole grace: kept for now
    deleted_envelopes: int = 0
    kept: int = 0  # due, but the server kept them: a backup stored during this prune needs them
    missing: int = 0
    dry_run: bool = False
    to_delete: list[str] = field(default_factory=list)
    envelopes_to_delete: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        return {
            "objects": self.objects,
            "referenced": self.referenced,
            "unreferenced": self.unreferenced,
            "marked": self.marked,
            "deleted_objects": self.deleted_objects,
            "deleted_bytes": self.deleted_bytes,
            "envelopes": self.envelopes,
            "unreferenced_envelopes": self.unreferenced_envelopes,
            "marked_envelopes": self.marked_envelopes,
            "deleted_envelopes": self.deleted_envelopes,
            "kept": self.kept,
            "missing": self.missing,
            "dry_run": self.dry_run,
        }


def list_objects(account: Account) -> Iterator[tuple[bytes, int]]:
    """Every ``(name, size)`` the server lists for the account, a page at a time."""
    after = ""
    while True:
        query = {"limit": str(_PAGE)} | ({"after": after} if after else {})
        doc = account.repo.transport.request("GET", "/v1/objects?" + urlencode(query)).json()
        try:
            page = [(bytes.fromhex(o["name"]), int(o["size"])) for o in doc["objects"]]
            cursor = doc["next"]
        except (KeyError, TypeError, ValueError):
            raise FormatError("the server's object listing is malformed") from None
        for name, size in page:
            if len(name) != 32 or size < 0:
                raise FormatError("the server's object listing holds an invalid entry")
            yield name, size
        if cursor is None:
            return
        if not isinstance(cursor, str) or cursor <= after:
            raise FormatError("the server's object listing does not advance")
        after = cursor


def marks_file(directory: Path, account: Account) -> Path:
    """The local file of first-seen-unreferenced times for this account (in ``directory``)."""
    return directory / f"prune-marks-{account.root_id.hex()[:16]}.json"


def _load_marks(path: Path) -> dict[bytes, float]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        return {bytes.fromhex(k): float(v) for k, v in doc["marks"].items()}
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        raise LocalIOError(
            f"the prune marks file {path} is unreadable; move it away (the next prune only marks again)"
        ) from None


def _save_marks(path: Path, marks: dict[bytes, float]) -> None:
    data = json.dumps({"marks": {k.hex(): v for k, v in sorted(marks.items())}}, indent=0)
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_atomic(path, data.encode("utf-8"), 0o600, overwrite=True)
    except OSError as exc:
        raise LocalIOError(f"cannot write the prune marks file {path}: {exc.strerror or exc}") from None


def prune(
    account: Account,
    deletion_key: rsa.RSAPrivateKey | None,
    *,
    marks_dir: Path,
    grace: float = DEFAULT_GRACE,
    dry_run: bool = False,
    now: float | None = None,
    before_delete: Callable[[], None] | None = None,
) -> PruneResult:
    """Mark unreferenced objects and envelopes; delete those marked at least ``grace`` seconds ago.

    ``deletion_key`` may be None only with ``dry_run`` (which neither signs nor writes marks).
    ``before_delete`` runs after the plan is made, just before the delete requests go (where a
    concurrent backup hurts most; tests place one there).
    """
    if deletion_key is None and not dry_run:
        raise ValueError("prune needs the deletion key unless it is a dry run")
    t = time.time() if now is None else now
    sizes = dict(list_objects(account))  # objects first: one that appears later is never a candidate
    envelopes = account.repo.list_envelopes()  # then envelopes, for the same reason
    referenced: set[bytes] = set()
    live: set[bytes] = set()
    basis: list[tuple[str, bytes]] = []  # the server keeps what any manifest outside these needs
    for vm in list_snapshots(account):  # every manifest verified; any failure stops prune
        basis.append((vm.host, vm.manifest.backup_id))
        referenced.update(obj.name for obj in vm.manifest.objects)
        live.add(vm.manifest.backup_id)
        live.update(vm.manifest.sources)
    path = marks_file(marks_dir, account)
    old = _load_marks(path)
    unreferenced = sorted(n for n in sizes if n not in referenced)
    dead = sorted(e for e in envelopes if e not in live)
    # Object names are 32 bytes and backup ids 16: one marks file holds both without a clash.
    marks = {n: min(old.get(n, t), t) for n in (*unreferenced, *dead)}
    due = [n for n in unreferenced if marks[n] <= t - grace]
    due_envelopes = [e for e in dead if marks[e] <= t - grace]
    result = PruneResult(
        objects=len(sizes),
        referenced=len(sizes) - len(unreferenced),
        unreferenced=len(unreferenced),
        marked=len(unreferenced) - len(due),
        envelopes=len(envelopes),
        unreferenced_envelopes=len(dead),
        marked_envelopes=len(dead) - len(due_envelopes),
        dry_run=dry_run,
        to_delete=[n.hex() for n in due],
        envelopes_to_delete=[e.hex() for e in due_envelopes],
    )
    if dry_run:
        result.deleted_bytes = sum(sizes[n] for n in due)
        return result
    assert deletion_key is not None
    _save_marks(path, marks)  # before deleting: a crash mid-way keeps every first-seen time
    if due or due_envelopes:
        if before_delete is not None:
            before_delete()
        counts = delete_in_batches(account, deletion_key, objects=due, envelopes=due_envelopes, basis=basis)
        result.deleted_objects = counts.get("deleted_objects", 0)
        result.deleted_envelopes = counts.get("deleted_envelopes", 0)
        result.kept = counts.get("kept_objects", 0) + counts.get("kept_envelopes", 0)
        result.missing = counts.get("missing", 0)
        result.deleted_bytes = sum(sizes[n] for n in due) - counts.get("kept_bytes", 0)
        gone = {*due, *due_envelopes}
        _save_marks(path, {n: m for n, m in marks.items() if n not in gone})
    return result
