"""The store's counters (missed runs, alerts decided) and the reads metrics make: on
every store, kept in the transaction of the write that causes them."""

from __future__ import annotations

from datetime import timedelta

from taskcron.model import Outcome, Recurrence, Retention, Scope
from taskcron.store import Store
from taskcron.values import replace
from tests.store.conftest import T0, at, new_task
from tests.store.test_history import run_recurring

EVERY_MINUTE = Recurrence(every=timedelta(minutes=1))


def test_missed_runs_are_counted_by_module_as_they_are_found(store: Store) -> None:
    for module in ("a", "a", "b.x"):
        new = replace(new_task(module, recurrence=EVERY_MINUTE), missed_after=timedelta(minutes=5))
        store.schedule(new, now=T0)

    assert store.counters() == ()
    assert len(store.mark_missed(at(600))) == 3
    assert store.mark_missed(at(601)) == []  # found once: counted once

    assert [(c.name, dict(c.labels), c.value) for c in store.counters()] == [
        ("missed", {"module": "a"}, 2),
        ("missed", {"module": "b.x"}, 1),
    ]


def test_alerts_are_counted_by_rule_and_channel_as_they_are_noted(store: Store) -> None:
    task = store.schedule(new_task("m"), now=T0)
    store.note_alerted(task.id, {"ops:failed": T0}, channels={("ops", "slack"): 2})
    store.note_alerted(task.id, {"ops:failed": at(1)}, channels={("ops", "slack"): 1})
    store.note_alerted(task.id, {"x:missed": at(1)}, channels={("x", "webhook"): 1})
    store.note_alerted(task.id + 99, {"x:missed": at(1)}, channels={("x", "webhook"): 1})

    assert [(c.name, dict(c.labels), c.value) for c in store.counters()] == [
        ("alerts", {"channel": "slack", "rule": "ops"}, 3),
        ("alerts", {"channel": "webhook", "rule": "x"}, 2),
    ]
    assert store.get(task.id).alerted == {
        "ops:failed": at(1).isoformat(),
        "x:missed": at(1).isoformat(),
    }


def test_recurring_tasks_come_with_their_last_success_through_trimming(store: Store) -> None:
    store.schedule(new_task("one.off"), now=T0)
    outcomes = [Outcome.DONE, Outcome.DONE, Outcome.FAILED, Outcome.FAILED, Outcome.FAILED]
    task = run_recurring(store, outcomes, Retention(keep_runs=1, keep_for=None))

    (found,) = store.recurring()
    assert (found.id, found.module, found.key, found.state) == (task.id, "m", None, "queued")
    assert found.due_at == task.due_at
    assert found.succeeded_at == at(120)  # the second run, trimmed runs between


def test_the_oldest_queued_task_of_each_module_is_read_from_the_line(store: Store) -> None:
    store.schedule(new_task("a", due_at=at(5)), now=T0)
    store.schedule(new_task("a", due_at=at(3)), now=T0)
    store.schedule(new_task("b", due_at=at(9)), now=T0)

    assert store.oldest_queued(Scope()) == {"a": at(3), "b": at(9)}
    assert store.oldest_queued(Scope(modules=("b",))) == {"b": at(9)}
