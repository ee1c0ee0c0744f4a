"""Find paths by name across snapshots: ``fnmatch`` on the base name, or on the whole path."""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Callable, Iterator

from crypto.unwrapper import ReaderKey
from formats.tree import Kind, Record
from opsbackup.client.account import Account, VerifiedManifest
from opsbackup.errors import WrongKeyError
from opsbackup.restore.snapshots import list_snapshots
from opsbackup.restore.tree_reader import open_snapshot

__all__ = ["find", "matcher"]


def matcher(pattern: str) -> Callable[[bytes], bool]:
    """A test of a stream path against ``pattern``: whole path if it holds ``/``, else base name."""
    pat = os.fsencode(pattern)
    if b"/" in pat:
        whole = pat.lstrip(b"/")
        return lambda path: fnmatch.fnmatchcase(path, whole)
    return lambda path: fnmatch.fnmatchcase(path.rpartition(b"/")[2], pat)


def find(
    account: Account,
    pattern: str,
    key: ReaderKey,
    host: str | None = None,
    *,
    on_skip: Callable[[VerifiedManifest, WrongKeyError], None] | None = None,
) -> Iterator[tuple[VerifiedManifest, Record]]:
    """Every record matching ``pattern`` in every snapshot (of ``host``), oldest snapshot first.

    ``key`` is a browse or data key. A snapshot it cannot open raises WrongKeyError, unless
    ``on_skip`` is given: then it is told, and the search goes on.
    """
    match = matcher(pattern)
    for vm in list_snapshots(account, host):
        try:
            snapshot = open_snapshot(account, vm, key)
        except WrongKeyError as exc:
            if on_skip is None:
                raise
            on_skip(vm, exc)
            continue
        for rec in snapshot.records():
            if rec.kind is not Kind.CONTINUATION and match(rec.path):
                yield vm, rec
