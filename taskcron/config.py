"""Configuration: finding the config file, reading it, and resolving the home and store.

Precedence for every setting: command-line option, then environment, then the
config file, then the default. The config file is `--config` /
`TASKCRON_CONFIG`, else the nearest `taskcron.toml`, or `pyproject.toml` with a
`[tool.taskcron]` table, in the current directory or a parent (as git and ruff
find theirs; in one directory `taskcron.toml` wins). Keys are the same in both;
relative paths in it are relative to the file, and without a `home` key the
home is `.taskcron` beside it.

A file found by that walk which is owned by neither this user nor root, or
that others can write, is skipped with a warning: its `modules` would be
imported and run.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from taskcron import errors
from taskcron.locate import (
    DEFAULT_HOME,
    ENV_HOST,
    ENV_WEB_TOKEN,
    FROM_FILE,
    check_table,
    find_config_file,
    home_of,
    store_choice,
    string_value,
)
from taskcron.model import LOG_LEVELS, Lanes
from taskcron.schedule import zone
from taskcron.syntax import parse_duration, parse_module_id


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryConfig:
    """How long a failed task waits before its next attempt."""

    backoff: timedelta = timedelta(seconds=10)  #: The first wait; it doubles per attempt.
    max_backoff: timedelta = timedelta(hours=1)  #: The longest wait.


@dataclass(frozen=True, slots=True, kw_only=True)
class LogConfig:
    """The log store's settings."""

    level: str = "info"
    max_bytes: int = 10 * 1024 * 1024
    backups: int = 5
    retention: timedelta = timedelta(days=30)
    output_tail: int = 65536


@dataclass(frozen=True, slots=True, kw_only=True)
class WebConfig:
    """The dashboard's settings (`taskcron web`, config table `[web]`)."""

    host: str = "127.0.0.1"  #: The address it binds.
    port: int = 8765
    token: str | None = None  #: Lets a request see and act; TASKCRON_WEB_TOKEN overrides it.
    read_token: str | None = None  #: Lets a request see only.
    stylesheet: Path | None = None  #: A CSS file served after the built-in one.
    script: Path | None = None  #: A JavaScript file served after the built-in one.


@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    """Settings in effect, with defaults for whatever the file did not set."""

    path: Path | None = None  #: The config file read, if any.
    home: Path = field(default_factory=lambda: Path(DEFAULT_HOME).absolute())
    #: The store URL (`sqlite:///...`, resolved to an absolute path); None: `<home>/tasks.db`.
    store: str | None = None
    #: Where `store` came from when not from the config file ("--store" or
    #: "TASKCRON_STORE") and it differs from the file's; None otherwise.
    store_origin: str | None = None
    #: This host's name in leases, pools and log records; None: the node name.
    host: str | None = None
    modules: tuple[str, ...] = ()  #: Python modules to import so their `@task`s register.
    pythonpath: tuple[Path, ...] = ()  #: Directories put on sys.path, after the config's own.
    timezone: str | None = None
    budget: timedelta | None = None  #: A tick's default budget; None means no deadline.
    lease: timedelta = timedelta(seconds=30)
    kill_grace: timedelta = timedelta(seconds=10)
    retry: RetryConfig = field(default_factory=RetryConfig)
    log: LogConfig = field(default_factory=LogConfig)
    workers: int = 1  #: The size of `work`'s pool and of a draining tick's.
    poll: timedelta = timedelta(seconds=1)  #: How often an idle `work` looks for due tasks.
    lanes: Lanes = field(default_factory=Lanes)  #: Widened lanes: module id -> tasks at once.
    max_steps: int = 10_000  #: A job that asks to continue more often than this fails.
    web: WebConfig = field(default_factory=WebConfig)  #: The dashboard's settings.
    #: What was wrong but not fatal while finding the config (a file skipped as unsafe).
    warnings: tuple[str, ...] = ()

    @property
    def directory(self) -> Path | None:
        """The config file's directory: first on sys.path when importing task code."""
        return None if self.path is None else self.path.parent

    @property
    def import_paths(self) -> tuple[Path, ...]:
        """Directories to put first on sys.path, in order, for task code."""
        first = () if self.directory is None else (self.directory,)
        return first + self.pythonpath


def system_timezone() -> str:
    """The IANA name of the system's time zone: $TZ, else /etc/localtime's target, else UTC."""
    candidates = [os.environ.get("TZ", "").lstrip(":")]
    with contextlib.suppress(OSError):
        candidates.append(str(Path("/etc/localtime").readlink()).partition("zoneinfo/")[2])
    with contextlib.suppress(OSError):
        candidates.append(Path("/etc/timezone").read_text().strip())
    for name in candidates:
        if not name:
            continue
        try:
            zone(name)
        except errors.InputError:
            continue
        return name
    return "UTC"


def load(
    config: str | os.PathLike[str] | None = None,
    *,
    home: str | os.PathLike[str] | None = None,
    store: str | None = None,
) -> Config:
    """Read the config file in effect and resolve the home and the store URL.

    `config`, `home` and `store` are the command-line values; None means
    "consult the environment, then the file, then the default".
    """
    warnings: list[str] = []
    found = find_config_file(config, warnings=warnings)
    path = None if found is None else found.path
    settings = _parse({} if found is None else found.values, path)
    settings["home"] = home_of(found, home)
    chosen = store_choice(found, store)
    if chosen is not None and chosen.origin != FROM_FILE:  # the file's was read with the rest
        url = resolve_store(chosen.url, chosen.base, chosen.origin)
        if url != settings.get("store"):
            settings["store_origin"] = chosen.origin
        settings["store"] = url
    chosen_host = os.environ.get(ENV_HOST) or None
    if chosen_host is not None:
        settings["host"] = _host(chosen_host, ENV_HOST)
    chosen_token = os.environ.get(ENV_WEB_TOKEN) or None
    if chosen_token is not None:
        web = settings.get("web", WebConfig())
        settings["web"] = replace(web, token=_token(chosen_token, ENV_WEB_TOKEN))
    return Config(path=path, warnings=tuple(warnings), **settings)


def resolve_store(url: str, base: Path, where: str) -> str:
    """A store URL with a relative SQLite path made absolute against `base`."""
    from taskcron.store import resolve_url

    return resolve_url(url, base=base, where=where)


def _parse(values: Mapping[str, Any], path: Path | None) -> dict[str, Any]:
    base = path.parent if path is not None else Path.cwd()
    out: dict[str, Any] = {}
    known = {
        "home",
        "store",
        "host",
        "modules",
        "pythonpath",
        "timezone",
        "budget",
        "lease",
        "kill_grace",
        "retry",
        "log",
        "workers",
        "poll",
        "lanes",
        "max_steps",
        "web",
    }
    _refuse_unknown(values, known, "")
    if "home" in values:
        out["home"] = (base / Path(_string(values, "home")).expanduser()).absolute()
    if "store" in values:
        out["store"] = resolve_store(_string(values, "store"), base, FROM_FILE)
    if "host" in values:
        out["host"] = _host(_string(values, "host"), "config key 'host'")
    if "modules" in values:
        out["modules"] = tuple(_string_list(values, "modules"))
    if "pythonpath" in values:
        out["pythonpath"] = tuple(
            (base / Path(p).expanduser()).absolute() for p in _string_list(values, "pythonpath")
        )
    if "timezone" in values:
        out["timezone"] = _timezone(_string(values, "timezone"))
    for key in ("budget", "lease", "kill_grace"):
        if key in values:
            out[key] = _duration(values, key)
    if "max_steps" in values:
        out["max_steps"] = _positive_int(values, "max_steps")
    if "workers" in values:
        out["workers"] = _positive_int(values, "workers")
    if "poll" in values:
        out["poll"] = _duration(values, "poll")
        if out["poll"] <= timedelta(0):
            raise errors.ConfigError("config key 'poll' must be more than zero")
    if "lanes" in values:
        out["lanes"] = _lanes(check_table(values["lanes"], "lanes"))
    if "retry" in values:
        table = check_table(values["retry"], "retry")
        _refuse_unknown(table, {"backoff", "max_backoff"}, "retry.")
        out["retry"] = RetryConfig(
            **{k: _duration(table, k, "retry.") for k in ("backoff", "max_backoff") if k in table}
        )
    if "log" in values:
        table = check_table(values["log"], "log")
        _refuse_unknown(
            table, {"level", "max_bytes", "backups", "retention", "output_tail"}, "log."
        )
        log: dict[str, Any] = {}
        if "level" in table:
            level = _string(table, "level", "log.")
            if level not in LOG_LEVELS:
                raise errors.ConfigError(
                    f"config key 'log.level' must be one of {', '.join(LOG_LEVELS)}, not {level!r}"
                )
            log["level"] = level
        for key in ("max_bytes", "backups", "output_tail"):
            if key in table:
                log[key] = _non_negative_int(table, key, "log.")
        if "retention" in table:
            log["retention"] = _duration(table, "retention", "log.")
        out["log"] = LogConfig(**log)
    if "web" in values:
        out["web"] = _web(check_table(values["web"], "web"), base)
    return out


def _web(table: Mapping[str, Any], base: Path) -> WebConfig:
    known = {"host", "port", "token", "read_token", "stylesheet", "script"}
    _refuse_unknown(table, known, "web.")
    web: dict[str, Any] = {}
    if "host" in table:
        web["host"] = _host(_string(table, "host", "web."), "config key 'web.host'")
    if "port" in table:
        port = _positive_int(table, "port", "web.")
        if port > 65535:
            raise errors.ConfigError("config key 'web.port' must be a port number, 1 to 65535")
        web["port"] = port
    for key in ("token", "read_token"):
        if key in table:
            web[key] = _token(_string(table, key, "web."), f"config key 'web.{key}'")
    if web.get("token") is not None and web.get("token") == web.get("read_token"):
        raise errors.ConfigError("config keys 'web.token' and 'web.read_token' must differ")
    for key in ("stylesheet", "script"):
        if key in table:
            web[key] = (base / Path(_string(table, key, "web.")).expanduser()).absolute()
    return WebConfig(**web)


def _token(value: str, where: str) -> str:
    """A dashboard token: at least 16 printable ASCII characters, no spaces."""
    if len(value) < 16 or not all(33 <= ord(c) < 127 for c in value):
        raise errors.ConfigError(
            f"invalid token ({where}): expected at least 16 printable ASCII characters, no spaces"
        )
    return value


def _host(value: str, where: str) -> str:
    """A host name for leases: 1 to 255 printable characters, no spaces."""
    if not 0 < len(value) <= 255 or not value.isprintable() or any(c.isspace() for c in value):
        raise errors.ConfigError(
            f"invalid host {value!r} ({where}): expected 1 to 255 printable characters, no spaces"
        )
    return value


def _refuse_unknown(values: Mapping[str, Any], known: set[str], prefix: str) -> None:
    for key in values:
        if key not in known:
            import difflib  # only for a mistake: the tick need not load it

            close = difflib.get_close_matches(key, sorted(known), n=1)
            hint = f"did you mean {prefix + close[0]!r}?" if close else ""
            raise errors.ConfigError(
                f"unknown config key {prefix + key!r}: "
                + (hint or f"known keys are {', '.join(sorted(known))}")
            )


_string = string_value


def _string_list(values: Mapping[str, Any], key: str, prefix: str = "") -> list[str]:
    value = values[key]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise errors.ConfigError(f"config key {prefix + key!r} must be a list of strings")
    return value


def _positive_int(values: Mapping[str, Any], key: str, prefix: str = "") -> int:
    value = values[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise errors.ConfigError(f"config key {prefix + key!r} must be a positive integer")
    return value


def _lanes(table: Mapping[str, Any]) -> Lanes:
    widths = {}
    for key in table:
        try:
            module = parse_module_id(key)
        except errors.ModuleIdError as exc:
            raise errors.ConfigError(f"config key 'lanes.{key}': {exc}") from None
        widths[module] = _positive_int(table, key, "lanes.")
    return Lanes(widths)


def _non_negative_int(values: Mapping[str, Any], key: str, prefix: str = "") -> int:
    value = values[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise errors.ConfigError(f"config key {prefix + key!r} must be a non-negative integer")
    return value


def _duration(values: Mapping[str, Any], key: str, prefix: str = "") -> timedelta:
    value = values[key]
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise errors.ConfigError(
            f'config key {prefix + key!r} must be a duration such as "90s" or a number'
        )
    try:
        return parse_duration(value)
    except errors.DurationError as exc:
        raise errors.ConfigError(f"config key {prefix + key!r}: {exc}") from None


def _timezone(name: str) -> str:
    try:
        zone(name)
    except errors.InputError as exc:
        raise errors.ConfigError(f"config key 'timezone': {exc}") from None
    return name


STARTER = """\
# taskcron configuration. Every key is shown with its default; uncomment to change.
# Relative paths are relative to this file. Durations are strings with a unit
# ("90s", "5m", "1h30m") or a number of seconds; sizes are integers of bytes.

# Where the store (tasks.db) and the log store (log/) live.
# The --home option and TASKCRON_HOME override it.
# home = ".taskcron"

# Where the tasks live, as a URL: "sqlite:////var/lib/app/tasks.db" (absolute,
# four slashes) or "sqlite:///tasks.db" (relative to this file). Unset means
# tasks.db in the home. The --store option and TASKCRON_STORE override it.
# A PostgreSQL store, shared by several hosts: "postgresql://user@host/db"
# (keep its password in ~/.pgpass or PGPASSWORD, not here).
# store = "sqlite:///.taskcron/tasks.db"

# This host's name in leases and log records (default: the node name).
# TASKCRON_HOST overrides it.
# host = "worker-1"

# Python modules to import so that their @taskcron.task handlers are registered.
# modules = ["myapp.tasks"]

# Extra directories for sys.path when importing task code. This file's own
# directory always comes first, so a tick started by cron from / finds your code.
# pythonpath = []

# Time zone for cron expressions (an IANA name); the system's when unset.
# timezone = "Europe/Berlin"

# A tick's default budget: the deadline a task sees. Unset means no deadline.
# Under `taskcron work`, each task's deadline is its start plus this.
# budget = "50s"

# How long a running task's lease lasts before another tick may recover it.
# lease = "30s"

# How long a task gets after SIGTERM before SIGKILL, when it timed out or its
# tick was stopped by SIGTERM, SIGINT or SIGHUP.
# kill_grace = "10s"

# How many tasks a pool runs at once: `taskcron work`, and `tick --drain`.
# workers = 1

# How often an idle `taskcron work` looks for due tasks.
# poll = "1s"

# A long job runs in steps (`raise taskcron.Continue()`, or exit 75 for a
# command); one that asks to continue more often than this fails.
# max_steps = 10000

[lanes]
# Every module id is a lane that runs one task at a time, in order. Widen the
# lanes of a subtree here: each module id under "mail" may run 8 tasks at once.
# The most specific entry wins.
# "mail" = 8

[retry]
# The wait before a failed task's next attempt; it doubles per attempt (±20%).
# backoff = "10s"
# max_backoff = "1h"

[web]
# The dashboard, `taskcron web`. Every request needs a token; without one here
# (or in TASKCRON_WEB_TOKEN) a random one is made at each start. A read token
# sees but cannot act. Binding another address than the loopback needs a token.
# host = "127.0.0.1"
# port = 8765
# token = "a long random string"
# read_token = "another long random string"
# stylesheet = "dashboard.css"   # served after the built-in styles
# script = "dashboard.js"        # served after the built-in script

[log]
# level = "info"          # debug, info, warning or error
# max_bytes = 10485760    # rotate the log file at this size
# backups = 5             # rotated files to keep
# retention = "30d"       # what prune removes: finished one-off tasks and old logs
# output_tail = 65536     # bytes of each run's output kept with the run
"""
