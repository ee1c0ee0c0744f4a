"""Content-addressed objects: PUT (verified, create-only), GET/HEAD with ranges, batch query, listing."""

from __future__ import annotations

import hashlib
import io
import json
import re
from collections.abc import Iterator

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from formats.errors import FormatError, IntegrityError, NotFoundError
from opsbackup.server.accounts import Scope
from opsbackup.server.common import (
    MAX_LIST_PAGE,
    ApiError,
    check_object_name,
    list_page,
    object_key,
    page_query,
    read_limited,
    require,
    settings,
)
from opsbackup.server.streaming import BodyReader, BodyTooLargeError
from opsbackup.storage.base import ObjectStore

__all__ = ["MAX_LIST_PAGE", "parse_range", "routes"]

_RANGE_RE = re.compile(r"bytes=(\d*)-(\d*)")
_OBJECT_NAME = re.compile(r"[0-9a-f]{64}")
_READERS = (Scope.HOST, Scope.RESTORE, Scope.ADMIN)
_WRITERS = (Scope.HOST, Scope.ADMIN)
_LISTERS = (Scope.RESTORE, Scope.ADMIN)


def parse_range(header: str, size: int) -> tuple[int, int]:
    """``(offset, length)`` of a single ``bytes=`` range; 400 if malformed, 416 if unsatisfiable."""
    m = _RANGE_RE.fullmatch(header.strip())
    if m is None or (not m.group(1) and not m.group(2)):
        raise ApiError(400, "unsupported Range header: send one range, bytes=START-END")
    first, last = m.group(1), m.group(2)
    if not first:  # suffix range: the last N bytes
        n = int(last)
        if n == 0 or size == 0:
            raise ApiError(416, "range not satisfiable", {"Content-Range": f"bytes */{size}"})
        return max(size - n, 0), min(n, size)
    start = int(first)
    end = size - 1 if not last else min(int(last), size - 1)
    if last and int(last) < start:
        raise ApiError(400, "invalid Range header: END is before START")
    if start >= size:
        raise ApiError(416, "range not satisfiable", {"Content-Range": f"bytes */{size}"})
    return start, end - start + 1


async def _drain_and_check(request: Request, digest: bytes, limit: int) -> None:
    """Read a body without storing it and check that it is the object it claims to be."""
    h = hashlib.sha256()
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, f"object is larger than the limit of {limit} bytes")
        h.update(chunk)
    if h.digest() != digest:
        raise ApiError(400, "body does not hash to its name (SHA-256 mismatch); nothing stored")


async def put_object(request: Request) -> Response:
    _, account = await require(request, *_WRITERS)
    name = check_object_name(request.path_params["name"])
    s = settings(request)
    limit = s.max_object_size
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f"object is larger than the limit of {limit} bytes; nothing stored")
    key, digest = object_key(account, name), bytes.fromhex(name)
    if await run_in_threadpool(s.store.exists, key):
        await _drain_and_check(request, digest, limit)
        return JSONResponse({"name": name, "created": False}, status_code=200)
    reader = io.BufferedReader(BodyReader(request.stream(), limit), 1 << 20)
    try:
        created = await run_in_threadpool(
            lambda: s.store.put(key, reader, sha256=digest, max_size=limit, overwrite=False)
        )
    except (BodyTooLargeError, FormatError):
        raise ApiError(413, f"object is larger than the limit of {limit} bytes; nothing stored") from None
    except IntegrityError:
        raise ApiError(400, "body does not hash to its name (SHA-256 mismatch); nothing stored") from None
    return JSONResponse({"name": name, "created": created}, status_code=201 if created else 200)


async def get_object(request: Request) -> Response:
    _, account = await require(request, *_READERS)
    name = check_object_name(request.path_params["name"])
    store = settings(request).store
    key = object_key(account, name)
    try:
        size = await run_in_threadpool(store.size, key)
    except NotFoundError:
        raise ApiError(404, f"no object {name}") from None
    headers = {"Accept-Ranges": "bytes", "ETag": f'"{name}"'}
    offset, length, status = 0, size, 200
    range_header = request.headers.get("range")
    if range_header is not None:
        offset, length = parse_range(range_header, size)
        status = 206
        headers["Content-Range"] = f"bytes {offset}-{offset + length - 1}/{size}"
    headers["Content-Length"] = str(length)
    if request.method == "HEAD":
        return Response(status_code=status, headers=headers, media_type="application/octet-stream")
    return StreamingResponse(
        store.get(key, offset=offset, length=length),
        status_code=status,
        headers=headers,
        media_type="application/octet-stream",
    )


async def query_objects(request: Request) -> Response:
    _, account = await require(request, *_READERS)
    s = settings(request)
    body = await read_limited(request, 80 * s.max_query_names + 1024, "query")
    try:
        doc = json.loads(body)
    except ValueError:
        raise ApiError(400, 'query body must be JSON: {"names": [hex, ...]}') from None
    names = doc.get("names") if isinstance(doc, dict) else None
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ApiError(400, 'query body must be JSON: {"names": [hex, ...]}')
    if len(names) > s.max_query_names:
        raise ApiError(413, f"a query names at most {s.max_query_names} objects")
    keys = {object_key(account, check_object_name(n)): n for n in names}
    present = await run_in_threadpool(s.store.exists_many, list(keys))
    return JSONResponse({"present": sorted(keys[k] for k in present)})


def _list_page(
    store: ObjectStore, prefix: str, after: str, limit: int
) -> tuple[list[dict[str, object]], str | None]:
    """Up to ``limit`` objects (name, size) after ``after`` in name order, and the next cursor.

    The sizes come with the listing (:meth:`ObjectStore.list_sizes`): on S3 from the
    ``ListObjectsV2`` pages, not one ``HeadObject`` per object. A key not at its object's place
    (``PREFIX/ab/ab...``) is not one of the account's objects and is skipped. The store listing
    starts after ``after``'s own key (``start_after``): objects' keys sort as their names do, so
    nothing before it can be on this page, and page p costs what page 1 does (on S3 about 10
    ``ListObjectsV2`` for 10,000 names, where listing from the start cost some 10·p).
    """
    sizes: dict[str, int] = {}  # of the names after ``after`` read so far: at most limit + 1
    start_after = f"{prefix}{after[:2]}/{after}" if after else None

    def names() -> Iterator[str]:
        for key, size in store.list_sizes(prefix, start_after=start_after):
            name = key.rsplit("/", 1)[-1]
            if name > after and _OBJECT_NAME.fullmatch(name) and key == f"{prefix}{name[:2]}/{name}":
                sizes[name] = size
                yield name

    return list_page(names(), after, limit, lambda name: {"name": name, "size": sizes[name]})


async def list_objects(request: Request) -> Response:
    _, account = await require(request, *_LISTERS)
    s = settings(request)
    after, limit = page_query(request, _OBJECT_NAME, "an object name (64 lower-case hex digits)")
    prefix = f"accounts/{account.account_id.hex()}/objects/"
    page, cursor = await run_in_threadpool(_list_page, s.store, prefix, after, limit)
    return JSONResponse({"objects": page, "next": cursor})


routes = [
    Route("/v1/objects", list_objects, methods=["GET"]),
    Route("/v1/objects/query", query_objects, methods=["POST"]),
    Route("/v1/objects/{name:path}", put_object, methods=["PUT"]),
    Route("/v1/objects/{name:path}", get_object, methods=["GET", "HEAD"]),
]
