"""Paths of the record stream as the read side uses them: user input, subtrees, display.

Paths in a backup are relative byte strings (``etc/nginx/nginx.conf``, see ``formats.tree``);
names need not be UTF-8, so nothing here decodes them except :func:`show`, for messages.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

from formats.tree import check_path, path_key
from opsbackup.errors import UsageError

__all__ = ["ancestors", "normalize", "outermost", "show", "split", "within"]

_SHOW_LIMIT = 120


def show(path: bytes) -> str:
    """A printable, one-line rendering of ``path`` (non-UTF-8 bytes and control characters escaped)."""
    text = path[:_SHOW_LIMIT].decode("utf-8", "backslashreplace")
    text = "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)
    return text + ("..." if len(path) > _SHOW_LIMIT else "")


def normalize(path: bytes | str) -> bytes:
    """A path given by a user (``/etc/nginx/`` or ``etc/nginx``) as a canonical stream path.

    Leading and trailing slashes are dropped; ``b""`` (or ``/``) means the whole backup.
    UsageError for a ``.``/``..`` component, a doubled slash, a NUL or an over-long name.
    """
    raw = os.fsencode(path) if isinstance(path, str) else bytes(path)
    stripped = raw.strip(b"/")
    if not stripped:
        return b""
    try:
        check_path(stripped)
    except ValueError as exc:
        raise UsageError(f"{show(raw)} is not a path inside a backup: {exc}") from None
    return stripped


def within(path: bytes, root: bytes) -> bool:
    """Whether ``path`` is ``root`` or below it (``root == b""`` holds everything)."""
    return not root or path == root or path.startswith(root + b"/")


def split(path: bytes) -> tuple[bytes, bytes]:
    """``(parent, name)``; the parent of a top-level path is ``b""``."""
    parent, _, name = path.rpartition(b"/")
    return parent, name


def ancestors(path: bytes) -> list[bytes]:
    """The proper ancestors of ``path``, outermost first (``a``, ``a/b`` for ``a/b/c``)."""
    parts = path.split(b"/")
    return [b"/".join(parts[:i]) for i in range(1, len(parts))]


def outermost(paths: Iterable[bytes]) -> list[bytes]:
    """The paths none of the others contains, in stream order, without duplicates."""
    ordered: Sequence[bytes] = sorted(set(paths), key=path_key)
    kept: list[bytes] = []
    for p in ordered:
        if not kept or not within(p, kept[-1]):
            kept.append(p)
    return kept
