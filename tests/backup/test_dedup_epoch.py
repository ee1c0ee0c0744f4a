"""A new dedup epoch (a new dedup secret after a host compromise): quiet, no reuse, nothing lost.

After the account's hosts get a new dedup secret, a backup must not reuse a single chunk of the
old epoch (their ids are keyed by the old secret, which the attacker knows), must not warn about
the old backups' chunk indexes it cannot open, and the old backups must stay restorable.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from crypto.dedup import epoch_tag
from crypto.primitives import random_bytes
from opsbackup.backup import BackupRequest, run_backup
from opsbackup.backup.cache import cache_path
from opsbackup.restore import list_snapshots, open_snapshot, restore
from opsbackup.server.accounts import Scope
from tests.backup.support import backup, object_names, small
from tests.client_support import ClientEnv


def test_a_new_dedup_secret_starts_a_new_epoch(env: ClientEnv, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    content = os.urandom(200_000)
    (src / "f.bin").write_bytes(content)
    with small():
        old = backup(env, src)
    before = object_names(env)

    new_secret = random_bytes(32)
    host = dataclasses.replace(env.host("web1"), dedup_secret=new_secret)
    account = env.account(Scope.HOST, env.root / "state-web1.json")
    with small():
        first = run_backup(account, host, BackupRequest(paths=(src,)))
        account = env.account(Scope.HOST, env.root / "state-web1.json")
        again = run_backup(account, host, BackupRequest(paths=(src,)))
    # Nothing of the old epoch is reused, and the old backup's index is skipped without a warning.
    assert first.reused_chunks == 0
    assert first.new_chunks > 0
    assert not first.warnings
    new_objects = object_names(env) - before
    assert new_objects  # the data went up again under the new epoch
    # Within the new epoch, deduplication works as before.
    assert again.new_chunks == 0
    assert not again.warnings
    # Each epoch has its own cache file.
    cache_dir = env.root / "cache" / "web1"
    root_id = env.account().root_id
    assert cache_path(cache_dir, root_id, "web1", epoch_tag(env.keys.dedup_secret)).exists()
    assert cache_path(cache_dir, root_id, "web1", epoch_tag(new_secret)).exists()
    # Both backups restore.
    reader = env.account(Scope.RESTORE)
    for vm in list_snapshots(reader):
        target = tmp_path / f"t-{vm.backup_id}"
        restore(reader, open_snapshot(reader, vm, env.keys.data), env.keys.data, target)
        assert next(target.rglob("f.bin")).read_bytes() == content
    ids = {vm.backup_id for vm in list_snapshots(reader)}
    assert ids == {old.backup_id, first.backup_id, again.backup_id}
