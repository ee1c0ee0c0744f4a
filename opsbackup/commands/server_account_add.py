"""``opsbackup server account add --root-key PUB.pem NAME``: create an account; prints its id."""

from __future__ import annotations

from pathlib import Path

import click
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from opsbackup.commands._server_store import open_store, store_options
from opsbackup.errors import FormatError
from opsbackup.server.accounts import add_account

__all__ = ["command"]


@click.command("add")
@store_options
@click.option(
    "--root-key",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="The account's root public key (RSA-4096, PEM): it verifies every keyring.",
)
@click.argument("name")
def command(config_path: Path | None, data_dir: Path | None, root_key: Path, name: str) -> None:
    """Create account NAME; prints its id (the keyring's account id must be this)."""
    try:
        key = load_pem_public_key(root_key.read_bytes())
    except ValueError:
        raise FormatError(f"{root_key} is not a PEM public key") from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise FormatError(f"{root_key} is not an RSA public key")
    account = add_account(open_store(config_path, data_dir), name, key)
    click.echo(account.account_id.hex())
