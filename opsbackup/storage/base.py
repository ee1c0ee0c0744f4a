"""The one interface every storage backend implements, and the key syntax they all accept.

A key is a ``/``-separated path of segments, each ``[a-z0-9][a-z0-9._-]{0,127}`` (so no ``..``,
no empty segment, no leading dot, no upper case, no absolute path): backends may map keys to file
paths or object names directly, because :func:`check_key` has refused everything else. Objects are
immutable once written unless written with ``overwrite=True``; creation is atomic (a reader sees
the whole object or none) and ``put`` with ``overwrite=False`` is a conditional create, safe under
concurrent writers: exactly one of two racing creators wins.
"""

from __future__ import annotations

import abc
import re
from collections.abc import Iterable, Iterator
from typing import BinaryIO

from formats.errors import FormatError, NotFoundError

__all__ = ["MAX_KEY_LENGTH", "ObjectStore", "check_key"]

MAX_KEY_LENGTH = 512
_SEGMENT = re.compile(r"[a-z0-9][a-z0-9._-]{0,127}")


def check_key(key: str) -> str:
    """Return ``key`` if it is a valid storage key; raise :class:`FormatError` otherwise."""
    if not key or len(key) > MAX_KEY_LENGTH:
        raise FormatError("invalid storage key: empty or too long")
    for segment in key.split("/"):
        if not _SEGMENT.fullmatch(segment) or segment.endswith(".tmp"):
            raise FormatError(f"invalid storage key {key[:80]!r}: bad segment {segment[:40]!r}")
    return key


class ObjectStore(abc.ABC):
    """Immutable-by-default object storage. Every method validates its keys with :func:`check_key`."""

    @abc.abstractmethod
    def put(
        self,
        key: str,
        source: BinaryIO,
        *,
        sha256: bytes | None = None,
        max_size: int | None = None,
        overwrite: bool = False,
    ) -> bool:
        """Stream ``source`` to ``key``. Returns True if written, False if it already existed.

        With ``overwrite=False`` (the default) an existing object is left untouched and the source
        is not stored. With ``sha256`` the streamed bytes must hash to it, and with ``max_size``
        they must not exceed it; otherwise nothing is stored and :class:`IntegrityError` (hash) or
        :class:`FormatError` (size) is raised. Never holds the whole body in memory.
        """

    @abc.abstractmethod
    def get(self, key: str, *, offset: int = 0, length: int | None = None) -> Iterator[bytes]:
        """Stream the object's bytes ``[offset, offset + length)`` in pieces.

        :class:`NotFoundError` if the object does not exist (raised before the first piece), and
        :class:`FormatError` if the range starts beyond the end. A range that runs past the end
        is cut at the end.
        """

    @abc.abstractmethod
    def size(self, key: str) -> int:
        """The object's size in bytes; :class:`NotFoundError` if it does not exist."""

    def exists(self, key: str) -> bool:
        try:
            self.size(key)
        except NotFoundError:
            return False
        return True

    def exists_many(self, keys: Iterable[str]) -> set[str]:
        """The subset of ``keys`` that exist (backends may batch this)."""
        return {k for k in keys if self.exists(k)}

    @abc.abstractmethod
    def delete(self, key: str) -> bool:
        """Remove the object; True if it existed."""

    @abc.abstractmethod
    def list(self, prefix: str) -> Iterator[str]:
        """Every key under ``prefix`` (a key prefix ending in ``/``, or ``""`` for all), sorted."""

    def list_sizes(self, prefix: str, *, start_after: str | None = None) -> Iterator[tuple[str, int]]:
        """Every ``(key, size)`` under ``prefix``, in the order of :meth:`list`.

        For callers that need each listed object's size (the server's object listing, which prune
        reads): a backend whose listing already carries sizes (S3's ``ListObjectsV2``) overrides
        this so it costs no request per object. This default asks :meth:`size` for each key and
        skips a key deleted between the listing and that call. A key deleted while the listing
        runs may or may not appear; a key that appears has the size it had when it was looked at.
        An invalid ``prefix`` raises :class:`FormatError` as :meth:`list` does.

        ``start_after`` (a key, :class:`FormatError` if it is not one) returns only the keys
        strictly greater, so a paged listing resumes where its last page ended instead of
        listing everything before it again. It need not exist, nor lie under ``prefix``. This
        default filters :meth:`list`, which works on any backend but still reads the skipped
        keys; backends override it to start there (S3's ``StartAfter``, the filesystem skipping
        whole directories).
        """
        if start_after is None:
            return self._sizes_of(self.list(prefix))
        after = check_key(start_after)
        return self._sizes_of(key for key in self.list(prefix) if key > after)

    def _sizes_of(self, keys: Iterator[str]) -> Iterator[tuple[str, int]]:
        for key in keys:
            try:
                yield key, self.size(key)
            except NotFoundError:  # deleted since it was listed
                continue

    def read(self, key: str, *, offset: int = 0, length: int | None = None) -> bytes:
        """The whole range as one bytes object: only for small objects (keyrings, manifests)."""
        return b"".join(self.get(key, offset=offset, length=length))
