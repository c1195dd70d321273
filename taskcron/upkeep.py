"""TaskCron's methods for the log, housekeeping and crontab lines (`taskcron.api`): each
delegates in a few lines, as the rest of the API does."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from datetime import timedelta
from typing import TYPE_CHECKING

from taskcron import cronjobs, doctor, errors, logview, maintenance
from taskcron.config import Config
from taskcron.cronjobs import CronEdit, CronOptions
from taskcron.doctor import CheckReport
from taskcron.home import Home
from taskcron.inputs import parse_duration
from taskcron.logstore import LogFilter
from taskcron.logview import LogFeed, LogWhere, Records
from taskcron.maintenance import InitResult, MigrateResult, Pruned
from taskcron.model import Scope

if TYPE_CHECKING:
    from typing_extensions import Unpack  # in typing from Python 3.11

    from taskcron.store import WakeSource


class Upkeep:
    """The log, housekeeping and crontab part of `TaskCron` (its base class)."""

    _home: Home
    config: Config

    # --- the log and housekeeping --------------------------------------------

    def log(self, count: int = 20, **where: Unpack[LogWhere]) -> Records:
        """The last `count` log records that match, oldest first (see `taskcron log` and
        `LogWhere`).

        With a shared log (a PostgreSQL store), every host's records, in the
        order they reached it.
        """
        return logview.tail(self._home, count, self.log_filter(**where))

    def log_filter(self, **where: Unpack[LogWhere]) -> LogFilter:
        """The filter `log` applies, validated: module ids, level name, `since` time."""
        return logview.log_filter(self._home, **where)

    def follow_log(
        self,
        count: int = 20,
        *,
        keep: LogFilter | None = None,
        poll: float = 0.2,
        say: Callable[[bool, str], None] | None = None,
    ) -> Iterator[Records]:
        """The last `count` records that `keep` (from `log_filter`) lets through, then each
        batch of new ones as they are written: the active file across rotations, checked
        every `poll` seconds; with a shared log (a PostgreSQL store), every host's records
        as the store announces them, across restarts of its server (`say`: see
        `taskcron.outage`). It ends only when the caller stops iterating."""
        return logview.follow(self._home, count, keep or self.log_filter(), poll, say)

    def wake_source(self) -> WakeSource | None:
        """The store's `wake_source()`; None when it has no store yet. Creates nothing."""
        store = self._home.existing_store()
        return None if store is None else store.wake_source()

    def log_feed(self, keep: LogFilter | None = None) -> LogFeed:
        """The log records written from now on that `keep` lets through, as they come:
        each `poll()` of the returned feed gives the new ones without waiting."""
        return logview.feed(self._home, keep or self.log_filter())

    def prune(self, older_than: timedelta | str | None = None, *, dry_run: bool = False) -> Pruned:
        """Remove finished one-off tasks (with their runs), rotated logs and shared log
        records older than `older_than`; with `dry_run`, only count them.

        The default is the config's `log.retention`. A bare number (`"30"`) is
        refused as a `DurationError`: 30 what? Queued, running and paused tasks
        are never touched. A dry run creates nothing: with no home it is a
        `HomeMissingError`, as for `list`.
        """
        return maintenance.prune(self._home, older_than, dry_run=dry_run)

    def init(self) -> InitResult:
        """Create the home and the store, and a starter `./taskcron.toml` when no config is found.

        Safe to repeat: an existing config file is kept as it is.
        """
        return maintenance.init(self._home)

    def migrate_store(self, to: str) -> MigrateResult:
        """Copy every task and run, their counts and the log into the empty store at `to`.

        The current store is read on one snapshot and left untouched; the target (of
        any backend, created if missing) is written in one transaction, keeping task
        and run ids (ids handed out later follow them). The log goes into a target's
        log table: this store's, else this home's log files; a SQLite target has none
        (`records_left`). Refused, writing nothing, when a task is running here
        (`TasksRunningError`: stop the ticks first) or the target holds tasks
        (`StoreNotEmptyError`). Pools are not copied: they register again."""
        return maintenance.migrate(self._home, to)

    def check(
        self,
        *,
        max_tick_age: timedelta | str | None = None,
        modules: Iterable[str] = (),
        excepts: Iterable[str] = (),
    ) -> CheckReport:
        """Check that this home can work, and say what is broken; never creates anything.

        With `max_tick_age`, it is also broken when no tick of the scope
        `modules`/`excepts` has run on this host within that time. See
        `taskcron.doctor.check`.
        """
        age = max_tick_age
        if age is not None and not isinstance(age, timedelta):
            age = parse_duration(age)
        if age is not None and age <= timedelta(0):
            raise errors.InputError(f"invalid max tick age {max_tick_age!r}: must be more than 0s")
        scope = Scope.parse(modules, excepts)
        return doctor.check(self._home, max_tick_age=age, scope=scope)

    # --- cron ----------------------------------------------------------------

    def generate_cron(self, **options: Unpack[CronOptions]) -> CronEdit:
        """The crontab job that runs `taskcron tick` for this home and scope; installed on ask.

        `every` (a period such as `5m`) or `cron` (an expression) says when.
        With `install`, the job replaces this home and scope's job in the
        user's crontab (or `crontab_file`); with `dry_run`, nothing is written
        and the crontab's text as it would be left is returned. With `drain`, each
        tick runs due tasks one after another until its budget ends. A store
        named by `--store` or TASKCRON_STORE rather than the config file is
        refused: the job names only the config file. See `CronOptions`.
        """
        return cronjobs.generate(self._home, **options)

    def uninstall_cron(
        self,
        *,
        modules: Iterable[str] = (),
        excepts: Iterable[str] = (),
        crontab_file: str | None = None,
        user: str | None = None,
        dry_run: bool = False,
    ) -> CronEdit:
        """Take this home and scope's job out of the user's crontab (or `crontab_file`).

        A user's crontab left blank is removed. With `dry_run`, nothing is
        written and the crontab's text as it would be left is returned.
        """
        return cronjobs.uninstall(
            self._home,
            modules=modules,
            excepts=excepts,
            crontab_file=crontab_file,
            user=user,
            dry_run=dry_run,
        )
