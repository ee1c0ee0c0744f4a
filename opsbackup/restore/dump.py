"""Dump one file of a snapshot to a stream, each chunk verified before it is written.

The file's records are selected and checked like a restore's (its ancestors, and the earlier
file a hard link names). Output is a stream, so it cannot be staged: every chunk is verified
(pack hash and size, pack index, GCM, length) before it is written, and a failure part-way
raises after the chunks before it were written.
"""

from __future__ import annotations

import collections
from typing import BinaryIO

from crypto.dedup import ChunkIdKey
from crypto.unwrapper import ReaderKey
from opsbackup.client.account import Account
from opsbackup.errors import UsageError
from opsbackup.restore.chunks import DataPack, fetch_data_pack
from opsbackup.restore.keys import DataKeys
from opsbackup.restore.paths import normalize, show
from opsbackup.restore.planner import make_plan
from opsbackup.restore.selection import select
from opsbackup.restore.tree_reader import Snapshot

__all__ = ["dump"]

_PACK_CACHE = 2


def dump(
    account: Account,
    snapshot: Snapshot,
    data_key: ReaderKey,
    path: bytes,
    out: BinaryIO,
    *,
    chunk_ids: ChunkIdKey | None = None,
) -> int:
    """Write the content of file ``path`` (or of the file a hard link at ``path`` names) to ``out``.

    Returns the bytes written. UsageError when ``path`` is a directory, symlink or special file.
    """
    wanted = normalize(path)
    if not wanted:
        raise UsageError("name the file to dump (a path inside the backup)")
    plan = make_plan(select(snapshot, [wanted]), snapshot.root, [wanted])
    for kind, items in (
        ("directory", plan.dirs),
        ("symlink", plan.symlinks),
        ("special file", plan.specials),
    ):
        if any(rec.path == wanted for rec in items):
            raise UsageError(f"{show(wanted)} is a {kind}, not a file; use restore for it")
    jobs = [job for job in plan.files if job.path == wanted]
    if len(jobs) != 1:
        raise UsageError(f"{show(wanted)} is not a file")
    keys = DataKeys(snapshot.manifest.manifest, snapshot.root, data_key, snapshot.envelopes)
    keys.load({0} | plan.sources(snapshot.root))
    packs: collections.OrderedDict[int, DataPack] = collections.OrderedDict()
    written = 0
    for ref in jobs[0].chunks:
        pack = packs.get(ref.pack)
        if pack is None:
            pack = packs[ref.pack] = fetch_data_pack(
                account.repo, snapshot.root, snapshot.sizes, keys, ref.pack
            )
            if len(packs) > _PACK_CACHE:
                packs.popitem(last=False)
        else:
            packs.move_to_end(ref.pack)
        data = pack.chunk(ref.chunk_id, ref.length, chunk_ids)
        out.write(data)
        written += len(data)
    return written
