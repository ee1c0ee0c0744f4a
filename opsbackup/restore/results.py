"""What restore and check report: counts, warnings or errors, and a JSON form for ``--json``."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["CheckResult", "RestoreResult"]


@dataclass
class RestoreResult:
    """Counts of what one restore created, its warnings, and how long it took (seconds)."""

    files: int = 0
    dirs: int = 0
    bytes: int = 0
    symlinks: int = 0
    hardlinks: int = 0
    specials: int = 0
    packs: int = 0
    warnings: list[str] = field(default_factory=list)
    duration: float = 0.0

    def to_json(self) -> dict[str, object]:
        return {
            "files": self.files,
            "dirs": self.dirs,
            "bytes": self.bytes,
            "symlinks": self.symlinks,
            "hardlinks": self.hardlinks,
            "specials": self.specials,
            "packs": self.packs,
            "warnings": list(self.warnings),
            "duration": round(self.duration, 3),
        }


@dataclass
class CheckResult:
    """The problems a check found (one line each) and counts of what it looked at."""

    errors: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    read_data: bool = False

    @property
    def ok(self) -> bool:
        return not self.errors

    def count(self, name: str, n: int = 1) -> None:
        self.counts[name] = self.counts.get(name, 0) + n

    def to_json(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "read_data": self.read_data,
            "errors": list(self.errors),
            "counts": dict(self.counts),
        }
