"""``opsbackup forget`` and ``prune`` through the CLI: dry run signs nothing, then both remove for real."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from opsbackup.backup import BackupRequest, run_backup
from opsbackup.restore import check, list_snapshots
from opsbackup.server.accounts import Scope
from tests.cli._run import run
from tests.client_support import ClientEnv
from tests.ops._support import make_host


def test_forget_then_prune_from_the_command_line(
    env: ClientEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    ids = []
    for _i in range(3):
        (src / "f.bin").write_bytes(os.urandom(200_000))  # each backup has its own data
        ids.append(run_backup(env.account(), env.host("web1"), BackupRequest(paths=(src,))).backup_id)
    config = make_host(env, tmp_path / "admin", scope=Scope.ADMIN, deletion_key=True)
    cli = {
        "OPSBACKUP_PASSPHRASE_FILE": str(tmp_path / "admin" / "passphrase"),
        "XDG_STATE_HOME": str(tmp_path / "xdg"),
    }
    assert run(["forget", "--config", config], env=cli).code == 2  # no rule: refused
    dry = run(["forget", "--config", config, "--keep-last", "1", "--dry-run", "--json"], env=cli)
    assert dry.code == 0, dry.err
    plan = json.loads(dry.out)
    (host,) = plan["hosts"]
    assert [k["backup_id"] for k in host["keep"]] == [ids[2]]
    assert host["keep"][0]["reasons"] == ["last"]
    assert {r["backup_id"] for r in host["remove"]} == set(ids[:2])
    assert len(list_snapshots(env.account(), "web1")) == 3  # the dry run removed nothing
    done = run(["forget", "--config", config, "--keep-last", "1"], env=cli)
    assert done.code == 0, done.err
    assert "2 snapshots removed" in done.text
    assert [vm.backup_id for vm in list_snapshots(env.account(), "web1")] == [ids[2]]
    # the first prune only marks; with --grace 0 a second one sweeps at once
    marked = run(["prune", "--config", config, "--json"], env=cli)
    assert marked.code == 0, marked.err
    first = json.loads(marked.out)
    assert first["deleted_objects"] == 0
    assert first["marked"] == first["unreferenced"] > 0
    swept = run(["prune", "--config", config, "--grace", "0"], env=cli)
    assert swept.code == 0, swept.err
    assert f"deleted {first['unreferenced']} objects" in swept.text
    assert check(env.account(Scope.ADMIN), read_data=True).ok
    wrong = run(["prune", "--config", config], env={**cli, "OPSBACKUP_PASSPHRASE_FILE": str(config)})
    assert wrong.code != 0
    assert wrong.err.count("\n") == 1
