"""In-flight manifest stores and deletes, recorded in the shared store so that every server
instance sees every other's, and a delete never removes what a manifest being stored needs.

The race this closes (docs/spec/delete-request.md, "Deletes and concurrent manifests"): a prune
computes what is unreferenced from the manifests it read, then signs and sends its delete; a
backup that stores its manifest in between, naming a pack the prune is about to delete, would be
published unrestorable. Both sides therefore announce themselves before they check the other:

- ``PUT /v1/manifests``: record the manifest as *pending*, then look for pending deletes that
  name one of its objects or key envelopes (refused, 409, as "objects missing"), then check the
  objects and envelopes are stored, store the manifest, and drop the pending record.
- ``POST /v1/delete`` (naming objects or envelopes): record the request as *pending*, then read
  every stored manifest outside the request's basis and every pending manifest, keep what they
  need, delete the rest, and drop the pending record.

Whichever records first is seen by the other: if the manifest's record came first the delete
keeps its objects; otherwise the manifest sees the pending delete, or (if that delete has already
finished) sees its objects missing. S3 and the filesystem store give read-after-write listings,
which this relies on.

A record whose request died (a crashed instance) expires after :data:`PENDING_TTL` seconds of the
server clock, and whoever reads it then removes it; a request still working past
:data:`DEADLINE` seconds stops before its next write (503), so a live record never expires.

Stored manifests and records are *parsed* here without their signatures being checked again:
they were verified when accepted, and what is parsed can only make a delete keep more, never
delete more.

Keys and record bodies (``u64`` big-endian server seconds when recorded, then the bytes)::

    accounts/<id>/pending/manifests/<host>/<backup id hex>.<16 hex token>   created | signed manifest
    accounts/<id>/pending/deletes/<nonce hex>                              created | delete request body
"""

from __future__ import annotations

import io
import secrets
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from formats import delete_request, manifest, signed
from formats.delete_request import DeleteRequest
from formats.errors import FormatError, NotFoundError
from formats.manifest import Manifest
from opsbackup.server.accounts import Account
from opsbackup.server.common import ApiError, manifest_key
from opsbackup.storage.base import ObjectStore

__all__ = [
    "DEADLINE",
    "PENDING_TTL",
    "Needs",
    "check_deadline",
    "drop",
    "needs_outside",
    "pending_deletes",
    "record_delete",
    "record_manifest",
]

#: A pending record older than this (server seconds) belongs to a request that died: ignored and removed.
PENDING_TTL = 3600
#: A request stops before its next write once it has run this long, well inside the TTL (and
#: leaving 45 minutes for the clocks of two instances to differ).
DEADLINE = PENDING_TTL // 4
_HEADER = struct.Struct(">Q")


@dataclass
class Needs:
    """What some manifests need kept: object names and backup ids of key envelopes."""

    objects: set[bytes] = field(default_factory=set)
    envelopes: set[bytes] = field(default_factory=set)

    def add(self, m: Manifest) -> None:
        self.objects.update(obj.name for obj in m.objects)
        self.envelopes.add(m.backup_id)
        self.envelopes.update(m.sources)


def _prefix(account: Account, kind: str) -> str:
    return f"accounts/{account.account_id.hex()}/pending/{kind}/"


def _put(store: ObjectStore, key: str, now: float, data: bytes) -> None:
    store.put(key, io.BytesIO(_HEADER.pack(int(now)) + data), overwrite=False)


def record_manifest(
    store: ObjectStore, account: Account, host: str, backup_id: str, data: bytes, now: float
) -> str:
    """Record a signed manifest about to be stored; returns the record's key (for :func:`drop`)."""
    key = f"{_prefix(account, 'manifests')}{host}/{backup_id}.{secrets.token_hex(8)}"
    _put(store, key, now, data)
    return key


def record_delete(store: ObjectStore, account: Account, req: DeleteRequest, now: float) -> str:
    """Record a verified delete request about to be applied; returns the record's key."""
    key = f"{_prefix(account, 'deletes')}{req.nonce.hex()}"
    _put(store, key, now, delete_request.encode(req))
    return key


def drop(store: ObjectStore, key: str) -> None:
    """Remove a record once its request has finished (stored, refused or failed)."""
    store.delete(key)


def check_deadline(started: float, now: float, what: str) -> None:
    """Refuse to go on (503) once a request has run for :data:`DEADLINE` seconds."""
    if now - started > DEADLINE:
        raise ApiError(503, f"{what} took longer than {DEADLINE} s and was stopped; send it again")


def _live(store: ObjectStore, prefix: str, now: float) -> Iterator[bytes]:
    """The bodies of the unexpired records under ``prefix``; expired ones are removed."""
    for key in list(store.list(prefix)):
        try:
            raw = store.read(key)
        except NotFoundError:  # finished meanwhile
            continue
        if len(raw) < _HEADER.size:
            raise ApiError(500, f"pending record {key} is corrupt; remove it from the store")
        (created,) = _HEADER.unpack_from(raw)
        if now - created > PENDING_TTL:
            store.delete(key)
            continue
        yield raw[_HEADER.size :]


def _parse_manifest(data: bytes, what: str) -> Manifest:
    try:
        obj = signed.decode(data, what)
        signed.expect_type(obj, manifest.MAGIC, what)
        return manifest.decode(obj.body, what)
    except FormatError as exc:
        raise ApiError(
            503, f"{what} cannot be read ({exc}), so nothing it needs can be told apart: nothing deleted"
        ) from None


def pending_deletes(store: ObjectStore, account: Account, now: float) -> Iterator[DeleteRequest]:
    """The delete requests being applied right now (by any instance)."""
    for body in _live(store, _prefix(account, "deletes"), now):
        try:
            yield delete_request.decode(body, "pending delete record")
        except FormatError as exc:
            raise ApiError(500, f"a pending delete record is corrupt ({exc})") from None


def needs_outside(
    store: ObjectStore, account: Account, basis: Iterable[delete_request.ManifestId], now: float
) -> Needs:
    """What the stored manifests outside ``basis`` and the pending manifests need kept."""
    known = {manifest_key(account, m.host, m.backup_id.hex()) for m in basis}
    needs = Needs()
    for key in store.list(f"accounts/{account.account_id.hex()}/manifests/"):
        if key in known:
            continue
        try:
            data = store.read(key)
        except NotFoundError:  # forgotten meanwhile: it needs nothing any more
            continue
        needs.add(_parse_manifest(data, f"stored manifest {key}"))
    for data in _live(store, _prefix(account, "manifests"), now):
        needs.add(_parse_manifest(data, "a pending manifest record"))
    return needs
