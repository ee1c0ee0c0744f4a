"""``opsbackup keys publish --dir DIR --account-id HEX``: sign and upload keyring version 1.

Version 1 lists the root, data, browse and deletion public keys of the key directory, signed by
the root key, uploaded with an admin credential (``[server]`` of the config, or ``--server``,
``--ca``, ``--credential-file``). When the key directory has no ``config.toml`` yet, one is
written there (server, pinned root, ``[keys] dir``) for the other admin commands.
"""

from __future__ import annotations

from pathlib import Path

import click

from crypto.atomic_file import write_atomic
from formats.roles import Role
from opsbackup.client.config import ServerSettings, render_config, root_fingerprint
from opsbackup.client.passphrase import get_passphrase, passphrase_option
from opsbackup.commands._client import config_option, connect, open_client, pinned_root, server_options
from opsbackup.commands.keys_init import keys_dir_option, resolve_keys_dir
from opsbackup.errors import UsageError
from opsbackup.setup.admin import ROOT_PUB, load_admin_key
from opsbackup.setup.publish import publish_first_keyring

__all__ = ["command"]


def _account_id(text: str) -> bytes:
    try:
        raw = bytes.fromhex(text.strip())
    except ValueError:
        raw = b""
    if len(raw) != 16:
        raise UsageError("--account-id is the 32 hex digits 'opsbackup server account add' printed")
    return raw


@click.command("publish", short_help="Sign and upload keyring version 1.")
@config_option
@server_options
@keys_dir_option("The key directory of 'keys init'")
@click.option("--account-id", required=True, help="The account id 'opsbackup server account add' printed.")
@passphrase_option
def command(
    config_path: Path | None,
    server_url: str | None,
    ca_file: Path | None,
    credential_file: Path | None,
    directory: Path | None,
    account_id: str,
    passphrase_file: Path | None,
) -> None:
    """Sign keyring version 1 (root, data, browse, deletion keys) and upload it (admin credential)."""
    account = _account_id(account_id)
    directory = resolve_keys_dir(directory, config_path)
    setup = open_client(config_path, server_url, ca_file, credential_file)
    server = setup.need_server()
    passphrase = get_passphrase(passphrase_file, prompt=f"Passphrase for the keys in {directory}")
    root = load_admin_key(directory, Role.ROOT, passphrase)
    pinned_root(setup, root)  # the config's pinned root, if any, must be this one
    data, browse, deletion = (
        load_admin_key(directory, r, passphrase) for r in (Role.DATA, Role.BROWSE, Role.DELETION)
    )
    repo = connect(server)
    try:
        keyring = publish_first_keyring(
            repo,
            account_id=account,
            root=root.private_key,
            data=data.private_key.public_key(),
            browse=browse.private_key.public_key(),
            deletion=deletion.private_key.public_key(),
            state=setup.state(),
        )
    finally:
        repo.close()
    click.echo(f"published keyring version {keyring.version} of account {keyring.account_id.hex()}")
    config = directory / "config.toml"
    if not config.exists() and (setup.config is None or setup.config.path != config.absolute()):
        text = render_config(
            server=ServerSettings(server.url, server.ca_file.absolute(), server.credential_file.absolute()),
            account=(ROOT_PUB, root_fingerprint(root.private_key.public_key())),
            keys_dir=".",
        )
        write_atomic(config, text.encode("utf-8"), 0o600, overwrite=False)
        click.echo(f"wrote {config}: give --config {config} to the other admin commands")
    click.echo(
        "Next, on each host: opsbackup host init (docs/setup.md); then enroll its key here:\n"
        "  opsbackup keys add-host NAME --public-key host.pub.pem"
    )
