"""``opsbackup benchmark [--size MIB] [--threads N] [--json]``: where a backup's CPU time goes here.

Measures this machine's throughput for each stage a backup or restore runs (keyed chunker,
HMAC-SHA256 chunk ids, SHA-256, zstd, AES-256-GCM, zstd decompression) on one thread (one
core) and on N threads, and the time of one RSA-4096 OAEP unwrap. Needs no server, no key,
no configuration; touches no file. The end-to-end comparison with restic is
``python -m tests.bench.compare_restic`` (docs/benchmarks.md).
"""

from __future__ import annotations

import os

import click

from opsbackup.bench import measure_stages, measure_unwrap
from opsbackup.commands._client import emit_json

__all__ = ["command"]


@click.command("benchmark", short_help="Measure this machine's chunker, hash, zstd and AES-GCM speed.")
@click.option(
    "--size",
    "size_mib",
    default=256,
    show_default=True,
    type=click.IntRange(1, 4096),
    help="MiB of sample data each stage processes (3/4 text, 1/4 random).",
)
@click.option(
    "--threads",
    type=click.IntRange(1, 256),
    default=None,
    help="Threads for the all-cores column [default: the number of CPUs].",
)
@click.option("--no-rsa", is_flag=True, help="Skip the RSA-4096 unwrap (it generates a key: a few seconds).")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
def command(size_mib: int, threads: int | None, no_rsa: bool, as_json: bool) -> None:
    """Measure throughput of each backup stage on this machine (MB/s per core and on all cores)."""
    n = threads or os.cpu_count() or 1
    if not as_json:
        click.echo(f"each stage on {size_mib} MiB of sample data; MB = 10^6 bytes; best of 2 runs", err=True)
    stages = measure_stages(size_mib << 20, n)
    unwrap = None if no_rsa else measure_unwrap()
    if as_json:
        emit_json(
            {
                "size_mib": size_mib,
                "threads": n,
                "stages": [
                    {
                        "name": s.name,
                        "what": s.what,
                        "mb_s_one_thread": round(s.one_thread_mb_s, 1),
                        "mb_s_all_threads": round(s.all_threads_mb_s, 1),
                    }
                    for s in stages
                ],
                "rsa_unwrap_ms": None if unwrap is None else round(unwrap.ms, 2),
            }
        )
        return
    click.echo(f"{'stage':<13} {'what':<26} {'1 thread MB/s':>14} {f'{n} threads MB/s':>16}")
    for s in stages:
        click.echo(f"{s.name:<13} {s.what:<26} {s.one_thread_mb_s:14.1f} {s.all_threads_mb_s:16.1f}")
    if unwrap is not None:
        click.echo(f"RSA-{unwrap.bits} OAEP unwrap of one key: {unwrap.ms:.1f} ms (once per backup key read)")
