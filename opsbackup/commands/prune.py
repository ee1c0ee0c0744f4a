"""``opsbackup prune``: delete objects no remaining snapshot references (two-phase mark and sweep).

An object is deleted only when an earlier prune on this machine already found it unreferenced at
least ``--grace`` hours ago and it is still unreferenced (``opsbackup.ops.prune``); the first
prune after a forget only marks. Needs a restore or admin credential (to list objects) and the
deletion key (to sign the delete requests). Reports what it freed.
"""

from __future__ import annotations

from pathlib import Path

import click

from formats.roles import Role
from opsbackup.client.config import default_state_file
from opsbackup.client.passphrase import PASSPHRASE_FILE_ENV
from opsbackup.commands._client import (
    account_for,
    config_option,
    emit_json,
    human_size,
    key_option,
    load_reading_key,
    open_client,
    server_options,
)
from opsbackup.ops.prune import DEFAULT_GRACE, prune

__all__ = ["command"]


@click.command("prune", short_help="Delete data no snapshot references any more.")
@config_option
@server_options
@key_option("deletion.key")
@click.option(
    "--passphrase-file",
    type=click.Path(path_type=Path, dir_okay=False),
    envvar=PASSPHRASE_FILE_ENV,
    help="Read the deletion key's passphrase from this file (mode 0600) instead of asking.",
)
@click.option(
    "--grace",
    type=click.FloatRange(min=0),
    default=DEFAULT_GRACE / 3600,
    show_default=True,
    metavar="HOURS",
    help="Delete only objects that an earlier prune found unreferenced at least this long ago.",
)
@click.option("--dry-run", is_flag=True, help="Show what would be deleted; sign, mark and delete nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def command(
    config_path: Path | None,
    server_url: str | None,
    ca_file: Path | None,
    credential_file: Path | None,
    key_file: Path | None,
    passphrase_file: Path | None,
    grace: float,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Mark unreferenced objects; delete those marked at least --grace hours ago and still unreferenced."""
    setup = open_client(config_path, server_url, ca_file, credential_file)
    key = None
    if not dry_run:
        key = load_reading_key(setup, key_file, passphrase_file, roles=(Role.DELETION,), what="prune")
    state = setup.state().path or default_state_file()
    with account_for(setup, key) as account:
        result = prune(
            account,
            key.private_key if key is not None else None,
            marks_dir=state.parent,
            grace=grace * 3600,
            dry_run=dry_run,
        )
    if as_json:
        emit_json(result.to_json())
        return
    verb = "would delete" if dry_run else "deleted"
    count = len(result.to_delete) if dry_run else result.deleted_objects
    freed = len(result.envelopes_to_delete) if dry_run else result.deleted_envelopes
    click.echo(
        f"{result.objects} objects, {result.referenced} referenced, {result.unreferenced} unreferenced "
        f"({result.marked} marked, waiting for the grace); {verb} {count} objects, "
        f"{human_size(result.deleted_bytes)}; {'would free' if dry_run else 'freed'} {freed} envelopes "
        f"({result.marked_envelopes} marked)"
        + (f"; kept {result.kept} needed by a backup stored during this prune" if result.kept else "")
    )
