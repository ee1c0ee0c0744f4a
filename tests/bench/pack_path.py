"""Micro-benchmark of the pack path: build and name a pack; fetch, check and open it; seal small objects.

Not a test: it prints CPU milliseconds (best of ``--repeat``), in-process and without a server,
so it shows what the code costs even when the machine is too noisy for end-to-end figures. It
runs against whatever version of the code is importable, so the same command measures a tree
before and after a change. Run: ``.venv/bin/python -m tests.bench.pack_path [--repeat 7]``.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import time
from collections.abc import Callable, Iterator

from crypto import packs
from crypto.aead import SealingKey
from formats.pack import PackWriter
from formats.sealed import ObjectType
from opsbackup.client.repository import Repository

__all__ = ["main"]

BACKUP_ID = bytes(range(16))
CHUNK = 1 << 20
PIECE = 1 << 16


class _MemoryTransport:
    """Serves one object from memory in 64 KiB pieces, as the HTTP transport's ``stream`` does."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def stream(self, path: str) -> Iterator[bytes]:
        for i in range(0, len(self.data), PIECE):
            yield self.data[i : i + PIECE]


def _best_ms(work: Callable[[], object], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.process_time()
        work()
        best = min(best, time.process_time() - started)
    return best * 1000


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.pack_path", description=__doc__)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--chunks", type=int, default=16, help="1 MiB chunks per pack (default 16)")
    args = parser.parse_args(argv)
    key = SealingKey(os.urandom(32))
    ids = [hashlib.sha256(b"%d" % i).digest() for i in range(args.chunks)]
    sealed = [
        key.seal(os.urandom(CHUNK), obj_type=ObjectType.DATA_CHUNK, backup_id=BACKUP_ID, object_id=i)
        for i in ids
    ]

    def build() -> tuple[bytes, bytes]:
        writer = PackWriter(BACKUP_ID)
        for i, s in zip(ids, sealed, strict=True):
            writer.add(ObjectType.DATA_CHUNK, i, s)
        named = getattr(packs, "finish_pack_named", None)
        if named is not None:
            data, name = named(writer, key)
            return data, name
        data = packs.finish_pack(writer, key)
        return data, hashlib.sha256(data).digest()  # the uploader named it with a second pass

    data, name = build()

    def fetch_and_open() -> None:
        repo = Repository(_MemoryTransport(data))  # type: ignore[arg-type]
        get_pack = getattr(repo, "get_pack", None)
        if get_pack is not None:
            got, body = get_pack(name, size=len(data))
            opened = packs.open_pack(got, key, backup_id=BACKUP_ID, body=body)
        else:
            got = repo.get_object(name, size=len(data))
            opened = packs.open_pack(got, key, backup_id=BACKUP_ID)
        for entry in opened.pack.entries:
            packs.open_entry(entry, key, backup_id=BACKUP_ID)

    small = [os.urandom(4096) for _ in range(5000)]

    def seal_small() -> None:
        for i, s in enumerate(small):
            key.seal(s, obj_type=ObjectType.DATA_CHUNK, backup_id=BACKUP_ID, object_id=ids[i % len(ids)])

    mib = len(data) / (1 << 20)
    print(f"pack of {args.chunks} x 1 MiB chunks ({mib:.1f} MiB); CPU ms, best of {args.repeat}")
    print(f"build, seal index, name the pack: {_best_ms(build, args.repeat):8.1f}")
    print(f"fetch (hash), decode, open index and every entry: {_best_ms(fetch_and_open, args.repeat):8.1f}")
    print(f"seal 5000 objects of 4 KiB: {_best_ms(seal_small, args.repeat):8.1f}")


if __name__ == "__main__":
    main()
