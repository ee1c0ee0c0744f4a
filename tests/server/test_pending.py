"""A delete never removes what a manifest outside its basis needs, stored or being stored, and a
manifest is never stored needing what a delete in progress removes (opsbackup/server/pending.py).

Each side's pending record is planted here exactly as the other request would have left it while
running, so both orders of the race are exercised on the real server over TLS.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from crypto.primitives import random_bytes, sha256
from formats.delete_request import DeleteRequest, ManifestId
from opsbackup.client.repository import Repository
from opsbackup.errors import ObjectsMissingError
from opsbackup.server import pending
from opsbackup.server.accounts import Account, Scope, get_account
from opsbackup.server.common import ApiError, object_key
from opsbackup.server.routes_delete import _apply
from tests.client_support import AccountKeys, ClientEnv, client_env
from tests.server._support import delete_body
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
    with client_env(tmp_path_factory.mktemp("pending"), account_keys) as e:
        yield e


def _account(env: ClientEnv) -> Account:
    return get_account(env.server.store, env.account_id)


def _delete(env: ClientEnv, **kw: object) -> requests.Response:
    body = delete_body(env.keys.deletion, env.account_id, **kw)  # type: ignore[arg-type]
    r = env.server.call("POST", "/v1/delete", env.tokens[Scope.ADMIN], data=body)
    assert r.status_code == 200, r.text
    return r


def _exists(env: ClientEnv, payload: bytes) -> bool:
    return env.server.store.exists(object_key(_account(env), sha256(payload).hex()))


def _records(env: ClientEnv) -> list[str]:
    return list(env.server.store.list(f"accounts/{env.account_id.hex()}/pending/"))


def test_a_delete_keeps_what_a_stored_manifest_outside_its_basis_needs(env: ClientEnv) -> None:
    bid = random_bytes(16)
    payloads = payloads_of(3)
    lonely = random_bytes(50)
    upload(env, *payloads, lonely)
    assert put_manifest(env, bid, signed_manifest(env, bid, payloads)).status_code == 201
    names = [sha256(p) for p in (*payloads, lonely)]
    r = _delete(env, objects=names, envelopes=[bid])  # a plan made before the manifest was stored
    counts = r.json()
    assert counts["kept_objects"] == 3
    assert counts["kept_envelopes"] == 1
    assert counts["kept_bytes"] == sum(len(p) for p in payloads)
    assert (counts["deleted_objects"], counts["deleted_envelopes"], counts["missing"]) == (1, 0, 0)
    assert all(_exists(env, p) for p in payloads)
    assert not _exists(env, lonely)
    assert _records(env) == []  # the delete's own record is gone
    # A plan that saw the manifest (it is in the basis) is the signer's word: it deletes.
    r = _delete(env, objects=names[:1], basis=[ManifestId("web1", bid)])
    assert (r.json()["deleted_objects"], r.json()["kept_objects"]) == (1, 0)
    assert not _exists(env, payloads[0])


def test_a_pending_manifest_protects_what_it_needs_until_its_record_expires(env: ClientEnv) -> None:
    bid = random_bytes(16)
    payloads = payloads_of(3)
    upload(env, *payloads)
    data = signed_manifest(env, bid, payloads)
    store, account = env.server.store, _account(env)
    live = pending.record_manifest(store, account, "web1", bid.hex(), data, time.time())
    names = [sha256(p) for p in payloads]
    assert _delete(env, objects=names).json()["kept_objects"] == 3  # the PUT is "in progress"
    assert all(_exists(env, p) for p in payloads)
    pending.drop(store, live)
    stale = pending.record_manifest(
        store, account, "web1", bid.hex(), data, time.time() - pending.PENDING_TTL - 60
    )
    assert stale in _records(env)
    counts = _delete(env, objects=names).json()  # a PUT that died an hour ago protects nothing
    assert (counts["deleted_objects"], counts["kept_objects"]) == (3, 0)
    assert _records(env) == []  # and its record was cleared by the reader that found it expired


def _deleting(env: ClientEnv, objects: list[bytes], created: float) -> str:
    req = DeleteRequest(
        account_id=env.account_id,
        nonce=random_bytes(16),
        issued_at=int(created),
        objects=tuple(sorted(objects)),
        manifests=(),
    )
    return pending.record_delete(env.server.store, _account(env), req, created)


def test_a_manifest_needing_what_a_delete_in_progress_removes_is_refused(
    env: ClientEnv, tmp_path: Path
) -> None:
    bid = random_bytes(16)
    payloads = payloads_of(4)
    upload(env, *payloads)
    data = signed_manifest(env, bid, payloads)
    doomed = sha256(payloads[3])
    record = _deleting(env, [doomed, random_bytes(32)], time.time())
    r = put_manifest(env, bid, data)
    assert r.status_code == 409, r.text
    assert r.headers[MISSING] == "1"
    assert r.json()["deleting"] == [doomed.hex()]
    assert "being deleted by a prune" in r.json()["error"]
    assert not manifest_stored(env, bid)
    assert _records(env) == [record]  # the refused PUT dropped its own record
    repo = Repository(env.transport(Scope.HOST))
    with pytest.raises(ObjectsMissingError) as info:
        repo.put_manifest("web1", bid.hex(), data)
    assert (info.value.missing, info.value.deleting) == (1, (doomed,))
    assert info.value.exit_code == 22
    # Once the delete has finished (its record dropped), the same manifest is stored.
    pending.drop(env.server.store, record)
    assert put_manifest(env, bid, data).status_code == 201
    assert _records(env) == []


def test_an_expired_delete_record_blocks_nothing_and_is_cleared(env: ClientEnv) -> None:
    bid = random_bytes(16)
    payloads = payloads_of(3)
    upload(env, *payloads)
    stale = _deleting(env, [sha256(payloads[2])], time.time() - pending.PENDING_TTL - 60)
    assert _records(env) == [stale]
    assert put_manifest(env, bid, signed_manifest(env, bid, payloads)).status_code == 201
    assert _records(env) == []


class _SteppingClock:
    """A fake clock (time passing cannot be caused otherwise): ``step`` seconds per reading."""

    def __init__(self, step: float) -> None:
        self._ticks = itertools.count()
        self._step = step

    def __call__(self) -> float:
        return 1_700_000_000.0 + next(self._ticks) * self._step


def test_a_delete_running_past_its_deadline_stops_before_its_next_write(env: ClientEnv) -> None:
    payloads = [random_bytes(70 + i) for i in range(4)]
    upload(env, *payloads)
    names = tuple(sorted(sha256(p) for p in payloads))
    req = DeleteRequest(env.account_id, random_bytes(16), 1_700_000_000, names, ())
    step = pending.DEADLINE / 2.5  # readings: start, manifests read, 1st delete at 0.8, 2nd at 1.2 x DEADLINE
    with pytest.raises(ApiError) as info:
        _apply(env.server.store, _account(env), req, _SteppingClock(step))
    assert info.value.status == 503
    assert "send it again" in info.value.message
    assert sum(_exists(env, p) for p in payloads) == 3  # one deleted in time, then it stopped
    assert _records(env) == []  # and its record is dropped on the way out
