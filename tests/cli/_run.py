"""Run the real CLI in-process (``opsbackup.cli.main``: the one error -> exit code mapping)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from click.testing import CliRunner

from opsbackup import cli

__all__ = ["Run", "run"]


@dataclass(frozen=True)
class Run:
    """An exit code and what the command wrote."""

    code: int
    out: bytes
    err: str

    @property
    def text(self) -> str:
        return self.out.decode("utf-8", "replace")


def run(
    args: Sequence[str | Path], *, input: str | bytes | None = None, env: Mapping[str, str] | None = None
) -> Run:
    """``opsbackup ARGS`` with stdin ``input`` and extra environment ``env``; never raises."""
    runner = CliRunner()
    with runner.isolation(input=input, env=dict(env or {})) as streams:
        code = cli.main([str(a) for a in args])
    return Run(code, streams[0].getvalue(), streams[1].getvalue().decode("utf-8", "replace"))
