"""The data-pack path of the uploader: a pack finished into its parts and sent without a join.

Against a real TLS server (uvicorn, a private CA) that records what it receives and can answer
503 first, so retries, the Content-Length framing and the number of uploads in flight are seen
on the server's side of the wire.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from crypto.aead import SealingKey
from crypto.packs import finish_pack_named, open_pack
from crypto.primitives import random_bytes
from formats.pack import PackWriter, sealed_index_size
from formats.sealed import ObjectType
from opsbackup import pki
from opsbackup.backup.packer import PackBody, Uploader
from opsbackup.client.repository import Repository
from opsbackup.client.transport import Transport
from opsbackup.errors import TransportError
from opsbackup.server.tls import serve_in_thread

BACKUP_ID = bytes(range(16))


@dataclass
class Received:
    """What the server saw, per object name (shared with the server thread)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    bodies: dict[str, bytes] = field(default_factory=dict)
    attempts: dict[str, int] = field(default_factory=dict)
    framing: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)
    fail_first: int = 0  # 503 answers to the first PUTs of every name, before it is stored
    delay: float = 0.0
    in_flight: int = 0
    max_in_flight: int = 0


RECEIVED = Received()


async def put_object(request: Request) -> Response:
    name = request.path_params["name"]
    with RECEIVED.lock:
        RECEIVED.in_flight += 1
        RECEIVED.max_in_flight = max(RECEIVED.max_in_flight, RECEIVED.in_flight)
        attempt = RECEIVED.attempts[name] = RECEIVED.attempts.get(name, 0) + 1
    try:
        body = await request.body()
        await asyncio.sleep(RECEIVED.delay)
        if attempt <= RECEIVED.fail_first:
            return PlainTextResponse("try again", 503)
        with RECEIVED.lock:
            RECEIVED.bodies[name] = body
            RECEIVED.framing[name] = (
                request.headers.get("content-length"),
                request.headers.get("transfer-encoding"),
            )
        return PlainTextResponse("stored", 201)
    finally:
        with RECEIVED.lock:
            RECEIVED.in_flight -= 1


APP = Starlette(routes=[Route("/v1/objects/{name}", put_object, methods=["PUT"])])


@dataclass(frozen=True)
class Server:
    url: str
    ca: Path


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("packer")
    ca = pki.create_ca(root / "ca")
    cert = pki.issue_server_cert(
        root / "ca", root / "srv", dns_names=["localhost"], ip_addresses=["127.0.0.1"]
    )
    with serve_in_thread(APP, cert=cert.cert, key=cert.key) as running:
        yield Server(running.url, ca.cert)


@pytest.fixture
def received() -> Iterator[Received]:
    yield RECEIVED
    RECEIVED.delay, RECEIVED.fail_first, RECEIVED.max_in_flight = 0.0, 0, 0


def repository(server: Server, retries: int = 2) -> Repository:
    return Repository(Transport(server.url, server.ca, "token", retries=retries, backoff=0.001))


def filled(writer: PackWriter, sizes: list[int], seed: int = 0) -> list[tuple[bytes, bytes]]:
    """Add entries of ``sizes`` random sealed-looking bytes to ``writer``; return (id, sealed) pairs."""
    entries = []
    for i, size in enumerate(sizes):
        object_id = hashlib.sha256(f"{seed}/{i}".encode()).digest()
        sealed = os.urandom(size)
        writer.add(ObjectType.DATA_CHUNK, object_id, sealed)
        entries.append((object_id, sealed))
    return entries


def test_parts_join_to_exactly_the_finished_pack_and_its_name() -> None:
    sizes = [100, 70_000, 1 << 20, 5000]
    joined, parts_writer = PackWriter(BACKUP_ID), PackWriter(BACKUP_ID)
    for object_id, sealed in filled(joined, sizes):
        parts_writer.add(ObjectType.DATA_CHUNK, object_id, sealed)
    sealed_index = os.urandom(sealed_index_size(len(sizes)))
    assert joined.body_hash() == parts_writer.body_hash()  # hashing part way changes nothing
    whole = joined.finish(sealed_index)
    parts = parts_writer.finish_parts(sealed_index)
    assert b"".join(parts) == whole
    assert parts_writer.pack_hash() == joined.pack_hash() == hashlib.sha256(whole).digest()
    with pytest.raises(ValueError, match="finished"):
        parts_writer.finish_parts(sealed_index)
    with pytest.raises(ValueError, match="at least one entry"):
        PackWriter(BACKUP_ID).finish_parts(b"")
    short = PackWriter(BACKUP_ID)
    filled(short, [100])
    with pytest.raises(ValueError, match="wrong length"):
        short.finish_parts(os.urandom(sealed_index_size(1) + 1))


def test_pack_body_is_its_parts_again_after_a_rewind() -> None:
    body = PackBody([b"abc", b"", b"defgh"])
    assert len(body) == 8
    assert b"".join(body) == b"".join(body) == b"abcdefgh"
    assert body.seekable()
    assert body.tell() == 0
    assert body.seek(0) == 0
    with pytest.raises(io.UnsupportedOperation):
        body.seek(3)
    with pytest.raises(io.UnsupportedOperation):
        body.seek(0, io.SEEK_END)


def _pack(key: SealingKey, sizes: list[int], seed: int) -> tuple[PackWriter, bytes, bytes]:
    """A parts writer with entries, and the bytes and name the same entries give through crypto.packs."""
    writer, reference = PackWriter(BACKUP_ID), PackWriter(BACKUP_ID)
    for object_id, sealed in filled(writer, sizes, seed):
        reference.add(ObjectType.DATA_CHUNK, object_id, sealed)
    # Same entries, sealed index differs (fresh nonce): only the layout and lengths can be compared.
    data, name = finish_pack_named(reference, key)
    return writer, data, name


def _upload_one(server: Server, key: SealingKey, writer: PackWriter, *, retries: int = 2) -> bytes:
    names: list[bytes] = []
    uploader = Uploader(repository(server, retries), workers=1)
    try:
        uploader.submit_pack(writer, key, None, lambda tag, name, size, created: names.append(name))
        uploader.drain()
    finally:
        uploader.close()
    (name,) = names
    return name


def test_a_pack_goes_up_in_one_piece_with_its_length(server: Server, received: Received) -> None:
    key = SealingKey(random_bytes(32))
    writer, reference, _ = _pack(key, [300_000, 2_000_000, 70], seed=1)
    name = _upload_one(server, key, writer)
    body = received.bodies[name.hex()]
    assert hashlib.sha256(body).digest() == name
    assert len(body) == len(reference)
    assert received.framing[name.hex()] == (str(len(body)), None)  # Content-Length, not chunked
    opened = open_pack(body, key, backup_id=BACKUP_ID)  # a valid pack: its index opens and matches
    assert [e.object_id for e in opened.index] == [e.object_id for e in opened.pack.entries]
    assert received.attempts[name.hex()] == 1


def test_a_refused_pack_is_sent_again_from_its_first_byte(server: Server, received: Received) -> None:
    key = SealingKey(random_bytes(32))
    writer, _, _ = _pack(key, [300_000, 2_000_000, 70], seed=2)
    received.fail_first = 1
    name = _upload_one(server, key, writer)
    assert received.attempts[name.hex()] == 2
    assert hashlib.sha256(received.bodies[name.hex()]).digest() == name


def test_no_more_than_workers_packs_are_queued_or_in_flight(server: Server, received: Received) -> None:
    key = SealingKey(random_bytes(32))
    received.delay = 0.1  # uploads slower than the caller, so finished packs would pile up
    done: list[bytes] = []
    uploader = Uploader(repository(server), workers=2)
    try:
        for seed in range(6):
            writer, _, _ = _pack(key, [200_000, 10_000], seed=100 + seed)
            uploader.submit_pack(writer, key, seed, lambda tag, name, size, created: done.append(name))
            assert uploader.pending <= 2
        uploader.drain()
    finally:
        uploader.close()
    assert len(set(done)) == 6
    assert uploader.pending == 0
    assert received.max_in_flight == 2  # both threads were used, never more


def test_a_failed_pack_upload_reaches_the_caller(server: Server, received: Received) -> None:
    key = SealingKey(random_bytes(32))
    writer, _, _ = _pack(key, [1000], seed=200)
    received.fail_first = 1
    with pytest.raises(TransportError, match="503"):
        _upload_one(server, key, writer, retries=0)
