"""Deletion: the one way anything is removed, authorised by the account's deletion key, not a token.

A delete request (:mod:`formats.delete_request`, inside a signed object) is checked in this order:
the signature against the keyring's active deletion keys (before the body is parsed), then the
body, the account it names, its issued-at time (within ``delete_window`` seconds of the server
clock) and its nonce, which is remembered as ``accounts/<id>/nonces/<hex>`` with a conditional
create, so a replay (on this or any other server instance) loses and is refused.
"""

from __future__ import annotations

import io

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from crypto.signing import verify
from formats import delete_request
from formats.errors import FormatError, IntegrityError, WrongKeyError
from formats.roles import Role
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


def _apply(store: ObjectStore, account: Account, req: delete_request.DeleteRequest) -> dict[str, int]:
    counts = {"deleted_objects": 0, "deleted_manifests": 0, "deleted_envelopes": 0, "missing": 0}
    for name in req.objects:
        if store.delete(object_key(account, name.hex())):
            counts["deleted_objects"] += 1
        else:
            counts["missing"] += 1
    for m in req.manifests:
        if store.delete(manifest_key(account, m.host, m.backup_id.hex())):
            counts["deleted_manifests"] += 1
        else:
            counts["missing"] += 1
    for backup_id in req.envelopes:  # every generation of each
        if delete_envelope(store, account, backup_id):
            counts["deleted_envelopes"] += 1
        else:
            counts["missing"] += 1
    return counts


async def post_delete(request: Request) -> Response:
    _, account = await require(request, Scope.HOST, Scope.RESTORE, Scope.ADMIN)
    s = settings(request)
    data = await read_limited(request, s.max_delete_size, "delete request")
    req = await run_in_threadpool(
        lambda: check_delete_request(s.store, account, data, now=s.clock(), window=s.delete_window)
    )
    counts = await run_in_threadpool(_apply, s.store, account, req)
    return JSONResponse(counts)


routes = [Route("/v1/delete", post_delete, methods=["POST"])]
