"""The store hands out tasks exactly as the order rule (`taskcron.order`) says.

Each hypothesis example gets a fresh store in its own temporary directory:
function-scoped fixtures are not reset between examples.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from taskcron.model import Lanes, Outcome, RunEnd, Scope, State
from taskcron.order import Candidate, pick_next, run_order
from taskcron.store import ClaimOutcome, Store
from tests.store.conftest import (
    T0,
    StoreFactory,
    at,
    decide,
    lease,
    new_task,
    schedule_briefs_example,
)

EVERYTHING = Scope()
MODULES = ("a", "a.x", "a.x.y", "a-b", "a0", "b", "b.c", "c")
#: (module, priority, due offset in seconds) of one task.
TaskSpec = tuple[str, int, int]

task_specs = st.lists(
    st.tuples(
        st.sampled_from(MODULES),
        st.integers(min_value=-3, max_value=3),
        st.sampled_from((0, 1, 2, 5)),
    ),
    min_size=1,
    max_size=14,
)
scopes = st.builds(
    lambda modules, excepts: Scope(modules=tuple(sorted(modules)), excepts=tuple(sorted(excepts))),
    # Overlapping modules ("a" with "a.x" or "a-b") included on purpose.
    st.sets(st.sampled_from(("a", "a.x", "b", "a-b")), max_size=3),
    st.sets(st.sampled_from(("a", "a.x", "b.c", "c")), max_size=2),
)


def schedule_all(store: Store, specs: list[TaskSpec]) -> list[Candidate]:
    """Schedule `specs` in list order; return them as the order rule sees them."""
    candidates = []
    for module, priority, offset in specs:
        task = store.schedule(new_task(module, priority=priority, due_at=at(offset)), now=T0)
        candidates.append(Candidate(task.id, task.module, task.priority, task.due_at))
    return candidates


def claim_all(store: Store, now: datetime, scope: Scope = EVERYTHING) -> list[int]:
    """Claim and finish tasks one by one until the scope is idle; return the ids in run order."""
    order: list[int] = []
    for _ in range(1000):
        got = store.claim_next(scope=scope, now=now, lease=lease(now), decide=decide)
        if got.outcome is ClaimOutcome.IDLE:
            return order
        assert got.outcome is ClaimOutcome.CLAIMED, got
        assert got.task is not None and got.run is not None
        order.append(got.task.id)
        finished = store.finish_run(
            got.run.id,
            RunEnd(outcome=Outcome.DONE, ended_at=now, elapsed=0.0),
            decide=decide,
        )
        assert finished is not None and finished.state is State.DONE
    raise AssertionError("claims never stop")


@settings(max_examples=60, deadline=None)
@given(specs=task_specs, scope=scopes)
def test_claims_follow_the_order_rule_for_any_due_tasks_and_scope(
    store_factory: StoreFactory, specs: list[TaskSpec], scope: Scope
) -> None:
    with tempfile.TemporaryDirectory() as directory:
        store = store_factory(Path(directory))
        try:
            candidates = schedule_all(store, specs)
            in_scope = [c for c in candidates if c.module in scope]

            claimed = claim_all(store, at(10), scope)

            assert claimed == [c.id for c in run_order(in_scope)]
            left = store.list(scope=Scope(), states=(State.QUEUED,))
            assert {t.id for t in left} == {c.id for c in candidates if c.module not in scope}
        finally:
            store.close()


lanes = st.dictionaries(
    st.sampled_from(("a", "a.x", "b", "c")), st.integers(min_value=1, max_value=3), max_size=3
).map(Lanes)
#: A pool's life: claim in the generated scope (0), claim in every scope (1), or
#: finish the n-th running task (n >= 2, modulo how many run).
steps = st.lists(st.integers(min_value=0, max_value=6), min_size=1, max_size=40)


@settings(max_examples=60, deadline=None)
@given(specs=task_specs, scope=scopes, widths=lanes, plan=steps)
def test_claims_in_lanes_follow_the_order_rule_among_lanes_with_room(
    store_factory: StoreFactory, specs: list[TaskSpec], scope: Scope, widths: Lanes, plan: list[int]
) -> None:
    """Each pool's claim takes what `pick_next` with lanes names; no lane ever overfills."""
    with tempfile.TemporaryDirectory() as directory:
        store = store_factory(Path(directory))
        try:
            queued = {c.id: c for c in schedule_all(store, specs)}
            running: dict[int, tuple[str, int]] = {}  # task id -> (module, run id)
            now = at(10)
            for step in plan:
                if step >= 2 and running:
                    task_id = sorted(running)[step % len(running)]
                    end = RunEnd(outcome=Outcome.DONE, ended_at=now, elapsed=0.0)
                    assert store.finish_run(running.pop(task_id)[1], end, decide=decide)
                    continue
                where = scope if step == 0 else EVERYTHING
                expected = pick_next(
                    (c for c in queued.values() if c.module in where),
                    lanes=widths,
                    running=[module for module, _ in running.values()],
                )

                got = store.claim_next(
                    scope=where, now=now, lease=lease(now), decide=decide, lanes=widths
                )

                if expected is None:
                    assert got.outcome is ClaimOutcome.IDLE, got
                    continue
                assert got.outcome is ClaimOutcome.CLAIMED, got
                assert got.task is not None and got.run is not None
                assert got.task.id == expected.id
                running[queued.pop(expected.id).id] = (expected.module, got.run.id)
                stored = store.list(scope=EVERYTHING, states=(State.RUNNING,))
                assert sorted(t.id for t in stored) == sorted(running)
                lanes_used = Counter(t.module for t in stored)
                assert all(n <= widths.width(m) for m, n in lanes_used.items()), lanes_used
        finally:
            store.close()


def test_the_briefs_example_runs_in_the_briefs_order(store: Store) -> None:
    names = schedule_briefs_example(store)

    order = [names[i] for i in claim_all(store, at(60))]

    assert order == ["a2", "a1", "ax", "a3", "b2", "b1", "c1"]


@settings(max_examples=40, deadline=None)
@given(
    own=st.lists(st.integers(min_value=-3, max_value=3), min_size=1, max_size=6),
    jumper=st.integers(min_value=4, max_value=1000),
)
def test_priority_never_jumps_another_modules_older_task(
    store_factory: StoreFactory, own: list[int], jumper: int
) -> None:
    """A high-priority task of "a" waits for "b"'s older task; "a"'s own older work does not."""
    with tempfile.TemporaryDirectory() as directory:
        store = store_factory(Path(directory))
        try:
            a_old = [
                store.schedule(new_task("a", priority=p, due_at=at(0)), now=T0).id for p in own
            ]
            b_old = store.schedule(new_task("b", priority=-3, due_at=at(1)), now=T0).id
            urgent = store.schedule(new_task("a", priority=jumper, due_at=at(2)), now=T0).id

            claimed = claim_all(store, at(10))

            assert claimed.index(b_old) < claimed.index(urgent)
            # The module's own older work runs by priority (ties: older first) before "b".
            expected_a = [i for _, i in sorted(zip((-p for p in own), a_old, strict=True))]
            assert claimed[: len(a_old) + 1] == [*expected_a, b_old]
        finally:
            store.close()


def test_a_busy_module_cannot_starve_another_module(store: Store) -> None:
    """However much high-priority work "a" keeps getting, "b"'s task runs in its turn."""
    b_task = store.schedule(new_task("b", priority=-100, due_at=at(1)), now=T0)
    store.schedule(new_task("a", priority=0, due_at=at(0)), now=T0)
    now = at(2)
    served = []
    for step in range(5):
        store.schedule(new_task("a", priority=100, due_at=now), now=now)
        got = store.claim_next(scope=Scope(), now=now, lease=lease(now), decide=decide)
        assert got.task is not None and got.run is not None
        served.append(got.task.id)
        store.finish_run(
            got.run.id, RunEnd(outcome=Outcome.DONE, ended_at=now, elapsed=0), decide=decide
        )
        now += timedelta(seconds=step + 1)

    assert b_task.id in served[:2]
