"""The hash-chained audit log: appends under concurrency, and verify naming the first broken entry."""

from __future__ import annotations

import io
import threading
from pathlib import Path

import pytest

from formats import audit
from opsbackup.server.audit_log import SERVER_CHAIN, AuditLog, entry_key, list_chains, verify_chain
from tests.server._support import MemoryStore, chain_entries, make_store

ACCOUNT = bytes(range(16))
CHAIN = ACCOUNT.hex()


def _append(log: AuditLog, n: int, account: bytes | None = ACCOUNT) -> None:
    for i in range(n):
        log.append(
            account_id=account,
            credential_id=b"\x01" * 8,
            remote="127.0.0.1:1",
            method="GET",
            path=f"/v1/objects/{i}",
            status=200 if i % 2 else 403,
            reason="ok" if i % 2 else "refused",
        )


@pytest.fixture
def store(tmp_path: Path) -> MemoryStore:
    return MemoryStore()


def _edit(store: MemoryStore, seq: int, **changes: object) -> None:
    key = entry_key(CHAIN, seq)
    entry = audit.decode(store.read(key))
    fields = {**entry.__dict__, **changes}
    store.overwrite(key, audit.encode(audit.AuditEntry(**fields)))


def test_chain_links_and_verifies(store: MemoryStore) -> None:
    log = AuditLog(store, clock=lambda: 1234.5)
    _append(log, 5)
    _append(log, 2, account=None)
    entries = chain_entries(store, CHAIN)
    assert [e.sequence for e in entries] == list(range(5))
    assert entries[0].previous == audit.ZERO_HASH
    assert entries[0].time_us == 1_234_500_000
    for prev_key, e in zip(list(store.list(f"audit/{CHAIN}/")), entries[1:], strict=False):
        assert e.previous == audit.entry_hash(store.read(prev_key))
    assert list_chains(store) == sorted([CHAIN, SERVER_CHAIN])
    report = verify_chain(store, CHAIN)
    assert report.ok
    assert report.entries == 5
    assert chain_entries(store, SERVER_CHAIN)[0].account_id == audit.NO_ACCOUNT
    # a new AuditLog (another process, another instance) continues the same chain
    _append(AuditLog(store), 1)
    assert verify_chain(store, CHAIN).entries == 6


@pytest.mark.parametrize("seq", [0, 1, 2, 3])
def test_editing_any_entry_is_detected(store: MemoryStore, seq: int) -> None:
    _append(AuditLog(store), 5)
    head = verify_chain(store, CHAIN)
    assert head.head_hash is not None
    _edit(store, seq, status=200, reason="nothing to see")
    report = verify_chain(store, CHAIN)
    assert not report.ok
    assert report.broken_at == seq + 1
    assert "altered or replaced" in report.problem


def test_editing_the_head_is_detected_against_an_anchor(store: MemoryStore) -> None:
    _append(AuditLog(store), 5)
    intact = verify_chain(store, CHAIN)
    assert intact.head_hash is not None
    anchor = (4, intact.head_hash)
    assert verify_chain(store, CHAIN, anchor=anchor).ok
    _edit(store, 4, reason="edited")
    assert verify_chain(store, CHAIN).ok  # nothing after the head vouches for it ...
    report = verify_chain(store, CHAIN, anchor=anchor)  # ... but the anchor does
    assert not report.ok
    assert report.broken_at == 4


def test_deleted_reordered_and_corrupt_entries_are_named(store: MemoryStore) -> None:
    _append(AuditLog(store), 6)
    store.delete(entry_key(CHAIN, 2))
    report = verify_chain(store, CHAIN)
    assert (report.broken_at, "gap" in report.problem) == (2, True)

    other = MemoryStore()
    _append(AuditLog(other), 6)
    a, b = other.read(entry_key(CHAIN, 3)), other.read(entry_key(CHAIN, 4))
    other.overwrite(entry_key(CHAIN, 3), b)
    other.overwrite(entry_key(CHAIN, 4), a)
    report = verify_chain(other, CHAIN)
    assert report.broken_at == 3
    assert "reordered" in report.problem

    third = MemoryStore()
    _append(AuditLog(third), 3)
    third.overwrite(entry_key(CHAIN, 1), b"OBAL garbage")
    report = verify_chain(third, CHAIN)
    assert report.broken_at == 1
    assert "does not decode" in report.problem

    fourth = MemoryStore()
    _append(AuditLog(fourth), 3)
    fourth.delete(entry_key(CHAIN, 0))
    assert verify_chain(fourth, CHAIN).broken_at == 0


def test_concurrent_appends_keep_one_gapless_chain(tmp_path: Path) -> None:
    store = make_store(tmp_path / "store")
    logs = [AuditLog(store) for _ in range(4)]  # four "server instances" over one store
    threads = [threading.Thread(target=_append, args=(logs[i % 4], 25)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    report = verify_chain(store, CHAIN)
    assert report.ok, report.problem
    assert report.entries == 200
    assert [e.sequence for e in chain_entries(store, CHAIN)] == list(range(200))


def test_a_stale_head_hint_chains_onto_the_winner(store: MemoryStore) -> None:
    first, second = AuditLog(store), AuditLog(store)
    _append(first, 1)
    _append(second, 1)  # second loads the head
    _append(first, 3)  # first's hint is now behind second's entry
    _append(second, 2)  # second's hint is behind first's three entries
    assert verify_chain(store, CHAIN).ok
    assert verify_chain(store, CHAIN).entries == 7
    store.put(entry_key(CHAIN, 7), io.BytesIO(b"x"))  # junk where the next entry goes
    assert verify_chain(store, CHAIN).broken_at == 7
