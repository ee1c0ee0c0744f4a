"""``opsbackup server init DATA_DIR --name DNS... --ip IP...``: a new server data directory.

Creates DATA_DIR (mode 0700) holding a private CA (``ca/``), a server certificate for the given
names and addresses (``tls/``), an empty object store (``storage/``) and ``server.toml``, then
prints the CA certificate's path and SHA-256 fingerprint: what every client bundles and pins.
Refuses to touch a DATA_DIR that exists and is not empty. If a step fails, what it made is removed.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import click

from crypto.atomic_file import write_atomic
from opsbackup import pki
from opsbackup.errors import ConfigError, UsageError
from opsbackup.server.config import CONFIG_NAME, DEFAULT_MAX_OBJECT_SIZE, DEFAULT_PORT, render_server_toml

__all__ = ["command", "init_server"]

CA_DIR = "ca"
TLS_DIR = "tls"
STORAGE_DIR = "storage"


def init_server(
    data_dir: Path,
    *,
    names: list[str],
    ips: list[str],
    host: str = "0.0.0.0",  # noqa: S104 - a backup server listens for its hosts; --listen narrows it
    port: int = DEFAULT_PORT,
    cert_days: int = 397,
    ca_days: int = 3650,
    max_object_size: int = DEFAULT_MAX_OBJECT_SIZE,
) -> tuple[pki.CAFiles, pki.ServerCertFiles, Path]:
    """Create the data directory; return the CA files, the server certificate files and the config."""
    if not names and not ips:
        raise UsageError("give at least one --name or --ip: the names clients use to reach the server")
    data_dir = Path(data_dir)
    existed = data_dir.exists()
    if existed and (not data_dir.is_dir() or any(data_dir.iterdir())):
        raise ConfigError(f"{data_dir} already exists and is not empty: refusing to overwrite a server")
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    data_dir.chmod(0o700)
    try:
        ca = pki.create_ca(data_dir / CA_DIR, days=ca_days, permitted_dns=names, permitted_ips=ips)
        server = pki.issue_server_cert(
            data_dir / CA_DIR, data_dir / TLS_DIR, dns_names=names, ip_addresses=ips, days=cert_days
        )
        (data_dir / STORAGE_DIR).mkdir(mode=0o700)
        text = render_server_toml(
            host=host,
            port=port,
            cert=f"{TLS_DIR}/{pki.SERVER_CERT}",
            key=f"{TLS_DIR}/{pki.SERVER_KEY}",
            ca_cert=f"{CA_DIR}/{pki.CA_CERT}",
            storage_root=STORAGE_DIR,
            max_object_size=max_object_size,
        )
        config = data_dir / CONFIG_NAME
        write_atomic(config, text.encode("utf-8"), 0o600, overwrite=False)
    except BaseException:
        if existed:
            for child in data_dir.iterdir():
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child)
                else:
                    child.unlink()
        else:
            shutil.rmtree(data_dir, ignore_errors=True)
        raise
    return ca, server, config


@click.command("init")
@click.argument("data_dir", type=click.Path(path_type=Path, file_okay=False))
@click.option("--name", "names", multiple=True, help="A DNS name clients use for the server (repeatable).")
@click.option("--ip", "ips", multiple=True, help="An IP address clients use for the server (repeatable).")
@click.option("--listen", default="0.0.0.0", show_default=True, help="Address to listen on.")  # noqa: S104
@click.option("--port", default=DEFAULT_PORT, show_default=True, type=click.IntRange(1, 65535))
@click.option("--cert-days", default=397, show_default=True, type=click.IntRange(1, 3650))
@click.option("--ca-days", default=3650, show_default=True, type=click.IntRange(30, 36500))
def command(
    data_dir: Path,
    names: tuple[str, ...],
    ips: tuple[str, ...],
    listen: str,
    port: int,
    cert_days: int,
    ca_days: int,
) -> None:
    """Create a server data directory: private CA, server certificate, storage and server.toml."""
    ca, server, config = init_server(
        data_dir,
        names=list(names),
        ips=list(ips),
        host=listen,
        port=port,
        cert_days=cert_days,
        ca_days=ca_days,
    )
    expires = pki.not_valid_after(server.cert).strftime("%Y-%m-%d")
    click.echo(f"created server data directory {data_dir}")
    click.echo(f"config:             {config}")
    click.echo(f"server certificate: {server.cert} (valid until {expires}; names: {', '.join(names + ips)})")
    click.echo(f"CA certificate:     {ca.cert}")
    click.echo(f"CA fingerprint:     sha256:{pki.fingerprint(ca.cert)}")
    click.echo(
        "Copy the CA certificate to every client and check its fingerprint there: clients trust only it.\n"
        f"The CA key {ca.key} is needed only to renew certificates: keep it safe (or offline)."
    )
