"""The `Store` contract for owners: stored, filtered by, and cancelled by owner.

Runs against every implementation through the `store` fixture (see conftest).
"""

from __future__ import annotations

from taskcron.model import Outcome, Scope, State
from taskcron.store import ClaimOutcome, Store
from tests.store.conftest import T0, at, decide, new_task
from tests.store.test_contract import ALL_STATES, EVERYTHING, claim, end


def test_an_owner_round_trips_through_schedule_get_and_list(store: Store) -> None:
    created = store.schedule(new_task(owner="session:7f3a é"), now=T0)

    assert created.owner == "session:7f3a é"
    assert store.get(created.id) == created
    (listed,) = store.list(scope=EVERYTHING, states=ALL_STATES)
    assert listed.owner == "session:7f3a é"


def test_a_task_scheduled_without_an_owner_has_none(store: Store) -> None:
    created = store.schedule(new_task(), now=T0)

    assert created.owner is None
    assert store.get(created.id).owner is None


def test_list_with_an_owner_keeps_only_that_owners_tasks_in_scope_and_states(
    store: Store,
) -> None:
    mine_a = store.schedule(new_task("a", owner="ann", due_at=at(2)), now=T0)
    store.schedule(new_task("a", owner="bob", due_at=at(1)), now=T0)
    store.schedule(new_task("a", due_at=at(0)), now=T0)
    mine_b = store.schedule(new_task("b", owner="ann", due_at=at(1)), now=T0)
    paused = store.schedule(new_task("b", owner="ann", due_at=at(0)), now=T0)
    store.transition(paused.id, action="pause", allowed=(State.QUEUED,), to=State.PAUSED, now=T0)

    def ids(owner: str, scope: Scope = EVERYTHING, *states: State) -> list[int]:
        listed = store.list(scope=scope, states=states or (State.QUEUED,), owner=owner)
        return [t.id for t in listed]

    assert ids("ann") == [mine_b.id, mine_a.id]
    assert ids("ann", Scope(modules=("a",))) == [mine_a.id]
    assert ids("ann", EVERYTHING, State.QUEUED, State.PAUSED) == [paused.id, mine_b.id, mine_a.id]
    assert ids("nobody") == []
    assert len(store.list(scope=EVERYTHING, states=(State.QUEUED,))) == 4


def test_cancel_owned_cancels_the_owners_queued_and_paused_tasks_only(store: Store) -> None:
    running = store.schedule(new_task("r", owner="ann"), now=T0)
    done = store.schedule(new_task("d", owner="ann"), now=T0)
    queued = store.schedule(new_task("q", owner="ann", due_at=at(50)), now=T0)
    paused = store.schedule(new_task("p", owner="ann", due_at=at(5)), now=T0)
    store.transition(paused.id, action="pause", allowed=(State.QUEUED,), to=State.PAUSED, now=T0)
    other = store.schedule(new_task("q", owner="bob"), now=T0)
    unowned = store.schedule(new_task("q"), now=T0)
    finished = claim(store, at(1), scope=Scope(modules=("d",)))
    assert finished.run is not None
    store.finish_run(finished.run.id, end(Outcome.DONE, at(1)), decide=decide)
    assert claim(store, at(2), scope=Scope(modules=("r",))).outcome is ClaimOutcome.CLAIMED
    untouched = {t.id: store.get(t.id) for t in (running, done, other, unowned)}

    cancelled = store.cancel_owned("ann", now=at(9))

    assert cancelled == [store.get(paused.id), store.get(queued.id)]  # as left, in line order
    assert all(t.state is State.CANCELLED and t.updated_at == at(9) for t in cancelled)
    assert {i: store.get(i) for i in untouched} == untouched
    assert store.list(scope=EVERYTHING, states=(State.QUEUED, State.PAUSED), owner="ann") == []


def test_cancel_owned_with_nothing_waiting_changes_nothing(store: Store) -> None:
    task = store.schedule(new_task(owner="bob"), now=T0)

    assert store.cancel_owned("ann", now=at(1)) == []
    assert store.get(task.id) == task


def test_an_owners_cancelled_tasks_are_never_claimed(store: Store) -> None:
    store.schedule(new_task("a", owner="ann"), now=T0)
    kept = store.schedule(new_task("b", owner="bob", due_at=at(1)), now=T0)
    store.cancel_owned("ann", now=at(2))

    got = claim(store, at(3))

    assert got.task is not None and got.task.id == kept.id
    assert claim(store, at(4), scope=Scope(modules=("a",))).outcome is ClaimOutcome.IDLE
