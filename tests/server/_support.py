"""Helpers shared by the server tests: a store, an account with keys and credentials, signing.

Private-key code (``crypto.private``) is used here, in tests only: the server never imports it.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import requests
from cryptography.hazmat.primitives.asymmetric import rsa

from crypto.keyring import new_keyring_body
from crypto.primitives import random_bytes
from crypto.private import sign_object
from formats import audit, delete_request
from formats.audit import AuditEntry
from formats.errors import FormatError, IntegrityError, NotFoundError
from formats.roles import Role
from opsbackup.pki import create_ca, issue_server_cert
from opsbackup.server.accounts import Account, Scope, add_account, issue_credential
from opsbackup.server.app import create_app
from opsbackup.server.keyrings import store_keyring
from opsbackup.server.tls import serve_in_thread
from opsbackup.storage.base import ObjectStore, check_key

__all__ = [
    "AccountEnv",
    "LiveServer",
    "MemoryStore",
    "chain_entries",
    "delete_body",
    "live_server",
    "make_account",
    "make_store",
]


class MemoryStore(ObjectStore):
    """A thread-safe in-memory ObjectStore for unit tests (the server tests prefer the real one)."""

    def __init__(self) -> None:
        self._data: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def put(
        self,
        key: str,
        source: BinaryIO,
        *,
        sha256: bytes | None = None,
        max_size: int | None = None,
        overwrite: bool = False,
    ) -> bool:
        check_key(key)
        h, parts, size = hashlib.sha256(), [], 0
        while chunk := source.read(1 << 16):
            size += len(chunk)
            if max_size is not None and size > max_size:
                raise FormatError("object too large")
            h.update(chunk)
            parts.append(chunk)
        if sha256 is not None and h.digest() != sha256:
            raise IntegrityError("hash mismatch")
        with self._lock:
            if key in self._data and not overwrite:
                return False
            self._data[key] = b"".join(parts)
        return True

    def get(self, key: str, *, offset: int = 0, length: int | None = None) -> Iterator[bytes]:
        check_key(key)
        with self._lock:
            data = self._data.get(key)
        if data is None:
            raise NotFoundError(key)
        if offset > len(data):
            raise FormatError("range starts beyond the end")
        end = len(data) if length is None else min(len(data), offset + length)
        return iter([data[offset:end]])

    def size(self, key: str) -> int:
        check_key(key)
        with self._lock:
            if key not in self._data:
                raise NotFoundError(key)
            return len(self._data[key])

    def delete(self, key: str) -> bool:
        check_key(key)
        with self._lock:
            return self._data.pop(key, None) is not None

    def list(self, prefix: str) -> Iterator[str]:
        with self._lock:
            keys = sorted(k for k in self._data if k.startswith(prefix))
        return iter(keys)

    def overwrite(self, key: str, data: bytes) -> None:
        """Test helper: replace an object's bytes (what an attacker with disk access does)."""
        self.put(key, io.BytesIO(data), overwrite=True)


def make_store(root: Path) -> ObjectStore:
    """The real FilesystemStore when it is available, else the in-memory one."""
    try:
        from opsbackup.storage.filesystem import FilesystemStore
    except ImportError:
        return MemoryStore()
    return FilesystemStore(root)


@dataclass
class AccountEnv:
    """An account with a keyring (root, host, deletion keys) and one credential of each scope."""

    account: Account
    tokens: dict[Scope, str]
    keyring: bytes


def make_account(
    store: ObjectStore,
    *,
    root: rsa.RSAPrivateKey,
    host: rsa.RSAPrivateKey,
    deletion: rsa.RSAPrivateKey,
    name: str = "acme",
) -> AccountEnv:
    account = add_account(store, name, root.public_key())
    body = new_keyring_body(
        root.public_key(),
        account_id=account.account_id,
        add=[(Role.HOST, host.public_key(), "web1"), (Role.DELETION, deletion.public_key(), "del")],
    )
    keyring = sign_object(root, body)
    store_keyring(store, account, keyring)
    tokens = {scope: issue_credential(store, account, scope, f"{scope}-cred")[0] for scope in Scope}
    return AccountEnv(account, tokens, keyring)


def delete_body(
    key: rsa.RSAPrivateKey,
    account_id: bytes,
    *,
    objects: Iterable[bytes] = (),
    manifests: Iterable[delete_request.ManifestId] = (),
    envelopes: Iterable[bytes] = (),
    basis: Iterable[delete_request.ManifestId] = (),
    issued_at: int | None = None,
    nonce: bytes | None = None,
) -> bytes:
    """A signed delete request."""
    req = delete_request.DeleteRequest(
        account_id=account_id,
        nonce=nonce or random_bytes(16),
        issued_at=int(time.time()) if issued_at is None else issued_at,
        objects=tuple(sorted(set(objects))),
        manifests=tuple(sorted(set(manifests))),
        envelopes=tuple(sorted(set(envelopes))),
        basis=tuple(sorted(set(basis))),
    )
    return sign_object(key, delete_request.encode(req))


def chain_entries(store: ObjectStore, chain: str) -> list[AuditEntry]:
    """Every entry of one audit chain, decoded, in order."""
    return [audit.decode(store.read(k)) for k in store.list(f"audit/{chain}/")]


@dataclass
class LiveServer:
    """A real uvicorn server over TLS on loopback, and a requests session that trusts only its CA."""

    url: str
    ca: Path
    store: ObjectStore
    session: requests.Session

    def call(self, method: str, path: str, token: str | None = None, **kw: Any) -> requests.Response:
        headers = dict(kw.pop("headers", {}))
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return self.session.request(method, self.url + path, headers=headers, timeout=30, **kw)


@contextlib.contextmanager
def live_server(root: Path, **app_kwargs: Any) -> Iterator[LiveServer]:
    """Make a private CA and server certificate in ``root``, serve the app, yield the server."""
    ca = create_ca(root / "ca")
    srv = issue_server_cert(root / "ca", root / "srv", dns_names=["localhost"], ip_addresses=["127.0.0.1"])
    store = make_store(root / "storage")
    app = create_app(store, **app_kwargs)
    with serve_in_thread(app, host="127.0.0.1", port=0, cert=srv.cert, key=srv.key) as running:
        session = requests.Session()
        session.trust_env = False
        session.verify = str(ca.cert)
        try:
            yield LiveServer(running.url, ca.cert, store, session)
        finally:
            session.close()
