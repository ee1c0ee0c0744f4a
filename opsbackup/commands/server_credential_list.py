"""``opsbackup server credential list [--account ACCOUNT]``: ids, scopes, labels; never tokens."""

from __future__ import annotations

import json
from pathlib import Path

import click

from opsbackup.commands._server_store import open_store, store_options
from opsbackup.server.accounts import find_account, list_credentials

__all__ = ["command"]


@click.command("list")
@store_options
@click.option("--account", help="Only this account (a name or id).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
def command(config_path: Path | None, data_dir: Path | None, account: str | None, as_json: bool) -> None:
    """List credentials (the server does not know any token, only its hash)."""
    store = open_store(config_path, data_dir)
    creds = list_credentials(store, find_account(store, account) if account else None)
    if as_json:
        rows = [
            {
                "id": c.credential_id,
                "account": c.account_id,
                "scope": str(c.scope),
                "label": c.label,
                "created": c.created,
                "revoked": c.revoked,
            }
            for c in creds
        ]
        click.echo(json.dumps(rows, indent=2))
        return
    for c in creds:
        state = "revoked" if c.revoked else "active"
        click.echo(f"{c.credential_id}  {c.account_id}  {c.scope:<7}  {state:<7}  {c.label}")
