"""Several `TaskCron`s of one SQLite store in one process (a web application that makes
one a request, beside a long-lived one) each see what other processes write."""

from __future__ import annotations

import subprocess
from pathlib import Path

from taskcron.api import TaskCron
from taskcron.config import Config
from tests.conftest import clean_env, script, wait_for


def test_a_second_taskcron_of_the_store_leaves_the_first_one_seeing_other_processes(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    first = TaskCron(config=Config(home=home))
    task = first.schedule("jobs", command=["sleep", "30"])
    assert first.running() == []
    second = TaskCron(config=Config(home=home))
    second.running()
    second.close()  # its descriptors of the file go, and none of the first one's locks
    tick = subprocess.Popen(
        [script(), "tick"],
        env=clean_env(TASKCRON_HOME=str(home)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        running = wait_for(first.running)
        assert [t.id for t in running] == [task.id]
    finally:
        tick.kill()
        tick.wait()
        first.close()
