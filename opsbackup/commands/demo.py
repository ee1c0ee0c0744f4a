"""``opsbackup demo [--dir DIR] [--keep]``: run the whole product on this machine and time it.

Sets up a server on loopback, an account, a host; backs up a generated sample tree, restores it
the way an operator would on a fresh machine, compares it byte for byte and metadata for
metadata, and backs up again to show deduplication. Exit 0 only if the restore is identical.
"""

from __future__ import annotations

from pathlib import Path

import click

from opsbackup.demo import DEFAULT_SIZE_MIB, run_demo

__all__ = ["command"]


@click.command("demo", short_help="Run the whole product on loopback.")
@click.option(
    "--dir",
    "directory",
    type=click.Path(path_type=Path, file_okay=False),
    help="Work in DIR (new or empty) instead of a temporary directory.",
)
@click.option("--keep", is_flag=True, help="Keep the work directory (server, keys, host, data) afterwards.")
@click.option(
    "--size",
    "size_mib",
    default=DEFAULT_SIZE_MIB,
    show_default=True,
    type=click.IntRange(1, 4096),
    help="Size of the sample tree in MiB.",
)
def command(directory: Path | None, keep: bool, size_mib: int) -> None:
    """Demonstrate backup and verified restore end to end on loopback, with speeds."""
    run_demo(directory, keep=keep, size_mib=size_mib, echo=click.echo)
