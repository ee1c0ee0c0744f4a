"""Generate tests/vectors/audit.json and tests/vectors/delete_request.json (deterministic).

Run: ``python -m tests.vectors.make_server_vectors``. Good vectors list the fields and the exact
bytes; bad vectors name the error class decoding must raise and a fragment of its message.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from formats import audit, delete_request
from formats.audit import AuditEntry, Outcome
from formats.delete_request import DeleteRequest, ManifestId

HERE = Path(__file__).parent


def _entry(seq: int, previous: bytes, **kw: Any) -> AuditEntry:
    fields: dict[str, Any] = {
        "sequence": seq,
        "time_us": 1_700_000_000_000_000 + seq,
        "previous": previous,
        "account_id": bytes(range(16)),
        "credential_id": bytes.fromhex("0123456789abcdef"),
        "remote": "127.0.0.1:50000",
        "method": "PUT",
        "path": "/v1/objects/" + "ab" * 32,
        "status": 201,
        "outcome": Outcome.ALLOWED,
        "reason": "ok",
    }
    fields.update(kw)
    return AuditEntry(**fields)


def _audit_fields(e: AuditEntry) -> dict[str, Any]:
    return {
        "sequence": e.sequence,
        "time_us": e.time_us,
        "previous": e.previous.hex(),
        "account_id": e.account_id.hex(),
        "credential_id": e.credential_id.hex(),
        "remote": e.remote,
        "method": e.method,
        "path": e.path,
        "status": e.status,
        "outcome": int(e.outcome),
        "reason": e.reason,
    }


def audit_vectors() -> dict[str, Any]:
    e0 = _entry(0, audit.ZERO_HASH)
    b0 = audit.encode(e0)
    e1 = _entry(
        1,
        audit.entry_hash(b0),
        credential_id=b"",
        account_id=audit.NO_ACCOUNT,
        method="DELETE",
        path="/v1/objects/x",
        status=401,
        outcome=Outcome.REFUSED,
        reason="invalid credential: unknown, revoked or malformed token \u00e9",
    )
    b1 = audit.encode(e1)
    good = [
        {
            "name": "entry 0, allowed upload",
            "hex": b0.hex(),
            "hash": audit.entry_hash(b0).hex(),
            **_audit_fields(e0),
        },
        {
            "name": "entry 1, refused, no account",
            "hex": b1.hex(),
            "hash": audit.entry_hash(b1).hex(),
            **_audit_fields(e1),
        },
    ]

    def bad(name: str, data: bytes, match: str) -> dict[str, str]:
        return {"name": name, "hex": data.hex(), "error": "FormatError", "match": match}

    status_at = len(b0) - 2 - 2 - 1 - 2  # reason "ok": u16 len + 2 bytes; outcome u8; status u16
    bads = [
        bad("empty input", b"", "not recognised"),
        bad("wrong magic", b"OBAX" + b0[4:], "not recognised"),
        bad("unsupported version", b0[:4] + b"\x00\x02" + b0[6:], "unsupported format version 2"),
        bad("truncated", b0[:-1], "truncated"),
        bad("trailing byte", b0 + b"\x00", "trailing"),
        bad("entry 0 with a previous hash", b0[:22] + b"\x01" + b0[23:], "all-zero previous"),
        bad("unknown outcome", b0[: status_at + 2] + b"\x09" + b0[status_at + 3 :], "unknown outcome"),
        bad("status out of range", b0[:status_at] + b"\x00\x63" + b0[status_at + 2 :], "not an HTTP status"),
        bad("invalid UTF-8 reason", b0[:-2] + b"\xff\xfe", "invalid UTF-8"),
        bad("credential id too long", b0[:70] + b"\x21" + b0[71:], "exceeds the limit"),
    ]
    return {
        "description": "Audit-log entries (docs/spec/audit-log.md). 'good' decode to their fields and "
        "re-encode to the same bytes; 'hash' is SHA-256 of the bytes (the next entry's previous). "
        "'bad' fail formats.audit.decode with 'error', message containing 'match'.",
        "generator": "tests/vectors/make_server_vectors.py",
        "good": good,
        "bad": bads,
    }


def delete_vectors() -> dict[str, Any]:
    req = DeleteRequest(
        account_id=bytes(range(16)),
        nonce=bytes(range(16, 32)),
        issued_at=1_700_000_000,
        objects=(b"\x01" * 32, b"\x02" * 32),
        manifests=(ManifestId("db1", b"\x05" * 16), ManifestId("web1", b"\x03" * 16)),
        envelopes=(b"\x03" * 16, b"\x04" * 16),
        basis=(ManifestId("db1", b"\x06" * 16), ManifestId("web1", b"\x07" * 16)),
    )
    data = delete_request.encode(req)
    only_envelope = DeleteRequest(
        account_id=bytes(range(16)),
        nonce=bytes(range(32, 48)),
        issued_at=1_700_000_001,
        objects=(),
        manifests=(),
        envelopes=(b"\x09" * 16,),
    )
    good = [
        {
            "name": "two objects, two manifests, two envelopes",
            "hex": data.hex(),
            "account_id": req.account_id.hex(),
            "nonce": req.nonce.hex(),
            "issued_at": req.issued_at,
            "objects": [o.hex() for o in req.objects],
            "manifests": [{"host": m.host, "backup_id": m.backup_id.hex()} for m in req.manifests],
            "envelopes": [e.hex() for e in req.envelopes],
            "basis": [{"host": m.host, "backup_id": m.backup_id.hex()} for m in req.basis],
        },
        {
            "name": "one envelope only",
            "hex": delete_request.encode(only_envelope).hex(),
            "account_id": only_envelope.account_id.hex(),
            "nonce": only_envelope.nonce.hex(),
            "issued_at": only_envelope.issued_at,
            "objects": [],
            "manifests": [],
            "envelopes": [e.hex() for e in only_envelope.envelopes],
            "basis": [],
        },
    ]
    head = 6 + 16 + 16 + 8
    basis_len = 4 + (1 + 3 + 16) + (1 + 4 + 16)
    body, basis = data[:-basis_len], data[-basis_len:]  # basis: count, db1, web1
    objs = body[head + 4 : head + 4 + 64]
    rest = data[head + 4 + 64 :]
    mans = body[: -(4 + 32)]  # everything before the envelope list
    envs = body[-32:]

    def bad(name: str, raw: bytes, match: str) -> dict[str, str]:
        return {"name": name, "hex": raw.hex(), "error": "FormatError", "match": match}

    swapped = objs[32:] + objs[:32]
    dup = objs[:32] * 2
    empty = data[:head] + b"\x00\x00\x00\x00" * 3 + basis  # a basis alone names nothing to delete
    basis_swapped = basis[:4] + basis[4 + 20 :] + basis[4 : 4 + 20]
    rest_m, tail = rest[: -(4 + 32 + basis_len)], rest[-(4 + 32 + basis_len) :]  # manifests; the rest
    m_bad_host = rest_m[:4] + b"\x03DB1" + rest_m[8:] + tail
    m_swapped = rest_m[:4] + rest_m[4 + 20 :] + rest_m[4 : 4 + 20] + tail
    return {
        "description": "Delete request bodies (docs/spec/delete-request.md), unsigned. 'good' decode "
        "to their fields and re-encode to the same bytes; 'bad' fail formats.delete_request.decode.",
        "generator": "tests/vectors/make_server_vectors.py",
        "good": good,
        "bad": [
            bad("empty input", b"", "not recognised"),
            bad("wrong magic", b"OBDX" + data[4:], "not recognised"),
            bad("version 1 (no basis)", data[:4] + b"\x00\x01" + body[6:], "unsupported format version"),
            bad("unsupported version", data[:4] + b"\x00\x03" + data[6:], "unsupported format version"),
            bad("truncated", data[: head - 1], "truncated"),
            bad("trailing byte", data + b"\x00", "trailing"),
            bad("objects unsorted", data[: head + 4] + swapped + rest, "not sorted"),
            bad("objects duplicated", data[: head + 4] + dup + rest, "not sorted"),
            bad("manifests unsorted", data[: head + 4] + objs + m_swapped, "not sorted"),
            bad("upper-case host", data[: head + 4] + objs + m_bad_host, "invalid host"),
            bad("huge object count", data[:head] + b"\xff\xff\xff\xff" + data[head + 4 :], "does not fit"),
            bad("names nothing", empty, "names nothing"),
            bad("envelopes unsorted", mans + b"\x00\x00\x00\x02" + envs[16:] + envs[:16] + basis, "sorted"),
            bad("envelopes duplicated", mans + b"\x00\x00\x00\x02" + envs[:16] * 2 + basis, "not sorted"),
            bad("huge envelope count", mans + b"\x00\x00\x01\x00" + envs + basis, "does not fit"),
            bad("no envelope count", mans, "truncated"),
            bad("no basis count", body, "truncated"),
            bad("basis unsorted", body + basis_swapped, "not sorted"),
            bad("basis duplicated", body + basis[:4] + basis[4:24] * 2, "not sorted"),
            bad("huge basis count", body + b"\x00\x00\x00\x03" + basis[4:], "does not fit"),
        ],
    }


def main() -> None:
    for name, doc in (("audit", audit_vectors()), ("delete_request", delete_vectors())):
        (HERE / f"{name}.json").write_text(
            json.dumps(doc, indent=1, ensure_ascii=False) + "\n", encoding="utf-8"
        )


if __name__ == "__main__":
    main()
