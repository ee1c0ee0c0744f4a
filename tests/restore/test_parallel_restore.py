"""Parallel restore: many packs on several threads, chunks written in runs, fds shared safely."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from opsbackup.errors import LocalIOError
from opsbackup.restore import list_snapshots, open_snapshot, restore
from opsbackup.restore import staging as staging_mod
from opsbackup.restore.staging import Staging
from tests.client_support import ClientEnv
from tests.restore._build import Builder, dir_, file
from tests.restore._support import reader

CONTENTS = {f"d/f{i:02d}".encode(): os.urandom(1000 + 37_000 * (i % 5)) for i in range(24)}
SAME = os.urandom(40_000)


def test_many_packs_on_many_threads_restore_every_byte(env: ClientEnv, tmp_path: Path) -> None:
    builder = Builder(env.keys, env.account_id)
    entries = [dir_(b"d")] + [file(path, data) for path, data in CONTENTS.items()]
    entries += [file(b"d/same1", SAME + SAME), file(b"d/same2", SAME)]  # one chunk at several places
    built = builder.build(entries, compress=False)
    builder.upload(env, built)
    account = reader(env)
    (vm,) = list_snapshots(account)
    snap = open_snapshot(account, vm, env.keys.data)
    result = restore(account, snap, env.keys.data, tmp_path / "t", workers=3)
    assert result.packs >= 6
    for path, data in CONTENTS.items():
        assert (tmp_path / "t" / path.decode()).read_bytes() == data
    assert (tmp_path / "t/d/same1").read_bytes() == SAME + SAME
    assert (tmp_path / "t/d/same2").read_bytes() == SAME
    assert not [p for p in (tmp_path / "t").iterdir() if p.name.startswith(staging_mod.PREFIX)]


def test_write_run_joins_buffers_at_their_offsets(tmp_path: Path) -> None:
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        staged = Staging(fd)
        staged.create_file(b"f")
        staged.write_run(0, b"f", [b"abc", bytearray(b""), memoryview(b"defg"), b"h"], 5)
        staged.write(0, b"f", b"XY", 0)
        staged.close()
        assert (tmp_path / staged.name / "f").read_bytes() == b"XY\0\0\0abcdefgh"
    finally:
        os.close(fd)


def test_fds_in_use_are_not_closed_by_another_threads_eviction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(staging_mod, "_FILE_CACHE", 2)  # evictions all the time
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        staged = Staging(fd)
        names = [f"f{i}".encode() for i in range(12)]
        for name in names:
            staged.create_file(name)
        errors: list[BaseException] = []

        def work(worker: int) -> None:
            try:
                for rnd in range(40):
                    for i, name in enumerate(names):
                        staged.write_run(
                            i, name, [bytes([worker + 65]) * 100, b"."], (worker * 40 + rnd) * 101
                        )
            except (LocalIOError, LookupError) as exc:  # a closed or lost fd shows here
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(w,)) for w in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        staged.close()
        assert errors == []
        assert len(staged._file_fds) == 0
        for name in names:
            data = (tmp_path / staged.name / name.decode()).read_bytes()
            assert data == b"".join((bytes([w + 65]) * 100 + b".") * 40 for w in range(4))
    finally:
        os.close(fd)
