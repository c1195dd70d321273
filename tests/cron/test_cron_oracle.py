"""Cron expressions against an independent oracle: cronsim, which follows Debian cron.

Random (expression, start time) pairs across 2026-2030 in zones with awkward
daylight-saving rules; taskcron's next fire time must equal cronsim's, every
time. 10,000 pairs by default; set TASKCRON_CRON_EXAMPLES=100000 for the long
run. Each expression drawn is checked from STARTS start times (drawing an
expression costs hypothesis several times what drawing a time does).
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone
from functools import cache
from zoneinfo import ZoneInfo

from cronsim import CronSim
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from taskcron.schedule import CronExpr

ZONES = (
    "America/New_York",
    "Europe/Berlin",
    "Australia/Lord_Howe",
    "America/Santiago",
    "Pacific/Chatham",
)
#: (expression, start time) pairs checked.
EXAMPLES = int(os.environ.get("TASKCRON_CRON_EXAMPLES", "10000"))
#: Start times drawn for each expression.
STARTS = 4
START = datetime(2026, 1, 1, tzinfo=timezone.utc)
END = datetime(2030, 12, 31, tzinfo=timezone.utc)


@cache
def transitions(zone: str) -> tuple[datetime, ...]:
    """The instants in 2026-2030 at which `zone`'s UTC offset changes."""
    tz = ZoneInfo(zone)
    found = []
    moment = START
    offset = moment.astimezone(tz).utcoffset()
    while moment < END:
        nxt = moment + timedelta(minutes=15)
        new = nxt.astimezone(tz).utcoffset()
        if new != offset:
            found.append(nxt)
            offset = new
        moment = nxt
    return tuple(found)


def numbers(low: int, high: int, hot: tuple[int, ...] = ()) -> st.SearchStrategy[int]:
    values = st.integers(low, high)
    return st.one_of(st.sampled_from(hot), values) if hot else values


def field(low: int, high: int, hot: tuple[int, ...] = ()) -> st.SearchStrategy[str]:
    single = numbers(low, high, hot).map(str)
    step = st.integers(1, high - low + 1).map(str)
    pairs = st.tuples(numbers(low, high, hot), numbers(low, high, hot))
    ranged = pairs.map(lambda ab: f"{min(ab)}-{max(ab)}")
    # cronsim reads a one-value range with a step, "N-N/S", as "N/S" (N to the
    # end of the field); Debian cron reads it as N alone, and so does taskcron.
    wide = pairs.filter(lambda ab: ab[0] != ab[1]).map(lambda ab: f"{min(ab)}-{max(ab)}")
    term = st.one_of(
        single,
        ranged,
        st.tuples(wide, step).map("/".join),
        st.tuples(single, step).map("/".join),
    )
    return st.one_of(
        st.just("*"),
        step.map(lambda s: f"*/{s}"),
        term,
        st.lists(term, min_size=2, max_size=3).map(",".join),
    )


expressions = st.one_of(
    st.tuples(
        field(0, 59, (0, 15, 30, 45, 59)),
        field(0, 23, (0, 1, 2, 3, 23)),
        field(1, 31, (1, 28, 29, 30, 31)),
        st.one_of(st.just("*"), field(1, 12, (3, 4, 9, 10, 11))),
        st.one_of(st.just("*"), field(0, 7, (0, 6, 7))),
    ).map(" ".join),
    st.sampled_from(
        ["@hourly", "@daily", "@weekly", "@monthly", "@yearly", "30 1 * * *", "0 2 * * *"]
    ),
)


@st.composite
def starts(draw: st.DrawFn) -> datetime:
    zone = draw(st.sampled_from(ZONES))
    if draw(st.booleans()):
        base = draw(st.sampled_from(transitions(zone)))
        moment = base + timedelta(seconds=draw(st.integers(-6 * 3600, 6 * 3600)))
    else:
        seconds = int((END - START).total_seconds())
        moment = START + timedelta(seconds=draw(st.integers(0, seconds)))
    return moment.astimezone(ZoneInfo(zone))


def valid(expr: str) -> bool:
    try:
        CronExpr.parse(expr)
        CronSim(expr, START)
    except Exception:
        return False
    return True


@settings(
    max_examples=max(EXAMPLES // STARTS, 1),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(expressions.filter(valid), st.lists(starts(), min_size=STARTS, max_size=STARTS))
def test_next_fire_time_agrees_with_debian_cron(expr: str, moments: list[datetime]) -> None:
    cron = CronExpr.parse(expr)
    for start in moments:
        ours = cron.next_after(start, start.tzinfo)  # type: ignore[arg-type]
        theirs = next(CronSim(expr, start))
        assert ours == theirs.astimezone(timezone.utc), (expr, start.isoformat())


def test_a_one_value_range_with_a_step_is_that_value() -> None:
    assert CronExpr.parse("* * 1-1/1 * *").days == frozenset({1})


def test_a_fixed_time_job_runs_once_on_a_fall_back_day() -> None:
    tz = ZoneInfo("America/New_York")
    cron = CronExpr.parse("30 1 * * *")
    first = cron.next_after(datetime(2026, 11, 1, 0, 0, tzinfo=tz), tz)
    second = cron.next_after(first, tz)
    assert first.astimezone(tz).isoformat() == "2026-11-01T01:30:00-04:00"
    assert second.astimezone(tz).isoformat() == "2026-11-02T01:30:00-05:00"


def test_a_fixed_time_job_in_the_skipped_hour_runs_at_the_jump() -> None:
    tz = ZoneInfo("America/New_York")
    fired = CronExpr.parse("30 2 * * *").next_after(datetime(2026, 3, 8, 0, 0, tzinfo=tz), tz)
    assert fired.astimezone(tz).isoformat() == "2026-03-08T03:00:00-04:00"


def test_a_wildcard_job_runs_in_both_passes_of_a_repeated_hour() -> None:
    tz = ZoneInfo("America/New_York")
    cron = CronExpr.parse("30 * * * *")
    fired = [cron.next_after(datetime(2026, 11, 1, 0, 45, tzinfo=tz), tz)]
    for _ in range(2):
        fired.append(cron.next_after(fired[-1], tz))
    assert [f.astimezone(tz).isoformat() for f in fired] == [
        "2026-11-01T01:30:00-04:00",
        "2026-11-01T01:30:00-05:00",
        "2026-11-01T02:30:00-05:00",
    ]
