"""The comparison's tables: every measured run, then a summary of ratios against issue 9's targets."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Run", "render_details", "render_summary"]

MIB = 1 << 20


@dataclass(frozen=True)
class Run:
    """One measured client command."""

    tool: str
    corpus: str
    phase: str
    corpus_bytes: int
    wall_s: float
    cpu_s: float
    peak_rss_kib: int
    stored_growth: int
    server_cpu_s: float = 0.0
    check: str = ""

    def mb_s(self) -> float:
        return self.corpus_bytes / 1e6 / self.wall_s if self.wall_s > 0 else float("inf")

    def line(self) -> str:
        extra = (
            f", restore {self.check}" if self.check else f", repository +{self.stored_growth / MIB:.1f} MiB"
        )
        return (
            f"  {self.tool:>9} {self.phase:<22} {self.wall_s:8.2f} s ({self.mb_s():7.1f} MB/s), "
            f"CPU {self.cpu_s:7.2f} s (server {self.server_cpu_s:6.2f} s), "
            f"peak RSS {self.peak_rss_kib / 1024:7.1f} MiB{extra}"
        )


def render_details(runs: list[Run]) -> str:
    lines = [
        "| corpus | phase | tool | wall s | MB/s | client CPU s | server CPU s | peak RSS MiB "
        "| repository growth MiB |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in runs:
        growth = r.check if r.check else f"{r.stored_growth / MIB:.1f}"
        lines.append(
            f"| {r.corpus} | {r.phase} | {r.tool} | {r.wall_s:.2f} | {r.mb_s():.1f} | {r.cpu_s:.2f} | "
            f"{r.server_cpu_s:.2f} | "
            f"{r.peak_rss_kib / 1024:.1f} | {growth} |"
        )
    return "\n".join(lines)


def _find(runs: list[Run], tool: str, corpus: str, phase: str) -> Run | None:
    for r in runs:
        if (r.tool, r.corpus, r.phase) == (tool, corpus, phase):
            return r
    return None


def _speed_row(runs: list[Run], corpus: str, phase: str, target: float) -> str | None:
    ops = _find(runs, "opsbackup", corpus, phase)
    res = _find(runs, "restic", corpus, phase)
    if ops is None or res is None:
        return None
    ratio = res.wall_s / ops.wall_s if ops.wall_s > 0 else float("inf")
    verdict = "met" if ratio >= target else "MISSED"
    return (
        f"| {corpus} | {phase} | {ops.wall_s:.2f} s | {res.wall_s:.2f} s | {ratio:.2f}x faster | "
        f">= {target:g}x faster | {verdict} |"
    )


def render_summary(runs: list[Run]) -> str:
    """Ratios to restic, each against its target (a ratio > 1 means opsbackup is faster)."""
    lines = [
        "| corpus | figure | opsbackup | restic | ratio | target | |",
        "|---|---|---:|---:|---:|---|---|",
    ]
    corpora = list(dict.fromkeys(r.corpus for r in runs))
    for corpus in corpora:
        for phase, target in (
            ("initial backup", 2.0),
            ("unchanged re-backup", 2.0),
            ("small-change re-backup", 1.5),
            ("restore", 1.5),
        ):
            row = _speed_row(runs, corpus, phase, target)
            if row:
                lines.append(row)
        ops_edit = _find(runs, "opsbackup", corpus, "small-change re-backup")
        res_edit = _find(runs, "restic", corpus, "small-change re-backup")
        if ops_edit and res_edit:
            ok = ops_edit.stored_growth <= res_edit.stored_growth
            lines.append(
                f"| {corpus} | small-change upload (repository growth) | "
                f"{ops_edit.stored_growth / 1024:.0f} KiB | "
                f"{res_edit.stored_growth / 1024:.0f} KiB | "
                f"{ops_edit.stored_growth / max(res_edit.stored_growth, 1):.2f} | <= restic's | "
                f"{'met' if ok else 'MISSED'} |"
            )
        ops_init = _find(runs, "opsbackup", corpus, "initial backup")
        res_init = _find(runs, "restic", corpus, "initial backup")
        if ops_init and res_init:
            ratio = ops_init.stored_growth / max(res_init.stored_growth, 1)
            lines.append(
                f"| {corpus} | stored size after the initial backup | "
                f"{ops_init.stored_growth / MIB:.1f} MiB | "
                f"{res_init.stored_growth / MIB:.1f} MiB | {ratio:.3f} | within 5% (<= 1.05) | "
                f"{'met' if ratio <= 1.05 else 'MISSED'} |"
            )
        rss = {
            tool: max((r.peak_rss_kib for r in runs if r.tool == tool and r.corpus == corpus), default=0)
            for tool in ("opsbackup", "restic")
        }
        if rss["opsbackup"] and rss["restic"]:
            ratio = rss["opsbackup"] / rss["restic"]
            lines.append(
                f"| {corpus} | client peak RSS (max of its runs) | {rss['opsbackup'] / 1024:.0f} MiB | "
                f"{rss['restic'] / 1024:.0f} MiB | {ratio:.2f} | <= restic's | "
                f"{'met' if ratio <= 1 else 'MISSED'} |"
            )
    return "\n".join(lines)
