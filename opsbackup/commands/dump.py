"""``opsbackup dump SNAPSHOT PATH``: write one file of a snapshot to standard output, verified.

Needs a data key file (``--key``, else data.key in the config's [keys] dir). Every chunk is
verified before its bytes are written; a refusal mid-way exits non-zero (so a pipeline that
checks the exit code never trusts a partial stream).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from formats.roles import Role
from opsbackup.client.passphrase import passphrase_option
from opsbackup.commands._client import (
    account_for,
    config_option,
    key_option,
    load_reading_key,
    open_client,
    server_options,
    snapshot_path,
)
from opsbackup.commands._dedup_check import chunk_id_key, dedup_key_option
from opsbackup.errors import UsageError
from opsbackup.restore.dump import dump
from opsbackup.restore.snapshots import resolve_snapshot
from opsbackup.restore.tree_reader import open_snapshot

__all__ = ["command"]


@click.command("dump", short_help="Write one file of a snapshot to stdout.")
@config_option
@server_options
@key_option("data.key")
@dedup_key_option
@passphrase_option
@click.option("--host", help="With 'latest': the newest snapshot of this host.")
@click.argument("snapshot")
@click.argument("path")
def command(
    config_path: Path | None,
    server_url: str | None,
    ca_file: Path | None,
    credential_file: Path | None,
    key_file: Path | None,
    dedup_file: Path | None,
    passphrase_file: Path | None,
    host: str | None,
    snapshot: str,
    path: str,
) -> None:
    """Write the file PATH of SNAPSHOT ('latest' or a backup id prefix) to standard output."""
    inner = snapshot_path(path)
    if not inner:
        raise UsageError("give the path of one file inside the snapshot")
    setup = open_client(config_path, server_url, ca_file, credential_file)
    key = load_reading_key(setup, key_file, passphrase_file, roles=(Role.DATA,), what="dump")
    chunk_ids = chunk_id_key(setup, dedup_file)
    out = sys.stdout.buffer
    with account_for(setup, key) as account:
        snap = open_snapshot(account, resolve_snapshot(account, snapshot, host), key.private_key)
        dump(account, snap, key.private_key, inner, out, chunk_ids=chunk_ids)
    out.flush()
