"""``opsbackup keys revoke-host NAME [--trusted-head BACKUP_ID | --trust-none] [--dry-run]``.

Revokes host NAME's active signing key in the next keyring version, signed by the root key
(admin credential). The revocation records the last trusted backup of the host (its manifest
hash, docs/spec/keyring.md): restore keeps accepting that backup and the ones before it on its
chain, and refuses every other manifest the key signs, whatever time it claims. By default it is
the newest backup of the host that key signed and the server stores now; ``--trusted-head``
names an earlier one (a backup id of that host, as ``opsbackup snapshots --host NAME`` lists),
``--trust-none`` trusts none. ``--dry-run`` shows the choice without revoking anything: a
revocation is final.
"""

from __future__ import annotations

from pathlib import Path

import click

from formats.roles import Role
from opsbackup.client.passphrase import get_passphrase, passphrase_option
from opsbackup.commands._client import account_for, config_option, open_client, server_options, utc_time
from opsbackup.commands.keys_init import keys_dir_option, resolve_keys_dir
from opsbackup.errors import UsageError
from opsbackup.setup.admin import load_admin_key
from opsbackup.setup.publish import TRUST_NONE, HostHead, check_host_name, choose_head, revoke_host_key

__all__ = ["command", "describe_head"]

_SHOWN = 10


def describe_head(head: HostHead, name: str, *, default: bool) -> list[str]:
    """The lines that say which backups of ``name`` a revocation trusts and which it refuses."""
    lines: list[str] = []
    if head.head is None:
        lines.append(
            f"trusted head: none: no backup signed by key {head.key.key_id.hex()[:16]} of {name} is trusted"
        )
    else:
        why = f" (the newest backup of {name} on the server)" if default else ""
        earlier = len(head.trusted) - 1
        lines.append(
            f"trusted head: backup {head.head.backup_id} of {utc_time(head.head.manifest.time)}{why}; "
            f"restore keeps accepting it and the {earlier} backup{'s' if earlier != 1 else ''} before it "
            "on its chain"
        )
    if head.refused:
        shown = ", ".join(vm.backup_id for vm in head.refused[:_SHOWN])
        more = f" and {len(head.refused) - _SHOWN} more" if len(head.refused) > _SHOWN else ""
        lines.append(
            f"{len(head.refused)} backup{'s' if len(head.refused) != 1 else ''} of {name} signed by this key "
            f"will be refused by restore: {shown}{more}"
        )
    return lines


@click.command("revoke-host", short_help="Revoke a lost or compromised host's key.")
@config_option
@server_options
@keys_dir_option("The key directory holding root.key")
@click.option(
    "--trusted-head",
    metavar="BACKUP_ID",
    help="The host's last backup to trust (with the ones before it on its chain) "
    "[default: its newest backup on the server].",
)
@click.option("--trust-none", is_flag=True, help="Trust none of the backups this key signed.")
@click.option("--dry-run", is_flag=True, help="Show which backups stay trusted; revoke nothing.")
@passphrase_option
@click.argument("name")
def command(
    config_path: Path | None,
    server_url: str | None,
    ca_file: Path | None,
    credential_file: Path | None,
    directory: Path | None,
    trusted_head: str | None,
    trust_none: bool,
    dry_run: bool,
    passphrase_file: Path | None,
    name: str,
) -> None:
    """Revoke host NAME's signing key: its later manifests are refused, its earlier ones restore."""
    check_host_name(name)
    if trusted_head is not None and trust_none:
        raise UsageError("give --trusted-head BACKUP_ID or --trust-none, not both")
    spec = TRUST_NONE if trust_none else trusted_head
    directory = resolve_keys_dir(directory, config_path)
    setup = open_client(config_path, server_url, ca_file, credential_file)
    passphrase = get_passphrase(passphrase_file, prompt=f"Passphrase for {directory / 'root.key'}")
    root = load_admin_key(directory, Role.ROOT, passphrase)
    with account_for(setup, root) as account:
        head = choose_head(account, name, spec)
        lines = describe_head(head, name, default=spec is None)
        if dry_run:
            for line in lines:
                click.echo(line)
            click.echo(
                f"dry run: nothing revoked. To trust another backup give --trusted-head BACKUP_ID "
                f"(see 'opsbackup snapshots --host {name}'), or --trust-none"
            )
            return
        keyring = revoke_host_key(account, root.private_key, head)
    click.echo(
        f"keyring version {keyring.version}: host key {head.key.key_id.hex()[:16]} of {name} is revoked"
    )
    for line in lines:
        click.echo(line)
    click.echo(
        "a revocation is final; to choose another trusted head, run with --dry-run first, then with "
        "--trusted-head BACKUP_ID or --trust-none. Revoke the host's server credential too "
        "('opsbackup server credential revoke'); enroll a reinstalled host with 'opsbackup keys add-host'"
    )
