"""The server's TLS policy, and uvicorn running under it (in production and in every test).

Policy: TLS 1.2 or 1.3 only. TLS 1.3 suites are all forward-secret AEAD; for TLS 1.2 only
ECDHE key exchange with AES-GCM or ChaCha20-Poly1305 is offered (no static RSA key exchange, no
CBC, no SHA-1 MACs), with server cipher preference, no compression and no renegotiation. With a
``client_ca`` the server requires a client certificate issued by it (mutual TLS). The exact
policy and why it is what it is: ``docs/server.md``, "TLS configuration".
"""

from __future__ import annotations

import contextlib
import inspect
import socket
import ssl
import threading
from pathlib import Path
from types import TracebackType
from typing import Any

import uvicorn

from opsbackup.errors import ConfigError

__all__ = [
    "TLS12_CIPHERS",
    "RunningServer",
    "make_uvicorn_config",
    "serve_in_thread",
    "server_ssl_context",
    "uvicorn_ssl_kwargs",
]

#: OpenSSL cipher string for TLS 1.2: forward-secret (ECDHE) key exchange and AEAD only.
TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL:!eNULL"
#: Bounds for starting and stopping a server: generous, but a hang fails instead of blocking forever.
START_TIMEOUT = 15.0
STOP_TIMEOUT = 15.0


def server_ssl_context(cert: Path, key: Path, *, client_ca: Path | None = None) -> ssl.SSLContext:
    """An SSLContext for the server that enforces the policy above; ConfigError if files are bad."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(TLS12_CIPHERS)  # TLS 1.3 suites are not affected: all of them are AEAD + (EC)DHE
    ctx.options |= (
        ssl.OP_NO_COMPRESSION
        | ssl.OP_NO_RENEGOTIATION
        | ssl.OP_CIPHER_SERVER_PREFERENCE
        | ssl.OP_SINGLE_ECDH_USE
        | ssl.OP_NO_TICKET
    )
    ctx.set_alpn_protocols(["http/1.1"])
    try:
        ctx.load_cert_chain(str(cert), str(key))
    except FileNotFoundError as exc:
        raise ConfigError(f"TLS certificate or key file not found: {exc.filename}") from None
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(f"cannot load the TLS certificate {cert} with key {key}: {exc}") from None
    if client_ca is not None:
        try:
            ctx.load_verify_locations(cafile=str(client_ca))
        except FileNotFoundError:
            raise ConfigError(f"client CA file not found: {client_ca}") from None
        except (ssl.SSLError, OSError) as exc:
            raise ConfigError(f"cannot load the client CA {client_ca}: {exc}") from None
        ctx.verify_mode = ssl.CERT_REQUIRED
    else:
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def _supports_context_factory() -> bool:
    return "ssl_context_factory" in inspect.signature(uvicorn.Config.__init__).parameters


def uvicorn_ssl_kwargs(cert: Path, key: Path, *, client_ca: Path | None = None) -> dict[str, Any]:
    """The ``ssl_*`` keyword arguments for :class:`uvicorn.Config` that apply this policy.

    uvicorn's own options cannot express "no renegotiation" or an explicit minimum version, so
    where uvicorn accepts ``ssl_context_factory`` the result also carries one that returns
    :func:`server_ssl_context`. :func:`make_uvicorn_config` enforces the policy on any version.
    """
    kwargs: dict[str, Any] = {
        "ssl_certfile": str(cert),
        "ssl_keyfile": str(key),
        "ssl_version": ssl.PROTOCOL_TLS_SERVER,
        "ssl_ciphers": TLS12_CIPHERS,
        "ssl_cert_reqs": ssl.CERT_REQUIRED if client_ca is not None else ssl.CERT_NONE,
        "ssl_ca_certs": str(client_ca) if client_ca is not None else None,
    }
    if _supports_context_factory():
        kwargs["ssl_context_factory"] = lambda _config, _default: server_ssl_context(
            cert, key, client_ca=client_ca
        )
    return kwargs


class _PolicyConfig(uvicorn.Config):
    """A uvicorn Config whose SSL context is always :func:`server_ssl_context`'s."""

    def __init__(self, app: Any, *, ssl_context: ssl.SSLContext, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self._policy_context = ssl_context

    def load(self) -> None:
        super().load()
        self.ssl = self._policy_context


def make_uvicorn_config(
    app: Any,
    *,
    host: str,
    port: int,
    cert: Path,
    key: Path,
    client_ca: Path | None = None,
    **kwargs: Any,
) -> uvicorn.Config:
    """A :class:`uvicorn.Config` serving ``app`` under this TLS policy (extra kwargs go to uvicorn)."""
    context = server_ssl_context(cert, key, client_ca=client_ca)
    ssl_kwargs = uvicorn_ssl_kwargs(cert, key, client_ca=client_ca)
    ssl_kwargs.pop("ssl_context_factory", None)
    return _PolicyConfig(app, ssl_context=context, host=host, port=port, **ssl_kwargs, **kwargs)


class _SignallingServer(uvicorn.Server):
    """A uvicorn Server that sets an event once it accepts connections (or has given up)."""

    def __init__(self, config: uvicorn.Config, ready: threading.Event) -> None:
        super().__init__(config)
        self._ready = ready

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        try:
            await super().startup(sockets=sockets)
        finally:
            self._ready.set()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        # An idle keep-alive TLS connection would hold shutdown until the client answers the
        # close_notify (uvicorn waits for it up to timeout_graceful_shutdown): abort those at once.
        for connection in list(self.server_state.connections):
            cycle = getattr(connection, "cycle", None)
            transport = getattr(connection, "transport", None)
            if transport is not None and (cycle is None or getattr(cycle, "response_complete", False)):
                transport.abort()
        await super().shutdown(sockets=sockets)

    def install_signal_handlers(self) -> None:  # older uvicorn: never touch signals from a thread
        return


class RunningServer:
    """A uvicorn server running in a background thread; a context manager that stops it on exit."""

    def __init__(self, server: uvicorn.Server, thread: threading.Thread, host: str, port: int) -> None:
        self.server = server
        self.thread = thread
        self.host = host
        self.port = port
        netloc = f"[{host}]" if ":" in host else host
        self.url = f"https://{netloc}:{port}"

    def stop(self) -> None:
        """Ask the server to exit, close its connections and wait (bounded) for the thread."""
        self.server.should_exit = True
        self.thread.join(STOP_TIMEOUT)
        if self.thread.is_alive():
            self.server.force_exit = True
            self.thread.join(STOP_TIMEOUT)
        if self.thread.is_alive():
            raise RuntimeError(f"the server on port {self.port} did not stop within {2 * STOP_TIMEOUT:.0f} s")

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def serve_in_thread(
    app: Any,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    cert: Path,
    key: Path,
    client_ca: Path | None = None,
    **config_kwargs: Any,
) -> RunningServer:
    """Start ``app`` on uvicorn over TLS in a daemon thread; return once it accepts connections.

    The listening socket is bound here (port 0 picks a free ephemeral port, so parallel tests
    never collide) and handed to uvicorn, so ``.port`` is known before the server starts. Raises
    RuntimeError if the server does not come up within ``START_TIMEOUT`` seconds.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
        sock.setblocking(False)
        bound_port = int(sock.getsockname()[1])
        options: dict[str, Any] = {
            "log_config": None,
            "log_level": "warning",
            "access_log": False,
            "timeout_graceful_shutdown": 5,
        }
        options.update(config_kwargs)
        config = make_uvicorn_config(
            app, host=host, port=bound_port, cert=cert, key=key, client_ca=client_ca, **options
        )
        config.load()
    except BaseException:
        sock.close()
        raise
    ready = threading.Event()
    server = _SignallingServer(config, ready)
    failures: list[BaseException] = []

    def run() -> None:
        try:
            server.run(sockets=[sock])
        except BaseException as exc:  # noqa: BLE001 - reported to the caller (uvicorn exits via SystemExit)
            failures.append(exc)
        finally:
            ready.set()
            sock.close()

    thread = threading.Thread(target=run, name=f"uvicorn-{bound_port}", daemon=True)
    thread.start()
    running = RunningServer(server, thread, host, bound_port)
    if not ready.wait(START_TIMEOUT) or not server.started:
        with contextlib.suppress(RuntimeError):
            running.stop()
        cause = failures[0] if failures else None
        raise RuntimeError(f"the server on {running.url} did not start") from cause
    return running
