"""A run's life, from the claim to the recorded end, and the names of the records it writes.

`tick` reads as recover → claim → execute → finish: the store claims (and
recovers dead runs), `after_claim` writes what the claim found, a `RunLife`
starts the claimed run, serves the runner's hooks while it goes on (lease
renewal, the child's pid, its output and events) and finishes it in the
store. Every record goes through a `Recorder`, and every event name is an
`Event`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from taskcron import errors, logstore
from taskcron.model import Outcome, Progress, Renewal, Retention, Run, RunEnd, State, Task, iso
from taskcron.outage import Outage
from taskcron.store import ClaimOutcome
from taskcron.values import field, replace, value

if TYPE_CHECKING:
    from taskcron.alerts import Alert, Delivery, Teller
    from taskcron.logstore import LogStore
    from taskcron.runner import RunSettings
    from taskcron.store import Claim, Decide, Lease, Recovered, SharedLog, Store

log = logging.getLogger(__name__)


class Event:
    """The name of every record taskcron writes to the log store."""

    TASK_SCHEDULED = "task.scheduled"
    TASK_STARTED = "task.started"
    TASK_OUTPUT = "task.output"
    TASK_PROGRESS = "task.progress"
    TASK_DONE = "task.done"
    TASK_CONTINUED = "task.continued"
    TASK_FAILED = "task.failed"
    TASK_INTERRUPTED = "task.interrupted"
    TASK_KILLED = "task.killed"
    TASK_SKIPPED = "task.skipped"
    TASK_OVERRUN = "task.overrun"
    TASK_MISSED = "task.missed"
    TASK_CANCELLED = "task.cancelled"
    TASK_RETRIED = "task.retried"
    TASK_PAUSED = "task.paused"
    TASK_RESUMED = "task.resumed"
    TASK_RUN_NOW = "task.run_now"
    TASK_REMOVED = "task.removed"
    TICK_IDLE = "tick.idle"
    TICK_BUSY = "tick.busy"
    STORE_MIGRATED = "store.migrated"
    STORE_PRUNED = "store.pruned"
    STORE_COPIED = "store.copied"
    STORE_LOST = "store.lost"
    STORE_BACK = "store.back"
    LOG_UNSHARED = "log.unshared"
    ALERT_SENT = "alert.sent"
    ALERT_FAILED = "alert.failed"
    HEARTBEAT_FAILED = "heartbeat.failed"


#: What each event's record says: its level, the fields it adds to the common ones
#: (`ts`, `host`, `level`, `event`, `task`, `module`, `message`), and when it is written.
#: The reference's log page is generated from this table.
EVENT_DOCS: dict[str, tuple[str, str, str]] = {
    Event.TASK_SCHEDULED: (
        "info",
        "`title`, `target`, `priority`, `due_at`",
        "a task was added to the store",
    ),
    Event.TASK_STARTED: ("info", "`run`, `attempt`, `deadline`, `pid`", "a run started"),
    Event.TASK_OUTPUT: (
        "info, or the record's level",
        "`stream` (`stdout`, `stderr`, or `log` with `logger`), `run`",
        "a line a task printed, or a record its `logging` emitted (lines over 64 KiB are split)",
    ),
    Event.TASK_PROGRESS: (
        "info",
        "`done`, `total`, `run`",
        "a task reported progress (about one record a second, always the last)",
    ),
    Event.TASK_DONE: (
        "info",
        "`run`, `attempt`, `outcome`, `started_at`, `ended_at`, `elapsed`, `exit_code`, `state`",
        "a run succeeded",
    ),
    Event.TASK_CONTINUED: (
        "info",
        "as `task.done`, with `next_due_at`",
        "a step of a long job ended asking to go on later (`outcome` says `continued`)",
    ),
    Event.TASK_FAILED: (
        "error",
        "as `task.done`, with `error`, `traceback`",
        "a run failed or timed out (`outcome` says `failed` or `timeout`)",
    ),
    Event.TASK_INTERRUPTED: (
        "warning",
        "as `task.failed`",
        "a run's process died or was stopped by a signal; recorded by the tick that noticed",
    ),
    Event.TASK_KILLED: (
        "warning",
        "`run`, `pid`",
        "a dead tick's task, still running on this host, stopped by the tick that recovered it",
    ),
    Event.TASK_SKIPPED: (
        "warning",
        "`state`, `next_due_at`",
        "a run later than the task's max lateness was skipped",
    ),
    Event.TASK_OVERRUN: (
        "warning",
        "`run`, `budget`, `elapsed`",
        "a step ran past the tick's budget (recorded, not killed)",
    ),
    Event.TASK_MISSED: (
        "warning",
        "`since` (the due time it missed), `fire_times` (how many it missed by then)",
        "a recurring task was found more than its `missed_after` past due with no run"
        " started (once, until a job of it ends)",
    ),
    Event.TASK_CANCELLED: ("info", "", "a task was cancelled (`cancel`)"),
    Event.TASK_RETRIED: ("info", "", "a failed or cancelled task was put back in line (`retry`)"),
    Event.TASK_PAUSED: ("info", "", "a queued task was held (`pause`)"),
    Event.TASK_RESUMED: ("info", "", "a paused task was put back in line (`resume`)"),
    Event.TASK_RUN_NOW: ("info", "", "a queued task was made due now (`run-now`)"),
    Event.TASK_REMOVED: ("info", "", "a task was deleted (`remove`)"),
    Event.TICK_IDLE: (
        "debug",
        "`scope`",
        "a tick found nothing due (written only when `log.level` is `debug`)",
    ),
    Event.TICK_BUSY: (
        "debug",
        "`scope`",
        "a tick found a task of its scope running (written only when `log.level` is `debug`)",
    ),
    Event.STORE_MIGRATED: (
        "info",
        "`from_version`, `to_version`",
        "the store's schema was migrated forward",
    ),
    Event.STORE_PRUNED: (
        "info",
        "`tasks`, `runs`, `files`, and `records` when the store keeps a log table",
        "`prune` removed finished one-off tasks and old log files",
    ),
    Event.STORE_COPIED: (
        "info",
        "`target`, `tasks`, `runs`, `records` when the target keeps a log table, and"
        " `records_left` when records of the source's log table stay behind (a SQLite target)",
        "`migrate-store` copied the store there",
    ),
    Event.STORE_LOST: (
        "warning",
        "",
        "a long-lived process (`work`, a draining tick, `web`) lost the store's server; it"
        " retries, and its running tasks go on while their leases hold",
    ),
    Event.STORE_BACK: ("info", "", "the store's server answers again after `store.lost`"),
    Event.LOG_UNSHARED: (
        "warning",
        "",
        "this host cannot copy records to the store's shared log (they are in its own"
        " file; while the server is away they are kept, up to 10,000, and copied once it"
        " answers); in the shared log, where records the full backlog let go are missing",
    ),
    Event.ALERT_SENT: (
        "info",
        "`rule`, `channel`, `alert` (its event), `detail`, `elapsed`",
        "an alert was delivered through one channel of a rule",
    ),
    Event.ALERT_FAILED: (
        "warning",
        "as `alert.sent`",
        "an alert could not be delivered through one channel of a rule (`detail` says why;"
        " a `taskcron: warning:` line says it too); the task and its record are untouched",
    ),
    Event.HEARTBEAT_FAILED: (
        "warning",
        "`ping` (`start`, `success`, `fail`), `url` (shortened), `detail`, `elapsed`",
        "a tick's heartbeat ping failed or took longer than `heartbeat.timeout` (written"
        " afterwards, by the process that sent it, to this host's log)",
    ),
}


#: The record and level of a run's end, by its outcome; any other outcome failed.
END_EVENTS = {
    Outcome.DONE: (Event.TASK_DONE, "info"),
    Outcome.CONTINUED: (Event.TASK_CONTINUED, "info"),
    Outcome.INTERRUPTED: (Event.TASK_INTERRUPTED, "warning"),
}


class Recorder:
    """Writes records to the log store, and a copy to the store's shared log if it keeps
    one; a log that cannot be written never stops work.

    When the copy fails, the records stay in the log store and one warning
    record there (`log.unshared`) says so, until a copy succeeds again.
    """

    def __init__(
        self,
        logstore: Callable[[], LogStore],
        clock: Callable[[], datetime],
        *,
        host: str,
        shared: Callable[[], SharedLog | None] = lambda: None,
    ) -> None:
        self._logstore = logstore
        self._shared = shared
        self.clock = clock
        self.host = host  #: The host every record names.
        self._sharing = True  # False from a failed copy until one succeeds
        #: Makes the `Teller` that sends the alerts what it records decided, when the
        #: first is (so that a process that sends none never loads it); None: no
        #: `[[alerts]]`. Given whether they are `queued` (`queue_alerts`).
        self.alerting: Callable[[bool], Teller] | None = None
        self.teller: Teller | None = None
        self._queued = False

    def emit(
        self,
        event: str,
        *,
        level: str = "info",
        task: Task | None = None,
        message: str = "",
        **fields: Any,
    ) -> None:
        """Append one record, if the log store's level lets it through."""
        if not self._logstore().enabled(level):
            return
        self.write(
            logstore.record(
                event,
                at=self.clock(),
                level=level,
                host=self.host,
                task=None if task is None else task.id,
                module=None if task is None else task.module,
                message=message,
                **fields,
            )
        )

    def write(self, *records: dict[str, Any]) -> None:
        """Append whole records as they are (those the log store's level lets through)."""
        store = self._logstore()
        kept = [r for r in records if store.enabled(str(r.get("level", "info")))]
        if not kept:
            return
        self._append(store, kept)
        self._share(kept)

    def _append(self, store: LogStore, records: list[dict[str, Any]]) -> None:
        try:
            store.append(*records)
        except OSError as exc:
            log.warning("cannot write to the log store %s: %s", store.directory, exc)

    def _share(self, records: list[dict[str, Any]]) -> None:
        try:
            shared = self._shared()
            if shared is not None:
                shared.append(records)
        except Exception as exc:  # a copy for the other hosts must never stop a run
            if self._sharing:
                self._sharing = False
                warning = logstore.record(
                    Event.LOG_UNSHARED,
                    at=self.clock(),
                    level="warning",
                    host=self.host,
                    message="records are in this host's log but cannot be copied to the"
                    f" store's log: {exc}",
                )
                self._append(self._logstore(), [warning])
        else:
            self._sharing = True

    def say(self, lost: bool, message: str) -> None:
        """Record that the store is lost (a warning) or back: `taskcron.outage.Say`."""
        if lost:
            self.emit(Event.STORE_LOST, level="warning", message=message)
        else:
            self.emit(Event.STORE_BACK, message=message)

    def alert_delivery(self, alert: Alert, delivery: Delivery) -> None:
        """The record of one channel's delivery of an alert: alert.sent or alert.failed
        (a `taskcron.alerts.Report`, for `deliver` and `Courier`)."""
        event, level = (
            (Event.ALERT_SENT, "info") if delivery.ok else (Event.ALERT_FAILED, "warning")
        )
        said = "sent" if delivery.ok else "failed"
        self.write(
            logstore.record(
                event,
                at=self.clock(),
                level=level,
                host=self.host,
                task=alert.task,
                module=alert.module,
                message=f'{alert.event} alert via {delivery.channel} (rule "{delivery.rule}")'
                f" {said}: {delivery.detail}",
                rule=delivery.rule,
                channel=delivery.channel,
                alert=alert.event,
                detail=delivery.detail,
                elapsed=round(delivery.elapsed, 3),
            )
        )

    def run_end(self, task: Task, run: Run) -> None:
        """The record of a run's end: task.done, task.failed or task.interrupted."""
        outcome = run.outcome
        event, level = (
            END_EVENTS.get(outcome, (Event.TASK_FAILED, "error"))
            if outcome is not None
            else (Event.TASK_FAILED, "error")
        )
        elapsed = run.elapsed or 0.0
        what = outcome.value if outcome is not None else "ended"
        message = f"{what} in {elapsed:.3f}s"
        if run.error:
            message += f": {run.error}"
        fields: dict[str, Any] = {
            "run": run.id,
            "attempt": run.attempt,
            "outcome": what,
            "started_at": iso(run.started_at),
            "ended_at": iso(run.ended_at),
            "elapsed": run.elapsed,
            "exit_code": run.exit_code,
            "state": task.state.value,
        }
        if outcome is not Outcome.DONE:
            fields["error"] = run.error
            fields["traceback"] = run.traceback
        if task.state is State.QUEUED:
            fields["next_due_at"] = iso(task.due_at)
        self.emit(event, level=level, task=task, message=message, **fields)
        self.tell(task, task.alerts, run=run)

    def missed(self, task: Task, now: datetime) -> None:
        """The record of a recurring task found missed (`Store.mark_missed`), and its alert."""
        since = task.missed_since or task.due_at
        fire_times = (task.missed_json(now) or {}).get("fire_times", 1)
        self.emit(
            Event.TASK_MISSED,
            level="warning",
            task=task,
            message=f"missed: due at {iso(since)}, no run started since",
            since=iso(since),
            fire_times=fire_times,
        )
        self.tell(task, task.alerts, details={"since": iso(since), "fire_times": fire_times})

    def tell(
        self,
        task: Task,
        events: tuple[str, ...],
        *,
        run: Run | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        """Send `events` of `task` by the alert rules (nothing without `[[alerts]]`)."""
        if not events or self.alerting is None:
            return
        if self.teller is None:
            self.teller = self.alerting(self._queued)
        self.teller.tell(task, events, at=self.clock(), run=run, details=details)

    def queue_alerts(self) -> None:
        """Send alerts beside the caller from now on (a pool, `work`, the dashboard): a
        delivery never delays it. `close_alerts` waits for those queued."""
        self._queued = True

    def close_alerts(self, timeout: float | None) -> None:
        """Wait at most `timeout` seconds for the alerts still queued."""
        teller, self.teller = self.teller, None
        if teller is not None:
            teller.close(timeout)


class Watcher(Protocol):
    """Someone watching a run as it goes, such as `tick -v` at a terminal."""

    def started(self, task: Task) -> None:
        """The task's run has begun."""

    def output(self, task: Task, stream: str, lines: Sequence[str]) -> None:
        """The task printed these whole lines on `stream` ("stdout" or "stderr")."""


def after_claim(recorder: Recorder, claim: Claim, store: Store) -> None:
    """Record what a claim did besides claiming: skipped late tasks, recovered dead runs.

    A recovered run's task may outlive its tick: on this host it is stopped,
    so that it never runs twice.
    """
    for skipped in claim.skipped:
        recorder.emit(
            Event.TASK_SKIPPED,
            level="warning",
            task=skipped,
            message=f"skipped: later than its max lateness; now {skipped.state.value}",
            state=skipped.state.value,
            next_due_at=iso(skipped.due_at) if skipped.state is State.QUEUED else None,
        )
    for item in claim.recovered:
        if item.run.host == store.host and item.run.machine in ("", store.machine):
            _stop_orphan(recorder, item.task, item.run)
        recorder.run_end(item.task, item.run)


def _stop_orphan(recorder: Recorder, task: Task, run: Run) -> None:
    if run.child_pid is None:
        return
    from taskcron import runner

    if runner.kill_orphan(run.child_pid, run.id, run.child_start):
        recorder.emit(
            Event.TASK_KILLED,
            level="warning",
            task=task,
            message=f"killed the orphaned process group {run.child_pid} of run {run.id}",
            run=run.id,
            pid=run.child_pid,
        )


class RunLife:
    """One claimed run, from its start to its recorded end.

    It is the runner's hooks: it renews the lease, records the child's pid,
    writes the task's output and events as records, and tells a `Watcher`.
    `finish` records the end in the store (fenced: a run recovered meanwhile
    stays recovered) and in the log.

    The store may be out of reach meanwhile (a restart, a failover): the task goes
    on while its lease holds (`held_until`; the runner stops it before the lease
    runs out), and an end that cannot be recorded is tried again until it is, or
    until the lease has run out (`record`). `outage` says so in the log, once.
    """

    def __init__(
        self,
        *,
        store: Store,
        claim: Claim,
        recorder: Recorder,
        lease: Callable[[], Lease],
        decide: Decide,
        settings: RunSettings,
        watcher: Watcher | None = None,
        max_steps: int = 10_000,
        keep: Retention | None = None,
        outage: Outage | None = None,
    ) -> None:
        assert claim.task is not None and claim.run is not None
        self.store = store
        self.task = claim.task
        self.run = claim.run
        self.recovered = claim.recovered
        self.skipped = claim.skipped
        self.recorder = recorder
        self.lease = lease
        self.decide = decide
        self.settings = settings  #: How the runner runs it, its deadline among them.
        self.watcher = watcher
        self.max_steps = max_steps
        self.keep = keep  #: The runs of the task kept: the finish trims the others.
        self.progress: Progress | None = None  #: The last progress reported.
        self._progress_stored_at = -1.0  # monotonic seconds
        self._progress_logged_at = -1.0
        self._progress_unlogged = False
        self.outage = outage or Outage(recorder.say)
        taken = claim.lease.taken_at if claim.lease is not None else time.monotonic()
        self.held_until = taken + settings.lease.total_seconds()
        self._tries = 0  #: Tries to record the end so far.
        self._overran = False  #: Whether it ran past its budget (an `overrun` alert).

    @property
    def deadline(self) -> datetime | None:
        """When the run's budget ends (the task sees it; nothing is killed then)."""
        return self.settings.deadline

    def execute(self) -> RunEnd:
        """Record the start, run the task to its end in a child process, and say how it ended."""
        from taskcron import runner  # only a tick with a task to run pays for it

        self.begin()
        return runner.execute(self.task, self.settings, clock=self.recorder.clock, hooks=self)

    def begin(self) -> None:
        """Record that the run starts (and tell the watcher)."""
        task, run = self.task, self.run
        self.recorder.emit(
            Event.TASK_STARTED,
            task=task,
            message=f"started {task.title}",
            run=run.id,
            attempt=run.attempt,
            deadline=iso(self.deadline),
            pid=run.pid,
        )
        if self.watcher is not None:
            self.watcher.started(task)

    def result(self, end: RunEnd) -> TickResult:
        """Finish the run and say what the tick did: the task as it now stands."""
        return self.tick_result(self.finish(end), end)

    def tick_result(self, task: Task, end: RunEnd) -> TickResult:
        """What the tick did, once `end` is recorded and `task` is as it now stands."""
        return TickResult(
            outcome=ClaimOutcome.CLAIMED.value,
            task=task,
            recovered=self.recovered,
            skipped=self.skipped,
            signal=end.signal,
        )

    def finish(self, end: RunEnd) -> Task:
        """Record how the run ended and return its task as it now stands.

        While the store cannot be reached, it waits and tries again as long as the
        lease holds; after that, `StoreUnreachable` (another tick records the run
        `interrupted` once the lease has expired).
        """
        end = self.ending(end)
        while True:
            try:
                return self.record(end)
            except errors.StoreUnreachable as exc:
                pause = self.outage.lost(exc)
                if time.monotonic() + pause >= self.held_until:
                    raise self.unrecorded(exc) from exc
                time.sleep(pause)

    def ending(self, end: RunEnd) -> RunEnd:
        """The end to record: with the last progress, and failed past `max_steps`."""
        if end.outcome is Outcome.CONTINUED and self.task.steps + 1 >= self.max_steps:
            end = replace(
                end,
                outcome=Outcome.FAILED,
                error=f"needs more than max_steps ({self.max_steps}) steps",
                state_json=None,
            )
        end = replace(end, progress=self.progress)
        if self._progress_unlogged and self.progress is not None:
            self._log_progress(self.progress)
        self._overrun(end)
        return end

    def record(self, end: RunEnd) -> Task:
        """Record `end` (from `ending`) in the store and the log: the task as it now stands.

        The last progress and, for a step that asks to continue, its state are
        saved in the same transaction as the end of the run. `StoreUnreachable`
        when the store cannot be reached: call again (a finish that the store
        committed although its answer was lost is found as such).
        """
        self._tries += 1
        finished = self.store.finish_run(self.run.id, end, decide=self.decide, keep=self.keep)
        self.outage.back()
        if finished is None and self._tries > 1 and self._recorded(end):
            run = self.store.get_run(self.run.id)
            finished = replace(self.store.get(self.task.id), runs=(run,))
        if finished is None:
            current = replace(
                self.store.get(self.task.id, runs=0), runs=(self.store.get_run(self.run.id),)
            )
            self.recorder.emit(
                Event.TASK_INTERRUPTED,
                level="warning",
                task=self.task,
                message=f"run {self.run.id} ended after another tick had recovered it",
                run=self.run.id,
            )
        else:
            current = finished
            self.recorder.run_end(current, current.runs[-1])
            if self._overran:
                self.recorder.tell(current, ("overrun",), run=current.runs[-1])
        return current

    def _recorded(self, end: RunEnd) -> bool:
        """Whether the run is ended as `end` says: a finish committed whose answer was lost."""
        run = self.store.get_run(self.run.id)
        return run.outcome is end.outcome and run.elapsed == end.elapsed

    def unrecorded(self, exc: errors.StoreError) -> errors.StoreUnreachable:
        """The error, and the log's warning, of an end the lease ran out before recording."""
        message = (
            f"run {self.run.id} of task {self.task.id} ended, but the store could not be"
            " reached to record it before its lease ran out; another tick will record it"
            f" interrupted: {exc}"
        )
        self.recorder.emit(
            Event.TASK_INTERRUPTED,
            level="warning",
            task=self.task,
            message=message,
            run=self.run.id,
        )
        return errors.StoreUnreachable(message)

    @property
    def lease_left(self) -> float:
        """Seconds the lease surely holds from now (negative: it may have expired)."""
        return self.held_until - time.monotonic()

    # --- the runner's hooks ---------------------------------------------------

    def renew(self) -> Renewal:
        """Extend the lease: held (`held_until` moves on), lost to another tick, or
        unsure (the store could not be asked: `held_until` stays)."""
        lease = self.lease()
        try:
            held = self.store.renew_lease(self.run.id, lease=lease)
        except errors.StoreError as exc:
            self.outage.lost(exc)
            return Renewal.UNSURE
        self.outage.back()
        if not held:
            return Renewal.LOST
        self.held_until = lease.taken_at + self.settings.lease.total_seconds()
        return Renewal.HELD

    def started(self, pid: int, start: str | None) -> None:
        """The task's process (and process group) is `pid`, started at `start` (in /proc)."""
        try:
            self.store.set_child(self.run.id, pid, start=start)
        except errors.StoreError as exc:
            self.outage.lost(exc)

    def output(self, stream: str, lines: list[str]) -> None:
        """Whole lines the task printed: one `task.output` record each."""
        base = {
            "ts": logstore.timestamp(self.recorder.clock()),
            "host": self.recorder.host,
            "level": "info",
            "event": Event.TASK_OUTPUT,
            "task": self.task.id,
            "module": self.task.module,
        }
        self.recorder.write(
            *({**base, "message": line, "stream": stream, "run": self.run.id} for line in lines)
        )
        if self.watcher is not None:
            self.watcher.output(self.task, stream, lines)

    def event(self, reported: dict[str, Any]) -> None:
        """What a callable reported: its progress, or a record of its logging."""
        kind = reported.get("event")
        if kind == "progress":
            self._progress(reported)
        elif kind == "log":
            self.recorder.emit(
                Event.TASK_OUTPUT,
                level=str(reported.get("level", "info")),
                task=self.task,
                message=str(reported.get("message", "")),
                stream="log",
                logger=reported.get("logger"),
                exc=reported.get("exc"),
                run=self.run.id,
            )

    # Progress reaches the store while the task runs (a live view reads it there), at
    # most every PROGRESS_STORE_EVERY seconds; the log gets about one record a second.

    def _progress(self, reported: dict[str, Any]) -> None:
        done, total = reported.get("done"), reported.get("total")
        if not isinstance(done, int | float) or isinstance(done, bool):
            return
        if not isinstance(total, int | float) or isinstance(total, bool):
            total = None
        progress = Progress(
            done=done,
            total=total,
            message=str(reported.get("message") or ""),
            updated_at=self.recorder.clock(),
        )
        self.progress = progress
        now = time.monotonic()
        if now - self._progress_stored_at >= PROGRESS_STORE_EVERY:
            self._progress_stored_at = now
            try:
                self.store.save_progress(self.run.id, progress)
            except errors.StoreError as exc:
                self.outage.lost(exc)
        if now - self._progress_logged_at >= PROGRESS_LOG_EVERY:
            self._progress_logged_at = now
            self._log_progress(progress)
        else:
            self._progress_unlogged = True

    def _log_progress(self, progress: Progress) -> None:
        self._progress_unlogged = False
        self.recorder.emit(
            Event.TASK_PROGRESS,
            task=self.task,
            message=progress.message or _progress_text(progress.done, progress.total),
            run=self.run.id,
            done=progress.done,
            total=progress.total,
            percent=progress.percent,
        )

    def _overrun(self, end: RunEnd) -> None:
        """A step that ran past the tick's budget is not killed, but it is recorded."""
        if self.deadline is None or end.ended_at <= self.deadline:
            return
        budget = round((self.deadline - self.run.started_at).total_seconds(), 3)
        self._overran = True
        self.recorder.emit(
            Event.TASK_OVERRUN,
            level="warning",
            task=self.task,
            message=f"ran {end.elapsed:.3f}s, past its budget of {budget:g}s",
            run=self.run.id,
            budget=budget,
            elapsed=end.elapsed,
        )


#: How often a running task's progress is written to the store, at most (seconds).
PROGRESS_STORE_EVERY = 0.5
#: How often a running task's progress is written to the log, at most (seconds).
PROGRESS_LOG_EVERY = 1.0


@value
class TickResult:
    """What one tick did: ran a task (`ran`), found nothing due (`idle`) or found its scope busy."""

    outcome: str
    task: Task | None = None  #: The task it ran, with its runs; or the running one when busy.
    recovered: tuple[Recovered, ...] = field(default=())
    skipped: tuple[Task, ...] = field(default=())  #: Passed over as too late, as left.
    signal: int | None = None  #: The signal that stopped the tick while its task ran.

    @property
    def failed(self) -> bool:
        """True when the tick ran a task and that run did not succeed."""
        if self.outcome != ClaimOutcome.CLAIMED.value or self.task is None:
            return False
        run = self.task.last_run
        return run is None or run.outcome not in (Outcome.DONE, Outcome.CONTINUED)

    def to_json(self) -> dict[str, Any]:
        """`{"outcome": ..., "task": {...} | null}`, as `tick --json` prints it."""
        task = None
        if self.task is not None:
            task = self.task.to_json(runs=self.outcome == ClaimOutcome.CLAIMED.value)
        return {"outcome": self.outcome, "task": task}


def _progress_text(done: Any, total: Any) -> str:
    if isinstance(total, int | float) and total and isinstance(done, int | float):
        return f"{done:g}/{total:g} ({100 * done / total:.0f}%)"
    return f"{done}%"
