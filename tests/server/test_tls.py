"""The server's TLS policy, proved against a real uvicorn server on 127.0.0.1 (ephemeral ports).

Every refusal test has a control: the same client context completes a handshake with a
deliberately permissive server, so the refusal is the policy's doing, not the client's.
"""

from __future__ import annotations

import socket
import ssl
import threading
import warnings
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from opsbackup import pki
from opsbackup.errors import ConfigError
from opsbackup.server.tls import (
    TLS12_CIPHERS,
    RunningServer,
    make_uvicorn_config,
    serve_in_thread,
    server_ssl_context,
    uvicorn_ssl_kwargs,
)

#: What a client sees when the *server* ends a handshake it refuses: asyncio's SSL transport
#: closes without flushing the alert (EOF); a server that flushes it sends one of the alerts.
SERVER_REFUSALS = {
    "UNEXPECTED_EOF_WHILE_READING",
    "TLSV1_ALERT_PROTOCOL_VERSION",
    "SSLV3_ALERT_HANDSHAKE_FAILURE",
    "TLSV1_ALERT_INSUFFICIENT_SECURITY",
}


@dataclass(frozen=True)
class Certs:
    ca: pki.CAFiles
    ec: pki.ServerCertFiles
    rsa: pki.ServerCertFiles
    client: pki.ClientCertFiles
    foreign_client: pki.ClientCertFiles


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    root = tmp_path_factory.mktemp("pki")
    ca = pki.create_ca(root / "ca")
    names = {"dns_names": ["localhost"], "ip_addresses": ["127.0.0.1"]}
    ec_files = pki.issue_server_cert(root / "ca", root / "ec", **names)  # type: ignore[arg-type]
    rsa_files = pki.issue_server_cert(root / "ca", root / "rsa", key_type="rsa", **names)  # type: ignore[arg-type]
    client = pki.issue_client_cert(root / "ca", root / "client", common_name="host-1")
    pki.create_ca(root / "other-ca")
    foreign = pki.issue_client_cert(root / "other-ca", root / "foreign", common_name="intruder")
    return Certs(ca, ec_files, rsa_files, client, foreign)


async def hello(request: Request) -> PlainTextResponse:
    return PlainTextResponse("hello")


APP = Starlette(routes=[Route("/", hello)])


@pytest.fixture(scope="module")
def server(certs: Certs) -> Iterator[RunningServer]:
    with serve_in_thread(APP, cert=certs.ec.cert, key=certs.ec.key) as running:
        yield running


@pytest.fixture(scope="module")
def rsa_server(certs: Certs) -> Iterator[RunningServer]:
    with serve_in_thread(APP, cert=certs.rsa.cert, key=certs.rsa.key) as running:
        yield running


def client_context(maximum: ssl.TLSVersion, ciphers: str) -> ssl.SSLContext:
    """A deliberately weak client: it offers only what the test names (no verification needed)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.minimum_version = ssl.TLSVersion.TLSv1
        ctx.maximum_version = maximum
        ctx.set_ciphers(ciphers)
    return ctx


def handshake(port: int, ctx: ssl.SSLContext) -> tuple[str, str] | ssl.SSLError:
    """(version, cipher) of a handshake with 127.0.0.1:port, or the SSLError that ended it."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        try:
            with ctx.wrap_socket(sock, server_hostname="localhost") as tls:
                return str(tls.version()), tls.cipher()[0]  # type: ignore[index]
        except ssl.SSLError as exc:
            return exc


def permissive_handshake(files: pki.ServerCertFiles, ctx: ssl.SSLContext) -> tuple[str, str] | ssl.SSLError:
    """The control: the same client against a server that accepts anything OpenSSL can do."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server_ctx.minimum_version = ssl.TLSVersion.TLSv1
        server_ctx.set_ciphers("ALL:@SECLEVEL=0")
        server_ctx.load_cert_chain(files.cert, files.key)
    a, b = socket.socketpair()
    a.settimeout(10)
    b.settimeout(10)

    def serve() -> None:
        try:
            with server_ctx.wrap_socket(a, server_side=True):
                pass
        except (ssl.SSLError, OSError):
            pass

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        with ctx.wrap_socket(b, server_hostname="localhost") as tls:
            return str(tls.version()), tls.cipher()[0]  # type: ignore[index]
    except ssl.SSLError as exc:
        return exc
    finally:
        b.close()
        thread.join(10)


def assert_server_refused(result: tuple[str, str] | ssl.SSLError) -> None:
    assert isinstance(result, ssl.SSLError), f"handshake succeeded: {result}"
    assert result.reason in SERVER_REFUSALS, f"not a refusal by the server: {result}"


# -- the context itself ----------------------------------------------------------------------------


def test_context_policy(certs: Certs) -> None:
    ctx = server_ssl_context(certs.ec.cert, certs.ec.key)
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2
    assert ctx.options & ssl.OP_NO_COMPRESSION
    assert ctx.options & ssl.OP_NO_RENEGOTIATION
    assert ctx.verify_mode == ssl.CERT_NONE
    tls12 = [c for c in ctx.get_ciphers() if c["protocol"] == "TLSv1.2"]
    assert tls12, "no TLS 1.2 suites at all"
    for cipher in tls12:
        assert cipher["kea"] == "kx-ecdhe", cipher["name"]
        assert cipher["aead"], cipher["name"]
    mtls = server_ssl_context(certs.ec.cert, certs.ec.key, client_ca=certs.ca.cert)
    assert mtls.verify_mode == ssl.CERT_REQUIRED


def test_bad_files_are_config_errors(certs: Certs, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        server_ssl_context(tmp_path / "missing.pem", certs.ec.key)
    with pytest.raises(ConfigError, match="cannot load"):
        server_ssl_context(certs.ec.cert, certs.rsa.key)  # key of another certificate
    with pytest.raises(ConfigError, match="client CA"):
        make_uvicorn_config(
            APP, host="127.0.0.1", port=1, cert=certs.ec.cert, key=certs.ec.key, client_ca=tmp_path / "x"
        )


def test_uvicorn_kwargs_express_the_policy(certs: Certs) -> None:
    kwargs = uvicorn_ssl_kwargs(certs.ec.cert, certs.ec.key, client_ca=certs.ca.cert)
    assert kwargs["ssl_ciphers"] == TLS12_CIPHERS
    assert kwargs["ssl_cert_reqs"] == ssl.CERT_REQUIRED
    assert kwargs["ssl_ca_certs"] == str(certs.ca.cert)
    config = uvicorn.Config(APP, log_config=None, **kwargs)
    config.load()
    assert config.ssl is not None
    assert config.ssl.minimum_version == ssl.TLSVersion.TLSv1_2
    assert config.ssl.verify_mode == ssl.CERT_REQUIRED
    expected = server_ssl_context(certs.ec.cert, certs.ec.key).get_ciphers()
    assert [c["name"] for c in config.ssl.get_ciphers()] == [c["name"] for c in expected]


# -- against a running server ----------------------------------------------------------------------


def test_serve_in_thread_ports_and_stop(certs: Certs, server: RunningServer) -> None:
    assert server.port != 0
    assert server.url == f"https://127.0.0.1:{server.port}"
    with serve_in_thread(APP, cert=certs.ec.cert, key=certs.ec.key) as second:
        assert second.port != server.port
        port = second.port
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()


def test_serve_in_thread_reports_a_failed_start(certs: Certs) -> None:
    @asynccontextmanager
    async def broken(app: Starlette) -> AsyncIterator[None]:
        raise RuntimeError("startup fails")
        yield

    with pytest.raises(RuntimeError, match="did not start"):
        serve_in_thread(Starlette(lifespan=broken), cert=certs.ec.cert, key=certs.ec.key, lifespan="on")


def test_modern_clients_are_served(server: RunningServer, certs: Certs) -> None:
    ctx = ssl.create_default_context(cafile=str(certs.ca.cert))
    with (
        socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock,
        ctx.wrap_socket(sock, server_hostname="127.0.0.1") as tls,
    ):
        assert tls.version() == "TLSv1.3"
        tls.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        assert tls.recv(4096).startswith(b"HTTP/1.1 200")
    result = handshake(server.port, client_context(ssl.TLSVersion.TLSv1_2, "ECDHE-ECDSA-AES128-GCM-SHA256"))
    assert result == ("TLSv1.2", "ECDHE-ECDSA-AES128-GCM-SHA256")
    result = handshake(server.port, client_context(ssl.TLSVersion.TLSv1_2, "ECDHE-ECDSA-CHACHA20-POLY1305"))
    assert result == ("TLSv1.2", "ECDHE-ECDSA-CHACHA20-POLY1305")


def test_tls11_client_is_refused_by_the_server(server: RunningServer, certs: Certs) -> None:
    ctx = client_context(ssl.TLSVersion.TLSv1_1, "DEFAULT:@SECLEVEL=0")
    assert permissive_handshake(certs.ec, ctx)[0] == "TLSv1.1"  # type: ignore[index]
    assert_server_refused(handshake(server.port, ctx))


def test_tls12_cbc_suites_are_refused(server: RunningServer, certs: Certs) -> None:
    ctx = client_context(
        ssl.TLSVersion.TLSv1_2, "ECDHE-ECDSA-AES128-SHA256:ECDHE-ECDSA-AES256-SHA:@SECLEVEL=0"
    )
    assert permissive_handshake(certs.ec, ctx)[0] == "TLSv1.2"  # type: ignore[index]
    assert_server_refused(handshake(server.port, ctx))


def test_tls12_rsa_key_exchange_is_refused(rsa_server: RunningServer, certs: Certs) -> None:
    ctx = client_context(ssl.TLSVersion.TLSv1_2, "AES128-GCM-SHA256:AES256-GCM-SHA384:@SECLEVEL=0")
    assert permissive_handshake(certs.rsa, ctx)[1] in {"AES128-GCM-SHA256", "AES256-GCM-SHA384"}  # type: ignore[index]
    assert_server_refused(handshake(rsa_server.port, ctx))
    modern = client_context(ssl.TLSVersion.TLSv1_2, "ECDHE-RSA-AES128-GCM-SHA256")
    assert handshake(rsa_server.port, modern) == ("TLSv1.2", "ECDHE-RSA-AES128-GCM-SHA256")


def _http_get(port: int, ctx: ssl.SSLContext) -> bytes:
    """The first bytes of the answer to GET /, or b"" if the server ended the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        try:
            with ctx.wrap_socket(sock, server_hostname="localhost") as tls:
                tls.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                return tls.recv(4096)
        except (ssl.SSLError, ConnectionResetError, BrokenPipeError):
            return b""


def test_mutual_tls(certs: Certs) -> None:
    def client(files: pki.ClientCertFiles | None) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(certs.ca.cert))
        if files is not None:
            ctx.load_cert_chain(files.cert, files.key)
        return ctx

    with serve_in_thread(APP, cert=certs.ec.cert, key=certs.ec.key, client_ca=certs.ca.cert) as mtls:
        assert _http_get(mtls.port, client(certs.client)).startswith(b"HTTP/1.1 200")
        assert _http_get(mtls.port, client(None)) == b""
        assert _http_get(mtls.port, client(certs.foreign_client)) == b""
