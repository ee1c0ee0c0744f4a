"""``opsbackup ls SNAPSHOT [PATH]``: list a snapshot's files (a browse key is enough).

SNAPSHOT is ``latest`` or a backup id (a unique prefix will do). Each line shows mode, size,
modification time (UTC) and path, as ``restic ls -l`` does; ``--json`` prints one JSON object per
entry. The key file is ``--key``, else browse.key (or data.key) in the config's [keys] dir.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from formats.roles import Role
from formats.tree import Kind, Record
from opsbackup.client.passphrase import passphrase_option
from opsbackup.commands._client import (
    account_for,
    config_option,
    file_mode,
    key_option,
    load_reading_key,
    open_client,
    server_options,
    show_path,
    snapshot_path,
    utc_time,
)
from opsbackup.restore.snapshots import resolve_snapshot
from opsbackup.restore.tree_reader import open_snapshot

__all__ = ["command", "describe_record"]

_KINDS = {
    Kind.FILE: "file",
    Kind.DIR: "dir",
    Kind.SYMLINK: "symlink",
    Kind.HARDLINK: "hardlink",
    Kind.SPECIAL: "special",
}


def describe_record(record: Record) -> dict[str, object]:
    """A record as JSON: path and target as text (non-UTF-8 bytes escaped) and every field."""
    out: dict[str, object] = {
        "path": record.path.decode("utf-8", "backslashreplace"),
        "type": _KINDS[record.kind],
    }
    if record.kind is Kind.HARDLINK:
        out["target"] = record.target.decode("utf-8", "backslashreplace")
        return out
    out.update(mode=record.mode, uid=record.uid, gid=record.gid, mtime_ns=record.mtime_ns)
    out["mtime"] = utc_time(record.mtime_ns / 1e9)
    if record.kind is Kind.FILE:
        out["size"] = record.size
    if record.kind is Kind.SYMLINK:
        out["target"] = record.target.decode("utf-8", "backslashreplace")
    return out


def _line(record: Record, files: dict[bytes, Record]) -> str:
    if record.kind is Kind.HARDLINK:
        first = files.get(record.target)
        mode = file_mode(first.mode) if first else "h?????????"
        size = str(first.size) if first else "?"
        mtime = utc_time(first.mtime_ns / 1e9) if first else "?"
        return f"{mode} {size:>12} {mtime} {show_path(record.path)} => {show_path(record.target)}"
    size = str(record.size) if record.kind is Kind.FILE else ""
    line = f"{file_mode(record.mode)} {size:>12} {utc_time(record.mtime_ns / 1e9)} {show_path(record.path)}"
    if record.kind is Kind.SYMLINK:
        line += f" -> {show_path(record.target)}"
    return line


@click.command("ls", short_help="List the files of a snapshot.")
@config_option
@server_options
@key_option("browse.key (else data.key)")
@passphrase_option
@click.option("--host", help="With 'latest': the newest snapshot of this host.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per entry.")
@click.argument("snapshot")
@click.argument("path", required=False)
def command(
    config_path: Path | None,
    server_url: str | None,
    ca_file: Path | None,
    credential_file: Path | None,
    key_file: Path | None,
    passphrase_file: Path | None,
    host: str | None,
    as_json: bool,
    snapshot: str,
    path: str | None,
) -> None:
    """List the files of SNAPSHOT ('latest' or a backup id prefix), under PATH: mode, size, mtime, path."""
    under = snapshot_path(path) if path else None
    setup = open_client(config_path, server_url, ca_file, credential_file)
    key = load_reading_key(setup, key_file, passphrase_file, roles=(Role.BROWSE, Role.DATA), what="ls")
    with account_for(setup, key) as account:
        snap = open_snapshot(account, resolve_snapshot(account, snapshot, host), key.private_key)
        files: dict[bytes, Record] = {}
        for record in snap.records(under or None):
            if record.kind is Kind.CONTINUATION:
                continue
            if record.kind is Kind.FILE and record.link_group:
                files[record.path] = record
            if as_json:
                click.echo(json.dumps(describe_record(record), sort_keys=True))
            else:
                click.echo(_line(record, files))
