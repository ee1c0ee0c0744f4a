"""``opsbackup keys remove-recipient KEY_ID``: revoke a data or browse recipient and re-wrap without it.

The keyring's next version revokes the key (signed by the root key), then every backup's key
envelope is re-wrapped without it: the removed key opens nothing on the server afterwards (copies
of the server's storage taken earlier still hold the old envelopes; see docs/keys.md). The last
data key cannot be removed. Resumable.
"""

from __future__ import annotations

from pathlib import Path

import click

from formats.roles import Role
from opsbackup.client.passphrase import get_passphrase, passphrase_option
from opsbackup.commands._client import account_for, config_option, open_client, server_options
from opsbackup.commands.keys_init import keys_dir_option, resolve_keys_dir
from opsbackup.setup.admin import load_admin_key
from opsbackup.setup.recipients import find_entry, remove_recipient

__all__ = ["command"]


@click.command("remove-recipient", short_help="Remove a data or browse recipient.")
@config_option
@server_options
@keys_dir_option("Key directory with root.key, data.key, deletion.key")
@passphrase_option
@click.argument("key_id")
def command(
    config_path: Path | None,
    server_url: str | None,
    ca_file: Path | None,
    credential_file: Path | None,
    directory: Path | None,
    passphrase_file: Path | None,
    key_id: str,
) -> None:
    """Revoke recipient KEY_ID (8+ hex digits of its key id) and re-wrap every backup without it."""
    directory = resolve_keys_dir(directory, config_path)
    setup = open_client(config_path, server_url, ca_file, credential_file)
    passphrase = get_passphrase(passphrase_file, prompt=f"Passphrase for the keys in {directory}")
    root = load_admin_key(directory, Role.ROOT, passphrase)
    deletion = load_admin_key(directory, Role.DELETION, passphrase)
    data = load_admin_key(directory, Role.DATA, passphrase)
    with account_for(setup, root) as account:
        target = find_entry(account, key_id)
        account, report = remove_recipient(
            account,
            target,
            root=root.private_key,
            deletion=deletion.private_key,
            unwrap_keys=[data.private_key],
        )
    click.echo(
        f"keyring version {account.keyring.version}: key {target.hex()[:16]} removed; "
        f"{report.rewrapped} of {report.checked} backups re-wrapped without it"
    )
