"""A manifest naming an object the account's storage lacks is refused (409), and nothing is stored."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from crypto.primitives import random_bytes, sha256
from crypto.private import sign_object
from formats import manifest
from formats.manifest import StoredObject
from opsbackup.errors import ObjectsMissingError, ServerRefusedError
from opsbackup.server.accounts import Scope, get_account
from opsbackup.server.common import envelope_prefix, manifest_key, object_key
from opsbackup.server.keyrings import load_keyring
from tests.client_support import AccountKeys, ClientEnv, client_env
from tests.manifests import sample_manifest

MISSING = "X-Opsbackup-Missing-Objects"


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, account_keys: AccountKeys) -> Iterator[ClientEnv]:
    with client_env(tmp_path_factory.mktemp("presence"), account_keys) as e:
        yield e


def _payloads(n: int) -> list[bytes]:
    return [random_bytes(100 + i) for i in range(n)]


def _signed(env: ClientEnv, bid: bytes, payloads: list[bytes]) -> bytes:
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


def _upload(env: ClientEnv, *payloads: bytes) -> None:
    for p in payloads:
        r = env.server.call("PUT", f"/v1/objects/{sha256(p).hex()}", env.tokens[Scope.HOST], data=p)
        assert r.status_code == 201, r.text


def _put(env: ClientEnv, bid: bytes, data: bytes) -> requests.Response:
    return env.server.call("PUT", f"/v1/manifests/web1/{bid.hex()}", env.tokens[Scope.HOST], data=data)


def _stored(env: ClientEnv, bid: bytes) -> bool:
    return env.server.store.exists(
        manifest_key(get_account(env.server.store, env.account_id), "web1", bid.hex())
    )


def test_a_manifest_naming_a_missing_object_is_refused_and_not_stored(env: ClientEnv) -> None:
    bid = random_bytes(16)
    payloads = _payloads(4)
    data = _signed(env, bid, payloads)
    _upload(env, *payloads[:3])
    r = _put(env, bid, data)
    assert r.status_code == 409, r.text
    assert r.headers[MISSING] == "1"
    error = r.json()["error"]
    assert error.startswith("1 objects the manifest names are not stored (")
    assert sha256(payloads[3]).hex() in error
    assert "\n" not in error
    assert not _stored(env, bid)
    assert ("web1", bid.hex()) not in env.account().repo.list_manifests()
    _upload(env, payloads[3])  # now every object is there
    r = _put(env, bid, data)
    assert (r.status_code, r.json()["created"]) == (201, True)
    assert env.account().repo.get_manifest("web1", bid.hex()) == data


def test_the_error_counts_every_missing_object_and_names_the_first_few(env: ClientEnv) -> None:
    bid = random_bytes(16)
    payloads = _payloads(7)
    _upload(env, payloads[0])
    r = _put(env, bid, _signed(env, bid, payloads))
    assert r.status_code == 409, r.text
    assert r.headers[MISSING] == "6"
    error = r.json()["error"]
    missing = sorted(sha256(p).hex() for p in payloads[1:])
    assert error.startswith("6 objects the manifest names are not stored (")
    assert ", ".join(missing[:3]) + ", ...)" in error
    assert not any(name in error for name in missing[3:])
    assert not _stored(env, bid)


def test_the_signature_comes_first_then_the_objects_then_the_envelopes(env: ClientEnv) -> None:
    """No HEAD for a forged manifest; a sweep that took a source's packs and its envelope in one
    request is reported as missing objects (run the backup again), not as a missing envelope."""
    bid = random_bytes(16)
    payloads = _payloads(3)
    data = _signed(env, bid, payloads)  # nothing uploaded yet
    r = _put(env, bid, data[:-1] + bytes([data[-1] ^ 1]))
    assert r.status_code == 400, r.text
    assert MISSING not in r.headers
    account = get_account(env.server.store, env.account_id)
    assert env.server.store.delete(envelope_prefix(account, bid.hex()) + f"{0:020d}")
    r = _put(env, bid, data)  # objects and envelope both missing: the objects are reported
    assert r.status_code == 409, r.text
    assert r.headers[MISSING] == "3"
    _upload(env, *payloads)
    r = _put(env, bid, data)
    assert r.status_code == 409, r.text
    assert "upload the key envelope first" in r.json()["error"]
    assert MISSING not in r.headers
    assert not _stored(env, bid)


def test_a_retry_of_a_stored_manifest_is_answered_as_stored(env: ClientEnv) -> None:
    """Its first upload was published (the answer may have been lost): not refused afterwards."""
    bid = random_bytes(16)
    payloads = _payloads(3)
    data = _signed(env, bid, payloads)
    _upload(env, *payloads)
    assert _put(env, bid, data).status_code == 201
    account = get_account(env.server.store, env.account_id)
    assert env.server.store.delete(object_key(account, sha256(payloads[2]).hex()))
    r = _put(env, bid, data)
    assert (r.status_code, r.json()["created"]) == (200, False)


def test_the_client_maps_the_refusal_to_objects_missing_error(env: ClientEnv, tmp_path: Path) -> None:
    repo = env.account().repo
    bid = random_bytes(16)
    payloads = _payloads(5)
    data = _signed(env, bid, payloads)
    _upload(env, *payloads[:3])
    with pytest.raises(ObjectsMissingError, match="2 objects the manifest names are not stored") as info:
        repo.put_manifest("web1", bid.hex(), data)
    assert info.value.missing == 2
    assert info.value.exit_code == 22
    assert not _stored(env, bid)
    # Any other 409 stays a plain refusal.
    other = random_bytes(16)
    lonely = _signed(env, other, payloads[:3])
    account = get_account(env.server.store, env.account_id)
    assert env.server.store.delete(envelope_prefix(account, other.hex()) + f"{0:020d}")
    with pytest.raises(ServerRefusedError, match="409 upload the key envelope first") as refused:
        repo.put_manifest("web1", other.hex(), lonely)
    assert not isinstance(refused.value, ObjectsMissingError)
    _upload(env, *payloads[3:])
    repo.put_manifest("web1", bid.hex(), data)
    assert _stored(env, bid)
