"""Deletion: the one way anything is removed, authorised by the account's deletion key, not a token.

A delete request (:mod:`formats.delete_request`, inside a signed object) is checked in this order:
the signature against the keyring's active deletion keys (before the body is parsed), then the
body, the account it names, its issued-at time (within ``delete_window`` seconds of the server
clock) and its nonce, which is remembered as ``accounts/<id>/nonces/<hex>`` with a conditional
create, so a replay (on this or any other server instance) loses and is refused.

A request that names objects or envelopes is then recorded as pending
(:mod:`opsbackup.server.pending`), and nothing that a manifest outside its basis needs is
deleted: not one stored after the signer read the manifests, nor one being stored right now.
Those are *kept* and counted, so a prune racing a backup never breaks it.
"""

from __future__ import annotations

import io
from collections.abc import Callable

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from crypto.signing import verify
from formats import delete_request
from formats.errors import FormatError, IntegrityError, NotFoundError, WrongKeyError
from formats.roles import Role
from opsbackup.server import pending
from opsbackup.server.accounts import Account, Scope
from opsbackup.server.common import (
    ApiError,
    check_host,
    manifest_key,
    object_key,
    read_limited,
    require,
    settings,
)
from opsbackup.server.keyrings import load_keyring
from opsbackup.server.routes_envelopes import delete_envelope
from opsbackup.storage.base import ObjectStore

__all__ = ["check_delete_request", "routes"]


def check_delete_request(
    store: ObjectStore, account: Account, data: bytes, *, now: float, window: int
) -> delete_request.DeleteRequest:
    """The verified, fresh, first-seen request in ``data``; :class:`ApiError` (400/403) otherwise."""
    keyring = load_keyring(store, account)
    if keyring is None:
        raise ApiError(403, "delete refused: the account has no keyring, so no deletion key")
    try:
        obj = verify(
            data,
            type_tag=delete_request.MAGIC,
            trusted=keyring.keys_for(Role.DELETION),
            what="delete request",
        )
    except WrongKeyError:
        raise ApiError(403, "delete refused: not signed by a deletion key of this account") from None
    except IntegrityError:
        raise ApiError(403, "delete refused: the signature does not verify") from None
    except FormatError as exc:
        raise ApiError(400, f"delete refused: not a signed delete request ({exc})") from None
    try:
        req = delete_request.decode(obj.body)
    except FormatError as exc:
        raise ApiError(400, f"delete refused: {exc}") from None
    if req.account_id != account.account_id:
        raise ApiError(403, "delete refused: the request is for another account")
    if abs(now - req.issued_at) > window:
        raise ApiError(
            403, f"delete refused: issued-at is more than {window} s away from the server's clock (stale)"
        )
    for m in req.manifests:  # the format allows labels no manifest is stored under (``x.tmp``)
        check_host(m.host)  # refuse the whole request now, not half-way through deleting
    nonce_key = f"accounts/{account.account_id.hex()}/nonces/{req.nonce.hex()}"
    if not store.put(nonce_key, io.BytesIO(str(req.issued_at).encode("ascii")), overwrite=False):
        raise ApiError(403, "delete refused: this request was already used (replay)")
    return req


def _apply(
    store: ObjectStore, account: Account, req: delete_request.DeleteRequest, clock: Callable[[], float]
) -> dict[str, int]:
    fields = ("deleted_objects", "deleted_manifests", "deleted_envelopes", "missing")
    counts = dict.fromkeys((*fields, "kept_objects", "kept_envelopes", "kept_bytes"), 0)
    started = clock()

    def count(deleted: bool, field: str) -> None:
        counts[field if deleted else "missing"] += 1

    for m in req.manifests:  # first: what only they needed is unreferenced from now on
        pending.check_deadline(started, clock(), "the delete request")
        count(store.delete(manifest_key(account, m.host, m.backup_id.hex())), "deleted_manifests")
    if not req.objects and not req.envelopes:
        return counts
    record = pending.record_delete(store, account, req, started)
    try:  # recorded before the manifests are read: a manifest stored from now on sees the record
        needs = pending.needs_outside(store, account, req.basis, clock())
        for name in req.objects:
            if name in needs.objects:
                counts["kept_objects"] += 1
                counts["kept_bytes"] += _size(store, object_key(account, name.hex()))
                continue
            pending.check_deadline(started, clock(), "the delete request")
            count(store.delete(object_key(account, name.hex())), "deleted_objects")
        for backup_id in req.envelopes:  # every generation of each
            if backup_id in needs.envelopes:
                counts["kept_envelopes"] += 1
                continue
            pending.check_deadline(started, clock(), "the delete request")
            count(delete_envelope(store, account, backup_id), "deleted_envelopes")
    finally:
        pending.drop(store, record)
    return counts


def _size(store: ObjectStore, key: str) -> int:
    try:
        return store.size(key)
    except NotFoundError:
        return 0


async def post_delete(request: Request) -> Response:
    _, account = await require(request, Scope.HOST, Scope.RESTORE, Scope.ADMIN)
    s = settings(request)
    data = await read_limited(request, s.max_delete_size, "delete request")
    req = await run_in_threadpool(
        lambda: check_delete_request(s.store, account, data, now=s.clock(), window=s.delete_window)
    )
    counts = await run_in_threadpool(_apply, s.store, account, req, s.clock)
    return JSONResponse(counts)


routes = [Route("/v1/delete", post_delete, methods=["POST"])]
