"""``opsbackup restore SNAPSHOT --target DIR [PATH...]``: restore a snapshot, every byte verified.

Needs a data key file (``--key``, else data.key in the config's [keys] dir) and its passphrase,
or ``--gpg-key FINGERPRINT``: an OpenPGP data recipient of the keyring, through gpg-agent.
On a fresh machine give ``--server URL --ca FILE --credential-file FILE`` instead of a config:
the root the keyring must be signed by is then the one the key file names. Nothing is written
until what it needs has been verified; a refusal leaves DIR as it was. Exit 3 with warnings.
"""

from __future__ import annotations

from pathlib import Path

import click

from crypto.unwrapper import ReaderKey
from formats.roles import Role
from opsbackup.client.passphrase import passphrase_option
from opsbackup.client.progress import make_progress
from opsbackup.commands._client import (
    account_for,
    config_option,
    emit_json,
    human_size,
    key_option,
    load_reading_key,
    open_client,
    server_options,
    snapshot_path,
    warn_and_exit,
)
from opsbackup.commands._dedup_check import chunk_id_key, dedup_key_option
from opsbackup.commands._gpg_key import gpg_key_options, openpgp_reader
from opsbackup.errors import UsageError
from opsbackup.restore.snapshots import resolve_snapshot
from opsbackup.restore.tree_reader import open_snapshot
from opsbackup.restore.writer import restore

__all__ = ["command"]


@click.command("restore", short_help="Restore a snapshot, verified.")
@config_option
@server_options
@key_option("data.key")
@gpg_key_options
@dedup_key_option
@passphrase_option
@click.option(
    "--target",
    required=True,
    type=click.Path(path_type=Path, file_okay=False),
    help="Directory to restore into (paths keep their place below it).",
)
@click.option("--host", help="With 'latest': the newest snapshot of this host.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON (and no progress bar).")
@click.argument("snapshot")
@click.argument("paths", nargs=-1)
def command(
    config_path: Path | None,
    server_url: str | None,
    ca_file: Path | None,
    credential_file: Path | None,
    key_file: Path | None,
    gpg_key: str | None,
    gnupghome: Path | None,
    dedup_file: Path | None,
    passphrase_file: Path | None,
    target: Path,
    host: str | None,
    as_json: bool,
    snapshot: str,
    paths: tuple[str, ...],
) -> None:
    """Restore SNAPSHOT ('latest' or a backup id prefix) into --target; only PATHs, if given."""
    wanted = [snapshot_path(p) for p in paths]
    setup = open_client(config_path, server_url, ca_file, credential_file)
    key_file_key = None
    if gpg_key is None:
        key_file_key = load_reading_key(setup, key_file, passphrase_file, roles=(Role.DATA,), what="restore")
    elif key_file is not None:
        raise UsageError("give --key or --gpg-key, not both")
    chunk_ids = chunk_id_key(setup, dedup_file)
    progress = make_progress(enabled=not as_json)
    try:
        with account_for(setup, key_file_key) as account:
            key: ReaderKey = (
                key_file_key.private_key
                if key_file_key is not None
                else openpgp_reader(account, gpg_key or "", gnupghome, (Role.DATA,))
            )
            snap = open_snapshot(account, resolve_snapshot(account, snapshot, host), key)
            result = restore(account, snap, key, target, wanted, progress=progress, chunk_ids=chunk_ids)
    finally:
        progress.close()
    if as_json:
        emit_json(result.to_json())
    else:
        rate = f" ({human_size(result.bytes / result.duration)}/s)" if result.duration > 0 else ""
        click.echo(
            f"restored {result.files} files, {result.dirs} dirs, {human_size(result.bytes)} into {target} "
            f"in {result.duration:.1f} s{rate}"
        )
    warn_and_exit(result.warnings)
