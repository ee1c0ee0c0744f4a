"""Keyring upload (rollback refused), manifests (create-only, host-signed), ranges, the OpenAPI doc."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.routing import Route

from crypto.keyring import next_keyring_body, open_keyring
from crypto.primitives import sha256
from crypto.private import sign_object
from formats import manifest
from opsbackup.server.accounts import Scope, add_account, issue_credential
from opsbackup.server.app import create_app
from opsbackup.server.common import ApiError
from opsbackup.server.openapi import OPENAPI
from opsbackup.server.routes_objects import parse_range
from tests.manifests import sample_manifest, sample_objects
from tests.server._support import AccountEnv, LiveServer, MemoryStore, live_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with live_server(tmp_path_factory.mktemp("keyring")) as live:
        yield live


def _manifest(
    key: rsa.RSAPrivateKey,
    payload: bytes,
    *,
    account_id: bytes = bytes(16),
    host: str = "web1",
    backup_id: bytes = b"\x11" * 16,
) -> bytes:
    """A signed manifest; ``payload`` makes two manifests with the same ids differ."""
    pack = sha256(payload)
    body = sample_manifest(
        key,
        backup_id=backup_id,
        account_id=account_id,
        keyring_version=1,
        tree_root_pack=pack,
        host_name=host,
        objects=sample_objects((pack, 100)),
    )
    return sign_object(key, manifest.encode(body))


def test_keyring_versions_and_rollback(
    server: LiveServer, env: AccountEnv, rsa4096: rsa.RSAPrivateKey
) -> None:
    admin, host = env.tokens[Scope.ADMIN], env.tokens[Scope.HOST]
    v1 = open_keyring(env.keyring, root_public_key=rsa4096.public_key())
    assert server.call("PUT", "/v1/keyring", admin, data=env.keyring).status_code == 200  # same again
    v2 = sign_object(rsa4096, next_keyring_body(v1, now=int(time.time())))
    r = server.call("PUT", "/v1/keyring", admin, data=v2)
    assert (r.status_code, r.json()) == (201, {"version": 2, "created": True})
    r = server.call("GET", "/v1/keyring", host)
    assert r.content == v2
    assert r.headers["x-opsbackup-keyring-version"] == "2"
    r = server.call("PUT", "/v1/keyring", admin, data=env.keyring)  # version 1 again: rollback
    assert r.status_code == 409
    assert "rollback" in r.json()["error"]
    other_v2 = sign_object(rsa4096, next_keyring_body(v1, now=int(time.time()) + 5))
    r = server.call("PUT", "/v1/keyring", admin, data=other_v2)  # another body as version 2
    assert r.status_code == 409
    r = server.call("PUT", "/v1/keyring", admin, data=v2[:-1] + bytes([v2[-1] ^ 1]))
    assert r.status_code == 400
    assert "root key" in r.json()["error"]
    assert server.call("GET", "/v1/keyring", host).content == v2


def test_account_without_keyring(
    server: LiveServer, rsa4096: rsa.RSAPrivateKey, rsa3072_other: rsa.RSAPrivateKey
) -> None:
    account = add_account(server.store, "nokeyring", rsa4096.public_key())
    token, _ = issue_credential(server.store, account, Scope.ADMIN, "admin")
    assert server.call("GET", "/v1/keyring", token).status_code == 404
    r = server.call("PUT", "/v1/manifests/web1/" + "11" * 16, token, data=_manifest(rsa3072_other, b"m"))
    assert r.status_code == 409
    assert "no keyring" in r.json()["error"]


def test_manifests_are_host_signed_and_create_only(
    server: LiveServer, env: AccountEnv, rsa3072_other: rsa.RSAPrivateKey, rsa3072: rsa.RSAPrivateKey
) -> None:
    host = env.tokens[Scope.HOST]
    acct = env.account.account_id
    path = "/v1/manifests/web1/" + "11" * 16
    # This account has no data or browse key, so no real envelope can exist: store a stand-in
    # (a named fake) where the server looks for the backup's envelope.
    server.store.put(f"accounts/{acct.hex()}/envelopes/{'11' * 16}/{0:020d}", io.BytesIO(b"e"))
    for payload in (b"first", b"chunk index"):  # the server stores only manifests whose objects it holds
        assert server.call("PUT", f"/v1/objects/{sha256(payload).hex()}", host, data=payload).ok
    m1 = _manifest(rsa3072_other, b"first", account_id=acct)
    assert server.call("PUT", path, host, data=m1).status_code == 201
    assert server.call("PUT", path, host, data=m1).status_code == 200
    r = server.call("PUT", path, host, data=_manifest(rsa3072_other, b"replacement", account_id=acct))
    assert r.status_code == 409
    assert "never replaced" in r.json()["error"]
    path2 = "/v1/manifests/web1/" + "22" * 16
    r = server.call(
        "PUT", path2, host, data=_manifest(rsa3072, b"x", account_id=acct, backup_id=b"\x22" * 16)
    )
    assert r.status_code == 403  # signed by the deletion key, not a host key
    # signed by web1's key but claiming to be another host: refused
    other = _manifest(rsa3072_other, b"x", account_id=acct, host="db1", backup_id=b"\x22" * 16)
    r = server.call("PUT", "/v1/manifests/db1/" + "22" * 16, host, data=other)
    assert r.status_code == 403
    assert "another host" in r.json()["error"] or "other than" in r.json()["error"]
    # a valid manifest stored under another name: refused
    r = server.call("PUT", path2, host, data=m1)
    assert r.status_code == 400
    assert "does not match the URL" in r.json()["error"]
    # a manifest of another account: refused
    r = server.call("PUT", path2, host, data=_manifest(rsa3072_other, b"y", backup_id=b"\x22" * 16))
    assert r.status_code == 400
    assert "another account" in r.json()["error"]
    # a body that is not a manifest, even when validly signed by the host key: refused
    junk = sign_object(rsa3072_other, manifest.MAGIC + b"\x00\x01junk")
    assert server.call("PUT", path2, host, data=junk).status_code == 400
    r = server.call("PUT", "/v1/manifests/web1/" + "22" * 16, host, data=b"not signed")
    assert r.status_code == 400
    for bad in ("/v1/manifests/WEB/" + "11" * 16, "/v1/manifests/web1/xyz", "/v1/manifests/a/b/c"):
        assert server.call("PUT", bad, host, data=m1).status_code == 400
    assert server.call("PUT", path, env.tokens[Scope.RESTORE], data=m1).status_code == 403
    r = server.call("GET", "/v1/manifests?host=web1", env.tokens[Scope.RESTORE])
    assert r.json() == {"manifests": [{"host": "web1", "backup_id": "11" * 16}]}
    assert server.call("GET", path, env.tokens[Scope.RESTORE]).content == m1
    assert server.call("GET", "/v1/manifests/web1/" + "33" * 16, host).status_code == 404


def test_parse_range() -> None:
    assert parse_range("bytes=0-9", 100) == (0, 10)
    assert parse_range("bytes=90-", 100) == (90, 10)
    with pytest.raises(ApiError) as empty:
        parse_range("bytes=-5", 0)  # a suffix range of an empty object is unsatisfiable
    assert empty.value.status == 416
    assert parse_range("bytes=-5", 100) == (95, 5)
    assert parse_range("bytes=95-200", 100) == (95, 5)
    for header, status in (
        ("bytes=100-", 416),
        ("bytes=5-1", 400),
        ("items=0-1", 400),
        ("bytes=0-1,3-4", 400),
    ):
        with pytest.raises(ApiError) as info:
            parse_range(header, 100)
        assert info.value.status == status


def test_openapi_documents_every_route() -> None:
    app = create_app(MemoryStore())
    documented = {(path, method.upper()) for path, ops in OPENAPI["paths"].items() for method in ops}
    for route in app.routes:
        assert isinstance(route, Route)
        path = route.path.replace("{name:path}", "{name}").replace("{rest:path}", "{host}/{backup_id}")
        for method in route.methods or ():
            if method == "HEAD" and (path, "GET") in documented:
                continue  # Starlette answers HEAD for every GET route
            assert (path, method) in documented, (path, method)


def test_scopes(server: LiveServer, env: AccountEnv) -> None:
    assert server.call("PUT", "/v1/keyring", env.tokens[Scope.RESTORE], data=b"x").status_code == 403
    r = server.call("POST", "/v1/objects/query", env.tokens[Scope.HOST], json={"names": ["0" * 64] * 10_001})
    assert r.status_code == 413
    r = server.call("POST", "/v1/objects/query", env.tokens[Scope.HOST], data=b"[1,2]")
    assert r.status_code == 400
