"""The client transport against a real uvicorn server on 127.0.0.1 (ephemeral ports, real TLS).

Trust: only the pinned CA, whatever the environment says (system store, requests' and curl's
bundle variables, proxies); each of those tests has a control showing that the environment
would have misled a plain ``requests`` client. Retries: counted on the server.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import itertools
import socket
import ssl
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from opsbackup import pki
from opsbackup.client import Transport, parallel
from opsbackup.client.transport import TLS12_CIPHERS as CLIENT_CIPHERS
from opsbackup.errors import ConfigError, FormatError, NotFoundError, ServerRefusedError, TransportError
from opsbackup.server.tls import TLS12_CIPHERS as SERVER_CIPHERS
from opsbackup.server.tls import RunningServer, serve_in_thread

BLOB = bytes(range(256)) * 40_000  # ~10 MiB, so a stream comes in several pieces


class Recorder:
    """Per-tag request counts, shared between the server thread and the test."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.counts: Counter[str] = Counter()
        self.ranges: dict[str, list[str]] = {}
        self.in_flight = 0
        self.max_in_flight = 0

    def hit(self, tag: str) -> int:
        with self.lock:
            self.counts[tag] += 1
            return self.counts[tag]


REC = Recorder()


async def hello(request: Request) -> Response:
    return PlainTextResponse(f"hello {request.headers.get('authorization', '')}")


async def status(request: Request) -> Response:
    """/status/{tag}/{code}/{failures}: answer ``code`` ``failures`` times, then 200."""
    p = request.path_params
    n = REC.hit(p["tag"])
    await request.body()
    if n <= int(p["failures"]):
        headers = (
            {"Retry-After": request.query_params["retry_after"]}
            if "retry_after" in request.query_params
            else {}
        )
        return JSONResponse(
            {"error": request.query_params.get("msg", f"status {p['code']}")}, p["code"], headers
        )
    return PlainTextResponse(f"ok after {n}")


async def slow(request: Request) -> Response:
    if REC.hit(request.path_params["tag"]) == 1:
        await asyncio.sleep(1.0)
    return PlainTextResponse("finally")


async def upload(request: Request) -> Response:
    n = REC.hit(request.path_params["tag"])
    body = await request.body()
    if n <= int(request.path_params["failures"]):
        return PlainTextResponse("try again", 503)
    return JSONResponse({"sha256": hashlib.sha256(body).hexdigest(), "size": len(body), "attempt": n})


async def work(request: Request) -> Response:
    with REC.lock:
        REC.in_flight += 1
        REC.max_in_flight = max(REC.max_in_flight, REC.in_flight)
    await asyncio.sleep(0.05)
    with REC.lock:
        REC.in_flight -= 1
    return PlainTextResponse(request.path_params["item"])


class Dropping:
    """Raw ASGI: ``/drop/{tag}/{failures}`` drops the connection mid-body ``failures`` times."""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        _, _, tag, failures = scope["path"].split("/")
        n = REC.hit(tag)
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"1000")]})
        if n <= int(failures):
            await send({"type": "http.response.body", "body": b"x" * 100, "more_body": True})
            raise ConnectionResetError("dropping the connection on purpose")
        await send({"type": "http.response.body", "body": b"y" * 1000})


class Blob:
    """Raw ASGI: ``/blob/{tag}`` serves BLOB with Range; the first answer is cut after 3 MiB."""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        tag = scope["path"].split("/")[2]
        n = REC.hit(tag)
        rng = dict(scope["headers"]).get(b"range", b"").decode()
        REC.ranges.setdefault(tag, []).append(rng)
        start, end = 0, len(BLOB)
        if rng:
            first, _, last = rng.removeprefix("bytes=").partition("-")
            start, end = int(first), (int(last) + 1 if last else len(BLOB))
        if REC.counts.get(f"shift-{tag}"):
            start, end = start + 1, end + 1  # fault: answers another range than the one asked for
        body = BLOB[start:end]
        headers = [(b"content-length", str(len(body)).encode())]
        if rng:
            headers.append((b"content-range", f"bytes {start}-{end - 1}/{len(BLOB)}".encode()))
        await send({"type": "http.response.start", "status": 206 if rng else 200, "headers": headers})
        if n == 1:
            await send({"type": "http.response.body", "body": body[: 3 << 20], "more_body": True})
            raise ConnectionResetError("cut")
        await send({"type": "http.response.body", "body": body})


APP = Starlette(
    routes=[
        Route("/hello", hello),
        Route("/status/{tag}/{code:int}/{failures:int}", status, methods=["GET", "POST", "PUT"]),
        Route("/slow/{tag}", slow),
        Route("/upload/{tag}/{failures:int}", upload, methods=["PUT"]),
        Route("/work/{item}", work),
        Route("/drop/{tag}/{failures}", Dropping()),
        Route("/blob/{tag}", Blob()),
    ]
)


@dataclass(frozen=True)
class World:
    ca: pki.CAFiles
    server: RunningServer
    foreign_ca: pki.CAFiles
    foreign: RunningServer
    localhost_only: RunningServer
    client: pki.ClientCertFiles
    root: Path


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("transport")
    ca = pki.create_ca(root / "ca")
    good = pki.issue_server_cert(
        root / "ca", root / "good", dns_names=["localhost"], ip_addresses=["127.0.0.1"]
    )
    named = pki.issue_server_cert(root / "ca", root / "named", dns_names=["localhost"], ip_addresses=[])
    client = pki.issue_client_cert(root / "ca", root / "client", common_name="host-1")
    foreign_ca = pki.create_ca(root / "foreign-ca", common_name="some other CA")
    bad = pki.issue_server_cert(
        root / "foreign-ca", root / "bad", dns_names=["localhost"], ip_addresses=["127.0.0.1"]
    )
    with (
        serve_in_thread(APP, cert=good.cert, key=good.key) as server,
        serve_in_thread(APP, cert=bad.cert, key=bad.key) as foreign,
        serve_in_thread(APP, cert=named.cert, key=named.key) as localhost_only,
    ):
        yield World(ca, server, foreign_ca, foreign, localhost_only, client, root)


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def make(world: World, url: str | None = None, **kwargs: Any) -> tuple[Transport, Sleeps]:
    sleeps = Sleeps()
    options: dict[str, Any] = {"retries": 3, "sleep": sleeps, "jitter": lambda: 1.0, "backoff": 0.1}
    options.update(kwargs)
    transport = Transport(url or world.server.url, world.ca.cert, "tok-123", **options)
    return transport, sleeps


def tag() -> str:
    return uuid.uuid4().hex


# -- trust -----------------------------------------------------------------------------------------


def test_pinned_ca_works_and_is_the_only_anchor(world: World) -> None:
    transport, _ = make(world)
    with transport:
        assert transport.request("GET", "/hello").text == "hello Bearer tok-123"
        assert len(transport.ssl_context.get_ca_certs()) == 1  # certifi was not added behind our back
    assert transport.ssl_context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert transport.ssl_context.check_hostname
    assert CLIENT_CIPHERS == SERVER_CIPHERS


@pytest.fixture
def hostile_env(world: World, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """The foreign CA is the system store (OpenSSL's SSL_CERT_FILE/DIR) and requests'/curl's bundle."""
    store = tmp_path / "system-store"
    store.mkdir()
    bundle = store / "ca-certificates.crt"
    bundle.write_bytes(world.foreign_ca.cert.read_bytes())
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    monkeypatch.setenv("SSL_CERT_DIR", str(store))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
    monkeypatch.setenv("CURL_CA_BUNDLE", str(bundle))
    return bundle


def test_foreign_ca_refused_even_when_the_environment_trusts_it(world: World, hostile_env: Path) -> None:
    # Control: the environment really does make a default client trust the foreign server.
    assert requests.get(world.foreign.url + "/hello", timeout=10).status_code == 200
    default = ssl.create_default_context()
    with socket.create_connection(("127.0.0.1", world.foreign.port), timeout=10) as sock:
        default.wrap_socket(sock, server_hostname="127.0.0.1").close()
    transport, sleeps = make(world, world.foreign.url)
    with transport, pytest.raises(TransportError) as info:
        transport.request("GET", "/hello")
    message = info.value.message
    assert "not signed by the pinned CA" in message
    assert str(world.ca.cert) in message
    assert pki.fingerprint(world.ca.cert) in message
    assert "\n" not in message
    assert sleeps == []  # a certificate failure is never retried


def test_environment_proxies_are_ignored(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    dead = "http://127.0.0.1:9"  # discard port: nothing listens there
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(name, dead)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    with pytest.raises(requests.exceptions.ProxyError):  # control: a default session uses the proxy
        requests.get(world.server.url + "/hello", verify=str(world.ca.cert), timeout=10)
    transport, _ = make(world)
    with transport:
        assert transport.request("GET", "/hello").status_code == 200


def test_hostname_must_match(world: World) -> None:
    transport, _ = make(world, world.localhost_only.url)  # its certificate names only "localhost"
    with transport, pytest.raises(TransportError, match=r"does not name 127\.0\.0\.1"):
        transport.request("GET", "/hello")
    ok, _ = make(world, f"https://localhost:{world.localhost_only.port}")
    with ok:
        assert ok.request("GET", "/hello").status_code == 200


def test_configuration_errors(world: World, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="https://"):
        Transport(world.server.url.replace("https", "http"), world.ca.cert)
    with pytest.raises(ConfigError, match="does not exist"):
        Transport(world.server.url, tmp_path / "nope.pem")
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(world.ca.cert.read_bytes() + world.foreign_ca.cert.read_bytes())
    with pytest.raises(ConfigError, match="exactly one CA certificate"):
        Transport(world.server.url, bundle)


def test_mutual_tls(world: World) -> None:
    with serve_in_thread(
        APP,
        cert=world.root / "good" / "server.pem",
        key=world.root / "good" / "server-key.pem",
        client_ca=world.ca.cert,
    ) as mtls:
        transport, _ = make(world, mtls.url, client_cert=world.client.cert, client_key=world.client.key)
        with transport:
            assert transport.request("GET", "/hello").status_code == 200
        anonymous, _ = make(world, mtls.url, retries=1)
        with anonymous, pytest.raises(TransportError):
            anonymous.request("GET", "/hello")


# -- retries ---------------------------------------------------------------------------------------


def test_503_is_retried_with_backoff(world: World) -> None:
    t = tag()
    transport, sleeps = make(world)
    with transport:
        assert transport.request("GET", f"/status/{t}/503/2").text == "ok after 3"
    assert REC.counts[t] == 3
    assert sleeps == pytest.approx([0.1, 0.2])


def test_retry_after_is_honoured_and_capped(world: World) -> None:
    t = tag()
    transport, sleeps = make(world, max_backoff=5)
    with transport:
        transport.request("GET", f"/status/{t}/503/2?retry_after=3")
    assert sleeps == [3.0, 3.0]
    t = tag()
    transport, sleeps = make(world, max_backoff=5)
    with transport:
        transport.request("GET", f"/status/{t}/503/1?retry_after=3600")
    assert sleeps == [5.0]


def test_persistent_5xx_gives_up(world: World) -> None:
    t = tag()
    transport, sleeps = make(world)
    with transport, pytest.raises(TransportError, match=r"500 .*after 4 attempts"):
        transport.request("GET", f"/status/{t}/500/99")
    assert REC.counts[t] == 4
    assert len(sleeps) == 3


@pytest.mark.parametrize(
    ("code", "error"),
    [(400, ServerRefusedError), (401, ServerRefusedError), (403, ServerRefusedError), (404, NotFoundError)],
)
def test_4xx_is_never_retried(world: World, code: int, error: type[Exception]) -> None:
    t = tag()
    transport, sleeps = make(world)
    with transport, pytest.raises(error, match=f"{code} no such luck"):
        transport.request("POST", f"/status/{t}/{code}/99?msg=no such luck", body=b"data")
    assert REC.counts[t] == 1
    assert sleeps == []


def test_server_messages_are_one_clean_line(world: World) -> None:
    transport, _ = make(world)
    with transport, pytest.raises(ServerRefusedError) as info:
        transport.request("GET", f"/status/{tag()}/403/1?msg=%1b[31mred%0asecond line")
    assert "\x1b" not in info.value.message
    assert "\n" not in info.value.message
    assert "second line" in info.value.message


def test_dropped_connection_is_retried(world: World) -> None:
    t = tag()
    transport, sleeps = make(world)
    with transport:
        assert transport.request("GET", f"/drop/{t}/2").content == b"y" * 1000
    assert REC.counts[t] == 3
    assert len(sleeps) == 2


def test_read_timeout_is_retried(world: World) -> None:
    t = tag()
    transport, sleeps = make(world, timeout=(5.0, 0.3))
    with transport:
        assert transport.request("GET", f"/slow/{t}").text == "finally"
    assert REC.counts[t] == 2
    assert len(sleeps) == 1


def test_a_longer_read_timeout_for_one_request_waits_instead_of_retrying(world: World) -> None:
    t = tag()
    transport, sleeps = make(world, timeout=(5.0, 0.3))
    with transport:
        assert transport.request("GET", f"/slow/{t}", read_timeout=5.0).text == "finally"
        assert transport.timeout == (5.0, 0.3)  # only that request waited longer
    assert REC.counts[t] == 1
    assert sleeps == []


def test_non_idempotent_requests_are_not_resent(world: World) -> None:
    t = tag()
    transport, sleeps = make(world)
    with transport, pytest.raises(TransportError):
        transport.request("POST", f"/status/{t}/503/1", body=b"x", idempotent=False)
    with transport, pytest.raises(TransportError):
        transport.request("GET", f"/drop/{t}x/1", idempotent=False)
    assert REC.counts[t] == 1
    assert REC.counts[t + "x"] == 1
    assert sleeps == []


def test_unreachable_server(world: World) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound but not listening: connections are refused
        transport, sleeps = make(world, f"https://127.0.0.1:{port}", retries=2)
        with transport, pytest.raises(TransportError, match=r"cannot reach the server at 127\.0\.0\.1"):
            transport.request("GET", "/hello", idempotent=False)  # never sent, so retried anyway
    assert len(sleeps) == 2


# -- streaming and parallel uploads -----------------------------------------------------------------


def test_put_stream_from_file_is_resent_whole(world: World) -> None:
    t = tag()
    data = BLOB[: 3 << 20]
    source = io.BytesIO(b"HEADER" + data)
    source.seek(6)  # the body starts where the file is positioned
    transport, sleeps = make(world)
    with transport:
        answer = transport.put_stream(f"/upload/{t}/1", source).json()
    assert answer == {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data), "attempt": 2}
    assert len(sleeps) == 1


def test_put_stream_from_iterator_is_chunked_and_sent_once(world: World) -> None:
    pieces = [b"a" * 1000, b"b" * 2000, b"c"]
    transport, _ = make(world)
    with transport:
        answer = transport.put_stream(f"/upload/{tag()}/0", iter(pieces)).json()
        assert answer["sha256"] == hashlib.sha256(b"".join(pieces)).hexdigest()
        t = tag()
        with pytest.raises(TransportError, match="503"):
            transport.put_stream(f"/upload/{t}/1", iter(pieces))
    assert REC.counts[t] == 1


def test_stream_ranges(world: World) -> None:
    t = tag()
    transport, _ = make(world)
    with transport:
        REC.counts[t] = 1  # skip the cut first answer
        assert b"".join(transport.stream(f"/blob/{t}", 1000, 5000)) == BLOB[1000:6000]
        assert b"".join(transport.stream(f"/blob/{t}", len(BLOB) - 10)) == BLOB[-10:]
        assert b"".join(transport.stream(f"/blob/{t}", 5, 0)) == b""
    assert REC.ranges[t] == ["bytes=1000-5999", f"bytes={len(BLOB) - 10}-"]


def test_stream_refuses_an_answer_for_another_range(world: World) -> None:
    t = tag()
    transport, _ = make(world)
    with transport:
        REC.counts[t] = 1  # skip the cut first answer
        REC.counts[f"shift-{t}"] = 1
        with pytest.raises(FormatError, match=r"bytes 1001-6000 .* from 1000 were asked for"):
            b"".join(transport.stream(f"/blob/{t}", 1000, 5000))


def test_stream_resumes_after_a_drop(world: World) -> None:
    t = tag()
    transport, sleeps = make(world)
    with transport:
        pieces = list(transport.stream(f"/blob/{t}"))
    assert b"".join(pieces) == BLOB
    assert max(len(p) for p in pieces) <= 1 << 20
    assert REC.ranges[t] == ["", f"bytes={3 << 20}-"]
    assert len(sleeps) == 1


def test_get_bytes_is_bounded(world: World) -> None:
    t = tag()
    REC.counts[t] = 1
    transport, _ = make(world)
    with transport:
        assert transport.get_bytes(f"/blob/{t}") == BLOB
        with pytest.raises(FormatError, match="more than 1000 bytes"):
            transport.get_bytes(f"/blob/{t}", max_size=1000)


def test_parallel_runs_concurrently_in_order(world: World) -> None:
    transport, _ = make(world, workers=4)
    REC.max_in_flight = 0
    with transport:
        items = [str(i) for i in range(16)]
        results = transport.parallel(lambda item: transport.request("GET", f"/work/{item}").text, items)
    assert results == items
    assert REC.max_in_flight >= 2


def test_parallel_stops_at_the_first_error() -> None:
    started: list[int] = []
    lock = threading.Lock()

    def fn(i: int) -> int:
        with lock:
            started.append(i)
        if i == 3:
            raise ServerRefusedError("no")
        return i

    with pytest.raises(ServerRefusedError):
        parallel(fn, itertools.count(), workers=2)  # an endless input: the window keeps it bounded
    assert len(started) < 50
