"""``opsbackup find PATTERN [--host H]``: search every snapshot's file names (a browse key is enough).

Prints one line per match: snapshot id (first 8 bytes), time, host and path; ``--json`` prints
one JSON object per match. PATTERN is a shell glob (``*.conf``) matched against base names, or
against whole paths when it holds a ``/`` (``etc/*/nginx.conf``). A snapshot the key cannot open
(made before the key was in the keyring) is skipped with a warning, and the exit code is 3.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from formats.roles import Role
from opsbackup.client.account import VerifiedManifest
from opsbackup.client.passphrase import passphrase_option
from opsbackup.commands._client import (
    account_for,
    config_option,
    key_option,
    load_reading_key,
    open_client,
    server_options,
    show_path,
    utc_time,
    warn_and_exit,
)
from opsbackup.commands.ls import describe_record
from opsbackup.errors import WrongKeyError
from opsbackup.restore.find import find

__all__ = ["command"]


@click.command("find", short_help="Find files in every snapshot.")
@config_option
@server_options
@key_option("browse.key (else data.key)")
@passphrase_option
@click.option("--host", help="Only this host's snapshots.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per match.")
@click.argument("pattern")
def command(
    config_path: Path | None,
    server_url: str | None,
    ca_file: Path | None,
    credential_file: Path | None,
    key_file: Path | None,
    passphrase_file: Path | None,
    host: str | None,
    as_json: bool,
    pattern: str,
) -> None:
    """Find files whose path matches PATTERN in every snapshot."""
    setup = open_client(config_path, server_url, ca_file, credential_file)
    key = load_reading_key(setup, key_file, passphrase_file, roles=(Role.BROWSE, Role.DATA), what="find")
    matches = 0
    skipped: list[str] = []

    def skip(verified: VerifiedManifest, exc: WrongKeyError) -> None:
        skipped.append(f"snapshot {verified.backup_id[:16]} of {verified.host} skipped: {exc}")

    with account_for(setup, key) as account:
        for verified, record in find(account, pattern, key.private_key, host, on_skip=skip):
            matches += 1
            if as_json:
                entry = {"snapshot": verified.backup_id, "host": verified.host, **describe_record(record)}
                click.echo(json.dumps(entry, sort_keys=True))
            else:
                when = utc_time(verified.manifest.time)
                click.echo(f"{verified.backup_id[:16]}  {when}  {verified.host}  {show_path(record.path)}")
    if not as_json:
        click.echo(f"{matches} match{'es' if matches != 1 else ''}", err=True)
    warn_and_exit(skipped)
