"""``opsbackup snapshots [--host H] [--json]``: list the account's snapshots, every manifest verified.

A table of id (the first 8 bytes of the backup id, which any command accepts as a prefix), time
(UTC), host, tags, file count and size; ``--json`` prints every field, full ids included. Needs
no key file: manifests are signed and their summary is not encrypted.
"""

from __future__ import annotations

from pathlib import Path

import click

from opsbackup.commands._client import (
    account_for,
    config_option,
    emit_json,
    human_size,
    open_client,
    server_options,
    utc_time,
)
from opsbackup.restore.snapshots import list_snapshots

__all__ = ["command"]


@click.command("snapshots", short_help="List snapshots.")
@config_option
@server_options
@click.option("--host", help="Only this host's snapshots.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
def command(
    config_path: Path | None,
    server_url: str | None,
    ca_file: Path | None,
    credential_file: Path | None,
    host: str | None,
    as_json: bool,
) -> None:
    """List snapshots (oldest first), each manifest's signature verified."""
    setup = open_client(config_path, server_url, ca_file, credential_file)
    with account_for(setup) as account:
        snapshots = list_snapshots(account, host)
    if as_json:
        emit_json(
            [
                {
                    "id": s.backup_id,
                    "host": s.host,
                    "time": utc_time(s.manifest.time),
                    "unix_time": s.manifest.time,
                    "tags": list(s.manifest.tags),
                    "files": s.manifest.statistics.files,
                    "total_bytes": s.manifest.statistics.total_bytes,
                    "added_bytes": s.manifest.statistics.added_bytes,
                    "keyring_version": s.manifest.keyring_version,
                }
                for s in snapshots
            ]
        )
        return
    rows = [
        (
            s.backup_id[:16],
            utc_time(s.manifest.time),
            s.host,
            ",".join(s.manifest.tags),
            str(s.manifest.statistics.files),
            human_size(s.manifest.statistics.total_bytes),
        )
        for s in snapshots
    ]
    header = ("ID", "TIME", "HOST", "TAGS", "FILES", "SIZE")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        cells = [
            c.ljust(w) if i < 4 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        click.echo("  ".join(cells).rstrip())
    click.echo(f"{len(rows)} snapshot{'s' if len(rows) != 1 else ''}")
