"""Passphrase sources: a private file (flag or env naming it) or a hidden prompt; never argv or env values."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from opsbackup.client.passphrase import (
    PASSPHRASE_FILE_ENV,
    get_passphrase,
    passphrase_option,
    read_passphrase_file,
)
from opsbackup.errors import ConfigError, KeyPermissionError, UsageError


def private(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    path.chmod(0o600)
    return path


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"correct horse\n", "correct horse"),
        (b"correct horse", "correct horse"),
        (b"correct horse\r\n", "correct horse"),
        (b"  spaces kept  \n", "  spaces kept  "),
        ("pässwörd\n".encode(), "pässwörd"),
    ],
)
def test_a_passphrase_file_loses_only_its_trailing_newline(
    tmp_path: Path, data: bytes, expected: str
) -> None:
    assert read_passphrase_file(private(tmp_path / "p", data)) == expected


@pytest.mark.parametrize(
    ("data", "message"),
    [(b"", "empty"), (b"\n", "empty"), (b"one\ntwo\n", "more than one line"), (b"\xff\xfe", "not UTF-8")],
)
def test_bad_passphrase_files_are_refused(tmp_path: Path, data: bytes, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        read_passphrase_file(private(tmp_path / "p", data))


def test_a_readable_passphrase_file_is_refused(tmp_path: Path) -> None:
    path = private(tmp_path / "p", b"secret passphrase\n")
    path.chmod(0o644)
    with pytest.raises(KeyPermissionError, match="chmod 600"):
        read_passphrase_file(path)


def test_a_missing_passphrase_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        read_passphrase_file(tmp_path / "absent")


@click.command()
@passphrase_option
@click.option("--new", is_flag=True)
def show(passphrase_file: Path | None, new: bool) -> None:
    click.echo(f"got [{get_passphrase(passphrase_file, prompt='Passphrase', new=new)}]")


def test_the_flag_and_the_environment_name_a_file(tmp_path: Path) -> None:
    path = private(tmp_path / "p", b"from a file\n")
    runner = CliRunner()
    assert "got [from a file]" in runner.invoke(show, ["--passphrase-file", str(path)]).output
    done = runner.invoke(show, [], env={PASSPHRASE_FILE_ENV: str(path)})
    assert "got [from a file]" in done.output


def test_the_prompt_is_hidden_and_confirms_new_passphrases() -> None:
    runner = CliRunner()
    done = runner.invoke(show, [], input="typed secret\n")
    assert done.exit_code == 0
    assert "got [typed secret]" in done.output
    assert "typed secret\n" not in done.output.split("got")[0]  # hidden: not echoed
    done = runner.invoke(show, ["--new"], input="long enough 1\nlong enough 1\n")
    assert "got [long enough 1]" in done.output
    done = runner.invoke(
        show, ["--new"], input="long enough 1\nlong enough 2\nlong enough 3\nlong enough 3\n"
    )
    assert "do not match" in done.output
    assert "got [long enough 3]" in done.output


def test_a_new_passphrase_must_be_long_enough(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="at least 8"):
        get_passphrase(private(tmp_path / "p", b"short\n"), prompt="x", new=True)
    assert get_passphrase(private(tmp_path / "q", b"short\n"), prompt="x") == "short"


def test_no_terminal_and_no_file_is_a_clear_usage_error() -> None:
    done = CliRunner().invoke(show, [], input="")
    assert isinstance(done.exception, UsageError)
    assert "--passphrase-file" in str(done.exception)
