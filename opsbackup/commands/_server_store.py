"""What the ``opsbackup server ...`` management commands share: finding the server's store.

Every command takes ``--config PATH`` (the server's config file: its storage root) or
``--data-dir DIR`` (the server data directory, whose storage root is resolved the same way the
config does it). Management commands work on the store directly, not through the API, so they
run on the server machine, as the user who owns the data.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from opsbackup.errors import UsageError
from opsbackup.storage.base import ObjectStore

__all__ = ["open_store", "store_options"]

F = TypeVar("F", bound=Callable[..., Any])


def store_options(func: F) -> F:
    """Add ``--config`` and ``--data-dir`` to a command."""
    func = click.option(
        "--data-dir",
        type=click.Path(path_type=Path, file_okay=False),
        help="The server's data directory (instead of --config).",
    )(func)
    func = click.option(
        "--config",
        "config_path",
        type=click.Path(path_type=Path, dir_okay=False),
        help="The server's configuration file.",
    )(func)
    return func


def open_store(config_path: Path | None, data_dir: Path | None) -> ObjectStore:
    """The server's ObjectStore named by exactly one of ``--config`` and ``--data-dir``.

    With ``--data-dir``, the directory's ``server.toml`` names the store when it exists;
    otherwise the store is the directory's ``storage/`` subdirectory.
    """
    from opsbackup.server.config import CONFIG_NAME, load_server_config
    from opsbackup.storage.filesystem import FilesystemStore

    if (config_path is None) == (data_dir is None):
        raise UsageError("give exactly one of --config PATH and --data-dir DIR")
    if config_path is None:
        assert data_dir is not None
        if not (data_dir / CONFIG_NAME).exists():
            return FilesystemStore(data_dir / "storage")
        config_path = data_dir / CONFIG_NAME
    return load_server_config(config_path).open_store()
