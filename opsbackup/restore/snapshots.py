"""Listing and naming snapshots: every manifest verified, and "latest" guarded against rollback.

The server's listing is untrusted: each name is checked for shape, each manifest is fetched and
verified (``Account.verify_manifest``), and one that fails is an error naming it, never skipped.
For ``latest`` the client state remembers, per host, the hash of the newest manifest it has
seen; the newest manifest shown now must descend from it (its chain of previous-manifest
hashes, with times that never decrease, reaches that hash), or the server is showing an older
state than one already seen (:class:`RollbackError`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from formats.manifest import FIRST_PREVIOUS
from opsbackup.client.account import Account, VerifiedManifest
from opsbackup.errors import (
    FormatError,
    IntegrityError,
    KeyUnusableError,
    NotFoundError,
    RollbackError,
    UsageError,
)

__all__ = ["MIN_PREFIX", "check_chain", "fetch_listed", "list_snapshots", "newest", "resolve_snapshot"]

#: The shortest backup id prefix accepted on the command line.
MIN_PREFIX = 8
_HOST = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}")
_ID = re.compile(r"[0-9a-f]{32}")
_PREFIX = re.compile(r"[0-9a-f]{8,32}")


def fetch_listed(account: Account, host: str, backup_id: str) -> VerifiedManifest:
    """Fetch and verify one listed manifest; any failure names it."""
    where = f"manifest {host}/{backup_id}"
    if not _HOST.fullmatch(host) or not _ID.fullmatch(backup_id):
        raise IntegrityError(
            f"the server lists a manifest with an invalid name ({where[:120]!r}); refusing it"
        )
    try:
        return account.fetch_manifest(host, backup_id)
    except (IntegrityError, FormatError, KeyUnusableError) as exc:
        message = str(exc) if where in str(exc) else f"{where}: {exc}"
        raise type(exc)(message) from None


def _depths(manifests: Sequence[VerifiedManifest]) -> dict[bytes, int]:
    """Per manifest hash, how many listed manifests precede it on its chain of previous hashes."""
    by_hash = {vm.hash: vm for vm in manifests}
    depths: dict[bytes, int] = {}
    for vm in manifests:
        path: list[bytes] = []
        current: VerifiedManifest | None = vm
        while current is not None and current.hash not in depths and len(path) <= len(by_hash):
            path.append(current.hash)
            current = by_hash.get(current.manifest.previous_manifest_hash)
        base = depths.get(current.hash, -1) if current is not None else -1
        for offset, digest in enumerate(reversed(path), start=1):
            depths[digest] = base + offset
    return depths


def _ordered(manifests: Sequence[VerifiedManifest]) -> list[VerifiedManifest]:
    """By (time, host, position on the host's chain, id): backups of one second keep their order."""
    depths = _depths(manifests)
    return sorted(manifests, key=lambda vm: (vm.manifest.time, vm.host, depths[vm.hash], vm.backup_id))


def list_snapshots(account: Account, host: str | None = None) -> list[VerifiedManifest]:
    """Every manifest of the account (or of ``host``), verified, sorted by (time, host, id)
    (backups of one host made in the same second in the order of their chain)."""
    if host is not None and not _HOST.fullmatch(host):
        raise UsageError(f"{host[:80]!r} is not a host name")
    names = account.repo.list_manifests(host)
    return _ordered([fetch_listed(account, h, b) for h, b in names if host is None or h == host])


def newest(manifests: Sequence[VerifiedManifest]) -> VerifiedManifest:
    """The newest of ``manifests``: the latest time, and of one time the last on its chain."""
    return _ordered(manifests)[-1]


def check_chain(manifests: Sequence[VerifiedManifest], head: VerifiedManifest, seen: bytes) -> None:
    """RollbackError unless ``head``'s chain, through ``manifests`` of its host, reaches hash ``seen``."""
    by_hash = {vm.hash: vm for vm in manifests}
    current: VerifiedManifest | None = head
    steps = 0
    while current is not None and steps <= len(by_hash):
        if current.hash == seen:
            return
        previous = current.manifest.previous_manifest_hash
        parent = None if previous == FIRST_PREVIOUS else by_hash.get(previous)
        if parent is not None and parent.manifest.time > current.manifest.time:
            break  # a chain never goes back in time
        if previous == seen:
            return  # reached (the seen manifest itself may have been pruned)
        current, steps = parent, steps + 1
    raise RollbackError(
        f"the server shows an older backup of host {head.host} than one already seen: its newest, "
        f"{head.backup_id}, does not descend from the newest this client verified before; "
        "refusing it (the server may be rolled back or hiding backups)"
    )


def _latest(account: Account, host: str | None) -> VerifiedManifest:
    names = account.repo.list_manifests(host)
    hosts = sorted({h for h, _ in names if host is None or h == host})
    if not hosts:
        where = f"host {host}" if host is not None else "this account"
        raise NotFoundError(f"{where} has no backups on the server")
    if len(hosts) > 1:
        raise UsageError(f"several hosts have backups ({', '.join(hosts[:10])}); name one with --host")
    manifests = list_snapshots(account, hosts[0])
    head = newest(manifests)
    seen = account.state.head(account.root_id, head.host)
    if seen is not None:
        check_chain(manifests, head, seen)
    account.state.record_head(account.root_id, head.host, head.hash)
    return head


def resolve_snapshot(account: Account, spec: str, host: str | None = None) -> VerifiedManifest:
    """The verified manifest ``spec`` names: ``latest``, a backup id or a prefix of at least
    8 hex digits, or ``HOST/ID``. UsageError for an ambiguous or malformed spec, NotFoundError
    when nothing matches, RollbackError when ``latest`` is older than what was seen before."""
    text = spec.strip()
    if "/" in text:
        spec_host, _, text = text.partition("/")
        if host is not None and host != spec_host:
            raise UsageError(f"snapshot {spec!r} names host {spec_host!r}, but --host is {host!r}")
        host = spec_host
        if text == "latest":
            return _latest(account, host)
    if host is not None and not _HOST.fullmatch(host):
        raise UsageError(f"{host[:80]!r} is not a host name")
    if text == "latest":
        return _latest(account, host)
    prefix = text.lower()
    if not _PREFIX.fullmatch(prefix):
        raise UsageError(
            f"{spec[:80]!r} is not a snapshot: give 'latest', a backup id (at least {MIN_PREFIX} hex "
            "digits) or HOST/ID"
        )
    matches = [(h, b) for h, b in account.repo.list_manifests(host) if b.startswith(prefix)]
    matches = [(h, b) for h, b in matches if host is None or h == host]
    if not matches:
        raise NotFoundError(f"no backup matches {spec!r}" + (f" on host {host}" if host else ""))
    if len(set(matches)) > 1:
        shown = ", ".join(f"{h}/{b[:12]}" for h, b in matches[:5])
        raise UsageError(f"{spec!r} matches several backups ({shown}); give more digits")
    return fetch_listed(account, *matches[0])
