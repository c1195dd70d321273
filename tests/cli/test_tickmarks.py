"""Every tick, idle or not, marks when a tick of its scope last ran on this host.

The mark is a file a scope in the home's `ticks` directory, touched by the tick;
its modification time is the tick's (see `taskcron.tickmarks`). The idle tick
marks it before the rest of taskcron loads, and neither writes the store.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from taskcron import tickmarks
from tests.cli.test_idle_tick import full_cli, ok, run


@pytest.fixture
def project(tmp_path: Path) -> Path:
    ok(tmp_path, "init")
    ok(tmp_path, "schedule", "billing", "--in", "1h", "--", "true")
    return tmp_path


def marks(project: Path) -> dict[str, float]:
    return tickmarks.last_ticks(project / ".taskcron")


def store_bytes(project: Path) -> bytes:
    return (project / ".taskcron" / "tasks.db").read_bytes()


@pytest.mark.parametrize(
    ("args", "name"),
    [
        (["tick"], "all"),
        (["tick", "-m", "mail,billing"], "billing,mail"),
        (["tick", "--module", "billing", "-x", "billing.eu"], "billing~billing.eu"),
        (["tick", "--except", "mail,legacy"], "all~legacy,mail"),
    ],
)
def test_an_idle_tick_marks_its_scope_without_writing_the_store(
    project: Path, args: list[str], name: str
) -> None:
    before = store_bytes(project)
    started = time.time()

    done, modules = run(project, *args)

    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    assert "click" not in modules
    assert list(marks(project)) == [name]
    assert marks(project)[name] >= started - 1
    assert store_bytes(project) == before


def test_a_tick_that_runs_a_task_and_a_drain_mark_their_scopes(project: Path) -> None:
    ok(project, "schedule", "mail", "--", "true")

    done, modules = run(project, "tick", "--module", "mail")
    assert done.returncode == 0, done.stderr
    assert full_cli(modules)
    ok(project, "tick", "--drain", "--module", "billing")

    assert set(marks(project)) == {"mail", "billing"}


def test_the_next_tick_moves_the_mark_on(project: Path) -> None:
    ok(project, "tick")
    path = project / ".taskcron" / tickmarks.DIRECTORY / "all"
    os.utime(path, (1_000_000, 1_000_000))

    ok(project, "tick")

    assert marks(project)["all"] > 1_000_000


def test_a_scope_too_long_for_a_file_name_is_marked_by_a_digest(project: Path) -> None:
    modules = [f"module{n:03d}.with.a.long.name" for n in range(12)]

    ok(project, "tick", "--module", ",".join(modules))

    (name,) = marks(project)
    assert name.startswith("scope-") and len(name) < 64
    assert name == tickmarks.scope_name(reversed(modules))


def test_a_tick_of_a_new_home_marks_it_once_the_home_is_made(tmp_path: Path) -> None:
    ok(tmp_path, "init")
    home = tmp_path / ".taskcron"
    assert not (home / tickmarks.DIRECTORY).exists()

    ok(tmp_path, "tick", "-v")

    assert list(tickmarks.last_ticks(home)) == ["all"]
    assert tickmarks.last_tick(home) == tickmarks.last_ticks(home)["all"]
    assert tickmarks.last_tick(home, ["mail"]) is None
