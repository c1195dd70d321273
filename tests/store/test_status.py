"""What `status` reads from a store: counts by module and state, the running tasks with
their runs, the next queued tasks and the last failures (the `Store` contract, every
implementation), and how far a run got (SqliteStore)."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from taskcron.model import Outcome, Progress, Recurrence, Scope, State, Task
from taskcron.store import ClaimOutcome, Store
from taskcron.store.sqlite import SqliteStore
from tests.store.conftest import HOST, T0, at, decide, lease, new_task
from tests.store.test_contract import EVERYTHING, SCOPE_MODULES, claim, end

HOURLY = Recurrence(every=timedelta(hours=1))


def run_to(store: Store, task: Task, outcome: Outcome | None, now: datetime) -> Task:
    """Claim `task` (alone in its module) at `now` and end its run with `outcome`; None leaves
    it running. The task as left."""
    got = claim(store, now, scope=Scope(modules=(task.module,)))
    assert got.outcome is ClaimOutcome.CLAIMED and got.task is not None and got.run is not None
    assert got.task.id == task.id
    if outcome is None:
        return got.task
    finished = store.finish_run(got.run.id, end(outcome, now), decide=decide)
    assert finished is not None
    return finished


def move(store: Store, task: Task, to: State, *, now: datetime = T0, **fields: Any) -> Task:
    """Put `task` in state `to` from whatever state it is in, with `transition`'s `fields`."""
    state = store.get(task.id).state
    return store.transition(task.id, action="move", allowed=(state,), to=to, now=now, **fields)


# --- counts ---------------------------------------------------------------------------


def test_counts_are_empty_for_an_empty_store(store: Store) -> None:
    assert store.counts(EVERYTHING) == {}


def test_counts_give_each_module_its_tasks_by_state_leaving_out_empty_states(
    store: Store,
) -> None:
    for _ in range(3):
        store.schedule(new_task("app"), now=T0)
    store.schedule(new_task("app.mail", due_at=at(1)), now=T0)
    done = store.schedule(new_task("billing"), now=T0)
    run_to(store, done, Outcome.DONE, at(2))
    move(store, store.schedule(new_task("billing"), now=T0), State.PAUSED)
    move(store, store.schedule(new_task("billing"), now=T0), State.CANCELLED)
    failed = store.schedule(new_task("reports"), now=T0)
    run_to(store, failed, Outcome.FAILED, at(3))
    running = store.schedule(new_task("sync"), now=T0)
    run_to(store, running, None, at(4))

    assert store.counts(EVERYTHING) == {
        "app": {"queued": 3},
        "app.mail": {"queued": 1},
        "billing": {"done": 1, "paused": 1, "cancelled": 1},
        "reports": {"failed": 1},
        "sync": {"running": 1},
    }


@pytest.mark.parametrize(
    ("scope", "expected"),
    [
        (Scope(modules=("e",)), ["e", "e.a", "e.a.b"]),
        (Scope(modules=("e-x", "f")), ["e-x", "f"]),
        (Scope(excepts=("e",)), ["e-x", "e0", "f"]),
        (Scope(modules=("e", "f"), excepts=("e.a.b",)), ["e", "e.a", "f"]),
    ],
    ids=repr,
)
def test_counts_cover_the_scope_and_nothing_else(
    store: Store, scope: Scope, expected: list[str]
) -> None:
    for module in SCOPE_MODULES:
        store.schedule(new_task(module), now=T0)

    assert store.counts(scope) == {module: {"queued": 1} for module in expected}


# --- running --------------------------------------------------------------------------


def test_running_gives_each_running_task_with_only_its_current_run(store: Store) -> None:
    recurring = store.schedule(new_task("sync", recurrence=HOURLY), now=T0)
    run_to(store, recurring, Outcome.DONE, at(0))
    move(store, recurring, State.QUEUED, due_at=T0)
    run_to(store, recurring, None, at(50))
    older = store.schedule(new_task("mail"), now=T0)
    run_to(store, older, None, at(10))
    store.schedule(new_task("idle"), now=T0)

    running = store.running(EVERYTHING)

    assert [(t.id, t.state) for t in running] == [
        (older.id, State.RUNNING),
        (recurring.id, State.RUNNING),
    ]
    assert [len(t.runs) for t in running] == [1, 1]
    current = running[1].runs[0]
    assert (current.attempt, current.started_at, current.host, current.outcome) == (
        1,
        at(50),
        HOST,
        None,
    )
    assert current == store.get(recurring.id).runs[-1]
    assert [t.id for t in store.running(Scope(excepts=("sync",)))] == [older.id]


# --- next due -------------------------------------------------------------------------


def test_running_gives_a_job_in_steps_the_start_of_its_first_step(store: Store) -> None:
    job = store.schedule(new_task("import", recurrence=HOURLY), now=T0)
    run_to(store, job, Outcome.CONTINUED, at(0))
    run_to(store, job, Outcome.DONE, at(5))  # the first job ends here
    move(store, job, State.QUEUED, due_at=T0)
    for second in (60, 70):
        run_to(store, job, Outcome.CONTINUED, at(second))
    run_to(store, job, None, at(80))
    single = store.schedule(new_task("mail"), now=T0)
    run_to(store, single, None, at(90))

    running = {task.id: task for task in store.running(EVERYTHING)}

    assert running[job.id].job_started_at == at(60)
    assert running[job.id].elapsed(at(100)) == (timedelta(seconds=20), timedelta(seconds=40))
    assert running[single.id].job_started_at is None
    assert running[single.id].elapsed(at(100)) == (timedelta(seconds=10),) * 2


def test_next_due_gives_the_first_queued_tasks_by_due_time_then_id_across_modules(
    store: Store,
) -> None:
    dues = {"a": [30, 10, 50], "b": [10, 20], "c": [5, 60], "d": [40]}
    ids = {
        (module, due): store.schedule(new_task(module, due_at=at(due)), now=T0).id
        for module, times in dues.items()
        for due in times
    }
    move(store, store.schedule(new_task("a", due_at=at(1)), now=T0), State.PAUSED)
    running = store.schedule(new_task("e", due_at=at(0)), now=T0)
    run_to(store, running, None, at(0))

    expected = [("c", 5), ("a", 10), ("b", 10), ("b", 20), ("a", 30)]
    assert [t.id for t in store.next_due(EVERYTHING, count=5)] == [ids[k] for k in expected]
    assert [t.state for t in store.next_due(EVERYTHING, count=5)] == [State.QUEUED] * 5
    assert len(store.next_due(EVERYTHING, count=50)) == len(ids)
    assert store.next_due(EVERYTHING, count=0) == []
    in_a = store.next_due(Scope(modules=("a",)), count=5)
    assert [t.id for t in in_a] == [ids[("a", 10)], ids[("a", 30)], ids[("a", 50)]]
    assert store.next_due(Scope(excepts=("a", "b", "c")), count=5)[0].id == ids[("d", 40)]


# --- failures -------------------------------------------------------------------------


def test_failures_are_failed_tasks_and_waiting_tasks_whose_last_run_failed_newest_first(
    store: Store,
) -> None:
    failed = run_to(store, store.schedule(new_task("a"), now=T0), Outcome.FAILED, at(10))
    timed_out = store.schedule(new_task("b", recurrence=HOURLY), now=T0)
    timed_out = run_to(store, timed_out, Outcome.TIMEOUT, at(30))
    retrying = store.schedule(new_task("c", max_attempts=3), now=T0)
    retrying = run_to(store, retrying, Outcome.FAILED, at(20))
    recovered = store.schedule(new_task("d", recurrence=HOURLY), now=T0)
    run_to(store, recovered, Outcome.FAILED, at(1))
    move(store, recovered, State.QUEUED, due_at=T0)
    run_to(store, recovered, Outcome.DONE, at(40))
    interrupted = store.schedule(new_task("e", max_attempts=2), now=T0)
    run_to(store, interrupted, Outcome.INTERRUPTED, at(50))
    retried = run_to(store, store.schedule(new_task("f"), now=T0), Outcome.FAILED, at(5))
    move(store, retried, State.QUEUED, now=at(60), reset_attempts=True)
    run_to(store, store.schedule(new_task("g"), now=T0), Outcome.DONE, at(70))

    found = store.failures(EVERYTHING, count=5)

    assert [(t.id, t.state, t.last_outcome) for t in found] == [
        (timed_out.id, State.QUEUED, Outcome.TIMEOUT),
        (retrying.id, State.QUEUED, Outcome.FAILED),
        (failed.id, State.FAILED, Outcome.FAILED),
    ]
    assert [t.id for t in store.failures(EVERYTHING, count=2)] == [timed_out.id, retrying.id]
    assert [t.id for t in store.failures(Scope(excepts=("b",)), count=5)] == [
        retrying.id,
        failed.id,
    ]
    assert store.failures(Scope(modules=("a-b",)), count=5) == []


def test_a_paused_task_whose_last_run_failed_stays_among_the_failures(store: Store) -> None:
    task = store.schedule(new_task("a", recurrence=HOURLY), now=T0)
    task = run_to(store, task, Outcome.FAILED, at(10))
    paused = move(store, task, State.PAUSED)

    assert [(t.id, t.state) for t in store.failures(EVERYTHING, count=5)] == [
        (paused.id, State.PAUSED)
    ]


# --- progress (SqliteStore) -----------------------------------------------------------


def test_saved_progress_is_read_with_the_task_and_kept_once_the_run_ends(tmp_path: Path) -> None:
    with SqliteStore(tmp_path / "tasks.db", host=HOST) as store:
        store.schedule(new_task("a"), now=T0)
        got = store.claim_next(scope=EVERYTHING, now=T0, lease=lease(T0), decide=decide)
        assert got.run is not None and got.task is not None and got.task.progress is None
        progress = Progress(done=4, total=10, message="copying", updated_at=at(3))

        assert store.save_progress(got.run.id, progress)

        assert store.get(got.task.id).progress == progress
        assert store.running(EVERYTHING)[0].progress == progress
        store.finish_run(got.run.id, end(Outcome.DONE, at(5)), decide=decide)
        assert store.get(got.task.id).progress == progress
        assert not store.save_progress(got.run.id, Progress(done=5, updated_at=at(6)))
        assert store.get(got.task.id).progress == progress
