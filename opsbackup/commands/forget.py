"""``opsbackup forget``: remove snapshots by a retention policy (restic's rules), signed by the deletion key.

Every snapshot is verified first; the policy is applied per host (``opsbackup.ops.retention``).
The manifests to remove go in one signed delete request (or a few, for very many); the objects
they alone used stay until ``opsbackup prune``. ``--dry-run`` shows what would go and signs nothing.
"""

from __future__ import annotations

from pathlib import Path

import click

from formats.roles import Role
from opsbackup.client.passphrase import PASSPHRASE_FILE_ENV
from opsbackup.commands._client import (
    account_for,
    config_option,
    emit_json,
    key_option,
    load_reading_key,
    open_client,
    server_options,
    utc_time,
)
from opsbackup.errors import UsageError
from opsbackup.ops.forget import delete_in_batches, plan_forget
from opsbackup.ops.retention import Policy

__all__ = ["command"]


_PERIOD = {"hourly": "hour", "daily": "day", "weekly": "week", "monthly": "month", "yearly": "year"}


def _count(name: str) -> click.Option:
    return click.Option(
        [f"--keep-{name}", f"keep_{name}"],
        type=click.IntRange(min=0),
        default=0,
        metavar="N",
        help=f"Keep the newest snapshot of each of the N most recent {_PERIOD[name]}s that have one."
        if name != "last"
        else "Keep the N newest snapshots.",
    )


@click.command("forget", short_help="Remove snapshots by a retention policy.")
@config_option
@server_options
@key_option("deletion.key")
@click.option(
    "--passphrase-file",
    type=click.Path(path_type=Path, dir_okay=False),
    envvar=PASSPHRASE_FILE_ENV,
    help="Read the deletion key's passphrase from this file (mode 0600) instead of asking.",
)
@click.option("--host", metavar="HOST", help="Only this host's snapshots [default: every host].")
@click.option("--dry-run", is_flag=True, help="Show what would be removed; sign and delete nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the plan and result as JSON.")
def command(
    config_path: Path | None,
    server_url: str | None,
    ca_file: Path | None,
    credential_file: Path | None,
    key_file: Path | None,
    passphrase_file: Path | None,
    host: str | None,
    dry_run: bool,
    as_json: bool,
    **keeps: int,
) -> None:
    """Remove the snapshots no --keep-* rule keeps (per host, times in UTC); prune frees their data."""
    policy = Policy(**{name.removeprefix("keep_"): value for name, value in keeps.items()})
    if policy.empty:
        raise UsageError("give at least one --keep-* rule above 0 (forget never removes every snapshot)")
    setup = open_client(config_path, server_url, ca_file, credential_file)
    key = None
    if not dry_run:
        key = load_reading_key(setup, key_file, passphrase_file, roles=(Role.DELETION,), what="forget")
    with account_for(setup, key) as account:
        plan = plan_forget(account, policy, host)
        if not dry_run and plan.removed:
            assert key is not None
            gone = [(vm.host, vm.manifest.backup_id) for vm in plan.removed]
            plan.deleted = delete_in_batches(account, key.private_key, manifests=gone)
    if as_json:
        emit_json(plan.to_json(dry_run=dry_run))
        return
    verb = "would remove" if dry_run else "removed"
    for hp in plan.hosts:
        click.echo(f"host {hp.host}: keep {len(hp.keep)}, {verb} {len(hp.remove)}")
        for vm in hp.keep:
            click.echo(
                f"  keep    {vm.backup_id[:16]}  {utc_time(vm.manifest.time)}  "
                f"{','.join(hp.reasons[vm.backup_id])}"
            )
        for vm in hp.remove:
            click.echo(f"  remove  {vm.backup_id[:16]}  {utc_time(vm.manifest.time)}")
    if not dry_run:
        click.echo(
            f"{plan.deleted.get('deleted_manifests', 0)} snapshots removed; "
            "run 'opsbackup prune' to free their data"
        )


for _rule in ("yearly", "monthly", "weekly", "daily", "hourly", "last"):
    command.params.insert(0, _count(_rule))
