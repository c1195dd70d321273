"""The store's side of long jobs: saved state, steps, attempts and progress (every backend)."""

from __future__ import annotations

from datetime import timedelta

from taskcron.model import Outcome, Progress, Recurrence, RunEnd, State
from taskcron.store import Store
from tests.store.conftest import T0, at, decide, new_task
from tests.store.test_contract import claim


def step(store: Store, now_s: float, outcome: Outcome, **fields: object) -> None:
    got = claim(store, at(now_s))
    assert got.run is not None, got.outcome
    end = RunEnd(outcome=outcome, ended_at=at(now_s + 1), elapsed=1.0, **fields)  # type: ignore[arg-type]
    assert store.finish_run(got.run.id, end, decide=decide) is not None


def test_a_continued_step_saves_its_state_counts_a_step_and_uses_no_attempt(store: Store) -> None:
    task = store.schedule(new_task(max_attempts=2), now=T0)
    step(store, 0, Outcome.CONTINUED, state_json='{"offset": 100}')
    saved = store.get(task.id)
    assert (saved.state, saved.attempts, saved.steps) == (State.QUEUED, 0, 1)
    assert saved.step_state_json == '{"offset": 100}'
    assert saved.due_at == at(1)


def test_a_failed_step_keeps_the_saved_state_and_a_finished_job_clears_it(store: Store) -> None:
    task = store.schedule(new_task(max_attempts=3), now=T0)
    step(store, 0, Outcome.CONTINUED, state_json='{"offset": 100}')
    step(store, 2, Outcome.INTERRUPTED)
    kept = store.get(task.id)
    assert (kept.step_state_json, kept.steps, kept.attempts) == ('{"offset": 100}', 1, 1)
    step(store, 100, Outcome.DONE)
    done = store.get(task.id)
    assert (done.state, done.step_state_json, done.steps) == (State.DONE, None, 0)


def test_a_delayed_continue_comes_back_no_sooner(store: Store) -> None:
    task = store.schedule(new_task(), now=T0)
    step(store, 0, Outcome.CONTINUED, state_json="{}", resume_at=at(601))
    assert store.get(task.id).due_at == at(601)


def test_a_recurring_job_continues_on_the_same_occurrence_then_waits_for_its_next(
    store: Store,
) -> None:
    hourly = Recurrence(every=timedelta(hours=1))
    task = store.schedule(new_task(recurrence=hourly), now=T0)
    step(store, 0, Outcome.CONTINUED, state_json='{"page": 2}')
    assert store.get(task.id).due_at == at(1)
    step(store, 2, Outcome.DONE)
    after = store.get(task.id)
    assert (after.state, after.step_state_json, after.steps) == (State.QUEUED, None, 0)
    assert after.due_at == at(3) + timedelta(hours=1)


def test_progress_is_stored_while_the_run_is_current_and_kept_when_it_ends(store: Store) -> None:
    task = store.schedule(new_task(), now=T0)
    got = claim(store, at(0))
    assert got.run is not None
    half = Progress(done=5, total=10, message="half", updated_at=at(0.5))
    assert store.save_progress(got.run.id, half)
    assert store.get(task.id).progress == half
    last = Progress(done=10, total=10, updated_at=at(0.9))
    end = RunEnd(outcome=Outcome.DONE, ended_at=at(1), elapsed=1.0, progress=last)
    store.finish_run(got.run.id, end, decide=decide)
    assert store.get(task.id).progress == last
    assert not store.save_progress(got.run.id, half)  # the run is over: fenced
