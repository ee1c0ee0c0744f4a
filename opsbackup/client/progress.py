"""Progress reporting: tqdm bars on a terminal, silence otherwise (cron, systemd, pipes).

Engines report through :class:`Progress` and never import tqdm themselves; the CLI picks
:func:`make_progress` (a bar when stderr is a terminal and ``--quiet``/``--json`` are off) and
tests pass :class:`NullProgress` or a recorder.
"""

from __future__ import annotations

import sys
from typing import Any, Protocol

__all__ = ["NullProgress", "Progress", "TqdmProgress", "make_progress"]


class Progress(Protocol):
    def stage(self, name: str, total: int | None = None, unit: str = "B") -> None:
        """Begin a new stage (``"backup"``, ``"verify"``, ``"restore"``) of ``total`` units."""

    def advance(self, n: int) -> None:
        """``n`` more units of the current stage are done (may be called from any thread)."""

    def close(self) -> None:
        """End the last stage."""


class NullProgress:
    def stage(self, name: str, total: int | None = None, unit: str = "B") -> None:
        return None

    def advance(self, n: int) -> None:
        return None

    def close(self) -> None:
        return None


class TqdmProgress:
    """One tqdm bar per stage on stderr."""

    def __init__(self) -> None:
        self._bar: Any = None

    def stage(self, name: str, total: int | None = None, unit: str = "B") -> None:
        from tqdm import tqdm

        self.close()
        self._bar = tqdm(
            total=total,
            desc=name,
            unit=unit,
            unit_scale=True,
            unit_divisor=1024,
            file=sys.stderr,
            leave=False,
        )

    def advance(self, n: int) -> None:
        if self._bar is not None:
            self._bar.update(n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def make_progress(*, enabled: bool = True) -> Progress:
    """A bar when ``enabled`` and stderr is a terminal; silence otherwise."""
    if enabled and sys.stderr.isatty():
        return TqdmProgress()
    return NullProgress()
