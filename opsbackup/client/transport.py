"""The client's HTTPS transport: trusts only the pinned private CA, retries what is safe to retry.

One :class:`requests.Session` with ``trust_env = False`` (no proxies, no ``REQUESTS_CA_BUNDLE``,
no ``.netrc`` from the environment) and one :class:`PinnedAdapter` whose :class:`ssl.SSLContext`
holds exactly one trust anchor: the configured CA file. The system store, certifi and every
environment variable are never consulted; requests' own CA bundle handling is switched off so
that it cannot add certifi to the context. TLS 1.2+ with forward-secret AEAD suites only.

Retries: connection errors, timeouts, resets and 5xx answers are retried with exponential backoff
and jitter (a bounded number of times); 4xx answers and certificate failures never are. Every
failure becomes one error of :mod:`opsbackup.errors` with one clear line.
"""

from __future__ import annotations

import collections
import hashlib
import json
import random
import re
import ssl
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

from opsbackup import __version__
from opsbackup.errors import (
    ConfigError,
    FormatError,
    NotFoundError,
    OpsbackupError,
    ServerRefusedError,
    TransportError,
)

if TYPE_CHECKING:
    from requests.adapters import _HostParams, _PoolKwargs

__all__ = [
    "TLS12_CIPHERS",
    "PinnedAdapter",
    "Transport",
    "describe_failure",
    "error_for_status",
    "parallel",
    "pinned_ssl_context",
]

#: Same policy as the server (opsbackup.server.tls.TLS12_CIPHERS): ECDHE + AEAD for TLS 1.2.
TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL:!eNULL"
PIECE = 1 << 20
Body = bytes | IO[bytes] | Iterable[bytes] | None
_SYSTEM_RANDOM = random.SystemRandom()
T = TypeVar("T")
R = TypeVar("R")
E = TypeVar("E", bound=BaseException)
#: OpenSSL verify codes meaning "this chain does not lead to a trust anchor we hold".
_UNTRUSTED_CODES = {2, 7, 18, 19, 20, 21}
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]+")


def find_in_chain(exc: BaseException, kind: type[E]) -> E | None:
    """The first exception of ``kind`` among ``exc``, its causes, contexts, args and ``reason``s."""
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        current = todo.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, kind):
            return current
        linked = [current.__cause__, current.__context__, getattr(current, "reason", None), *current.args]
        todo.extend(x for x in linked if isinstance(x, BaseException))
    return None


def _clean(text: str, limit: int = 300) -> str:
    """One printable line of at most ``limit`` characters (the server's text is untrusted)."""
    return _CONTROL.sub(" ", text).strip()[:limit]


def describe_failure(exc: BaseException, method: str, url: str, ca_file: Path, ca_fp: str) -> TransportError:
    """The one-line TransportError for a request that got no HTTP answer."""
    host = urlsplit(url).netloc
    verify = find_in_chain(exc, ssl.SSLCertVerificationError)
    if verify is not None:
        code = verify.verify_code
        if code in _UNTRUSTED_CODES:
            return TransportError(
                f"the server's certificate is not signed by the pinned CA {ca_file} "
                f"(fingerprint {ca_fp}): refusing to connect to {host}"
            )
        if code == 10:
            return TransportError(f"the server's certificate at {host} has expired: renew it on the server")
        if code == 9:
            return TransportError(f"the server's certificate at {host} is not yet valid: check the clocks")
        if code in (62, 64):
            return TransportError(f"the server's certificate does not name {host}: refusing to connect")
        return TransportError(
            f"the server's certificate at {host} failed verification: {verify.verify_message}"
        )
    tls = find_in_chain(exc, ssl.SSLError)
    if tls is not None:
        reason = str(tls.reason or tls)
        if "CERTIFICATE_REQUIRED" in reason.upper():
            return TransportError(f"the server at {host} requires a client certificate (mutual TLS)")
        return TransportError(f"TLS with {host} failed: {_clean(reason)}")
    if isinstance(exc, requests.Timeout):
        return TransportError(f"the server at {host} did not answer in time ({method} {urlsplit(url).path})")
    return TransportError(f"cannot reach the server at {host}: {_clean(str(exc), 200)}")


def _server_message(response: requests.Response) -> str:
    raw = response.raw.read(4096, decode_content=True) if response.raw is not None else b""
    text = raw.decode("utf-8", "replace")
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict):
        for key in ("error", "message", "detail"):
            if isinstance(data.get(key), str):
                return _clean(data[key])
    return _clean(text.splitlines()[0] if text.strip() else response.reason or "")


def error_for_status(response: requests.Response, method: str, path: str, *, attempts: int) -> OpsbackupError:
    """The error for an unexpected HTTP status: 404 NotFound, 4xx ServerRefused, 5xx Transport."""
    status = response.status_code
    message = _server_message(response)
    detail = f"{status} {message}".strip()
    if status == 404:
        return NotFoundError(f"{path} not found on the server: {detail}")
    if 400 <= status < 500:
        return ServerRefusedError(f"the server refused {method} {path}: {detail}")
    if status >= 500:
        tries = f" (after {attempts} attempts)" if attempts > 1 else ""
        return TransportError(f"the server failed {method} {path}: {detail}{tries}")
    return TransportError(f"unexpected answer to {method} {path}: {detail}")


def parallel(fn: Callable[[T], R], items: Iterable[T], *, workers: int) -> list[R]:
    """``[fn(x) for x in items]`` on ``workers`` threads, in order; the first error cancels the rest.

    At most ``2 * workers`` items are in flight, so a long (lazy) ``items`` is never all queued.
    """
    results: list[R] = []
    window: collections.deque[Future[R]] = collections.deque()
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="opsbackup-upload") as pool:
        try:
            for item in items:
                if len(window) >= 2 * max(1, workers):
                    results.append(window.popleft().result())
                window.append(pool.submit(fn, item))
            while window:
                results.append(window.popleft().result())
        except BaseException:
            for future in window:
                future.cancel()
            raise
    return results


_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


def _check_content_range(response: requests.Response, start: int, length: int | None, path: str) -> None:
    """A 206 must answer the range asked for: same start, and no more than ``length`` bytes.

    A server (or anything between) that answers another range would splice wrong bytes into the
    stream; callers verify hashes too, but the error here says what actually went wrong.
    """
    header = response.headers.get("Content-Range", "")
    match = _CONTENT_RANGE.fullmatch(header.strip())
    if match is None:
        response.close()
        raise FormatError(f"the server answered a range request for {path} without a valid Content-Range")
    first, last = int(match.group(1)), int(match.group(2))
    if first != start or last < first or (length is not None and last - first + 1 > length):
        response.close()
        raise FormatError(
            f"the server answered bytes {first}-{last} of {path} when bytes from {start} were asked for"
        )


def pinned_ssl_context(
    ca_file: Path, *, client_cert: Path | None = None, client_key: Path | None = None
) -> ssl.SSLContext:
    """A client context whose only trust anchor is ``ca_file`` (hostname checked, TLS 1.2+)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # check_hostname and CERT_REQUIRED, no CA loaded
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(TLS12_CIPHERS)
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    try:
        ctx.load_verify_locations(cafile=str(ca_file))
    except FileNotFoundError:
        raise ConfigError(f"the pinned CA file {ca_file} does not exist") from None
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(f"cannot load the pinned CA file {ca_file}: {exc}") from None
    if ctx.cert_store_stats()["x509_ca"] != 1:
        raise ConfigError(
            f"the pinned CA file {ca_file} must hold exactly one CA certificate (the server's private CA)"
        )
    if client_cert is not None:
        try:
            ctx.load_cert_chain(str(client_cert), str(client_key) if client_key else None)
        except (ssl.SSLError, OSError) as exc:
            raise ConfigError(f"cannot load the client certificate {client_cert}: {exc}") from None
    return ctx


def _pinned_fingerprint(ctx: ssl.SSLContext, ca_file: Path) -> str:
    """:func:`opsbackup.pki.fingerprint` of ``ca_file``, from the certificate ``ctx`` pinned.

    SHA-256 of the DER of the one certificate the context loaded from the file, which is what
    ``pki.fingerprint`` hashes; so the client need not import ``cryptography.x509`` (some 30 ms
    of every command's start-up) to parse the file a second time. A file with more than one
    certificate (the CA and a leaf, say) is left to ``pki.fingerprint``, which takes the first.
    """
    if ctx.cert_store_stats()["x509"] == 1:  # the file's only certificate, which is the CA
        (der,) = ctx.get_ca_certs(binary_form=True)
        return hashlib.sha256(der).hexdigest()
    from opsbackup.pki import fingerprint

    return fingerprint(ca_file)


class PinnedAdapter(HTTPAdapter):
    """An HTTPAdapter that always uses one prepared SSLContext and never a CA bundle or a proxy."""

    def __init__(self, ssl_context: ssl.SSLContext, *, pool_maxsize: int) -> None:
        self._ssl_context = ssl_context
        super().__init__(pool_connections=4, pool_maxsize=pool_maxsize, max_retries=0)

    def init_poolmanager(
        self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any
    ) -> None:
        pool_kwargs["ssl_context"] = self._ssl_context
        super().init_poolmanager(connections, maxsize, block=block, **pool_kwargs)

    def build_connection_pool_key_attributes(
        self, request: requests.PreparedRequest, verify: Any, cert: Any = None
    ) -> tuple[_HostParams, _PoolKwargs]:
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(request, True, None)
        pool_kwargs.pop("ca_certs", None)
        pool_kwargs.pop("ca_cert_dir", None)
        pool_kwargs.pop("cert_file", None)
        pool_kwargs.pop("key_file", None)
        pool_kwargs["ssl_context"] = self._ssl_context
        pool_kwargs["cert_reqs"] = "CERT_REQUIRED"
        return host_params, pool_kwargs

    def cert_verify(self, conn: Any, url: str, verify: Any, cert: Any) -> None:
        # requests would point the pool at certifi here, which urllib3 then loads into our context.
        conn.cert_reqs = "CERT_REQUIRED"
        conn.ca_certs = None
        conn.ca_cert_dir = None

    def close(self) -> None:
        # urllib3 2 closes a cleared pool's idle connections only when the pool is garbage
        # collected; a response still referenced somewhere (a traceback) would keep them open.
        pools = self.poolmanager.pools
        for pool in [pools.get(key) for key in pools.keys()]:  # noqa: SIM118 - a container, not a dict
            if pool is not None:
                pool.close()
        super().close()

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        raise TransportError("refusing to use a proxy: opsbackup connects to its server directly")


class Transport:
    """HTTPS to one opsbackup server: pinned CA, bearer credential, pooling, bounded retries."""

    def __init__(
        self,
        base_url: str,
        ca_file: Path,
        token: str | None = None,
        *,
        client_cert: Path | None = None,
        client_key: Path | None = None,
        workers: int = 8,
        retries: int = 4,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        timeout: tuple[float, float] = (10.0, 120.0),
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[], float] | None = None,
    ) -> None:
        if not re.fullmatch(r"https://[^/?#@\s]+/?", base_url):
            raise ConfigError(f"server URL must be https://HOST[:PORT], got {base_url[:100]!r}")
        self.base_url = base_url.rstrip("/")
        self.ca_file = Path(ca_file)
        self.ssl_context = pinned_ssl_context(self.ca_file, client_cert=client_cert, client_key=client_key)
        self.ca_fingerprint = _pinned_fingerprint(self.ssl_context, self.ca_file)
        self.workers = max(1, workers)
        self.retries = max(0, retries)
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.timeout = timeout
        self._sleep = sleep
        self._jitter = jitter if jitter is not None else _SYSTEM_RANDOM.random
        self.session = requests.Session()
        self.session.trust_env = False
        self.session.proxies = {}
        self.session.verify = True
        self.session.mount("https://", PinnedAdapter(self.ssl_context, pool_maxsize=self.workers))
        self.session.mount("http://", PinnedAdapter(self.ssl_context, pool_maxsize=1))
        self.session.headers["User-Agent"] = f"opsbackup/{__version__}"
        if token is not None:
            self.session.headers["Authorization"] = f"Bearer {token}"

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> Transport:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _delay(self, attempt: int, retry_after: str | None = None) -> float:
        delay = min(self.max_backoff, self.backoff * (2**attempt))
        if retry_after is not None and retry_after.strip().isdigit():
            return float(min(self.max_backoff, max(delay, int(retry_after))))
        return float(delay / 2 + delay / 2 * self._jitter())  # "equal jitter": never less than half

    def request(
        self,
        method: str,
        path: str,
        *,
        body: Body = None,
        headers: Mapping[str, str] | None = None,
        expected: tuple[int, ...] = (200,),
        stream: bool = False,
        idempotent: bool = True,
        read_timeout: float | None = None,
    ) -> requests.Response:
        """Send one request (retried as allowed); return the response if its status is expected.

        A ``bytes`` or seekable file body is re-sent on retry; an iterator body is sent once.
        ``idempotent=False`` retries only failures where the request surely never left (connect).
        ``read_timeout`` replaces the usual one for a request the server may think about for long.
        """
        if not path.startswith("/"):
            raise ValueError(f"request path must start with '/': {path!r}")
        url = self.base_url + path
        start: int | None = None
        if hasattr(body, "seekable") and body.seekable():  # type: ignore[union-attr]
            start = body.tell()  # type: ignore[union-attr]
        replayable = body is None or isinstance(body, bytes) or start is not None
        attempt = 0
        while True:
            if start is not None:
                body.seek(start)  # type: ignore[union-attr]
            try:
                response = self.session.request(
                    method,
                    url,
                    data=body,
                    headers=dict(headers or {}),
                    timeout=self.timeout if read_timeout is None else (self.timeout[0], read_timeout),
                    stream=True,
                    allow_redirects=False,
                )
                if response.status_code in expected and not stream:
                    _ = response.content  # inside the try: a body cut short is retried like the rest
            except (requests.RequestException, OSError) as exc:
                retryable = self._retryable(exc, idempotent=idempotent, replayable=replayable)
                if not retryable or attempt >= self.retries:
                    raise describe_failure(exc, method, url, self.ca_file, self.ca_fingerprint) from exc
                self._sleep(self._delay(attempt))
                attempt += 1
                continue
            if response.status_code in expected:
                return response
            if response.status_code >= 500 and idempotent and replayable and attempt < self.retries:
                retry_after = response.headers.get("Retry-After")
                response.close()
                self._sleep(self._delay(attempt, retry_after))
                attempt += 1
                continue
            error = error_for_status(response, method, path, attempts=attempt + 1)
            response.close()
            raise error

    @staticmethod
    def _retryable(exc: BaseException, *, idempotent: bool, replayable: bool) -> bool:
        if find_in_chain(exc, ssl.SSLError) is not None or isinstance(exc, OpsbackupError):
            return False  # certificate or handshake failures do not heal by retrying
        never_sent = find_in_chain(exc, NewConnectionError) is not None or isinstance(
            exc, requests.ConnectTimeout
        )
        never_sent = never_sent or find_in_chain(exc, ConnectTimeoutError) is not None
        if never_sent:
            return True
        retryable_kind = isinstance(
            exc,
            requests.ConnectionError | requests.Timeout | requests.exceptions.ChunkedEncodingError | OSError,
        )
        return retryable_kind and idempotent and replayable

    def get_bytes(
        self, path: str, *, max_size: int = 64 << 20, headers: Mapping[str, str] | None = None
    ) -> bytes:
        """GET a small object whole; FormatError if the server sends more than ``max_size`` bytes."""
        pieces: list[bytes] = []
        total = 0
        for piece in self.stream(path, headers=headers):
            total += len(piece)
            if total > max_size:
                raise FormatError(f"the server sent more than {max_size} bytes for {path}")
            pieces.append(piece)
        return b"".join(pieces)

    def put_stream(
        self,
        path: str,
        source: IO[bytes] | Iterable[bytes] | bytes,
        *,
        headers: Mapping[str, str] | None = None,
        expected: tuple[int, ...] = (200, 201),
    ) -> requests.Response:
        """PUT a body streamed from a file (re-sent from its start on retry) or an iterator."""
        merged = {"Content-Type": "application/octet-stream", **(headers or {})}
        return self.request("PUT", path, body=source, headers=merged, expected=expected)

    def stream(
        self,
        path: str,
        offset: int = 0,
        length: int | None = None,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> Iterator[bytes]:
        """GET ``[offset, offset + length)`` of ``path`` in pieces; resumes after a dropped connection."""
        if offset < 0 or (length is not None and length < 0):
            raise ValueError("offset and length must not be negative")
        received = 0
        resumes = 0
        while True:
            position = offset + received
            remaining = None if length is None else length - received
            if remaining == 0:
                return
            ranged = position > 0 or remaining is not None
            merged = dict(headers or {})
            if ranged:
                end = "" if remaining is None else str(position + remaining - 1)
                merged["Range"] = f"bytes={position}-{end}"
            response = self.request(
                "GET", path, headers=merged, expected=(206,) if ranged else (200,), stream=True
            )
            if ranged:
                _check_content_range(response, position, remaining, path)
            try:
                for piece in response.iter_content(PIECE):
                    received += len(piece)
                    yield piece
                return
            except (requests.RequestException, OSError) as exc:
                if resumes >= self.retries or find_in_chain(exc, ssl.SSLError) is not None:
                    raise describe_failure(
                        exc, "GET", self.base_url + path, self.ca_file, self.ca_fingerprint
                    ) from exc
                self._sleep(self._delay(resumes))
                resumes += 1
            finally:
                response.close()

    def parallel(self, fn: Callable[[T], R], items: Iterable[T], workers: int | None = None) -> list[R]:
        """Run ``fn`` over ``items`` on up to ``workers`` threads (the pool size by default)."""
        return parallel(fn, items, workers=workers or self.workers)
