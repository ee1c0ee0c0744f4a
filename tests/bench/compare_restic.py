"""Benchmark: opsbackup against restic on the same machine, in one run, on the same corpora.

Not a test (nothing here asserts a time): it prints figures. Both servers run on loopback HTTPS
with a private CA (``opsbackup server run``; ``rclone serve restic`` with a CA made by openssl),
each in its own process, so every client command is measured alone (wall time, CPU time, and
its peak RSS from ``os.wait4``). As root, page caches are dropped before every measured command.

Corpora: a copy of /usr/share (capped by ``--small-mib``), one large file of compressible text with
random blocks (``--large-mib``), and edits of both (files appended to; bytes inserted in the large
file). Phases per corpus: initial backup, unchanged re-backup, re-backup after the edit, restore.

Run::

    apt-get install -y restic rclone      # Debian's packages, once
    .venv/bin/python -m tests.bench.compare_restic [--small-mib 1024] [--large-mib 1024] [--dir DIR]

See docs/benchmarks.md for a run's table and what bounds each figure.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

from tests.bench._corpora import Corpus, copy_small_files, edit_large_file, edit_small_files, make_large_file
from tests.bench._measure import Measured, can_drop_caches, drop_caches, process_cpu_s, tree_bytes
from tests.bench._opsbackup_side import start_opsbackup
from tests.bench._restic_side import MISSING_HELP, missing_tools, start_restic
from tests.bench._table import Run, render_details, render_summary

__all__ = ["main"]

MIB = 1 << 20


class Side(Protocol):
    name: str
    server: subprocess.Popen[bytes]

    def backup(self, path: Path) -> Measured: ...
    def restore(self, target: Path) -> Measured: ...
    def stored_bytes(self) -> int: ...
    def stop(self) -> None: ...


@dataclass(frozen=True)
class Options:
    drop: bool
    work: Path


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(4 * MIB):
            h.update(block)
    return h.hexdigest()


def _check_restore(corpus: Corpus, target: Path) -> str:
    """Compare the restored copy with the corpus: every file's size, and the large file's hash."""
    restored = target / corpus.root.relative_to("/")
    if not restored.is_dir():
        return f"MISSING {restored}"
    want = tree_bytes(corpus.root)
    got = tree_bytes(restored)
    if want != got:
        return f"DIFFERENT: {got} bytes restored, {want} expected"
    if corpus.files == 1:
        for p in corpus.root.iterdir():
            if _sha256(p) != _sha256(restored / p.name):
                return f"DIFFERENT content of {p.name}"
    return "identical"


def _measure_backup(side: Side, corpus: Corpus, phase: str, opts: Options, echo: Echo) -> Run:
    if opts.drop:
        drop_caches()
    before = side.stored_bytes()
    server_before = process_cpu_s(side.server.pid)
    m = side.backup(corpus.root)
    server = process_cpu_s(side.server.pid) - server_before
    grown = side.stored_bytes() - before
    run = Run(side.name, corpus.name, phase, corpus.size, m.wall_s, m.cpu_s, m.peak_rss_kib, grown, server)
    echo(run.line())
    return run


def _measure_restore(side: Side, corpus: Corpus, opts: Options, echo: Echo) -> Run:
    target = opts.work / f"restore-{side.name}"
    if opts.drop:
        drop_caches()
    server_before = process_cpu_s(side.server.pid)
    m = side.restore(target)
    server = process_cpu_s(side.server.pid) - server_before
    check = _check_restore(corpus, target)
    shutil.rmtree(target)
    run = Run(
        side.name, corpus.name, "restore", corpus.size, m.wall_s, m.cpu_s, m.peak_rss_kib, 0, server, check
    )
    echo(run.line())
    return run


class Echo(Protocol):
    def __call__(self, text: str) -> None: ...


def _bench_corpus(sides: list[Side], corpus: Corpus, opts: Options, echo: Echo) -> list[Run]:
    runs: list[Run] = []
    for phase in ("initial backup", "unchanged re-backup", "small-change re-backup"):
        if phase == "small-change re-backup":
            if corpus.files == 1:
                n = edit_large_file(next(corpus.root.iterdir()))
                echo(f"  edit: inserted {n} bytes at 10%, 50% and 90% of the large file")
            else:
                n = edit_small_files(corpus.root)
                echo(f"  edit: appended to 20 files and added one ({n} bytes)")
        for side in sides:
            runs.append(_measure_backup(side, corpus, phase, opts, echo))
    for side in sides:
        runs.append(_measure_restore(side, corpus, opts, echo))
    return runs


def _load_line() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min) on {os.cpu_count()} cores"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.bench.compare_restic",
        description="Time opsbackup and restic side by side (backup, re-backup, restore, size, RSS).",
    )
    parser.add_argument(
        "--small-mib", type=int, default=1024, help="cap of the /usr/share copy (default 1024)"
    )
    parser.add_argument("--large-mib", type=int, default=1024, help="size of the large file (default 1024)")
    parser.add_argument(
        "--source", type=Path, default=Path("/usr/share"), help="tree to copy (default /usr/share)"
    )
    parser.add_argument("--dir", type=Path, default=None, help="work directory (default: a temporary one)")
    parser.add_argument(
        "--no-drop-caches", action="store_true", help="do not drop page caches between phases"
    )
    parser.add_argument("--only", choices=("opsbackup", "restic"), help="run one tool only (for profiling)")
    parser.add_argument("--corpus", choices=("small", "large"), action="append", help="only this corpus")
    parser.add_argument("--json-out", type=Path, help="also write every measurement as JSON here")
    args = parser.parse_args(argv)

    missing = [] if args.only == "opsbackup" else missing_tools()
    if missing:
        print(f"compare_restic: {', '.join(missing)} not found: {MISSING_HELP}", file=sys.stderr)
        return 2
    drop = not args.no_drop_caches and can_drop_caches()
    started = time.monotonic()

    def echo(text: str) -> None:
        print(f"[{time.monotonic() - started:7.1f} s] {text}", flush=True)

    with tempfile.TemporaryDirectory(dir=args.dir, prefix="opsbackup-vs-restic-") as tmp:
        work = Path(tmp)
        opts = Options(drop=drop, work=work)
        echo(f"work directory {work}; {_load_line()}")
        echo(
            "page caches dropped before every measured command (root)"
            if drop
            else "page caches NOT dropped (not root, or --no-drop-caches): reads may be warm"
        )
        corpora: list[Corpus] = []
        wanted = args.corpus or ["small", "large"]
        if "small" in wanted:
            small = copy_small_files(args.source, work / "corpus-small" / "share", args.small_mib * MIB)
            echo(
                f"corpus 'small files': {small.files} files, {small.size / MIB:.0f} MiB "
                f"copied from {args.source}"
            )
            corpora.append(small)
        if "large" in wanted:
            large = make_large_file(work / "corpus-large" / "data" / "large.bin", args.large_mib * MIB)
            echo(f"corpus 'large file': {large.size / MIB:.0f} MiB (3/4 text, 1/4 random, 4 MiB blocks)")
            corpora.append(large)
        sides: list[Side] = []
        try:
            if args.only != "restic":
                sides.append(start_opsbackup(work / "opsbackup"))
            if args.only != "opsbackup":
                sides.append(start_restic(work / "restic"))
            echo("servers up: " + ", ".join(s.name for s in sides))
            runs: list[Run] = []
            for corpus in corpora:
                echo(f"corpus '{corpus.name}'")
                runs.extend(_bench_corpus(sides, corpus, opts, echo))
        finally:
            for side in sides:
                side.stop()
        echo(f"done; {_load_line()}")
        print()
        print(render_details(runs))
        print()
        print(render_summary(runs))
        if args.json_out:
            args.json_out.write_text(json.dumps([asdict(r) for r in runs], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
