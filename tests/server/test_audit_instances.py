"""One audit chain per account under writers in different processes, on the filesystem and on S3.

Two :class:`AuditLog` instances in this process (each with its own store object, as two server
instances have), then two child processes, append to the same chain at the same time; the chain
must verify, hold every entry exactly once, and no number may be taken twice.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from formats import audit
from opsbackup.server.audit_log import AuditLog, chain_for, entry_key, verify_chain
from opsbackup.storage.base import ObjectStore
from opsbackup.storage.filesystem import FilesystemStore
from opsbackup.storage.s3 import S3Store
from tests.s3_support import S3_ENV, moto_endpoint, new_bucket, s3_client

ACCOUNT = bytes(range(16))
CHAIN = chain_for(ACCOUNT)

# What a child runs: wait for "go" on stdin, append N entries tagged with its name, exit.
_CHILD = """
import json, sys
from opsbackup.server.audit_log import AuditLog
spec = json.loads(sys.argv[1])
if spec["backend"] == "s3":
    from opsbackup.storage.s3 import S3Store
    store = S3Store(spec["bucket"], endpoint=spec["endpoint"], region="us-east-1")
else:
    from opsbackup.storage.filesystem import FilesystemStore
    store = FilesystemStore(spec["root"])
log = AuditLog(store)
sys.stdin.readline()
for i in range(spec["count"]):
    log.append(account_id=bytes(range(16)), credential_id=b"", remote="", method="PUT",
               path="/x", status=200, reason=f"{spec['name']}-{i}")
"""


def _spec_and_factory(backend: str, tmp_path: Path) -> tuple[dict[str, object], Callable[[], ObjectStore]]:
    if backend == "s3":
        bucket = new_bucket()
        return {"backend": "s3", "bucket": bucket, "endpoint": moto_endpoint()}, lambda: S3Store(
            bucket, client=s3_client()
        )
    root = tmp_path / "objects"
    return {"backend": "filesystem", "root": str(root)}, lambda: FilesystemStore(root)


def _reasons(store: ObjectStore) -> list[str]:
    return [audit.decode(store.read(k)).reason for k in store.list(f"audit/{CHAIN}/")]


def _append(log: AuditLog, name: str, count: int, barrier: threading.Barrier) -> None:
    barrier.wait()
    for i in range(count):
        log.append(
            account_id=ACCOUNT, credential_id=b"", remote="", method="PUT", path="/x", status=200,
            reason=f"{name}-{i}",
        )  # fmt: skip


@pytest.mark.parametrize("backend", ["filesystem", "s3"])
def test_two_instances_in_one_process_keep_one_chain(backend: str, tmp_path: Path) -> None:
    _, make = _spec_and_factory(backend, tmp_path)
    count = 20
    logs = {"a": AuditLog(make()), "b": AuditLog(make())}
    logs["a"].append(  # "a" knows the head; "b" learns it only by losing a race
        account_id=ACCOUNT, credential_id=b"", remote="", method="GET", path="/", status=200, reason="first"
    )
    barrier = threading.Barrier(len(logs))
    threads = [threading.Thread(target=_append, args=(log, n, count, barrier)) for n, log in logs.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    store = make()
    report = verify_chain(store, CHAIN)
    assert report.ok, report.problem
    reasons = _reasons(store)
    expected = {"first"} | {f"{n}-{i}" for n in logs for i in range(count)}
    assert len(reasons) == len(expected) == report.entries
    assert set(reasons) == expected
    for name in logs:  # each writer's own entries stay in its order
        mine = [r for r in reasons if r.startswith(f"{name}-")]
        assert mine == [f"{name}-{i}" for i in range(count)]


@pytest.mark.parametrize("backend", ["filesystem", "s3"])
def test_two_processes_keep_one_chain(backend: str, tmp_path: Path) -> None:
    spec, make = _spec_and_factory(backend, tmp_path)
    count = 15
    children = []
    for name in ("p", "q"):
        arg = json.dumps({**spec, "name": name, "count": count})
        children.append(
            subprocess.Popen(
                [sys.executable, "-c", _CHILD, arg],
                stdin=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env={**S3_ENV, "PATH": "/usr/bin:/bin", "PYTHONPATH": str(Path(__file__).parents[2])},
                text=True,
            )
        )
    for child in children:  # both are set up; now let them race
        assert child.stdin is not None
        child.stdin.write("go\n")
        child.stdin.flush()
    for child in children:
        _, err = child.communicate(timeout=120)
        assert child.returncode == 0, err
    store = make()
    report = verify_chain(store, CHAIN)
    assert report.ok, report.problem
    reasons = _reasons(store)
    assert sorted(reasons) == sorted(f"{n}-{i}" for n in "pq" for i in range(count))
    assert report.entries == 2 * count


def test_a_far_behind_instance_finds_the_head_in_few_requests(tmp_path: Path) -> None:
    """An instance whose head hint is 100 entries stale must not read its way through all of them."""
    store = FilesystemStore(tmp_path / "objects")
    stale, busy = AuditLog(store), AuditLog(store)
    kw = {"account_id": ACCOUNT, "credential_id": b"", "remote": "", "method": "GET", "path": "/"}
    stale.append(status=200, reason="stale-0", **kw)  # type: ignore[arg-type]
    for i in range(100):
        busy.append(status=200, reason=f"busy-{i}", **kw)  # type: ignore[arg-type]
    calls = {"exists": 0, "read": 0}
    real_exists, real_read = store.exists, store.read

    def counting_exists(key: str) -> bool:
        calls["exists"] += 1
        return real_exists(key)

    def counting_read(key: str, *, offset: int = 0, length: int | None = None) -> bytes:
        calls["read"] += 1
        return real_read(key, offset=offset, length=length)

    store.exists = counting_exists  # type: ignore[method-assign]
    store.read = counting_read  # type: ignore[method-assign]
    entry = stale.append(status=200, reason="stale-1", **kw)  # type: ignore[arg-type]
    assert entry.sequence == 101
    assert calls["exists"] <= 16, calls
    assert calls["read"] == 1, calls
    assert verify_chain(store, CHAIN).ok
    assert store.read(entry_key(CHAIN, 101))


def test_a_refilled_hole_is_still_reported_broken(tmp_path: Path) -> None:
    """Someone deletes entry 1; a fresh instance's head search (0, 1, ...) lands in the hole."""
    store = FilesystemStore(tmp_path / "objects")
    kw = {"account_id": ACCOUNT, "credential_id": b"", "remote": "", "method": "GET", "path": "/"}
    log = AuditLog(store)
    for i in range(10):
        log.append(status=200, reason=f"r{i}", **kw)  # type: ignore[arg-type]
    assert store.delete(entry_key(CHAIN, 1))
    report = verify_chain(store, CHAIN)
    assert report.broken_at == 1
    assert "missing" in report.problem
    entry = AuditLog(store).append(status=200, reason="after", **kw)  # type: ignore[arg-type]
    assert entry.sequence == 1  # refilled
    report = verify_chain(store, CHAIN)
    assert not report.ok
    assert report.broken_at == 2, report.problem
    assert "previous-entry hash does not match" in report.problem
