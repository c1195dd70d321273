"""The PostgreSQL claim's common path is one call of the claim function; whenever a
dead run may need recovering or a late task skipping, the claim is the whole of it
in Python, as on SQLite. Round trips are counted from libpq's trace of the store's
connection: a batch of messages sent, then the answers read, is one trip."""

from __future__ import annotations

import itertools
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from taskcron.model import Lanes, Next, Outcome, Progress, RunEnd, Scope, State, Task
from taskcron.store import Claim, ClaimOutcome, Lease, NewTask
from taskcron.store.postgres import PostgresStore
from taskcron.values import replace
from tests.pgserver import PostgresServer
from tests.store.conftest import HOST, T0, at, decide, lease, new_task

EVERYTHING = Scope()
LANES = Lanes({"m": 4})


@pytest.fixture
def store(postgres_url: str) -> Iterator[PostgresStore]:
    """A store on a fresh database, driven by the tests' clock."""
    opened = PostgresStore(postgres_url, clock="caller")
    yield opened
    opened.close()


def trips(store: PostgresStore, tmp_path: Path, call: Callable[[], Claim]) -> tuple[Claim, int]:
    """What `call` returned, and how many round trips it made on the store's connection."""
    trace = tmp_path / f"trace-{len(list(tmp_path.iterdir()))}"
    with trace.open("w") as sink:
        store._db.pgconn.trace(sink.fileno())
        try:
            got = call()
        finally:
            store._db.pgconn.untrace()
    sides = [line.split("\t")[1] for line in trace.read_text().splitlines() if "\t" in line]
    return got, sum(1 for a, b in itertools.pairwise(sides) if (a, b) == ("F", "B"))


def claim(
    store: PostgresStore,
    now: datetime,
    *,
    holder: Lease | None = None,
    lanes: Lanes | None = None,
    skip: Callable[[Task, datetime], Next] | None = None,
) -> Callable[[], Claim]:
    return lambda: store.claim_next(
        scope=EVERYTHING, now=now, lease=holder or lease(now), decide=decide, lanes=lanes, skip=skip
    )


def late_task() -> NewTask:
    """A task of m.a due at T0 that may run up to 30 s late."""
    return replace(new_task("m.a"), max_lateness=timedelta(seconds=30))


def to_the_back(task: Task, now: datetime) -> Next:
    return Next(State.QUEUED, now + timedelta(hours=1))


@pytest.fixture
def live_pid() -> Iterator[int]:
    """A process of this machine that lives for the test."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    yield child.pid
    child.kill()
    child.wait(timeout=30)


def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait(timeout=30)
    return proc.pid


@pytest.mark.parametrize("lanes", [None, LANES], ids=["tick", "pool"])
def test_a_claim_with_nothing_to_recover_is_one_round_trip(
    store: PostgresStore, tmp_path: Path, lanes: Lanes | None
) -> None:
    first = store.schedule(new_task("m.a", priority=0), now=T0)
    second = store.schedule(new_task("m.a", priority=5, due_at=at(1)), now=T0)

    got, cost = trips(store, tmp_path, claim(store, at(10), lanes=lanes))

    assert cost == 1
    assert got.outcome is ClaimOutcome.CLAIMED
    assert got.task is not None and got.task.id == second.id  # priority, within the module
    assert got.run is not None and got.task.runs == (got.run,)
    assert got.task.state is State.RUNNING and got.run.attempt == 1
    assert store.get(second.id).runs[-1] == got.run
    assert store.get(first.id).state is State.QUEUED


def test_a_claim_returns_the_task_as_the_full_claim_does(
    store: PostgresStore, tmp_path: Path
) -> None:
    task = store.schedule(new_task("m.a", max_attempts=3), now=T0)
    done = claim(store, at(0))()
    assert done.run is not None
    failed = RunEnd(outcome=Outcome.FAILED, ended_at=at(1), elapsed=1.0)
    store.finish_run(done.run.id, failed, decide=decide)
    due = store.get(task.id).due_at

    fast, cost = trips(store, tmp_path, claim(store, due))

    assert cost == 1
    assert fast.task is not None and fast.task.outcomes == (("failed", 1),)
    assert fast.task == replace(store.get(task.id), runs=fast.task.runs)
    assert fast.task.last_outcome is None


def test_a_busy_scope_is_one_round_trip(store: PostgresStore, tmp_path: Path) -> None:
    running = store.schedule(new_task("m.a"), now=T0)
    store.schedule(new_task("m.b"), now=T0)
    holder = Lease(host="elsewhere", pid=1, expires_at=at(600))
    claim(store, at(0), holder=holder)()

    got, cost = trips(store, tmp_path, claim(store, at(1)))

    assert cost == 1
    assert got.outcome is ClaimOutcome.BUSY and got.recovered == ()
    assert got.task is not None and got.task.id == running.id


def test_an_expired_lease_in_scope_is_recovered_by_the_full_claim(
    store: PostgresStore, tmp_path: Path
) -> None:
    stuck = store.schedule(new_task("m.a"), now=T0)
    waiting = store.schedule(new_task("m.b", due_at=at(1)), now=T0)
    claim(store, at(0), holder=Lease(host="elsewhere", pid=1, expires_at=at(60)))()

    got, cost = trips(store, tmp_path, claim(store, at(61), lanes=LANES))

    assert cost > 1
    assert [item.task.id for item in got.recovered] == [stuck.id]
    assert got.recovered[0].run.outcome is Outcome.INTERRUPTED
    assert got.task is not None and got.task.id == waiting.id


def test_an_expired_lease_out_of_scope_leaves_the_claim_one_round_trip(
    store: PostgresStore, tmp_path: Path
) -> None:
    stuck = store.schedule(new_task("other"), now=T0)
    waiting = store.schedule(new_task("m.a", due_at=at(1)), now=T0)
    claim(store, at(0), holder=Lease(host="elsewhere", pid=1, expires_at=at(60)))()

    got, cost = trips(
        store,
        tmp_path,
        lambda: store.claim_next(
            scope=Scope(modules=("m",)), now=at(61), lease=lease(at(61)), decide=decide
        ),
    )

    assert cost == 1 and got.recovered == ()
    assert got.task is not None and got.task.id == waiting.id
    assert store.get(stuck.id).state is State.RUNNING


def test_a_dead_pid_of_this_machine_in_scope_is_recovered_by_the_full_claim(
    store: PostgresStore, tmp_path: Path
) -> None:
    stuck = store.schedule(new_task("m.a"), now=T0)
    waiting = store.schedule(new_task("m.b", due_at=at(1)), now=T0)
    pid = dead_pid()
    holder = Lease(host=HOST, machine=store.machine, pid=pid, expires_at=at(3600))
    claim(store, at(0), holder=holder, lanes=LANES)()

    got, cost = trips(store, tmp_path, claim(store, at(2), lanes=LANES))

    assert cost > 1
    assert [item.task.id for item in got.recovered] == [stuck.id]
    assert got.recovered[0].run.error and str(pid) in got.recovered[0].run.error
    assert got.task is not None and got.task.id == waiting.id


def test_a_live_pid_of_this_machine_is_checked_here_then_the_claim_is_the_function_s(
    store: PostgresStore, tmp_path: Path, live_pid: int
) -> None:
    running = store.schedule(new_task("m.a"), now=T0)
    tasks = [store.schedule(new_task("m.b", due_at=at(n)), now=T0) for n in (1, 2)]
    holder = Lease(host=HOST, machine=store.machine, pid=live_pid, expires_at=at(3600))
    claim(store, at(0), holder=holder, lanes=LANES)()

    first, cost = trips(store, tmp_path, claim(store, at(3), lanes=LANES))
    assert cost == 2  # the function names the pid, this process finds it alive, then claims
    again, cost_again = trips(store, tmp_path, claim(store, at(4), lanes=LANES))
    assert cost_again == 1  # a pid found alive goes with the call, checked again first

    assert first.recovered == () and again.recovered == ()
    assert [c.task.id for c in (first, again) if c.task] == [t.id for t in tasks]
    assert store.get(running.id).state is State.RUNNING


def test_a_live_pid_of_this_machine_makes_a_tick_busy(
    store: PostgresStore, tmp_path: Path, live_pid: int
) -> None:
    store.schedule(new_task("m.a"), now=T0)
    store.schedule(new_task("m.b"), now=T0)
    holder = Lease(host=HOST, machine=store.machine, pid=live_pid, expires_at=at(3600))
    claim(store, at(0), holder=holder)()

    got = claim(store, at(1))()

    assert got.outcome is ClaimOutcome.BUSY and got.recovered == ()


def test_a_late_task_with_a_skip_policy_is_skipped_by_the_full_claim(
    store: PostgresStore, tmp_path: Path
) -> None:
    late = store.schedule(late_task(), now=T0)
    waiting = store.schedule(new_task("m.b", due_at=at(1)), now=T0)

    got, cost = trips(store, tmp_path, claim(store, at(31), skip=to_the_back))

    assert cost > 1
    assert [task.id for task in got.skipped] == [late.id]
    assert store.get(late.id).due_at == at(31) + timedelta(hours=1)
    assert got.task is not None and got.task.id == waiting.id


@pytest.mark.parametrize("skip", [None, to_the_back], ids=["no-policy", "in-time"])
def test_a_task_in_time_or_without_a_skip_policy_is_claimed_in_one_round_trip(
    store: PostgresStore, tmp_path: Path, skip: Callable[[Task, datetime], Next] | None
) -> None:
    task = store.schedule(late_task(), now=T0)
    now = at(29) if skip is not None else at(300)

    got, cost = trips(store, tmp_path, claim(store, now, skip=skip))

    assert cost == 1 and got.skipped == ()
    assert got.task is not None and got.task.id == task.id


def test_a_server_going_away_between_claims_costs_the_next_claim_nothing(
    private_postgres: PostgresServer, tmp_path: Path
) -> None:
    url = private_postgres.create_database(private_postgres.unique_name())
    with PostgresStore(url, clock="caller") as store:
        store.schedule(new_task("m.a"), now=T0)
        store.schedule(new_task("m.b", due_at=at(1)), now=T0)
        assert claim(store, at(2), lanes=LANES)().run is not None
        cluster = private_postgres.cluster
        assert cluster is not None
        cluster.halt()
        cluster.resume()

        got = claim(store, at(3), lanes=LANES)()

        assert got.outcome is ClaimOutcome.CLAIMED


def done(now: datetime) -> RunEnd:
    return RunEnd(outcome=Outcome.DONE, ended_at=now, elapsed=1.0, result_json='"ok"')


def test_a_finish_of_a_task_this_store_claimed_is_one_round_trip_and_counts_the_run(
    store: PostgresStore, tmp_path: Path
) -> None:
    task = store.schedule(new_task("m.a"), now=T0)
    got = claim(store, at(0))()
    assert got.run is not None
    run_id = got.run.id

    finished, cost = trips(
        store, tmp_path, lambda: store.finish_run(run_id, done(at(2)), decide=decide)
    )

    assert cost == 1
    assert finished is not None and finished.state is State.DONE
    assert finished.last_outcome is Outcome.DONE and finished.outcomes == (("done", 1),)
    assert finished.result_json == '"ok"' and finished.runs_kept == 1
    assert finished == replace(store.get(task.id), runs=finished.runs)
    assert [(t.module, t.outcome, t.runs) for t in store.outcome_totals()] == [("m.a", "done", 1)]


@pytest.mark.parametrize("changer", ["this store", "another store"])
def test_a_task_changed_since_its_claim_is_finished_from_what_it_is_now(
    store: PostgresStore, postgres_url: str, tmp_path: Path, changer: str
) -> None:
    task = store.schedule(new_task("m.a"), now=T0)
    got = claim(store, at(0))()
    assert got.run is not None
    run_id = got.run.id
    with PostgresStore(postgres_url, clock="caller") as other:
        saver = store if changer == "this store" else other
        assert saver.save_progress(run_id, Progress(done=3, total=4, updated_at=at(1)))

    finished, cost = trips(
        store, tmp_path, lambda: store.finish_run(run_id, done(at(2)), decide=decide)
    )

    # Read under the lock, then written (2); after the function's "again" when another
    # process changed it (3).
    assert cost == (2 if changer == "this store" else 3)
    assert finished is not None and finished.state is State.DONE
    assert finished.progress == Progress(done=3, total=4, updated_at=at(1))
    assert finished == replace(store.get(task.id), runs=finished.runs)
    assert [(t.module, t.outcome, t.runs) for t in store.outcome_totals()] == [("m.a", "done", 1)]


def test_a_run_another_store_claimed_is_finished_in_two_round_trips(
    store: PostgresStore, postgres_url: str, tmp_path: Path
) -> None:
    task = store.schedule(new_task("m.a"), now=T0)
    with PostgresStore(postgres_url, clock="caller") as other:
        got = claim(other, at(0))()
    assert got.run is not None
    run_id = got.run.id

    finished, cost = trips(
        store, tmp_path, lambda: store.finish_run(run_id, done(at(2)), decide=decide)
    )

    assert cost == 2
    assert finished is not None and finished.state is State.DONE
    assert finished == replace(store.get(task.id), runs=finished.runs)


def test_a_run_recovered_since_its_claim_is_not_finished_by_the_one_trip_path(
    store: PostgresStore,
) -> None:
    task = store.schedule(new_task("m.a"), now=T0)
    store.schedule(new_task("m.b", due_at=at(1)), now=T0)
    got = claim(store, at(0), holder=Lease(host="elsewhere", pid=1, expires_at=at(60)))()
    assert got.run is not None
    later = claim(store, at(61), lanes=LANES)()
    assert [item.run.id for item in later.recovered] == [got.run.id]

    finished = store.finish_run(got.run.id, done(at(62)), decide=decide)

    assert finished is None
    assert store.get(task.id).runs[-1].outcome is Outcome.INTERRUPTED


def test_a_finish_after_the_server_went_away_starts_again_on_a_new_connection(
    private_postgres: PostgresServer,
) -> None:
    url = private_postgres.create_database(private_postgres.unique_name())
    with PostgresStore(url, clock="caller") as store:
        task = store.schedule(new_task("m.a"), now=T0)
        got = claim(store, at(0))()
        assert got.run is not None
        cluster = private_postgres.cluster
        assert cluster is not None
        cluster.halt()
        cluster.resume()

        finished = store.finish_run(got.run.id, done(at(1)), decide=decide)

        assert finished is not None and finished.state is State.DONE
        assert store.get(task.id).runs[-1].outcome is Outcome.DONE
