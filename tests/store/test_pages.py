"""The `Store` contract for pages of `list` and for moving a due time only sooner.

Runs against every implementation through the `store` fixture (see conftest).
"""

from __future__ import annotations

import pytest

from taskcron import errors
from taskcron.model import Scope, State
from taskcron.store import Store
from tests.store.conftest import T0, at, new_task
from tests.store.test_contract import ALL_STATES, EVERYTHING, claim, run_one


def fill(store: Store) -> None:
    """Twelve tasks in three modules and four states, due in a shuffled order."""
    for i, due in enumerate((7, 3, 11, 0, 5, 9, 1, 10, 4, 8, 2, 6)):
        owner = "ann" if i % 3 == 0 else None
        store.schedule(new_task(("a", "a.x", "b")[i % 3], due_at=at(due), owner=owner), now=T0)
    for task in store.list(scope=EVERYTHING, states=(State.QUEUED,))[:2]:
        store.transition(task.id, action="pause", allowed=(State.QUEUED,), to=State.PAUSED, now=T0)
    run_one(store, at(100))
    claim(store, at(101))


@pytest.mark.parametrize(
    ("scope", "states", "owner"),
    [
        (EVERYTHING, ALL_STATES, None),
        (EVERYTHING, (State.QUEUED, State.PAUSED), None),
        (Scope(modules=("a",)), ALL_STATES, None),
        (Scope(excepts=("a.x",)), (State.QUEUED, State.DONE, State.PAUSED), None),
        (EVERYTHING, ALL_STATES, "ann"),
        (Scope(modules=("b",)), (State.QUEUED,), "ann"),
    ],
)
def test_pages_cut_the_list_in_line_order(
    store: Store, scope: Scope, states: tuple[State, ...], owner: str | None
) -> None:
    fill(store)
    whole = [t.id for t in store.list(scope=scope, states=states, owner=owner)]

    def page(limit: int, offset: int) -> list[int]:
        found = store.page(scope=scope, states=states, owner=owner, limit=limit, offset=offset)
        return [t.id for t in found]

    for limit in (1, 3, 5, 20):
        pages = [page(limit, offset) for offset in range(0, len(whole) + limit, limit)]
        assert [i for page in pages for i in page] == whole
        assert all(len(page) <= limit for page in pages)
        assert pages[-1] == []


def test_a_page_past_the_end_or_of_no_state_is_empty(store: Store) -> None:
    fill(store)

    assert store.page(scope=EVERYTHING, states=ALL_STATES, limit=5, offset=50) == []
    assert store.page(scope=EVERYTHING, states=(), limit=5) == []
    assert store.page(scope=Scope(modules=("zzz",)), states=ALL_STATES, limit=5) == []


def test_sooner_only_moves_a_due_time_earlier_never_later(store: Store) -> None:
    later = store.schedule(new_task("a", due_at=at(500)), now=T0)
    due = store.schedule(new_task("a", due_at=at(5)), now=T0)

    def run_now(task_id: int) -> int:
        moved = store.transition(
            task_id,
            action="run now",
            allowed=(State.QUEUED,),
            to=State.QUEUED,
            now=at(60),
            due_at=at(60),
            sooner_only=True,
        )
        return int((moved.due_at - T0).total_seconds())

    assert run_now(later.id) == 60
    assert run_now(due.id) == 5
    store.transition(due.id, action="pause", allowed=(State.QUEUED,), to=State.PAUSED, now=T0)
    with pytest.raises(errors.StateError, match=f"cannot run now task {due.id}: it is paused"):
        run_now(due.id)
