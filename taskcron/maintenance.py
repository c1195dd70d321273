"""Looking after a home: creating it (`init`), removing what has aged out (`prune`), and
copying its store to another (`migrate_store`)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Generator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from taskcron import config as config_module
from taskcron import configfile, errors, inputs, logstore
from taskcron.lifecycle import Event
from taskcron.model import Scope, iso
from taskcron.store import open_shared_log, open_store, redact, resolve_url, same_store
from taskcron.values import value

if TYPE_CHECKING:
    from taskcron.home import Home
    from taskcron.store import LogRow, SharedLog


#: Before every minute a store counts runs in: `migrate` copies them all.
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


class Pruned(NamedTuple):
    """What `prune` removed (or, on a dry run, would remove)."""

    tasks: int
    files: int  #: Rotated log files of this host.
    records: int | None = None  #: Records of the shared log; None when the store keeps none.
    runs: int = 0  #: The runs of the tasks, and the runs trimmed from the others.


@value
class InitResult:
    """What `init` found and made."""

    home: Path
    store: str  #: The store's URL, without any password.
    config: Path | None  #: The config file in effect before `init`, kept as it was.
    written: Path | None  #: The starter config file `init` wrote, if it wrote one.


@value
class MigrateResult:
    """What `migrate_store` copied, from where to where (URLs without any password)."""

    source: str
    target: str
    tasks: int
    runs: int
    #: Log records copied into the target's log table; None when it keeps none (SQLite).
    records: int | None = None
    #: Records of the source's log table left there, as the target keeps no log table.
    records_left: int = 0
    password_left_out: bool = False  #: The target URL had a password, which `target` leaves out.

    @property
    def config_line(self) -> str:
        """The config line that points taskcron at the target: `store = "URL"`."""
        return f"store = {json.dumps(self.target)}"  # a JSON string is a TOML basic string

    def to_json(self) -> dict[str, Any]:
        """`{"source", "target", "tasks", "runs", "log_records", "log_records_left",
        "config"}`; `log_records` is `records`, `config` is `config_line`."""
        return {
            "source": self.source,
            "target": self.target,
            "tasks": self.tasks,
            "runs": self.runs,
            "log_records": self.records,
            "log_records_left": self.records_left,
            "config": self.config_line,
        }


def init(home: Home) -> InitResult:
    """Create the home and the store, and a starter config file when none is found."""
    written = None
    if home.config.path is None:
        target = Path(configfile.CONFIG_FILE).absolute()
        try:
            with target.open("x", encoding="utf-8") as handle:
                handle.write(config_module.STARTER)
        except FileExistsError:
            pass
        except OSError as exc:
            raise errors.StoreError(f"cannot write {target}: {exc.strerror}") from exc
        else:
            written = target
    home.make(asked=True)
    home.store  # noqa: B018 - opening the store creates the store
    return InitResult(
        home=home.path, store=redact(home.store_url), config=home.config.path, written=written
    )


def prune(home: Home, older_than: timedelta | str | None, *, dry_run: bool) -> Pruned:
    """Remove (or count) what is older than `older_than` (see `TaskCron.prune`)."""
    if older_than is None:
        age = home.config.log.retention
    elif isinstance(older_than, timedelta):
        age = older_than
    else:
        age = inputs.parse_age(older_than)
    now = home.clock()
    before = now - age
    store = home.existing_store() if dry_run else home.store
    keep = home.config.history.retention()
    tasks, runs = (
        (0, 0) if store is None else store.prune(before=before, dry_run=dry_run, keep=keep, now=now)
    )
    files = logstore.prune_rotated(home.logstore, before, dry_run=dry_run)
    shared = home.shared_log
    records = None if shared is None else shared.prune(before=before, dry_run=dry_run)
    pruned = Pruned(tasks=tasks, files=files, records=records, runs=runs)
    if not dry_run:
        _record_pruned(home, pruned, before)
    return pruned


def _record_pruned(home: Home, pruned: Pruned, before: datetime) -> None:
    counts: dict[str, Any] = {"tasks": pruned.tasks, "runs": pruned.runs, "files": pruned.files}
    removed = f"{pruned.tasks} tasks, {pruned.runs} runs and {pruned.files} log files"
    if pruned.records is not None:
        counts["records"] = pruned.records
        removed = (
            f"{pruned.tasks} tasks, {pruned.runs} runs, {pruned.files} log files"
            f" and {pruned.records} log records"
        )
    home.recorder.emit(
        Event.STORE_PRUNED, message=f"removed {removed} older than {iso(before)}", **counts
    )


def migrate(home: Home, to: str) -> MigrateResult:
    """Copy every task and run, the runs counted and the log into the empty store at `to`
    (see `TaskCron.migrate_store`)."""
    url = resolve_url(to, base=Path.cwd(), where="--to")
    source = home.existing_store()
    if source is None:
        raise errors.StoreMissingError(redact(home.store_url))
    if same_store(url, source.url):
        raise errors.StoreURLError(
            f"invalid --to {redact(url)!r}: it is the current store; name another one"
        )
    running = source.running(Scope())
    if running:
        raise errors.TasksRunningError(tuple(sorted(task.id for task in running)))
    target_log = open_shared_log(url, host=home.recorder.host)
    shared = home.shared_log
    left = shared.count() if shared is not None and target_log is None else 0
    target = open_store(url, host=home.config.host)
    try:
        # Counts by module id, by minute and by name are few (minutes are kept two days):
        # read whole, before the tasks' snapshot, while no run can end (none runs).
        totals = source.outcome_totals()
        minutes = source.outcome_minutes(since=EPOCH)
        counters = source.counters()
        log = _LogCopy(home, target_log)
        with contextlib.closing(source.dump()) as tasks, contextlib.closing(log.rows()) as rows:
            copied, runs = target.restore(
                tasks, totals=totals, minutes=minutes, counters=counters, log=rows
            )
    finally:
        target.close()
        if target_log is not None:
            target_log.close()
    result = MigrateResult(
        source=source.url,
        target=target.url,
        tasks=copied,
        runs=runs,
        records=None if target_log is None else log.records,
        records_left=left,
        password_left_out=redact(url) != url,
    )
    _record_copied(home, result)
    return result


class _LogCopy:
    """The log records `migrate` copies, as rows of the target's shared log, counted as
    they are read: the source's shared log, else this home's log files. None for a
    target that keeps no shared log (SQLite: its log is each home's log files)."""

    def __init__(self, home: Home, target: SharedLog | None) -> None:
        self._home = home
        self._target = target
        self.records = 0  #: Records read so far (all of them, once the copy committed).

    def rows(self) -> Generator[LogRow, None, None]:
        """The rows to write, oldest first, read as they are needed."""
        if self._target is None:
            return
        shared = self._home.shared_log
        found = (
            shared.dump()
            if shared is not None
            else self._target.rows(logstore.iter_all(self._home.logstore))
        )
        with contextlib.closing(found) as rows:
            for row in rows:
                self.records += row.records
                yield row


def _record_copied(home: Home, result: MigrateResult) -> None:
    fields: dict[str, Any] = {"tasks": result.tasks, "runs": result.runs}
    copied = f"{result.tasks} tasks and {result.runs} runs"
    if result.records is not None:
        fields["records"] = result.records
        copied = f"{result.tasks} tasks, {result.runs} runs and {result.records} log records"
    if result.records_left:
        fields["records_left"] = result.records_left
    home.recorder.emit(
        Event.STORE_COPIED,
        message=f"copied {copied} to {result.target}",
        target=result.target,
        **fields,
    )
