"""The `Store` protocol: what every task store promises.

A store keeps tasks and their runs and hands out due tasks by the order rule
(see `taskcron.order`). Every backend promises:

- **Atomic claims.** `claim_next` checks that nothing in scope is running
  (or, for a pool's claim, that the chosen task's lane has room), picks the
  next due task and marks it running under a lease in one transaction: two
  callers never claim the same task, two plain ticks of one scope never both
  get one, and no lane ever runs more tasks than its width, whoever claims.
- **One pool a scope on a host.** `register_pool` admits a pool only when no
  live pool on its host serves an overlapping scope.
- **No scans.** Choosing the next task costs at most logarithmically in the
  number of stored tasks (it may grow with the number of module ids that have
  queued tasks and with the distinct priorities inside the chosen one).
- **Leases.** A running task carries the host, machine id, pid and expiry of
  the process that runs it. A claim first recovers running tasks in its scope
  whose lease expired, or whose pid is gone on this machine (same host name
  and same machine id): their run is recorded `interrupted` and the task goes
  where `decide` says.
- **Fenced finishes.** `finish_run` records a run's end only while the run is
  still the task's current, leased run; a run that was recovered meanwhile is
  left as recovered.
- **Nothing on bad input.** A failing call changes nothing.
- **Moves keep everything.** `dump` reads every task with its runs on one
  snapshot; `restore` writes such tasks into an empty store in one
  transaction, keeping their ids and every field, and the ids the store
  hands out afterwards come after the highest one restored.

The records (`NewTask`, `Lease`, `Claim`, ...) are the values the stores take
and give; `taskcron.store` opens a store by URL and names them all.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple, Protocol

from taskcron.model import (
    Lanes,
    Next,
    Outcome,
    Progress,
    Recurrence,
    Retention,
    Run,
    RunEnd,
    Scope,
    State,
    Target,
    Task,
)
from taskcron.values import field, value

#: How long the per-minute counts of runs (`Store.outcome_minutes`) are kept.
MINUTES_KEPT = timedelta(days=2)

#: Where a task goes after a run ended with an outcome at a time.
Decide = Callable[[Task, Outcome, datetime], "Next | tuple[State, datetime]"]
#: Where a task goes when it is skipped at a time, being later than its max lateness.
Skip = Callable[[Task, datetime], "Next | tuple[State, datetime]"]


@value
class NewTask:
    """What `Store.schedule` needs to create a task."""

    module: str
    title: str
    target: Target
    data_json: str = "null"
    priority: int = 0
    due_at: datetime
    max_attempts: int = 1
    timeout: timedelta | None = None
    recurrence: Recurrence | None = None
    max_lateness: timedelta | None = None
    key: str | None = None  #: Return the queued, running or paused task of this module and key.
    owner: str | None = None  #: Who the task belongs to (a web session, a user, a tenant).
    keep_runs: int | None = None  #: Runs kept of it; None: the config's.
    missed_after: timedelta | None = None  #: Missed when this late (None: never).


class PruneCount(NamedTuple):
    """What `Store.prune` deleted (or, on a dry run, would delete)."""

    tasks: int
    runs: int  #: The runs of those tasks, and the runs trimmed from the others.


class LogRow(NamedTuple):
    """A row of a store's shared log: one record, or output lines written at once (the
    first record with every message under `lines`). What `SharedLog.dump` reads and
    `Store.restore` writes."""

    at: datetime  #: The record's time (its `ts`).
    host: str
    level: str
    event: str
    task_id: int | None
    module: str | None
    record: str  #: The record as JSON text.
    records: int  #: How many records it holds: its `lines`, else 1.


@value
class Lease:
    """Who holds a running task, and until when."""

    host: str
    pid: int
    expires_at: datetime
    machine: str = ""  #: `machine_id()` of the host: tells containers with one host name apart.
    #: The monotonic clock when `expires_at` was set: its holder counts the lease from
    #: this moment, whatever the wall clock does meanwhile.
    taken_at: float = field(default_factory=time.monotonic)


@value
class OutcomeTotal:
    """The runs of a module id's tasks that ended with one outcome, ever: kept apart from
    the runs, so that trimming, `prune` and `remove` leave them."""

    module: str
    outcome: str
    runs: int
    seconds: float  #: Their durations summed.
    #: How many fell in each duration bucket (`taskcron.model.DURATION_BUCKETS`, then
    #: one bucket for the longer ones).
    buckets: tuple[int, ...]


@value
class OutcomeMinute:
    """The runs of a module id's tasks that ended with one outcome in one minute."""

    minute: datetime  #: The minute's start (UTC).
    module: str
    outcome: str
    runs: int
    seconds: float  #: Their durations summed.


@value
class Counter:
    """One of the store's counters (`Store.counters`), kept by the writes that cause it:
    `missed` (missed runs found, labels `module`), `alerts` (alerts decided, labels `rule`
    and `channel`)."""

    name: str
    labels: Mapping[str, str]
    value: int


@value
class RecurringTask:
    """A recurring task as metrics show it (`Store.recurring`)."""

    id: int
    module: str
    key: str | None
    state: str
    due_at: datetime
    #: When its newest run that ended done ended (trimming keeps that run).
    succeeded_at: datetime | None


@value
class PoolLease:
    """A pool (a draining tick of more than one worker, or `work`) serving a scope on a host."""

    host: str
    pid: int
    scope: Scope
    expires_at: datetime
    machine: str = ""  #: `machine_id()` of the host.
    id: int | None = None  #: Set once registered.


class ClaimOutcome(str, enum.Enum):
    """What a claim found."""

    CLAIMED = "ran"  #: A task was claimed (and will run).
    IDLE = "idle"  #: Nothing in scope is due.
    BUSY = "busy"  #: A task in scope is running.


@value
class Recovered:
    """A run found dead by a claim, and its task as it was left."""

    task: Task
    run: Run


@value
class Claim:
    """The answer of `Store.claim_next`."""

    outcome: ClaimOutcome
    task: Task | None = None  #: The claimed task (CLAIMED) or the running one (BUSY).
    run: Run | None = None  #: The run just opened, for CLAIMED.
    recovered: tuple[Recovered, ...] = ()
    skipped: tuple[Task, ...] = ()  #: Due tasks passed over for being too late, as left.
    lease: Lease | None = None  #: The lease the claimed run is held under, for CLAIMED.


Tasks = list[Task]


class Store(Protocol):
    """A task store. Times are aware UTC datetimes; ids are positive integers."""

    #: The host this store's caller runs on, as leases and pools name it.
    host: str
    #: This machine's identity (`machine_id()`).
    machine: str

    #: The schema version the store was at when opened, if opening migrated it; else None.
    migrated_from: int | None
    #: The schema version this taskcron writes.
    schema_version: int
    #: Where the store is, as a URL without any password: safe to print.
    url: str

    def integrity(self) -> list[str]:
        """Problems a quick consistency check of the store finds; empty when it is sound."""
        ...

    def about(self) -> str:
        """The engine behind the store, for `check` (its version; a server's round trip)."""
        ...

    def schedule(self, new: NewTask, *, now: datetime) -> Task:
        """Add a queued task and return it; with a key, the one already waiting if any."""
        ...

    def schedule_or_find(self, new: NewTask, *, now: datetime) -> tuple[Task, bool]:
        """`schedule`, saying whether the task returned was there already (True) rather
        than added: with a key, a queued, running or paused task of the same module id
        and key is returned unchanged."""
        ...

    def get(self, task_id: int, *, runs: int | None = None) -> Task:
        """The task with its runs, oldest first (its newest `runs` only, if given), or
        `TaskNotFoundError`."""
        ...

    def get_run(self, run_id: int) -> Run:
        """One run by id, or `StoreError`."""
        ...

    def list(
        self, *, scope: Scope, states: Iterable[State], owner: str | None = None
    ) -> list[Task]:
        """Tasks in scope and in one of `states` (and of `owner`, if given), in line order."""
        ...

    def page(
        self,
        *,
        scope: Scope,
        states: Iterable[State],
        owner: str | None = None,
        limit: int,
        offset: int = 0,
    ) -> Tasks:
        """`list`'s tasks from the `offset`-th on, at most `limit`, without their runs.

        Read along indexes: a page costs its offset and length, not the number of tasks.
        """
        ...

    def cancel_owned(self, owner: str, *, now: datetime) -> Tasks:
        """Cancel every queued or paused task of `owner` in one transaction; return them."""
        ...

    def transition(
        self,
        task_id: int,
        *,
        action: str,
        allowed: Iterable[State],
        to: State,
        now: datetime,
        reset_attempts: bool = False,
        due_at: datetime | None = None,
        sooner_only: bool = False,
    ) -> Task:
        """Move a task from one of `allowed` to `to` (and to `due_at`, if given; with
        `sooner_only`, only if that is earlier than its due time).

        A task in any other state is refused with `StateError` naming `action`.
        """
        ...

    def remove(self, task_id: int) -> Task:
        """Delete a task that is not running, with its runs; return it as it was."""
        ...

    def claim_next(
        self,
        *,
        scope: Scope,
        now: datetime,
        lease: Lease,
        decide: Decide,
        skip: Skip | None = None,
        lanes: Lanes | None = None,
    ) -> Claim:
        """Recover dead runs in scope, then claim the next due task unless scope is busy.

        Due tasks later than their `max_lateness` are moved where `skip` says
        and passed over. With `lanes` (a pool's claim) a running task does not
        make the scope busy: the claim takes, by the order rule, the next due
        task among those whose module id runs fewer tasks than its lane's width
        (counted across every process sharing the store), and is IDLE when
        there is none.
        """
        ...

    def renew_lease(self, run_id: int, *, lease: Lease) -> bool:
        """Extend the lease of a running run; False if the run is no longer ours."""
        ...

    def set_child(self, run_id: int, pid: int, *, start: str | None = None) -> None:
        """Record the pid of the process a run started (its process group too).

        `start` tells that process apart from a later one with the same pid
        (its start time in /proc); recovery kills a group only when both match.
        """
        ...

    def register_pool(self, pool: PoolLease, *, now: datetime) -> int | None:
        """Make `pool` the pool of its scope on its host; its id, or None when taken.

        A live pool on the same host whose scope overlaps takes precedence;
        pools whose lease expired, or whose pid is gone on this host, are
        dropped first. `serving_pool` then names the one that holds the scope.
        """
        ...

    def serving_pool(self, pool: PoolLease, *, now: datetime) -> PoolLease | None:
        """The live pool on `pool`'s host whose scope overlaps `pool`'s, if any."""
        ...

    def renew_pool(self, pool_id: int, *, expires_at: datetime) -> bool:
        """Extend a pool's lease; False when it is no longer registered."""
        ...

    def release_pool(self, pool_id: int) -> None:
        """Remove a pool: its scope is free for another one."""
        ...

    def save_progress(self, run_id: int, progress: Progress) -> bool:
        """Store a running task's progress; False once the run is no longer its current one."""
        ...

    def mark_missed(self, now: datetime, *, limit: int = 100) -> Tasks:
        """The recurring tasks found missed at `now`, marked so (`Task.missed_since`) in
        one transaction, which counts them (the `missed` counter, by module id): each is
        returned once, to one caller, with `alerts` ("missed",). One indexed probe when
        none is."""
        ...

    def missed(self, now: datetime, *, limit: int = 100) -> Tasks:
        """The recurring tasks missed at `now`: found so, or past their time and not found
        yet; by id, at most `limit`. Reads only."""
        ...

    def note_alerted(
        self,
        task_id: int,
        sent: Mapping[str, datetime],
        *,
        channels: Mapping[tuple[str, str], int] | None = None,
    ) -> None:
        """Note when alert rules sent events of a task (`"RULE:EVENT"`: time), for their
        `cooldown` and `repeat` (`Task.alerted_json`), and count the alerts decided by
        (rule, channel) in the `alerts` counter, in the same transaction."""
        ...

    def counters(self) -> tuple[Counter, ...]:
        """Every counter the store keeps, by name, then labels."""
        ...

    def recurring(self, *, limit: int = 10_000) -> tuple[RecurringTask, ...]:
        """The recurring tasks, by id, at most `limit`: one index read, never a scan of
        every task."""
        ...

    def oldest_queued(self, scope: Scope) -> dict[str, datetime]:
        """Each in-scope module id's oldest queued task's due time, due or not: a probe a
        module id with queued tasks (the heads of the line)."""
        ...

    def finish_run(
        self, run_id: int, end: RunEnd, *, decide: Decide, keep: Retention | None = None
    ) -> Task | None:
        """Record how a run ended and move its task; None if the run was recovered meanwhile.

        The task comes back with the run that ended as its only run: a finish reads
        the task and its current run, never its history. With `keep`, the same
        transaction trims the task's older runs (at most `keep.batch` of them)."""
        ...

    def prune(
        self,
        *,
        before: datetime,
        dry_run: bool = False,
        keep: Retention | None = None,
        now: datetime | None = None,
    ) -> PruneCount:
        """Delete finished (done, failed, cancelled) tasks last updated before `before`,
        with their runs, and count them; with `keep` (and `now`), trim every other task's
        runs by it too, at once; with `dry_run`, only count them."""
        ...

    def outcome_totals(self) -> tuple[OutcomeTotal, ...]:
        """Every module id's runs by outcome, ever (by module id, then outcome)."""
        ...

    def outcome_minutes(self, *, since: datetime) -> tuple[OutcomeMinute, ...]:
        """The runs by minute, module id and outcome since `since` (kept for
        `MINUTES_KEPT`), oldest minute first."""
        ...

    def counts(self, scope: Scope) -> dict[str, dict[str, int]]:
        """How many tasks each module id in scope has in each state (the state's value).

        Counted without loading a task. Module ids and states without tasks are left out.
        """
        ...

    def running(self, scope: Scope) -> Tasks:
        """The running tasks in scope, each with its current run as its only run and its
        `job_started_at` when the run is not its job's first step.

        The oldest run first.
        """
        ...

    def next_due(self, scope: Scope, *, count: int) -> Tasks:
        """The first `count` queued tasks in scope by due time, then id, due yet or not."""
        ...

    def failures(self, scope: Scope, *, count: int) -> Tasks:
        """The `count` most recently updated tasks in scope that failed.

        They are the tasks in state `failed`, and the queued or paused tasks
        that will run again (a one-off task with attempts left, a recurring
        task) whose last run failed or timed out.
        """
        ...

    def dump(self, *, batch: int = ...) -> Generator[Task, None, None]:
        """Every task with all its runs and their counts by outcome (`Task.outcomes`),
        in id order, read on one snapshot.

        Tasks are read `batch` at a time, a few queries a batch; close the
        iterator (or exhaust it) to end the read.
        """
        ...

    def restore(
        self,
        tasks: Iterable[Task],
        *,
        batch: int = ...,
        totals: Iterable[OutcomeTotal] = ...,
        minutes: Iterable[OutcomeMinute] = ...,
        counters: Iterable[Counter] = ...,
        log: Iterable[LogRow] = ...,
    ) -> tuple[int, int]:
        """Write `tasks` (as `dump` gives them) with their runs into this empty store,
        the runs counted by module id and by minute (as `outcome_totals` and
        `outcome_minutes` give them) and the other counters (as `counters` gives
        them), added to any this store counts already, and
        the rows of `log` into its shared log, in order, after any it holds (new
        ids, no notification: they are history). A store that keeps no shared log
        (SQLite) takes no row: one is a `StoreError`.

        One transaction: all of them or, on any error, none. Task and run ids
        are kept, and ids handed out later come after the highest ones
        written. A store that holds tasks or runs is `StoreNotEmptyError`; a
        running task (whose lease cannot move) is `TasksRunningError`. Rows go
        in `batch` tasks at a time. Returns how many tasks and runs were written.
        """
        ...

    def wake_source(self) -> WakeSource | None:
        """A connection of its own that hears of tasks made claimable or changed, for a
        process that waits for them (`work`, the dashboard); None when the store cannot
        tell (SQLite: its waiters poll). `StoreUnreachable` while the store is away."""
        ...

    def close(self) -> None:
        """Release the connection."""
        ...


class WakeSource(Protocol):
    """Tells a waiting process that tasks were made claimable or changed (`Store.wake_source`).

    Watch `fileno()` (a selector, an event loop's reader) and `drain()` when it is
    readable. It is a hint: the waiter still polls, for what it misses while lost.
    """

    def fileno(self) -> int:
        """The descriptor that becomes readable when there is news (or the connection is lost)."""
        ...

    def drain(self) -> list[str]:
        """The news received so far, without waiting: the ids of the tasks, as text.
        `StoreUnreachable` once lost: then `close` it and ask the store for another."""
        ...

    def close(self) -> None:
        """Release the connection."""
        ...


class RecordFilter(Protocol):
    """Which log records a reader keeps (`taskcron.logstore.LogFilter`): a store narrows
    its search by the fields, the call decides."""

    @property
    def task(self) -> int | None: ...

    @property
    def scope(self) -> Scope | None: ...

    @property
    def level(self) -> str | None:
        """The minimum level (a name of `LOG_LEVELS`)."""

    @property
    def since(self) -> datetime | None: ...

    def __call__(self, rec: Mapping[str, Any]) -> bool: ...


class SharedLog(Protocol):
    """The log records of every host sharing a store, kept in the store.

    Each host still writes its own log files (`taskcron.logstore`); this holds
    a copy of every record, so that any host reads them all. Records read
    are in the order they were added.
    """

    def append(self, records: Sequence[Mapping[str, Any]]) -> None:
        """Add records, in order; `StoreError` when they cannot be written."""
        ...

    def tail(self, count: int, *, keep: RecordFilter) -> list[dict[str, Any]]:
        """The last `count` records that `keep` accepts, oldest first."""
        ...

    def follow(
        self, count: int, *, keep: RecordFilter, say: Callable[[bool, str], None] | None = None
    ) -> Iterator[list[dict[str, Any]]]:
        """`tail`, then each batch of records `keep` accepts as any host adds them.

        It waits for them without polling, and yields an empty batch now and
        then while none come; it ends only when the caller stops iterating.
        A lost connection is retried with backoff, going on after the last
        record read; `say` (a `taskcron.outage.Say`) hears once that the store
        is lost and once that it is back.
        """
        ...

    def prune(self, *, before: datetime, dry_run: bool = False) -> int:
        """Delete the records older than `before`; how many (with `dry_run`, only count)."""
        ...

    def count(self) -> int:
        """How many records it holds."""
        ...

    def dump(self, *, batch: int = ...) -> Generator[LogRow, None, None]:
        """Every row, in the order added, read on one snapshot `batch` rows at a time;
        close the iterator (or exhaust it) to end the read."""
        ...

    def rows(self, records: Iterable[Mapping[str, Any]]) -> Generator[LogRow, None, None]:
        """`records` (oldest first) as the rows this log keeps them in, read as they are
        needed; a record without a readable time (`ts`) is left out."""
        ...

    def close(self) -> None:
        """Release the connection."""
        ...


_machine: list[str] = []


def machine_id() -> str:
    """This machine's identity: `/etc/machine-id`, else the kernel's boot id, else "".

    Two containers may share a host name; they do not share a machine id (or,
    without one, a boot id across hosts), so a lease names both.
    """
    if not _machine:
        found = ""
        for path in ("/etc/machine-id", "/proc/sys/kernel/random/boot_id"):
            try:
                found = Path(path).read_text(encoding="ascii").strip()
            except (OSError, UnicodeDecodeError):
                continue
            if found:
                break
        _machine.append(found)
    return _machine[0]
