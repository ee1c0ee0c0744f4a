"""Check the repository without any private key: manifests, chains, and every stored object.

What it checks: the keyring (already verified against the pinned root when the account was
opened); every manifest verifies and is named right; per host, a backup's previous backup (when
still stored) is of the same host and not newer, no two backups follow the same one, and the
newest descends from the newest this client saw before; every object a manifest lists exists
with the listed size (and two manifests never list one object with two sizes). With
``read_data``, every object is downloaded and its SHA-256 and size checked, packs are parsed
(``formats.pack.decode``) and chunk indexes too (``formats.chunk_index.decode_object``, which must
name the backup that lists it). Opening packs needs keys: that is restore's work.
"""

from __future__ import annotations

import collections
from collections.abc import Sequence

from formats import chunk_index, pack
from formats.manifest import FIRST_PREVIOUS
from opsbackup.client.account import Account, VerifiedManifest
from opsbackup.client.progress import NullProgress, Progress
from opsbackup.client.transport import parallel
from opsbackup.errors import (
    FormatError,
    IntegrityError,
    KeyUnusableError,
    NotFoundError,
    OpsbackupError,
    RollbackError,
)
from opsbackup.restore.results import CheckResult
from opsbackup.restore.snapshots import check_chain, fetch_listed, newest

__all__ = ["check"]


def check(
    account: Account, *, read_data: bool = False, progress: Progress | None = None, workers: int | None = None
) -> CheckResult:
    """Check everything the account's credential can see; problems are collected, not raised."""
    progress = progress or NullProgress()
    result = CheckResult(read_data=read_data)
    result.counts["keyring_version"] = account.keyring.version
    manifests: list[VerifiedManifest] = []
    for host, backup_id in account.repo.list_manifests():
        try:
            manifests.append(fetch_listed(account, host, backup_id))
        except (IntegrityError, FormatError, KeyUnusableError, NotFoundError) as exc:
            result.errors.append(str(exc))
    result.count("manifests", len(manifests))
    by_host: dict[str, list[VerifiedManifest]] = collections.defaultdict(list)
    for vm in manifests:
        by_host[vm.host].append(vm)
    result.count("hosts", len(by_host))
    all_hashes = {vm.hash: vm for vm in manifests}
    for host, ms in sorted(by_host.items()):
        _check_host(account, host, ms, all_hashes, result)
    objects, users, chunk_indexes = _objects(manifests, result)
    result.count("objects", len(objects))
    result.count("bytes", sum(objects.values()))
    jobs = workers or account.repo.transport.workers
    try:
        if read_data:
            _read_all(account, objects, users, chunk_indexes, result, progress, jobs)
        else:
            _sizes(account, objects, users, result, jobs)
    finally:
        progress.close()
    return result


def _check_host(
    account: Account,
    host: str,
    ms: Sequence[VerifiedManifest],
    all_hashes: dict[bytes, VerifiedManifest],
    result: CheckResult,
) -> None:
    followers: dict[bytes, list[VerifiedManifest]] = collections.defaultdict(list)
    for vm in ms:
        previous = vm.manifest.previous_manifest_hash
        if previous == FIRST_PREVIOUS:
            continue
        followers[previous].append(vm)
        parent = all_hashes.get(previous)
        if parent is None:
            result.count("chain_gaps")  # the previous backup was deleted (pruned)
        elif parent.host != host:
            result.errors.append(
                f"backup {host}/{vm.backup_id} names a backup of host {parent.host} as its previous one"
            )
        elif parent.manifest.time > vm.manifest.time:
            result.errors.append(f"backup {host}/{vm.backup_id} is older than the backup it follows")
    for children in followers.values():
        if len(children) > 1:
            ids = ", ".join(c.backup_id for c in sorted(children, key=lambda c: c.backup_id))
            result.errors.append(f"host {host} has a forked history: backups {ids} follow the same backup")
    seen = account.state.head(account.root_id, host)
    if seen is not None:
        try:
            check_chain(ms, newest(ms), seen)
        except RollbackError as exc:
            result.errors.append(str(exc))


def _objects(
    manifests: Sequence[VerifiedManifest], result: CheckResult
) -> tuple[dict[bytes, int], dict[bytes, list[str]], dict[bytes, bytes]]:
    """Object name -> size, -> the backups listing it, and chunk index name -> its backup id."""
    sizes: dict[bytes, int] = {}
    users: dict[bytes, list[str]] = collections.defaultdict(list)
    chunk_indexes: dict[bytes, bytes] = {}
    for vm in manifests:
        chunk_indexes[vm.manifest.chunk_index] = vm.manifest.backup_id
        for obj in vm.manifest.objects:
            known = sizes.setdefault(obj.name, obj.size)
            if known != obj.size:
                result.errors.append(
                    f"object {obj.name.hex()[:16]} is listed with sizes {known} and {obj.size} "
                    f"(backup {vm.host}/{vm.backup_id})"
                )
            users[obj.name].append(f"{vm.host}/{vm.backup_id}")
    return sizes, users, chunk_indexes


def _who(users: list[str]) -> str:
    return ", ".join(users[:3]) + (f" and {len(users) - 3} more" if len(users) > 3 else "")


def _sizes(
    account: Account,
    objects: dict[bytes, int],
    users: dict[bytes, list[str]],
    result: CheckResult,
    workers: int,
) -> None:
    present = account.repo.present(objects)
    for name in sorted(objects.keys() - present):
        result.errors.append(
            f"object {name.hex()[:16]} is missing from the server (needed by {_who(users[name])})"
        )
    result.count("missing", len(objects) - len(present))

    def head(name: bytes) -> str | None:
        try:
            response = account.repo.transport.request("HEAD", f"/v1/objects/{name.hex()}")
        except NotFoundError:
            return f"object {name.hex()[:16]} is missing from the server (needed by {_who(users[name])})"
        length = response.headers.get("Content-Length", "")
        if not length.isdigit() or int(length) != objects[name]:
            return (
                f"object {name.hex()[:16]} has {length or 'an unknown number of'} bytes on the server, "
                f"not the {objects[name]} its manifests sign (needed by {_who(users[name])})"
            )
        return None

    for problem in parallel(head, sorted(present), workers=workers):
        if problem is not None:
            result.errors.append(problem)
            result.count("damaged")


def _read_all(
    account: Account,
    objects: dict[bytes, int],
    users: dict[bytes, list[str]],
    chunk_indexes: dict[bytes, bytes],
    result: CheckResult,
    progress: Progress,
    workers: int,
) -> None:
    progress.stage("check", total=sum(objects.values()), unit="B")

    def read(name: bytes) -> str | None:
        what = "chunk index" if name in chunk_indexes else "pack"
        try:
            data = account.repo.get_object(name, size=objects[name], what=what)
            if name in chunk_indexes:
                obj = chunk_index.decode_object(data)
                if obj.backup_id != chunk_indexes[name]:
                    raise IntegrityError(f"chunk index {name.hex()[:16]} belongs to another backup")
            else:
                pack.decode(data, f"pack {name.hex()[:16]}")
        except OpsbackupError as exc:
            return f"{exc} (needed by {_who(users[name])})"
        finally:
            progress.advance(objects[name])
        return None

    problems = [p for p in parallel(read, sorted(objects), workers=workers) if p is not None]
    result.errors.extend(problems)
    result.count("damaged", len(problems))
