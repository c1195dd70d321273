"""One crontab line that runs `taskcron tick`: building it and checking it reads back.

A generated line works under cron's bare environment: absolute paths to the
`taskcron` script (or the interpreter with `-m taskcron`), the home and the
config file; every argument quoted for `/bin/sh` and every `%` escaped, since
cron turns a bare `%` into a line break. A marker comment on the line before it
names the home and the scope, so installing again replaces the line and
`--uninstall` finds it (see `taskcron.crontab`).

Everything here is pure: no subprocess, no file written. A line is checked by
reading it back as Debian cron, python-crontab and croniter would.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import shlex
import sys
from collections.abc import Sequence
from datetime import datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any

from taskcron import errors
from taskcron.heartbeat import check_url
from taskcron.inputs import parse_duration
from taskcron.model import Scope, format_duration
from taskcron.schedule import AT_WORDS, CronExpr, validate_cron
from taskcron.values import value

#: Every marker comment starts with this; a JSON object with the home and scope follows.
MARKER = "# taskcron generate-cron "
#: Debian cron silently cuts a command longer than this many bytes (MAX_COMMAND - 1).
MAX_COMMAND = 999
#: How many upcoming fire times of a --cron expression the default budget looks at.
FIRE_TIMES = 100
_FORBIDDEN = {"\n": "a line break", "\r": "a carriage return", "\x00": "a NUL byte"}
_PERIOD_HINT = (
    "cron repeats exactly only every N minutes dividing 60 (1m, 5m, 15m, 30m), N hours "
    "dividing 24 (1h, 2h, 6h, 12h) or 1d; use --cron EXPR for any other schedule"
)


# --- schedules and budgets ------------------------------------------------------


def period_schedule(period: str) -> tuple[str, timedelta]:
    """The cron expression that fires exactly every `period`, and the period itself.

    `1m` is `* * * * *`, minutes dividing 60 are `*/N * * * *`, `1h` is
    `0 * * * *`, hours dividing 24 are `0 */N * * *`, `1d` is `0 0 * * *`.
    Anything else raises `InputError` suggesting `--cron`.
    """
    check_text("period", period)
    try:
        delta = parse_duration(period)
    except errors.DurationError as exc:
        raise errors.InputError(
            f"invalid period {period!r}: {exc.reason}; {_PERIOD_HINT}"
        ) from None
    minutes = delta.total_seconds() / 60
    if minutes > 0 and minutes.is_integer():
        n = int(minutes)
        if n < 60 and 60 % n == 0:
            return ("* * * * *" if n == 1 else f"*/{n} * * * *"), delta
        hours, rest = divmod(n, 60)
        if rest == 0 and hours < 24 and 24 % hours == 0:
            return ("0 * * * *" if hours == 1 else f"0 */{hours} * * *"), delta
        if n == 24 * 60:
            return "0 0 * * *", delta
    raise errors.InputError(f"cron cannot run a job exactly every {period!r}: {_PERIOD_HINT}")


def cron_schedule(expr: str) -> tuple[str, CronExpr]:
    """`expr` as it goes into the crontab (an @-word as its five fields), and its parse.

    Only Debian cron's syntax is accepted, and croniter must agree (`CronError`).
    """
    check_text("cron expression", expr)
    cron = validate_cron(expr)
    text = expr.strip()
    return " ".join(AT_WORDS.get(text.lower(), text).split()), cron


def default_budget(gap: timedelta) -> timedelta:
    """The budget of a tick that runs every `gap`: 10% less, and at least 5 s less (never < 0)."""
    margin = max(gap * 0.1, timedelta(seconds=5))
    return max(gap - margin, timedelta(0))


def shortest_gap(cron: CronExpr, now: datetime, tz: tzinfo, count: int = FIRE_TIMES) -> timedelta:
    """The shortest time between two consecutive ones of the next `count` fire times after `now`."""
    times = [cron.next_after(now, tz)]
    for _ in range(count - 1):
        times.append(cron.next_after(times[-1], tz))
    return min(later - earlier for earlier, later in itertools.pairwise(times))


# --- checking values -------------------------------------------------------------


def check_text(name: str, value: str) -> str:
    """Return `value` if it can go into a crontab line, else raise `InputError` naming it.

    Line breaks and NUL would end the line (or the file) early, so they are
    refused; so is text that is not UTF-8 (a lone surrogate from argv).
    """
    for char, what in _FORBIDDEN.items():
        if char in value:
            raise errors.InputError(
                f"invalid {name} {value!r}: it contains {what}, which cannot go into a crontab"
            )
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise errors.InputError(f"invalid {name} {value!r}: it is not UTF-8 text") from None
    return value


def check_user(user: str) -> str:
    """Return `user` if it is a plausible user name for `crontab -u`, else raise `InputError`."""
    check_text("user name", user)
    if not user or user.startswith("-") or any(c.isspace() or c in "#:/" for c in user):
        raise errors.InputError(
            f"invalid user name {user!r}: expected a login name (no spaces, '#', ':' or '/', "
            "not starting with '-')"
        )
    return user


# --- the job line --------------------------------------------------------------


def shell_quote(arg: str) -> str:
    """`arg` quoted for `/bin/sh` with `shlex.quote`, made safe for a crontab line.

    The shell reads the result as `arg`. Two spans are spelled otherwise: a
    `#` becomes `'\\#'`, since crontab tools (python-crontab among them) take a
    ` #` for the start of a comment; and a backslash before a `%` is kept apart
    from it by `''`, since Debian cron would read `\\\\%` as an escaped
    backslash and a bare `%`.
    """
    return shlex.quote(arg).replace("\\%", "\\''%").replace("#", "'\\#'")


def escape_percent(command: str) -> str:
    """`command` with every `%` escaped as `\\%` (cron turns a bare one into a line break).

    Meant for `shell_quote`'s output, where no backslash comes right before a `%`.
    """
    return command.replace("%", "\\%")


def cron_unescape(command: str) -> tuple[str, str | None]:
    """What Debian cron hands to the shell for the command part of a line, and its stdin.

    The same walk as cron's `do_command`: `\\%` becomes `%`; the first bare `%`
    ends the command, and what follows (bare `%` as line breaks) is its input.
    """
    out: list[str] = []
    escaped = False
    for index, char in enumerate(command):
        if escaped:
            escaped = False
            if char == "%":
                out[-1] = "%"
                continue
        elif char == "\\":
            escaped = True
        elif char == "%":
            rest = command[index + 1 :]
            return "".join(out), rest.replace("%", "\n")
        out.append(char)
    return "".join(out), None


def executable(argv0: str | None = None, python: str | None = None) -> tuple[str, ...]:
    """The absolute command that runs this taskcron: the console script, else `python -m taskcron`.

    `argv0` (default `sys.argv[0]`) counts as the console script when it is an
    executable file named `taskcron`.
    """
    argv0 = sys.argv[0] if argv0 is None else argv0
    python = sys.executable if python is None else python
    script = Path(argv0)
    if argv0 and script.name == "taskcron" and script.is_file() and os.access(script, os.X_OK):
        return (str(script.absolute()),)
    if not python:
        raise errors.TaskcronError("cannot tell which Python interpreter runs taskcron")
    return (str(Path(python).absolute()), "-m", "taskcron")


def describe_scope(scope: Scope) -> str:
    """`scope` in words for messages: 'all module ids' or its options."""
    if not scope.modules and not scope.excepts:
        return "all module ids"
    words = [f"--module {m}" for m in scope.modules] + [f"--except {m}" for m in scope.excepts]
    return "scope " + " ".join(words)


def marker(home: Path, scope: Scope) -> str:
    """The comment line that names a job's home and scope (without a line break)."""
    payload = {"home": str(home), "modules": list(scope.modules), "except": list(scope.excepts)}
    # python-crontab reads a comment holding `=` as a commented-out variable, and then
    # loses the job's marker; `=` only occurs inside the JSON strings, so escape it there.
    return MARKER + json.dumps(payload, ensure_ascii=False).replace("=", "\\u003d")


def parse_marker(line: str) -> tuple[Path, Scope] | None:
    """The home and scope a marker line names, or None for any other line."""
    if not line.startswith(MARKER):
        return None
    try:
        payload = json.loads(line[len(MARKER) :])
        home, modules, excepts = payload["home"], payload["modules"], payload["except"]
        if not isinstance(home, str) or not isinstance(modules, list):
            return None
        if not isinstance(excepts, list):
            return None
        if not all(isinstance(m, str) for m in [*modules, *excepts]):
            return None
        return Path(home), Scope.parse(modules, excepts)
    except (ValueError, TypeError, KeyError, errors.InputError):
        return None


@value
class CronJob:
    """One crontab job that runs `taskcron tick` for a home and a scope."""

    schedule: str  #: Five fields, as written into the crontab.
    home: Path  #: Absolute.
    scope: Scope  #: Normalised: sorted, without duplicates.
    budget: str  #: The `--budget` value.
    executable: tuple[str, ...]  #: The absolute command that runs taskcron.
    config: Path | None = None  #: The absolute config file in effect, if any.
    mail: bool = False  #: Leave the output to cron (which mails it) instead of cron.log.
    user: str | None = None  #: The user field of an /etc/cron.d-style line.
    drain: bool = False  #: The tick drains: due tasks one after another until the budget ends.
    heartbeat: str | None = None  #: The URL the tick pings (`tick --heartbeat`).

    @property
    def log_path(self) -> Path:
        """Where the job's output is appended (unless `mail`)."""
        return self.home / "cron.log"

    @property
    def argv(self) -> tuple[str, ...]:
        """The command the shell runs, as words."""
        args = [*self.executable, "--home", str(self.home)]
        if self.config is not None:
            args += ["--config", str(self.config)]
        args.append("tick")
        if self.drain:
            args.append("--drain")
        for module in self.scope.modules:
            args += ["--module", module]
        for module in self.scope.excepts:
            args += ["--except", module]
        args += ["--budget", self.budget]
        if self.heartbeat is not None:
            args += ["--heartbeat", self.heartbeat]
        return tuple(args)

    @property
    def command(self) -> str:
        """The shell command cron hands to `/bin/sh -c` (before `%` is escaped)."""
        words = [shell_quote(arg) for arg in self.argv]
        if not self.mail:
            words += [">>", shell_quote(str(self.log_path)), "2>&1"]
        return " ".join(words)

    @property
    def marker(self) -> str:
        """The comment line before the job line."""
        return marker(self.home, self.scope)

    @property
    def line(self) -> str:
        """The job line: schedule, the user field for /etc/cron.d form, the escaped command."""
        user = "" if self.user is None else f"{self.user} "
        return f"{self.schedule} {user}{escape_percent(self.command)}"

    @property
    def block(self) -> str:
        """The marker and the job line, each ending in a line break: what goes into a crontab."""
        return f"{self.marker}\n{self.line}\n"


def build(
    *,
    home: Path,
    scope: Scope,
    every: str | None = None,
    cron: str | None = None,
    budget: str | None = None,
    config: Path | None = None,
    mail: bool = False,
    user: str | None = None,
    now: datetime,
    tz: tzinfo,
    command: Sequence[str] | None = None,
    drain: bool = False,
    heartbeat: str | None = None,
) -> CronJob:
    """The checked job for `home` and `scope`, every `every` or on `cron` (exactly one).

    The default budget is the period (for `cron`, the shortest gap between its
    next 100 fire times after `now` in `tz`) less 10%, at least 5 s less.
    `command` overrides how taskcron is run (default: `executable()`). Raises
    `InputError` for a bad period, expression, budget, user or any value
    holding a line break or NUL; the line is read back as cron and
    python-crontab would read it before it is returned.
    """
    if (every is None) == (cron is None):
        raise errors.InputError("give exactly one of --every PERIOD or --cron EXPR")
    check_text("home", str(home))
    if config is not None:
        check_text("config file", str(config))
    if user is not None:
        check_user(user)
    if every is not None:
        schedule, gap = period_schedule(every)
    else:
        assert cron is not None
        schedule, parsed = cron_schedule(cron)
        gap = shortest_gap(parsed, now, tz)
    if budget is None:
        budget = format_duration(default_budget(gap))
    else:
        check_text("budget", budget)
        parse_duration(budget)
        budget = budget.strip()
    if heartbeat is not None:
        check_text("heartbeat URL", heartbeat)
        check_url(heartbeat)
    exe = tuple(command) if command is not None else executable()
    for part in exe:
        check_text("taskcron executable", part)
    job = CronJob(
        schedule=schedule,
        home=home.absolute(),
        scope=scope,
        budget=budget,
        executable=exe,
        config=None if config is None else config.absolute(),
        mail=mail,
        user=user,
        drain=drain,
        heartbeat=heartbeat,
    )
    check_job(job)
    return job


def check_job(job: CronJob) -> None:
    """Read `job`'s line back as cron and python-crontab would, or raise.

    `InputError` when the command is longer than Debian cron keeps;
    `TaskcronError` when the line would not mean what it says (a bug).
    """
    escaped = escape_percent(job.command)
    size = len(escaped.encode("utf-8"))
    if size > MAX_COMMAND:
        raise errors.InputError(
            f"the crontab command would be {size} bytes, and cron cuts commands at "
            f"{MAX_COMMAND}: use a shorter home or path"
        )
    expected = [*job.argv] + ([] if job.mail else [">>", str(job.log_path), "2>&1"])
    command, stdin = cron_unescape(escaped)
    if command != job.command or stdin is not None or shlex.split(command) != expected:
        raise errors.TaskcronError(f"the generated crontab line does not read back: {job.line!r}")
    items = parse_with_python_crontab(job.block, system=job.user is not None)
    if (
        len(items) != 1
        or not items[0].is_valid()
        or not items[0].is_enabled()
        or items[0].command != job.command
        or (job.user is not None and items[0].user != job.user)
        or items[0].slices.clean_render() != job.schedule
    ):
        raise errors.TaskcronError(
            f"python-crontab reads the generated line otherwise: {job.line!r}"
        )
    from croniter import croniter

    if not croniter.is_valid(job.schedule):
        raise errors.TaskcronError(f"croniter refuses the schedule {job.schedule!r}")


def parse_with_python_crontab(text: str, *, system: bool) -> list[Any]:
    """The jobs python-crontab reads in crontab text `text` (/etc/cron.d form when `system`).

    Parsing only: nothing is read from or written to a crontab. python-crontab's
    logging is silenced meanwhile.
    """
    # The third-party package, not taskcron.crontab: this import is absolute.
    from crontab import CronTab as PyCronTab

    logger = logging.getLogger("crontab")
    was = logger.disabled
    logger.disabled = True  # it logs the user's own odd lines; they are not ours to judge
    try:
        return list(PyCronTab(tab=text, user=False if system else None))
    finally:
        logger.disabled = was
