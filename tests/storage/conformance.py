"""The ONE conformance suite every :class:`ObjectStore` backend runs.

A backend's test module subclasses :class:`ObjectStoreConformance` and provides a ``store``
fixture returning a fresh, empty store; pytest then runs every test below against it::

    class TestMyBackend(ObjectStoreConformance):
        @pytest.fixture
        def store(self, tmp_path: Path) -> ObjectStore:
            return MyBackend(...)
"""

from __future__ import annotations

import functools
import hashlib
import io
import itertools
import os
import threading
import tracemalloc
from collections.abc import Callable, Iterator

import pytest

from opsbackup.errors import FormatError, IntegrityError, NotFoundError
from opsbackup.storage.base import MAX_KEY_LENGTH, ObjectStore

__all__ = ["INVALID_KEYS", "ObjectStoreConformance", "PatternSource"]

INVALID_KEYS = [
    "",
    "..",
    "a/../b",
    "/abs",
    "a//b",
    "a/",
    "Upper",
    "a/B",
    ".hidden",
    "a/.hidden",
    "x.tmp",
    "a/x.tmp",
    "a" * (MAX_KEY_LENGTH + 1),
    "a" * 129,
    "nul\x00byte",
    "back\\slash",
    "space here",
    "caf\u00e9",
]


class PatternSource(io.RawIOBase):
    """A readable stream of ``size`` deterministic bytes that never exists whole in memory."""

    def __init__(self, size: int, seed: int = 0) -> None:
        self.size = size
        self.position = 0
        self._block = hashlib.sha256(seed.to_bytes(8, "big")).digest() * 2048  # 64 KiB

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        n = min(len(buffer), self.size - self.position, 1 << 16)
        start = self.position % len(self._block)
        chunk = (self._block[start:] + self._block[:start])[:n]
        buffer[:n] = chunk
        self.position += n
        return n

    @classmethod
    def digest(cls, size: int, seed: int = 0) -> bytes:
        source, h = cls(size, seed), hashlib.sha256()
        while piece := source.read(1 << 20):
            h.update(piece)
        return h.digest()


def _list_sizes(store: ObjectStore, implementation: str) -> Callable[..., Iterator[tuple[str, int]]]:
    """The backend's ``list_sizes``, or the base class's default run on the backend."""
    if implementation == "backend":
        return store.list_sizes
    return functools.partial(ObjectStore.list_sizes, store)


#: Keys whose string order crosses "directories" every way: a file next to a directory of
#: the same stem (``a.x``, ``a-z``, ``a0`` around ``a/``), nested directories, a file in one.
_START_AFTER_OBJECTS = {
    "a-z": b"22",
    "a.x": b"1",
    "a/b": b"",
    "a/c/d": b"three",
    "a/c/e": b"four",
    "a0": b"55555",
    "b": b"x" * 1000,
    "data/00/1": b"y",
    "data/00/2": b"yy",
    "data/0a": b"yyy",
    "data/ff/1": b"yyyy",
    "data/ff/2": b"yyyyy",
}
#: Every key (at), keys that are not stored between them (``a/bb``, ``a/c/d0``), directory
#: paths written as keys (``a/c``, ``data/00``), string prefixes of a directory that are not
#: directories (``data/0``), keys below a file (``a/c/d/e``), missing directories (``a/d``),
#: and before and beyond everything.
_START_AFTER_POINTS = [
    *_START_AFTER_OBJECTS,
    "0",
    "a",
    "a/bb",
    "a/c",
    "a/c/d0",
    "a/c/d/e",
    "a/c/zz",
    "a/d",
    "c",
    "data",
    "data/0",
    "data/00",
    "data/00/0",
    "data/00/10",
    "data/01/x",
    "data/ff/1x",
    "data/ff/3",
    "data/zz/1",
    "zzz",
]


def _put(store: ObjectStore, key: str, data: bytes, **kwargs: object) -> bool:
    return store.put(key, io.BytesIO(data), **kwargs)  # type: ignore[arg-type]


class ObjectStoreConformance:
    """Every test a backend must pass. Subclasses provide the ``store`` fixture."""

    @pytest.fixture
    def store(self) -> Iterator[ObjectStore]:
        raise NotImplementedError("a backend's test class must provide the 'store' fixture")

    def test_round_trip(self, store: ObjectStore) -> None:
        assert _put(store, "data/ab/obj1", b"hello world") is True
        assert store.read("data/ab/obj1") == b"hello world"
        assert store.size("data/ab/obj1") == 11
        assert store.exists("data/ab/obj1")

    def test_empty_object(self, store: ObjectStore) -> None:
        assert _put(store, "empty", b"") is True
        assert store.read("empty") == b""
        assert store.size("empty") == 0

    def test_large_object_streams_with_bounded_memory(self, store: ObjectStore) -> None:
        size = 20 << 20
        tracemalloc.start()
        try:
            assert store.put("big", PatternSource(size), sha256=PatternSource.digest(size))  # type: ignore[arg-type]
            h, total, biggest = hashlib.sha256(), 0, 0
            for piece in store.get("big"):
                h.update(piece)
                total += len(piece)
                biggest = max(biggest, len(piece))
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert total == size
        assert h.digest() == PatternSource.digest(size)
        assert biggest <= 4 << 20
        assert peak < 8 << 20, f"peak traced memory {peak} bytes: the object was held whole"

    def test_conditional_create_keeps_the_first(self, store: ObjectStore) -> None:
        assert _put(store, "k", b"first") is True
        assert _put(store, "k", b"second") is False
        assert store.read("k") == b"first"

    def test_racing_creators_exactly_one_wins(self, store: ObjectStore) -> None:
        n = 8
        bodies = [bytes([i]) * (256 << 10) for i in range(n)]
        barrier = threading.Barrier(n)
        results: list[bool | BaseException] = [False] * n

        def create(i: int) -> None:
            barrier.wait()
            try:
                results[i] = _put(store, "race/obj", bodies[i])
            except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
                results[i] = exc

        threads = [threading.Thread(target=create, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert [r for r in results if isinstance(r, BaseException)] == []
        assert results.count(True) == 1
        assert store.read("race/obj") == bodies[results.index(True)]
        assert list(store.list("race/")) == ["race/obj"]

    def test_overwrite_replaces(self, store: ObjectStore) -> None:
        _put(store, "k", b"old contents")
        assert _put(store, "k", b"new", overwrite=True) is True
        assert store.read("k") == b"new"

    def test_overwrite_keeps_old_on_failure(self, store: ObjectStore) -> None:
        _put(store, "k", b"old")
        with pytest.raises(IntegrityError):
            _put(store, "k", b"new", overwrite=True, sha256=hashlib.sha256(b"other").digest())
        assert store.read("k") == b"old"

    def test_sha256_match_stores(self, store: ObjectStore) -> None:
        assert _put(store, "k", b"abc", sha256=hashlib.sha256(b"abc").digest())
        assert store.read("k") == b"abc"

    def test_sha256_mismatch_stores_nothing(self, store: ObjectStore) -> None:
        with pytest.raises(IntegrityError):
            _put(store, "k", b"abc", sha256=hashlib.sha256(b"abd").digest())
        assert not store.exists("k")
        assert list(store.list("")) == []

    def test_max_size_exceeded_stores_nothing(self, store: ObjectStore) -> None:
        assert _put(store, "ok", b"x" * 10, max_size=10)
        with pytest.raises(FormatError):
            store.put("big", PatternSource(5 << 20), max_size=1 << 20)  # type: ignore[arg-type]
        assert not store.exists("big")
        assert list(store.list("")) == ["ok"]

    @pytest.mark.parametrize(
        ("offset", "length", "expected"),
        [
            (0, 3, b"012"),
            (4, 3, b"456"),
            (7, None, b"789"),
            (8, 100, b"89"),
            (10, None, b""),
            (0, 0, b""),
            (0, None, b"0123456789"),
        ],
    )
    def test_ranged_get(self, store: ObjectStore, offset: int, length: int | None, expected: bytes) -> None:
        _put(store, "r", b"0123456789")
        assert store.read("r", offset=offset, length=length) == expected

    def test_range_beyond_end(self, store: ObjectStore) -> None:
        _put(store, "r", b"0123456789")
        with pytest.raises(FormatError):
            store.read("r", offset=11)

    def test_missing_key(self, store: ObjectStore) -> None:
        with pytest.raises(NotFoundError):
            store.get("missing/key")  # raised before the first piece is asked for
        with pytest.raises(NotFoundError):
            store.size("missing")
        assert not store.exists("missing")
        assert store.delete("missing") is False

    def test_prefix_of_a_key_is_not_an_object(self, store: ObjectStore) -> None:
        _put(store, "dir/obj", b"x")
        assert not store.exists("dir")
        with pytest.raises(NotFoundError):
            store.read("dir")
        with pytest.raises(NotFoundError):
            store.read("dir/obj/below")

    @pytest.mark.parametrize("key", INVALID_KEYS, ids=lambda k: repr(k[:20]))
    def test_invalid_keys_refused(self, store: ObjectStore, key: str) -> None:
        with pytest.raises(FormatError):
            _put(store, key, b"x")
        with pytest.raises(FormatError):
            store.read(key)
        with pytest.raises(FormatError):
            store.size(key)
        with pytest.raises(FormatError):
            store.delete(key)
        assert list(store.list("")) == []

    def test_delete(self, store: ObjectStore) -> None:
        _put(store, "a/b", b"x")
        assert store.delete("a/b") is True
        assert store.delete("a/b") is False
        assert not store.exists("a/b")
        assert _put(store, "a/b", b"again") is True
        assert store.read("a/b") == b"again"

    def test_list_by_prefix_sorted(self, store: ObjectStore) -> None:
        keys = ["a.x", "a/b", "a/c/d", "a-z", "a0", "b", "data/00/1", "data/00/2", "data/ff/1", "data/0a"]
        for k in keys:
            _put(store, k, k.encode())
        assert list(store.list("")) == sorted(keys)
        assert list(store.list("data/")) == ["data/00/1", "data/00/2", "data/0a", "data/ff/1"]
        assert list(store.list("data/00/")) == ["data/00/1", "data/00/2"]
        assert list(store.list("nothing/")) == []
        with pytest.raises(FormatError):
            list(store.list("../"))

    @pytest.mark.parametrize("implementation", ["backend", "default"])
    def test_list_sizes(self, store: ObjectStore, implementation: str) -> None:
        """Sizes as :meth:`size` gives them, in :meth:`list` order; also the base class's default."""
        list_sizes = _list_sizes(store, implementation)
        objects = {
            "a.x": b"1",
            "a/b": b"",
            "a/c/d": b"three",
            "a-z": b"22",
            "b": b"x" * 1000,
            "data/00/1": b"y",
        }
        for k, data in objects.items():
            _put(store, k, data)
        for prefix in ("", "a/", "a/c/", "data/", "nothing/"):
            listed = list(list_sizes(prefix))
            assert listed == [(k, len(objects[k])) for k in store.list(prefix)]
            assert listed == [(k, store.size(k)) for k in store.list(prefix)]
        assert [k for k, _ in list_sizes("")] == sorted(objects)
        with pytest.raises(FormatError):
            list(list_sizes("../"))
        with pytest.raises(FormatError):
            list(list_sizes("a"))

    @pytest.mark.parametrize("implementation", ["backend", "default"])
    def test_list_sizes_survives_deletes_while_listing(self, store: ObjectStore, implementation: str) -> None:
        """Keys deleted mid-listing (some already scanned, some not) are not fatal; the rest all appear."""
        list_sizes = _list_sizes(store, implementation)
        objects = {f"d/{i:02d}/{j}": b"z" * (i * 10 + j) for i in range(4) for j in range(3)}
        for k, data in objects.items():
            _put(store, k, data)
        gone = {"d/00/2", "d/01/0", "d/01/1", "d/01/2", "d/03/2"}
        listing = list_sizes("d/")
        listed = [next(listing)]
        for k in sorted(gone):
            assert store.delete(k)
        listed += list(listing)
        keys = [k for k, _ in listed]
        assert keys == sorted(keys)
        assert set(objects) - gone <= set(keys) <= set(objects)
        assert all(size == len(objects[k]) for k, size in listed)

    @pytest.mark.parametrize("implementation", ["backend", "default"])
    def test_list_sizes_start_after(self, store: ObjectStore, implementation: str) -> None:
        """Only keys strictly after ``start_after``, in order, with their sizes, wherever it falls."""
        list_sizes = _list_sizes(store, implementation)
        objects = _START_AFTER_OBJECTS
        for k, data in objects.items():
            _put(store, k, data)
        assert list(objects) == sorted(objects)
        for prefix in ("", "a/c/", "data/"):  # more prefixes: test_list_sizes_start_after_edges
            under = [(k, len(objects[k])) for k in objects if k.startswith(prefix)]
            for start in _START_AFTER_POINTS:
                expected = [(k, size) for k, size in under if k > start]
                assert list(list_sizes(prefix, start_after=start)) == expected, (prefix, start)
            assert list(list_sizes(prefix, start_after=None)) == under

    @pytest.mark.parametrize("implementation", ["backend", "default"])
    def test_list_sizes_start_after_edges(self, store: ObjectStore, implementation: str) -> None:
        """At the last key and beyond it: empty; before the prefix: everything; not a key: refused."""
        list_sizes = _list_sizes(store, implementation)
        assert list(list_sizes("", start_after="a")) == []  # an empty store
        for k in ("m/1", "m/2/x", "n"):
            _put(store, k, k.encode())
        assert list(list_sizes("m/", start_after="m/2/x")) == []
        assert list(list_sizes("m/", start_after="m/3")) == []
        assert list(list_sizes("m/", start_after="n")) == []  # beyond the prefix
        assert list(list_sizes("m/", start_after="a/z")) == [("m/1", 3), ("m/2/x", 5)]  # before it
        assert list(list_sizes("m/", start_after="m")) == [("m/1", 3), ("m/2/x", 5)]
        assert list(list_sizes("", start_after="m/1")) == [("m/2/x", 5), ("n", 1)]
        for bad in ("", "../x", "M/1", "m//1", "m/"):
            with pytest.raises(FormatError):
                list(list_sizes("m/", start_after=bad))

    def test_list_sizes_start_after_pages_through_everything_once(self, store: ObjectStore) -> None:
        """Resuming after each page's last key, as the server's object listing does, sees every key once."""
        keys = [f"o/{i % 7:02x}/{i:03d}" for i in range(40)]
        for k in keys:
            _put(store, k, b"." * (len(k) + int(k[-3:]) % 5))
        seen: list[tuple[str, int]] = []
        last: str | None = None
        while True:
            page = list(itertools.islice(store.list_sizes("o/", start_after=last), 6))
            if not page:
                break
            seen += page
            last = page[-1][0]
        assert seen == list(store.list_sizes("o/")) == [(k, store.size(k)) for k in sorted(keys)]

    def test_exists_many(self, store: ObjectStore) -> None:
        for k in ("x/1", "x/2", "y"):
            _put(store, k, b".")
        assert store.exists_many(["x/1", "x/3", "y", "z"]) == {"x/1", "y"}
        assert store.exists_many([]) == set()

    def test_source_error_stores_nothing(self, store: ObjectStore) -> None:
        class Failing(io.RawIOBase):
            def __init__(self) -> None:
                self.calls = 0

            def readable(self) -> bool:
                return True

            def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
                self.calls += 1
                if self.calls > 3:
                    raise OSError("the client went away")
                buffer[:1000] = os.urandom(1000)
                return 1000

        with pytest.raises(OSError, match="went away"):
            store.put("k", Failing())  # type: ignore[arg-type]
        assert not store.exists("k")
        assert list(store.list("")) == []
