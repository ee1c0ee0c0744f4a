"""Must-show behaviour against a real uvicorn server over TLS (private CA) on loopback.

A host credential cannot delete or overwrite anything; bad uploads (wrong hash, bad name,
oversized) and missing or wrong credentials are each a clear 4xx with nothing stored; and every
refusal is in the audit log.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator

import pytest
import requests

from formats.audit import Outcome
from opsbackup.server.accounts import Scope
from opsbackup.server.audit_log import SERVER_CHAIN, verify_chain
from opsbackup.server.common import object_key
from tests.server._support import AccountEnv, LiveServer, chain_entries, live_server

LIMIT = 64 * 1024


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with live_server(tmp_path_factory.mktemp("e2e"), max_object_size=LIMIT) as live:
        yield live


def _last_entry_for(server: LiveServer, chain: str, method: str, path: str) -> Outcome:
    matches = [e for e in chain_entries(server.store, chain) if e.method == method and e.path == path]
    assert matches, f"no audit entry for {method} {path}"
    return matches[-1].outcome


def _refused_and_audited(
    server: LiveServer, env: AccountEnv | None, r: requests.Response, status: int, method: str, path: str
) -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    assert r.json()["error"]
    chain = env.account.account_id.hex() if env else SERVER_CHAIN
    entries = [e for e in chain_entries(server.store, chain) if e.method == method and e.path == path]
    assert entries
    assert entries[-1].status == status
    assert entries[-1].outcome is Outcome.REFUSED
    assert entries[-1].reason == r.json()["error"]


def test_upload_is_verified_create_only_and_idempotent(server: LiveServer, env: AccountEnv) -> None:
    host = env.tokens[Scope.HOST]
    data = os.urandom(5000)
    name = hashlib.sha256(data).hexdigest()
    r = server.call("PUT", f"/v1/objects/{name}", host, data=data)
    assert (r.status_code, r.json()["created"]) == (201, True)
    r = server.call("PUT", f"/v1/objects/{name}", host, data=data)
    assert (r.status_code, r.json()["created"]) == (200, False)
    # streamed (chunked) upload
    data2 = os.urandom(40_000)
    name2 = hashlib.sha256(data2).hexdigest()
    r = server.call("PUT", f"/v1/objects/{name2}", host, data=iter([data2[:1000], data2[1000:]]))
    assert r.status_code == 201
    r = server.call(
        "GET", f"/v1/objects/{name2}", env.tokens[Scope.RESTORE], headers={"Range": "bytes=10-19"}
    )
    assert r.status_code == 206
    assert r.content == data2[10:20]
    assert r.headers["content-range"] == f"bytes 10-19/{len(data2)}"
    r = server.call("HEAD", f"/v1/objects/{name2}", env.tokens[Scope.RESTORE])
    assert r.status_code == 200
    assert r.headers["content-length"] == str(len(data2))
    r = server.call("POST", "/v1/objects/query", host, json={"names": [name, name2, "0" * 64]})
    assert r.json() == {"present": sorted([name, name2])}


def test_host_credential_cannot_overwrite_or_delete(server: LiveServer, env: AccountEnv) -> None:
    host = env.tokens[Scope.HOST]
    data = b"precious backup data"
    name = hashlib.sha256(data).hexdigest()
    assert server.call("PUT", f"/v1/objects/{name}", host, data=data).status_code == 201
    path = f"/v1/objects/{name}"
    # overwrite with other bytes: refused, the stored object is untouched
    r = server.call("PUT", path, host, data=b"ransomware")
    _refused_and_audited(server, env, r, 400, "PUT", path)
    # there is no delete verb on objects at all
    for method in ("DELETE", "PATCH", "POST"):
        r = server.call(method, path, host)
        _refused_and_audited(server, env, r, 405, method, path)
    # a delete request without a deletion-key signature
    r = server.call("POST", "/v1/delete", host, data=b"please delete " + name.encode())
    _refused_and_audited(server, env, r, 400, "POST", "/v1/delete")
    # nor can a host replace the keyring (which would let it add its own deletion key)
    r = server.call("PUT", "/v1/keyring", host, data=env.keyring)
    _refused_and_audited(server, env, r, 403, "PUT", "/v1/keyring")
    assert server.store.read(object_key(env.account, name)) == data
    r = server.call("GET", path, env.tokens[Scope.RESTORE])
    assert r.status_code == 200
    assert r.content == data


def test_bad_uploads_are_clear_4xx_and_store_nothing(server: LiveServer, env: AccountEnv) -> None:
    host = env.tokens[Scope.HOST]
    before = set(server.store.list(f"accounts/{env.account.account_id.hex()}/objects/"))
    # a body that does not hash to its name
    claimed = hashlib.sha256(b"what I claim").hexdigest()
    r = server.call("PUT", f"/v1/objects/{claimed}", host, data=b"what I send")
    _refused_and_audited(server, env, r, 400, "PUT", f"/v1/objects/{claimed}")
    assert "hash" in r.json()["error"]
    # oversized: declared length, and streamed without a length
    big = os.urandom(LIMIT + 1)
    big_name = hashlib.sha256(big).hexdigest()
    r = server.call("PUT", f"/v1/objects/{big_name}", host, data=big)
    _refused_and_audited(server, env, r, 413, "PUT", f"/v1/objects/{big_name}")
    r = server.call("PUT", f"/v1/objects/{big_name}", host, data=iter([big[:LIMIT], big[LIMIT:]]))
    _refused_and_audited(server, env, r, 413, "PUT", f"/v1/objects/{big_name}")
    # names with .. or / or other junk
    for raw in ("..", "..%2F..%2Fetc%2Fpasswd", "a%2Fb", "..%2F" + "a" * 61, "A" * 64, "g" * 64, "ab" * 33):
        r = server.call("PUT", f"/v1/objects/{raw}", host, data=b"x")
        assert 400 <= r.status_code < 500, raw
        assert r.json()["error"]
    r = server.call("PUT", "/v1/objects/..%2Faudit%2Fserver%2F00000000000000000000", host, data=b"x")
    assert r.status_code == 400
    assert set(server.store.list(f"accounts/{env.account.account_id.hex()}/objects/")) == before
    assert verify_chain(server.store, env.account.account_id.hex()).ok


def test_missing_or_wrong_credential_is_401_and_audited(server: LiveServer, env: AccountEnv) -> None:
    data = b"no credential"
    name = hashlib.sha256(data).hexdigest()
    path = f"/v1/objects/{name}"
    for headers in (
        {},
        {"Authorization": "Bearer " + "A" * 43},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer " + env.tokens[Scope.HOST][:-1]},
    ):
        r = server.call("PUT", path, data=data, headers=headers)
        _refused_and_audited(server, None, r, 401, "PUT", path)
        assert r.headers["www-authenticate"].startswith("Bearer")
    assert not server.store.exists(object_key(env.account, name))
    # a restore credential may read but not add
    r = server.call("PUT", path, env.tokens[Scope.RESTORE], data=data)
    _refused_and_audited(server, env, r, 403, "PUT", path)
    assert not server.store.exists(object_key(env.account, name))


def test_every_request_is_audited_and_the_chains_verify(server: LiveServer, env: AccountEnv) -> None:
    r = server.call("GET", "/v1/openapi.json")
    assert r.status_code == 200
    assert r.json()["openapi"].startswith("3.1")
    assert _last_entry_for(server, SERVER_CHAIN, "GET", "/v1/openapi.json") is Outcome.ALLOWED
    r = server.call("GET", "/v1/keyring", env.tokens[Scope.HOST])
    assert r.status_code == 200
    assert r.content == env.keyring
    assert _last_entry_for(server, env.account.account_id.hex(), "GET", "/v1/keyring") is Outcome.ALLOWED
    for chain in (SERVER_CHAIN, env.account.account_id.hex()):
        report = verify_chain(server.store, chain)
        assert report.ok, report.problem
        assert report.entries > 0
