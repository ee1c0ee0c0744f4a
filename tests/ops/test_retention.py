"""Retention on a synthetic year of daily backups keeps exactly the table's survivors, for its reasons."""

from __future__ import annotations

import calendar
import datetime
import random

import pytest

from opsbackup.ops.retention import Policy, apply_policy

FIRST = datetime.date(2025, 3, 1)
LAST = datetime.date(2026, 2, 28)  # a Saturday; ISO week 2026-W09 runs Mon Feb 23 .. Sun Mar 1


def _year() -> list[tuple[int, str]]:
    """One backup a day at 03:00 UTC, id = the date."""
    days = (LAST - FIRST).days + 1
    out = []
    for i in range(days):
        d = FIRST + datetime.timedelta(days=i)
        out.append((calendar.timegm((d.year, d.month, d.day, 3, 0, 0)), d.isoformat()))
    return out


#: keep-last 3, keep-hourly 2, keep-daily 7, keep-weekly 4, keep-monthly 6, keep-yearly 3
EXPECTED = {
    "2026-02-28": ["last", "hourly", "daily", "weekly", "monthly", "yearly"],
    "2026-02-27": ["last", "hourly", "daily"],
    "2026-02-26": ["last", "daily"],
    "2026-02-25": ["daily"],
    "2026-02-24": ["daily"],
    "2026-02-23": ["daily"],
    "2026-02-22": ["daily", "weekly"],  # Sunday: the newest of week 2026-W08
    "2026-02-15": ["weekly"],
    "2026-02-08": ["weekly"],
    "2026-01-31": ["monthly"],
    "2025-12-31": ["monthly", "yearly"],  # only two years have backups: yearly keeps two
    "2025-11-30": ["monthly"],
    "2025-10-31": ["monthly"],
    "2025-09-30": ["monthly"],
}


def test_a_year_of_daily_backups_keeps_exactly_the_table() -> None:
    snapshots = _year()
    assert len(snapshots) == 365
    random.Random(7).shuffle(snapshots)  # the input order does not matter
    policy = Policy(last=3, hourly=2, daily=7, weekly=4, monthly=6, yearly=3)
    keep, remove, reasons = apply_policy(snapshots, policy)
    assert {i: reasons[i] for _, i in keep} == EXPECTED
    assert [i for _, i in keep] == sorted(EXPECTED, reverse=True)  # newest first
    assert len(remove) == 365 - len(EXPECTED)
    assert {i for _, i in keep} | {i for _, i in remove} == {i for _, i in snapshots}


def test_snapshots_of_one_second_keep_their_chain_order() -> None:
    """Backups made in the same second: the one later in the (chain-ordered) input is the newest."""
    same_second = [(1_700_000_000, "c-first"), (1_700_000_000, "a-second"), (1_700_000_000, "b-third")]
    keep, remove, reasons = apply_policy(same_second, Policy(last=1))
    assert keep == [(1_700_000_000, "b-third")]
    assert remove == [(1_700_000_000, "a-second"), (1_700_000_000, "c-first")]
    assert reasons == {"b-third": ["last"]}


def test_monthly_12_keeps_the_last_day_of_every_month() -> None:
    keep, _, reasons = apply_policy(_year(), Policy(monthly=12))
    expected = []
    for i in range(12):
        year, month = (2026, 2 - i) if i < 2 else (2025, 14 - i)
        expected.append(datetime.date(year, month, calendar.monthrange(year, month)[1]).isoformat())
    assert [i for _, i in keep] == expected
    assert all(reasons[i] == ["monthly"] for i in expected)


def test_each_rule_counts_only_periods_that_have_snapshots() -> None:
    # backups on only 3 days, far apart: keep-daily 7 keeps all 3, keep-last 1 only the newest
    t = [(calendar.timegm((2025, m, 1, 12, 0, 0)), f"m{m}") for m in (1, 5, 9)]
    assert [i for _, i in apply_policy(t, Policy(daily=7))[0]] == ["m9", "m5", "m1"]
    assert [i for _, i in apply_policy(t, Policy(last=1))[0]] == ["m9"]


def test_several_snapshots_in_one_period_keep_the_newest_of_it() -> None:
    base = calendar.timegm((2025, 6, 2, 0, 0, 0))
    t = [(base + h * 3600, f"h{h}") for h in range(24)] + [(base - 3600, "prev")]
    keep, _, reasons = apply_policy(t, Policy(daily=2, hourly=3))
    assert [i for _, i in keep] == ["h23", "h22", "h21", "prev"]
    assert reasons["h23"] == ["hourly", "daily"]
    assert reasons["prev"] == ["daily"]


def test_a_policy_that_keeps_nothing_is_refused() -> None:
    with pytest.raises(ValueError, match="keeps nothing"):
        apply_policy(_year(), Policy())
    with pytest.raises(ValueError, match="negative"):
        Policy(daily=-1)
