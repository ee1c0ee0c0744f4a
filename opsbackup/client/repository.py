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

from crypto.primitives import ct_equal
from opsbackup.client.transport import Transport
from opsbackup.errors import (
    FormatError,
    IntegrityError,
    KeyringChangedError,
    NotFoundError,
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

    def put_object(self, data: bytes | IO[bytes], name: bytes) -> bool:
        """Upload an object whose SHA-256 is ``name``; True if created, False if already there."""
        response = self.transport.put_stream(f"/v1/objects/{name.hex()}", data)
        return response.status_code == 201

    def get_object(self, name: bytes, *, size: int, what: str = "object") -> bytes:
        """The object's bytes, after checking their size and SHA-256 against ``name`` (constant time).

        Raises :class:`IntegrityError` (naming ``what``) when the server sends other bytes, a
        truncated or an extended object, and :class:`NotFoundError` when it is missing.
        """
        pieces: list[bytes] = []
        digest = hashlib.sha256()
        received = 0
        try:
            for piece in self.transport.stream(f"/v1/objects/{name.hex()}"):
                received += len(piece)
                if received > size:
                    raise IntegrityError(
                        f"{what} {name.hex()[:16]} is longer than the {size} bytes the manifest signs; "
                        "the server's copy was altered"
                    )
                digest.update(piece)
                pieces.append(piece)
        except NotFoundError:
            raise NotFoundError(f"{what} {name.hex()[:16]} is missing from the server") from None
        if received != size or not ct_equal(digest.digest(), name):
            raise IntegrityError(
                f"{what} {name.hex()[:16]} does not match the hash the manifest signs "
                f"({received} of {size} bytes received); the server's copy was altered or truncated"
            )
        return b"".join(pieces)

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
        self.transport.request(
            "PUT",
            f"/v1/manifests/{host}/{backup_id}",
            body=signed_manifest,
            headers={"Content-Type": "application/octet-stream"},
            expected=(200, 201),
        )

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
        response = self.transport.request(
            "PUT",
            path,
            body=signed,
            headers={"Content-Type": "application/octet-stream"},
            expected=(200, 201, 409),
        )
        if response.status_code != 409:
            return
        try:
            message = str(response.json().get("error", ""))
        except (ValueError, AttributeError):
            message = ""
        message = _CONTROL.sub(" ", message).strip()[:300]
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
#: The header of the server's "re-wrap" 409 (docs/api.md, "Key envelopes").
_KEYRING_VERSION = "X-Opsbackup-Keyring-Version"
#: The server's key envelope size limit (docs/api.md).
MAX_ENVELOPE = 4 << 20


def _json(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()
