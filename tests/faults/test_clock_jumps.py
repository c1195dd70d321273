"""Clock jumps: a tick whose wall clock goes back an hour or forward a day neither runs
a task twice nor loses a recurring one.

The clock is the API's (`TaskCron(clock=...)`), moved the way NTP or a wrong
manual setting moves a host's: each tick reads it afresh. Recurring tasks of
each kind (cron, every) and a one-off task share the home.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from taskcron import TaskCron
from taskcron.config import Config
from taskcron.model import Outcome, State
from tests.conftest import FakeClock

JUMPS = {
    "back an hour": timedelta(hours=-1),
    "forward a day": timedelta(days=1),
    "back a day": timedelta(days=-1),
}


def drain(tc: TaskCron) -> int:
    """Tick until nothing is due; how many tasks ran."""
    ran = 0
    while tc.tick().outcome == "ran":
        ran += 1
        assert ran < 100, "a tick kept finding work"
    return ran


@pytest.mark.parametrize("name", JUMPS)
def test_a_jumping_clock_runs_nothing_twice_and_loses_no_recurring_task(
    home: Path, clock: FakeClock, name: str
) -> None:
    jump = JUMPS[name]
    tc = TaskCron(config=Config(home=home, timezone="UTC"), clock=clock)
    hourly = tc.schedule("jobs.hourly", command=["true"], cron="0 * * * *").id
    every = tc.schedule("jobs.every", command=["true"], every="30m").id
    once = tc.schedule("jobs.once", command=["true"], delay="10m").id
    clock.advance(timedelta(hours=1))
    assert drain(tc) == 3
    runs_before = {task_id: len(tc.get(task_id).runs) for task_id in (hourly, every, once)}

    clock.advance(jump)
    after_jump = drain(tc)

    # Going back, nothing that ran is due again; going forward, each recurring task runs
    # once for all the time skipped (coalesced), and the one-off never again.
    assert after_jump == (2 if jump > timedelta(0) else 0)
    assert len(tc.get(once).runs) == runs_before[once] == 1
    assert tc.get(once).state is State.DONE
    for task_id in (hourly, every):
        task = tc.get(task_id)
        assert task.state is State.QUEUED, task  # never lost
        assert len(task.runs) == runs_before[task_id] + (1 if jump > timedelta(0) else 0)
        assert all(run.outcome is Outcome.DONE for run in task.runs)
        assert task.due_at > clock.now  # due again in the future, by the clock as it now reads

    # And the schedules go on from there: once both are due (by the clock as it now
    # reads, later after a jump back), each recurring task runs once.
    clock.advance(max(tc.get(task_id).due_at for task_id in (hourly, every)) - clock.now)
    assert drain(tc) == 2
    print(f"\nclock {name}: {after_jump} runs after the jump, none twice, none lost")
    tc.close()
