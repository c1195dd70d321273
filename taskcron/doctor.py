"""`taskcron check`: whether a home can work, and what is broken; it creates nothing."""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from taskcron import configfile, errors
from taskcron.config import Config
from taskcron.home import Home
from taskcron.model import Scope, State, format_duration, iso
from taskcron.store import Store, redact
from taskcron.values import value

Checks = list["Check"]


@value
class Check:
    """One item of `taskcron check`."""

    name: str
    ok: bool
    detail: str


@value
class CheckReport:
    """What `taskcron check` found."""

    config: Path | None
    home: Path
    checks: tuple[Check, ...]

    @property
    def ok(self) -> bool:
        """True when nothing is broken."""
        return all(c.ok for c in self.checks)

    def to_json(self) -> dict[str, Any]:
        """`{"ok", "config", "home", "checks": [{"name", "ok", "detail"}]}`."""
        return {
            "ok": self.ok,
            "config": None if self.config is None else str(self.config),
            "home": str(self.home),
            "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in self.checks],
        }


def broken_config_report(error: errors.TaskcronError) -> CheckReport:
    """What `taskcron check` reports when the config itself cannot be read."""
    check = Check(name="config", ok=False, detail=str(error))
    return CheckReport(config=None, home=Path(configfile.DEFAULT_HOME).absolute(), checks=(check,))


def check(
    home: Home, *, max_tick_age: timedelta | None = None, scope: Scope | None = None
) -> CheckReport:
    """Check that this home can work, and say what is broken; never creates anything.

    It imports the configured modules (listing the task names they
    register), resolves the target of every queued, paused or recurring
    task, runs the store's integrity check, checks that the log directory
    is writable, reports whether a crontab line for this home is
    installed (not required: ticks run another way need none), and, when
    the config has alert rules, whether Apprise can use their `notify` URLs.
    With `max_tick_age`, a tick of `scope` (default: every module id) must have
    run on this host within that time (`taskcron.tickmarks`).
    """
    checks = [_check_config(home.config), _check_home(home.config)]
    checks += _check_code(home)
    if home.path.is_dir() or home.config.store is not None:
        store_check, store = _check_store(home)
        checks.append(store_check)
        if store is not None:
            checks += _check_targets(home, store)
            checks.append(_check_missed(home, store))
    checks.append(_check_writable("log", home.path / "log"))
    checks.append(_check_crontab(home))
    if home.config.alerts:
        checks.append(_check_alerts(home.config))
    if max_tick_age is not None:
        checks.append(_check_last_tick(home, scope or Scope(), max_tick_age))
    return CheckReport(config=home.config.path, home=home.path, checks=tuple(checks))


def _check_code(home: Home) -> Checks:
    from taskcron import handlers

    handlers.add_import_paths(home.config.import_paths)
    try:
        names = handlers.registered(home.config.modules)
    except errors.HandlerError as exc:
        return [Check(name="modules", ok=False, detail=str(exc))]
    except Exception as exc:
        detail = f"importing the configured modules failed: {type(exc).__name__}: {exc}"
        return [Check(name="modules", ok=False, detail=detail)]
    imported = (
        "imported " + ", ".join(home.config.modules)
        if home.config.modules
        else "no modules configured"
    )
    listed = ", ".join(names) or "none"
    return [Check(name="modules", ok=True, detail=f"{imported}; tasks: {listed}")]


def _check_store(home: Home) -> tuple[Check, Store | None]:
    where = redact(home.store_url)
    try:
        store = home.existing_store()
    except errors.TaskcronError as exc:
        return Check(name="store", ok=False, detail=str(exc)), None
    if store is None:
        return Check(name="store", ok=True, detail=f"{where}: not created yet (no tasks)"), None
    problems = store.integrity()
    if problems:
        return Check(name="store", ok=False, detail=f"{where}: {'; '.join(problems)}"), store
    detail = f"{where}: {store.about()}, schema {store.schema_version}, integrity ok"
    return Check(name="store", ok=True, detail=detail), store


def _check_targets(home: Home, store: Store) -> Checks:
    from taskcron import handlers

    listed = store.list(scope=Scope(), states=(State.QUEUED, State.PAUSED, State.RUNNING))
    waiting = [t for t in listed if t.state is not State.RUNNING or t.recurrence is not None]
    broken = []
    for task in waiting:
        try:
            handlers.resolve(task.target, modules=home.config.modules, cwd=home.config.directory)
        except errors.HandlerError as exc:
            broken.append(Check(name=f"task {task.id}", ok=False, detail=f"{task.module}: {exc}"))
    count = len(waiting)
    summary = (
        f"{count - len(broken)} of {count} waiting tasks resolve" if count else "no waiting tasks"
    )
    return [Check(name="targets", ok=not broken, detail=summary), *broken]


def _check_missed(home: Home, store: Store) -> Check:
    """Whether a recurring task waits past its `missed_after` (found so by a tick, or not
    yet): broken, naming the first few."""
    now = home.clock()
    missed = store.missed(now, limit=6)
    if not missed:
        return Check(name="missed runs", ok=True, detail="none")
    said = ", ".join(
        f"task {t.id} ({t.module}) due {iso(t.missed_since or t.due_at)}" for t in missed[:5]
    )
    more = " and more" if len(missed) > 5 else ""
    return Check(name="missed runs", ok=False, detail=said + more)


def _check_crontab(home: Home) -> Check:
    """Whether a crontab job ticks this home, and whether the program it runs exists."""
    from taskcron import crontab

    try:
        jobs = crontab.jobs_for_home(crontab.open_crontab().read(), home.path)
    except errors.TaskcronError as exc:
        return Check(name="crontab", ok=True, detail=f"cannot read the crontab: {exc}")
    if not jobs:
        return Check(
            name="crontab",
            ok=True,
            detail="no crontab job ticks this home (none is needed when tasks run by "
            "`taskcron work`, a systemd timer or by hand)",
        )
    found = []
    for _, words in jobs:
        program = Path(words[0]) if words else Path()
        runnable = program.is_file() and os.access(program, os.X_OK)
        found.append(f"{program} ({'exists' if runnable else 'MISSING'})")
    missing = any(text.endswith("(MISSING)") for text in found)
    return Check(name="crontab", ok=not missing, detail="installed: " + ", ".join(found))


def _check_last_tick(home: Home, scope: Scope, max_age: timedelta) -> Check:
    """Whether a tick of `scope` ran on this host within `max_age`, by its mark: broken
    when it is older, or missing (no such tick has run here, or the home is not this one)."""
    from taskcron import cronline, tickmarks

    said, limit = cronline.describe_scope(scope), format_duration(max_age)
    last = tickmarks.last_tick(home.path, scope.modules, scope.excepts)
    if last is None:
        mark = home.path / tickmarks.DIRECTORY / tickmarks.scope_name(scope.modules, scope.excepts)
        return Check(
            name="last tick",
            ok=False,
            detail=f"no tick of {said} has run on this host ({mark} is missing):"
            " is its crontab line installed, and does it name this home?",
        )
    when = datetime.fromtimestamp(round(last), timezone.utc)
    age = max(home.clock() - when, timedelta(0))
    ago = f"{format_duration(timedelta(seconds=round(age.total_seconds())))} ago, at {iso(when)}"
    if age > max_age:
        return Check(
            name="last tick",
            ok=False,
            detail=f"no tick of {said} has run on this host within {limit}: the last ran {ago}",
        )
    return Check(name="last tick", ok=True, detail=f"a tick of {said} ran {ago} (within {limit})")


def _check_alerts(config: Config) -> Check:
    """Whether Apprise can use every `notify` URL of the alert rules (no alert is sent:
    `taskcron alerts test` sends one)."""
    from taskcron import alerts

    problems = alerts.check_urls(config.alerts)
    if problems:
        return Check(name="alerts", ok=False, detail="; ".join(problems))
    said = [
        f"{rule.name} ({', '.join(c.label for c in alerts.channels(rule))})"
        for rule in config.alerts
    ]
    return Check(name="alerts", ok=True, detail=f"{len(said)} rule(s): " + ", ".join(said))


def _check_config(config: Config) -> Check:
    """The config file in use; broken when one was ignored as unsafe (its settings, and the
    home it names, are not in effect)."""
    found = "none found: defaults" if config.path is None else str(config.path)
    detail = "; ".join([found, *config.warnings])
    return Check(name="config", ok=not config.warnings, detail=detail)


def _check_home(config: Config) -> Check:
    """Whether the home exists, and, when nothing named it, that it is the last fallback."""
    home = config.home
    exists = home.is_dir()
    detail = f"{home} {'exists' if exists else 'does not exist'}"
    if config.home_by_default:
        detail += (
            " (no config names a home: no --home, TASKCRON_HOME, --config or config file"
            " found, so it is ./.taskcron here)"
        )
    if not exists:
        detail += ": run 'taskcron init' to create it"
    return Check(name="home", ok=exists, detail=detail)


def _check_writable(name: str, directory: Path) -> Check:
    """Whether files can be written in `directory`, or in its nearest existing parent."""
    existing = directory
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing.is_dir() and os.access(existing, os.W_OK | os.X_OK):
        how = "is writable" if existing == directory else f"can be created in {existing}"
        return Check(name=name, ok=True, detail=f"{directory} {how}")
    return Check(name=name, ok=False, detail=f"cannot write to {existing}")
