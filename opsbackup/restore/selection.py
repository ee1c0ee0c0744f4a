"""Which records a restore of some paths needs, read by seeking and checked as one stream.

For each requested path: its subtree (found by seeking with the nodes' first paths), the
records of its ancestors (to recreate the directories above it), and for every hard link in
it whose target lies outside every requested path, that earlier FILE record (with its
continuations and ancestors), so the link can be restored as a file. These records, sorted in
stream order, form a valid stream of their own; ``formats.tree.StreamChecker`` checks it (order,
parents are earlier DIRs, nothing below a symlink or file, link targets are earlier FILEs).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from formats.tree import Kind, Record, StreamChecker, path_key
from opsbackup.errors import NotFoundError
from opsbackup.restore.paths import ancestors, normalize, outermost, show, within

if TYPE_CHECKING:
    from opsbackup.restore.tree_reader import Snapshot

__all__ = ["select"]


def select(snapshot: Snapshot, paths: Sequence[bytes]) -> list[Record]:
    """The checked records needed to restore ``paths`` (the whole backup when empty), in stream order.

    NotFoundError when a requested path is not in the backup.
    """
    wanted = outermost(normalize(p) for p in paths)
    if not wanted or wanted == [b""]:
        return list(snapshot.records())
    groups: dict[bytes, list[Record]] = {}
    for path in wanted:
        found = snapshot.subtree(path)
        if not found or found[0].path != path:
            raise NotFoundError(
                f"{show(path)} is not in backup {snapshot.manifest.host}/{snapshot.backup_id}"
            )
        for rec in found:
            groups.setdefault(rec.path, []).append(rec)
    extra: set[bytes] = set()
    for path in wanted:
        extra.update(ancestors(path))
    for recs in list(groups.values()):
        for rec in recs:
            if rec.kind is Kind.HARDLINK and not any(within(rec.target, w) for w in wanted):
                extra.add(rec.target)
                extra.update(ancestors(rec.target))
    for path in sorted(extra - groups.keys(), key=path_key):
        found = snapshot.find(path)
        if found:
            groups[path] = found
    # Anything still missing (an ancestor or a link target) makes the checker fail below.
    checker = StreamChecker(
        pack_count=len(snapshot.root.packs), what=f"metadata tree of backup {snapshot.backup_id}"
    )
    out: list[Record] = []
    for path in sorted(groups, key=path_key):
        for rec in groups[path]:
            checker.feed(rec)
            out.append(rec)
    checker.finish()
    return out
