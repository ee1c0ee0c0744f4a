"""The storage server's ASGI app: routes, JSON errors, and the audit log around every request.

:func:`create_app` builds a Starlette app over one :class:`ObjectStore` that holds all server
state (accounts, credential hashes, keyrings, nonces, audit log), so any number of instances can
serve one store. :class:`AuditMiddleware` appends one audit entry per HTTP request, allowed or
refused, *before* the last byte of the response is sent: a client that has read a response knows
its entry is stored, and if the entry cannot be stored the request fails instead of going unlogged.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from formats.errors import FormatError, NotFoundError
from opsbackup.server import (
    routes_delete,
    routes_envelopes,
    routes_keyring,
    routes_manifests,
    routes_objects,
)
from opsbackup.server.accounts import authenticate
from opsbackup.server.audit_log import AuditLog
from opsbackup.server.common import (
    AUDIT_SCOPE_KEY,
    ApiError,
    AuditContext,
    Settings,
    audit_context,
    settings,
)
from opsbackup.server.openapi import OPENAPI
from opsbackup.storage.base import ObjectStore

__all__ = ["DEFAULT_MAX_OBJECT_SIZE", "AuditMiddleware", "create_app"]

DEFAULT_MAX_OBJECT_SIZE = 512 * 1024 * 1024


class AuditMiddleware:
    """Pure ASGI middleware: one audit entry per HTTP request, appended before the response ends."""

    def __init__(self, app: ASGIApp, log: AuditLog) -> None:
        self.app = app
        self.log = log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        ctx = AuditContext()
        scope[AUDIT_SCOPE_KEY] = ctx
        status: int | None = None
        recorded = False

        async def record(code: int) -> None:
            nonlocal recorded
            if recorded:
                return
            recorded = True
            client = scope.get("client")
            query = scope.get("query_string", b"").decode("latin-1")
            await run_in_threadpool(
                lambda: self.log.append(
                    account_id=ctx.account_id,
                    credential_id=ctx.credential_id,
                    remote=f"{client[0]}:{client[1]}" if client else "",
                    method=str(scope.get("method", "")),
                    path=str(scope.get("path", "")) + (f"?{query}" if query else ""),
                    status=code,
                    reason=ctx.reason or ("ok" if code < 400 else "refused"),
                )
            )

        async def audited_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                await record(status or 500)
            await send(message)

        try:
            await self.app(scope, receive, audited_send)
        except Exception:
            ctx.reason = ctx.reason or "internal error"
            await record(500)
            raise
        await record(status or 500)


def _error(
    request: Request,
    status: int,
    message: str,
    headers: dict[str, str] | None = None,
    details: dict[str, object] | None = None,
) -> Response:
    audit_context(request).reason = message
    return JSONResponse({**(details or {}), "error": message}, status_code=status, headers=headers)


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return _error(request, exc.status, exc.message, exc.headers, exc.details)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    ctx = audit_context(request)
    if ctx.account_id is None and scheme.lower() == "bearer":  # log it to the account it names
        cred = await run_in_threadpool(authenticate, settings(request).store, token.strip())
        if cred is not None:
            ctx.account_id, ctx.credential_id = (
                bytes.fromhex(cred.account_id),
                bytes.fromhex(cred.credential_id),
            )
    message = {404: "no such endpoint", 405: "method not allowed for this endpoint"}.get(
        exc.status_code, str(exc.detail)
    )
    return _error(request, exc.status_code, message, dict(exc.headers or {}))


async def _format_error(request: Request, exc: Exception) -> Response:
    return _error(request, 400, f"bad request: {exc}")


async def _not_found(request: Request, exc: Exception) -> Response:
    return _error(request, 404, str(exc))


async def _openapi(request: Request) -> Response:
    return JSONResponse(OPENAPI)


def create_app(
    store: ObjectStore,
    *,
    clock: Callable[[], float] = time.time,
    max_object_size: int = DEFAULT_MAX_OBJECT_SIZE,
    delete_window: int = 300,
    max_query_names: int = 10_000,
) -> Starlette:
    """The server app over ``store``; ``clock`` (seconds) stamps audit entries and checks deletes."""
    if max_object_size <= 0:
        raise ValueError("max_object_size must be positive")
    audit = AuditLog(store, clock=clock)
    app_settings = Settings(
        store=store,
        audit=audit,
        clock=clock,
        max_object_size=max_object_size,
        delete_window=delete_window,
        max_query_names=max_query_names,
    )
    handlers: dict[Any, Callable[[Request, Exception], Any]] = {
        ApiError: _api_error,
        HTTPException: _http_error,
        FormatError: _format_error,
        NotFoundError: _not_found,
    }
    app = Starlette(
        routes=[
            Route("/v1/openapi.json", _openapi, methods=["GET"]),
            *routes_objects.routes,
            *routes_manifests.routes,
            *routes_keyring.routes,
            *routes_delete.routes,
            *routes_envelopes.routes,
        ],
        middleware=[Middleware(AuditMiddleware, log=audit)],
        exception_handlers=handlers,
    )
    app.state.settings = app_settings
    return app
