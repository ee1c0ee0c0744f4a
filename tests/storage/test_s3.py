"""The S3 backend against a real S3 API server on loopback (moto): the conformance suite, plus S3 only.

Each test gets a fresh bucket; the store uses the smallest part size S3 allows (5 MiB), so a
20 MiB object goes in four parts and the conformance suite's memory bound holds.
"""

from __future__ import annotations

import hashlib
import io
import threading
from typing import Any

import boto3
import pytest

from opsbackup.errors import FormatError, IntegrityError, LocalIOError, NotFoundError
from opsbackup.server.routes_objects import _list_page
from opsbackup.storage.base import ObjectStore
from opsbackup.storage.s3 import MIN_PART_SIZE, S3Store
from tests.s3_support import REGION, moto_endpoint, new_store
from tests.storage.conformance import ObjectStoreConformance, PatternSource


class TestS3Conformance(ObjectStoreConformance):
    @pytest.fixture
    def store(self) -> ObjectStore:
        return new_store()


def _raw(store: S3Store) -> list[str]:
    """Every key in the bucket, including what the store would not list."""
    pages = store.client.get_paginator("list_objects_v2").paginate(Bucket=store.bucket)
    return sorted(item["Key"] for page in pages for item in page.get("Contents", ()))


def _uploads(store: S3Store) -> list[str]:
    return [u["Key"] for u in store.client.list_multipart_uploads(Bucket=store.bucket).get("Uploads", ())]


def test_keys_map_under_the_prefix_and_a_neighbour_prefix_never_shows() -> None:
    store = new_store(prefix="site-a/objects/")
    neighbour = new_store(prefix="site-a/", bucket=store.bucket)
    other = new_store(prefix="site-b/", bucket=store.bucket)
    for s in (neighbour, other):
        s.put("k", io.BytesIO(b"not yours"))
        s.put("data/ab/cd", io.BytesIO(b"not yours"))
    assert store.put("data/ab/cd", io.BytesIO(b"x")) is True  # the neighbours' objects do not count
    assert "site-a/objects/data/ab/cd" in _raw(store)
    assert list(store.list("")) == ["data/ab/cd"]
    assert list(store.list("data/")) == ["data/ab/cd"]
    assert not store.exists("k")
    assert store.delete("k") is False
    assert store.read("data/ab/cd") == b"x"
    assert other.read("data/ab/cd") == b"not yours"
    assert list(neighbour.list("")) == ["data/ab/cd", "k", "objects/data/ab/cd"]


def test_a_multipart_object_is_invisible_until_it_is_complete_and_checked() -> None:
    store = new_store()
    size = 3 * MIN_PART_SIZE + 123
    with pytest.raises(IntegrityError):
        store.put("big", PatternSource(size), sha256=b"\0" * 32)  # type: ignore[arg-type]
    assert _raw(store) == []
    assert _uploads(store) == []  # aborted: no parts left to pay for
    assert store.put("big", PatternSource(size), sha256=PatternSource.digest(size))  # type: ignore[arg-type]
    assert store.size("big") == size
    assert _uploads(store) == []


def test_a_multipart_create_loses_to_an_existing_object_and_leaves_no_parts() -> None:
    store = new_store()
    assert store.put("k", io.BytesIO(b"first"))
    size = 2 * MIN_PART_SIZE + 1
    assert store.put("k", PatternSource(size)) is False  # type: ignore[arg-type]
    assert store.read("k") == b"first"
    assert _uploads(store) == []
    assert store.put("k", PatternSource(size), overwrite=True) is True  # type: ignore[arg-type]
    assert store.size("k") == size


def test_racing_multipart_creators_exactly_one_wins() -> None:
    """The conformance race, with bodies big enough to go up in parts (conditional Complete)."""
    store = new_store()
    n, size = 6, MIN_PART_SIZE + 1
    barrier = threading.Barrier(n)
    results: list[bool | BaseException] = [False] * n

    def create(i: int) -> None:
        barrier.wait()
        try:
            results[i] = store.put("race", PatternSource(size, seed=i))  # type: ignore[arg-type]
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            results[i] = exc

    threads = [threading.Thread(target=create, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert results.count(True) == 1, results
    winner = results.index(True)
    assert hashlib.sha256(store.read("race")).digest() == PatternSource.digest(size, seed=winner)
    assert _uploads(store) == []  # the losers' parts were aborted


def test_exactly_a_part_is_one_put_and_one_byte_more_is_multipart() -> None:
    store = new_store()
    for size in (MIN_PART_SIZE, MIN_PART_SIZE + 1, 2 * MIN_PART_SIZE):
        key = f"p{size}"
        assert store.put(key, PatternSource(size), sha256=PatternSource.digest(size))  # type: ignore[arg-type]
        head = store.client.head_object(Bucket=store.bucket, Key=key)
        multipart = "-" in head["ETag"]  # S3's ETag of a multipart object is "<md5>-<parts>"
        assert multipart == (size > MIN_PART_SIZE), (size, head["ETag"])
        h = hashlib.sha256(b"".join(store.get(key)))
        assert h.digest() == PatternSource.digest(size)


def test_ranged_reads_across_parts() -> None:
    store = new_store()
    size = 2 * MIN_PART_SIZE + 10
    store.put("k", PatternSource(size))  # type: ignore[arg-type]
    whole = store.read("k")
    start = MIN_PART_SIZE - 5
    assert store.read("k", offset=start, length=20) == whole[start : start + 20]
    assert store.read("k", offset=size - 3) == whole[-3:]
    assert store.read("k", offset=size) == b""
    with pytest.raises(FormatError):
        store.read("k", offset=size + 1)
    with pytest.raises(FormatError):
        store.read("k", offset=size + 1, length=0)


def test_a_missing_bucket_is_one_clear_error() -> None:
    store = S3Store("no-such-bucket-here", endpoint=moto_endpoint(), region=REGION)
    with pytest.raises(LocalIOError, match="no-such-bucket-here"):
        store.check_bucket()
    with pytest.raises(LocalIOError, match="NoSuchBucket"):
        store.put("k", io.BytesIO(b"x"))
    with pytest.raises(LocalIOError):
        list(store.list(""))


def test_an_unreachable_endpoint_is_one_clear_error() -> None:
    store = S3Store("b", endpoint="http://127.0.0.1:9", region=REGION)
    store.client.meta.config.retries = {"max_attempts": 1}
    with pytest.raises(LocalIOError, match="S3 storage"):
        store.size("k")


def test_objects_that_are_not_keys_are_skipped_in_listings() -> None:
    store = new_store(prefix="p/")
    boto3.client("s3", endpoint_url=moto_endpoint(), region_name=REGION).put_object(
        Bucket=store.bucket, Key="p/Upper/Case", Body=b"x"
    )
    store.put("a/b", io.BytesIO(b"1"))
    assert list(store.list("")) == ["a/b"]
    with pytest.raises(NotFoundError):
        store.read("a")


def test_bad_settings_are_refused() -> None:
    with pytest.raises(FormatError):
        S3Store("b", prefix="no-slash")
    with pytest.raises(FormatError):
        S3Store("b", prefix="../x/")
    with pytest.raises(FormatError):
        S3Store("b", part_size=MIN_PART_SIZE - 1)


def test_list_sizes_takes_sizes_from_the_list_pages_not_one_head_per_object() -> None:
    """1,001 objects under a prefix: two ListObjectsV2 pages and no other request at all."""
    store = new_store(prefix="p/")
    neighbour = new_store(prefix="q/", bucket=store.bucket)
    neighbour.put("d/x", io.BytesIO(b"not ours"))
    raw = boto3.client("s3", endpoint_url=moto_endpoint(), region_name=REGION)
    keys = [f"d/{i:04d}" for i in range(1001)]
    for i, key in enumerate(keys):
        raw.put_object(Bucket=store.bucket, Key="p/" + key, Body=b"x" * (i % 7))
    raw.put_object(Bucket=store.bucket, Key="p/d/Upper", Body=b"not a key")
    calls: list[str] = []
    store.client.meta.events.register("before-call.s3", lambda model, **_: calls.append(model.name))
    listed = list(store.list_sizes("d/"))
    assert listed == [(key, i % 7) for i, key in enumerate(keys)]
    assert calls == ["ListObjectsV2", "ListObjectsV2"]


def test_the_second_page_of_an_object_listing_does_not_list_the_first_again() -> None:
    """The server's ``GET /v1/objects`` pages over 1,002 objects: page 2 starts where page 1 ended.

    Page 1 (1,000 names, and the 1,001st to know more follow) takes two ``ListObjectsV2``. Page 2
    used to take the same two again, skipping the first 1,000 keys; it now takes one, whose
    ``StartAfter`` is page 1's last object's key.
    """
    store = new_store()
    prefix = "accounts/" + "ab" * 16 + "/objects/"
    names = sorted(hashlib.sha256(str(i).encode()).hexdigest() for i in range(1002))
    raw = boto3.client("s3", endpoint_url=moto_endpoint(), region_name=REGION)
    for i, name in enumerate(names):
        raw.put_object(Bucket=store.bucket, Key=f"{prefix}{name[:2]}/{name}", Body=b"x" * (i % 5))
    calls: list[tuple[str, str | None]] = []

    def record(model: Any, params: dict[str, Any], **_: Any) -> None:
        calls.append((model.name, params.get("StartAfter")))

    store.client.meta.events.register("provide-client-params.s3", record)
    page1, cursor = _list_page(store, prefix, "", 1000)
    assert [p["name"] for p in page1] == names[:1000]
    assert cursor == names[999]
    assert calls == [("ListObjectsV2", None), ("ListObjectsV2", None)]
    calls.clear()
    page2, cursor = _list_page(store, prefix, names[999], 1000)
    assert page2 == [{"name": name, "size": i % 5} for i, name in enumerate(names) if i >= 1000]
    assert cursor is None
    assert calls == [("ListObjectsV2", f"{prefix}{names[999][:2]}/{names[999]}")]
