"""A home: its settings, its clock, and the stores and logs it opens on first use.

`TaskCron` and the tick's composition (`taskcron.ticking`) share one `Home`, so
that a home is created, and a store opened or migrated, in one place.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from taskcron import config as config_module
from taskcron import configfile, errors
from taskcron.config import Config
from taskcron.inputs import int64
from taskcron.lifecycle import Event, Recorder
from taskcron.logstore import LogStore
from taskcron.schedule import RetryPolicy
from taskcron.store import SharedLog, Store, open_shared_log, open_store, resolve_url
from taskcron.values import replace

if TYPE_CHECKING:
    from taskcron.alerts import Teller

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The wall clock, timezone-aware UTC: `TaskCron`'s default clock."""
    return datetime.now(timezone.utc)


def ensure_home(path: Path) -> bool:
    """Create the home (mode 0700) if it does not exist; safe when racing other processes.

    True when this call created it.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        path.mkdir(mode=0o700)
    except FileExistsError:
        if not path.is_dir():
            raise errors.StoreError(f"home {path} exists and is not a directory") from None
        return False
    except OSError as exc:
        raise errors.StoreError(f"cannot create home {path}: {exc.strerror}") from exc
    path.chmod(0o700)  # mkdir's mode is filtered by the umask
    return True


def load_config(
    home: str | os.PathLike[str] | None,
    config: Config | str | os.PathLike[str] | None,
    store: str | None,
) -> Config:
    """The settings `--home`, `--config` and `--store` mean (see `TaskCron`)."""
    if not isinstance(config, Config):
        found = config_module.load(config, home=home, store=store)
    else:
        found = config
        if home is not None:
            found = replace(config, home=Path(home).expanduser().absolute(), home_by_default=False)
        if store is not None and store != config.store:
            url = resolve_url(store, base=Path.cwd(), where="--store")
            found = replace(found, store=url, store_origin="--store")
    if "\0" in str(found.home):
        raise errors.InputError(f"invalid home {str(found.home)!r}: it contains a NUL byte")
    return found


class Home:
    """A home's settings and clock, its recorder, and its store, log store and shared log,
    each opened on first use and closed by `close`."""

    def __init__(self, config: Config, clock: Clock) -> None:
        self.config = config
        self.clock = clock
        self.policy = RetryPolicy(first=config.retry.backoff, cap=config.retry.max_backoff)
        self.recorder = Recorder(
            lambda: self.logstore,
            clock,
            host=config.host or os.uname().nodename,
            shared=lambda: self.shared_log,
        )
        if config.alerts:
            self.recorder.alerting = self._teller
        self._store: Store | None = None
        self._logstore: LogStore | None = None
        self._shared_log: SharedLog | None = None
        self._shared_log_opened = False

    @property
    def path(self) -> Path:
        """The directory that holds the log store, lock files and default store."""
        return self.config.home

    @property
    def store_url(self) -> str:
        """Where the tasks live: the configured URL, else `tasks.db` in the home."""
        return self.config.store or configfile.default_url(self.path)

    @property
    def store(self) -> Store:
        """The task store, opened (and the home and store created) on first use."""
        if self._store is None:
            created = ensure_home(self.path)
            try:
                self._store = self._open(create=True)
            except errors.TaskcronError:
                if created:  # a store that cannot be opened leaves nothing behind
                    with contextlib.suppress(OSError):
                        self.path.rmdir()
                raise
            if created:
                self._created()
        return self._store

    def make(self, *, asked: bool = False) -> None:
        """Create the home if missing (see `_created`; `asked`: by `init`, which says
        what it made itself)."""
        if ensure_home(self.path) and not asked:
            self._created()

    def _created(self) -> None:
        """Warn of a home made where nothing named one (the last fallback, `./.taskcron`,
        holding the store): a cron line that lacks its `--config` would otherwise make a
        new, empty store in the wrong place and succeed there forever."""
        if self.config.home_by_default:
            log.warning("created a new home at %s", self.path)

    def _open(self, *, create: bool) -> Store:
        store = open_store(self.store_url, create=create, host=self.config.host)
        if store.migrated_from is not None:
            self.recorder.emit(
                Event.STORE_MIGRATED,
                message=f"store migrated from schema {store.migrated_from} to "
                f"{store.schema_version}",
                from_version=store.migrated_from,
                to_version=store.schema_version,
            )
        return store

    def existing_store(self) -> Store | None:
        """The store, for reading: never created. None when the home has no store yet.

        With no home at all (or no store at a configured URL) it is a
        `StoreMissingError`: a command run from the wrong directory says so.
        """
        if self._store is not None:
            return self._store
        if self.config.store is None:
            self.require()  # a configured store says for itself that it is missing
        try:
            self._store = self._open(create=False)
        except errors.StoreMissingError:
            if self.config.store is not None:
                raise
            return None  # a home without tasks.db yet: nothing scheduled
        return self._store

    def stored(self, task_id: int) -> Store:
        """The store, for reading or acting on task `task_id`: never created."""
        int64("task id", task_id)  # no store can hold a larger one, and SQLite refuses it
        store = self.existing_store()
        if store is None:
            raise errors.TaskNotFoundError(task_id)
        return store

    def require(self) -> None:
        """Refuse a home that is missing or not a directory."""
        if self.path.exists() and not self.path.is_dir():
            raise errors.StoreError(f"home {self.path} exists and is not a directory")
        if not self.path.is_dir():
            path = self.config.path
            usable = "usable " if self.config.warnings else ""  # one was skipped, and said so
            why = (
                f"no {usable}config file in {Path.cwd()} or its parents"
                if path is None
                else str(path)
            )
            raise errors.HomeMissingError(str(self.path), why)

    @property
    def logstore(self) -> LogStore:
        """The log store in `<home>/log/`."""
        if self._logstore is None:
            settings = self.config.log
            self._logstore = LogStore(
                self.path / "log",
                level=settings.level,
                max_bytes=settings.max_bytes,
                backups=settings.backups,
            )
        return self._logstore

    @property
    def shared_log(self) -> SharedLog | None:
        """The log of every host sharing the store (a PostgreSQL store's `log` table); None
        for a store that keeps none (SQLite). Every record goes there too."""
        if not self._shared_log_opened:
            self._shared_log = open_shared_log(self.store_url, host=self.recorder.host)
            self._shared_log_opened = True
        return self._shared_log

    def _teller(self, queued: bool) -> Teller:
        """What sends the alerts the recorder's records decide (`Recorder.alerting`)."""
        from taskcron.alerts import Teller

        recorder = self.recorder
        return Teller(
            self.config,
            host=recorder.host,
            note=lambda task_id, sent, **kw: self.store.note_alerted(task_id, sent, **kw),
            report=recorder.alert_delivery,
            queued=queued,
        )

    def close(self) -> None:
        """Wait for the alerts still queued (each rule's timeout at most), then close the
        store and the shared log."""
        if self.recorder.teller is not None:
            longest = max(rule.timeout for rule in self.config.alerts).total_seconds()
            self.recorder.close_alerts(longest + 1)
        if self._store is not None:
            self._store.close()
            self._store = None
        if self._shared_log is not None:
            self._shared_log.close()
