"""Signed manifests and uploads for the server's manifest tests (real server, real signatures)."""

from __future__ import annotations

import io

import requests

from crypto.primitives import random_bytes, sha256
from crypto.private import sign_object
from formats import manifest
from formats.manifest import StoredObject
from opsbackup.server.accounts import Scope, get_account
from opsbackup.server.common import envelope_prefix, manifest_key
from opsbackup.server.keyrings import load_keyring
from tests.client_support import ClientEnv
from tests.manifests import sample_manifest

MISSING = "X-Opsbackup-Missing-Objects"


def payloads_of(n: int) -> list[bytes]:
    return [random_bytes(100 + i) for i in range(n)]


def signed_manifest(env: ClientEnv, bid: bytes, payloads: list[bytes]) -> bytes:
    """A host-signed manifest listing the objects ``payloads`` would be stored as (the first two
    as its tree root pack and chunk index), with a stand-in key envelope stored for it."""
    account = get_account(env.server.store, env.account_id)
    keyring = load_keyring(env.server.store, account)
    assert keyring is not None
    env.server.store.put(envelope_prefix(account, bid.hex()) + f"{0:020d}", io.BytesIO(b"stand-in"))
    objects = tuple(sorted((StoredObject(sha256(p), len(p)) for p in payloads), key=lambda o: o.name))
    host = env.keys.hosts["web1"]
    body = sample_manifest(
        host,
        backup_id=bid,
        account_id=env.account_id,
        host_name="web1",
        keyring_version=keyring.version,
        tree_root_pack=sha256(payloads[0]),
        chunk_index=sha256(payloads[1]),
        objects=objects,
    )
    return sign_object(host, manifest.encode(body))


def upload(env: ClientEnv, *payloads: bytes) -> None:
    for p in payloads:
        r = env.server.call("PUT", f"/v1/objects/{sha256(p).hex()}", env.tokens[Scope.HOST], data=p)
        assert r.status_code == 201, r.text


def put_manifest(env: ClientEnv, bid: bytes, data: bytes) -> requests.Response:
    return env.server.call("PUT", f"/v1/manifests/web1/{bid.hex()}", env.tokens[Scope.HOST], data=data)


def manifest_stored(env: ClientEnv, bid: bytes) -> bool:
    return env.server.store.exists(
        manifest_key(get_account(env.server.store, env.account_id), "web1", bid.hex())
    )
