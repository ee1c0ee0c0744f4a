"""Run one client command as a child process and measure it: wall time, CPU time, peak RSS.

``os.wait4`` gives the rusage of exactly that child (its own ``ru_maxrss``), so a server that
runs in another process is never counted. Page caches can be dropped between phases when the
harness runs as root (``/proc/sys/vm/drop_caches``), so every tool reads its input cold.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "ChildFailedError",
    "Measured",
    "can_drop_caches",
    "drop_caches",
    "process_cpu_s",
    "run_measured",
    "tree_bytes",
]

DROP_CACHES = Path("/proc/sys/vm/drop_caches")


@dataclass(frozen=True)
class Measured:
    """One child's figures: wall seconds, CPU seconds (user + system), peak RSS in KiB, its stdout."""

    wall_s: float
    cpu_s: float
    peak_rss_kib: int
    stdout: str

    @property
    def peak_rss_mib(self) -> float:
        return self.peak_rss_kib / 1024


class ChildFailedError(RuntimeError):
    """A measured command exited non-zero (its stderr is in the message)."""


def can_drop_caches() -> bool:
    """Whether this process may drop the page cache (root, and a writable /proc/sys/vm)."""
    if os.geteuid() != 0:
        return False
    try:
        drop_caches()
    except OSError:
        return False
    return True


def drop_caches() -> None:
    """Flush dirty pages, then drop page cache, dentries and inodes."""
    os.sync()
    DROP_CACHES.write_text("3\n")


def run_measured(
    argv: Sequence[str], *, env: Mapping[str, str] | None = None, cwd: Path | None = None, log: Path
) -> Measured:
    """Run ``argv``; return its figures. Raise :class:`ChildFailedError` (with its stderr) if it fails.

    ``log`` receives stderr (restic's and opsbackup's progress and warnings). Exit code 3 of
    opsbackup (completed with warnings) counts as success; so does restic's 3 (some files unread).
    """
    with (
        log.open("ab") as err,
        subprocess.Popen(
            list(argv),
            stdout=subprocess.PIPE,
            stderr=err,
            stdin=subprocess.DEVNULL,
            env=dict(env) if env is not None else None,
            cwd=cwd,
        ) as child,
    ):
        started = time.perf_counter()
        assert child.stdout is not None
        out = child.stdout.read()
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - started
        child.returncode = os.waitstatus_to_exitcode(status)
    code = child.returncode
    if code not in (0, 3):
        tail = log.read_text(errors="replace")[-2000:]
        raise ChildFailedError(f"{' '.join(argv[:3])}... exited {code}; end of {log}:\n{tail}")
    return Measured(
        wall_s=wall,
        cpu_s=usage.ru_utime + usage.ru_stime,
        peak_rss_kib=usage.ru_maxrss,
        stdout=out.decode("utf-8", errors="replace"),
    )


def tree_bytes(root: Path) -> int:
    """Bytes of every regular file under ``root`` (the stored size of a repository directory)."""
    total = 0
    for dirpath, _, files in os.walk(root):
        for name in files:
            path = os.path.join(dirpath, name)
            if not os.path.islink(path):
                total += os.stat(path).st_size
    return total


def process_cpu_s(pid: int) -> float:
    """CPU seconds (user + system, every thread) a running process has used so far: its server's share."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # After "pid (comm)": state is field 3, utime 14 and stime 15 (1-based, proc(5)).
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
