"""The account as the client sees it through the server: objects, manifests and the keyring.

A thin layer over :class:`Transport` that names the API's paths once and checks what comes back:
:meth:`Repository.get_object` returns bytes only after their SHA-256 and size match what the
caller expected (from a signed manifest or a verified index), so no caller can forget to.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from typing import IO

import requests

from crypto.primitives import ct_equal
from formats import pack
from opsbackup.client.transport import Transport
from opsbackup.errors import (
    FormatError,
    IntegrityError,
    KeyringChangedError,
    NotFoundError,
    ObjectsMissingError,
    ServerRefusedError,
)

__all__ = ["MAX_ENVELOPE", "MAX_MANIFEST", "QUERY_BATCH", "ManifestName", "Repository"]

#: The server's manifest size limit (docs/api.md).
MAX_MANIFEST = 64 << 20
MAX_KEYRING = 4 << 20
#: Names per ``POST /v1/objects/query`` (the server's limit).
QUERY_BATCH = 10_000

ManifestName = tuple[str, str]  # (host, backup id hex)


class Repository:
    """One account on one server, reached through ``transport`` (whose credential picks the account)."""

    def __init__(self, transport: Transport) -> None:
        self.transport = transport

    def close(self) -> None:
        self.transport.close()

    # Objects -----------------------------------------------------------------------------------

    def put_object(self, data: bytes | IO[bytes] | Iterable[bytes], name: bytes) -> bool:
        """Upload an object whose SHA-256 is ``name``; True if created, False if already there.

        ``data`` may be an iterable of parts (a finished pack never joined); it is re-sent on a
        retry only if it is seekable (``opsbackup.backup.packer.PackBody``) or ``bytes``.
        """
        response = self.transport.put_stream(f"/v1/objects/{name.hex()}", data)
        return response.status_code == 201

    def get_object(self, name: bytes, *, size: int, what: str = "object") -> bytes:
        """The object's bytes, after checking their size and SHA-256 against ``name`` (constant time).

        Raises :class:`IntegrityError` (naming ``what``) when the server sends other bytes, a
        truncated or an extended object, and :class:`NotFoundError` when it is missing.
        """
        data = self._download(name, size, what)
        self._check(name, size, what, len(data), hashlib.sha256(data).digest())
        return data

    def get_pack(
        self, name: bytes, *, size: int, what: str = "pack"
    ) -> tuple[bytes, tuple[int, bytes] | None]:
        """:meth:`get_object` for a pack, and ``(body end, SHA-256 of the body)`` from the same pass.

        A pack's body (everything before its sealed index) is a prefix of the pack, so one SHA-256
        pass yields both the body hash that opens its index and, continued, the pack's own name.
        The second value is None when the trailer does not parse (opening the pack then fails).
        """
        data = self._download(name, size, what)
        view = memoryview(data)
        body_end = _pack_body_end(data)
        digest = hashlib.sha256(view[: body_end or 0])
        body = None if body_end is None else (body_end, digest.copy().digest())
        digest.update(view[body_end or 0 :])
        self._check(name, size, what, len(data), digest.digest())
        return data, body

    @staticmethod
    def _check(name: bytes, size: int, what: str, received: int, digest: bytes) -> None:
        if received != size or not ct_equal(digest, name):
            raise IntegrityError(
                f"{what} {name.hex()[:16]} does not match the hash the manifest signs "
                f"({received} of {size} bytes received); the server's copy was altered or truncated"
            )

    def _download(self, name: bytes, size: int, what: str) -> bytes:
        """The object's bytes as sent, at most ``size`` (hashing is the caller's)."""
        pieces: list[bytes] = []
        received = 0
        try:
            for piece in self.transport.stream(f"/v1/objects/{name.hex()}"):
                received += len(piece)
                if received > size:
                    raise IntegrityError(
                        f"{what} {name.hex()[:16]} is longer than the {size} bytes the manifest signs; "
                        "the server's copy was altered"
                    )
                pieces.append(piece)
        except NotFoundError:
            raise NotFoundError(f"{what} {name.hex()[:16]} is missing from the server") from None
        return pieces[0] if len(pieces) == 1 else b"".join(pieces)

    def present(self, names: Iterable[bytes]) -> set[bytes]:
        """Which of ``names`` the account already has (batched queries)."""
        wanted = sorted(set(names))
        found: set[bytes] = set()
        for start in range(0, len(wanted), QUERY_BATCH):
            batch = [n.hex() for n in wanted[start : start + QUERY_BATCH]]
            response = self.transport.request(
                "POST",
                "/v1/objects/query",
                body=_json({"names": batch}),
                headers={"Content-Type": "application/json"},
            )
            found.update(bytes.fromhex(n) for n in response.json().get("present", []))
        return found & set(wanted)

    # Manifests ---------------------------------------------------------------------------------

    def list_manifests(self, host: str | None = None) -> list[ManifestName]:
        """(host, backup id hex) of every stored manifest, sorted; untrusted until each is verified."""
        path = "/v1/manifests" + (f"?host={host}" if host is not None else "")
        listing = self.transport.request("GET", path).json().get("manifests", [])
        return sorted((str(m["host"]), str(m["backup_id"])) for m in listing)

    def get_manifest(self, host: str, backup_id: str) -> bytes:
        """The signed manifest stored at ``host/backup_id`` (unverified: verify before use)."""
        return self.transport.get_bytes(f"/v1/manifests/{host}/{backup_id}", max_size=MAX_MANIFEST)

    def put_manifest(self, host: str, backup_id: str, signed_manifest: bytes) -> None:
        """Store a signed manifest (create-only; an identical one already stored is fine).

        Raises :class:`ObjectsMissingError` when the server refuses it because objects it names
        are not stored (nothing was stored) and :class:`ServerRefusedError` for any other refusal.
        """
        path = f"/v1/manifests/{host}/{backup_id}"
        # The server checks every object the manifest names before answering (one HEAD each on
        # S3, 16 at a time): give a huge backup's manifest (40 bytes per object) the time for it.
        wait = self.transport.timeout[1] + len(signed_manifest) / 40 / 1000  # 1 s per 1,000 objects
        response = self._put_signed(path, signed_manifest, read_timeout=wait)
        if response is None:
            return
        message = _error_line(response)
        count = response.headers.get(_MISSING_OBJECTS, "")
        if count.isdigit():
            raise ObjectsMissingError(
                f"the server refused PUT {path}: 409 {message}", int(count), _deleting(response)
            )
        raise ServerRefusedError(f"the server refused PUT {path}: 409 {message}")

    def _put_signed(
        self, path: str, signed: bytes, read_timeout: float | None = None
    ) -> requests.Response | None:
        """PUT a signed object; ``None`` when stored (201) or already there (200), else the 409."""
        response = self.transport.request(
            "PUT",
            path,
            body=signed,
            headers={"Content-Type": "application/octet-stream"},
            expected=(200, 201, 409),
            read_timeout=read_timeout,
        )
        return response if response.status_code == 409 else None

    # Keyring -----------------------------------------------------------------------------------

    def get_keyring(self) -> bytes:
        """The newest signed keyring (unverified: open it with ``crypto.keyring.open_keyring``)."""
        try:
            return self.transport.get_bytes("/v1/keyring", max_size=MAX_KEYRING)
        except NotFoundError:
            raise NotFoundError(
                "the account has no keyring on the server yet; run 'opsbackup keys publish' first"
            ) from None

    def put_keyring(self, signed_keyring: bytes) -> None:
        self.transport.request(
            "PUT",
            "/v1/keyring",
            body=signed_keyring,
            headers={"Content-Type": "application/octet-stream"},
            expected=(200, 201),
        )

    def post_delete(self, signed_request: bytes) -> dict[str, int]:
        response = self.transport.request(
            "POST",
            "/v1/delete",
            body=signed_request,
            headers={"Content-Type": "application/octet-stream"},
            idempotent=False,
        )
        return {str(k): int(v) for k, v in response.json().items()}

    # Key envelopes -----------------------------------------------------------------------------

    def put_envelope(self, backup_id: bytes, signed: bytes) -> None:
        """Store a backup's signed key envelope (generation 0 with the backup, or a re-wrap).

        Raises :class:`KeyringChangedError` when the server's keyring is not the one the envelope
        was wrapped to (fetch the keyring again, re-wrap, upload again) and
        :class:`ServerRefusedError` for any other refusal.
        """
        path = f"/v1/envelopes/{backup_id.hex()}"
        response = self._put_signed(path, signed)
        if response is None:
            return
        message = _error_line(response)
        if _KEYRING_VERSION in response.headers:
            raise KeyringChangedError(f"the server refused PUT {path}: 409 {message}")
        raise ServerRefusedError(f"the server refused PUT {path}: 409 {message}")

    def get_envelope(self, backup_id: bytes) -> bytes:
        """The newest signed key envelope of ``backup_id`` (unverified: open it before use)."""
        try:
            return self.transport.get_bytes(f"/v1/envelopes/{backup_id.hex()}", max_size=MAX_ENVELOPE)
        except NotFoundError:
            raise NotFoundError(
                f"backup {backup_id.hex()} has no key envelope on the server, so it cannot be read"
            ) from None

    def list_envelopes(self) -> list[bytes]:
        """The backup ids that have a key envelope, sorted (a restore or admin credential lists)."""
        found: list[bytes] = []
        after = ""
        while True:
            query = f"?limit={QUERY_BATCH}" + (f"&after={after}" if after else "")
            doc = self.transport.request("GET", "/v1/envelopes" + query).json()
            try:
                page = [bytes.fromhex(str(i)) for i in doc["envelopes"]]
                cursor = doc["next"]
            except (KeyError, TypeError, ValueError):
                raise FormatError("the server's envelope listing is malformed") from None
            if any(len(i) != 16 for i in page) or page != sorted(set(page)):
                raise FormatError("the server's envelope listing holds an invalid entry")
            if found and page and page[0] <= found[-1]:
                raise FormatError("the server's envelope listing does not advance")
            found.extend(page)
            if cursor is None:
                return found
            if not isinstance(cursor, str) or not _BACKUP_ID.fullmatch(cursor) or cursor <= after:
                raise FormatError("the server's envelope listing does not advance")
            after = cursor


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]+")
_BACKUP_ID = re.compile(r"[0-9a-f]{32}")
_OBJECT_NAME = re.compile(r"[0-9a-f]{64}")
#: The header of the server's "re-wrap" 409 (docs/api.md, "Key envelopes").
_KEYRING_VERSION = "X-Opsbackup-Keyring-Version"
#: The header of the server's "objects missing" 409 (docs/api.md, manifest PUT).
_MISSING_OBJECTS = "X-Opsbackup-Missing-Objects"
#: The server's key envelope size limit (docs/api.md).
MAX_ENVELOPE = 4 << 20


def _deleting(response: requests.Response) -> tuple[bytes, ...]:
    """The object names a "being deleted" 409 lists (``deleting``), or none when it lists none."""
    try:
        names = response.json().get("deleting", [])
        return tuple(bytes.fromhex(n) for n in names if isinstance(n, str) and _OBJECT_NAME.fullmatch(n))
    except (ValueError, AttributeError, TypeError):
        return ()


def _error_line(response: requests.Response) -> str:
    """The server's one-line ``{"error": ...}`` of a refusal, cleaned of control characters."""
    try:
        message = str(response.json().get("error", ""))
    except (ValueError, AttributeError):
        message = ""
    return _CONTROL.sub(" ", message).strip()[:300]


def _json(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _pack_body_end(data: bytes) -> int | None:
    """Where a pack's sealed index starts, from its trailer; None if the trailer does not parse."""
    try:
        trailer = pack.decode_trailer(data[-pack.TRAILER_SIZE :])
        return trailer.index_range(len(data))[0]
    except FormatError:
        return None
