"""``opsbackup check [--read-data]``: verify every snapshot's manifest and that its objects are there.

Needs no key file when the config pins the root (``--key`` pins it from a key file otherwise).
With ``--read-data`` every object is downloaded and its hash checked. Each problem is printed on
stderr; then the command fails with exit code 10 (integrity) if there was any.
"""

from __future__ import annotations

from pathlib import Path

import click

from crypto.keyfile import PrivateKey
from formats.roles import Role
from opsbackup.client.passphrase import passphrase_option
from opsbackup.client.progress import make_progress
from opsbackup.commands._client import (
    account_for,
    config_option,
    emit_json,
    load_reading_key,
    open_client,
    server_options,
)
from opsbackup.errors import IntegrityError
from opsbackup.restore.check import check

__all__ = ["command"]


@click.command("check", short_help="Verify manifests and stored objects.")
@config_option
@server_options
@click.option(
    "--key",
    "key_file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="A key file of the account, to pin its root when the config has no [account] (or no config).",
)
@passphrase_option
@click.option("--read-data", is_flag=True, help="Download every object and check its hash too.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON (and no progress bar).")
def command(
    config_path: Path | None,
    server_url: str | None,
    ca_file: Path | None,
    credential_file: Path | None,
    key_file: Path | None,
    passphrase_file: Path | None,
    read_data: bool,
    as_json: bool,
) -> None:
    """Check the account: keyring, every manifest, and that every object they name is stored."""
    setup = open_client(config_path, server_url, ca_file, credential_file)
    key: PrivateKey | None = None
    if key_file is not None or (setup.config is None or setup.config.account is None):
        roles = (Role.DATA, Role.BROWSE, Role.DELETION, Role.ROOT)
        key = load_reading_key(setup, key_file, passphrase_file, roles=roles, what="check (to pin the root)")
    progress = make_progress(enabled=not as_json)
    try:
        with account_for(setup, key) as account:
            result = check(account, read_data=read_data, progress=progress)
    finally:
        progress.close()
    if as_json:
        emit_json(result.to_json())
    for problem in result.errors:
        click.echo(f"opsbackup: problem: {problem}", err=True)
    if result.errors:
        raise IntegrityError(f"check found {len(result.errors)} problem(s), listed above")
    if not as_json:
        click.echo("no problems found" + (" (all data read and verified)" if read_data else ""))
