"""``opsbackup server credential issue ACCOUNT --scope host|restore|admin --label L``.

Prints the token on stdout, once: the server keeps only its hash. The credential id (for logs and
for revocation) goes to stderr.
"""

from __future__ import annotations

from pathlib import Path

import click

from opsbackup.commands._server_store import open_store, store_options
from opsbackup.server.accounts import Scope, find_account, issue_credential

__all__ = ["command"]


@click.command("issue")
@store_options
@click.option(
    "--scope",
    required=True,
    type=click.Choice([s.value for s in Scope]),
    help="host: append-only backup; restore: read; admin: read, add, replace the keyring.",
)
@click.option("--label", required=True, help="What the credential is for (a host name, a person).")
@click.argument("account")
def command(config_path: Path | None, data_dir: Path | None, scope: str, label: str, account: str) -> None:
    """Issue a credential for ACCOUNT (a name or id); prints the token once."""
    store = open_store(config_path, data_dir)
    token, cred = issue_credential(store, find_account(store, account), Scope(scope), label)
    click.echo(
        f"credential {cred.credential_id} ({cred.scope}, {cred.label!r}): store the token now", err=True
    )
    click.echo(token)
