"""``opsbackup keys add-host NAME --public-key host.pub.pem``: enroll a host's signing key.

Fetches the current keyring and verifies it against the pinned root, adds the host key labelled
NAME (``--replace`` revokes the host's old key in the same version, trusting the newest backup
that key signed and the ones before it on its chain, so the host's earlier backups stay
restorable: docs/keys.md), signs the next version with the root key and uploads it (admin
credential). Prints the key's fingerprint, which must be the
one ``opsbackup host init`` printed on the host.
"""

from __future__ import annotations

from pathlib import Path

import click

from crypto.keyfile import import_public_pem
from crypto.primitives import public_key_id
from formats.roles import Role
from opsbackup.client.passphrase import get_passphrase, passphrase_option
from opsbackup.commands._client import account_for, config_option, open_client, server_options
from opsbackup.commands.keys_init import keys_dir_option, resolve_keys_dir
from opsbackup.commands.keys_revoke_host import describe_head
from opsbackup.errors import FormatError
from opsbackup.setup.admin import load_admin_key
from opsbackup.setup.publish import active_host_key, add_host_key, check_host_name, choose_head

__all__ = ["command"]


@click.command("add-host", short_help="Add a host's key to the keyring.")
@config_option
@server_options
@keys_dir_option("The key directory holding root.key")
@click.option(
    "--public-key",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="The host's public key (host.pub.pem from 'opsbackup host init').",
)
@click.option("--replace", is_flag=True, help="Revoke the host's current key and add this one.")
@passphrase_option
@click.argument("name")
def command(
    config_path: Path | None,
    server_url: str | None,
    ca_file: Path | None,
    credential_file: Path | None,
    directory: Path | None,
    public_key: Path,
    replace: bool,
    passphrase_file: Path | None,
    name: str,
) -> None:
    """Add host NAME's signing key to the keyring (signed by the root key; admin credential)."""
    check_host_name(name)
    try:
        host_key = import_public_pem(public_key.read_bytes())
    except FormatError as exc:
        raise FormatError(f"{public_key}: {exc}") from None
    directory = resolve_keys_dir(directory, config_path)
    setup = open_client(config_path, server_url, ca_file, credential_file)
    passphrase = get_passphrase(passphrase_file, prompt=f"Passphrase for {directory / 'root.key'}")
    root = load_admin_key(directory, Role.ROOT, passphrase)
    lines: list[str] = []
    with account_for(setup, root) as account:
        head = None
        if replace and active_host_key(account.keyring, name) is not None:
            head = choose_head(account, name, None)
            lines = describe_head(head, name, default=True)
        keyring = add_host_key(account, root.private_key, name, host_key, replace=replace, replaced_head=head)
    click.echo(f"keyring version {keyring.version}: host {name} may now back up")
    if head is not None:
        click.echo(f"the host's old key {head.key.key_id.hex()[:16]} is revoked")
        for line in lines:
            click.echo(line)
    click.echo(f"host key fingerprint: {public_key_id(host_key).hex()} (must match what 'host init' printed)")
