"""Manifests: create-only upload (signature checked against the keyring's host keys, key envelopes
present), list, fetch."""

from __future__ import annotations

import io

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from crypto.manifest_check import verify_manifest
from formats.errors import FormatError, IntegrityError, NotFoundError, WrongKeyError
from formats.roles import Role
from opsbackup.server.accounts import Account, Scope
from opsbackup.server.common import (
    ApiError,
    check_backup_id,
    check_host,
    manifest_key,
    read_limited,
    require,
    settings,
)
from opsbackup.server.keyrings import load_keyring
from opsbackup.server.routes_envelopes import envelope_exists
from opsbackup.storage.base import ObjectStore

__all__ = ["routes"]

_READERS = (Scope.HOST, Scope.RESTORE, Scope.ADMIN)
_WRITERS = (Scope.HOST, Scope.ADMIN)


def _path_ids(request: Request) -> tuple[str, str]:
    parts = str(request.path_params["rest"]).split("/")
    if len(parts) != 2:
        raise ApiError(400, "a manifest is named /v1/manifests/{host}/{backup-id}")
    return check_host(parts[0]), check_backup_id(parts[1])


def _check_signed(store: ObjectStore, account: Account, data: bytes, host: str, backup_id: str) -> None:
    """Verify first, then decode; then the manifest must be the one its URL names, and readable.

    Readable: the key envelope of the backup itself and of every source it reuses packs of is
    stored (a backup must never be stored unreadable; the host uploads its envelope first).
    """
    keyring = load_keyring(store, account)
    if keyring is None:
        raise ApiError(409, "the account has no keyring yet: upload it first (PUT /v1/keyring)")
    try:
        body = verify_manifest(data, host_keys=keyring.keys_for(Role.HOST))
    except WrongKeyError:
        raise ApiError(403, "manifest is not signed by a current host key of this account") from None
    except IntegrityError:
        raise ApiError(400, "manifest signature does not verify") from None
    except FormatError as exc:
        raise ApiError(400, f"not a signed manifest: {exc}") from None
    if keyring.entry(body.host_key_id).label != body.host_name:
        raise ApiError(403, "manifest names a host other than the one its signing key belongs to")
    if body.host_name != host or body.backup_id.hex() != backup_id:
        raise ApiError(400, "manifest host or backup id does not match the URL")
    if body.account_id != account.account_id:
        raise ApiError(400, "manifest belongs to another account")
    for needed in (body.backup_id, *body.sources):
        if not envelope_exists(store, account, needed):
            raise ApiError(
                409,
                f"upload the key envelope first: backup {needed.hex()} has none "
                f"(PUT /v1/envelopes/{needed.hex()})",
            )


async def put_manifest(request: Request) -> Response:
    _, account = await require(request, *_WRITERS)
    host, backup_id = _path_ids(request)
    s = settings(request)
    data = await read_limited(request, s.max_manifest_size, "manifest")
    await run_in_threadpool(_check_signed, s.store, account, data, host, backup_id)
    key = manifest_key(account, host, backup_id)

    def store_it() -> bool:
        if s.store.put(key, io.BytesIO(data), overwrite=False):
            return True
        if s.store.read(key) != data:
            raise ApiError(
                409, "this manifest already exists with other content; manifests are never replaced"
            )
        return False

    created = await run_in_threadpool(store_it)
    return JSONResponse(
        {"host": host, "backup_id": backup_id, "created": created}, status_code=201 if created else 200
    )


async def list_manifests(request: Request) -> Response:
    _, account = await require(request, *_READERS)
    host = request.query_params.get("host")
    prefix = f"accounts/{account.account_id.hex()}/manifests/"
    if host is not None:
        prefix += check_host(host) + "/"
    keys = await run_in_threadpool(lambda: list(settings(request).store.list(prefix)))
    items = []
    for key in keys:
        parts = key.split("/")
        items.append({"host": parts[-2], "backup_id": parts[-1]})
    return JSONResponse({"manifests": items})


async def get_manifest(request: Request) -> Response:
    _, account = await require(request, *_READERS)
    host, backup_id = _path_ids(request)
    store = settings(request).store
    try:
        data = await run_in_threadpool(store.read, manifest_key(account, host, backup_id))
    except NotFoundError:
        raise ApiError(404, f"no manifest {host}/{backup_id}") from None
    return Response(data, media_type="application/octet-stream")


routes = [
    Route("/v1/manifests", list_manifests, methods=["GET"]),
    Route("/v1/manifests/{rest:path}", put_manifest, methods=["PUT"]),
    Route("/v1/manifests/{rest:path}", get_manifest, methods=["GET"]),
]
