"""Where a command's settings and tasks are: the config file, the home, a SQLite store.

The part of the configuration every command needs first, kept light (it
imports nothing of taskcron but its errors) so that an idle tick can find its
store before the rest of taskcron loads (see `taskcron.idle`); `taskcron.config`
reads the rest of the file. Precedence: command-line option, then environment,
then the config file, then the default.
"""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

from taskcron import errors

ENV_HOME = "TASKCRON_HOME"
ENV_CONFIG = "TASKCRON_CONFIG"
ENV_STORE = "TASKCRON_STORE"
ENV_HOST = "TASKCRON_HOST"
ENV_WEB_TOKEN = "TASKCRON_WEB_TOKEN"
DEFAULT_HOME = ".taskcron"
CONFIG_FILE = "taskcron.toml"
STORE_FILE = "tasks.db"  #: The default store's file name inside the home.
SQLITE_PREFIX = "sqlite:///"


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
    chosen = home if home is not None else os.environ.get(ENV_HOME) or None
    if chosen is not None:
        return Path(chosen).expanduser().absolute()
    if found is None:
        return Path(DEFAULT_HOME).absolute()
    if "home" in found.values:
        written = Path(string_value(found.values, "home")).expanduser()
        return (found.path.parent / written).absolute()
    return found.path.parent / DEFAULT_HOME


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


def sqlite_path(url: str) -> str:
    """The file path of a `sqlite:///` URL, as written (relative or absolute).

    Everything after `sqlite:///` is the path, taken literally: a home may hold
    `%`, `#` or `?`, which a general URL parser would read as escapes, a
    fragment or a query.
    """
    if not url.startswith(SQLITE_PREFIX):
        raise errors.StoreURLError(
            f"invalid store URL {url!r}: expected sqlite:///relative/path or "
            "sqlite:////absolute/path"
        )
    path = url[len(SQLITE_PREFIX) :]
    if not path or path.endswith("/"):
        raise errors.StoreURLError(f"invalid store URL {url!r}: it names no file")
    if path == ":memory:":
        raise errors.StoreURLError(
            f"invalid store URL {url!r}: an in-memory store would vanish with each command"
        )
    return path


def sqlite_url(url: str, base: Path) -> str:
    """A `sqlite:///` URL with its path made absolute against `base`."""
    path = Path(sqlite_path(url)).expanduser()
    return SQLITE_PREFIX + str((base / path).absolute())


def default_url(home: Path) -> str:
    """The store URL used when none is set: `tasks.db` in the home."""
    return SQLITE_PREFIX + str((home / STORE_FILE).absolute())
