"""``opsbackup keys rotate --role data|browse|deletion|root|dedup``: replace one administrator key.

Data and browse: a new key, the keyring's next version naming it instead of the old one, and
every backup's key envelope re-wrapped to it (``opsbackup.setup.rotate_recipients``); no pack is
re-uploaded. Deletion and root: a new signing key in the next keyring version
(``opsbackup.setup.rotate_keyring``). Dedup: a new dedup secret, that is a new dedup epoch
(``opsbackup.setup.dedup_epoch``). Every rotation is resumable: killed at any point, the same
command run again finishes it. docs/keys.md says what each rotation protects against.
"""

from __future__ import annotations

from pathlib import Path

import click

from formats.roles import Role
from opsbackup.client.passphrase import get_passphrase, passphrase_option
from opsbackup.commands._client import account_for, config_option, open_client, server_options
from opsbackup.commands.keys_init import keys_dir_option, resolve_keys_dir
from opsbackup.setup.admin import load_admin_key
from opsbackup.setup.dedup_epoch import start_epoch
from opsbackup.setup.rewrap import RewrapReport
from opsbackup.setup.rotate_keyring import rotate_signing_key
from opsbackup.setup.rotate_recipients import rotate

__all__ = ["command"]

_ROLES = {
    "data": Role.DATA,
    "browse": Role.BROWSE,
    "deletion": Role.DELETION,
    "root": Role.ROOT,
    "dedup": Role.DEDUP,
}


def _progress(report: RewrapReport) -> None:
    if report.checked % 100 == 0:
        click.echo(f"  {report.checked} backups checked, {report.rewrapped} re-wrapped", err=True)


@click.command("rotate", short_help="Replace an administrator key (resumable).")
@config_option
@server_options
@keys_dir_option("Key directory: root.key, deletion.key, the key to replace")
@click.option(
    "--role", "role_name", required=True, type=click.Choice(sorted(_ROLES)), help="Which key to replace."
)
@passphrase_option
def command(
    config_path: Path | None,
    server_url: str | None,
    ca_file: Path | None,
    credential_file: Path | None,
    directory: Path | None,
    role_name: str,
    passphrase_file: Path | None,
) -> None:
    """Replace the ROLE key: data and browse re-wrap every backup's keys (admin credential)."""
    role = _ROLES[role_name]
    directory = resolve_keys_dir(directory, config_path)
    if role is Role.DEDUP:
        passphrase = get_passphrase(passphrase_file, prompt=f"Passphrase for {directory / 'root.key'}")
        old_tag, new_tag, path = start_epoch(directory, passphrase)
        click.echo(
            f"dedup epoch {old_tag} -> {new_tag}: install {path} on every host as its dedup.key "
            "(their next backups store their data again; old backups stay restorable)"
        )
        return
    setup = open_client(config_path, server_url, ca_file, credential_file)
    passphrase = get_passphrase(passphrase_file, prompt=f"Passphrase for the keys in {directory}")
    root = load_admin_key(directory, Role.ROOT, passphrase)
    if role in (Role.DELETION, Role.ROOT):
        with account_for(setup, root) as account:
            done = rotate_signing_key(account, directory, role, passphrase)
        click.echo(
            f"keyring version {done.keyring_version}: the {role.label} key is now "
            f"{done.new_key_id.hex()[:16]} (was {done.old_key_id.hex()[:16]})"
        )
        click.echo(f"the old key is in {done.replaced_file}: destroy it once the new key is copied safely")
        if done.root_public_file is not None:
            click.echo(
                f"new root public key: {done.root_public_file} (fingerprint {done.new_key_id.hex()}); "
                "configs pinning root.pub.pem keep working; pin the new one on new machines (docs/keys.md)"
            )
        return
    with account_for(setup, root) as account:
        result = rotate(account, directory, role, passphrase, progress=_progress)
    click.echo(
        f"keyring version {result.keyring_version}: the {role.label} key is now "
        f"{result.new_key_id.hex()[:16]} (was {result.old_key_id.hex()[:16]}); "
        f"{result.rewrap.rewrapped} of {result.rewrap.checked} backups re-wrapped"
    )
    click.echo(
        f"the old key is in {result.replaced_file}: it opens nothing on the server any more; "
        "destroy it, and print a new paper copy ('opsbackup keys export --paper')"
    )
