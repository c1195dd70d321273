"""Moving a store: `dump` reads every task with its runs, `restore` writes them into an empty
store keeping their ids, in one transaction. Run against every implementation."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from taskcron import errors
from taskcron.model import Outcome, Progress, Recurrence, RunEnd, Scope, State, Task
from taskcron.store import LogRow, Store
from tests.store.conftest import T0, StoreFactory, at, decide, lease, new_task

EVERYTHING = Scope()


def open_in(store_factory: StoreFactory, directory: Path) -> Store:
    directory.mkdir()
    return store_factory(directory)


def claim_and_end(store: Store, now_s: float, outcome: Outcome, **fields: object) -> Task:
    """Claim the next due task at `now_s` and end its run with `outcome`; the task as left."""
    now = at(now_s)
    got = store.claim_next(scope=EVERYTHING, now=now, lease=lease(now), decide=decide)
    assert got.run is not None, got
    end = RunEnd(outcome=outcome, ended_at=now, elapsed=0.25, **fields)  # type: ignore[arg-type]
    finished = store.finish_run(got.run.id, end, decide=decide)
    assert finished is not None
    return finished


def fill(store: Store) -> list[Task]:
    """Tasks in many states, with runs of every outcome and every optional field set."""
    done = store.schedule(new_task("a", title="done", data_json='{"n": 1}'), now=T0)
    claim_and_end(
        store,
        1,
        Outcome.DONE,
        result_json='{"sent": 3}',
        output_tail="line\n",
        exit_code=0,
        progress=Progress(done=3, total=3, message="all", updated_at=at(1)),
    )
    failed = store.schedule(new_task("b", title="fails", due_at=at(2)), now=T0)
    claim_and_end(
        store,
        3,
        Outcome.FAILED,
        error="ValueError: no",
        traceback="Traceback (most recent call last):\n  ...\nValueError: no\n",
        output_tail="x" * 100,
        truncated=True,
    )
    job = store.schedule(new_task("c", title="job", due_at=at(4)), now=T0)
    claim_and_end(store, 5, Outcome.CONTINUED, state_json='{"offset": 100}')
    recurring = new_task(
        "d",
        due_at=at(3600),
        timeout=timedelta(seconds=30),
        recurrence=Recurrence(cron="0 6 * * mon", tz="Europe/Berlin"),
        owner="user-7",
        priority=-3,
    )
    store.schedule(recurring, now=at(6))
    store.schedule(new_task("e", recurrence=Recurrence(every=timedelta(minutes=5))), now=at(6))
    paused = store.schedule(new_task("f", due_at=at(7200)), now=at(6))
    store.transition(paused.id, action="pause", allowed=[State.QUEUED], to=State.PAUSED, now=at(7))
    gone = store.schedule(new_task("g"), now=at(7))
    store.remove(gone.id)
    assert {done.id, failed.id, job.id} < {t.id for t in store.dump()}
    return list(store.dump())


def test_dump_gives_every_task_with_all_its_runs_in_id_order_across_batches(
    store: Store,
) -> None:
    dumped = fill(store)
    assert [t.id for t in dumped] == sorted(t.id for t in dumped)
    assert dumped == [store.get(t.id) for t in dumped]
    assert list(store.dump(batch=2)) == dumped
    assert [len(t.runs) for t in dumped][:3] == [1, 1, 1]


def test_restore_writes_every_task_and_run_as_dumped(
    store_factory: StoreFactory, tmp_path: Path
) -> None:
    source = open_in(store_factory, tmp_path / "source")
    target = open_in(store_factory, tmp_path / "target")
    dumped = fill(source)
    assert target.restore(source.dump()) == (len(dumped), sum(len(t.runs) for t in dumped))
    assert list(target.dump()) == dumped
    assert [t.to_json() for t in target.dump()] == [t.to_json() for t in dumped]
    assert target.integrity() == []
    by_module = {t.module: t for t in dumped}
    assert by_module["b"].runs[0].traceback is not None
    assert by_module["c"].step_state_json == '{"offset": 100}'
    assert by_module["d"].recurrence == Recurrence(cron="0 6 * * mon", tz="Europe/Berlin")


def test_restore_keeps_each_tasks_runs_counted_those_trimmed_too(
    store_factory: StoreFactory, tmp_path: Path
) -> None:
    source = open_in(store_factory, tmp_path / "source")
    target = open_in(store_factory, tmp_path / "target")
    dumped = fill(source)
    target.restore(source.dump())

    counted = [target.get(t.id).outcomes for t in dumped]
    assert counted == [source.get(t.id).outcomes for t in dumped]
    assert counted[:3] == [(("done", 1),), (("failed", 1),), (("continued", 1),)]


def test_ids_handed_out_after_a_restore_come_after_the_highest_restored(
    store_factory: StoreFactory, tmp_path: Path
) -> None:
    source = open_in(store_factory, tmp_path / "source")
    target = open_in(store_factory, tmp_path / "target")
    dumped = fill(source)
    target.restore(source.dump())
    highest_run = max(run.id for task in dumped for run in task.runs)
    task = target.schedule(new_task("z", due_at=T0), now=at(10))
    assert task.id > max(t.id for t in dumped)
    got = target.claim_next(
        scope=Scope.parse(["z"]), now=at(10), lease=lease(at(10)), decide=decide
    )
    assert got.run is not None and got.run.id > highest_run


def test_restore_never_moves_ids_back(store_factory: StoreFactory, tmp_path: Path) -> None:
    source = open_in(store_factory, tmp_path / "source")
    target = open_in(store_factory, tmp_path / "target")
    first = source.schedule(new_task(), now=T0)
    used = [target.schedule(new_task(), now=T0) for _ in range(5)]
    for task in used:
        target.remove(task.id)
    target.restore(source.dump())
    assert target.schedule(new_task(), now=T0).id > max(first.id, *(t.id for t in used))


def test_restore_into_a_store_that_holds_tasks_is_refused_before_reading_any(
    store_factory: StoreFactory, tmp_path: Path
) -> None:
    target = open_in(store_factory, tmp_path / "target")
    held = target.schedule(new_task("kept"), now=T0)

    def never_read() -> Iterator[Task]:
        raise AssertionError("the tasks were read")
        yield  # a generator: the error comes only if restore reads it

    with pytest.raises(errors.StoreNotEmptyError) as caught:
        target.restore(never_read())
    assert (caught.value.tasks, caught.value.runs) == (1, 0)
    assert "already holds 1 task and 0 runs" in str(caught.value)
    assert list(target.dump()) == [held]


def test_restore_with_a_running_task_writes_nothing(
    store_factory: StoreFactory, tmp_path: Path
) -> None:
    source = open_in(store_factory, tmp_path / "source")
    target = open_in(store_factory, tmp_path / "target")
    for n in range(5):
        source.schedule(new_task(f"m{n}"), now=T0)
    claimed = source.claim_next(
        scope=Scope.parse(["m4"]), now=at(1), lease=lease(at(1)), decide=decide
    )
    assert claimed.task is not None
    with pytest.raises(errors.TasksRunningError) as caught:
        target.restore(source.dump(), batch=2)
    assert caught.value.task_ids == (claimed.task.id,)
    assert list(target.dump()) == []
    assert target.schedule(new_task(), now=T0).id == 1


def test_restore_writes_the_runs_counted_by_module_and_by_minute(
    store_factory: StoreFactory, tmp_path: Path
) -> None:
    source = open_in(store_factory, tmp_path / "source")
    target = open_in(store_factory, tmp_path / "target")
    fill(source)
    totals, minutes = source.outcome_totals(), source.outcome_minutes(since=T0)
    assert [(t.module, t.outcome, t.runs) for t in totals] == [
        ("a", "done", 1),
        ("b", "failed", 1),
        ("c", "continued", 1),
    ]
    assert len(minutes) == 3

    target.restore(source.dump(), totals=totals, minutes=minutes, batch=2)

    assert target.outcome_totals() == totals
    assert target.outcome_minutes(since=T0) == minutes


def test_restore_adds_the_counts_to_those_of_tasks_removed_from_the_target(
    store_factory: StoreFactory, tmp_path: Path
) -> None:
    source = open_in(store_factory, tmp_path / "source")
    target = open_in(store_factory, tmp_path / "target")
    fill(source)
    earlier = target.schedule(new_task("a"), now=T0)
    claim_and_end(target, 1, Outcome.DONE)
    target.remove(earlier.id)

    target.restore(
        source.dump(), totals=source.outcome_totals(), minutes=source.outcome_minutes(since=T0)
    )

    done = next(t for t in target.outcome_totals() if t.module == "a")
    assert (done.runs, done.seconds) == (2, 0.5)
    (minute,) = [m for m in target.outcome_minutes(since=T0) if m.module == "a"]
    assert (minute.runs, minute.seconds) == (2, 0.5)


def test_a_restore_that_fails_in_the_log_writes_no_task_and_no_count(
    store_factory: StoreFactory, tmp_path: Path
) -> None:
    """The log goes in last: SQLite keeps no log table, and PostgreSQL's refuses a NUL."""
    source = open_in(store_factory, tmp_path / "source")
    target = open_in(store_factory, tmp_path / "target")
    fill(source)
    row = LogRow(
        at=T0,
        host="a\0b",
        level="info",
        event="x",
        task_id=None,
        module=None,
        record="{}",
        records=1,
    )

    with pytest.raises(errors.TaskcronError):
        target.restore(
            source.dump(),
            totals=source.outcome_totals(),
            minutes=source.outcome_minutes(since=T0),
            log=[row],
        )

    assert list(target.dump()) == []
    assert (target.outcome_totals(), target.outcome_minutes(since=T0)) == ((), ())
