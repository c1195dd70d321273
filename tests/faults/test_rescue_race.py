"""The rescue race: a run finishing while another process finds its lease expired.

Each round, one connection finishes a run (`finish_run`) at the same moment as
another claims in its scope with the clock past the run's lease, which recovers
the run as interrupted. Exactly one of them may win: the finish (the run is
done and the claim recovers nothing) or the recovery (the run is interrupted,
and the finish changes nothing and says so by returning None). A finished run
is never rewritten, no task ends in two states, and every run ends exactly once.

Runs against every store (conftest's `store_factory`). The default is 250
rounds a store; TASKCRON_STRESS=1 runs 1,000.
"""

from __future__ import annotations

import os
import threading
from datetime import timedelta
from pathlib import Path

from taskcron.model import Outcome, Scope, State, Task
from taskcron.store import Claim, Store
from tests.conftest import SERIAL
from tests.store.conftest import T0, StoreFactory, at, decide, lease, new_task
from tests.store.test_contract import end

pytestmark = SERIAL

ROUNDS = 1_000 if os.environ.get("TASKCRON_STRESS") == "1" else 250
#: The lease each run is claimed under; the recovering claim comes just after it ends.
TTL = timedelta(seconds=30)


def race(
    finisher: Store, rescuer: Store, run_id: int, module: str, after: float
) -> tuple[Task | None, Claim]:
    """Finish the run and claim past its lease at the same moment; both answers."""
    barrier = threading.Barrier(2, timeout=30)
    answers: dict[str, object] = {}

    def finish() -> None:
        barrier.wait()
        answers["finish"] = finisher.finish_run(run_id, end(Outcome.DONE, at(after)), decide=decide)

    def rescue() -> None:
        barrier.wait()
        answers["claim"] = rescuer.claim_next(
            scope=Scope(modules=(module,)),
            now=at(after + 1),
            lease=lease(at(after + 1)),
            decide=decide,
        )

    threads = [threading.Thread(target=finish), threading.Thread(target=rescue)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "a racer hung"
    assert set(answers) == {"finish", "claim"}, answers
    return answers["finish"], answers["claim"]  # type: ignore[return-value]


def test_a_finish_and_a_rescue_of_the_same_run_never_both_win(
    store_factory: StoreFactory, tmp_path: Path
) -> None:
    finisher, rescuer = store_factory(tmp_path), store_factory(tmp_path)
    wins = {"finish": 0, "rescue": 0}
    try:
        for number in range(ROUNDS):
            module = f"race.r{number}"
            start = number * 100.0
            finisher.schedule(new_task(module, due_at=at(start)), now=T0)
            claimed = finisher.claim_next(
                scope=Scope(modules=(module,)),
                now=at(start),
                lease=lease(at(start), ttl=TTL),
                decide=decide,
            )
            assert claimed.task is not None and claimed.run is not None
            task_id, run_id = claimed.task.id, claimed.run.id

            finished, claim = race(finisher, rescuer, run_id, module, start + TTL.total_seconds())

            task = finisher.get(task_id)
            (run,) = task.runs
            rescued = [item for item in claim.recovered if item.run.id == run_id]
            if finished is not None:  # the finish won: the rescue found the run gone
                wins["finish"] += 1
                assert rescued == []
                assert run.outcome is Outcome.DONE and task.state is State.DONE
                assert finished.state is State.DONE
            else:  # the rescue won: the finish changed nothing
                wins["rescue"] += 1
                assert len(rescued) == 1
                assert run.outcome is Outcome.INTERRUPTED
                assert task.state is rescued[0].task.state is State.FAILED
            assert run.ended_at is not None  # it ended, exactly once: one outcome, one end
    finally:
        finisher.close()
        rescuer.close()
    print(
        f"\nrescue race: {ROUNDS} rounds, finish won {wins['finish']}, rescue won"
        f" {wins['rescue']}, 0 runs rewritten, 0 tasks in two states"
    )
    assert sum(wins.values()) == ROUNDS
