"""formats.keyring: golden bodies, strict decoding, canonical order and the one-root rule."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from formats import keyring as kr
from formats._wire import Writer
from formats.errors import FormatError
from formats.roles import ASYMMETRIC_ROLES, Role
from tests.conftest import load_vectors

VECTORS: dict[str, Any] = load_vectors("keyring")
BODY1 = bytes.fromhex(VECTORS["valid"][0]["body"])


@pytest.mark.parametrize("vec", VECTORS["valid"], ids=lambda v: v["name"])
def test_valid_bodies_decode_and_reencode(vec: dict[str, Any]) -> None:
    raw = bytes.fromhex(vec["body"])
    body = kr.decode(raw)
    assert body.version == vec["version"]
    assert body.account_id.hex() == vec["account_id"]
    assert kr.encode(body) == raw
    revoked = {e.key_id.hex(): e.revoked_at for e in body.entries if e.revoked_at is not None}
    assert revoked == vec.get("revoked", {})
    heads = {e.key_id.hex(): e.trusted_head.hex() for e in body.entries if e.trusted_head != kr.NO_HEAD}
    assert heads == vec.get("trusted_heads", {})
    pgp = {e.key_id.hex(): e.public_bytes.hex() for e in body.entries if e.kind is kr.KeyKind.OPENPGP}
    assert pgp == vec.get("openpgp", {})


def test_layout_offsets() -> None:
    body = kr.decode(BODY1)
    assert BODY1[:6] == b"OBKR\x00\x01"
    assert BODY1[6:22] == body.account_id
    assert int.from_bytes(BODY1[22:30], "big") == 1
    assert int.from_bytes(BODY1[30:38], "big") == body.created
    assert int.from_bytes(BODY1[38:40], "big") == len(body.entries) == 3
    assert BODY1[40] == Role.ROOT
    assert BODY1[41] == kr.KeyKind.RSA
    assert BODY1[42:74] == body.entries[0].key_id
    # each entry ends with its 32-byte last trusted manifest: zeros in version 1
    assert BODY1[-32:] == kr.NO_HEAD


def _entry_bytes(
    role: int,
    key_id: bytes,
    status: int = 0,
    revoked: int = 0,
    der: bytes = b"k",
    kind: int = 1,
    head: bytes = kr.NO_HEAD,
) -> bytes:
    w = Writer().u8(role).u8(kind).raw(key_id).utf8_16("x").bytes16(der).u8(status).u64(revoked)
    return w.raw(head).getvalue()


def _body(*entries: bytes, version: int = 1, count: int | None = None) -> bytes:
    w = (
        Writer()
        .header(b"OBKR", 1)
        .raw(bytes(16))
        .u64(version)
        .u64(0)
        .u16(len(entries) if count is None else count)
    )
    return w.getvalue() + b"".join(entries)


ROOT = _entry_bytes(1, bytes([1]) * 32)


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(_body(ROOT, version=0), id="version 0"),
        pytest.param(_body(), id="no entries"),
        pytest.param(
            _body(ROOT, _entry_bytes(4, bytes(32)), _entry_bytes(2, bytes(32))), id="unsorted roles"
        ),
        pytest.param(
            _body(ROOT, _entry_bytes(4, bytes([9]) * 32), _entry_bytes(4, bytes(32))), id="unsorted ids"
        ),
        pytest.param(_body(ROOT, _entry_bytes(4, bytes(32)), _entry_bytes(4, bytes(32))), id="duplicate"),
        pytest.param(_body(ROOT, _entry_bytes(2, bytes([1]) * 32)), id="one key in two roles"),
        pytest.param(_body(_entry_bytes(2, bytes(32))), id="no root"),
        pytest.param(_body(ROOT, _entry_bytes(1, bytes([2]) * 32)), id="two active roots"),
        pytest.param(_body(_entry_bytes(1, bytes(32), 1, 5)), id="only a revoked root"),
        pytest.param(_body(ROOT, _entry_bytes(6, bytes(32))), id="dedup role"),
        pytest.param(_body(ROOT, _entry_bytes(7, bytes(32))), id="unknown role"),
        pytest.param(_body(ROOT, _entry_bytes(4, bytes(32), 2, 5)), id="unknown status"),
        pytest.param(_body(ROOT, _entry_bytes(4, bytes(32), 0, 5)), id="active with a time"),
        pytest.param(_body(ROOT, _entry_bytes(4, bytes(32), 1, 0)), id="revoked without a time"),
        pytest.param(_body(ROOT, _entry_bytes(4, bytes(32), der=b"")), id="empty public key"),
        pytest.param(_body(ROOT, count=2), id="count too large"),
        pytest.param(_body(ROOT, count=60000), id="hostile count"),
        pytest.param(_body(ROOT) + b"\0", id="trailing byte"),
        pytest.param(_body(ROOT)[:-1], id="truncated"),
        pytest.param(b"OBKX" + _body(ROOT)[4:], id="wrong magic"),
        pytest.param(_body(ROOT)[:4] + b"\0\2" + _body(ROOT)[6:], id="version 2 format"),
        pytest.param(_body(ROOT, _entry_bytes(2, bytes(32), kind=0)), id="kind 0"),
        pytest.param(_body(ROOT, _entry_bytes(2, bytes(32), kind=3)), id="kind 3"),
        pytest.param(_body(ROOT, _entry_bytes(4, bytes(32), kind=2)), id="OpenPGP host key"),
        pytest.param(_body(ROOT, _entry_bytes(5, bytes(32), kind=2)), id="OpenPGP deletion key"),
        pytest.param(_body(_entry_bytes(1, bytes(32), kind=2)), id="OpenPGP root key"),
        pytest.param(_body(ROOT, _entry_bytes(2, bytes(32), der=bytes(2049))), id="RSA key of 2049 bytes"),
        pytest.param(
            _body(ROOT, _entry_bytes(2, bytes(32), der=bytes(8193), kind=2)), id="OpenPGP key of 8193 bytes"
        ),
        pytest.param(_body(ROOT, _entry_bytes(4, bytes(32), head=b"\1" * 32)), id="head on an active host"),
        pytest.param(
            _body(ROOT, _entry_bytes(2, bytes(32), 1, 5, head=b"\1" * 32)), id="head on a revoked data key"
        ),
        pytest.param(_body(_entry_bytes(1, bytes(32), head=b"\1" * 32)), id="head on the root"),
    ],
)
def test_malformed_bodies_are_format_errors(raw: bytes) -> None:
    with pytest.raises(FormatError) as info:
        kr.decode(raw)
    assert str(info.value)
    assert "\n" not in str(info.value)


def test_a_minimal_body_decodes() -> None:
    body = kr.decode(_body(ROOT))
    assert body.entries == (kr.Entry(Role.ROOT, bytes([1]) * 32, "x", b"k", None),)


def test_openpgp_and_trusted_head_entries_decode() -> None:
    pgp = _entry_bytes(2, bytes([2]) * 32, der=bytes(8192), kind=2)
    host = _entry_bytes(4, bytes([3]) * 32, 1, 5, head=b"\7" * 32)
    body = kr.decode(_body(ROOT, pgp, host))
    assert body.entries[1] == kr.Entry(Role.DATA, bytes([2]) * 32, "x", bytes(8192), None, kr.KeyKind.OPENPGP)
    assert body.entries[2].trusted_head == b"\7" * 32
    assert body.entries[2].revoked_at == 5


@st.composite
def bodies(draw: st.DrawFn) -> kr.KeyringBody:
    ids = draw(st.lists(st.binary(min_size=32, max_size=32), min_size=1, max_size=8, unique=True))
    entries = [
        kr.Entry(Role.ROOT, ids[0], draw(st.text(max_size=20)), draw(st.binary(min_size=1, max_size=50)))
    ]
    for key_id in ids[1:]:
        role = draw(st.sampled_from(sorted(ASYMMETRIC_ROLES)))
        revoked = draw(st.one_of(st.none(), st.integers(1, 2**64 - 1)))
        if role is Role.ROOT and revoked is None:
            revoked = 1
        der = draw(st.binary(min_size=1, max_size=50))
        kind = draw(st.sampled_from(list(kr.KeyKind))) if role in kr.OPENPGP_ROLES else kr.KeyKind.RSA
        head = kr.NO_HEAD
        if role is Role.HOST and revoked is not None:
            head = draw(st.binary(min_size=32, max_size=32))
        entries.append(kr.Entry(role, key_id, draw(st.text(max_size=20)), der, revoked, kind, head))
    return kr.KeyringBody(
        account_id=draw(st.binary(min_size=16, max_size=16)),
        version=draw(st.integers(1, 2**64 - 1)),
        created=draw(st.integers(0, 2**64 - 1)),
        entries=tuple(sorted(entries, key=lambda e: (e.role, e.key_id))),
    )


@given(bodies())
def test_round_trip(body: kr.KeyringBody) -> None:
    raw = kr.encode(body)
    assert kr.decode(raw) == body
    assert kr.encode(kr.decode(raw)) == raw


@given(st.binary(max_size=400))
def test_arbitrary_bytes_decode_strictly_or_raise_format_error(data: bytes) -> None:
    try:
        body = kr.decode(data)
    except FormatError:
        return
    assert kr.encode(body) == data


def test_encode_refuses_bodies_that_break_the_rules() -> None:
    root = kr.Entry(Role.ROOT, bytes(32), "r", b"k")
    host = kr.Entry(Role.HOST, bytes([1]) * 32, "h", b"k")
    with pytest.raises(ValueError, match="sorted"):
        kr.encode(kr.KeyringBody(bytes(16), 1, 0, (host, root)))
    with pytest.raises(ValueError, match="exactly one active root"):
        kr.encode(kr.KeyringBody(bytes(16), 1, 0, (host,)))
    with pytest.raises(ValueError, match="public keys only"):
        kr.encode(kr.KeyringBody(bytes(16), 1, 0, (root, kr.Entry(Role.DEDUP, bytes([2]) * 32, "d", b"k"))))
    pgp_host = kr.Entry(Role.HOST, bytes([1]) * 32, "h", b"k", None, kr.KeyKind.OPENPGP)
    with pytest.raises(ValueError, match="data and browse only"):
        kr.encode(kr.KeyringBody(bytes(16), 1, 0, (root, pgp_host)))
    headed = kr.Entry(Role.HOST, bytes([1]) * 32, "h", b"k", None, kr.KeyKind.RSA, b"\1" * 32)
    with pytest.raises(ValueError, match="only a revoked host key"):
        kr.encode(kr.KeyringBody(bytes(16), 1, 0, (root, headed)))
    with pytest.raises(ValueError, match="out of range"):
        kr.encode(
            kr.KeyringBody(bytes(16), 1, 0, (root, kr.Entry(Role.DATA, bytes([1]) * 32, "d", bytes(2049))))
        )
