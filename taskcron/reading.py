"""What the reading commands show of a home's tasks (`list`, `next`, `status`, `running`),
their inputs checked first. Reading never creates a home or a store."""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from taskcron import errors
from taskcron import schedule as schedule_module
from taskcron.inputs import INT64, check_owner, int64
from taskcron.model import ACTIVE_STATES, Scope, State, Task
from taskcron.values import value

if TYPE_CHECKING:
    from taskcron.home import Home

Upcoming = list[tuple[datetime, Task]]

STATUS_COUNT = 5  #: How many next due tasks, and how many failures, `status` shows.
MAX_UPCOMING = 10_000  #: The most due times `upcoming` (`next -n`) lists: each is held in memory.


@value
class Status:
    """What `taskcron status` shows of a scope, read at `read_at`.

    `modules` counts tasks by module id and state (module ids and states
    that have tasks); `running` are the running tasks, each with its current
    run as its only run (its start and host), the oldest first; `next` the
    first queued tasks by due time; `failures` the most recently updated
    tasks that are `failed`, or waiting to run again after a run that failed
    or timed out.
    """

    read_at: datetime  #: When it was read: a running task's elapsed time runs to it.
    modules: Mapping[str, Mapping[str, int]]
    running: tuple[Task, ...] = ()
    next: tuple[Task, ...] = ()
    failures: tuple[Task, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """`{"modules": {MODULE: {STATE: COUNT}}, "running", "next", "failures": [TASK]}`,
        each task as `show --json` prints it, without its runs; a running task with its
        `step_elapsed` and `job_elapsed` at `read_at` too (see `Task.elapsed`)."""
        return {
            "modules": {module: dict(counts) for module, counts in self.modules.items()},
            "running": [
                {**task.to_json(runs=False), **task.elapsed_json(self.read_at)}
                for task in self.running
            ],
            "next": [task.to_json(runs=False) for task in self.next],
            "failures": [task.to_json(runs=False) for task in self.failures],
        }


def tasks(
    home: Home,
    scope: Scope,
    *,
    state: State | str | None,
    all: bool,
    owner: str | None,
    limit: int | None,
    offset: int,
) -> list[Task]:
    """The tasks `TaskCron.list` returns, its inputs checked."""
    if state is not None:
        states: Iterable[State] = (State.parse(state) if isinstance(state, str) else state,)
    else:
        states = tuple(State) if all else ACTIVE_STATES
    if limit is not None and int64("limit", limit) < 1:
        raise errors.InputError(f"invalid limit {limit}: must be at least 1")
    if int64("offset", offset) < 0:
        raise errors.InputError(f"invalid offset {offset}: must be 0 or more")
    if limit is not None and offset > INT64[1] - limit:  # a page's end no store can count to
        raise errors.InputError(f"invalid offset {offset}: out of range")
    check_owner(owner)
    store = home.existing_store()
    if store is None:
        return []
    if limit is None:
        return store.list(scope=scope, states=states, owner=owner)[offset:]
    return store.page(scope=scope, states=states, owner=owner, limit=limit, offset=offset)


def upcoming(home: Home, scope: Scope, count: int) -> Upcoming:
    """The next `count` due times of queued tasks in scope (see `TaskCron.upcoming`)."""
    if not 0 <= int64("count", count) <= MAX_UPCOMING:
        raise errors.InputError(f"invalid count {count}: expected 0 to {MAX_UPCOMING}")
    queued = tasks(home, scope, state=State.QUEUED, all=False, owner=None, limit=None, offset=0)
    heap = [(task.due_at, task.id, task) for task in queued]
    heapq.heapify(heap)
    found: Upcoming = []
    while heap and len(found) < count:
        due, _, task = heapq.heappop(heap)
        found.append((due, task))
        if task.recurrence is not None:
            later = schedule_module.next_due(task.recurrence, due)
            heapq.heappush(heap, (later, task.id, task))
    return found


def status(home: Home, scope: Scope, count: int) -> Status:
    """The tasks in scope at a glance (see `TaskCron.status`)."""
    if int64("count", count) < 0:
        raise errors.InputError(f"invalid count {count}: must be 0 or more")
    store = home.existing_store()
    now = home.clock()
    if store is None:
        return Status(read_at=now, modules={})
    return Status(
        read_at=now,
        modules=store.counts(scope),
        running=tuple(store.running(scope)),
        next=tuple(store.next_due(scope, count=count)),
        failures=tuple(store.failures(scope, count=count)),
    )


def running(home: Home, scope: Scope) -> list[Task]:
    """The running tasks in scope, each with its current run (see `TaskCron.running`)."""
    store = home.existing_store()
    return [] if store is None else store.running(scope)
