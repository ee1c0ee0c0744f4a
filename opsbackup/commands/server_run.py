"""``opsbackup server run --config PATH``: serve the storage API over TLS in the foreground."""

from __future__ import annotations

from pathlib import Path

import click

__all__ = ["command"]


@click.command("run")
@click.option(
    "--config",
    "config_path",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="The server's configuration file.",
)
def command(config_path: Path) -> None:
    """Serve the storage API (TLS, private CA) until interrupted."""
    import uvicorn

    from opsbackup.server.app import create_app
    from opsbackup.server.config import load_server_config
    from opsbackup.server.tls import make_uvicorn_config

    config = load_server_config(config_path)
    store = config.open_store()
    app = create_app(store, max_object_size=config.max_object_size)
    uv_config = make_uvicorn_config(
        app,
        host=config.host,
        port=config.port,
        cert=config.cert,
        key=config.key,
        client_ca=config.client_ca,
        proxy_headers=False,
        server_header=False,
        timeout_graceful_shutdown=10,
    )
    click.echo(f"opsbackup server listening on https://{config.host}:{config.port}", err=True)
    uvicorn.Server(uv_config).run()
