"""Keyring versions on the server: exactly current + 1, signed by the current version's active root
(root handover included), any stored version readable, and the trusted root derived statelessly."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from crypto.keyring import next_keyring_body, open_keyring
from crypto.primitives import public_key_id
from crypto.private import sign_object
from formats.errors import WrongKeyError
from formats.roles import Role
from opsbackup.server import keyrings
from opsbackup.server.accounts import Scope
from tests.client_support import AccountKeys
from tests.server._support import LiveServer, MemoryStore, live_server, make_account


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with live_server(tmp_path_factory.mktemp("handover")) as live:
        yield live


def test_root_handover_through_the_api(
    server: LiveServer,
    rsa4096: rsa.RSAPrivateKey,
    rsa3072: rsa.RSAPrivateKey,
    rsa3072_other: rsa.RSAPrivateKey,
    account_keys: AccountKeys,
) -> None:
    env = make_account(server.store, root=rsa4096, host=rsa3072_other, deletion=rsa3072, name="handover")
    admin, host = env.tokens[Scope.ADMIN], env.tokens[Scope.HOST]
    old, new = rsa4096, account_keys.data  # any RSA-4096 key not in this keyring can become the root
    v1 = open_keyring(env.keyring, root_public_key=old.public_key())
    now = int(time.time())

    unstored2 = open_keyring(
        sign_object(old, next_keyring_body(v1, now=now)), root_public_key=old.public_key()
    )
    skip = sign_object(old, next_keyring_body(unstored2, now=now))
    r = server.call("PUT", "/v1/keyring", admin, data=skip)  # version 3 while 1 is current
    assert r.status_code == 409
    assert "skips a version: the next version must be 2" in r.json()["error"]

    body2 = next_keyring_body(v1, add=[(Role.ROOT, new.public_key(), "root 2")], revoke=[v1.root_id], now=now)
    r = server.call("PUT", "/v1/keyring", admin, data=sign_object(new, body2))  # new root signs its handover
    assert r.status_code == 400
    assert "must be signed by the active root key of version 1" in r.json()["error"]
    v2_signed = sign_object(old, body2)
    assert server.call("PUT", "/v1/keyring", admin, data=v2_signed).status_code == 201
    assert server.call("PUT", "/v1/keyring", admin, data=v2_signed).status_code == 200  # idempotent
    v2 = open_keyring(v2_signed, root_public_key=old.public_key())

    body3 = next_keyring_body(v2, add=[(Role.HOST, account_keys.hosts["web2"].public_key(), "web2")], now=now)
    r = server.call("PUT", "/v1/keyring", admin, data=sign_object(old, body3))  # the old root is revoked
    assert r.status_code == 400
    assert "active root key of version 2" in r.json()["error"]
    v3_signed = sign_object(new, body3)
    assert server.call("PUT", "/v1/keyring", admin, data=v3_signed).status_code == 201

    # every stored version can be read, so a client pinned to the old root can walk the handover
    for version, data in ((1, env.keyring), (2, v2_signed), (3, v3_signed)):
        r = server.call("GET", f"/v1/keyring/{version}", host)
        assert (r.status_code, r.content) == (200, data)
        assert r.headers["x-opsbackup-keyring-version"] == str(version)
    assert server.call("GET", "/v1/keyring/4", host).status_code == 404
    for bad in ("0", "01", "x", "-1", "99999999999999999999"):
        assert server.call("GET", f"/v1/keyring/{bad}", host).status_code in (400, 404), bad
    assert server.call("GET", "/v1/keyring/01", host).status_code == 400

    # stateless: a fresh instance (empty cache) derives the root from the stored chain
    keyrings._cache.clear()
    loaded = keyrings.load_keyring(server.store, env.account)
    assert loaded is not None
    assert (loaded.version, loaded.root_id) == (3, public_key_id(new.public_key()))
    assert set(loaded.keys_for(Role.HOST)) == {
        public_key_id(rsa3072_other.public_key()),
        public_key_id(account_keys.hosts["web2"].public_key()),
    }


def test_a_tampered_stored_version_breaks_the_chain(
    rsa4096: rsa.RSAPrivateKey, rsa3072: rsa.RSAPrivateKey, rsa3072_other: rsa.RSAPrivateKey
) -> None:
    store = MemoryStore()
    env = make_account(store, root=rsa4096, host=rsa3072_other, deletion=rsa3072, name="tampered")
    v1 = open_keyring(env.keyring, root_public_key=rsa4096.public_key())
    v2 = sign_object(rsa4096, next_keyring_body(v1, now=int(time.time())))
    keyrings.store_keyring(store, env.account, v2)
    keyrings._cache.clear()
    store.overwrite(f"accounts/{env.account.account_id.hex()}/keyrings/{1:020d}", v2)
    with pytest.raises(WrongKeyError, match="stored as version 1 is version 2"):
        keyrings.load_keyring(store, env.account)
