"""Backoff after a failure, and where a task goes after a run."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from taskcron.model import Outcome, State, Target, Task
from taskcron.schedule import JITTER, RetryPolicy, backoff

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=timezone.utc)
NOW = T0 + timedelta(minutes=3)
FIRST = timedelta(seconds=10)
CAP = timedelta(hours=1)


class FixedRandom(random.Random):
    """A random source whose every draw is `value`."""

    def __init__(self, value: float) -> None:
        super().__init__(0)
        self.value = value

    def random(self) -> float:
        return self.value


def make_task(**overrides: Any) -> Task:
    fields: dict[str, Any] = {
        "id": 1,
        "module": "a",
        "title": "t",
        "target": Target.task("t"),
        "due_at": T0,
        "created_at": T0,
        "updated_at": T0,
        "attempts": 1,
        "max_attempts": 3,
        "state": State.RUNNING,
    }
    fields.update(overrides)
    return Task(**fields)


def test_backoff_without_jitter_doubles_per_attempt() -> None:
    rng = FixedRandom(0.5)
    waits = [backoff(n, first=FIRST, cap=CAP, rng=rng) for n in range(1, 6)]
    assert waits == [timedelta(seconds=s) for s in (10, 20, 40, 80, 160)]


def test_backoff_after_no_attempt_is_the_first_wait() -> None:
    assert backoff(0, first=FIRST, cap=CAP, rng=FixedRandom(0.5)) == FIRST


@pytest.mark.parametrize(("draw", "factor"), [(0.0, 0.8), (0.25, 0.9), (0.75, 1.1)])
def test_backoff_jitter_spans_twenty_percent_either_way(draw: float, factor: float) -> None:
    wait = backoff(3, first=FIRST, cap=CAP, rng=FixedRandom(draw))
    assert wait.total_seconds() == pytest.approx(40 * factor)


@given(
    attempts=st.integers(min_value=1, max_value=40),
    first=st.integers(min_value=1, max_value=600),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_backoff_stays_within_twenty_percent_of_the_doubled_wait_and_under_the_cap(
    attempts: int, first: int, seed: int
) -> None:
    wait = backoff(
        attempts, first=timedelta(seconds=first), cap=CAP, rng=random.Random(seed)
    ).total_seconds()
    base = first * 2 ** (attempts - 1)
    assert wait <= CAP.total_seconds()
    if base * (1 + JITTER) <= CAP.total_seconds():
        assert base * (1 - JITTER) <= wait <= base * (1 + JITTER)
    else:
        assert wait >= min(base * (1 - JITTER), CAP.total_seconds())


def test_backoff_is_capped_at_the_longest_wait() -> None:
    rng = random.Random(1)
    assert backoff(30, first=FIRST, cap=CAP, rng=rng) == CAP
    assert backoff(10, first=FIRST, cap=timedelta(minutes=1), rng=rng) == timedelta(minutes=1)


def test_backoff_is_reproducible_with_a_seeded_random() -> None:
    a = [backoff(n, first=FIRST, cap=CAP, rng=random.Random(42)) for n in range(1, 5)]
    b = [backoff(n, first=FIRST, cap=CAP, rng=random.Random(42)) for n in range(1, 5)]
    assert a == b


def test_backoff_after_very_many_attempts_is_the_cap() -> None:
    assert backoff(5000, first=FIRST, cap=CAP, rng=random.Random(1)) == CAP


# --- RetryPolicy.after_run -------------------------------------------------


def policy(seed: int = 7) -> RetryPolicy:
    return RetryPolicy(first=FIRST, cap=CAP, rng=random.Random(seed))


def test_successful_run_makes_the_task_done_and_keeps_its_due_time() -> None:
    assert policy().after_run(make_task(), Outcome.DONE, NOW)[:2] == (State.DONE, T0)


def test_successful_last_attempt_is_done_not_failed() -> None:
    task = make_task(attempts=3, max_attempts=3)
    assert policy().after_run(task, Outcome.DONE, NOW)[:2] == (State.DONE, T0)


def test_step_that_asks_to_continue_is_queued_at_once() -> None:
    task = make_task(attempts=3, max_attempts=3)
    assert policy().after_run(task, Outcome.CONTINUED, NOW)[:2] == (State.QUEUED, NOW)


@pytest.mark.parametrize("outcome", [Outcome.FAILED, Outcome.TIMEOUT, Outcome.INTERRUPTED])
@pytest.mark.parametrize("attempts", [1, 2])
def test_failure_with_attempts_left_is_queued_after_the_backoff(
    outcome: Outcome, attempts: int
) -> None:
    task = make_task(attempts=attempts, max_attempts=3)
    state, due = policy(seed=7).after_run(task, outcome, NOW)[:2]
    expected = backoff(attempts, first=FIRST, cap=CAP, rng=random.Random(7))
    assert state is State.QUEUED
    assert due == NOW + expected
    base = FIRST * 2 ** (attempts - 1)
    assert NOW + base * 0.8 <= due <= NOW + base * 1.2


@pytest.mark.parametrize("outcome", [Outcome.FAILED, Outcome.TIMEOUT, Outcome.INTERRUPTED])
@pytest.mark.parametrize(("attempts", "max_attempts"), [(1, 1), (3, 3), (4, 3)])
def test_failure_with_attempts_spent_makes_the_task_failed(
    outcome: Outcome, attempts: int, max_attempts: int
) -> None:
    task = make_task(attempts=attempts, max_attempts=max_attempts)
    assert policy().after_run(task, outcome, NOW)[:2] == (State.FAILED, T0)


def test_retry_wait_follows_the_policys_first_wait_and_cap() -> None:
    tight = RetryPolicy(first=timedelta(seconds=1), cap=timedelta(seconds=3), rng=FixedRandom(0.5))
    waits = [
        tight.after_run(make_task(attempts=n, max_attempts=10), Outcome.FAILED, NOW)[1] - NOW
        for n in (1, 2, 3, 4)
    ]
    assert waits == [timedelta(seconds=s) for s in (1, 2, 3, 3)]
