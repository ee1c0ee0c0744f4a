"""The CLI's single error-to-exit-code mapping (docs/exit-codes.md)."""

from __future__ import annotations

import subprocess
import sys

import click
import pytest

from opsbackup import cli
from opsbackup.errors import (
    EXIT_INTERNAL,
    IntegrityError,
    LocalIOError,
    OpsbackupError,
    RollbackError,
    WrongPassphraseError,
    exit_code_for,
)


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (IntegrityError("x"), 10),
        (WrongPassphraseError("x"), 12),
        (RollbackError("x"), 13),
        (OpsbackupError("x"), 1),
        (OSError(28, "No space left on device"), LocalIOError.exit_code),
        (KeyboardInterrupt(), 130),
        (RuntimeError("bug"), EXIT_INTERNAL),
    ],
)
def test_exit_code_for(exc: BaseException, code: int) -> None:
    assert exit_code_for(exc) == code


def _with_command(callback: object) -> click.Command:
    @click.command("boom")
    def boom() -> None:
        assert callable(callback)
        callback()

    return boom


def test_user_error_is_one_line_and_its_code(capsys: pytest.CaptureFixture[str]) -> None:
    def fail() -> None:
        raise WrongPassphraseError("wrong passphrase for key file k.key: try again")

    cli.cli.add_command(_with_command(fail))
    try:
        assert cli.main(["boom"]) == 12
    finally:
        cli.cli.commands.pop("boom")
    err = capsys.readouterr().err
    assert err == "opsbackup: error: wrong passphrase for key file k.key: try again\n"


def test_disk_full_is_local_io_error(capsys: pytest.CaptureFixture[str]) -> None:
    def fail() -> None:
        raise OSError(28, "No space left on device", "/backup/out")

    cli.cli.add_command(_with_command(fail))
    try:
        assert cli.main(["boom"]) == 30
    finally:
        cli.cli.commands.pop("boom")
    assert capsys.readouterr().err == "opsbackup: error: No space left on device: /backup/out\n"


def test_bug_shows_traceback_and_internal_code(capsys: pytest.CaptureFixture[str]) -> None:
    def fail() -> None:
        raise RuntimeError("a bug")

    cli.cli.add_command(_with_command(fail))
    try:
        assert cli.main(["boom"]) == EXIT_INTERNAL
    finally:
        cli.cli.commands.pop("boom")
    err = capsys.readouterr().err
    assert "Traceback" in err
    assert "internal error" in err


def test_unknown_command_is_usage_error() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "opsbackup", "no-such-command"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 2
    assert "No such command" in done.stderr


def test_version() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "opsbackup", "--version"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0
    assert done.stdout.startswith("opsbackup, version ")
