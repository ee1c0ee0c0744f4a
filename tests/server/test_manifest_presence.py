"""A manifest naming an object the account's storage lacks is refused (409), and nothing is stored."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from crypto.primitives import random_bytes, sha256
from opsbackup.errors import ObjectsMissingError, ServerRefusedError
from opsbackup.server.accounts import get_account
from opsbackup.server.common import envelope_prefix, object_key
from tests.client_support import AccountKeys, ClientEnv, client_env
from tests.server.manifest_support import (
    MISSING,
    manifest_stored,
    payloads_of,
    put_manifest,
    signed_manifest,
    upload,
)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, account_keys: AccountKeys) -> Iterator[ClientEnv]:
    with client_env(tmp_path_factory.mktemp("presence"), account_keys) as e:
        yield e


def test_a_manifest_naming_a_missing_object_is_refused_and_notmanifest_stored(env: ClientEnv) -> None:
    bid = random_bytes(16)
    payloads = payloads_of(4)
    data = signed_manifest(env, bid, payloads)
    upload(env, *payloads[:3])
    r = put_manifest(env, bid, data)
    assert r.status_code == 409, r.text
    assert r.headers[MISSING] == "1"
    error = r.json()["error"]
    assert error.startswith("1 objects the manifest names are not stored (")
    assert sha256(payloads[3]).hex() in error
    assert "\n" not in error
    assert not manifest_stored(env, bid)
    assert ("web1", bid.hex()) not in env.account().repo.list_manifests()
    upload(env, payloads[3])  # now every object is there
    r = put_manifest(env, bid, data)
    assert (r.status_code, r.json()["created"]) == (201, True)
    assert env.account().repo.get_manifest("web1", bid.hex()) == data


def test_the_error_counts_every_missing_object_and_names_the_first_few(env: ClientEnv) -> None:
    bid = random_bytes(16)
    payloads = payloads_of(7)
    upload(env, payloads[0])
    r = put_manifest(env, bid, signed_manifest(env, bid, payloads))
    assert r.status_code == 409, r.text
    assert r.headers[MISSING] == "6"
    error = r.json()["error"]
    missing = sorted(sha256(p).hex() for p in payloads[1:])
    assert error.startswith("6 objects the manifest names are not stored (")
    assert ", ".join(missing[:3]) + ", ...)" in error
    assert not any(name in error for name in missing[3:])
    assert not manifest_stored(env, bid)


def test_the_signature_comes_first_then_the_objects_then_the_envelopes(env: ClientEnv) -> None:
    """No HEAD for a forged manifest; a sweep that took a source's packs and its envelope in one
    request is reported as missing objects (run the backup again), not as a missing envelope."""
    bid = random_bytes(16)
    payloads = payloads_of(3)
    data = signed_manifest(env, bid, payloads)  # nothing uploaded yet
    r = put_manifest(env, bid, data[:-1] + bytes([data[-1] ^ 1]))
    assert r.status_code == 400, r.text
    assert MISSING not in r.headers
    account = get_account(env.server.store, env.account_id)
    assert env.server.store.delete(envelope_prefix(account, bid.hex()) + f"{0:020d}")
    r = put_manifest(env, bid, data)  # objects and envelope both missing: the objects are reported
    assert r.status_code == 409, r.text
    assert r.headers[MISSING] == "3"
    upload(env, *payloads)
    r = put_manifest(env, bid, data)
    assert r.status_code == 409, r.text
    assert "upload the key envelope first" in r.json()["error"]
    assert MISSING not in r.headers
    assert not manifest_stored(env, bid)


def test_a_retry_of_a_stored_manifest_is_answered_asmanifest_stored(env: ClientEnv) -> None:
    """Its first upload was published (the answer may have been lost): not refused afterwards."""
    bid = random_bytes(16)
    payloads = payloads_of(3)
    data = signed_manifest(env, bid, payloads)
    upload(env, *payloads)
    assert put_manifest(env, bid, data).status_code == 201
    account = get_account(env.server.store, env.account_id)
    assert env.server.store.delete(object_key(account, sha256(payloads[2]).hex()))
    r = put_manifest(env, bid, data)
    assert (r.status_code, r.json()["created"]) == (200, False)


def test_the_client_maps_the_refusal_to_objects_missing_error(env: ClientEnv, tmp_path: Path) -> None:
    repo = env.account().repo
    bid = random_bytes(16)
    payloads = payloads_of(5)
    data = signed_manifest(env, bid, payloads)
    upload(env, *payloads[:3])
    with pytest.raises(ObjectsMissingError, match="2 objects the manifest names are not stored") as info:
        repo.put_manifest("web1", bid.hex(), data)
    assert info.value.missing == 2
    assert info.value.exit_code == 22
    assert not manifest_stored(env, bid)
    # Any other 409 stays a plain refusal.
    other = random_bytes(16)
    lonely = signed_manifest(env, other, payloads[:3])
    account = get_account(env.server.store, env.account_id)
    assert env.server.store.delete(envelope_prefix(account, other.hex()) + f"{0:020d}")
    with pytest.raises(ServerRefusedError, match="409 upload the key envelope first") as refused:
        repo.put_manifest("web1", other.hex(), lonely)
    assert not isinstance(refused.value, ObjectsMissingError)
    upload(env, *payloads[3:])
    repo.put_manifest("web1", bid.hex(), data)
    assert manifest_stored(env, bid)
