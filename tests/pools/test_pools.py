"""More than one task a minute: draining ticks, pools with lanes, and `taskcron work`.

Every test runs the installed script as a real subprocess. Parallelism is judged
from the start and end times the tasks write down themselves, never from how
long a command took.
"""

from __future__ import annotations

import json
import signal
import subprocess
import textwrap
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from itertools import combinations
from pathlib import Path

import pytest

from taskcron import TaskCron
from taskcron.config import load
from taskcron.order import Candidate, run_order
from tests.conftest import SERIAL, clean_env, script, taskcron_in, wait_for

TASKS = '''
import json, os, time
from pathlib import Path

def sleeper(ctx, data):
    """Write down when it starts and ends, in its own file."""
    path = Path(data["dir"]) / f"{ctx.task_id}.json"
    start = time.time()
    time.sleep(data.get("seconds", 1))
    path.write_text(json.dumps({"module": ctx.module, "start": start, "end": time.time()}))

def noop(ctx, data):
    pass

def hold(ctx, data):
    """Say it started, then wait until told to stop (or data["seconds"] pass)."""
    Path(data["started"]).write_text(str(os.getpid()))
    deadline = time.time() + data.get("seconds", 60)
    while not Path(data["release"]).exists() and time.time() < deadline:
        time.sleep(0.02)
'''


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project directory with task code and a config; the home is `.taskcron` in it."""
    (tmp_path / "jobs.py").write_text(TASKS)
    (tmp_path / "taskcron.toml").write_text("")
    return tmp_path


def configure(project: Path, text: str) -> None:
    (project / "taskcron.toml").write_text(textwrap.dedent(text))


def app(project: Path) -> TaskCron:
    """The project's TaskCron, for setting up many tasks at once."""
    return TaskCron(config=load(project / "taskcron.toml"))


def intervals(directory: Path) -> list[dict[str, float | str]]:
    return [json.loads(p.read_text()) for p in sorted(directory.glob("*.json"))]


def overlapping(a: dict[str, float | str], b: dict[str, float | str]) -> bool:
    return float(a["start"]) < float(b["end"]) and float(b["start"]) < float(a["end"])


def most_at_once(spans: list[dict[str, float | str]]) -> int:
    """The largest number of spans running at one moment."""
    edges = sorted([(float(s["start"]), 1) for s in spans] + [(float(s["end"]), -1) for s in spans])
    running = best = 0
    for _, step in edges:
        running += step
        best = max(best, running)
    return best


def test_a_pool_runs_tasks_of_different_module_ids_side_by_side_never_two_of_one(
    project: Path,
) -> None:
    marks = project / "marks"
    marks.mkdir()
    with app(project) as tc:
        for i in range(8):
            tc.schedule(f"m{i % 4}", call="jobs:sleeper", data={"dir": str(marks)})
    result = taskcron_in(project, "tick", "--workers", "4")
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    spans = intervals(marks)
    assert len(spans) == 8
    for a, b in combinations(spans, 2):
        if a["module"] == b["module"]:
            assert not overlapping(a, b), (a, b)
    assert most_at_once(spans) >= 2
    assert most_at_once(spans) <= 4


def test_a_widened_lane_runs_that_many_of_one_module_together_and_never_more(
    project: Path,
) -> None:
    configure(project, '[lanes]\n"m" = 3\n')
    marks = project / "marks"
    marks.mkdir()
    with app(project) as tc:
        for _ in range(7):
            tc.schedule("m", call="jobs:sleeper", data={"dir": str(marks)})
    result = taskcron_in(project, "tick", "--workers", "6")
    assert (result.returncode, result.stderr) == (0, "")
    spans = intervals(marks)
    assert len(spans) == 7
    assert most_at_once(spans) == 3


def test_a_drain_runs_every_due_task_once_in_the_order_rules_order(project: Path) -> None:
    now = datetime.now(timezone.utc)
    expected: list[Candidate] = []
    with app(project) as tc:
        for i in range(500):
            module, priority = f"mod{i % 7}", (i * 37) % 5
            due = now - timedelta(seconds=1000 - i)
            task = tc.schedule(module, call="jobs:noop", priority=priority, at=due)
            expected.append(Candidate(id=task.id, module=module, priority=priority, due_at=due))
    result = taskcron_in(project, "tick", "--drain", "--json")
    assert (result.returncode, result.stderr) == (0, ""), result.stderr[-2000:]
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == 500
    assert {line["outcome"] for line in lines} == {"ran"}
    assert {line["task"]["state"] for line in lines} == {"done"}
    ran = [line["task"]["id"] for line in lines]
    assert ran == [c.id for c in run_order(expected)]
    with app(project) as tc:
        assert all(len(tc.get(i).runs) == 1 for i in ran)


def test_a_drain_with_nothing_due_prints_one_idle_line(project: Path) -> None:
    result = taskcron_in(project, "tick", "--drain", "--json")
    assert (result.returncode, result.stdout, result.stderr) == (
        0,
        '{"outcome": "idle", "task": null}\n',
        "",
    )


def test_max_tasks_bounds_a_drain(project: Path) -> None:
    with app(project) as tc:
        for _ in range(5):
            tc.schedule("m", call="jobs:noop")
    result = taskcron_in(project, "tick", "--drain", "--max-tasks", "2", "--json")
    assert len(result.stdout.splitlines()) == 2
    with app(project) as tc:
        assert len(tc.list(state="queued")) == 3


def test_a_drain_reports_each_failure_and_exits_1(project: Path) -> None:
    with app(project) as tc:
        tc.schedule("a", call="jobs:nosuch")
        tc.schedule("b", call="jobs:noop")
        tc.schedule("c", command=["false"])
    result = taskcron_in(project, "tick", "--drain")
    assert result.returncode == 1
    assert result.stdout == ""
    errors = result.stderr.splitlines()
    assert len(errors) == 2
    assert errors[0].startswith("taskcron: error: task 1 (a) failed: cannot find 'nosuch'")
    assert errors[1] == "taskcron: error: task 3 (c) failed: exited with code 1"


@pytest.fixture
def held(project: Path) -> Iterator[tuple[Path, Path]]:
    """Where a `hold` task says it started, and the file that lets it finish."""
    started, release = project / "started", project / "release"
    yield started, release
    release.touch()


def start(project: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [script(), *args],
        cwd=project,
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_a_second_pool_of_an_overlapping_scope_on_this_host_exits_busy(
    project: Path, held: tuple[Path, Path]
) -> None:
    started, release = held
    with app(project) as tc:
        tc.schedule("a", call="jobs:hold", data={"started": str(started), "release": str(release)})
        tc.schedule("b", call="jobs:noop")
    first = start(project, "tick", "--workers", "2", "--module", "a")
    wait_for(started.exists)
    second = taskcron_in(project, "tick", "--workers", "2", "--json")
    assert (second.returncode, second.stdout, second.stderr) == (
        0,
        '{"outcome": "busy", "task": null}\n',
        "",
    )
    other = taskcron_in(project, "tick", "--workers", "2", "--module", "b", "--json")
    assert json.loads(other.stdout)["outcome"] == "ran"
    release.touch()
    assert first.wait(timeout=30) == 0


def test_a_verbose_drain_or_pool_of_a_served_scope_says_busy_and_exits_0(
    project: Path, held: tuple[Path, Path]
) -> None:
    started, release = held
    with app(project) as tc:
        tc.schedule("a", call="jobs:hold", data={"started": str(started), "release": str(release)})
    first = start(project, "tick", "--workers", "2")
    wait_for(started.exists)
    for how in (["--drain"], ["--workers", "2"]):
        quiet = taskcron_in(project, "tick", *how)
        assert (quiet.returncode, quiet.stdout, quiet.stderr) == (0, "", "")
        told = taskcron_in(project, "tick", *how, "-v")
        assert (told.returncode, told.stdout, told.stderr) == (
            0,
            "busy: another tick or pool serves this scope\n",
            "",
        )
    release.touch()
    assert first.wait(timeout=30) == 0


def test_a_second_work_names_the_pid_that_serves_the_scope(
    project: Path, held: tuple[Path, Path]
) -> None:
    worker = start(project, "work")
    try:
        wait_for(lambda: "pools" in _tables(project) and _pools(project))
        second = taskcron_in(project, "work", "--module", "x")
        assert second.returncode == 1
        assert second.stderr == (
            f"taskcron: error: another pool (pid {worker.pid}) already serves every module id "
            "on this host\n"
        )
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0


def _tables(project: Path) -> set[str]:
    import sqlite3

    db = project / ".taskcron" / "tasks.db"
    if not db.exists():
        return set()
    with sqlite3.connect(db) as conn:
        return {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}


def _pools(project: Path) -> list[tuple[int]]:
    import sqlite3

    with sqlite3.connect(project / ".taskcron" / "tasks.db") as conn:
        return conn.execute("SELECT pid FROM pools").fetchall()


@SERIAL
def test_a_pool_killed_mid_run_leaves_every_task_to_finish_after_recovery(project: Path) -> None:
    configure(project, 'lease = "1s"\n[retry]\nbackoff = "0s"\n')
    marks = project / "marks"
    marks.mkdir()
    with app(project) as tc:
        data = {"dir": str(marks), "seconds": 2}
        ids = [
            tc.schedule(f"m{i % 3}", call="jobs:sleeper", data=data, max_attempts=2).id
            for i in range(6)
        ]
    pool = start(project, "tick", "--workers", "3")
    wait_for(lambda: len(_running(project)) == 3)
    pool.send_signal(signal.SIGKILL)
    pool.wait(timeout=30)
    for _ in range(10):
        result = taskcron_in(project, "tick", "--workers", "3")
        assert result.returncode == 0, result.stderr
        with app(project) as tc:
            if all(tc.get(i).state.value == "done" for i in ids):
                break
    with app(project) as tc:
        for task_id in ids:
            task = tc.get(task_id)
            assert task.state.value == "done"
            outcomes = [r.outcome.value for r in task.runs if r.outcome is not None]
            assert outcomes[-1] == "done"
            assert set(outcomes[:-1]) <= {"interrupted"}
    assert len(intervals(marks)) == 6


def _running(project: Path) -> list[int]:
    with app(project) as tc:
        return [t.id for t in tc.list(state="running")]


@SERIAL
def test_work_picks_up_a_task_scheduled_while_it_sleeps_and_exits_0_on_sigterm(
    project: Path,
) -> None:
    configure(project, 'poll = "0.1s"\n')
    worker = start(project, "work", "--json")
    try:
        wait_for(lambda: "pools" in _tables(project) and _pools(project))
        marker = project / "done-marker"
        assert taskcron_in(project, "schedule", "m", "--", "touch", str(marker)).returncode == 0
        wait_for(marker.exists)
        wait_for(lambda: not _running(project) and app(project).get(1).state.value == "done")
    finally:
        worker.send_signal(signal.SIGTERM)
    out, err = worker.communicate(timeout=30)
    assert (worker.returncode, err) == (0, "")
    assert [json.loads(line)["task"]["id"] for line in out.splitlines()] == [1]


@SERIAL
def test_work_lets_a_running_task_finish_within_the_grace_then_exits_0(
    project: Path, held: tuple[Path, Path]
) -> None:
    started, release = held
    configure(project, 'poll = "0.1s"\nkill_grace = "30s"\n')
    worker = start(project, "work")
    wait_for(lambda: "pools" in _tables(project) and _pools(project))
    with app(project) as tc:
        tc.schedule("m", call="jobs:hold", data={"started": str(started), "release": str(release)})
    wait_for(started.exists)
    worker.send_signal(signal.SIGTERM)
    release.touch()
    assert worker.wait(timeout=30) == 0
    with app(project) as tc:
        assert tc.get(1).runs[-1].outcome.value == "done"  # type: ignore[union-attr]


@SERIAL
def test_work_records_a_task_that_outlives_the_grace_as_interrupted(
    project: Path, held: tuple[Path, Path]
) -> None:
    started, release = held
    configure(project, 'poll = "0.1s"\nkill_grace = "0.5s"\n')
    worker = start(project, "work")
    wait_for(lambda: "pools" in _tables(project) and _pools(project))
    with app(project) as tc:
        tc.schedule(
            "m",
            call="jobs:hold",
            data={"started": str(started), "release": str(release)},
            max_attempts=2,
        )
    wait_for(started.exists)
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=30) == -signal.SIGTERM
    with app(project) as tc:
        task = tc.get(1)
        assert task.runs[-1].outcome.value == "interrupted"  # type: ignore[union-attr]
        assert task.runs[-1].error == "taskcron work received SIGTERM"
        assert task.state.value == "queued"
    assert not release.exists()


def test_generate_cron_drain_writes_a_draining_tick(project: Path, tmp_path: Path) -> None:
    crontab = tmp_path / "crontab"
    crontab.write_text("")
    result = taskcron_in(
        project,
        "generate-cron",
        "--every",
        "5m",
        "--drain",
        "--crontab-file",
        str(crontab),
        "--dry-run",
    )
    assert result.returncode == 0
    line = result.stdout.splitlines()[-1]
    assert " tick --drain --budget 4m30s " in line


def test_owners_filter_lists_and_cancel_every_waiting_task_of_theirs(project: Path) -> None:
    def schedule(*args: str) -> int:
        result = taskcron_in(project, "schedule", *args, "--", "true")
        assert result.returncode == 0, result.stderr
        return int(result.stdout)

    mine = [schedule("m", "--owner", "session-42") for _ in range(2)]
    paused = schedule("m", "--owner", "session-42")
    theirs = schedule("m", "--owner", "session-7")
    nobody = schedule("m")
    assert taskcron_in(project, "pause", str(paused)).returncode == 0
    listed = json.loads(taskcron_in(project, "list", "--owner", "session-42", "--json").stdout)
    assert [t["id"] for t in listed] == [*mine, paused]
    assert {t["owner"] for t in listed} == {"session-42"}
    everyone = json.loads(taskcron_in(project, "list", "--json").stdout)
    assert {t["id"]: t["owner"] for t in everyone}[nobody] is None
    cancelled = taskcron_in(project, "cancel", "--owner", "session-42")
    assert (cancelled.returncode, cancelled.stdout) == (0, "cancelled 3 tasks of session-42\n")
    states = {
        t["id"]: t["state"]
        for t in json.loads(taskcron_in(project, "list", "--all", "--json").stdout)
    }
    assert [states[i] for i in (*mine, paused)] == ["cancelled"] * 3
    assert states[theirs] == states[nobody] == "queued"


def test_a_handler_and_a_command_see_their_owner(project: Path) -> None:
    (project / "owners.py").write_text("def show(ctx, data):\n    print(ctx.owner)\n")
    taskcron_in(project, "schedule", "m", "--owner", "tenant-1", "--call", "owners:show")
    taskcron_in(
        project, "schedule", "n", "--owner", "tenant-2", "--", "sh", "-c", 'echo "$TASKCRON_OWNER"'
    )
    assert taskcron_in(project, "tick", "--drain").returncode == 0
    with app(project) as tc:
        assert [tc.get(i).runs[-1].output_tail for i in (1, 2)] == ["tenant-1\n", "tenant-2\n"]


@pytest.mark.parametrize("owner", ["", "a\nb", "x" * 256])
def test_a_bad_owner_is_bad_input(project: Path, owner: str) -> None:
    result = taskcron_in(project, "schedule", "m", "--owner", owner, "--", "true")
    assert result.returncode == 2
    assert result.stderr.startswith("taskcron: error: invalid owner ")
    assert not (project / ".taskcron" / "tasks.db").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("tick", "--workers", "0"), "invalid workers 0: must be at least 1"),
        (("tick", "--drain", "--max-tasks", "-1"), "invalid max tasks -1: must be 0 or more"),
        (("tick", "--max-tasks", "2"), "--max-tasks goes with --drain or --workers"),
        (("work", "--workers", "-3"), "invalid workers -3: must be at least 1"),
        (("work", "--budget", "soon"), "invalid duration 'soon'"),
    ],
)
def test_bad_pool_input_is_one_line_exit_2_and_creates_nothing(
    tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    result = taskcron_in(tmp_path, *args)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.startswith("taskcron: error: " + message)
    assert len(result.stderr.splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


@SERIAL
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP], ids=str)
@pytest.mark.parametrize(
    "command",
    [("tick",), ("tick", "--drain"), ("tick", "--workers", "2"), ("work",)],
    ids=" ".join,
)
def test_the_signal_rule_holds_for_ticks_drains_pools_and_work_alike(
    project: Path, held: tuple[Path, Path], command: tuple[str, ...], sig: signal.Signals
) -> None:
    """A stop signal while a task runs (past `work`'s grace): the run is recorded
    `interrupted`, the task goes back in line, and the process ends by that signal."""
    started, release = held
    configure(project, 'poll = "0.1s"\nkill_grace = "0.5s"\n')
    with app(project) as tc:
        data = {"started": str(started), "release": str(release)}
        task_id = tc.schedule("m", call="jobs:hold", data=data, max_attempts=2).id
    process = start(project, *command)
    wait_for(started.exists)
    process.send_signal(sig)
    _, err = process.communicate(timeout=30)
    assert process.returncode == -sig  # a shell sees 128 + N
    assert len(err.splitlines()) <= 1 and "Traceback" not in err
    with app(project) as tc:
        task = tc.get(task_id)
        assert task.state.value == "queued"
        assert [run.outcome.value for run in task.runs] == ["interrupted"]  # type: ignore[union-attr]
    assert not release.exists()
