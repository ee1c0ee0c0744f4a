"""Delete request body: what an administrator asks the server to delete, signed by the deletion key.

Layout (docs/spec/delete-request.md)::

    magic "OBDR" | u16 version = 2 | account id (16) | nonce (16) | u64 issued-at (seconds)
    | u32 object count | object name (32) ...
    | u32 manifest count | { bytes8 host | backup id (16) } ...
    | u32 envelope count | backup id (16) ...
    | u32 basis count | { bytes8 host | backup id (16) } ...

The body travels inside a signed object (:mod:`formats.signed`, type tag ``OBDR``) signed by one
of the account's deletion keys; the server verifies the signature first and only then decodes.
Object names are sorted bytewise and unique; manifest ids are sorted by (host bytes, backup id)
and unique; envelopes (the backup ids whose key envelopes go, every generation) are sorted and
unique; at least one object, manifest or envelope is named. The *basis* (version 2) lists the
manifests the signer's plan was computed from, sorted and unique like the manifest ids: the
server keeps every named object and envelope that a manifest outside the basis needs (one stored,
or being stored, while the plan was made). Decoding is strict: ``encode(decode(b)) == b``.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

from formats._wire import Reader, Writer, expect_header
from formats.errors import FormatError

__all__ = [
    "ACCOUNT_ID_SIZE",
    "BACKUP_ID_SIZE",
    "HOST_RE",
    "MAGIC",
    "MAX_BASIS",
    "MAX_ITEMS",
    "NONCE_SIZE",
    "OBJECT_NAME_SIZE",
    "VERSION",
    "DeleteRequest",
    "ManifestId",
    "decode",
    "encode",
]

MAGIC = b"OBDR"
VERSION = 2
ACCOUNT_ID_SIZE = 16
NONCE_SIZE = 16
OBJECT_NAME_SIZE = 32
BACKUP_ID_SIZE = 16
#: At most this many objects, manifests and envelopes in one request (bounds the server's work per request).
MAX_ITEMS = 100_000
#: At most this many basis manifests (the server's request size limit, 8 MiB, bounds it too).
MAX_BASIS = 250_000
#: A host label: lower-case letters, digits, ``.``, ``_`` and ``-``, starting with a letter or digit.
HOST_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}")
_MAX_U64 = 2**64 - 1


@dataclass(frozen=True, order=True)
class ManifestId:
    """One manifest: the host label it was stored under and its 16-byte backup id."""

    host: str
    backup_id: bytes


@dataclass(frozen=True)
class DeleteRequest:
    """A decoded delete request. Build every tuple sorted and unique.

    ``envelopes`` are backup ids: the server deletes every generation of each one's key envelope.
    ``basis`` names the manifests the plan behind the request was computed from: the server does
    not delete an object or envelope that a manifest outside it needs.
    """

    account_id: bytes
    nonce: bytes
    issued_at: int
    objects: tuple[bytes, ...]
    manifests: tuple[ManifestId, ...]
    envelopes: tuple[bytes, ...] = ()
    basis: tuple[ManifestId, ...] = ()


def _manifest_key(m: ManifestId) -> tuple[bytes, bytes]:
    return m.host.encode("ascii"), m.backup_id


def encode(req: DeleteRequest) -> bytes:
    """The canonical body bytes; unsorted, duplicate or malformed items raise ``ValueError``."""
    if not 0 <= req.issued_at <= _MAX_U64:
        raise ValueError("issued-at is a u64 number of seconds")
    if not req.objects and not req.manifests and not req.envelopes:
        raise ValueError("a delete request names at least one object, manifest or envelope")
    if len(req.objects) + len(req.manifests) + len(req.envelopes) > MAX_ITEMS:
        raise ValueError(f"a delete request names at most {MAX_ITEMS} items")
    for name in req.objects:
        if len(name) != OBJECT_NAME_SIZE:
            raise ValueError("object names are 32 bytes")
    if any(a >= b for a, b in itertools.pairwise(req.objects)):
        raise ValueError("object names must be sorted and unique")
    _check_manifest_ids(req.manifests, "manifest ids")
    if len(req.basis) > MAX_BASIS:
        raise ValueError(f"a delete request's basis names at most {MAX_BASIS} manifests")
    _check_manifest_ids(req.basis, "basis manifest ids")
    if any(len(b) != BACKUP_ID_SIZE for b in req.envelopes):
        raise ValueError("envelope backup ids are 16 bytes")
    if any(a >= b for a, b in itertools.pairwise(req.envelopes)):
        raise ValueError("envelope backup ids must be sorted and unique")
    w = (
        Writer()
        .header(MAGIC, VERSION)
        .fixed(req.account_id, ACCOUNT_ID_SIZE)
        .fixed(req.nonce, NONCE_SIZE)
        .u64(req.issued_at)
        .u32(len(req.objects))
    )
    for name in req.objects:
        w.raw(name)
    _write_manifest_ids(w, req.manifests)
    w.u32(len(req.envelopes))
    for backup_id in req.envelopes:
        w.raw(backup_id)
    _write_manifest_ids(w, req.basis)
    return w.getvalue()


def _check_manifest_ids(ids: tuple[ManifestId, ...], what: str) -> None:
    for m in ids:
        if not HOST_RE.fullmatch(m.host) or len(m.backup_id) != BACKUP_ID_SIZE:
            raise ValueError(f"invalid manifest id {m!r}")
    keys = [_manifest_key(m) for m in ids]
    if any(a >= b for a, b in itertools.pairwise(keys)):
        raise ValueError(f"{what} must be sorted by (host, backup id) and unique")


def _write_manifest_ids(w: Writer, ids: tuple[ManifestId, ...]) -> None:
    w.u32(len(ids))
    for m in ids:
        w.bytes8(m.host.encode("ascii")).fixed(m.backup_id, BACKUP_ID_SIZE)


def _read_manifest_ids(r: Reader, count: int, what: str) -> list[ManifestId]:
    ids: list[ManifestId] = []
    last: tuple[bytes, bytes] | None = None
    for _ in range(count):
        host_raw = r.bytes8(63)
        host = host_raw.decode("ascii", errors="replace")
        if not HOST_RE.fullmatch(host):
            raise r.error(f"invalid host label in the {what}")
        backup_id = r.take(BACKUP_ID_SIZE)
        key = (host_raw, backup_id)
        if last is not None and key <= last:
            raise r.error(f"{what} ids are not sorted and unique")
        last = key
        ids.append(ManifestId(host=host, backup_id=backup_id))
    return ids


def decode(data: bytes, what: str = "delete request") -> DeleteRequest:
    """Strictly decode a (verified) body; any deviation is a :class:`FormatError`."""
    r = Reader(data, what)
    expect_header(r, MAGIC, (VERSION,))
    account_id = r.take(ACCOUNT_ID_SIZE)
    nonce = r.take(NONCE_SIZE)
    issued_at = r.u64()
    n_objects = r.count(r.u32(), OBJECT_NAME_SIZE)
    if n_objects > MAX_ITEMS:
        raise r.error(f"{n_objects} objects exceed the limit of {MAX_ITEMS}")
    objects: list[bytes] = []
    for _ in range(n_objects):
        name = r.take(OBJECT_NAME_SIZE)
        if objects and name <= objects[-1]:
            raise r.error("object names are not sorted and unique")
        objects.append(name)
    n_manifests = r.count(r.u32(), 2 + BACKUP_ID_SIZE)
    if n_objects + n_manifests > MAX_ITEMS:
        raise r.error(f"{n_objects + n_manifests} items exceed the limit of {MAX_ITEMS}")
    manifests = _read_manifest_ids(r, n_manifests, "manifest")
    n_envelopes = r.count(r.u32(), BACKUP_ID_SIZE)
    if n_objects + n_manifests + n_envelopes > MAX_ITEMS:
        raise r.error(f"{n_objects + n_manifests + n_envelopes} items exceed the limit of {MAX_ITEMS}")
    envelopes: list[bytes] = []
    for _ in range(n_envelopes):
        backup_id = r.take(BACKUP_ID_SIZE)
        if envelopes and backup_id <= envelopes[-1]:
            raise r.error("envelope backup ids are not sorted and unique")
        envelopes.append(backup_id)
    n_basis = r.count(r.u32(), 2 + BACKUP_ID_SIZE)
    if n_basis > MAX_BASIS:
        raise r.error(f"a basis of {n_basis} manifests exceeds the limit of {MAX_BASIS}")
    basis = _read_manifest_ids(r, n_basis, "basis manifest")
    r.finish()
    if not objects and not manifests and not envelopes:
        raise FormatError(f"{what} is corrupt: it names nothing to delete")
    return DeleteRequest(
        account_id=account_id,
        nonce=nonce,
        issued_at=issued_at,
        objects=tuple(objects),
        manifests=tuple(manifests),
        envelopes=tuple(envelopes),
        basis=tuple(basis),
    )
