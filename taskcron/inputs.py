"""What people type, read and checked: module ids, durations, time zones, times, levels,
JSON data, keys, owners and integers.

Light, because an idle tick reads its command line with it before the rest of
taskcron loads (see `taskcron.__main__`): it imports nothing of taskcron but its
errors, and loads `re`, `json` and `zoneinfo` on first use.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta, timezone, tzinfo
from typing import TYPE_CHECKING, Any

from taskcron import errors

if TYPE_CHECKING:
    import re

MODULE_ID_MAX = 255
#: Log levels, least severe first: the log store, the config and `log --level` use these.
LOG_LEVELS = ("debug", "info", "warning", "error")
#: Other names of a level, as Python's logging knows them.
LEVEL_ALIASES = {"warn": "warning"}
#: The integers a store can hold: task ids, priorities, counts.
INT64 = (-(2**63), 2**63 - 1)

# --- module ids ------------------------------------------------------------

#: What a segment of a module id may hold: ASCII letters, digits, `_` and `-`.
_SEGMENT_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")


def parse_module_id(value: str) -> str:
    """Return `value` if it is a valid module id, else raise `ModuleIdError`.

    A module id is one or more segments of ASCII letters, digits, `_` or `-`
    joined by single dots, at most 255 characters.
    """
    if not value:
        raise errors.ModuleIdError(value, "must not be empty")
    if len(value) > MODULE_ID_MAX:
        raise errors.ModuleIdError(value, f"longer than {MODULE_ID_MAX} characters")
    for segment in value.split("."):
        if not segment:
            raise errors.ModuleIdError(value, "empty segment")
        bad = next((c for c in segment if c not in _SEGMENT_CHARS), None)
        if bad is not None:
            raise errors.ModuleIdError(
                value, f"invalid character {bad!r} (allowed: letters, digits, '_', '-', '.')"
            )
    return value


def parse_module_list(values: Iterable[str]) -> tuple[str, ...]:
    """Split comma-separated values, validate each as a module id, drop duplicates, sort."""
    found: set[str] = set()
    for value in values:
        for item in value.split(","):
            found.add(parse_module_id(item.strip()))
    return tuple(sorted(found))


def covers(prefix: str, module: str) -> bool:
    """True when the filter `prefix` covers `module`: itself or anything under `prefix.`."""
    return module == prefix or module.startswith(prefix + ".")


def in_scope(module: str, modules: Sequence[str], excepts: Sequence[str]) -> bool:
    """True when `module` is under one of `modules` (or `modules` is empty) and under
    none of `excepts`: what a scope serves."""
    if modules and not any(covers(m, module) for m in modules):
        return False
    return not any(covers(e, module) for e in excepts)


# --- durations -------------------------------------------------------------

#: The longest duration: any longer would carry a time past the calendar's end (a budget's
#: deadline, a lease's expiry, a retention's cut-off), so it is refused as too large.
DURATION_MAX = timedelta(days=1000 * 365)
_NUMBER = r"(?:\d+(?:\.\d+)?|\.\d+)"
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


@functools.cache
def _duration_patterns() -> tuple[re.Pattern[str], re.Pattern[str]]:
    """A bare number, and units from the largest down, each at most once ("1h30m", not
    "30m1h" or "1h1h"): compiled when a duration is first read."""
    import re

    units = "".join(f"(?:(?P<{u}>{_NUMBER}){u})?" for u in ("w", "d", "h", "m", "s", "ms"))
    return re.compile(_NUMBER, re.ASCII), re.compile(units, re.ASCII)


def parse_duration(value: str | int | float) -> timedelta:
    """Read `90s`, `1h30m`, `1.5s`, `250ms` or a bare number of seconds.

    Units: w d h m s ms, largest first, each at most once. Negative
    durations, and those longer than `DURATION_MAX`, are refused with `DurationError`.
    """
    if isinstance(value, bool):
        raise errors.DurationError(str(value), "expected a number of seconds or e.g. '90s'")
    try:
        seconds = float(value) if isinstance(value, int | float) else _seconds(value)
    except OverflowError:
        raise errors.DurationError(str(value), "too large") from None
    if seconds != seconds or seconds in (float("inf"), float("-inf")):
        raise errors.DurationError(str(value), "must be finite")
    if seconds < 0:
        raise errors.DurationError(str(value), "must not be negative")
    if seconds > DURATION_MAX.total_seconds():
        raise errors.DurationError(str(value), "too large")
    return timedelta(seconds=seconds)


def parse_age(value: str | int | float) -> timedelta:
    """`parse_duration` without the bare number of seconds: an age (`prune
    --older-than`, `log.retention`) of "30" is refused as `DurationError`, being
    30 days more often than 30 seconds in the mind of whoever typed it."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        text = str(value)
    elif isinstance(value, str) and _duration_patterns()[0].fullmatch(value.strip()):
        text = value.strip()
    else:
        return parse_duration(value)
    raise errors.DurationError(str(value), f"{text} what? e.g. {text}d")


def _seconds(value: str) -> float:
    if not value.isprintable():
        raise errors.DurationError(value, "contains a control character")
    text = value.strip()
    if text.startswith("-"):
        raise errors.DurationError(value, "must not be negative")
    bare, units = _duration_patterns()
    if bare.fullmatch(text):
        return float(text)
    match = units.fullmatch(text)
    if not text or match is None:
        raise errors.DurationError(
            value, "expected e.g. '90s', '1h30m', '1.5s' or a number of seconds"
        )
    return sum(float(n) * _UNITS[unit] for unit, n in match.groupdict().items() if n)


# --- time zones ------------------------------------------------------------


@functools.lru_cache(maxsize=64)
def zone(name: str) -> tzinfo:
    """The IANA time zone `name`, or `InputError`."""
    import zoneinfo

    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        import difflib  # only for a mistake: the tick need not load it

        zones = sorted(zoneinfo.available_timezones())
        close = difflib.get_close_matches(name, zones, n=1, cutoff=0.8)  # not "America/Adak"
        if close:
            message = f"unknown time zone {name!r}: did you mean {close[0]!r}?"
            raise errors.InputError(message) from None
        raise errors.InputError(
            f"unknown time zone {name!r} (expected an IANA name such as Europe/Berlin)"
        ) from None


# --- times -------------------------------------------------------------------


def parse_time(value: datetime | str, tz: str) -> datetime:
    """An ISO 8601 time in UTC; one without an offset is read in the zone `tz`."""
    if isinstance(value, str):
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise errors.InputError(
                f"invalid time {value!r}: expected ISO 8601, e.g. 2026-12-24T18:00 or "
                "2026-12-24T18:00:00+01:00"
            ) from None
    else:
        moment = value
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone(tz))
    try:
        return moment.astimezone(timezone.utc)
    except OverflowError:  # in UTC it falls before year 1 or after year 9999
        raise errors.InputError(
            f"invalid time {str(value)!r}: out of range, in UTC it falls outside the years"
            " 1 to 9999"
        ) from None


def parse_since(since: datetime | timedelta | str | None, now: datetime) -> datetime | None:
    """A moment given as itself, as a duration before `now` ("1h"), or as ISO 8601 text."""
    if since is None or isinstance(since, datetime):
        return since
    if isinstance(since, timedelta):
        return now - since
    try:
        return now - parse_duration(since)
    except errors.DurationError:
        pass
    try:
        moment = datetime.fromisoformat(since)
    except ValueError:
        raise errors.InputError(
            f"invalid time {since!r}: expected a duration such as '1h' or an ISO 8601 time"
        ) from None
    return moment if moment.tzinfo is not None else moment.astimezone()


def optional_duration(value: timedelta | str | float | None) -> timedelta | None:
    """`parse_duration` of a value that may be absent or already read."""
    if value is None or isinstance(value, timedelta):
        return value
    return parse_duration(value)


# --- levels, data, text and integers -------------------------------------------


def parse_level(level: str | None) -> str | None:
    """A log level by its name or an alias (`warn`), or `InputError`."""
    level = LEVEL_ALIASES.get(level, level) if level is not None else None
    if level is not None and level not in LOG_LEVELS:
        raise errors.InputError(f"invalid level {level!r}: expected one of {', '.join(LOG_LEVELS)}")
    return level


def parse_data(text: str) -> str:
    """Check that `text` is strict JSON (no NaN or Infinity) and return it unchanged."""
    import json

    def refuse(constant: str) -> Any:
        raise ValueError(f"{constant} is not valid JSON")

    try:
        json.loads(text, parse_constant=refuse)
    except RecursionError:
        raise errors.DataError("invalid JSON data: nested too deeply") from None
    except ValueError as exc:
        raise errors.DataError(f"invalid JSON data: {exc}") from None
    return text


def check_utf8(name: str, value: str | None) -> None:
    """Refuse text that cannot be stored: a byte of argv that was not UTF-8 arrives as a
    lone surrogate."""
    if value is None:
        return
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        bad = value[exc.start : exc.end].encode("utf-8", "surrogateescape")
        raise errors.InputError(
            f"invalid {name}: byte {bad!r} at {exc.start} is not UTF-8 text"
        ) from None


@functools.cache
def _key_pattern() -> re.Pattern[str]:
    import re

    return re.compile(r"[^\x00-\x1f\x7f]{1,255}")


def is_key(value: str) -> bool:
    """True when `value` may be a key or an owner: 1 to 255 characters, no control ones."""
    return _key_pattern().fullmatch(value) is not None


def check_owner(owner: str | None) -> None:
    """Refuse an owner that is not UTF-8 text of 1 to 255 characters without control ones."""
    check_utf8("owner", owner)
    if owner is not None and not is_key(owner):
        raise errors.InputError(
            f"invalid owner {owner!r}: expected 1 to 255 characters, no control characters"
        )


def int64(name: str, value: int) -> int:
    """`value` if it is an integer a store can hold, else `InputError`."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise errors.InputError(f"invalid {name} {value!r}: expected an integer")
    if not INT64[0] <= value <= INT64[1]:
        raise errors.InputError(f"invalid {name} {shown_number(value)}: out of range")
    return value


def shown_number(number: int | str) -> str:
    """A number as an error shows it: a long one by its first digits and its length."""
    text = str(number).strip()
    digits = len(text.lstrip("+-"))
    return text if digits <= 30 else f"{text[:21]}... ({digits} digits)"


#: How many of a task's newest runs `show` and `/api/tasks/ID` give unless told.
SHOWN_RUNS = 20
#: The most `--runs` / `?runs=` takes as a number (`all` gives every run).
RUNS_MAX = 1_000_000


def parse_runs(value: str | int | None) -> int | None:
    """How many of a task's newest runs to show: `all` is None (every one), a number
    from 0 up to RUNS_MAX is itself, None is SHOWN_RUNS; anything else `InputError`."""
    if value is None:
        return SHOWN_RUNS
    text = str(value).strip()
    if text.lower() == "all":
        return None
    if not (text.isascii() and text.isdigit()) or len(text) > 7 or int(text) > RUNS_MAX:
        shown = repr(text) if len(text) <= 30 else f"{text[:21]!r}... ({len(text)} characters)"
        raise errors.InputError(f"invalid runs {shown}: expected 0 to {RUNS_MAX} or 'all'")
    return int(text)
