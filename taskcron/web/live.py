"""Live updates for open pages: one poller reads the store and the log, every page hears.

Once a `interval` (a second), while any page listens, the hub reads the
running tasks (one indexed read) and the log records written since its last
look. It sends a `task` event for each running task whose progress or run
changed, and for each task that stopped running or that a new log record
names (an action, a run's end, from any process or host); a `log` event
for each record; and, when any of these moved a task (and when a page
starts listening), a `counts` event with the counts by module id and state,
if they changed. Pages then update themselves: the browser never polls.
On a store that tells of its writes (PostgreSQL's LISTEN/NOTIFY), a task
scheduled, put back in the line or changed brings the next look forward (no
sooner than `GAP` after the last), and that look sends its `task` event.

A `task` event's data is the task's JSON as `show --json` prints it, without
its runs, plus `run`: its current run while it runs (start, host), else null,
and `step_elapsed` and `job_elapsed`: while it runs, the seconds since its
current run started and since its job's first step started, else null. A
`counts` event's data is `{"modules": {MODULE: {STATE: COUNT}}}`, as `status
--json` prints it, in the page's scope.
An owner link hears only `OWNER_KEYS` of its owner's tasks (`owner_json`):
what its page shows, nothing of what the task runs or holds, and no counts.

Streams are counted per principal (a session, a token, an owner link) by a
`Quota`, so that no one holds more than `web.max_streams` open at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

import anyio.to_thread

from taskcron import errors
from taskcron.api import LogFeed, TaskCron, watch_missed
from taskcron.model import Scope, State, TargetKind, Task, iso
from taskcron.outage import Outage, Say, delay
from taskcron.values import field, value

if TYPE_CHECKING:
    from taskcron.store import WakeSource

T = TypeVar("T")
QUEUE = 1000  #: Events waiting for one page; a page that falls this far behind is dropped.
#: How often the dashboard looks for missed runs (seconds), as a tick would, while a
#: page listens.
WATCH_EVERY = 15.0
#: Seconds between two looks at least, however often the store tells of tasks.
GAP = 0.1
#: Tasks the store told of that one look reads at most (the counts tell of the rest).
TOLD = 100


#: What an owner link shows of a task, in its page, and in its stream: nothing else.
OWNER_KEYS = ("id", "title", "module", "state", "progress", "due_at", "started_at", "ended_at")


def task_json(task: Task, now: datetime) -> dict[str, Any]:
    """A task as a `task` event carries it at `now` (see the module's docstring)."""
    run = task.runs[-1] if task.state is State.RUNNING and task.runs else None
    return {
        **task.to_json(runs=False),
        "run": None if run is None else run.to_json(),
        **task.elapsed_json(now),
    }


def _unchanged(data: dict[str, Any]) -> str:
    """A task event's data without the times that change at every look: what tells
    whether there is news of it."""
    return json.dumps({**data, "step_elapsed": None, "job_elapsed": None}, sort_keys=True)


def owner_title(task: Task) -> str:
    """A task's title as an owner link shows it: a command's title that is its command
    line (the default) would show its arguments, so the module id stands for it."""
    if task.target.kind is TargetKind.COMMAND and task.title == str(task.target):
        return task.module
    return task.title


def owner_json(task: Task) -> dict[str, Any]:
    """A task as an owner link's stream carries it: `OWNER_KEYS`, its newest run's start
    and end (null when none was loaded); never its command, data, result, host or pid."""
    run = task.last_run
    return {
        "id": task.id,
        "title": owner_title(task),
        "module": task.module,
        "state": task.state.value,
        "progress": None if task.progress is None else task.progress.to_json(),
        "due_at": iso(task.due_at),
        "started_at": None if run is None else iso(run.started_at),
        "ended_at": None if run is None else iso(run.ended_at),
    }


def task_event(task: Task, now: datetime) -> Event:
    """The `task` event of `task` at `now`."""
    return Event("task", task_json(task, now), task)


class Calls:
    """One `TaskCron` shared by every request, used by one worker thread at a time.

    A store's connection serves one transaction at a time; the store's calls
    are short, so they take turns rather than each opening its own.

    While the store is unreachable (a call failed with `StoreUnreachable`), a
    call before the next retry (`taskcron.outage.delay`) fails at once with the
    same error, without trying; the first call after it tries the store again
    (it reconnects by itself). `say` hears once that the store is lost and once
    that it is back.
    """

    def __init__(self, app: TaskCron, *, say: Say | None = None) -> None:
        self.app = app
        self._lock = threading.Lock()
        self.outage = Outage(say or _silent)
        self._why: errors.StoreUnreachable | None = None  #: The last failure, while down.

    async def __call__(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """`function(*args, **kwargs)` in a worker thread, holding the store."""

        def locked() -> T:
            with self._lock:
                return self._watched(function, *args, **kwargs)

        return await anyio.to_thread.run_sync(locked)

    async def aside(self, function: Callable[..., T], *args: Any) -> T:
        """`function(*args)` in a worker thread, holding the store, for a call that does
        not read the store: it tells nothing of whether the store is reachable."""

        def locked() -> T:
            with self._lock:
                return function(*args)

        return await anyio.to_thread.run_sync(locked)

    def _watched(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        if self._why is not None and not self.outage.due():
            raise errors.StoreUnreachable(str(self._why))  # a new one: no traceback grows
        try:
            result = function(*args, **kwargs)
        except errors.StoreUnreachable as exc:
            self._why = exc
            self.outage.lost(exc)
            raise
        self._why = None
        self.outage.back()
        return result


def _silent(lost: bool, message: str) -> None:
    """A `Say` that says nothing."""


@value(kw_only=False)
class Event:
    """One Server-Sent Event: `task` or `log`, its JSON data, and a `task` event's task."""

    name: str
    data: dict[str, Any]
    task: Task | None = field(default=None, compare=False, repr=False)

    def encode(self) -> str:
        """The event as the stream carries it (the JSON on one line)."""
        return f"event: {self.name}\ndata: {json.dumps(self.data)}\n\n"


class Listener:
    """One open page: what it wants to hear, and the events waiting for it.

    `owner` hears only that owner's tasks and no log records; otherwise `scope`
    limits tasks and `keep` (a log filter) the records. An owner link's listener
    (`linked`) hears each task as `owner_json` shows it.
    """

    def __init__(
        self,
        *,
        scope: Scope | None = None,
        owner: str | None = None,
        keep: Callable[[dict[str, Any]], bool] | None = None,
        linked: bool = False,
    ) -> None:
        self.scope = scope or Scope()
        self.owner = owner
        self.keep = keep
        self.linked = linked
        self.queue: asyncio.Queue[Event | None] = asyncio.Queue(maxsize=QUEUE)

    def wants(self, event: Event) -> bool:
        """Whether this page shows `event`."""
        if event.name == "task":
            if self.owner is not None and event.data.get("owner") != self.owner:
                return False
            return event.data.get("module") in self.scope
        if event.name == "counts":
            return self.owner is None
        return self.owner is None and (self.keep is None or self.keep(event.data))

    def offer(self, event: Event) -> bool:
        """Queue `event` if wanted; False when the page fell too far behind (drop it)."""
        if not self.wants(event):
            return True
        if self.linked:
            if event.task is None:
                return True
            event = Event(event.name, owner_json(event.task))
        elif event.name == "counts":
            modules = event.data["modules"].items()
            event = Event("counts", {"modules": {m: c for m, c in modules if m in self.scope}})
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            return False
        return True


class Hub:
    """Reads what changed once an `interval` while anyone listens, and tells every listener."""

    def __init__(self, calls: Calls, *, interval: float = 1.0) -> None:
        self.calls = calls
        self.interval = interval
        self.listeners: set[Listener] = set()
        self._running: dict[int, str] = {}  #: Each running task's last event, as sent.
        self._last: dict[int, Event] = {}
        self._counts: dict[str, dict[str, int]] | None = None  #: The last counts sent.
        self._feed: LogFeed | None = None
        #: The records read from the log in a look that failed: the next one sends them.
        self._unsent: list[dict[str, Any]] = []
        self._watch_at = 0.0  #: When to look for missed runs next (monotonic seconds).

    def add(self, listener: Listener) -> None:
        """Start telling `listener`, first of the tasks running now; the counts are sent
        to every page at the next look (they may have moved since its page was drawn)."""
        self.listeners.add(listener)
        self._counts = None
        for event in self._last.values():
            listener.offer(event)

    def remove(self, listener: Listener) -> None:
        """Stop telling `listener`."""
        self.listeners.discard(listener)

    def publish(self, events: list[Event]) -> None:
        """Tell every listener of `events`; one that fell behind is ended."""
        for listener in list(self.listeners):
            if not all(listener.offer(event) for event in events):
                self.listeners.discard(listener)
                while not listener.queue.empty():
                    listener.queue.get_nowait()
                listener.queue.put_nowait(None)

    async def run(self) -> None:
        """Poll and publish until cancelled, looking at once when the store tells of a
        task. While the store is unreachable, open streams stay open (with their
        keep-alives) and the hub tries again as `Calls` allows."""
        wakes = _Wakes(self.calls)  # of this run's event loop
        try:
            while True:
                told = wakes.take()
                try:
                    if self.listeners:
                        self.publish(await self.calls(self._poll, told))
                    else:
                        await self.calls.aside(self._skip)
                except errors.StoreError:
                    pass  # the next look tries again (`Calls` said if it is unreachable)
                await wakes.pause(max(self.interval, self.calls.outage.wait()))
        finally:
            wakes.close()
            if self._feed is not None:
                self._feed.close()

    def _skip(self) -> None:
        """With nobody listening, read past the log's new records and forget the running
        tasks: the next listener hears what happens from then on, and what runs then."""
        self._records(self.calls.app)
        self._running, self._last, self._counts, self._unsent = {}, {}, None, []

    def _poll(self, told: set[int]) -> list[Event]:
        app = self.calls.app
        if time.monotonic() >= self._watch_at:  # as a tick does, every WATCH_EVERY
            self._watch_at = time.monotonic() + WATCH_EVERY
            watch_missed(app)  # its alerts go beside the pages (`Recorder.queue_alerts`)
        records = self._unsent = (self._unsent + self._records(app))[-QUEUE:]
        events: list[Event] = []
        running: dict[int, str] = {}
        last: dict[int, Event] = {}
        now = app.clock()
        for task in app.running():
            event = task_event(task, now)
            running[task.id] = text = _unchanged(event.data)
            last[task.id] = event
            if self._running.get(task.id) != text:
                events.append(event)
        named = {r["task"] for r in records if isinstance(r.get("task"), int)} | told
        for task_id in sorted((named | set(self._running)) - set(running)):
            try:
                events.append(task_event(app.get(task_id), now))
            except errors.TaskNotFoundError:
                continue  # removed
        moved = bool(events or named) or self._counts is None
        counts = self._recount(moved)
        self._running, self._last, self._unsent = running, last, []
        return events + [Event("log", record) for record in records] + counts

    def _recount(self, moved: bool) -> list[Event]:
        """A `counts` event when tasks `moved` and the counts are not those last sent."""
        if not moved:
            return []
        status = self.calls.app.status(count=0)
        counts = {module: dict(states) for module, states in status.modules.items()}
        if counts == self._counts:
            return []
        self._counts = counts
        return [Event("counts", {"modules": counts})]

    def _records(self, app: TaskCron) -> list[dict[str, Any]]:
        if self._feed is None:
            try:
                self._feed = app.log_feed()
            except errors.TaskcronError:
                return []  # no home yet: nothing is logged
            return []
        return self._feed.poll()


class _Wakes:
    """The hub's wake-ups: the store's `WakeSource` read by the event loop, and the ids
    of the tasks it told of since the last look. Lost, it is opened again after the
    store's retry delays (at once, then 0.1 s, doubling up to 2 s)."""

    def __init__(self, calls: Calls) -> None:
        self._calls = calls
        self._source: WakeSource | None = None
        self._fd = -1
        self._told: set[int] = set()
        self._woken = asyncio.Event()
        self._failures = 0
        self._retry_at = 0.0  #: Monotonic seconds: no new source before.

    def take(self) -> set[int]:
        """The ids told of since the last call (`TOLD` of them at most)."""
        told, self._told = self._told, set()
        return set(sorted(told)[:TOLD])

    async def pause(self, interval: float) -> None:
        """Wait `interval` seconds, or until told of a task, but `GAP` at least."""
        await asyncio.sleep(min(GAP, interval))
        await self._listen()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._woken.wait(), max(interval - GAP, 0))
        self._woken.clear()

    async def _listen(self) -> None:
        if self._source is not None or time.monotonic() < self._retry_at:
            return
        try:
            source = await self._calls(self._calls.app.wake_source)
        except errors.TaskcronError:
            self._lost()
            return
        if source is None:  # the store cannot tell: the poll alone
            self._retry_at = math.inf
            return
        self._source, self._fd, self._failures = source, source.fileno(), 0
        asyncio.get_running_loop().add_reader(self._fd, self._heard)

    def _heard(self) -> None:
        assert self._source is not None
        try:
            ids = self._source.drain()
        except errors.StoreError:
            self.close()
            self._lost()
            return
        if len(self._told) < QUEUE:
            self._told.update(int(text) for text in ids if text.isdigit())
        self._woken.set()

    def _lost(self) -> None:
        self._failures += 1
        self._retry_at = time.monotonic() + delay(self._failures)

    def close(self) -> None:
        """Stop reading the source, and release its connection."""
        source, self._source = self._source, None
        if source is not None:
            asyncio.get_running_loop().remove_reader(self._fd)
            source.close()


class Quota:
    """How many event streams each principal holds open, at most `most` each."""

    def __init__(self, most: int) -> None:
        self.most = most
        self.open: dict[str, int] = {}  #: Principal -> streams open; none once all closed.

    def take(self, principal: str) -> bool:
        """Count one more stream of `principal`; False (nothing counted) at the limit."""
        held = self.open.get(principal, 0)
        if held >= self.most:
            return False
        self.open[principal] = held + 1
        return True

    def give_back(self, principal: str) -> None:
        """Count one stream of `principal` fewer."""
        held = self.open.get(principal, 0) - 1
        if held > 0:
            self.open[principal] = held
        else:
            self.open.pop(principal, None)
