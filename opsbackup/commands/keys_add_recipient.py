"""``opsbackup keys add-recipient --role data|browse (--public-key PEM | --openpgp FPR)``: one more reader.

For an escrow key beside the administrator's data key, or an auditor's browse key. The keyring's
next version names the new recipient (signed by the root key), then every backup's key envelope is
re-wrapped so earlier backups gain it too (the administrator's data key unwraps, the deletion key
signs). Resumable: run it again after an interruption and it finishes.
"""

from __future__ import annotations

from pathlib import Path

import click

from crypto.gpg import export_public_key, inspect_public_key
from crypto.keyfile import import_public_pem
from formats.roles import Role
from opsbackup.client.passphrase import get_passphrase, passphrase_option
from opsbackup.commands._client import account_for, config_option, open_client, server_options
from opsbackup.commands.keys_init import keys_dir_option, resolve_keys_dir
from opsbackup.errors import FormatError, UsageError
from opsbackup.setup.admin import load_admin_key
from opsbackup.setup.recipients import add_recipient

__all__ = ["command"]


@click.command("add-recipient", short_help="Add a data or browse recipient (escrow, auditor).")
@config_option
@server_options
@keys_dir_option("Key directory with root.key, data.key, deletion.key")
@click.option("--role", "role_name", required=True, type=click.Choice(["browse", "data"]), help="Its role.")
@click.option(
    "--public-key",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="An RSA-4096 public key (PEM) of the new recipient.",
)
@click.option("--openpgp", metavar="FINGERPRINT", help="An OpenPGP key (full fingerprint) from --gnupghome.")
@click.option(
    "--gnupghome",
    type=click.Path(path_type=Path, file_okay=False, exists=True),
    help="The GnuPG home the --openpgp key is exported from [default: gpg's].",
)
@click.option("--label", default="", help="A label for people (default: the role and kind).")
@passphrase_option
def command(
    config_path: Path | None,
    server_url: str | None,
    ca_file: Path | None,
    credential_file: Path | None,
    directory: Path | None,
    role_name: str,
    public_key: Path | None,
    openpgp: str | None,
    gnupghome: Path | None,
    label: str,
    passphrase_file: Path | None,
) -> None:
    """Add a recipient of ROLE and re-wrap every backup's keys to it (admin credential)."""
    if (public_key is None) == (openpgp is None):
        raise UsageError("give the new recipient as --public-key PEM or as --openpgp FINGERPRINT")
    role = Role.DATA if role_name == "data" else Role.BROWSE
    rsa_public, openpgp_public = None, None
    if public_key is not None:
        try:
            rsa_public = import_public_pem(public_key.read_bytes())
        except FormatError as exc:
            raise FormatError(f"{public_key}: {exc}") from None
    else:
        home = None if gnupghome is None else str(gnupghome)
        openpgp_public = export_public_key(openpgp or "", gnupghome=home)
        info = inspect_public_key(openpgp_public)
        click.echo(f"OpenPGP key {info.fingerprint} ({info.algorithm}) {', '.join(info.user_ids)}")
    directory = resolve_keys_dir(directory, config_path)
    setup = open_client(config_path, server_url, ca_file, credential_file)
    passphrase = get_passphrase(passphrase_file, prompt=f"Passphrase for the keys in {directory}")
    root = load_admin_key(directory, Role.ROOT, passphrase)
    deletion = load_admin_key(directory, Role.DELETION, passphrase)
    data = load_admin_key(directory, Role.DATA, passphrase)
    kind = "RSA" if rsa_public is not None else "OpenPGP"
    with account_for(setup, root) as account:
        account, report = add_recipient(
            account,
            role=role,
            label=label or f"{role.label} ({kind})",
            root=root.private_key,
            deletion=deletion.private_key,
            unwrap_keys=[data.private_key],
            rsa_public=rsa_public,
            openpgp_public=openpgp_public,
        )
    click.echo(
        f"keyring version {account.keyring.version}: {role.label} recipient added; "
        f"{report.rewrapped} of {report.checked} backups re-wrapped"
    )
