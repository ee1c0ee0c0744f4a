"""A sweep landing right before the manifest PUT: the server refuses the manifest, nothing is published.

The engine makes no presence check of its own before publishing; the server checks, in the PUT
itself, that every object the manifest names is stored. The ``before_manifest`` hook deletes a
pack the run reuses at exactly the moment a racing prune's sweep could: after every check the
engine makes and before the manifest goes up.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from crypto.dedup import epoch_tag
from opsbackup.backup.cache import cache_path
from opsbackup.backup.tuning import Hooks
from opsbackup.errors import NotFoundError
from opsbackup.ops.forget import delete_in_batches
from opsbackup.ops.prune import prune
from opsbackup.restore import check
from opsbackup.server.accounts import Scope
from tests.backup.reader import open_backup
from tests.backup.support import backup, small
from tests.backup.trees import make_tree
from tests.client_support import ClientEnv


def _cached_packs(env: ClientEnv) -> set[bytes]:
    db = cache_path(
        env.root / "cache" / "web1", env.account().root_id, "web1", epoch_tag(env.keys.dedup_secret)
    )
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return {bytes(row[0]) for row in conn.execute("SELECT name FROM packs")}
    finally:
        conn.close()


def test_a_pack_swept_just_before_the_manifest_put_is_not_published(env: ClientEnv, tmp_path: Path) -> None:
    src = make_tree(tmp_path)
    with small():
        first = backup(env, src)
    first_opened = open_backup(env.account(Scope.RESTORE), env.keys, "web1", first.backup_id)
    # Forget it: its packs are now unreferenced, exactly what a sweep may delete, and the next run
    # still reuses them from its cache.
    forgot = delete_in_batches(
        env.account(Scope.ADMIN), env.keys.deletion, manifests=[("web1", bytes.fromhex(first.backup_id))]
    )
    assert forgot["deleted_manifests"] == 1
    opened = first_opened
    victim = sorted(p.name for p in opened.root.packs if p.kind == 1 and p.source == 0)[0]
    key = f"accounts/{env.account_id.hex()}/objects/{victim.hex()[:2]}/{victim.hex()}"
    assert victim in _cached_packs(env)
    assert env.account(Scope.RESTORE).repo.list_manifests() == []
    (src / "new.bin").write_bytes(os.urandom(300_000))  # the second run uploads packs and reuses others
    named: list[tuple[bytes, ...]] = []

    def sweep_the_victim(names: tuple[bytes, ...]) -> None:
        named.append(names)
        assert env.server.store.delete(key)  # what a racing prune's sweep does, at the worst moment

    with small(Hooks(before_manifest=sweep_the_victim)), pytest.raises(NotFoundError) as info:
        backup(env, src)
    (names,) = named
    assert victim in names  # the run reused the pack and its manifest would have named it
    message = str(info.value)
    assert message == (
        "1 objects this backup needs vanished from the server while it ran (a prune?); "
        "nothing was published: run the backup again"
    )
    assert info.value.exit_code == 22
    assert env.account(Scope.RESTORE).repo.list_manifests() == []  # nothing was published
    assert victim not in _cached_packs(env)  # the cache forgot the vanished pack
    with small():
        third = backup(env, src)  # its chunks go up again
    assert third.new_chunks > 0
    reopened = open_backup(env.account(Scope.RESTORE), env.keys, "web1", third.backup_id)
    assert victim not in {p.name for p in reopened.root.packs}
    big = os.fsencode(src / "dir" / "sub" / "random.bin")
    assert reopened.content(big[1:]) == (src / "dir" / "sub" / "random.bin").read_bytes()
    # It still reuses the forgotten backup's other packs (whose key envelope prune keeps).
    assert bytes.fromhex(first.backup_id) in {s.backup_id for s in reopened.root.sources}
    result = check(env.account(Scope.ADMIN), read_data=True)
    assert result.ok, result.errors
    assert result.counts["manifests"] == 1


def test_a_real_sweep_racing_the_manifest_put_is_refused_with_the_clear_error(
    env: ClientEnv, tmp_path: Path
) -> None:
    """A forgotten backup's packs and key envelope, marked before the run and swept (one delete
    request) just before its manifest goes up: the run reports the vanished objects, not the
    missing envelope of its source, and the next run is whole."""
    src = make_tree(tmp_path)
    admin = env.account(Scope.ADMIN)
    marks = tmp_path / "marks"
    with small():
        first = backup(env, src)
    delete_in_batches(admin, env.keys.deletion, manifests=[("web1", bytes.fromhex(first.backup_id))])
    t0 = 1_000_000_000.0
    mark = prune(admin, env.keys.deletion, marks_dir=marks, now=t0)
    assert (mark.deleted_objects, mark.marked, mark.marked_envelopes) == (0, mark.objects, 1)
    (src / "new.bin").write_bytes(os.urandom(300_000))
    swept: list[set[bytes]] = []
    reused: list[set[bytes]] = []

    def sweep(names: tuple[bytes, ...]) -> None:
        result = prune(admin, env.keys.deletion, marks_dir=marks, now=t0 + 25 * 3600)
        assert result.deleted_envelopes == 1  # the forgotten backup's envelope goes with its packs
        gone = {bytes.fromhex(n) for n in result.to_delete}
        swept.append(gone)
        reused.append(gone & set(names))

    with small(Hooks(before_manifest=sweep)), pytest.raises(NotFoundError, match="vanished") as info:
        backup(env, src)
    assert len(swept[0]) == mark.objects  # every object of the forgotten backup, none of the run's own
    assert reused[0]
    assert str(info.value).startswith(f"{len(reused[0])} objects this backup needs vanished")
    assert admin.repo.list_manifests() == []  # nothing was published
    assert _cached_packs(env).isdisjoint(swept[0])
    with small():
        again = backup(env, src)
    assert again.new_chunks > 0
    result = check(admin, read_data=True)
    assert result.ok, result.errors
    assert result.counts["manifests"] == 1


def test_a_backup_published_after_prune_read_the_manifests_keeps_what_it_reuses(
    env: ClientEnv, tmp_path: Path
) -> None:
    """The prune-side window: a prune has read the manifests and decided to sweep a forgotten
    backup's packs; a backup that reuses some of them publishes its manifest before the delete
    request arrives. The request names the manifests its plan saw (its basis), so the server keeps
    everything the newer manifest needs, and the prune reports them as kept."""
    src = make_tree(tmp_path)
    admin = env.account(Scope.ADMIN)
    marks = tmp_path / "marks"
    with small():
        first = backup(env, src)
    delete_in_batches(admin, env.keys.deletion, manifests=[("web1", bytes.fromhex(first.backup_id))])
    t0 = 1_000_000_000.0
    mark = prune(admin, env.keys.deletion, marks_dir=marks, now=t0)
    assert mark.marked == mark.objects > 0
    (src / "new.bin").write_bytes(os.urandom(300_000))
    published = []

    def back_up_now() -> None:  # the plan is made: every object of the forgotten backup is due
        with small():
            published.append(backup(env, src))

    result = prune(admin, env.keys.deletion, marks_dir=marks, now=t0 + 25 * 3600, before_delete=back_up_now)
    (second,) = published
    reopened = open_backup(env.account(Scope.RESTORE), env.keys, "web1", second.backup_id)
    reused = {p.name for p in reopened.root.packs if p.source != 0}
    assert reused  # the second run reused packs of the forgotten backup, which the plan had due
    assert {bytes.fromhex(n) for n in result.to_delete} >= reused
    assert result.kept == len(reused) + 1  # + its key envelope, still needed as a source's
    assert result.deleted_objects == len(result.to_delete) - len(reused)
    assert result.deleted_envelopes == 0
    check_result = check(env.account(Scope.ADMIN), read_data=True)
    assert check_result.ok, check_result.errors
    assert check_result.counts["manifests"] == 1
