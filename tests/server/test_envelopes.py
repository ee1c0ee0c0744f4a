"""Key envelopes on the real TLS server: who may store which generation, re-wraps, listing, deletes."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import rsa

from crypto.envelope import envelope_body, wrap_backup_keys
from crypto.keyring import Keyring, next_keyring_body, open_keyring
from crypto.primitives import random_bytes, sha256
from crypto.private import sign_object
from crypto.wrap import wrap_to_recipients
from formats import manifest, wrapped_key
from formats import signed as signed_fmt
from formats.roles import Role
from opsbackup.client.repository import Repository
from opsbackup.errors import KeyringChangedError, NotFoundError, ServerRefusedError
from opsbackup.ops.forget import sign_delete_request
from opsbackup.server.accounts import Account, Scope, get_account
from opsbackup.server.common import envelope_prefix
from opsbackup.server.keyrings import load_keyring, store_keyring
from tests.client_support import AccountKeys, ClientEnv, client_env
from tests.manifests import sample_manifest

GEN = "X-Opsbackup-Envelope-Generation"


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, account_keys: AccountKeys) -> Iterator[ClientEnv]:
    with client_env(tmp_path_factory.mktemp("envelopes"), account_keys) as e:
        yield e


def _server_account(env: ClientEnv) -> Account:
    return get_account(env.server.store, env.account_id)


def _keyring(env: ClientEnv) -> Keyring:
    """The account's current keyring, as the server sees it."""
    current = load_keyring(env.server.store, _server_account(env))
    assert current is not None
    return current


def _envelope(
    env: ClientEnv,
    backup_id: bytes,
    *,
    generation: int = 0,
    signer: rsa.RSAPrivateKey | None = None,
    keyring: Keyring | None = None,
    records: tuple[bytes, ...] | None = None,
    account_id: bytes | None = None,
) -> bytes:
    """A signed envelope of fresh keys: by default generation 0, host web1, the current keyring."""
    keyring = keyring or _keyring(env)
    if signer is None:
        signer = env.keys.hosts["web1"] if generation == 0 else env.keys.deletion
    if records is None:
        records = wrap_backup_keys(
            backup_id, data_key=random_bytes(32), metadata_key=random_bytes(32), keyring=keyring
        )
    body = envelope_body(
        account_id=account_id or env.account_id,
        backup_id=backup_id,
        generation=generation,
        keyring_version=keyring.version,
        records=records,
    )
    return sign_object(signer, body)


def _put(env: ClientEnv, backup_id: bytes, data: bytes, scope: Scope = Scope.HOST) -> requests.Response:
    return env.server.call("PUT", f"/v1/envelopes/{backup_id.hex()}", env.tokens[scope], data=data)


def _refused(r: requests.Response, status: int, words: str) -> None:
    assert r.status_code == status, r.text
    assert words in r.json()["error"], r.json()
    assert "\n" not in r.json()["error"]


def _stored_generations(env: ClientEnv, backup_id: bytes) -> list[int]:
    prefix = envelope_prefix(_server_account(env), backup_id.hex())
    return [int(k.rsplit("/", 1)[1]) for k in env.server.store.list(prefix)]


def test_generation_zero_is_create_only_and_served_back(env: ClientEnv) -> None:
    bid = random_bytes(16)
    data = _envelope(env, bid)
    r = _put(env, bid, data)
    assert r.status_code == 201, r.text
    assert r.json() == {"backup_id": bid.hex(), "generation": 0, "created": True}
    again = _put(env, bid, data, Scope.ADMIN)
    assert again.status_code == 200
    assert again.json()["created"] is False
    _refused(_put(env, bid, _envelope(env, bid)), 409, "already stored with other content")
    for scope in (Scope.HOST, Scope.RESTORE, Scope.ADMIN):
        got = env.server.call("GET", f"/v1/envelopes/{bid.hex()}", env.tokens[scope])
        assert got.status_code == 200
        assert got.content == data
        assert got.headers[GEN] == "0"
    assert _stored_generations(env, bid) == [0]


def test_a_rewrap_replaces_every_older_generation(env: ClientEnv) -> None:
    bid = random_bytes(16)
    assert _put(env, bid, _envelope(env, bid)).status_code == 201
    first = _envelope(env, bid, generation=1)
    r = _put(env, bid, first, Scope.ADMIN)
    assert r.status_code == 201, r.text
    assert r.json()["generation"] == 1
    assert _stored_generations(env, bid) == [1]  # the old wrapped keys are gone from the server
    got = env.server.call("GET", f"/v1/envelopes/{bid.hex()}", env.tokens[Scope.RESTORE])
    assert (got.content, got.headers[GEN]) == (first, "1")
    assert _put(env, bid, first).status_code == 200  # a retried re-wrap is harmless
    third = _envelope(env, bid, generation=5)  # generations need not be consecutive
    assert _put(env, bid, third).status_code == 201
    assert _stored_generations(env, bid) == [5]
    _refused(_put(env, bid, _envelope(env, bid)), 409, "already re-wrapped")
    _refused(_put(env, bid, _envelope(env, bid, generation=3)), 409, "older than the stored generation 5")
    _refused(_put(env, bid, _envelope(env, bid, generation=5)), 409, "other content")


def test_a_rewrap_needs_something_to_replace(env: ClientEnv) -> None:
    bid = random_bytes(16)
    _refused(_put(env, bid, _envelope(env, bid, generation=1)), 409, "no key envelope to re-wrap")
    assert _stored_generations(env, bid) == []


def test_signer_roles_are_enforced(env: ClientEnv, rsa3072_other: rsa.RSAPrivateKey) -> None:
    bid = random_bytes(16)
    _refused(_put(env, bid, _envelope(env, bid, signer=env.keys.deletion)), 403, "host key")
    assert _put(env, bid, _envelope(env, bid)).status_code == 201
    rewrap_by_host = _envelope(env, bid, generation=1, signer=env.keys.hosts["web2"])
    _refused(_put(env, bid, rewrap_by_host), 403, "deletion key")
    _refused(_put(env, bid, _envelope(env, bid, generation=1, signer=env.keys.root)), 403, "current host or")
    other = random_bytes(16)
    _refused(_put(env, other, _envelope(env, other, signer=rsa3072_other)), 403, "not signed by")
    assert _stored_generations(env, bid) == [0]
    assert _stored_generations(env, other) == []


def test_recipients_must_be_exactly_the_current_ones(env: ClientEnv) -> None:
    keyring = _keyring(env)
    bid = random_bytes(16)
    data_keys = keyring.keys_for(Role.DATA)
    meta = random_bytes(32)
    only_browse = keyring.keys_for(Role.BROWSE)
    short = [
        *wrap_to_recipients(random_bytes(32), role=Role.DATA, backup_id=bid, recipients=data_keys),
        *wrap_to_recipients(meta, role=Role.BROWSE, backup_id=bid, recipients=only_browse),
    ]
    records = tuple(sorted(wrapped_key.encode(r) for r in short))
    r = _put(env, bid, _envelope(env, bid, records=records))
    _refused(r, 409, "does not wrap its browse record to exactly the 2 recipients")
    assert r.headers["X-Opsbackup-Keyring-Version"] == str(keyring.version)
    extra = {**data_keys, **{keyring.root_id: env.keys.root.public_key()}}  # a 4096-bit outsider
    too_many = [
        *wrap_to_recipients(random_bytes(32), role=Role.DATA, backup_id=bid, recipients=extra),
        *wrap_to_recipients(meta, role=Role.BROWSE, backup_id=bid, recipients={**only_browse, **data_keys}),
    ]
    records = tuple(sorted(wrapped_key.encode(r) for r in too_many))
    _refused(_put(env, bid, _envelope(env, bid, records=records)), 409, "data record to exactly the 1")
    assert _stored_generations(env, bid) == []


def test_malformed_misaddressed_and_oversized_envelopes_are_refused(env: ClientEnv) -> None:
    bid = random_bytes(16)
    good = _envelope(env, bid)
    obj = signed_fmt.decode(good)
    forged = signed_fmt.encode(
        signed_fmt.SignedObject(obj.signer, obj.body, bytes([obj.signature[0] ^ 1]) + obj.signature[1:])
    )
    _refused(_put(env, bid, forged), 400, "does not verify")
    _refused(_put(env, random_bytes(16), good), 400, "another backup or account")
    other_account = _envelope(env, bid, account_id=random_bytes(16))
    _refused(_put(env, bid, other_account), 400, "another backup or account")
    _refused(_put(env, bid, b"OBSO nonsense"), 400, "not a signed key envelope")
    not_an_envelope = sign_object(env.keys.hosts["web1"], b"OBMFxxxx")
    _refused(_put(env, bid, not_an_envelope), 400, "not a signed key envelope")
    r = env.server.call("PUT", "/v1/envelopes/ABCD", env.tokens[Scope.HOST], data=good)
    _refused(r, 400, "invalid backup id")
    _refused(_put(env, bid, b"\0" * (4 * 1024 * 1024 + 1)), 413, "larger than the limit")
    _refused(_put(env, bid, good, Scope.RESTORE), 403, "may not do this")
    assert _stored_generations(env, bid) == []
    r = env.server.call("GET", f"/v1/envelopes/{bid.hex()}", env.tokens[Scope.RESTORE])
    _refused(r, 404, "no key envelope")
    _refused(env.server.call("GET", "/v1/envelopes/zz", env.tokens[Scope.RESTORE]), 400, "invalid backup id")
    assert env.server.call("PUT", f"/v1/envelopes/{bid.hex()}", data=good).status_code == 401


def test_listing_pages_and_is_not_for_hosts(env: ClientEnv) -> None:
    ids = sorted(random_bytes(16) for _ in range(3))
    for bid in ids:
        assert _put(env, bid, _envelope(env, bid)).status_code == 201
    assert _put(env, ids[0], _envelope(env, ids[0], generation=1)).status_code == 201
    token = env.tokens[Scope.RESTORE]
    everything = env.server.call("GET", "/v1/envelopes", token).json()
    assert everything["next"] is None
    listed = everything["envelopes"]
    assert listed == sorted(set(listed))
    assert {i.hex() for i in ids} <= set(listed)
    first = env.server.call("GET", "/v1/envelopes?limit=2", token).json()
    assert first["envelopes"] == listed[:2]
    assert first["next"] == listed[1]
    second = env.server.call("GET", f"/v1/envelopes?limit=2&after={first['next']}", token).json()
    assert second["envelopes"] == listed[2:4]
    _refused(env.server.call("GET", "/v1/envelopes", env.tokens[Scope.HOST]), 403, "may not do this")
    _refused(env.server.call("GET", "/v1/envelopes?after=zz", token), 400, "invalid 'after'")
    _refused(env.server.call("GET", "/v1/envelopes?limit=0", token), 400, "invalid 'limit'")
    repo = Repository(env.transport(Scope.ADMIN))
    assert [i.hex() for i in repo.list_envelopes()] == listed


def test_concurrent_identical_puts_store_one_envelope(env: ClientEnv) -> None:
    bid = random_bytes(16)
    data = _envelope(env, bid)
    statuses: list[int] = []
    start = threading.Barrier(6)

    def put() -> None:
        start.wait(30)
        statuses.append(_put(env, bid, data).status_code)

    threads = [threading.Thread(target=put) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(statuses) == [200] * 5 + [201]
    assert _stored_generations(env, bid) == [0]


def test_concurrent_rewraps_leave_only_the_highest_generation(env: ClientEnv) -> None:
    bid = random_bytes(16)
    assert _put(env, bid, _envelope(env, bid)).status_code == 201
    bodies = {g: _envelope(env, bid, generation=g) for g in (1, 2, 3)}
    statuses: dict[int, int] = {}
    start = threading.Barrier(3)

    def put(g: int) -> None:
        start.wait(30)
        statuses[g] = _put(env, bid, bodies[g]).status_code

    threads = [threading.Thread(target=put, args=(g,)) for g in bodies]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert statuses[3] == 201  # the highest always wins; a lower one may lose with 409
    assert set(statuses.values()) <= {201, 409}
    assert _stored_generations(env, bid) == [3]
    got = env.server.call("GET", f"/v1/envelopes/{bid.hex()}", env.tokens[Scope.HOST])
    assert got.content == bodies[3]


def _signed_manifest(env: ClientEnv, bid: bytes, sources: tuple[bytes, ...] = ()) -> bytes:
    host = env.keys.hosts["web1"]
    m = sample_manifest(
        host,
        backup_id=bid,
        account_id=env.account_id,
        host_name="web1",
        keyring_version=_keyring(env).version,
        sources=tuple(sorted(sources)),
    )
    return sign_object(host, manifest.encode(m))


def test_a_manifest_needs_its_envelope_and_its_sources_envelopes(env: ClientEnv) -> None:
    for payload in (b"pack", b"chunk index"):  # the objects a sample manifest names
        r = env.server.call(
            "PUT", f"/v1/objects/{sha256(payload).hex()}", env.tokens[Scope.HOST], data=payload
        )
        assert r.ok, r.text
    bid, source = random_bytes(16), random_bytes(16)
    data = _signed_manifest(env, bid, (source,))
    url = f"/v1/manifests/web1/{bid.hex()}"
    r = env.server.call("PUT", url, env.tokens[Scope.HOST], data=data)
    _refused(r, 409, f"upload the key envelope first: backup {bid.hex()}")
    assert _put(env, bid, _envelope(env, bid)).status_code == 201
    r = env.server.call("PUT", url, env.tokens[Scope.HOST], data=data)
    _refused(r, 409, f"upload the key envelope first: backup {source.hex()}")
    assert _put(env, source, _envelope(env, source)).status_code == 201
    assert env.server.call("PUT", url, env.tokens[Scope.HOST], data=data).status_code == 201
    # A manifest that fails its signature check is refused for that, not for a missing envelope.
    lonely = random_bytes(16)
    forged = _signed_manifest(env, lonely)[:-1] + b"\0"
    r = env.server.call("PUT", f"/v1/manifests/web1/{lonely.hex()}", env.tokens[Scope.HOST], data=forged)
    assert r.status_code == 400, r.text


def test_a_delete_request_removes_every_generation(env: ClientEnv) -> None:
    bid, gone = random_bytes(16), random_bytes(16)
    assert _put(env, bid, _envelope(env, bid)).status_code == 201
    # A leftover generation (as a crashed re-wrap on an older server might leave) goes too.
    key = envelope_prefix(_server_account(env), bid.hex()) + f"{7:020d}"
    env.server.store.put(key, io.BytesIO(b"leftover"))
    assert _stored_generations(env, bid) == [0, 7]
    body = sign_delete_request(env.keys.deletion, env.account_id, envelopes=[gone, bid])
    r = env.server.call("POST", "/v1/delete", env.tokens[Scope.ADMIN], data=body)
    assert r.status_code == 200, r.text
    assert r.json() == {
        "deleted_objects": 0,
        "deleted_manifests": 0,
        "deleted_envelopes": 1,
        "missing": 1,
        "kept_objects": 0,
        "kept_envelopes": 0,
        "kept_bytes": 0,
    }
    assert _stored_generations(env, bid) == []
    r = env.server.call("GET", f"/v1/envelopes/{bid.hex()}", env.tokens[Scope.HOST])
    assert r.status_code == 404


def test_client_maps_a_changed_keyring_to_keyring_changed_error(
    tmp_path: Path, account_keys: AccountKeys
) -> None:
    with client_env(tmp_path, account_keys) as fresh:
        v1 = _keyring(fresh)
        bid = random_bytes(16)
        stale = _envelope(fresh, bid, keyring=v1)
        v2 = sign_object(account_keys.root, next_keyring_body(v1, now=int(time.time())))
        store_keyring(fresh.server.store, _server_account(fresh), v2)
        r = _put(fresh, bid, stale)
        _refused(r, 409, "wrapped to keyring version 1, but the current keyring is version 2; re-wrap")
        assert r.headers["X-Opsbackup-Keyring-Version"] == "2"
        repo = Repository(fresh.transport(Scope.HOST))
        with pytest.raises(KeyringChangedError, match="re-wrap"):
            repo.put_envelope(bid, stale)
        current = open_keyring(v2, root_public_key=account_keys.root.public_key())
        fresh_envelope = _envelope(fresh, bid, keyring=current)
        repo.put_envelope(bid, fresh_envelope)
        assert repo.get_envelope(bid) == fresh_envelope
        repo.put_envelope(bid, fresh_envelope)  # idempotent
        with pytest.raises(ServerRefusedError, match="409") as refused:
            repo.put_envelope(bid, _envelope(fresh, bid, keyring=current))
        assert not isinstance(refused.value, KeyringChangedError)
        with pytest.raises(NotFoundError, match="no key envelope"):
            repo.get_envelope(random_bytes(16))
