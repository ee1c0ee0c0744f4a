"""Key envelopes: store a backup's signed wrapped keys, replace them on a re-wrap, fetch, list.

A backup's envelope (docs/spec/key-envelope.md) is kept as one object per generation,
``accounts/<account>/envelopes/<backup id>/<generation:020d>``, each created with a conditional
create, so that concurrent writers and several server instances over one store are safe without
any state outside the store. The current envelope is the highest generation stored.

An upload is checked in this order: the signature against the current keyring's active host and
deletion keys (before the body is decoded), the body (its account and backup id must be the
caller's and the URL's), its signer's role (generation 0: a host key; later: a deletion key),
then its recipients (exactly the current keyring's, else 409: re-wrap). Generation 0 is
create-only; a later generation must replace a lower one, and once it is stored every lower
generation is deleted, so the old wrapped keys leave the server.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from crypto.envelope_check import check_recipients, open_envelope, storers_trusted_signers
from formats.envelope import Envelope
from formats.errors import FormatError, IntegrityError, NotFoundError, WrongKeyError
from formats.roles import Role
from opsbackup.server.accounts import Account, Scope
from opsbackup.server.common import (
    ApiError,
    check_backup_id,
    envelope_prefix,
    envelopes_prefix,
    list_page,
    page_query,
    read_limited,
    require,
    settings,
)
from opsbackup.server.keyrings import load_keyring
from opsbackup.storage.base import ObjectStore

__all__ = ["GENERATION_HEADER", "KEYRING_VERSION_HEADER", "delete_envelope", "envelope_exists", "routes"]

#: The generation of the envelope a GET returns.
GENERATION_HEADER = "X-Opsbackup-Envelope-Generation"
#: Sent with the 409 that asks the client to re-wrap: the current keyring version.
KEYRING_VERSION_HEADER = "X-Opsbackup-Keyring-Version"
_WRITERS = (Scope.HOST, Scope.ADMIN)
_READERS = (Scope.HOST, Scope.RESTORE, Scope.ADMIN)
_LISTERS = (Scope.RESTORE, Scope.ADMIN)
_BACKUP_ID = re.compile(r"[0-9a-f]{32}")
_GENERATION = re.compile(r"[0-9]{20}")


def _generations(store: ObjectStore, account: Account, backup_id: str) -> list[int]:
    """The stored generations of one envelope, ascending."""
    found = (key.rsplit("/", 1)[-1] for key in store.list(envelope_prefix(account, backup_id)))
    return sorted(int(g) for g in found if _GENERATION.fullmatch(g))


def _key(account: Account, backup_id: str, generation: int) -> str:
    return f"{envelope_prefix(account, backup_id)}{generation:020d}"


def envelope_exists(store: ObjectStore, account: Account, backup_id: bytes) -> bool:
    """Whether some generation of ``backup_id``'s envelope is stored."""
    return bool(_generations(store, account, backup_id.hex()))


def delete_envelope(store: ObjectStore, account: Account, backup_id: bytes) -> bool:
    """Delete every stored generation of ``backup_id``'s envelope; False if there was none."""
    deleted = False
    for g in _generations(store, account, backup_id.hex()):
        deleted = store.delete(_key(account, backup_id.hex(), g)) or deleted
    return deleted


def _check(store: ObjectStore, account: Account, data: bytes, backup_id: str) -> Envelope:
    """Verify first, then decode, then the signer's role and the recipients."""
    keyring = load_keyring(store, account)
    if keyring is None:
        raise ApiError(409, "the account has no keyring yet: upload it first (PUT /v1/keyring)")
    try:
        env, signer = open_envelope(
            data,
            trusted=storers_trusted_signers(keyring),
            account_id=account.account_id,
            backup_id=bytes.fromhex(backup_id),
        )
    except WrongKeyError:
        raise ApiError(
            403, "key envelope is not signed by a current host or deletion key of this account"
        ) from None
    except IntegrityError as exc:
        raise ApiError(400, f"key envelope refused: {exc}") from None
    except FormatError as exc:
        raise ApiError(400, f"not a signed key envelope: {exc}") from None
    role = keyring.entry(signer).role
    if env.generation == 0 and role is not Role.HOST:
        raise ApiError(403, "a generation-0 key envelope must be signed by a host key")
    if env.generation > 0 and role is not Role.DELETION:
        raise ApiError(403, "a re-wrapped key envelope (generation >= 1) must be signed by a deletion key")
    try:
        check_recipients(env, keyring)
    except WrongKeyError as exc:
        raise ApiError(409, str(exc), {KEYRING_VERSION_HEADER: str(keyring.version)}) from None
    return env


def _store(store: ObjectStore, account: Account, env: Envelope, data: bytes) -> bool:
    """Store ``env`` (its signed bytes ``data``); True if created, False if already there."""
    backup_id = env.backup_id.hex()
    g = env.generation
    key = _key(account, backup_id, g)
    stored = _generations(store, account, backup_id)
    if g in stored:
        if store.read(key) != data:
            raise ApiError(409, f"generation {g} of this key envelope is already stored with other content")
        return False
    if g == 0 and stored:
        raise ApiError(409, "this key envelope was already re-wrapped; a generation 0 cannot be added")
    if g > 0 and not stored:
        raise ApiError(409, "no key envelope to re-wrap: a re-wrap replaces a stored generation")
    if stored and g < stored[-1]:
        raise ApiError(409, f"generation {g} is older than the stored generation {stored[-1]}")
    if not store.put(key, io.BytesIO(data), overwrite=False):  # lost a race with the same generation
        if store.read(key) != data:
            raise ApiError(409, f"generation {g} of this key envelope is already stored with other content")
        return False
    # The new envelope is stored: now the old wrapped keys go. Everything below the highest
    # generation present goes, so a re-wrap that lost a race removes itself too.
    present = _generations(store, account, backup_id)
    for old in present[:-1]:
        store.delete(_key(account, backup_id, old))
    return True


async def put_envelope(request: Request) -> Response:
    _, account = await require(request, *_WRITERS)
    backup_id = check_backup_id(request.path_params["backup_id"])
    s = settings(request)
    data = await read_limited(request, s.max_envelope_size, "key envelope")
    env = await run_in_threadpool(_check, s.store, account, data, backup_id)
    created = await run_in_threadpool(_store, s.store, account, env, data)
    return JSONResponse(
        {"backup_id": backup_id, "generation": env.generation, "created": created},
        status_code=201 if created else 200,
    )


async def get_envelope(request: Request) -> Response:
    _, account = await require(request, *_READERS)
    backup_id = check_backup_id(request.path_params["backup_id"])
    store = settings(request).store

    def newest() -> tuple[int, bytes]:
        for g in reversed(_generations(store, account, backup_id)):
            try:
                return g, store.read(_key(account, backup_id, g))
            except NotFoundError:  # replaced while we looked: a higher one exists
                continue
        raise ApiError(404, f"no key envelope for backup {backup_id}")

    generation, data = await run_in_threadpool(newest)
    return Response(data, media_type="application/octet-stream", headers={GENERATION_HEADER: str(generation)})


def _list(store: ObjectStore, account: Account, after: str, limit: int) -> tuple[list[str], str | None]:
    prefix = envelopes_prefix(account)

    def ids() -> Iterator[str]:
        last = ""
        for key in store.list(prefix):
            backup_id = key[len(prefix) :].split("/", 1)[0]
            if backup_id != last and _BACKUP_ID.fullmatch(backup_id):
                last = backup_id
                yield backup_id

    return list_page(ids(), after, limit, lambda backup_id: backup_id)


async def list_envelopes(request: Request) -> Response:
    _, account = await require(request, *_LISTERS)
    after, limit = page_query(request, _BACKUP_ID, "a backup id (32 lower-case hex digits)")
    page, cursor = await run_in_threadpool(_list, settings(request).store, account, after, limit)
    return JSONResponse({"envelopes": page, "next": cursor})


routes = [
    Route("/v1/envelopes", list_envelopes, methods=["GET"]),
    Route("/v1/envelopes/{backup_id}", put_envelope, methods=["PUT"]),
    Route("/v1/envelopes/{backup_id}", get_envelope, methods=["GET"]),
]
