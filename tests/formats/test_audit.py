"""Audit-log entries (formats/audit.py, docs/spec/audit-log.md)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from formats import audit
from formats.audit import AuditEntry, Outcome
from formats.errors import FormatError
from tests.conftest import load_vectors

VECTORS: Any = load_vectors("audit")

entries = st.builds(
    AuditEntry,
    sequence=st.integers(min_value=1, max_value=2**64 - 1),
    time_us=st.integers(min_value=0, max_value=2**64 - 1),
    previous=st.binary(min_size=32, max_size=32),
    account_id=st.binary(min_size=16, max_size=16),
    credential_id=st.binary(max_size=32),
    remote=st.text(max_size=60),
    method=st.sampled_from(["GET", "PUT", "HEAD", "POST", "DELETE"]),
    path=st.text(max_size=300),
    status=st.integers(min_value=100, max_value=999),
    outcome=st.sampled_from(list(Outcome)),
    reason=st.text(max_size=200),
)


@given(entries)
def test_round_trip_is_canonical(entry: AuditEntry) -> None:
    data = audit.encode(entry)
    assert data[:6] == b"OBAL\x00\x01"
    assert int.from_bytes(data[6:14], "big") == entry.sequence
    assert data[22:54] == entry.previous
    assert audit.decode(data) == entry
    assert audit.encode(audit.decode(data)) == data


@given(entries, st.integers(min_value=0))
def test_every_strict_prefix_is_refused(entry: AuditEntry, cut: int) -> None:
    data = audit.encode(entry)
    with pytest.raises(FormatError):
        audit.decode(data[: cut % len(data)])


def test_entry_hash_is_sha256_of_the_exact_bytes() -> None:
    for v in VECTORS["good"]:
        assert audit.entry_hash(bytes.fromhex(v["hex"])).hex() == v["hash"]
    # the second good vector chains onto the first
    assert VECTORS["good"][1]["previous"] == VECTORS["good"][0]["hash"]


@pytest.mark.parametrize("vector", VECTORS["good"], ids=lambda v: v["name"])
def test_golden_good_vectors(vector: dict[str, Any]) -> None:
    entry = audit.decode(bytes.fromhex(vector["hex"]))
    assert entry.sequence == vector["sequence"]
    assert entry.time_us == vector["time_us"]
    assert entry.previous.hex() == vector["previous"]
    assert entry.account_id.hex() == vector["account_id"]
    assert entry.credential_id.hex() == vector["credential_id"]
    assert (entry.remote, entry.method, entry.path) == (vector["remote"], vector["method"], vector["path"])
    assert (entry.status, int(entry.outcome), entry.reason) == (
        vector["status"],
        vector["outcome"],
        vector["reason"],
    )
    assert audit.encode(entry).hex() == vector["hex"]


@pytest.mark.parametrize("vector", VECTORS["bad"], ids=lambda v: v["name"])
def test_golden_bad_vectors(vector: dict[str, str]) -> None:
    assert vector["error"] == "FormatError"
    with pytest.raises(FormatError, match=vector["match"]):
        audit.decode(bytes.fromhex(vector["hex"]))


def _entry(**kw: Any) -> AuditEntry:
    fields: dict[str, Any] = {
        "sequence": 1,
        "time_us": 0,
        "previous": b"\x01" * 32,
        "account_id": bytes(16),
        "credential_id": b"",
        "remote": "",
        "method": "GET",
        "path": "/",
        "status": 200,
        "outcome": Outcome.ALLOWED,
        "reason": "",
    }
    fields.update(kw)
    return AuditEntry(**fields)


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"sequence": -1}, "u64"),
        ({"status": 99}, "HTTP status"),
        ({"credential_id": bytes(33)}, "credential id"),
        ({"sequence": 0}, "all-zero previous"),
        ({"previous": bytes(31)}, "32 bytes"),
        ({"path": "x" * (audit.MAX_PATH + 1)}, "path"),
        ({"reason": "é" * 513}, "reason"),
        ({"method": "M" * 17}, "method"),
    ],
)
def test_encode_refuses_out_of_range_fields(fields: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        audit.encode(_entry(**fields))
