"""``opsbackup server credential revoke CREDENTIAL_ID``: the token stops working at once."""

from __future__ import annotations

from pathlib import Path

import click

from opsbackup.commands._server_store import open_store, store_options
from opsbackup.server.accounts import revoke_credential

__all__ = ["command"]


@click.command("revoke")
@store_options
@click.argument("credential_id")
def command(config_path: Path | None, data_dir: Path | None, credential_id: str) -> None:
    """Revoke the credential with this id (see ``credential list``)."""
    cred = revoke_credential(open_store(config_path, data_dir), credential_id)
    click.echo(f"revoked credential {cred.credential_id} ({cred.scope}, {cred.label!r})")
