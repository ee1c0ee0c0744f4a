"""Prune by mark and sweep, with a backup running at the same time: nothing it needs is lost."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from opsbackup.backup import BackupRequest, run_backup
from opsbackup.backup.tuning import Hooks, tuned
from opsbackup.ops.forget import delete_in_batches
from opsbackup.ops.prune import list_objects, prune
from opsbackup.restore import check, list_snapshots
from opsbackup.server.accounts import Scope
from tests.client_support import ClientEnv

HOUR = 3600.0


def _data(root: Path, name: str, size: int = 400_000) -> Path:
    d = root / name
    d.mkdir(parents=True)
    for i in range(3):
        (d / f"f{i}.bin").write_bytes(os.urandom(size))
    return d


def test_prune_with_a_concurrent_backup_loses_nothing(env: ClientEnv, tmp_path: Path) -> None:
    host = env.host("web1")
    admin = env.account(Scope.ADMIN)
    deletion = env.keys.deletion
    marks = tmp_path / "marks"
    with tuned(pack_target=64 * 1024):
        a = run_backup(env.account(), host, BackupRequest(paths=(_data(tmp_path, "a"),)))
        b = run_backup(env.account(), host, BackupRequest(paths=(_data(tmp_path, "b"),)))
    assert delete_in_batches(admin, deletion, manifests=[("web1", bytes.fromhex(a.backup_id))]) == {
        "deleted_objects": 0,
        "deleted_manifests": 1,
        "missing": 0,
    }
    # Backup C starts and stops after its first pack is up: packs on the server, no manifest yet.
    uploaded, go = threading.Event(), threading.Event()

    def pause(name: bytes, created: bool) -> None:
        if not uploaded.is_set():
            uploaded.set()
            assert go.wait(60)

    results: list[object] = []
    src_c = _data(tmp_path, "c")
    with tuned(pack_target=64 * 1024, hooks=Hooks(after_pack_upload=pause)):
        thread = threading.Thread(
            target=lambda: results.append(run_backup(env.account(), host, BackupRequest(paths=(src_c,))))
        )
        thread.start()
        assert uploaded.wait(60)
        t0 = 1_000_000_000.0
        first = prune(admin, deletion, marks_dir=marks, now=t0)  # the mark: deletes nothing
        go.set()
        thread.join()
    assert first.deleted_objects == 0
    assert first.unreferenced == first.marked > 0
    (c,) = results
    # Backup D re-uses A's chunks (the forgotten backup's packs) after the mark, and finishes.
    d = run_backup(env.account(), host, BackupRequest(paths=(tmp_path / "a",)))
    assert d.new_chunks == 0  # every data chunk came from A's packs
    # Within the grace nothing goes; after it, only what is still unreferenced goes.
    assert prune(admin, deletion, marks_dir=marks, now=t0 + HOUR).deleted_objects == 0
    dry = prune(admin, None, marks_dir=marks, now=t0 + 25 * HOUR, dry_run=True)
    swept = prune(admin, deletion, marks_dir=marks, now=t0 + 25 * HOUR)
    assert swept.deleted_objects == len(dry.to_delete) > 0
    assert swept.deleted_bytes > 0
    assert swept.deleted_objects < first.marked  # C's packs and A's data packs were referenced again
    present = {name for name, _ in list_objects(admin)}
    for vm in list_snapshots(admin):
        assert {o.name for o in vm.manifest.objects} <= present, vm.backup_id
    left = {vm.backup_id for vm in list_snapshots(admin, "web1")}
    assert left == {b.backup_id, c.backup_id, d.backup_id}  # type: ignore[attr-defined]
    result = check(admin, read_data=True)
    assert result.ok, result.errors
    # Nothing is left to free: a further prune deletes nothing and marks nothing.
    again = prune(admin, deletion, marks_dir=marks, now=t0 + 50 * HOUR)
    assert again.unreferenced == 0
    assert again.deleted_objects == 0


def test_object_listing_pages_and_refuses_host_credentials(env: ClientEnv, tmp_path: Path) -> None:
    with tuned(pack_target=64 * 1024):
        run_backup(env.account(), env.host("web2"), BackupRequest(paths=(_data(tmp_path, "l"),)))
    names = [n for n, _ in list_objects(env.account(Scope.RESTORE))]
    assert names == sorted(names)
    assert len(names) > 3
    token = env.tokens[Scope.ADMIN]
    first = env.server.call("GET", "/v1/objects?limit=2", token).json()
    assert [o["name"] for o in first["objects"]] == [n.hex() for n in names[:2]]
    assert first["next"] == names[1].hex()
    second = env.server.call("GET", f"/v1/objects?limit=2&after={first['next']}", token).json()
    assert [o["name"] for o in second["objects"]] == [n.hex() for n in names[2:4]]
    assert all(isinstance(o["size"], int) and o["size"] > 0 for o in second["objects"])
    assert env.server.call("GET", "/v1/objects", env.tokens[Scope.HOST]).status_code == 403
    assert env.server.call("GET", "/v1/objects?after=zz", token).status_code == 400
    assert env.server.call("GET", "/v1/objects?limit=0", token).status_code == 400
