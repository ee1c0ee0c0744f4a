"""Prune by mark and sweep, with a backup running at the same time: nothing it needs is lost."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from opsbackup.backup import BackupRequest, run_backup
from opsbackup.backup.keys import make_backup_keys
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
        "deleted_envelopes": 0,  # forget deletes manifests only; prune frees the envelopes
        "missing": 0,
        "kept_objects": 0,
        "kept_envelopes": 0,
        "kept_bytes": 0,
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
    envelopes = set(admin.repo.list_envelopes())
    for vm in list_snapshots(admin):  # every remaining backup keeps its envelope and its sources'
        assert {vm.manifest.backup_id, *vm.manifest.sources} <= envelopes, vm.backup_id
    assert bytes.fromhex(a.backup_id) in envelopes  # D reuses A's packs: A's keys must stay
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


def test_prune_sweeps_envelopes_no_remaining_backup_needs(env: ClientEnv, tmp_path: Path) -> None:
    host = env.host("web2")
    admin = env.account(Scope.ADMIN)
    deletion = env.keys.deletion
    marks = tmp_path / "marks"
    with tuned(pack_target=64 * 1024):
        gone = run_backup(env.account(), host, BackupRequest(paths=(_data(tmp_path, "g"),)))
        kept = run_backup(env.account(), host, BackupRequest(paths=(_data(tmp_path, "k"),)))
    kept_manifest = next(vm for vm in list_snapshots(admin, "web2") if vm.backup_id == kept.backup_id)
    assert bytes.fromhex(gone.backup_id) not in kept_manifest.manifest.sources  # nothing shared
    delete_in_batches(admin, deletion, manifests=[("web2", bytes.fromhex(gone.backup_id))])
    # An in-flight backup: its envelope is up, its manifest not yet (the order every backup uses).
    in_flight = make_backup_keys()
    admin.repo.put_envelope(in_flight.backup_id, in_flight.envelope(admin.keyring, host.signing_key))
    before = set(admin.repo.list_envelopes())
    assert {bytes.fromhex(gone.backup_id), bytes.fromhex(kept.backup_id), in_flight.backup_id} <= before
    t0 = 2_000_000_000.0
    first = prune(admin, deletion, marks_dir=marks, now=t0)
    assert first.deleted_envelopes == 0
    assert first.unreferenced_envelopes == first.marked_envelopes >= 2
    assert set(admin.repo.list_envelopes()) == before  # the mark deletes nothing
    dry = prune(admin, None, marks_dir=marks, now=t0 + 25 * HOUR, dry_run=True)
    assert {bytes.fromhex(gone.backup_id).hex(), in_flight.backup_id.hex()} <= set(dry.envelopes_to_delete)
    assert kept.backup_id not in dry.envelopes_to_delete
    swept = prune(admin, deletion, marks_dir=marks, now=t0 + 25 * HOUR)
    assert swept.deleted_envelopes == len(dry.envelopes_to_delete) >= 2
    assert swept.to_json()["deleted_envelopes"] == swept.deleted_envelopes
    after = set(admin.repo.list_envelopes())
    assert bytes.fromhex(gone.backup_id) not in after
    assert in_flight.backup_id not in after  # a "backup" that never finished within the grace
    assert bytes.fromhex(kept.backup_id) in after
    for vm in list_snapshots(admin):
        assert {vm.manifest.backup_id, *vm.manifest.sources} <= after, vm.backup_id
    assert prune(admin, deletion, marks_dir=marks, now=t0 + 50 * HOUR).unreferenced_envelopes == 0
