"""Delete request bodies (formats/delete_request.py, docs/spec/delete-request.md)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from formats import delete_request
from formats.delete_request import DeleteRequest, ManifestId
from formats.errors import FormatError
from tests.conftest import load_vectors

VECTORS: Any = load_vectors("delete_request")

manifest_ids = st.builds(
    ManifestId,
    host=st.from_regex(delete_request.HOST_RE, fullmatch=True),
    backup_id=st.binary(min_size=16, max_size=16),
)


@st.composite
def requests(draw: st.DrawFn) -> DeleteRequest:
    objects = draw(st.sets(st.binary(min_size=32, max_size=32), max_size=8))
    manifests = draw(st.sets(manifest_ids, max_size=5))
    envelopes = draw(
        st.sets(st.binary(min_size=16, max_size=16), max_size=5, min_size=0 if objects or manifests else 1)
    )
    return DeleteRequest(
        account_id=draw(st.binary(min_size=16, max_size=16)),
        nonce=draw(st.binary(min_size=16, max_size=16)),
        issued_at=draw(st.integers(min_value=0, max_value=2**64 - 1)),
        objects=tuple(sorted(objects)),
        manifests=tuple(sorted(manifests)),
        envelopes=tuple(sorted(envelopes)),
        basis=tuple(sorted(draw(st.sets(manifest_ids, max_size=5)))),
    )


@given(requests())
def test_round_trip_is_canonical(req: DeleteRequest) -> None:
    data = delete_request.encode(req)
    assert data[:6] == b"OBDR\x00\x02"
    assert data[6:22] == req.account_id
    assert data[22:38] == req.nonce
    assert delete_request.decode(data) == req
    assert delete_request.encode(delete_request.decode(data)) == data


@given(requests(), st.integers(min_value=0))
def test_every_strict_prefix_is_refused(req: DeleteRequest, cut: int) -> None:
    data = delete_request.encode(req)
    with pytest.raises(FormatError):
        delete_request.decode(data[: cut % len(data)])


@pytest.mark.parametrize("vector", VECTORS["good"], ids=lambda v: v["name"])
def test_golden_good_vectors(vector: dict[str, Any]) -> None:
    req = delete_request.decode(bytes.fromhex(vector["hex"]))
    assert req.account_id.hex() == vector["account_id"]
    assert req.nonce.hex() == vector["nonce"]
    assert req.issued_at == vector["issued_at"]
    assert [o.hex() for o in req.objects] == vector["objects"]
    assert [{"host": m.host, "backup_id": m.backup_id.hex()} for m in req.manifests] == vector["manifests"]
    assert [e.hex() for e in req.envelopes] == vector["envelopes"]
    assert [{"host": m.host, "backup_id": m.backup_id.hex()} for m in req.basis] == vector["basis"]
    assert delete_request.encode(req).hex() == vector["hex"]


@pytest.mark.parametrize("vector", VECTORS["bad"], ids=lambda v: v["name"])
def test_golden_bad_vectors(vector: dict[str, str]) -> None:
    assert vector["error"] == "FormatError"
    with pytest.raises(FormatError, match=vector["match"]):
        delete_request.decode(bytes.fromhex(vector["hex"]))


def _req(**kw: Any) -> DeleteRequest:
    fields: dict[str, Any] = {
        "account_id": bytes(16),
        "nonce": bytes(16),
        "issued_at": 1,
        "objects": (b"\x01" * 32,),
        "manifests": (),
    }
    fields.update(kw)
    return DeleteRequest(**fields)


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"objects": ()}, "at least one"),
        ({"objects": (b"\x02" * 32, b"\x01" * 32)}, "sorted"),
        ({"objects": (b"\x01" * 32, b"\x01" * 32)}, "sorted"),
        ({"objects": (b"\x01" * 31,)}, "32 bytes"),
        ({"manifests": (ManifestId("../etc", bytes(16)),)}, "invalid manifest id"),
        ({"manifests": (ManifestId("b", bytes(16)), ManifestId("a", bytes(16)))}, "sorted"),
        ({"nonce": bytes(15)}, "16 bytes"),
        ({"issued_at": -1}, "u64"),
        ({"envelopes": (b"\x02" * 16, b"\x01" * 16)}, "sorted"),
        ({"envelopes": (b"\x01" * 16, b"\x01" * 16)}, "sorted"),
        ({"envelopes": (b"\x01" * 15,)}, "16 bytes"),
        ({"objects": (), "envelopes": tuple(i.to_bytes(16, "big") for i in range(100_001))}, "at most"),
        ({"basis": (ManifestId("b", bytes(16)), ManifestId("a", bytes(16)))}, "basis .*sorted"),
        ({"basis": (ManifestId("a", bytes(16)), ManifestId("a", bytes(16)))}, "basis .*sorted"),
        ({"basis": (ManifestId("a", bytes(15)),)}, "invalid manifest id"),
        ({"objects": (), "basis": (ManifestId("a", bytes(16)),)}, "at least one"),
    ],
)
def test_encode_refuses_invalid_requests(fields: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        delete_request.encode(_req(**fields))


def test_envelopes_follow_the_manifests_and_count_toward_the_limit() -> None:
    req = _req(objects=(), envelopes=(b"\x01" * 16, b"\x02" * 16))
    data = delete_request.encode(req)
    assert data[46:50] == bytes(4)  # no objects
    assert data[50:54] == bytes(4)  # no manifests
    assert data[54:58] == (2).to_bytes(4, "big")
    assert data[58:90] == b"\x01" * 16 + b"\x02" * 16
    assert data[90:] == bytes(4)  # an empty basis
    assert delete_request.decode(data) == req
    # 99 999 objects plus 2 envelopes: past MAX_ITEMS although each list alone is within it.
    objects = tuple(i.to_bytes(32, "big") for i in range(delete_request.MAX_ITEMS - 1))
    crowded = delete_request.encode(_req(objects=objects)).removesuffix(bytes(8))
    body = crowded + (2).to_bytes(4, "big") + b"\x01" * 16 + b"\x02" * 16 + bytes(4)
    with pytest.raises(FormatError, match="exceed the limit"):
        delete_request.decode(body)


def test_the_basis_comes_last_and_does_not_count_toward_the_item_limit() -> None:
    basis = tuple(ManifestId("h", i.to_bytes(16, "big")) for i in range(3))
    objects = tuple(i.to_bytes(32, "big") for i in range(delete_request.MAX_ITEMS))
    req = _req(objects=objects, basis=basis)
    data = delete_request.encode(req)  # MAX_ITEMS objects and a basis: within the limits
    tail = b"".join(b"\x01h" + m.backup_id for m in basis)
    assert data.endswith((3).to_bytes(4, "big") + tail)
    assert delete_request.decode(data).basis == basis
    over = (delete_request.MAX_BASIS + 1).to_bytes(4, "big")
    with pytest.raises(FormatError, match="exceeds the limit"):
        delete_request.decode(data[: -len(tail) - 4] + over + tail * ((delete_request.MAX_BASIS + 3) // 3))
