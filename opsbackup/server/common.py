"""What every route shares: settings, the per-request audit context, errors, auth and storage keys."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from opsbackup.server.accounts import Account, Credential, Scope, authenticate, get_account
from opsbackup.server.audit_log import AuditLog
from opsbackup.storage.base import ObjectStore

__all__ = [
    "AUDIT_SCOPE_KEY",
    "MAX_LIST_PAGE",
    "ApiError",
    "AuditContext",
    "Settings",
    "audit_context",
    "check_backup_id",
    "check_host",
    "check_object_name",
    "envelope_prefix",
    "envelopes_prefix",
    "list_page",
    "manifest_key",
    "object_key",
    "page_query",
    "read_limited",
    "require",
    "settings",
]

#: Key of the :class:`AuditContext` in the ASGI scope (set by the audit middleware).
AUDIT_SCOPE_KEY = "opsbackup.audit"
_OBJECT_NAME_RE = re.compile(r"[0-9a-f]{64}")
_BACKUP_ID_RE = re.compile(r"[0-9a-f]{32}")
_HOST_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}")
#: The most entries one listing page returns (and its default).
MAX_LIST_PAGE = 10_000
T = TypeVar("T")


class ApiError(Exception):
    """A refusal: becomes ``{"error": message}`` with ``status`` (and is audited with its reason).

    ``details`` adds fields to the JSON body beside ``error`` (documented per route in docs/api.md).
    """

    def __init__(
        self,
        status: int,
        message: str,
        headers: dict[str, str] | None = None,
        details: dict[str, object] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}
        self.details = details or {}


@dataclass
class AuditContext:
    """Filled in while a request is handled; the middleware appends it to the right chain."""

    account_id: bytes | None = None
    credential_id: bytes = b""
    reason: str = ""


@dataclass(frozen=True)
class Settings:
    """The app's collaborators and limits (``app.state.settings``)."""

    store: ObjectStore
    audit: AuditLog
    clock: Callable[[], float] = time.time
    max_object_size: int = 512 * 1024 * 1024
    max_manifest_size: int = 64 * 1024 * 1024
    max_keyring_size: int = 4 * 1024 * 1024
    max_delete_size: int = 8 * 1024 * 1024
    max_envelope_size: int = 4 * 1024 * 1024
    max_query_names: int = 10_000
    delete_window: int = 300


def settings(request: Request) -> Settings:
    s = request.app.state.settings
    assert isinstance(s, Settings)
    return s


def audit_context(request: Request) -> AuditContext:
    ctx = request.scope.get(AUDIT_SCOPE_KEY)
    if not isinstance(ctx, AuditContext):  # only when a route runs without the middleware
        ctx = request.scope[AUDIT_SCOPE_KEY] = AuditContext()
    return ctx


async def require(request: Request, *scopes: Scope) -> tuple[Credential, Account]:
    """The request's credential and account; 401 without a valid one, 403 if its scope is not allowed."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if not header:
        raise ApiError(401, "missing credential: send Authorization: Bearer <token>", _CHALLENGE)
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "malformed Authorization header: expected Bearer <token>", _CHALLENGE)
    store = settings(request).store
    cred = await run_in_threadpool(authenticate, store, token.strip())
    if cred is None:
        raise ApiError(401, "invalid credential: unknown, revoked or malformed token", _CHALLENGE)
    account = await run_in_threadpool(get_account, store, bytes.fromhex(cred.account_id))
    ctx = audit_context(request)
    ctx.account_id = account.account_id
    ctx.credential_id = bytes.fromhex(cred.credential_id)
    if cred.scope not in scopes:
        allowed = ", ".join(str(s) for s in scopes)
        raise ApiError(403, f"a {cred.scope} credential may not do this (needs: {allowed})")
    return cred, account


_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="opsbackup"'}


def check_object_name(name: str) -> str:
    if not _OBJECT_NAME_RE.fullmatch(name):
        raise ApiError(400, "invalid object name: it must be 64 lower-case hex digits (SHA-256)")
    return name


def check_host(host: str) -> str:
    if not _HOST_RE.fullmatch(host) or host.endswith(".tmp"):
        raise ApiError(400, "invalid host label: use a-z, 0-9, '.', '_', '-' (max 63, not ending .tmp)")
    return host


def check_backup_id(backup_id: str) -> str:
    if not _BACKUP_ID_RE.fullmatch(backup_id):
        raise ApiError(400, "invalid backup id: it must be 32 lower-case hex digits")
    return backup_id


def object_key(account: Account, name: str) -> str:
    return f"accounts/{account.account_id.hex()}/objects/{name[:2]}/{name}"


def manifest_key(account: Account, host: str, backup_id: str) -> str:
    return f"accounts/{account.account_id.hex()}/manifests/{host}/{backup_id}"


def envelopes_prefix(account: Account) -> str:
    """Where every key envelope of the account is kept."""
    return f"accounts/{account.account_id.hex()}/envelopes/"


def envelope_prefix(account: Account, backup_id: str) -> str:
    """Where every stored generation of one backup's key envelope is kept (``<generation:020d>``)."""
    return f"{envelopes_prefix(account)}{backup_id}/"


def page_query(request: Request, name: re.Pattern[str], what: str) -> tuple[str, int]:
    """``(after, limit)`` of a listing request; 400 for an ``after`` that is not ``what``."""
    after = request.query_params.get("after", "")
    if after and not name.fullmatch(after):
        raise ApiError(400, f"invalid 'after': it must be {what}")
    raw_limit = request.query_params.get("limit", str(MAX_LIST_PAGE))
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= MAX_LIST_PAGE:
        raise ApiError(400, f"invalid 'limit': a number from 1 to {MAX_LIST_PAGE}")
    return after, int(raw_limit)


def list_page(
    names: Iterable[str], after: str, limit: int, describe: Callable[[str], T | None]
) -> tuple[list[T], str | None]:
    """Up to ``limit`` entries for the sorted ``names`` after ``after``, and the next cursor.

    ``describe`` turns a name into its entry, or ``None`` to skip it (deleted while listing).
    The cursor is the last name of a full page when more names follow, else ``None``.
    """
    page: list[T] = []
    last = ""
    for name in names:
        if name <= after:
            continue
        if len(page) == limit:
            return page, last
        entry = describe(name)
        if entry is not None:
            page.append(entry)
            last = name
    return page, None


async def read_limited(request: Request, limit: int, what: str) -> bytes:
    """The whole body of a small request (keyring, manifest, query), refused past ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f"{what} is larger than the limit of {limit} bytes")
    parts: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, f"{what} is larger than the limit of {limit} bytes")
        parts.append(chunk)
    return b"".join(parts)
