"""``opsbackup keys init --dir DIR``: make an account's administrator key files (docs/setup.md).

Writes root.key, data.key, browse.key (RSA-4096) and deletion.key (RSA-3072) under one
passphrase, dedup.key (no passphrase: every host needs it unattended) and root.pub.pem, then
prints the root fingerprint and the next step. Never overwrites a key file. The environment
variable ``OPSBACKUP_INSECURE_TEST_KDF=1`` makes the passphrase KDF cheap: for tests only.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import click

from crypto.keyfile import DEFAULT_PARAMS, TEST_PARAMS, KdfCost
from formats.roles import Role
from opsbackup.client.config import DEFAULT_CONFIG, load_config
from opsbackup.client.passphrase import get_passphrase, passphrase_option
from opsbackup.commands._client import config_option
from opsbackup.errors import UsageError
from opsbackup.setup.admin import KEY_FILE_NAMES, check_free, init_admin_keys

__all__ = ["TEST_KDF_ENV", "command", "kdf_cost", "keys_dir_option", "resolve_keys_dir"]

F = TypeVar("F", bound=Callable[..., object])

TEST_KDF_ENV = "OPSBACKUP_INSECURE_TEST_KDF"

_WHAT = {
    Role.ROOT: "root (RSA-4096): signs the keyring; keep it offline",
    Role.DATA: "data (RSA-4096): reads file contents; keep it offline",
    Role.BROWSE: "browse (RSA-4096): lists and searches files, cannot read them",
    Role.DELETION: "deletion (RSA-3072): signs delete requests",
    Role.DEDUP: "dedup secret (no passphrase): every host of the account needs a copy",
}


def kdf_cost() -> KdfCost:
    """The passphrase KDF cost: Argon2id 64 MiB, 3 passes; cheap only under OPSBACKUP_INSECURE_TEST_KDF=1."""
    return TEST_PARAMS if os.environ.get(TEST_KDF_ENV) == "1" else DEFAULT_PARAMS


def keys_dir_option(what: str) -> Callable[[F], F]:
    """``--dir DIR``: the administrator's key directory, defaulting to the config's ``[keys] dir``."""
    return click.option(
        "--dir",
        "directory",
        type=click.Path(path_type=Path, file_okay=False),
        help=f"{what} [default: the config's [keys] dir].",
    )


def resolve_keys_dir(directory: Path | None, config_path: Path | None) -> Path:
    """``--dir``, else the config's ``[keys] dir``."""
    if directory is not None:
        return directory
    if config_path is not None or DEFAULT_CONFIG.exists():
        config = load_config(config_path or DEFAULT_CONFIG)
        if config.keys is not None:
            return config.keys.dir
    raise UsageError("give --dir DIR (the directory for the key files), or a config with a [keys] dir")


@click.command("init", short_help="Make an account's admin key files.")
@config_option
@keys_dir_option("Directory for the key files (created 0700)")
@passphrase_option
def command(config_path: Path | None, directory: Path | None, passphrase_file: Path | None) -> None:
    """Make the account's admin key files (root, data, browse, deletion, dedup) and root.pub.pem."""
    directory = resolve_keys_dir(directory, config_path)
    check_free(directory)  # before asking for a passphrase
    passphrase = get_passphrase(
        passphrase_file, prompt="New passphrase for the root, data, browse and deletion keys", new=True
    )
    click.echo("generating keys (RSA-4096 takes a few seconds)...", err=True)
    files = init_admin_keys(directory, passphrase, cost=kdf_cost())
    click.echo(f"created key files in {files.dir}:")
    for role, name in KEY_FILE_NAMES.items():
        click.echo(f"  {name:<13} {_WHAT[role]}")
    click.echo(f"  {files.root_pub.name:<13} the root public key: the server account and every host pin it")
    click.echo(f"root fingerprint: {files.fingerprint}")
    click.echo(
        "Next: create the account on the server with the root public key\n"
        f"  opsbackup server account add --data-dir SERVER_DIR --root-key {files.root_pub} NAME\n"
        "then publish the keyring with the account id it prints and an admin credential\n"
        f"  opsbackup keys publish --dir {files.dir} --account-id ID --server URL --ca ca.pem "
        "--credential-file admin.credential"
    )
