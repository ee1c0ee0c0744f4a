"""The small pieces of the read side, without a server: bounds, paths, warnings."""

from __future__ import annotations

import pytest
import zstandard

from opsbackup.errors import IntegrityError, UsageError
from opsbackup.restore.attrs import Warnings
from opsbackup.restore.chunks import decompress
from opsbackup.restore.paths import ancestors, normalize, outermost, show, within

DATA = b"compressible " * 5000


def streamed(data: bytes) -> bytes:
    """A zstd frame that does not declare its content size."""
    obj = zstandard.ZstdCompressor().compressobj()
    return obj.compress(data) + obj.flush()


def test_decompress_is_bounded_by_the_recorded_length() -> None:
    assert decompress(zstandard.ZstdCompressor().compress(DATA), len(DATA), "c") == DATA
    assert zstandard.frame_content_size(streamed(DATA)) == -1
    assert decompress(streamed(DATA), len(DATA), "c") == DATA
    with pytest.raises(IntegrityError, match="declares 65000 bytes, not the 100"):
        decompress(zstandard.ZstdCompressor().compress(DATA), 100, "c")
    with pytest.raises(IntegrityError, match="does not decompress"):
        decompress(streamed(DATA), 100, "c")  # would grow past the bound
    with pytest.raises(IntegrityError, match="holds 65000 bytes, not the 70000"):
        decompress(streamed(DATA), 70_000, "c")
    with pytest.raises(IntegrityError, match="does not decompress"):
        decompress(zstandard.ZstdCompressor().compress(DATA)[:-4], len(DATA), "c")
    with pytest.raises(IntegrityError, match="does not decompress"):
        decompress(zstandard.ZstdCompressor().compress(DATA) + b"x", len(DATA), "c")
    with pytest.raises(IntegrityError, match="does not decompress"):
        decompress(b"not zstd at all", 10, "c")


def test_normalize_user_paths() -> None:
    assert normalize("/etc/nginx/") == b"etc/nginx"
    assert normalize(b"etc") == b"etc"
    assert normalize("/") == b""
    assert normalize("caf\udce9") == b"caf\xe9"
    for bad in ("../etc", "etc/../x", "a//b", "a/./b", "a\0b", "x" * 256):
        with pytest.raises(UsageError, match="not a path inside a backup"):
            normalize(bad)


def test_subtree_helpers() -> None:
    assert within(b"a/b", b"a")
    assert within(b"a", b"a")
    assert not within(b"ab", b"a")
    assert within(b"anything", b"")
    assert ancestors(b"a/b/c") == [b"a", b"a/b"]
    assert ancestors(b"a") == []
    assert outermost([b"a/b", b"a", b"c", b"a b", b"c"]) == [b"a", b"a b", b"c"]
    assert outermost([b"x", b""]) == [b""]


def test_show_escapes_what_a_terminal_would_interpret() -> None:
    assert show(b"caf\xe9\x1b[31m\n") == "caf\\xe9\\x1b[31m\\n"
    assert show(b"x" * 200).endswith("...")


def test_warnings_group_by_kind() -> None:
    w = Warnings()
    for i in range(5):
        w.add("could not set the owner", b"f%d" % i)
    w.add("skipped a device", b"dev/sda")
    assert w.lines() == [
        "could not set the owner: 5 entries (f0, f1, f2, ...)",
        "skipped a device: 1 entry (dev/sda)",
    ]
