"""Walk the given paths in stream order: depth-first, siblings sorted by name bytes, never following links.

Record paths are absolute paths without the leading ``/`` (``b"etc/passwd"``). Before each given
path come DIR entries for its parent directories (once each), so a restore recreates them. The
stdin stream, when asked for, is a top-level entry at its place in that order. Entries that
vanish, cannot be listed, or are sockets become warnings; the walk goes on.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from formats.tree import MAX_COMPONENT, path_key
from opsbackup.backup.excludes import Excludes
from opsbackup.errors import UsageError

__all__ = ["Entry", "StdinEntry", "Walker", "prepare_roots", "show"]


class Entry(NamedTuple):
    """One filesystem entry: its record path, absolute path and ``lstat`` result.

    A named tuple: one is made for every entry of the walk, several times faster than a frozen
    dataclass.
    """

    path: bytes
    abs: bytes
    st: os.stat_result


@dataclass(frozen=True)
class StdinEntry:
    """The place of the stdin stream in the walk (a top-level file named ``path``)."""

    path: bytes


def show(path: bytes) -> str:
    """A printable form of a path for warnings (bytes that are not UTF-8 are escaped)."""
    return path.decode("utf-8", "backslashreplace")


def _absolute(path: Path) -> bytes:
    """``path`` made absolute and normal, with the symlinks of its parents resolved (not the last)."""
    raw = os.path.normpath(os.path.abspath(os.fsencode(path)))
    if raw.startswith(b"//"):
        raw = b"/" + raw.lstrip(b"/")
    parent, name = os.path.split(raw)
    if not name:
        return b"/"
    return os.path.join(os.path.realpath(parent), name)


def prepare_roots(paths: Sequence[Path], stdin_name: str | None) -> tuple[list[bytes], bytes | None]:
    """The given paths made absolute, checked to exist, sorted in stream order, nested ones dropped.

    Raises :class:`UsageError` (before anything is uploaded) for a path that does not exist, a
    bad stdin name, or a stdin name that collides with a top-level entry of the backup.
    """
    roots: dict[bytes, None] = {}
    for path in paths:
        raw = _absolute(path)
        try:
            os.lstat(raw)
        except FileNotFoundError:
            raise UsageError(f"{path}: no such file or directory; nothing was backed up") from None
        except OSError as exc:
            raise UsageError(f"{path}: cannot be backed up ({exc.strerror}); nothing was backed up") from None
        roots[raw] = None
    ordered = sorted(roots, key=lambda r: path_key(r[1:]) if r != b"/" else ())
    kept: list[bytes] = []
    for root in ordered:
        if kept and _inside(root, kept[-1]):
            continue
        kept.append(root)
    name = _stdin_name(stdin_name, kept)
    return kept, name


def _inside(path: bytes, root: bytes) -> bool:
    return root == b"/" or path == root or path.startswith(root + b"/")


def _stdin_name(stdin_name: str | None, roots: Sequence[bytes]) -> bytes | None:
    if stdin_name is None:
        return None
    name = os.fsencode(stdin_name)
    if not name or b"/" in name or name in (b".", b"..") or b"\0" in name or len(name) > MAX_COMPONENT:
        raise UsageError(f"stdin name {stdin_name!r} must be one path component (no '/'), 1 to 255 bytes")
    for root in roots:
        top = b"/" + name
        if root == b"/" and os.path.lexists(top):
            raise UsageError(f"stdin name {stdin_name!r} collides with /{stdin_name}, which is backed up too")
        if root != b"/" and root[1:].split(b"/")[0] == name:
            raise UsageError(f"stdin name {stdin_name!r} collides with a path that is backed up too")
    return name


class Walker:
    """Iterates :class:`Entry` (and one :class:`StdinEntry`) in stream order."""

    def __init__(
        self,
        roots: Sequence[bytes],
        *,
        stdin_name: bytes | None = None,
        excludes: Excludes | None = None,
        one_file_system: bool = False,
        warn: Callable[[str], None],
    ) -> None:
        self._roots = list(roots)
        self._stdin = stdin_name
        self._excludes = excludes or Excludes(())
        self._one_fs = one_file_system
        self._warn = warn

    def __iter__(self) -> Iterator[Entry | StdinEntry]:
        items: list[tuple[tuple[bytes, ...], bytes | None]] = [
            (path_key(r[1:]) if r != b"/" else (), r) for r in self._roots
        ]
        if self._stdin is not None and b"/" not in self._roots:
            items.append(((self._stdin,), None))  # with "/" it is merged into the top-level listing
        items.sort(key=lambda item: item[0])
        open_dirs: list[tuple[bytes, ...]] = []
        for key, root in items:
            if root is None:
                assert self._stdin is not None
                yield StdinEntry(self._stdin)
                continue
            if self._excludes and self._excludes.match_with_parents(root):
                continue
            while open_dirs and key[: len(open_dirs[-1])] != open_dirs[-1]:
                open_dirs.pop()
            parents = []
            for depth in range(len(open_dirs) + 1, len(key)):
                entry = self._lstat(b"/".join(key[:depth]), b"/" + b"/".join(key[:depth]))
                if entry is None or not stat.S_ISDIR(entry.st.st_mode):
                    break
                parents.append(entry)
            else:
                yield from parents
                open_dirs.extend(path_key(p.path) for p in parents)
                yield from self._walk_root(root)
                continue
            self._warn(f"{show(root)}: a parent directory changed during the backup; skipped")

    def _lstat(self, path: bytes, abs_path: bytes) -> Entry | None:
        try:
            return Entry(path, abs_path, os.lstat(abs_path))
        except FileNotFoundError:
            self._warn(f"{show(abs_path)}: vanished before it was backed up; skipped")
        except OSError as exc:
            self._warn(f"{show(abs_path)}: cannot be read ({exc.strerror}); skipped")
        return None

    def _walk_root(self, root: bytes) -> Iterator[Entry | StdinEntry]:
        if root == b"/":
            yield from self._walk_below(b"", b"/", os.lstat(b"/").st_dev, stdin=self._stdin)
            return
        entry = self._lstat(root[1:], root)
        if entry is None or not self._keep(entry):
            return
        yield entry
        if stat.S_ISDIR(entry.st.st_mode):
            yield from self._walk_below(entry.path, entry.abs, entry.st.st_dev)

    def _keep(self, entry: Entry) -> bool:
        if stat.S_ISSOCK(entry.st.st_mode):
            self._warn(f"{show(entry.abs)}: is a socket; skipped")
            return False
        return True

    def _walk_below(
        self, path: bytes, abs_path: bytes, dev: int, stdin: bytes | None = None
    ) -> Iterator[Entry | StdinEntry]:
        """Everything below the directory ``abs_path``, depth-first, with an explicit stack."""
        stack = [self._children(path, abs_path, stdin)]
        while stack:
            entry = next(stack[-1], None)
            if entry is None:
                stack.pop()
                continue
            if isinstance(entry, StdinEntry):
                yield entry
                continue
            if entry.st.st_dev != dev and self._one_fs:
                if stat.S_ISDIR(entry.st.st_mode):
                    yield entry  # the mount point itself, empty
                continue
            yield entry
            if stat.S_ISDIR(entry.st.st_mode):
                stack.append(self._children(entry.path, entry.abs))

    def _children(
        self, path: bytes, abs_path: bytes, stdin: bytes | None = None
    ) -> Iterator[Entry | StdinEntry]:
        """The entries of one directory, sorted; ``stdin`` (top level only) is merged at its place."""
        try:
            names = os.listdir(abs_path)
        except FileNotFoundError:
            self._warn(f"{show(abs_path)}: vanished while it was listed; its contents are skipped")
            names = []
        except OSError as exc:
            self._warn(f"{show(abs_path)}: cannot be listed ({exc.strerror}); its contents are skipped")
            names = []
        if stdin is not None:
            names = [n for n in names if n != stdin] + [stdin]
        names.sort()
        prefix = path + b"/" if path else b""
        abs_prefix = abs_path.rstrip(b"/") + b"/"
        for name in names:
            if name == stdin:
                yield StdinEntry(name)
                continue
            child_abs = abs_prefix + name
            if self._excludes and self._excludes.match(child_abs):
                continue
            entry = self._lstat(prefix + name, child_abs)
            if entry is not None and self._keep(entry):
                yield entry
