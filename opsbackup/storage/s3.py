"""The S3-compatible backend (AWS S3, MinIO, Ceph RGW, ...) on boto3: one S3 object per key.

Keys map to ``<prefix><key>`` in one bucket. Credentials come from boto3's usual chain
(``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, ``AWS_PROFILE`` and ``~/.aws/``, instance or
container roles); only the endpoint, bucket, prefix, region and profile are configured here.

How ``put`` keeps the :class:`ObjectStore` promises without a temporary object:

- **Nothing unverified becomes visible.** An object of at most ``part_size`` bytes is read into
  one buffer, checked (size, SHA-256) and sent with one ``PutObject``. A larger one is sent as a
  multipart upload, one buffered part at a time, hashing as it goes; ``CompleteMultipartUpload``
  (the moment the object appears) is called only after the whole body has been read and checked.
  Any failure (hash, size, the source) aborts the upload, so no part is left behind.
- **Conditional create.** With ``overwrite=False`` the ``PutObject`` or
  ``CompleteMultipartUpload`` carries ``If-None-Match: *``: the store refuses it with 412 when the
  key exists, so of two racing creators exactly one wins, across any number of processes or
  server instances. A 409 (``ConditionalRequestConflict``: a racing write still in flight) is
  retried. This needs a store with conditional writes (AWS S3 since August 2024, MinIO, Ceph
  RGW; moto >= 5.0.23 for multipart).
- **Bounded memory.** One part buffer (``part_size``, at least the S3 minimum of 5 MiB) per upload
  in flight; reads stream in pieces of :data:`PIECE`.

Not the same as the filesystem: ``delete`` asks HEAD first to say whether the object existed, so two
racing deletes may both answer True; and a stored object is only as durable as the bucket
(versioning and object lock are bucket settings, see ``docs/scaling.md``).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, BinaryIO

import boto3
import botocore.config
import botocore.exceptions

from opsbackup.errors import FormatError, IntegrityError, LocalIOError, NotFoundError
from opsbackup.storage.base import ObjectStore, check_key

__all__ = ["DEFAULT_PART_SIZE", "MIN_PART_SIZE", "PIECE", "S3Store"]

#: Streaming granularity of reads.
PIECE = 1 << 20
#: S3's smallest part (every part but the last must be at least this big).
MIN_PART_SIZE = 5 << 20
#: Objects up to this size go in one PutObject; larger ones in parts of this size.
DEFAULT_PART_SIZE = 16 << 20
_CONFLICT_RETRIES = 5
_NOT_FOUND = {"404", "NoSuchKey", "NotFound"}
_PRECONDITION = {"412", "PreconditionFailed"}
_CONFLICT = {"409", "ConditionalRequestConflict", "OperationAborted"}


def _code(exc: botocore.exceptions.ClientError) -> str:
    error = exc.response.get("Error", {})
    return str(error.get("Code") or exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))


class _ViewReader(io.RawIOBase):
    """A seekable read-only file over a memoryview (botocore rewinds bodies to retry and checksum)."""

    def __init__(self, view: memoryview) -> None:
        super().__init__()
        self._view = view
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: len(self._view)}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer: Any) -> int:
        n = max(0, min(len(buffer), len(self._view) - self._pos))
        buffer[:n] = self._view[self._pos : self._pos + n]
        self._pos += n
        return n

    def read(self, size: int | None = -1) -> bytes:
        end = len(self._view) if size is None or size < 0 else min(len(self._view), self._pos + size)
        data = bytes(self._view[self._pos : end])
        self._pos = max(self._pos, end)
        return data


def _fill(source: BinaryIO, buf: bytearray, start: int = 0) -> int:
    """Read from ``source`` into ``buf[start:]`` until it is full or the source ends; the bytes held."""
    view = memoryview(buf)
    held = start
    readinto = getattr(source, "readinto", None)
    while held < len(buf):
        if readinto is not None:
            n = readinto(view[held:])
        else:
            piece = source.read(len(buf) - held)
            n = len(piece)
            view[held : held + n] = piece
        if not n:
            break
        held += n
    return held


def _read_up_to(source: BinaryIO, limit: int) -> bytearray:
    """Up to ``limit`` bytes of ``source``, read in pieces (a small object never costs a full part)."""
    buf = bytearray()
    while len(buf) < limit:
        piece = source.read(min(PIECE, limit - len(buf)))
        if not piece:
            break
        buf += piece
    return buf


class S3Store(ObjectStore):
    """Objects in ``bucket`` under ``prefix`` (empty, or key segments ending in ``/``)."""

    def __init__(
        self,
        bucket: str,
        *,
        prefix: str = "",
        endpoint: str | None = None,
        region: str | None = None,
        profile: str | None = None,
        part_size: int = DEFAULT_PART_SIZE,
        max_connections: int = 50,
        client: Any = None,
    ) -> None:
        """``client``: an existing boto3 S3 client to use (and share) instead of making one."""
        if prefix and (not prefix.endswith("/") or not check_key(prefix[:-1])):
            raise FormatError(f"invalid S3 prefix {prefix!r}: key segments ending in '/'")
        if part_size < MIN_PART_SIZE:
            raise FormatError(f"the S3 part size must be at least {MIN_PART_SIZE} bytes")
        self.bucket = bucket
        self.prefix = prefix
        self.part_size = part_size
        self._max_connections = max_connections
        config = botocore.config.Config(
            retries={"max_attempts": 5, "mode": "standard"},
            max_pool_connections=max_connections,
            connect_timeout=10,
            read_timeout=120,
            s3={"addressing_style": "path"} if endpoint else None,
        )
        self.client: Any = client
        if client is not None:
            return
        try:
            session = boto3.session.Session(profile_name=profile, region_name=region)
            self.client = session.client("s3", endpoint_url=endpoint, config=config)
        except (botocore.exceptions.BotoCoreError, ValueError) as exc:
            raise LocalIOError(f"S3 storage: cannot set up a client: {exc}") from None

    def _name(self, key: str) -> str:
        return self.prefix + check_key(key)

    def _fail(self, what: str, exc: Exception) -> LocalIOError:
        if isinstance(exc, botocore.exceptions.ClientError):
            message = exc.response.get("Error", {}).get("Message", "")
            detail = f"{_code(exc)} {message}".strip()
        else:
            detail = str(exc)
        return LocalIOError(f"S3 storage (bucket {self.bucket}): cannot {what}: {detail}")

    def check_bucket(self) -> None:
        """Raise :class:`LocalIOError` with one clear line unless the bucket is reachable."""
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
            raise self._fail("reach the bucket", exc) from None

    # -- writing -----------------------------------------------------------------------------

    def put(
        self,
        key: str,
        source: BinaryIO,
        *,
        sha256: bytes | None = None,
        max_size: int | None = None,
        overwrite: bool = False,
    ) -> bool:
        name = self._name(key)
        digest = hashlib.sha256()
        buf = _read_up_to(source, self.part_size + 1)  # one byte more: is there more than a part?
        held = len(buf)

        def check(total: int, final: bool) -> None:
            if max_size is not None and total > max_size:
                raise FormatError(f"object {key} is larger than the limit of {max_size} bytes")
            if final and sha256 is not None and digest.digest() != sha256:
                raise IntegrityError(f"object {key} does not match its SHA-256: nothing was stored")

        if held <= self.part_size:  # the whole object is in the buffer
            view = memoryview(buf)[:held]
            digest.update(view)
            check(held, True)
            extra = {} if overwrite else {"IfNoneMatch": "*"}
            return self._conditional(
                "store object " + key,
                lambda: self.client.put_object(
                    Bucket=self.bucket, Key=name, Body=_ViewReader(view), ContentLength=held, **extra
                ),
            )
        return self._multipart(key, name, source, buf, digest, check, overwrite)

    def _conditional(self, what: str, call: Callable[[], object]) -> bool:
        """Run a conditional write: True if it took effect, False on 412 (the key exists)."""
        for attempt in range(_CONFLICT_RETRIES + 1):
            try:
                call()
                return True
            except botocore.exceptions.ClientError as exc:
                code = _code(exc)
                if code in _PRECONDITION:
                    return False
                if code not in _CONFLICT or attempt == _CONFLICT_RETRIES:
                    raise self._fail(what, exc) from None
            except botocore.exceptions.BotoCoreError as exc:
                raise self._fail(what, exc) from None
            time.sleep(0.05 * 2**attempt)
        raise AssertionError("unreachable")

    def _multipart(
        self,
        key: str,
        name: str,
        source: BinaryIO,
        buf: bytearray,
        digest: Any,  # a hashlib sha256 object
        check: Callable[[int, bool], None],
        overwrite: bool,
    ) -> bool:
        try:
            upload_id = self.client.create_multipart_upload(Bucket=self.bucket, Key=name)["UploadId"]
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
            raise self._fail("start uploading " + key, exc) from None
        done = False
        try:
            parts: list[dict[str, Any]] = []
            total, held = 0, len(buf)
            while held:
                size = min(held, self.part_size)
                view = memoryview(buf)[:size]
                digest.update(view)
                total += size
                check(total, False)
                try:
                    response = self.client.upload_part(
                        Bucket=self.bucket,
                        Key=name,
                        UploadId=upload_id,
                        PartNumber=len(parts) + 1,
                        Body=_ViewReader(view),
                        ContentLength=size,
                    )
                except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
                    raise self._fail("upload " + key, exc) from None
                parts.append({"PartNumber": len(parts) + 1, "ETag": response["ETag"]})
                rest = held - size  # the look-ahead byte, when there was one, moves to the front
                buf[:rest] = buf[size:held]
                held = _fill(source, buf, rest)
            check(total, True)
            extra = {} if overwrite else {"IfNoneMatch": "*"}
            created = self._conditional(
                "store object " + key,
                lambda: self.client.complete_multipart_upload(
                    Bucket=self.bucket,
                    Key=name,
                    UploadId=upload_id,
                    MultipartUpload={"Parts": parts},
                    **extra,
                ),
            )
            done = created
            return created
        finally:
            if not done:
                with contextlib.suppress(botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError):
                    self.client.abort_multipart_upload(Bucket=self.bucket, Key=name, UploadId=upload_id)

    # -- reading -----------------------------------------------------------------------------

    def get(self, key: str, *, offset: int = 0, length: int | None = None) -> Iterator[bytes]:
        if offset < 0 or (length is not None and length < 0):
            raise FormatError(f"invalid range for {key}: offset {offset}, length {length}")
        name = self._name(key)
        if length == 0:
            if offset > self.size(key):
                raise FormatError(f"range starts at {offset}, beyond the end of {key}")
            return iter(())
        extra = {}
        if offset or length is not None:
            end = "" if length is None else str(offset + length - 1)
            extra["Range"] = f"bytes={offset}-{end}"
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=name, **extra)
        except botocore.exceptions.ClientError as exc:
            code = _code(exc)
            if code in _NOT_FOUND:
                raise NotFoundError(f"object {key} does not exist") from None
            if code in ("InvalidRange", "416"):
                size = self.size(key)
                if offset == size:
                    return iter(())
                raise FormatError(
                    f"range starts at {offset}, beyond the end of {key} ({size} bytes)"
                ) from None
            raise self._fail("read " + key, exc) from None
        except botocore.exceptions.BotoCoreError as exc:
            raise self._fail("read " + key, exc) from None
        return self._stream(key, response["Body"])

    def _stream(self, key: str, body: Any) -> Iterator[bytes]:
        try:
            yield from body.iter_chunks(PIECE)
        except (botocore.exceptions.BotoCoreError, OSError) as exc:
            raise self._fail("read " + key, exc) from None
        finally:
            body.close()

    def size(self, key: str) -> int:
        name = self._name(key)
        try:
            return int(self.client.head_object(Bucket=self.bucket, Key=name)["ContentLength"])
        except botocore.exceptions.ClientError as exc:
            if _code(exc) in _NOT_FOUND:
                raise NotFoundError(f"object {key} does not exist") from None
            raise self._fail("look up " + key, exc) from None
        except botocore.exceptions.BotoCoreError as exc:
            raise self._fail("look up " + key, exc) from None

    def exists_many(self, keys: Iterable[str]) -> set[str]:
        """HEAD requests in parallel (S3 has no batch lookup)."""
        wanted = [check_key(k) for k in keys]
        if len(wanted) <= 1:
            return {k for k in wanted if self.exists(k)}
        with ThreadPoolExecutor(max_workers=min(16, self._max_connections, len(wanted))) as pool:
            found = pool.map(self.exists, wanted)
            return {k for k, there in zip(wanted, found, strict=True) if there}

    def delete(self, key: str) -> bool:
        if not self.exists(key):
            return False
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self._name(key))
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
            raise self._fail("delete " + key, exc) from None
        return True

    def list(self, prefix: str) -> Iterator[str]:
        return (key for key, _ in self.list_sizes(prefix))

    def list_sizes(self, prefix: str, *, start_after: str | None = None) -> Iterator[tuple[str, int]]:
        """Sizes from the ``ListObjectsV2`` pages themselves: one request per 1,000 keys, no HEAD.

        ``start_after`` goes to S3 as ``StartAfter``, so the listing starts there rather than
        paging through every key before it.
        """
        if prefix and not prefix.endswith("/"):
            raise FormatError(f"invalid list prefix {prefix[:80]!r}: must be empty or end with '/'")
        if prefix:
            check_key(prefix[:-1])
        extra = {} if start_after is None else {"StartAfter": self._name(start_after)}
        return self._list(prefix, extra)

    def _list(self, prefix: str, extra: dict[str, str]) -> Iterator[tuple[str, int]]:
        """``(key, size)`` in S3's order (UTF-8 bytes, which for key characters is Python's string order)."""
        cut = len(self.prefix)
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self.prefix + prefix, **extra
        )
        try:
            for page in pages:
                for item in page.get("Contents", ()):
                    key = str(item["Key"])[cut:]
                    try:
                        yield check_key(key), int(item["Size"])
                    except FormatError:
                        continue  # not one of ours (written by something else): skip, like the filesystem
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
            raise self._fail(f"list {prefix or 'the bucket'}", exc) from None
