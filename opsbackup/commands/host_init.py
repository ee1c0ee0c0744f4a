"""``opsbackup host init --name NAME --server URL --ca FILE --credential-file FILE ...``: enroll a host.

Runs on the host. Makes the host signing key there, copies the CA certificate, credential, root
public key and dedup secret into ``--dir`` (0700; secrets 0600) and writes its config.toml. The
directory then holds no key that can decrypt a backup. Prints host.pub.pem for the administrator
(``opsbackup keys add-host``) and its fingerprint.
"""

from __future__ import annotations

from pathlib import Path

import click

from opsbackup.client.config import BackupSettings
from opsbackup.setup.host import init_host

__all__ = ["DEFAULT_DIR", "command"]

DEFAULT_DIR = Path("/etc/opsbackup")

_FILE = click.Path(path_type=Path, dir_okay=False, exists=True)


@click.command("init", short_help="Set this host up to back up.")
@click.option("--name", required=True, help="The host's name (its label in the keyring and its manifests).")
@click.option("--server", "server_url", required=True, metavar="URL", help="The server, https://HOST:PORT.")
@click.option("--ca", "ca_file", required=True, type=_FILE, help="The server's private CA certificate.")
@click.option("--credential-file", required=True, type=_FILE, help="This host's credential (scope host).")
@click.option("--root-key", required=True, type=_FILE, help="The account's root public key (root.pub.pem).")
@click.option(
    "--root-fingerprint", help="Refuse the root key unless its fingerprint is this (from 'keys init')."
)
@click.option("--dedup-file", required=True, type=_FILE, help="The account's dedup secret (dedup.key).")
@click.option(
    "--dir",
    "directory",
    default=DEFAULT_DIR,
    show_default=True,
    type=click.Path(path_type=Path, file_okay=False),
    help="Where to put the host's files and config.toml.",
)
@click.option(
    "--path",
    "paths",
    multiple=True,
    type=click.Path(path_type=Path),
    help="A default backup path (repeatable).",
)
@click.option("--exclude", "excludes", multiple=True, help="A default exclude pattern (repeatable).")
@click.option("--one-file-system", is_flag=True, help="By default, do not cross file system boundaries.")
def command(
    name: str,
    server_url: str,
    ca_file: Path,
    credential_file: Path,
    root_key: Path,
    root_fingerprint: str | None,
    dedup_file: Path,
    directory: Path,
    paths: tuple[Path, ...],
    excludes: tuple[str, ...],
    one_file_system: bool,
) -> None:
    """Set this host up to back up: its signing key, its copies of the account files, config.toml."""
    files = init_host(
        directory,
        name=name,
        server_url=server_url,
        ca_file=ca_file,
        credential_file=credential_file,
        root_key_file=root_key,
        dedup_file=dedup_file,
        root_fingerprint_hex=root_fingerprint,
        backup=BackupSettings(tuple(p.absolute() for p in paths), excludes, one_file_system),
    )
    click.echo(f"host {name} set up in {files.dir} (configuration: {files.config})")
    click.echo(f"root fingerprint:     {files.root_fingerprint} (must match what 'keys init' printed)")
    click.echo(f"host public key:      {files.host_pub}")
    click.echo(f"host key fingerprint: {files.host_fingerprint}")
    click.echo(
        "Next: give host.pub.pem to the administrator, who enrolls it with\n"
        f"  opsbackup keys add-host {name} --public-key host.pub.pem\n"
        f"then back up with: opsbackup backup --config {files.config} [PATH...]\n"
        f"The credential and dedup.key you brought are now copied into {files.dir}: delete the originals."
    )
