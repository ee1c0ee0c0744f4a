"""Where a key file's passphrase comes from: a file, or a hidden prompt. Never argv, never an env value.

``--passphrase-file FILE`` (or ``OPSBACKUP_PASSPHRASE_FILE=FILE``, which names a file) is for
scripts; the file must not be accessible by group or others, and one trailing newline is
stripped. Otherwise the passphrase is asked on the terminal (hidden; twice when it protects new
keys). A passphrase for new keys must be at least :data:`MIN_NEW_LENGTH` characters.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from crypto.private_file import read_private_file
from opsbackup.errors import ConfigError, UsageError

__all__ = [
    "MIN_NEW_LENGTH",
    "PASSPHRASE_FILE_ENV",
    "get_passphrase",
    "passphrase_option",
    "read_passphrase_file",
]

PASSPHRASE_FILE_ENV = "OPSBACKUP_PASSPHRASE_FILE"  # noqa: S105 - a variable name, not a secret
MIN_NEW_LENGTH = 8
_MAX_FILE = 64 * 1024

F = TypeVar("F", bound=Callable[..., Any])


def passphrase_option(func: F) -> F:
    """Add ``--passphrase-file FILE`` (env ``OPSBACKUP_PASSPHRASE_FILE``) to a command."""
    return click.option(
        "--passphrase-file",
        type=click.Path(path_type=Path, dir_okay=False),
        envvar=PASSPHRASE_FILE_ENV,
        show_envvar=True,
        help="Read the key files' passphrase from FILE (mode 0600; one trailing newline is ignored) "
        "instead of asking on the terminal.",
    )(func)


def read_passphrase_file(path: Path) -> str:
    """The passphrase in ``path``, without its trailing newline; the file must be private."""
    data = read_private_file(
        path,
        "passphrase file",
        _MAX_FILE,
        allow_special=True,  # a pipe (<(pass show x)) works too
        missing=ConfigError,
        unreadable=ConfigError,
        too_large=ConfigError,
    )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"passphrase file {path} is not UTF-8 text") from None
    if text.endswith("\r\n"):
        text = text[:-2]
    elif text.endswith("\n"):
        text = text[:-1]
    if "\n" in text or "\r" in text:
        raise ConfigError(f"passphrase file {path} holds more than one line; put only the passphrase in it")
    if not text:
        raise ConfigError(f"passphrase file {path} is empty")
    return text


def get_passphrase(passphrase_file: Path | None, *, prompt: str, new: bool = False) -> str:
    """The passphrase from ``passphrase_file`` when given, else asked (hidden; twice when ``new``)."""
    if passphrase_file is not None:
        value = read_passphrase_file(passphrase_file)
    else:
        try:
            value = click.prompt(prompt, hide_input=True, confirmation_prompt=new, err=True, type=str)
        except click.exceptions.Abort:
            if sys.stdin is None or not sys.stdin.isatty():
                raise UsageError(
                    "no passphrase: not on a terminal, so give --passphrase-file FILE "
                    f"(or set {PASSPHRASE_FILE_ENV})"
                ) from None
            raise
    if not value:
        raise UsageError("an empty passphrase is not allowed")
    if new and len(value) < MIN_NEW_LENGTH:
        raise UsageError(f"a passphrase for new keys must be at least {MIN_NEW_LENGTH} characters")
    return value
