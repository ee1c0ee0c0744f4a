"""``opsbackup backup [PATH...]``: back this host up (paths default to the config's [backup] paths).

Runs on a host set up by ``opsbackup host init``: signs with the host key, keys chunks with the
dedup secret, wraps each backup's fresh keys to the keyring's public keys. ``--stdin-name NAME``
also backs up standard input as a file called NAME. Quiet unless on a terminal; ``--json``
prints the summary as JSON. Exit 3 when it completed with warnings (each one on stderr).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from crypto.keyfile import load_key
from crypto.primitives import ct_equal, public_key_der
from formats.roles import Role
from opsbackup.backup import BackupRequest, run_backup
from opsbackup.client.identity import HostIdentity
from opsbackup.client.progress import make_progress
from opsbackup.commands._client import (
    account_for,
    config_option,
    emit_json,
    human_size,
    open_client,
    utc_time,
    warn_and_exit,
)
from opsbackup.errors import UsageError, WrongKeyError

__all__ = ["command"]


def _rate(n: float, seconds: float) -> str:
    return f"{human_size(n / seconds)}/s" if seconds > 0 else "-"


@click.command("backup", short_help="Back up this host.")
@config_option
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--stdin-name", metavar="NAME", help="Also back up standard input, as a file named NAME.")
@click.option(
    "--exclude", "excludes", multiple=True, metavar="PATTERN", help="Skip matching paths (repeatable)."
)
@click.option("--tag", "tags", multiple=True, help="Tag the snapshot (repeatable).")
@click.option("--one-file-system", is_flag=True, help="Do not cross file system boundaries.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON (and no progress bar).")
def command(
    config_path: Path | None,
    paths: tuple[Path, ...],
    stdin_name: str | None,
    excludes: tuple[str, ...],
    tags: tuple[str, ...],
    one_file_system: bool,
    as_json: bool,
) -> None:
    """Back up PATHs (default: the config's [backup] paths) to the server."""
    setup = open_client(config_path, config_required=True)
    config = setup.need_config()
    host = config.need_host()
    root = config.need_account().root_public_key
    sources = paths or (() if stdin_name is not None else config.backup.paths)
    if not sources and stdin_name is None:
        raise UsageError("nothing to back up: give PATH... or set [backup] paths in the config")
    signing = load_key(host.key_file, None, expect_role=Role.HOST)
    dedup = load_key(host.dedup_file, None, expect_role=Role.DEDUP)
    for key, path in ((signing, host.key_file), (dedup, host.dedup_file)):
        if not ct_equal(public_key_der(key.root_public_key), public_key_der(root)):
            raise WrongKeyError(f"key file {path} belongs to another account than the configured root key")
    identity = HostIdentity(host.name, signing.private_key, dedup.secret, host.cache_dir)
    request = BackupRequest(
        paths=tuple(p.absolute() for p in sources),
        excludes=config.backup.exclude + excludes,
        stdin=sys.stdin.buffer if stdin_name is not None else None,
        stdin_name=stdin_name,
        tags=tags,
        one_file_system=one_file_system or config.backup.one_file_system,
    )
    progress = make_progress(enabled=not as_json)
    try:
        with account_for(setup) as account:
            result = run_backup(account, identity, request, progress=progress)
    finally:
        progress.close()
    if as_json:
        emit_json(result.to_json())
    else:
        click.echo(f"snapshot {result.backup_id[:16]} of {result.host} at {utc_time(result.time)}")
        click.echo(
            f"  {result.files} files, {result.dirs} dirs, {human_size(result.total_bytes)} "
            f"in {result.duration:.1f} s ({_rate(result.total_bytes, result.duration)})"
        )
        click.echo(
            f"  {result.new_chunks} new chunks ({human_size(result.new_bytes)}), "
            f"{result.reused_chunks} reused; uploaded {human_size(result.uploaded_bytes)} "
            f"in {result.uploaded_objects} objects"
        )
    warn_and_exit(result.warnings)
