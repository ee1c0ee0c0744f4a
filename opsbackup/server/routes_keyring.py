"""The account keyring: any credential reads it (the newest or any stored version); an admin
credential uploads the next version, signed by the active root of the current one."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from formats.errors import FormatError, IntegrityError, RollbackError, WrongKeyError
from opsbackup.server.accounts import Scope
from opsbackup.server.common import ApiError, read_limited, require, settings
from opsbackup.server.keyrings import (
    KeyringConflictError,
    KeyringVersionError,
    current_keyring,
    keyring_version,
    store_keyring,
)

__all__ = ["routes"]

VERSION_HEADER = "X-Opsbackup-Keyring-Version"


async def get_keyring(request: Request) -> Response:
    _, account = await require(request, Scope.HOST, Scope.RESTORE, Scope.ADMIN)
    current = await run_in_threadpool(current_keyring, settings(request).store, account)
    if current is None:
        raise ApiError(404, "the account has no keyring yet")
    version, data = current
    return Response(data, media_type="application/octet-stream", headers={VERSION_HEADER: str(version)})


async def get_keyring_version(request: Request) -> Response:
    _, account = await require(request, Scope.HOST, Scope.RESTORE, Scope.ADMIN)
    text = request.path_params["version"]
    if not text.isascii() or not text.isdigit() or len(text) > 19 or text.startswith("0"):
        raise ApiError(400, "a keyring version is a whole number from 1")
    version = int(text)
    data = await run_in_threadpool(keyring_version, settings(request).store, account, version)
    if data is None:
        raise ApiError(404, f"the account has no keyring version {version}")
    return Response(data, media_type="application/octet-stream", headers={VERSION_HEADER: str(version)})


async def put_keyring(request: Request) -> Response:
    _, account = await require(request, Scope.ADMIN)
    s = settings(request)
    data = await read_limited(request, s.max_keyring_size, "keyring")
    try:
        keyring, created = await run_in_threadpool(store_keyring, s.store, account, data)
    except RollbackError as exc:
        raise ApiError(409, f"keyring rollback refused: {exc}") from None
    except KeyringConflictError as exc:
        raise ApiError(409, f"keyring version conflict: {exc}") from None
    except KeyringVersionError as exc:
        raise ApiError(409, f"keyring version refused: {exc}") from None
    except IntegrityError as exc:
        raise ApiError(400, f"keyring does not verify with the account's root key: {exc}") from None
    except WrongKeyError as exc:
        raise ApiError(400, f"keyring refused: {exc}") from None
    except FormatError as exc:
        raise ApiError(400, f"not a valid signed keyring: {exc}") from None
    return JSONResponse({"version": keyring.version, "created": created}, status_code=201 if created else 200)


routes = [
    Route("/v1/keyring", get_keyring, methods=["GET"]),
    Route("/v1/keyring", put_keyring, methods=["PUT"]),
    Route("/v1/keyring/{version}", get_keyring_version, methods=["GET"]),
]
