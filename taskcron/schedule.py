"""When a task is due next: after a run, after a failure, from an explicit `now`.

Pure functions of their arguments; the caller passes the clock's time and, for
jitter, a random source.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Sequence
from datetime import date, datetime, time, timedelta, timezone, tzinfo

from taskcron import errors
from taskcron.inputs import zone
from taskcron.model import Next, Outcome, Recurrence, State, Task
from taskcron.values import field, value

JITTER = 0.2


def backoff(
    attempts: int, *, first: timedelta, cap: timedelta, rng: random.Random | None = None
) -> timedelta:
    """The wait after the `attempts`-th failed attempt: `first` doubling per attempt, ±20%, capped.

    `attempts` counts from 1 (the wait after the first failure is about `first`).
    """
    # Past 2**64 the cap has long been reached; stop doubling before floats overflow.
    base = first.total_seconds() * 2.0 ** min(max(attempts - 1, 0), 64)
    factor = 1 + JITTER * (2 * (rng or random).random() - 1)
    return timedelta(seconds=min(base * factor, cap.total_seconds()))


def next_due(recurrence: Recurrence, after: datetime) -> datetime:
    """When a recurring task is due next: strictly after `after`, in UTC."""
    if recurrence.every is not None:
        return after + recurrence.every
    assert recurrence.cron is not None
    return CronExpr.parse(recurrence.cron).next_after(after, zone(recurrence.tz))


#: The most fire times `fire_times` counts (a schedule missed for years stops there).
MOST_FIRE_TIMES = 100_000


def fire_times(recurrence: Recurrence, since: datetime, until: datetime) -> int:
    """How many times a recurring task was due from `since` (its due time, counted) up to
    `until` (not counted): the runs a missed task has missed by then."""
    if until <= since:
        return 0
    if recurrence.every is not None:
        return min(-(-(until - since) // recurrence.every), MOST_FIRE_TIMES)
    count, moment = 1, since
    while count < MOST_FIRE_TIMES and (moment := next_due(recurrence, moment)) < until:
        count += 1
    return count


@value
class RetryPolicy:
    """Where a task goes after a run: done, retried after a backoff, failed, or its next time."""

    first: timedelta  #: The first wait (config `retry.backoff`); it doubles per attempt.
    cap: timedelta  #: The longest wait (config `retry.max_backoff`).
    rng: random.Random = field(default_factory=random.Random)

    def after_run(self, task: Task, outcome: Outcome, now: datetime) -> Next:
        """The task's new state and due time once a run ended with `outcome` at `now`.

        A one-off task: a success makes it `done`; a failure, timeout or
        interruption queues it again after the backoff while attempts are
        left, and makes it `failed` once they are spent. A recurring task
        always goes back to `queued`: at its next due time after `now` (its
        attempts reset) after a success or once its attempts are spent, or
        after the backoff (never past that next time) to try again. A step
        that asked to go on later goes to the back of the line at once.
        """
        if outcome is Outcome.CONTINUED:
            return Next(State.QUEUED, now)
        if task.recurrence is not None:
            upcoming = next_due(task.recurrence, now)
            if outcome is Outcome.DONE or task.attempts >= task.max_attempts:
                return Next(State.QUEUED, upcoming, reset_attempts=True)
            wait = backoff(task.attempts, first=self.first, cap=self.cap, rng=self.rng)
            return Next(State.QUEUED, min(now + wait, upcoming))
        if outcome is Outcome.DONE:
            return Next(State.DONE, task.due_at)
        if task.attempts < task.max_attempts:
            wait = backoff(task.attempts, first=self.first, cap=self.cap, rng=self.rng)
            return Next(State.QUEUED, now + wait)
        return Next(State.FAILED, task.due_at)

    def after_skip(self, task: Task, now: datetime) -> Next:
        """Where a task goes that is later than its max lateness at `now`.

        A recurring task moves to its next due time after `now`; a one-off
        task is cancelled.
        """
        if task.recurrence is not None:
            return Next(State.QUEUED, next_due(task.recurrence, now), reset_attempts=True)
        return Next(State.CANCELLED, task.due_at)


# --- cron expressions ---------------------------------------------------------
#
# The syntax and the meaning are Debian cron's: numbers, names, ranges, steps,
# lists and the @-words. Around daylight-saving changes, a job at a specific
# time (neither its minute nor its hour field starts with `*`) runs once at the
# jump when its time falls in a skipped hour, and once (not twice) on a
# fall-back day; other jobs follow real time, so they run in both passes of a
# repeated hour and not in a skipped one. When both day fields are
# restricted, a day matches either of them (OR); when one starts with `*`,
# both must match (AND).

AT_WORDS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
#: (name, lowest, highest, names) of the five fields.
_FIELDS: tuple[tuple[str, int, int, tuple[str, ...]], ...] = (
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day of month", 1, 31, ()),
    ("month", 1, 12, _MONTHS),
    ("day of week", 0, 7, _DAYS),
)
_DAYS_IN_MONTH = (0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_SEARCH_YEARS = 50


def _cron_error(expr: str, reason: str) -> errors.CronError:
    return errors.CronError(f"invalid cron expression {expr!r}: {reason}")


def _number(expr: str, field: str, text: str, low: int, high: int, names: Sequence[str]) -> int:
    if text.isascii() and text.isdigit():
        value = int(text)
    elif text.lower() in names:
        value = names.index(text.lower()) + low
    else:
        raise _cron_error(expr, f"{field} field: {text!r} is not a number or name")
    if not low <= value <= high:
        raise _cron_error(expr, f"{field} field: {value} is out of range {low}-{high}")
    return value


def _parse_field(expr: str, index: int, text: str) -> frozenset[int]:
    field, low, high, names = _FIELDS[index]
    values: set[int] = set()
    for term in text.split(","):
        base, slash, step_text = term.partition("/")
        step = 1
        if slash:
            if not (step_text.isascii() and step_text.isdigit()) or int(step_text) == 0:
                raise _cron_error(expr, f"{field} field: bad step {step_text!r}")
            step = int(step_text)
        if base == "*":
            start, end = low, high
        elif "-" in base:
            first, _, last = base.partition("-")
            start = _number(expr, field, first, low, high, names)
            end = _number(expr, field, last, low, high, names)
            if end < start:
                raise _cron_error(expr, f"{field} field: range {base!r} runs backwards")
        else:
            start = _number(expr, field, base, low, high, names)
            end = high if slash else start  # Debian: "N/S" steps from N to the end
        values.update(range(start, end + 1, step))
    if index == 4 and 7 in values:  # Sunday is 0 or 7
        values.discard(7)
        values.add(0)
    return frozenset(values)


@value(kw_only=False)
class CronExpr:
    """A parsed five-field cron expression with Debian cron's meaning."""

    text: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  #: 0 is Sunday.
    day_and: bool  #: Both day fields must match (one of them starts with `*`).
    fixed_time: bool  #: Neither the minute nor the hour field starts with `*`.

    @classmethod
    def parse(cls, expr: str) -> CronExpr:
        """Parse and validate `expr`, or raise `CronError` saying what is wrong."""
        return _parse_cron(expr)

    def matches_day(self, day: date) -> bool:
        """Whether the day fields accept `day`."""
        dom = day.day in self.days
        dow = (day.weekday() + 1) % 7 in self.weekdays
        return (dom and dow) if self.day_and else (dom or dow)

    def next_after(self, moment: datetime, tz: tzinfo) -> datetime:
        """The first fire time strictly after `moment`, in UTC, by the rules above."""
        # Start one second after `moment` and move forward field by field, as
        # Debian cron's evaluators do; the second is settled last.
        local = moment.astimezone(tz).replace(microsecond=0)
        if self.fixed_time:
            # Walk the wall clock, then place the result: a time in a skipped
            # hour moves to the jump, an ambiguous one takes its first pass.
            found = self._advance(local.replace(tzinfo=None) + timedelta(seconds=1), None)
            result = found.replace(tzinfo=tz, fold=0)
            while _imaginary(result):
                found += timedelta(minutes=1)
                result = found.replace(tzinfo=tz, fold=0)
            return result.astimezone(timezone.utc)
        return self._advance(_tick(local, 1, tz), tz).astimezone(timezone.utc)

    def _advance(self, dt: datetime, tz: tzinfo | None) -> datetime:
        start_year = dt.year
        while True:
            if dt.month not in self.months:
                needle = dt.date()
                while needle.month not in self.months:
                    needle = (needle.replace(day=1) + timedelta(days=32)).replace(day=1)
                dt = datetime.combine(needle, time(), tzinfo=tz)
            if dt.year > start_year + _SEARCH_YEARS:
                raise _cron_error(self.text, f"no fire time within {_SEARCH_YEARS} years")
            if not self.matches_day(dt.date()):
                needle = dt.date()
                while not self.matches_day(needle):
                    needle += timedelta(days=1)
                    if needle.day == 1:
                        break  # a new month: check the month again
                dt = datetime.combine(needle, time(), tzinfo=tz)
                continue
            if dt.hour not in self.hours:
                dt = dt.replace(minute=0, second=0)
                while dt.hour not in self.hours:
                    dt = _tick(dt, 3600, tz)
                    if dt.hour == 0:
                        break
                continue
            if dt.minute not in self.minutes:
                dt = dt.replace(second=0)
                if len(self.minutes) == 1:
                    (target,) = self.minutes
                    dt = _tick(dt, (target - dt.minute) % 60 * 60, tz)
                while dt.minute not in self.minutes:
                    dt = _tick(dt, 60, tz)
                    if dt.minute == 0:
                        break
                continue
            if dt.second != 0:
                dt = _tick(dt, 60 - dt.second, tz)
                continue
            return dt


def _tick(dt: datetime, seconds: int, tz: tzinfo | None) -> datetime:
    """`dt` moved by real seconds: through UTC when aware, on the wall clock when naive."""
    if seconds == 0:
        return dt
    if tz is None:
        return dt + timedelta(seconds=seconds)
    return (dt.astimezone(timezone.utc) + timedelta(seconds=seconds)).astimezone(tz)


def _imaginary(dt: datetime) -> bool:
    return dt != dt.astimezone(timezone.utc).astimezone(dt.tzinfo)


@functools.lru_cache(maxsize=256)
def _parse_cron(expr: str) -> CronExpr:
    text = expr.strip()
    if any(c in text for c in "\n\r\x00"):
        raise _cron_error(expr, "line breaks and NUL are not allowed")
    if text.startswith("@"):
        if text.lower() not in AT_WORDS:
            words = ", ".join(sorted(AT_WORDS))
            raise _cron_error(expr, f"unknown @-word (known: {words})")
        text = AT_WORDS[text.lower()]
    parts = text.split()
    if len(parts) != 5:
        raise _cron_error(
            expr,
            f"expected 5 fields (minute hour day-of-month month day-of-week), got {len(parts)}",
        )
    for part in parts:
        bad = sorted({c for c in part if not (c.isascii() and (c.isalnum() or c in "*,-/"))})
        if bad:
            raise _cron_error(expr, f"unexpected character {bad[0]!r} (Debian cron syntax only)")
    sets = [_parse_field(expr, i, part) for i, part in enumerate(parts)]
    cron = CronExpr(
        text=expr.strip(),
        minutes=sets[0],
        hours=sets[1],
        days=sets[2],
        months=sets[3],
        weekdays=sets[4],
        day_and=parts[2].startswith("*") or parts[4].startswith("*"),
        fixed_time=not parts[0].startswith("*") and not parts[1].startswith("*"),
    )
    if cron.day_and and min(cron.days) > max(_DAYS_IN_MONTH[m] for m in cron.months):
        raise _cron_error(expr, "that day of the month never comes in those months")
    return cron


def validate_cron(expr: str) -> CronExpr:
    """Parse `expr` and have croniter agree that it is valid (the CLI's check)."""
    cron = CronExpr.parse(expr)
    from croniter import croniter

    expanded = " ".join(_canonical(cron))
    if not croniter.is_valid(expanded):
        raise _cron_error(expr, "croniter refuses it")
    return cron


def _canonical(cron: CronExpr) -> list[str]:
    return [
        ",".join(str(v) for v in sorted(values))
        for values in (cron.minutes, cron.hours, cron.days, cron.months, cron.weekdays)
    ]
