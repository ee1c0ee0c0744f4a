"""``opsbackup server renew-cert DATA_DIR [--force]``: renew the server certificate before it expires.

Issues a fresh key and certificate (same names and addresses) from the private CA when the
current one expires within ``--within-days`` (30) days, or always with ``--force``. Clients need
no change: they pin the CA, not the server certificate. Restart the server to serve the new one.
"""

from __future__ import annotations

from pathlib import Path

import click

from opsbackup import pki
from opsbackup.server.config import CONFIG_NAME, load_server_config

__all__ = ["command"]


@click.command("renew-cert")
@click.argument("data_dir", type=click.Path(path_type=Path, file_okay=False))
@click.option("--force", is_flag=True, help="Renew even if the certificate is not due.")
@click.option("--within-days", default=30, show_default=True, type=click.IntRange(0, 3650))
@click.option("--days", default=397, show_default=True, type=click.IntRange(1, 3650))
def command(data_dir: Path, force: bool, within_days: int, days: int) -> None:
    """Renew the server's TLS certificate if it expires soon (or with --force)."""
    config = load_server_config(Path(data_dir) / CONFIG_NAME)
    expires = pki.not_valid_after(config.cert)
    if not force and not pki.needs_renewal(config.cert, within_days):
        click.echo(
            f"{config.cert} is valid until {expires:%Y-%m-%d}: not due for renewal "
            f"(due {within_days} days before expiry; --force renews now)"
        )
        return
    renewed = pki.renew_server_cert(config.ca_cert.parent, config.cert, config.key, days=days)
    click.echo(
        f"renewed {renewed.cert}: valid until {pki.not_valid_after(renewed.cert):%Y-%m-%d} "
        f"(was {expires:%Y-%m-%d}); restart the server to use it"
    )
    ca_expires = pki.not_valid_after(config.ca_cert)
    if pki.needs_renewal(config.ca_cert, 365):
        click.echo(f"warning: the CA certificate {config.ca_cert} expires on {ca_expires:%Y-%m-%d}", err=True)
