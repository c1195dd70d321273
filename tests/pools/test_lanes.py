"""The `Store` contract for a pool's claim: lanes instead of one task at a time.

Runs against every implementation through the `store` fixture (see conftest).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from taskcron.model import Lanes, Outcome, Recurrence, Scope, State
from taskcron.store import Claim, ClaimOutcome, Store
from tests.store.conftest import (
    T0,
    StoreFactory,
    at,
    decide,
    lease,
    new_task,
    schedule_briefs_example,
)
from tests.store.test_contract import EVERYTHING, claim, claim_at_once, end

ONE = Lanes()


def take(store: Store, now: datetime, lanes: Lanes = ONE, scope: Scope = EVERYTHING) -> Claim:
    """A pool's claim: lanes, no busy rule."""
    return claim(store, now, scope=scope, lanes=lanes)


def taken(store: Store, now: datetime, lanes: Lanes = ONE, scope: Scope = EVERYTHING) -> str:
    """The title of the task a pool's claim takes, or the claim's outcome when it takes none."""
    got = take(store, now, lanes, scope)
    if got.outcome is not ClaimOutcome.CLAIMED:
        return got.outcome.value
    assert got.task is not None
    return got.task.title


def finish(store: Store, claimed: Claim, now: datetime) -> None:
    assert claimed.run is not None
    store.finish_run(claimed.run.id, end(Outcome.DONE, now), decide=decide)


def running(store: Store, module: str) -> int:
    return len(store.list(scope=Scope(modules=(module,)), states=(State.RUNNING,)))


def test_width_one_runs_one_task_of_each_module_at_a_time(store: Store) -> None:
    for offset, (title, module) in enumerate([("a1", "a"), ("a2", "a"), ("b1", "b"), ("a3", "a")]):
        store.schedule(new_task(module, title=title, due_at=at(offset)), now=T0)

    first = take(store, at(10))
    assert taken(store, at(10)) == "b1"
    assert taken(store, at(10)) == "idle"
    finish(store, first, at(11))
    assert taken(store, at(11)) == "a2"
    assert taken(store, at(11)) == "idle"


def test_width_three_runs_three_tasks_of_a_module_and_never_four(store: Store) -> None:
    for i in range(5):
        store.schedule(new_task("mail.eu", title=f"m{i}", due_at=at(i)), now=T0)
    lanes = Lanes({"mail": 3})

    claims = [take(store, at(10), lanes) for _ in range(3)]
    assert [c.task.title for c in claims if c.task is not None] == ["m0", "m1", "m2"]
    assert taken(store, at(10), lanes) == "idle"
    assert running(store, "mail.eu") == 3

    finish(store, claims[1], at(11))
    assert taken(store, at(11), lanes) == "m3"
    assert taken(store, at(11), lanes) == "idle"
    assert running(store, "mail.eu") == 3


def test_a_lane_is_one_module_id_not_its_whole_subtree(store: Store) -> None:
    for module in ("mail", "mail.eu", "mail.us"):
        store.schedule(new_task(module, title=module), now=T0)
        store.schedule(new_task(module, title=module), now=T0)

    titles = sorted(taken(store, at(1)) for _ in range(4))

    assert titles == ["idle", "mail", "mail.eu", "mail.us"]


def test_a_full_lane_never_holds_up_another_module(store: Store) -> None:
    store.schedule(new_task("a", title="a1", due_at=at(0)), now=T0)
    store.schedule(new_task("b", title="b1", priority=-9, due_at=at(1)), now=T0)
    store.schedule(new_task("a", title="a2", priority=9, due_at=at(2)), now=T0)

    assert taken(store, at(10)) == "a1"  # "b1" is older than "a2": the bound
    assert taken(store, at(10)) == "b1"  # "a"'s lane is full: "a2" waits, "b" goes on


def test_the_order_rule_holds_among_the_modules_whose_lane_has_room(store: Store) -> None:
    schedule_briefs_example(store)

    a2 = take(store, at(10))
    assert a2.task is not None and a2.task.title == "a2"
    assert [taken(store, at(10)) for _ in range(4)] == ["ax", "b2", "c1", "idle"]
    finish(store, a2, at(11))
    # "b"'s lane is full, so "b1" bounds nothing: "a3" outranks the older "a1".
    assert taken(store, at(11)) == "a3"


def test_lanes_count_tasks_running_anywhere_in_the_store(
    store: Store, store_factory: StoreFactory, tmp_path: Path
) -> None:
    store.schedule(new_task("a", title="a1"), now=T0)
    store.schedule(new_task("a", title="a2"), now=T0)
    store.schedule(new_task("b", title="b1"), now=T0)
    tick = claim(store, at(1), scope=Scope(modules=("a",)))  # a plain tick, another scope
    assert tick.task is not None and tick.task.title == "a1"
    other = store_factory(tmp_path)
    try:
        assert taken(other, at(2)) == "b1"
        assert taken(other, at(2), scope=Scope(modules=("a",))) == "idle"
        assert taken(other, at(2), Lanes({"a": 2})) == "a2"
    finally:
        other.close()


def test_a_running_recurring_task_is_never_claimed_twice(store: Store) -> None:
    every = Recurrence(every=timedelta(seconds=1))
    store.schedule(new_task("r", title="r", recurrence=every), now=T0)
    lanes = Lanes({"r": 3})

    first = take(store, at(5), lanes)

    assert first.task is not None and first.task.state is State.RUNNING
    assert taken(store, at(5), lanes) == "idle"
    assert taken(store, at(60), lanes) == "idle"


def test_without_lanes_a_claim_is_still_busy_while_a_task_in_scope_runs(store: Store) -> None:
    store.schedule(new_task("a"), now=T0)
    store.schedule(new_task("b"), now=T0)
    take(store, at(1))

    assert claim(store, at(2)).outcome is ClaimOutcome.BUSY
    assert take(store, at(2)).outcome is ClaimOutcome.CLAIMED


def test_a_pools_claim_recovers_an_expired_lease_before_counting_its_lane(store: Store) -> None:
    store.schedule(new_task("a", title="stuck", max_attempts=1), now=T0)
    store.schedule(new_task("a", title="next", due_at=at(1)), now=T0)
    claim(store, at(0), holder=lease(at(0), ttl=timedelta(seconds=60)))

    got = take(store, at(60))

    assert [r.task.title for r in got.recovered] == ["stuck"]
    assert got.task is not None and got.task.title == "next"


def test_simultaneous_pool_claims_never_overfill_a_lane(
    store: Store, store_factory: StoreFactory, tmp_path: Path
) -> None:
    for _ in range(10):
        store.schedule(new_task("m"), now=T0)
    others = [store_factory(tmp_path) for _ in range(6)]
    try:
        claims = claim_at_once(others, [EVERYTHING] * len(others), at(1), lanes=Lanes({"m": 2}))
    finally:
        for other in others:
            other.close()

    assert sorted(c.outcome.value for c in claims) == ["idle"] * 4 + ["ran"] * 2
    assert running(store, "m") == 2
