"""The `taskcron` command (the console script, and `python -m taskcron`).

cron runs `taskcron tick` every minute, and most minutes nothing is due: such
a tick is answered here, from the store, before click and the rest of
taskcron load. `idle_tick` reads the command line, the settings and the store
with the same code the full command uses (`taskcron.inputs`,
`taskcron.configfile`, `taskcron.store.sqlite_line`), and answers only a plain tick of a
SQLite store that is certainly idle, once every setting has been read and
checked as the full command checks it. Anything else, including every mistake, goes
to `taskcron.cli`, which handles it as it always does.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

#: The options `idle_tick` reads, before and after `tick`; any other argument is the CLI's.
_GLOBAL = {"--home": "home", "--config": "config", "--store": "store"}
_TICK = {
    "--module": "modules",
    "-m": "modules",
    "--except": "excepts",
    "-x": "excepts",
    "--budget": "budget",
    "--heartbeat": "heartbeat",
}


def main() -> None:
    """Answer an idle tick here, or run the command line through the CLI."""
    if idle_tick(sys.argv[1:]):
        sys.exit(0)
    from taskcron.cli import main as cli_main

    cli_main()


def idle_tick(argv: Sequence[str]) -> bool:
    """True when `argv` is a plain `tick` whose scope has nothing due and nothing running
    in a SQLite store; it then did all that tick would have done (nothing)."""
    parsed = _parse(argv)
    if parsed is None:
        return False
    try:
        return _idle(parsed)
    except Exception:
        return False  # the CLI says what is wrong, in its words (a traceback only with --debug)


def _parse(argv: Sequence[str]) -> dict[str, list[str]] | None:
    """The values of a plain tick's options, by name; None for any other command line."""
    values: dict[str, list[str]] = {}
    names, rest = _GLOBAL, list(argv)
    while rest:
        word = rest.pop(0)
        if word == "tick" and names is _GLOBAL:
            names = _TICK
            continue
        option, equals, value = word.partition("=")
        if option not in names or (equals and option.startswith("-") and len(option) == 2):
            return None
        if not equals:
            if not rest:
                return None
            value = rest.pop(0)
        values.setdefault(names[option], []).append(value)
    return values if names is _TICK else None


def _idle(parsed: dict[str, list[str]]) -> bool:
    from taskcron import configfile, inputs, tickmarks
    from taskcron.store import sqlite_line

    once = ("home", "config", "store", "budget", "heartbeat")
    if any(len(parsed.get(name, ())) > 1 for name in once):
        return False
    if os.environ.get(configfile.ENV_DEBUG):
        return False  # it is --debug, which click reads (and may refuse)
    modules = inputs.parse_module_list(parsed.get("modules", ()))
    excepts = inputs.parse_module_list(parsed.get("excepts", ()))
    for budget in parsed.get("budget", ()):
        inputs.parse_duration(budget)
    found = configfile.read(
        _one(parsed, "config"), home=_one(parsed, "home"), store=_one(parsed, "store")
    )
    values = found.values
    if found.warnings or values.get("log", {}).get("level") == "debug":
        return False  # the CLI prints the warnings; a debug log records idle ticks
    home: Path = values["home"]
    url = values.get("store") or configfile.default_url(home)
    beat = _heartbeat(_one(parsed, "heartbeat"), values)
    if not (home.is_dir() and sqlite_line.idle_url(url, modules, excepts)):
        return False
    tickmarks.mark(home, modules, excepts)
    _touch_textfile(values.get("metrics", {}).get("textfile"))
    if beat is not None:
        beat()
    return True


def _heartbeat(url: str | None, values: dict[str, Any]) -> Callable[[], object] | None:
    """What pings the heartbeat (`url`, else the config's) after an idle tick, checked;
    None without a heartbeat, which then costs nothing."""
    table = values.get("heartbeat", {})
    url = table.get("url") if url is None else url
    if url is None:
        return None
    from taskcron import heartbeat

    heartbeat.check_url(url)
    timeout = table.get("timeout")
    return lambda: heartbeat.send(
        url,
        heartbeat.SUCCESS,
        home=values["home"],
        style=table.get("style"),
        timeout=None if timeout is None else timeout.total_seconds(),
        host=values.get("host"),
        log=values.get("log"),
    )


def _one(parsed: dict[str, list[str]], name: str) -> str | None:
    found = parsed.get(name)
    return found[0] if found else None


def _touch_textfile(path: Path | None) -> None:
    """An idle tick changes no metric: it moves the textfile's time only (node_exporter's
    `node_textfile_mtime_seconds`), and creates nothing."""
    if path is not None:
        try:  # noqa: SIM105 (contextlib is not loaded on the idle path)
            os.utime(path)
        except OSError:
            pass


if __name__ == "__main__":
    main()
