"""The walker: stream order (component-wise, by name bytes), kinds, parents, excludes, warnings."""

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path

import pytest

from formats.tree import path_key
from opsbackup.backup.excludes import Excludes
from opsbackup.backup.walker import Entry, StdinEntry, Walker, prepare_roots
from opsbackup.errors import UsageError


def walk(
    paths: list[Path], *, excludes: tuple[str, ...] = (), stdin: str | None = None
) -> tuple[list[Entry | StdinEntry], list[str]]:
    warnings: list[str] = []
    roots, name = prepare_roots(paths, stdin)
    walker = Walker(roots, stdin_name=name, excludes=Excludes(excludes), warn=warnings.append)
    return list(walker), warnings


def rel(entries: list[Entry | StdinEntry], base: Path) -> list[bytes]:
    """Paths of the entries under ``base``, relative to it (parents above it are left out)."""
    prefix = os.fsencode(base)[1:] + b"/"
    return [e.path[len(prefix) :] for e in entries if isinstance(e, Entry) and e.path.startswith(prefix)]


def parents_of(path: Path) -> list[bytes]:
    parts = os.fsencode(path)[1:].split(b"/")
    return [b"/".join(parts[:i]) for i in range(1, len(parts))]


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    (src / "a" / "x").mkdir(parents=True)
    (src / "a" / "x" / "f").write_bytes(b"f")
    (src / "a-b").write_bytes(b"dash")  # "a-b" < "a/x" as flat bytes, but a/x comes first
    (src / "B").write_bytes(b"upper")
    (src / "empty").mkdir()
    (src / ("L" * 255)).write_bytes(b"long")
    with open(os.fsencode(src) + b"/caf\xe9-\xff", "wb") as f:
        f.write(b"latin-1")
    os.symlink("a/x/f", src / "link")
    os.link(src / "B", src / "a" / "hard")
    os.mkfifo(src / "fifo")
    return src


def test_stream_order_is_depth_first_by_name_bytes_with_every_kind(tree: Path) -> None:
    entries, warnings = walk([tree])
    assert warnings == []
    names = rel(entries, tree)
    assert names == [
        b"B",
        b"L" * 255,
        b"a",
        b"a/hard",
        b"a/x",
        b"a/x/f",
        b"a-b",
        b"caf\xe9-\xff",
        b"empty",
        b"fifo",
        b"link",
    ]
    keys = [path_key(e.path) for e in entries if isinstance(e, Entry)]
    assert keys == sorted(keys)
    kinds = {e.path.rsplit(b"/", 1)[-1]: stat.S_IFMT(e.st.st_mode) for e in entries if isinstance(e, Entry)}
    assert kinds[b"link"] == stat.S_IFLNK
    assert kinds[b"fifo"] == stat.S_IFIFO
    assert kinds[b"empty"] == stat.S_IFDIR
    assert kinds[b"hard"] == stat.S_IFREG


def test_parents_of_a_given_path_come_first_once(tree: Path) -> None:
    entries, _ = walk([tree / "a" / "x", tree / "empty", tree / "a" / "x" / "f"])
    paths = [e.path for e in entries if isinstance(e, Entry)]
    base = os.fsencode(tree)[1:]
    assert paths == [
        *parents_of(tree),
        base,
        base + b"/a",
        base + b"/a/x",
        base + b"/a/x/f",
        base + b"/empty",
    ]
    assert len(paths) == len(set(paths))


def test_a_symlinked_parent_is_resolved_but_the_given_link_is_not_followed(
    tree: Path, tmp_path: Path
) -> None:
    os.symlink(tree, tmp_path / "alias")
    entries, _ = walk([tmp_path / "alias" / "link"])
    last = entries[-1]
    assert isinstance(last, Entry)
    assert last.path == os.fsencode(tree / "link")[1:]
    assert stat.S_ISLNK(last.st.st_mode)


def test_sockets_are_skipped_with_a_warning(tree: Path) -> None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    cwd = os.getcwd()
    os.chdir(tree)  # a relative bind keeps clear of the 108-byte socket path limit
    try:
        sock.bind("sock")
    finally:
        os.chdir(cwd)
    try:
        entries, warnings = walk([tree])
    finally:
        sock.close()
    assert b"sock" not in rel(entries, tree)
    assert len(warnings) == 1
    assert "sock" in warnings[0]
    assert "socket" in warnings[0]


def test_excludes_match_base_names_or_absolute_paths(tree: Path) -> None:
    entries, _ = walk([tree], excludes=("*-b", f"{tree}/a/x", "L*"))
    assert rel(entries, tree) == [b"B", b"a", b"a/hard", b"caf\xe9-\xff", b"empty", b"fifo", b"link"]
    entries, _ = walk([tree], excludes=("caf*",))  # '*' matches bytes that are not UTF-8
    assert b"caf\xe9-\xff" not in rel(entries, tree)
    entries, _ = walk([tree / "a" / "x"], excludes=(f"{tree}/a",))  # a given path under an excluded one
    assert [e for e in entries if isinstance(e, Entry)] == []


def test_a_missing_path_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no such file"):
        prepare_roots([tmp_path, tmp_path / "nope"], None)


@pytest.mark.parametrize("name", ["a/b", "", ".", "..", "x" * 256])
def test_a_stdin_name_must_be_one_component(tmp_path: Path, name: str) -> None:
    with pytest.raises(UsageError, match="stdin name"):
        prepare_roots([tmp_path], name)


def test_a_stdin_name_may_not_collide_with_a_backed_up_path(tmp_path: Path) -> None:
    top = os.fsencode(tmp_path)[1:].split(b"/")[0].decode()
    with pytest.raises(UsageError, match="collides"):
        prepare_roots([tmp_path], top)


def test_the_stdin_entry_takes_its_place_in_the_order(tree: Path) -> None:
    top = os.fsencode(tree)[1:].split(b"/")[0].decode()
    for name, expected in (("\x01first", 0), (top + "z", -1)):
        entries, _ = walk([tree], stdin=name)
        places = [i for i, e in enumerate(entries) if isinstance(e, StdinEntry)]
        assert places == [expected % len(entries)]


@pytest.mark.skipif(
    not os.path.exists("/dev/pts/ptmx") or os.lstat("/dev").st_dev == os.lstat("/dev/pts").st_dev,
    reason="needs /dev/pts mounted apart from /dev",
)
def test_one_file_system_records_a_mount_point_but_not_what_is_under_it() -> None:
    def names(one_fs: bool) -> list[bytes]:
        roots, _ = prepare_roots([Path("/dev")], None)
        walker = Walker(roots, one_file_system=one_fs, warn=lambda _: None)
        return [e.path for e in walker if isinstance(e, Entry)]

    assert b"dev/pts/ptmx" in names(False)
    crossing = names(True)
    assert b"dev/pts" in crossing
    assert not [p for p in crossing if p.startswith(b"dev/pts/")]
