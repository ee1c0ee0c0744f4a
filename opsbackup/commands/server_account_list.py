"""``opsbackup server account list``: every account, one per line (id, name)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from opsbackup.commands._server_store import open_store, store_options
from opsbackup.server.accounts import list_accounts

__all__ = ["command"]


@click.command("list")
@store_options
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
def command(config_path: Path | None, data_dir: Path | None, as_json: bool) -> None:
    """List accounts."""
    accounts = list_accounts(open_store(config_path, data_dir))
    if as_json:
        rows = [{"id": a.account_id.hex(), "name": a.name, "created": a.created} for a in accounts]
        click.echo(json.dumps(rows, indent=2))
        return
    for a in accounts:
        click.echo(f"{a.account_id.hex()}  {a.name}")
