"""Manifests: create-only upload (signature checked against the keyring's host keys, key envelopes
and every named object present), list, fetch.

Order of the checks of a PUT (docs/api.md): credential and scope, path, size; the signature
(before the body is parsed), the body against the URL and the account; then the manifest is
recorded as pending (:mod:`opsbackup.server.pending`) and must not need anything a delete in
progress is removing; then every object the manifest names must be stored; then the key
envelopes; only then the create-only store, and the pending record is dropped. The
presence check reads the shared storage during the request (no per-instance state), so a
manifest naming an object a prune has already swept is refused (409 with
``X-Opsbackup-Missing-Objects``) instead of being stored unrestorable. It comes before the
envelope check because a sweep that deletes a source's envelope deletes that source's
unreferenced packs in the same request: the client must hear "objects missing, run again", not
"upload the envelope first".
"""

from __future__ import annotations

import io

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from crypto.manifest_check import verify_manifest
from formats.errors import FormatError, IntegrityError, NotFoundError, WrongKeyError
from formats.manifest import Manifest
from formats.roles import Role
from opsbackup.server import pending
from opsbackup.server.accounts import Account, Scope
from opsbackup.server.common import (
    ApiError,
    check_backup_id,
    check_host,
    manifest_key,
    object_key,
    read_limited,
    require,
    settings,
)
from opsbackup.server.keyrings import load_keyring
from opsbackup.server.routes_envelopes import envelope_exists
from opsbackup.storage.base import ObjectStore

__all__ = ["routes"]

#: The header of the "objects missing" 409: how many named objects are not stored.
MISSING_HEADER = "X-Opsbackup-Missing-Objects"
_SHOWN = 3  # missing names quoted in the error line
_READERS = (Scope.HOST, Scope.RESTORE, Scope.ADMIN)
_WRITERS = (Scope.HOST, Scope.ADMIN)


def _path_ids(request: Request) -> tuple[str, str]:
    parts = str(request.path_params["rest"]).split("/")
    if len(parts) != 2:
        raise ApiError(400, "a manifest is named /v1/manifests/{host}/{backup-id}")
    return check_host(parts[0]), check_backup_id(parts[1])


def _check_signed(store: ObjectStore, account: Account, data: bytes, host: str, backup_id: str) -> Manifest:
    """Verify first, then decode; then the manifest must be the one its URL names."""
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
    return body


def _check_envelopes(store: ObjectStore, account: Account, body: Manifest) -> None:
    """The manifest must be readable: the key envelope of the backup itself and of every source it
    reuses packs of is stored (a backup is never stored unreadable; the host uploads its envelope
    first)."""
    for needed in (body.backup_id, *body.sources):
        if not envelope_exists(store, account, needed):
            raise ApiError(
                409,
                f"upload the key envelope first: backup {needed.hex()} has none "
                f"(PUT /v1/envelopes/{needed.hex()})",
            )


def _missing_objects(store: ObjectStore, account: Account, body: Manifest) -> list[str]:
    """The names (hex, sorted) of the objects ``body`` lists that the account's storage lacks."""
    names = sorted({obj.name.hex() for obj in body.objects})
    keys = {object_key(account, name): name for name in names}
    found = store.exists_many(keys)
    return [name for key, name in keys.items() if key not in found]


def _doomed(store: ObjectStore, account: Account, body: Manifest, now: float) -> tuple[list[str], list[str]]:
    """The objects and envelopes (hex, sorted) ``body`` needs that a delete in progress removes."""
    needs = pending.Needs()
    needs.add(body)
    objects: set[bytes] = set()
    envelopes: set[bytes] = set()
    for req in pending.pending_deletes(store, account, now):
        objects.update(needs.objects.intersection(req.objects))
        envelopes.update(needs.envelopes.intersection(req.envelopes))
    return sorted(n.hex() for n in objects), sorted(e.hex() for e in envelopes)


def _doomed_error(objects: list[str], envelopes: list[str]) -> ApiError:
    what = f"{len(objects)} objects" + (f" and {len(envelopes)} key envelopes" if envelopes else "")
    return ApiError(
        409,
        f"{what} the manifest needs are being deleted by a prune right now; nothing was stored: "
        "upload them again",
        {MISSING_HEADER: str(len(objects) + len(envelopes))},
        {"deleting": objects, "deleting_envelopes": envelopes},
    )


def _missing_error(missing: list[str]) -> ApiError:
    shown = ", ".join(missing[:_SHOWN]) + (", ..." if len(missing) > _SHOWN else "")
    return ApiError(
        409,
        f"{len(missing)} objects the manifest names are not stored ({shown}); nothing was stored: "
        "upload them again (a prune may have swept them)",
        {MISSING_HEADER: str(len(missing))},
    )


async def put_manifest(request: Request) -> Response:
    _, account = await require(request, *_WRITERS)
    host, backup_id = _path_ids(request)
    s = settings(request)
    data = await read_limited(request, s.max_manifest_size, "manifest")
    body = await run_in_threadpool(_check_signed, s.store, account, data, host, backup_id)
    key = manifest_key(account, host, backup_id)

    def same_as_stored() -> bool:
        if s.store.read(key) != data:
            raise ApiError(
                409, "this manifest already exists with other content; manifests are never replaced"
            )
        return False

    def check_and_store() -> bool:
        started = s.clock()
        record = pending.record_manifest(s.store, account, host, backup_id, data, started)
        try:  # recorded before anything is checked: a delete that has not seen the record yet sees it now
            return store_it(started)
        finally:
            pending.drop(s.store, record)

    def refusal(started: float) -> ApiError | None:
        """What keeps the manifest from being stored: a delete in progress, or missing objects."""
        doomed_objects, doomed_envelopes = _doomed(s.store, account, body, started)
        if doomed_objects or doomed_envelopes:
            return _doomed_error(doomed_objects, doomed_envelopes)
        missing = _missing_objects(s.store, account, body)
        return _missing_error(missing) if missing else None

    def store_it(started: float) -> bool:
        refused = refusal(started)
        if refused is not None:
            try:  # a retry of a manifest stored earlier is answered as before: it is published
                return same_as_stored()
            except NotFoundError:
                raise refused from None
        _check_envelopes(s.store, account, body)
        pending.check_deadline(started, s.clock(), "storing the manifest")
        if s.store.put(key, io.BytesIO(data), overwrite=False):
            return True
        return same_as_stored()

    created = await run_in_threadpool(check_and_store)
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
