"""Exclude patterns: fnmatch on the base name, or on the absolute path when the pattern holds ``/``."""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Iterable

from opsbackup.errors import UsageError

__all__ = ["Excludes"]


class Excludes:
    """Compiled exclude patterns (like restic's): ``*.tmp`` matches names, ``/var/cache`` paths.

    A path pattern matches the absolute path; the walker never descends into an excluded
    directory, so everything under a matched path is excluded too. Names that are not UTF-8
    are matched through ``os.fsdecode`` (surrogate escapes), so ``*`` still matches them.
    """

    def __init__(self, patterns: Iterable[str]) -> None:
        names: list[str] = []
        paths: list[str] = []
        for pattern in patterns:
            if not pattern or "\0" in pattern:
                raise UsageError(f"exclude pattern {pattern!r} is empty or holds a NUL byte")
            if "/" in pattern:
                stripped = pattern.rstrip("/") or "/"
                paths.append(fnmatch.translate(stripped))
            else:
                names.append(fnmatch.translate(pattern))
        self._names = re.compile("|".join(names)) if names else None
        self._paths = re.compile("|".join(paths)) if paths else None

    def __bool__(self) -> bool:
        return self._names is not None or self._paths is not None

    def match(self, abs_path: bytes) -> bool:
        """Whether ``abs_path`` itself (not its parents) is excluded."""
        if self._names is not None and self._names.match(os.fsdecode(os.path.basename(abs_path))):
            return True
        return self._paths is not None and self._paths.match(os.fsdecode(abs_path)) is not None

    def match_with_parents(self, abs_path: bytes) -> bool:
        """Whether ``abs_path`` or one of its parent directories is excluded (for given paths)."""
        current = abs_path
        while current not in (b"/", b""):
            if self.match(current):
                return True
            current = os.path.dirname(current)
        return False
