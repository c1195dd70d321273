"""The order rule: FIFO across module ids, priority within a module id."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from taskcron.model import Lanes
from taskcron.order import Candidate, pick_next, run_order
from tests.conftest import BRIEFS_EXAMPLE

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=timezone.utc)


def line(*specs: tuple[str, str, int]) -> tuple[dict[int, str], list[Candidate]]:
    """Candidates due one second apart in the order given, and their names by id."""
    names: dict[int, str] = {}
    due: list[Candidate] = []
    for i, (name, module, priority) in enumerate(specs, start=1):
        names[i] = name
        due.append(Candidate(i, module, priority, T0 + timedelta(seconds=i)))
    return names, due


def test_the_briefs_example_runs_in_the_documented_order() -> None:
    names, due = line(*BRIEFS_EXAMPLE)
    assert [names[c.id] for c in run_order(due)] == ["a2", "a1", "ax", "a3", "b2", "b1", "c1"]


def test_nothing_due_picks_nothing() -> None:
    assert pick_next([]) is None
    assert run_order([]) == []


def test_priority_never_jumps_another_modules_older_task() -> None:
    names, due = line(("b1", "b", 0), ("a1", "a", 1000))
    assert [names[c.id] for c in run_order(due)] == ["b1", "a1"]


def test_equal_due_times_are_ordered_by_id() -> None:
    due = [Candidate(2, "a", 0, T0), Candidate(1, "b", 0, T0)]
    assert [c.id for c in run_order(due)] == [1, 2]


def test_equal_priorities_in_a_module_run_oldest_first() -> None:
    names, due = line(("a1", "a", 3), ("a2", "a", 3), ("a3", "a", 3))
    assert [names[c.id] for c in run_order(due)] == ["a1", "a2", "a3"]


def test_module_under_another_is_a_module_of_its_own() -> None:
    names, due = line(("a1", "a", 0), ("ax", "a.x", 0), ("a2", "a", 50))
    assert [names[c.id] for c in run_order(due)] == ["a1", "ax", "a2"]


def test_with_lanes_a_full_module_steps_out_of_the_line() -> None:
    names, due = line(("a1", "a", 0), ("b1", "b", 0), ("a2", "a", 9))
    chosen = pick_next(due, lanes=Lanes(), running=["a"])
    assert chosen is not None and names[chosen.id] == "b1"
    assert pick_next(due, lanes=Lanes(), running=["a", "b"]) is None


def test_with_lanes_only_modules_with_room_bound_a_modules_priority() -> None:
    names, due = line(("a1", "a", 0), ("b1", "b", 0), ("a2", "a", 9))
    plain = pick_next(due)
    assert plain is not None and names[plain.id] == "a1"
    chosen = pick_next(due, lanes=Lanes(), running=["b"])
    assert chosen is not None and names[chosen.id] == "a2"


def test_with_lanes_a_wide_lane_takes_tasks_until_it_is_full() -> None:
    names, due = line(("m1", "mail.eu", 0), ("m2", "mail.eu", 0))
    wide = Lanes({"mail": 2})
    chosen = pick_next(due, lanes=wide, running=["mail.eu"])
    assert chosen is not None and names[chosen.id] == "m1"
    assert pick_next(due, lanes=wide, running=["mail.eu", "mail.eu"]) is None


def test_without_lanes_running_tasks_change_nothing() -> None:
    _, due = line(("a1", "a", 0), ("b1", "b", 0))
    assert pick_next(due, running=["a", "a"]) == pick_next(due)


# --- properties -------------------------------------------------------------

candidates = st.lists(
    st.tuples(
        st.sampled_from(["a", "a.x", "b", "c"]),
        st.integers(min_value=-3, max_value=3),
        st.integers(min_value=0, max_value=5),
    ),
    max_size=25,
).map(
    lambda specs: [
        Candidate(i, module, priority, T0 + timedelta(minutes=offset))
        for i, (module, priority, offset) in enumerate(specs, start=1)
    ]
)


def oldest_by_module(due: list[Candidate]) -> dict[str, Candidate]:
    heads: dict[str, Candidate] = {}
    for c in sorted(due, key=lambda c: c.position):
        heads.setdefault(c.module, c)
    return heads


@given(candidates)
def test_chosen_task_is_in_the_module_of_the_oldest_task(due: list[Candidate]) -> None:
    chosen = pick_next(due)
    if not due:
        assert chosen is None
        return
    assert chosen is not None
    assert chosen.module == min(due, key=lambda c: c.position).module


@given(candidates)
def test_chosen_task_is_older_than_every_other_modules_oldest_task(due: list[Candidate]) -> None:
    chosen = pick_next(due)
    if chosen is None:
        assert due == []
        return
    for module, head in oldest_by_module(due).items():
        if module != chosen.module:
            assert chosen.position < head.position


@given(candidates)
def test_chosen_task_has_the_highest_priority_of_its_eligible_tasks(due: list[Candidate]) -> None:
    chosen = pick_next(due)
    if chosen is None:
        assert due == []
        return
    others = [h.position for m, h in oldest_by_module(due).items() if m != chosen.module]
    bound = min(others, default=None)
    eligible = [
        c for c in due if c.module == chosen.module and (bound is None or c.position < bound)
    ]
    assert chosen in eligible
    best = max(c.priority for c in eligible)
    assert chosen.priority == best
    assert chosen.position == min(c.position for c in eligible if c.priority == best)


@given(candidates)
def test_run_order_runs_every_task_exactly_once(due: list[Candidate]) -> None:
    order = run_order(due)
    assert sorted(c.id for c in order) == sorted(c.id for c in due)


@given(candidates)
def test_tasks_of_equal_priority_in_a_module_keep_their_fifo_order(due: list[Candidate]) -> None:
    order = run_order(due)
    for c in order:
        same = [d for d in order if d.module == c.module and d.priority == c.priority]
        assert same == sorted(same, key=lambda d: d.position)
