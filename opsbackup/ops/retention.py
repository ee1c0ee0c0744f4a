"""Retention policies with restic's semantics: which snapshots ``forget`` keeps, and why.

Per host, snapshots are taken newest first. ``keep_last`` keeps the N newest. Each of the other
rules keeps the newest snapshot of each of the N most recent hours (days, ISO weeks, months, years,
all in UTC) that have a snapshot. A snapshot kept by any rule is kept; the rest are removed.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields

__all__ = ["RULES", "Policy", "apply_policy"]


def _utc(t: int) -> time.struct_time:
    return time.gmtime(t)


def _hour(t: int) -> tuple[int, ...]:
    g = _utc(t)
    return (g.tm_year, g.tm_mon, g.tm_mday, g.tm_hour)


def _day(t: int) -> tuple[int, ...]:
    g = _utc(t)
    return (g.tm_year, g.tm_mon, g.tm_mday)


def _week(t: int) -> tuple[int, ...]:
    iso = datetime.datetime.fromtimestamp(t, datetime.UTC).isocalendar()
    return (iso.year, iso.week)


def _month(t: int) -> tuple[int, ...]:
    g = _utc(t)
    return (g.tm_year, g.tm_mon)


def _year(t: int) -> tuple[int, ...]:
    return (_utc(t).tm_year,)


#: rule name -> the bucket a snapshot time falls in (None for ``last``: every snapshot is its own).
RULES: dict[str, Callable[[int], tuple[int, ...]] | None] = {
    "last": None,
    "hourly": _hour,
    "daily": _day,
    "weekly": _week,
    "monthly": _month,
    "yearly": _year,
}


@dataclass(frozen=True)
class Policy:
    """How many snapshots each rule keeps (0: the rule is off)."""

    last: int = 0
    hourly: int = 0
    daily: int = 0
    weekly: int = 0
    monthly: int = 0
    yearly: int = 0

    def __post_init__(self) -> None:
        for f in fields(self):
            if getattr(self, f.name) < 0:
                raise ValueError(f"keep-{f.name} must not be negative")

    @property
    def empty(self) -> bool:
        """True when no rule keeps anything (forget refuses such a policy: it would remove all)."""
        return not any(getattr(self, f.name) for f in fields(self))

    def describe(self) -> str:
        """``keep-daily 7, keep-weekly 4``."""
        return ", ".join(
            f"keep-{f.name} {getattr(self, f.name)}" for f in fields(self) if getattr(self, f.name)
        )


def apply_policy(
    snapshots: Sequence[tuple[int, str]], policy: Policy
) -> tuple[list[tuple[int, str]], list[tuple[int, str]], dict[str, list[str]]]:
    """``(keep, remove, reasons)`` for ``(time, id)`` snapshots of ONE host; both lists newest first.

    ``reasons`` maps each kept id to the rules that keep it (``"daily"``, ``"last"`` ...).
    Snapshots of the same second are ordered as given, a later one being newer: pass them oldest
    first as ``list_snapshots`` does (one host's backups of one second in the order of their
    chain). Any other input order only matters for such ties.
    """
    if policy.empty:
        raise ValueError("a policy that keeps nothing")
    # Stable sort by time, newest first, of the reversed input: ties keep "later in input = newer".
    ordered = sorted(reversed(list(snapshots)), key=lambda s: s[0], reverse=True)
    reasons: dict[str, list[str]] = {}
    for rule, bucket in RULES.items():
        left = getattr(policy, rule)
        last: tuple[int, ...] | None = None
        for position, (t, ident) in enumerate(ordered):
            if left <= 0:
                break
            value = (position,) if bucket is None else bucket(t)
            if value != last:
                reasons.setdefault(ident, []).append(rule)
                last = value
                left -= 1
    keep = [s for s in ordered if s[1] in reasons]
    remove = [s for s in ordered if s[1] not in reasons]
    return keep, remove, reasons
