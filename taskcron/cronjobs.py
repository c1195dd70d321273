"""A home's crontab job: the line that runs `taskcron tick` for a scope, generated,
installed and uninstalled (composing `cronline`, which writes the line, and `crontab`,
which reads and rewrites a crontab under a lock)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, TypedDict

from taskcron import errors, inputs
from taskcron.config import system_timezone
from taskcron.model import Scope
from taskcron.store import redact
from taskcron.values import replace, value

if TYPE_CHECKING:
    from taskcron.home import Home

CRONTAB_LOCK = "crontab.lock"  #: In the home: held while a crontab is read and rewritten.


@value
class CronEdit:
    """What `generate_cron` or `uninstall_cron` made, and did to a crontab."""

    where: str  #: The crontab, in words ("your crontab", a file's path).
    scope: str  #: The scope, in words.
    job: str | None = None  #: The marker and job lines, for `generate_cron`.
    text: str | None = None  #: The crontab's whole text as left (or, on a dry run, as it would be).
    removed: int = 0  #: Jobs of this home and scope taken out (replaced, on install).
    written: bool = False  #: Whether the crontab was written.


class CronOptions(TypedDict, total=False):
    """What `generate_cron` takes; each is optional."""

    modules: Iterable[str]  #: The scope's module ids (default: every module).
    excepts: Iterable[str]  #: ... and those left out of it.
    every: str | None  #: How often the job runs: a period such as `5m` (default every minute).
    cron: str | None  #: ... or a cron expression.
    budget: str | None  #: How long each tick may take (default: the config's).
    mail: bool  #: Let cron mail the output (default: appended to `<home>/cron.log`).
    drain: bool  #: Each tick runs due tasks one after another until its budget ends.
    heartbeat: str | None  #: The URL each tick pings (`tick --heartbeat`; default: the config's).
    install: bool  #: Put the job in the crontab, replacing this home and scope's job.
    crontab_file: str | None  #: A crontab file to edit instead of the user's crontab.
    user: str | None  #: Whose crontab (or the user a system crontab's line runs as).
    dry_run: bool  #: Write nothing; return the crontab's text as it would be left.


def generate(
    home: Home,
    *,
    modules: Iterable[str] = (),
    excepts: Iterable[str] = (),
    every: str | None = None,
    cron: str | None = None,
    budget: str | None = None,
    mail: bool = False,
    drain: bool = False,
    heartbeat: str | None = None,
    install: bool = False,
    crontab_file: str | None = None,
    user: str | None = None,
    dry_run: bool = False,
) -> CronEdit:
    """The job for `home` and the scope, installed on ask (see `TaskCron.generate_cron`)."""
    from taskcron import cronline, crontab

    _store_in_config_file(home)
    scope = Scope.parse(modules, excepts)
    cronline.check_text("home", str(home.path))
    tab = crontab.open_crontab(file=crontab_file, user=user)
    job = cronline.build(
        drain=drain,
        home=home.path,
        scope=scope,
        every=every,
        cron=cron,
        budget=budget,
        config=home.config.path,
        mail=mail,
        user=user if crontab_file is not None else None,
        now=home.clock(),
        tz=inputs.zone(system_timezone()),
        heartbeat=heartbeat,
    )
    edit = CronEdit(where=tab.describe(), scope=cronline.describe_scope(scope), job=job.block)
    if dry_run:
        change = crontab.install(job, tab, lock=None, dry_run=True)
        return replace(edit, text=change.text, removed=change.removed)
    home.make()  # the job appends to <home>/cron.log: the directory must exist
    if not install:
        return edit
    change = crontab.install(job, tab, lock=home.path / CRONTAB_LOCK)
    return replace(edit, text=change.text, removed=change.removed, written=True)


def uninstall(
    home: Home,
    *,
    modules: Iterable[str] = (),
    excepts: Iterable[str] = (),
    crontab_file: str | None = None,
    user: str | None = None,
    dry_run: bool = False,
) -> CronEdit:
    """Take the job of `home` and the scope out (see `TaskCron.uninstall_cron`)."""
    from taskcron import cronline, crontab

    scope = Scope.parse(modules, excepts)
    cronline.check_text("home", str(home.path))
    tab = crontab.open_crontab(file=crontab_file, user=user)
    if not dry_run:
        home.make()
    lock = home.path / CRONTAB_LOCK
    change = crontab.uninstall(home.path, scope, tab, lock=lock, dry_run=dry_run)
    return CronEdit(
        where=tab.describe(),
        scope=cronline.describe_scope(scope),
        text=change.text,
        removed=change.removed,
        written=change.written,
    )


def _store_in_config_file(home: Home) -> None:
    """Refuse a store named outside the config file: a crontab line names only that file.

    A store URL is never written into a crontab line, where every local user
    may read it (with its password) in `ps`.
    """
    config = home.config
    origin, url = config.store_origin, config.store
    if origin is None or url is None:
        return
    shown = redact(url)
    where = config.path or "the config file (taskcron.toml)"
    if shown != url:
        raise errors.InputError(
            f"the store URL from {origin} holds a password, which a crontab line must"
            f" not: put store = {json.dumps(shown)} in {where} and the password in"
            " ~/.pgpass (or PGPASSWORD in the crontab)"
        )
    raise errors.InputError(
        f"the store from {origin} is not the config file's, and a crontab line names only"
        f" the config file: put store = {json.dumps(url)} in {where}"
    )
