"""The read side on what the real backup engine writes: two runs (the second reusing the first's
chunks), then latest, sub-path restore, dump, find and check."""

from __future__ import annotations

import io
import os
from pathlib import Path

from opsbackup.backup import BackupRequest, run_backup
from opsbackup.restore import check, dump, find, open_snapshot, resolve_snapshot, restore
from opsbackup.server.accounts import Scope
from tests.client_support import ClientEnv
from tests.restore._support import reader, tree_state


def test_engine_backups_read_back(env: ClientEnv, tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "etc" / "app").mkdir(parents=True)
    (src / "etc" / "app" / "config").write_bytes(b"key = value\n")
    (src / "etc" / "big").write_bytes(os.urandom(3 << 20))
    (src / "etc" / "empty").mkdir()
    os.symlink("app/config", src / "etc" / "link")
    os.link(src / "etc" / "app" / "config", src / "etc" / "hard")
    host_state = tmp_path / "host-state.json"
    first = run_backup(env.account(Scope.HOST, host_state), env.host(), BackupRequest(paths=(src,)))
    (src / "etc" / "app" / "config").write_bytes(b"key = changed\n")
    second = run_backup(env.account(Scope.HOST, host_state), env.host(), BackupRequest(paths=(src,)))

    state = tmp_path / "reader-state.json"
    account = env.account(Scope.RESTORE, state)
    latest = resolve_snapshot(account, "latest")
    assert latest.backup_id == second.backup_id
    snapshot = open_snapshot(account, latest, env.keys.data)
    base = os.fsencode(src).lstrip(b"/")

    target = tmp_path / "target"
    restore(account, snapshot, env.keys.data, target)
    assert tree_state(target / src.relative_to("/")) == tree_state(src)

    sub = tmp_path / "sub"
    restore(account, snapshot, env.keys.data, sub, [base + b"/etc/app"])
    assert (sub / src.relative_to("/") / "etc" / "app" / "config").read_bytes() == b"key = changed\n"
    assert not (sub / src.relative_to("/") / "etc" / "big").exists()

    out = io.BytesIO()
    dump(account, snapshot, env.keys.data, base + b"/etc/big", out)
    assert out.getvalue() == (src / "etc" / "big").read_bytes()

    hits = [(vm.backup_id, rec.path) for vm, rec in find(account, "config", env.keys.browse)]
    assert hits == [
        (first.backup_id, base + b"/etc/app/config"),
        (second.backup_id, base + b"/etc/app/config"),
    ]
    older = open_snapshot(account, resolve_snapshot(account, first.backup_id), env.keys.browse)
    out = io.BytesIO()
    dump(account, older, env.keys.data, base + b"/etc/hard", out)
    assert out.getvalue() == b"key = value\n"

    for read_data in (False, True):
        result = check(reader(env), read_data=read_data)
        assert result.errors == []
