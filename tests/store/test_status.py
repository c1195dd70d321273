"""How far a run got, as SqliteStore keeps it with the task."""

from __future__ import annotations

from pathlib import Path

from taskcron.model import Outcome, Progress, Scope
from taskcron.store.sqlite import SqliteStore
from tests.store.conftest import HOST, T0, at, decide, lease, new_task
from tests.store.test_contract import end

EVERYTHING = Scope()


def test_saved_progress_is_read_with_the_task_and_kept_once_the_run_ends(tmp_path: Path) -> None:
    with SqliteStore(tmp_path / "tasks.db", host=HOST) as store:
        store.schedule(new_task("a"), now=T0)
        got = store.claim_next(scope=EVERYTHING, now=T0, lease=lease(T0), decide=decide)
        assert got.run is not None and got.task is not None and got.task.progress is None
        progress = Progress(done=4, total=10, message="copying", updated_at=at(3))

        assert store.save_progress(got.run.id, progress)

        assert store.get(got.task.id).progress == progress
        store.finish_run(got.run.id, end(Outcome.DONE, at(5)), decide=decide)
        assert store.get(got.task.id).progress == progress
        assert not store.save_progress(got.run.id, Progress(done=5, updated_at=at(6)))
        assert store.get(got.task.id).progress == progress
