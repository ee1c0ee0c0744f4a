"""Deletion needs a fresh request signed by the account's deletion key (real server over TLS)."""

from __future__ import annotations

import hashlib
import io
import time
from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from crypto.private import sign_object
from formats import delete_request
from formats.audit import Outcome
from formats.delete_request import ManifestId
from opsbackup.server.accounts import Scope
from opsbackup.server.common import ApiError, manifest_key, object_key
from opsbackup.server.routes_delete import check_delete_request
from tests.server._support import (
    AccountEnv,
    LiveServer,
    chain_entries,
    delete_body,
    live_server,
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with live_server(tmp_path_factory.mktemp("delete")) as live:
        yield live


def _upload(server: LiveServer, env: AccountEnv, data: bytes) -> bytes:
    name = hashlib.sha256(data).hexdigest()
    assert server.call("PUT", f"/v1/objects/{name}", env.tokens[Scope.HOST], data=data).status_code == 201
    return bytes.fromhex(name)


def _refused(server: LiveServer, env: AccountEnv, body: bytes, status: int, words: str) -> None:
    r = server.call("POST", "/v1/delete", env.tokens[Scope.HOST], data=body)
    assert r.status_code == status, r.text
    assert words in r.json()["error"]
    last = chain_entries(server.store, env.account.account_id.hex())[-1]
    assert (last.method, last.path, last.status, last.outcome) == (
        "POST",
        "/v1/delete",
        status,
        Outcome.REFUSED,
    )
    assert last.reason == r.json()["error"]


def test_signed_fresh_delete_works_once_and_a_replay_is_refused(
    server: LiveServer, env: AccountEnv, rsa3072: rsa.RSAPrivateKey
) -> None:
    name = _upload(server, env, b"old backup")
    server.store.put(manifest_key(env.account, "web1", "ab" * 16), io.BytesIO(b"m"))
    body = delete_body(
        rsa3072, env.account.account_id, objects=[name], manifests=[ManifestId("web1", b"\xab" * 16)]
    )
    r = server.call("POST", "/v1/delete", env.tokens[Scope.HOST], data=body)
    assert r.status_code == 200, r.text
    assert r.json() == {
        "deleted_objects": 1,
        "deleted_manifests": 1,
        "deleted_envelopes": 0,
        "missing": 0,
        "kept_objects": 0,
        "kept_envelopes": 0,
        "kept_bytes": 0,
    }
    assert not server.store.exists(object_key(env.account, name.hex()))
    _upload(server, env, b"old backup")  # put it back: the replay must not delete it again
    _refused(server, env, body, 403, "replay")
    assert server.store.exists(object_key(env.account, name.hex()))


def test_unsigned_wrongly_signed_and_other_key_deletes_are_refused(
    server: LiveServer,
    env: AccountEnv,
    rsa3072: rsa.RSAPrivateKey,
    rsa3072_other: rsa.RSAPrivateKey,
    rsa4096: rsa.RSAPrivateKey,
) -> None:
    name = _upload(server, env, b"keep me")
    req = delete_request.DeleteRequest(env.account.account_id, b"\x07" * 16, int(time.time()), (name,), ())
    raw = delete_request.encode(req)
    _refused(server, env, raw, 400, "not a signed delete request")  # unsigned body
    good = sign_object(rsa3072, raw)
    tampered = bytearray(good)
    tampered[-1] ^= 1  # flip a bit of the signature
    _refused(server, env, bytes(tampered), 403, "signature does not verify")
    forged_body = bytearray(good)
    forged_body[60] ^= 1  # alter one byte of the signed body (inside the account id)
    _refused(server, env, bytes(forged_body), 403, "signature does not verify")
    _refused(server, env, sign_object(rsa3072_other, raw), 403, "not signed by a deletion key")  # host key
    _refused(server, env, sign_object(rsa4096, raw), 403, "not signed by a deletion key")  # root key
    assert server.store.exists(object_key(env.account, name.hex()))


def test_stale_or_future_issued_at_is_refused(
    server: LiveServer, env: AccountEnv, rsa3072: rsa.RSAPrivateKey
) -> None:
    name = _upload(server, env, b"not yet")
    for skew in (-3600, +3600, -301):
        body = delete_body(rsa3072, env.account.account_id, objects=[name], issued_at=int(time.time()) + skew)
        _refused(server, env, body, 403, "stale")
    assert server.store.exists(object_key(env.account, name.hex()))


def test_request_for_another_account_is_refused(
    server: LiveServer, env: AccountEnv, rsa3072: rsa.RSAPrivateKey
) -> None:
    name = _upload(server, env, b"elsewhere")
    body = delete_body(rsa3072, b"\x01" * 16, objects=[name])
    _refused(server, env, body, 403, "another account")


def test_window_uses_the_injected_clock(
    env: AccountEnv, server: LiveServer, rsa3072: rsa.RSAPrivateKey
) -> None:
    body = delete_body(rsa3072, env.account.account_id, objects=[b"\x01" * 32], issued_at=1000)
    req = check_delete_request(server.store, env.account, body, now=1100, window=300)
    assert req.issued_at == 1000
    with pytest.raises(ApiError, match="stale"):
        check_delete_request(
            server.store,
            env.account,
            delete_body(rsa3072, env.account.account_id, objects=[b"\x01" * 32], issued_at=1000),
            now=1301,
            window=300,
        )


def test_a_manifest_host_the_server_cannot_store_is_refused_before_anything_is_deleted(
    server: LiveServer, env: AccountEnv, rsa3072: rsa.RSAPrivateKey
) -> None:
    # "web.tmp" is a valid host label in the signed format but never a storage key segment:
    # the whole request must be refused up front, not after the objects were already deleted.
    name = _upload(server, env, b"half a delete")
    nonce = b"\x5a" * 16
    body = delete_body(
        rsa3072,
        env.account.account_id,
        objects=[name],
        manifests=[ManifestId("web.tmp", b"\xcd" * 16)],
        nonce=nonce,
    )
    _refused(server, env, body, 400, "invalid host label")
    assert server.store.exists(object_key(env.account, name.hex()))
    assert not server.store.exists(f"accounts/{env.account.account_id.hex()}/nonces/{nonce.hex()}")
