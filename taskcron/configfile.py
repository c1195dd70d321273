"""The settings a command runs with, read and checked: the config file found, the
home, the store URL, and every key of the file, as plain values.

Precedence for every setting: command-line option, then environment, then the
config file, then the default. The config file is `--config` /
`TASKCRON_CONFIG`, else the nearest `taskcron.toml`, or `pyproject.toml` with a
`[tool.taskcron]` table, in the current directory or a parent (as git and ruff
find theirs; in one directory `taskcron.toml` wins). Keys are the same in both;
relative paths in it are relative to the file, and without a `home` key the
home is `.taskcron` beside it. A file found by that walk which is owned by
neither this user nor root, or that others can write, is skipped with a
warning: its `modules` would be imported and run.

It imports nothing of taskcron but its errors, `taskcron.inputs` and the store's
light face (store URLs), so that an idle tick can read and check its settings
before the rest of taskcron loads
(see `taskcron.__main__`); `taskcron.config` types them (`Config`).
"""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Callable, Mapping, Set
from datetime import timedelta
from pathlib import Path
from typing import Any, NamedTuple

from taskcron import errors
from taskcron.inputs import LOG_LEVELS, parse_age, parse_duration, parse_module_id, zone
from taskcron.store import file_url, resolve_url

ENV_HOME = "TASKCRON_HOME"
ENV_CONFIG = "TASKCRON_CONFIG"
ENV_STORE = "TASKCRON_STORE"
ENV_HOST = "TASKCRON_HOST"
ENV_WEB_TOKEN = "TASKCRON_WEB_TOKEN"
ENV_DEBUG = "TASKCRON_DEBUG"  #: The CLI's --debug (click reads it as a boolean).
DEFAULT_HOME = ".taskcron"
CONFIG_FILE = "taskcron.toml"
STORE_FILE = "tasks.db"  #: The default store's file name inside the home.
#: The shortest `lease`: a shorter one expires between its renewals, and another
#: tick would take the live task for dead.
MIN_LEASE = timedelta(seconds=1)
#: The keys a config file may hold (`taskcron.config` reads them all)...
KEYS = frozenset(
    {
        "home",
        "store",
        "host",
        "modules",
        "pythonpath",
        "timezone",
        "budget",
        "missed_after",
        "heartbeat",
        "lease",
        "kill_grace",
        "retry",
        "log",
        "workers",
        "poll",
        "lanes",
        "max_steps",
        "web",
        "history",
        "alerts",
        "metrics",
    }
)
#: ... and those its tables may hold (`lanes` holds module ids).
TABLE_KEYS = {
    "retry": frozenset({"backoff", "max_backoff"}),
    "log": frozenset({"level", "max_bytes", "backups", "retention", "output_tail"}),
    "history": frozenset({"keep_runs", "keep_for"}),
    "heartbeat": frozenset({"url", "style", "timeout"}),
    "web": frozenset(
        {
            "host",
            "port",
            "token",
            "read_token",
            "stylesheet",
            "script",
            "session_ttl",
            "max_streams",
            "url",
            "metrics_token",
        }
    ),
    "metrics": frozenset({"textfile"}),
}
#: The keys of each `[[alerts]]` rule (the list is not a table: `TABLE_KEYS` leaves it out).
ALERT_KEYS = frozenset(
    {
        "name",
        "modules",
        "except",
        "on",
        "notify",
        "command",
        "webhook",
        "cooldown",
        "repeat",
        "timeout",
    }
)
#: What an alert rule may be `on`, and what it is on when it does not say.
ALERT_EVENTS = ("failed", "recovered", "missed", "overrun", "interrupted")
DEFAULT_ALERT_ON = ("failed", "recovered", "missed")
#: Whose convention the heartbeat's pings follow (`heartbeat.style`), the default first.
HEARTBEAT_STYLES = ("healthchecks", "cronitor")


class Found(NamedTuple):
    """A config file in effect: its path, and the table of settings in it."""

    path: Path
    values: dict[str, Any]


def find_config_file(
    explicit: str | os.PathLike[str] | None = None,
    *,
    start: Path | None = None,
    warnings: list[str] | None = None,
) -> Found | None:
    """The config file in effect and its settings, or None when there is none.

    `explicit` (or `TASKCRON_CONFIG`) must exist. Otherwise the walk goes from
    `start` (default: the current directory) up to the root; a pyproject.toml
    without a `[tool.taskcron]` table does not stop it. An unsafe file found by
    the walk is skipped and a line saying so is added to `warnings`.
    """
    chosen = explicit if explicit is not None else os.environ.get(ENV_CONFIG) or None
    if chosen is not None:
        path = Path(chosen).expanduser().absolute()
        if path.is_dir():
            raise errors.ConfigError(
                f"config file {str(path)!r} is a directory: give the config file's path"
            )
        if not path.is_file():
            raise errors.ConfigError(f"config file {str(path)!r} does not exist")
        document = read_toml(path)
        if path.name != "pyproject.toml":
            return Found(path, document)
        table = _tool_table(document)
        if table is None:
            raise errors.ConfigError(f"{path} has no [tool.taskcron] table")
        return Found(path, table)
    directory = (start or Path.cwd()).absolute()
    for folder in (directory, *directory.parents):
        for name in (CONFIG_FILE, "pyproject.toml"):
            path = folder / name
            if not path.is_file():
                continue
            unsafe = _unsafe(path)
            if unsafe is not None:
                if warnings is not None:
                    warnings.append(f"ignoring config file {path}: {unsafe}")
                continue
            document = read_toml(path)
            if name == CONFIG_FILE:
                return Found(path, document)
            table = _tool_table(document)
            if table is not None:
                return Found(path, table)
    return None


def _unsafe(path: Path) -> str | None:
    """Why a config file found by the walk must not be trusted, or None."""
    try:
        info = path.stat()
    except OSError as exc:
        return f"cannot read it: {exc.strerror}"
    if info.st_uid not in (os.getuid(), 0):
        return f"it belongs to uid {info.st_uid}, neither you nor root"
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return "others can write to it"
    return None


def _tool_table(document: dict[str, Any]) -> dict[str, Any] | None:
    tool = document.get("tool", {})
    table = tool.get("taskcron") if isinstance(tool, dict) else None
    return None if table is None else check_table(table, "tool.taskcron")


def read_toml(path: Path) -> dict[str, Any]:
    """The TOML document at `path`; a `ConfigError` saying why when it cannot be read."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - exercised on 3.10 only
        import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]
    try:
        with path.open("rb") as handle:
            document: dict[str, Any] = tomllib.load(handle)
            return document
    except OSError as exc:
        raise errors.ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise errors.ConfigError(f"invalid config file {path}: {exc}") from exc


def check_table(value: Any, key: str) -> dict[str, Any]:
    """`value` as a table, or a `ConfigError` naming `key`."""
    if not isinstance(value, Mapping):
        raise errors.ConfigError(f"config key {key!r} must be a table")
    return dict(value)


def string_value(values: Mapping[str, Any], key: str, prefix: str = "") -> str:
    """The string at `key`, or a `ConfigError` naming `prefix + key`."""
    value = values[key]
    if not isinstance(value, str):
        raise errors.ConfigError(f"config key {prefix + key!r} must be a string")
    return value


def home_of(found: Found | None, home: str | os.PathLike[str] | None) -> Path:
    """The home: `home` (the command line), else `TASKCRON_HOME`, else the file's `home`
    key (relative to the file), else `.taskcron` beside the file or in the current
    directory."""
    chosen = _named_home(home)
    if chosen is not None:
        return Path(chosen).expanduser().absolute()
    if found is None:
        return Path(DEFAULT_HOME).absolute()
    if "home" in found.values:
        written = Path(string_value(found.values, "home")).expanduser()
        return (found.path.parent / written).absolute()
    return found.path.parent / DEFAULT_HOME


def _named_home(home: str | os.PathLike[str] | None) -> str | os.PathLike[str] | None:
    """The home named by the command line, else by `TASKCRON_HOME`; None when neither did."""
    return home if home is not None else os.environ.get(ENV_HOME) or None


#: Where a store URL came from when the config file's `store` key chose it.
FROM_FILE = "config key 'store'"


class StoreChoice(NamedTuple):
    """A store URL as chosen, before it is checked."""

    url: str
    base: Path  #: What a relative SQLite path in it is relative to.
    origin: str  #: "--store", `TASKCRON_STORE` or `FROM_FILE`.


def store_choice(found: Found | None, store: str | None) -> StoreChoice | None:
    """The store URL `store` (the command line), else `TASKCRON_STORE`, else the file's
    `store` key chose; None when none did (the default: `tasks.db` in the home)."""
    chosen = store if store is not None else os.environ.get(ENV_STORE) or None
    if chosen is not None:
        return StoreChoice(chosen, Path.cwd(), "--store" if store is not None else ENV_STORE)
    if found is not None and "store" in found.values:
        return StoreChoice(string_value(found.values, "store"), found.path.parent, FROM_FILE)
    return None


def default_url(home: Path) -> str:
    """The store URL used when none is set: `tasks.db` in the home."""
    return file_url(home / STORE_FILE)


class Settings(NamedTuple):
    """The settings in effect, checked, before `taskcron.config` types them."""

    path: Path | None  #: The config file read, if any.
    values: dict[str, Any]  #: Plain values by `Config` field; its tables as dicts.
    warnings: tuple[str, ...]  #: Config files skipped as unsafe.


def read(
    config: str | os.PathLike[str] | None = None,
    *,
    home: str | os.PathLike[str] | None = None,
    store: str | None = None,
) -> Settings:
    """Read and check the config file in effect, and resolve the home and the store URL.

    `config`, `home` and `store` are the command-line values; None means
    "consult the environment, then the file, then the default". A bad value
    anywhere is a `ConfigError` (a `StoreURLError` for a bad store URL).
    """
    warnings: list[str] = []
    found = find_config_file(config, warnings=warnings)
    path = None if found is None else found.path
    values = _check({} if found is None else found.values, path)
    values["home"] = home_of(found, home)
    chosen = store_choice(found, store)
    if found is None and _named_home(home) is None and chosen is None:
        # Nothing named the home, nor a store elsewhere: `./.taskcron` holds the tasks.
        values["home_by_default"] = True
    if chosen is not None and chosen.origin != FROM_FILE:  # the file's was checked above
        url = resolve_url(chosen.url, base=chosen.base, where=chosen.origin)
        if url != values.get("store"):
            values["store_origin"] = chosen.origin
        values["store"] = url
    chosen_host = os.environ.get(ENV_HOST) or None
    if chosen_host is not None:
        values["host"] = _host(chosen_host, ENV_HOST)
    chosen_token = os.environ.get(ENV_WEB_TOKEN) or None
    if chosen_token is not None:
        values["web"] = {**values.get("web", {}), "token": chosen_token}
    return Settings(path, values, tuple(warnings))


def _check(values: Mapping[str, Any], path: Path | None) -> dict[str, Any]:
    """The file's settings checked, as plain values by `Config` field (its tables as dicts)."""
    base = path.parent if path is not None else Path.cwd()
    out: dict[str, Any] = {}
    _refuse_unknown(values, KEYS, "")
    if "home" in values:
        out["home"] = (base / Path(string_value(values, "home")).expanduser()).absolute()
    if "store" in values:
        out["store"] = resolve_url(string_value(values, "store"), base=base, where=FROM_FILE)
    if "host" in values:
        out["host"] = _host(string_value(values, "host"), "config key 'host'")
    if "modules" in values:
        out["modules"] = tuple(_string_list(values, "modules"))
    if "pythonpath" in values:
        out["pythonpath"] = tuple(
            (base / Path(p).expanduser()).absolute() for p in _string_list(values, "pythonpath")
        )
    if "timezone" in values:
        out["timezone"] = _timezone(string_value(values, "timezone"))
    for key in ("budget", "lease", "kill_grace"):
        if key in values:
            out[key] = _duration(values, key)
    if "lease" in values and out["lease"] < MIN_LEASE:
        raise errors.ConfigError(
            f"config key 'lease' must be at least {MIN_LEASE.total_seconds():g}s,"
            f" not {values['lease']!r}"
        )
    if "missed_after" in values:
        missed_after = _duration(values, "missed_after")
        if missed_after < timedelta(0):
            raise errors.ConfigError("config key 'missed_after' must not be negative")
        out["missed_after"] = missed_after or None
    if "heartbeat" in values:
        out["heartbeat"] = _heartbeat(check_table(values["heartbeat"], "heartbeat"))
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
        _refuse_unknown(table, TABLE_KEYS["retry"], "retry.")
        out["retry"] = {
            k: _duration(table, k, "retry.") for k in ("backoff", "max_backoff") if k in table
        }
    if "log" in values:
        table = check_table(values["log"], "log")
        _refuse_unknown(table, TABLE_KEYS["log"], "log.")
        log: dict[str, Any] = {}
        if "level" in table:
            level = string_value(table, "level", "log.")
            if level not in LOG_LEVELS:
                raise errors.ConfigError(
                    f"config key 'log.level' must be one of {', '.join(LOG_LEVELS)}, not {level!r}"
                )
            log["level"] = level
        for key in ("max_bytes", "backups", "output_tail"):
            if key in table:
                log[key] = _non_negative_int(table, key, "log.")
        if "retention" in table:
            log["retention"] = _duration(table, "retention", "log.", read=parse_age)
        out["log"] = log
    if "web" in values:
        out["web"] = _web(check_table(values["web"], "web"), base)
    if "history" in values:
        out["history"] = _history(check_table(values["history"], "history"))
    if "alerts" in values:
        out["alerts"] = _alerts(values["alerts"])
    if "metrics" in values:
        out["metrics"] = _metrics(check_table(values["metrics"], "metrics"), base)
    return out


def _metrics(table: Mapping[str, Any], base: Path) -> dict[str, Any]:
    """The `[metrics]` table checked: the textfile's path, relative to the config file."""
    _refuse_unknown(table, TABLE_KEYS["metrics"], "metrics.")
    metrics: dict[str, Any] = {}
    if "textfile" in table:
        path = string_value(table, "textfile", "metrics.")
        if not path.endswith(".prom"):
            raise errors.ConfigError(
                "config key 'metrics.textfile' must name a .prom file (node_exporter reads"
                f" only those), not {path!r}"
            )
        metrics["textfile"] = (base / Path(path).expanduser()).absolute()
    return metrics


def _history(table: Mapping[str, Any]) -> dict[str, Any]:
    """The `[history]` table checked: a count of runs, and an age with its unit."""
    _refuse_unknown(table, TABLE_KEYS["history"], "history.")
    history: dict[str, Any] = {}
    if "keep_runs" in table:
        history["keep_runs"] = _non_negative_int(table, "keep_runs", "history.")
    if "keep_for" in table:
        history["keep_for"] = _duration(table, "keep_for", "history.", read=parse_age)
    return history


def _web(table: Mapping[str, Any], base: Path) -> dict[str, Any]:
    _refuse_unknown(table, TABLE_KEYS["web"], "web.")
    web: dict[str, Any] = {}
    if "host" in table:
        web["host"] = _host(string_value(table, "host", "web."), "config key 'web.host'")
    if "port" in table:
        port = _positive_int(table, "port", "web.")
        if port > 65535:
            raise errors.ConfigError("config key 'web.port' must be a port number, 1 to 65535")
        web["port"] = port
    for key in ("token", "read_token", "metrics_token"):
        if key in table:  # checked by `taskcron web` alone: see `check_tokens`
            web[key] = string_value(table, key, "web.")
    if web.get("token") is not None and web.get("token") == web.get("read_token"):
        raise errors.ConfigError("config keys 'web.token' and 'web.read_token' must differ")
    for key in ("stylesheet", "script"):
        if key in table:
            web[key] = (base / Path(string_value(table, key, "web.")).expanduser()).absolute()
    if "session_ttl" in table:
        web["session_ttl"] = _duration(table, "session_ttl", "web.")
        if web["session_ttl"] < timedelta(seconds=1):
            raise errors.ConfigError("config key 'web.session_ttl' must be at least 1s")
    if "max_streams" in table:
        web["max_streams"] = _positive_int(table, "max_streams", "web.")
    if "url" in table:
        web["url"] = _http_url(table, "url", "web.").rstrip("/")
    return web


def _alerts(value: Any) -> list[dict[str, Any]]:
    """The `[[alerts]]` rules checked in shape, each as a dict of its keys (those unset
    left out; `modules` and `except` as tuples of module ids). The Apprise URLs in
    `notify` are only checked to be strings here: reading them needs Apprise, which
    `taskcron check` and `taskcron alerts test` load."""
    if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
        raise errors.ConfigError("config key 'alerts' must be a list of tables ([[alerts]])")
    rules: list[dict[str, Any]] = []
    for index, table in enumerate(value):
        prefix = f"alerts[{index}]."
        _refuse_unknown(table, ALERT_KEYS, prefix)
        if "name" not in table:
            raise errors.ConfigError(f"config key {prefix + 'name'!r} is missing: name each rule")
        rule: dict[str, Any] = {"name": string_value(table, "name", prefix).strip()}
        if not rule["name"] or not rule["name"].isprintable():
            raise errors.ConfigError(f"config key {prefix + 'name'!r} must be a printable name")
        if any(r["name"] == rule["name"] for r in rules):
            raise errors.ConfigError(
                f"config key {prefix + 'name'!r}: another rule is named {rule['name']!r}"
            )
        for key, field in (("modules", "modules"), ("except", "excepts")):
            if key in table:
                rule[field] = tuple(
                    _alert_module(m, prefix + key) for m in _string_list(table, key, prefix)
                )
        if "on" in table:
            rule["on"] = tuple(_string_list(table, "on", prefix))
            unknown = [e for e in rule["on"] if e not in ALERT_EVENTS]
            if unknown or not rule["on"]:
                raise errors.ConfigError(
                    f"config key {prefix + 'on'!r} must list events among"
                    f" {', '.join(ALERT_EVENTS)}" + (f", not {unknown[0]!r}" if unknown else "")
                )
        if "notify" in table:
            rule["notify"] = tuple(_string_list(table, "notify", prefix))
        if "command" in table:
            rule["command"] = tuple(_string_list(table, "command", prefix))
            if not rule["command"] or not rule["command"][0]:
                raise errors.ConfigError(
                    f"config key {prefix + 'command'!r} must be a program and its arguments"
                )
        if "webhook" in table:
            rule["webhook"] = _http_url(table, "webhook", prefix)
        if not (rule.get("notify") or rule.get("command") or rule.get("webhook")):
            raise errors.ConfigError(
                f"config key {'alerts[' + str(index) + ']'!r} (rule {rule['name']!r}) sends"
                " nowhere: give it notify, command or webhook"
            )
        for key in ("cooldown", "repeat", "timeout"):
            if key in table:
                rule[key] = _duration(table, key, prefix)
                if rule[key] <= timedelta(0):
                    raise errors.ConfigError(f"config key {prefix + key!r} must be more than zero")
        rules.append(rule)
    return rules


def _alert_module(module: str, where: str) -> str:
    try:
        return parse_module_id(module)
    except errors.ModuleIdError as exc:
        raise errors.ConfigError(f"config key {where!r}: {exc}") from None


def _heartbeat(table: Mapping[str, Any]) -> dict[str, Any]:
    """The `[heartbeat]` table checked: an http(s) URL, a style, a timeout above zero."""
    _refuse_unknown(table, TABLE_KEYS["heartbeat"], "heartbeat.")
    heartbeat: dict[str, Any] = {}
    if "url" in table:
        heartbeat["url"] = _http_url(table, "url", "heartbeat.")
        if not heartbeat["url"].isprintable() or any(c.isspace() for c in heartbeat["url"]):
            raise errors.ConfigError("config key 'heartbeat.url' must not hold spaces")
    if "style" in table:
        heartbeat["style"] = string_value(table, "style", "heartbeat.")
        if heartbeat["style"] not in HEARTBEAT_STYLES:
            raise errors.ConfigError(
                f"config key 'heartbeat.style' must be one of {', '.join(HEARTBEAT_STYLES)},"
                f" not {heartbeat['style']!r}"
            )
    if "timeout" in table:
        heartbeat["timeout"] = _duration(table, "timeout", "heartbeat.")
        if heartbeat["timeout"] <= timedelta(0):
            raise errors.ConfigError("config key 'heartbeat.timeout' must be more than zero")
    return heartbeat


def _http_url(values: Mapping[str, Any], key: str, prefix: str) -> str:
    """An http:// or https:// URL with a host."""
    url = string_value(values, key, prefix).strip()
    scheme, _, rest = url.partition("://")
    if scheme.lower() not in ("http", "https") or not rest.split("/", 1)[0]:
        raise errors.ConfigError(
            f"config key {prefix + key!r} must be an http:// or https:// URL, not {url!r}"
        )
    return url


def check_tokens(
    token: str | None, read_token: str | None, metrics_token: str | None = None
) -> None:
    """A `ConfigError` unless each dashboard token given is at least 16 printable ASCII
    characters, no spaces. Only the dashboard checks them: a short token stops `taskcron
    web`, not the tick or any other command."""
    if token is not None:
        from_env = (os.environ.get(ENV_WEB_TOKEN) or None) == token
        _token(token, ENV_WEB_TOKEN if from_env else "config key 'web.token'")
    if read_token is not None:
        _token(read_token, "config key 'web.read_token'")
    if metrics_token is not None:
        _token(metrics_token, "config key 'web.metrics_token'")
        if metrics_token in (token, read_token):
            raise errors.ConfigError(
                "config key 'web.metrics_token' must differ from web.token and web.read_token"
            )


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


def _refuse_unknown(values: Mapping[str, Any], known: Set[str], prefix: str) -> None:
    for key in values:
        if key not in known:
            import difflib  # only for a mistake: the tick need not load it

            close = difflib.get_close_matches(key, sorted(known), n=1)
            hint = f"did you mean {prefix + close[0]!r}?" if close else ""
            raise errors.ConfigError(
                f"unknown config key {prefix + key!r}: "
                + (hint or f"known keys are {', '.join(sorted(known))}")
            )


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


def _lanes(table: Mapping[str, Any]) -> dict[str, int]:
    widths = {}
    for key in table:
        try:
            module = parse_module_id(key)
        except errors.ModuleIdError as exc:
            raise errors.ConfigError(f"config key 'lanes.{key}': {exc}") from None
        widths[module] = _positive_int(table, key, "lanes.")
    return widths


def _non_negative_int(values: Mapping[str, Any], key: str, prefix: str = "") -> int:
    value = values[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise errors.ConfigError(f"config key {prefix + key!r} must be a non-negative integer")
    return value


def _duration(
    values: Mapping[str, Any],
    key: str,
    prefix: str = "",
    read: Callable[[str | int | float], timedelta] = parse_duration,
) -> timedelta:
    value = values[key]
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise errors.ConfigError(
            f'config key {prefix + key!r} must be a duration such as "90s" or a number'
        )
    try:
        return read(value)
    except errors.DurationError as exc:
        raise errors.ConfigError(f"config key {prefix + key!r}: {exc}") from None


def _timezone(name: str) -> str:
    try:
        zone(name)
    except errors.InputError as exc:
        raise errors.ConfigError(f"config key 'timezone': {exc}") from None
    return name
