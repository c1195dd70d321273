"""The command-line contract of issue 4, through real subprocesses of the installed script.

Every test here runs `taskcron` the way a user or cron does and checks what they
would see: the exit code, stdout and stderr, exactly where the contract fixes them.
"""

from __future__ import annotations

import json
import os
import pty
import re
import shlex
import shutil
import sqlite3
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from taskcron import TaskCron, __version__
from taskcron.cli import cli
from taskcron.config import Config
from tests.cli.conftest import EVERY_STORE
from tests.conftest import SERIAL, clean_env, script, wait_for

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]

Run = Callable[..., subprocess.CompletedProcess[Any]]

ERROR = "taskcron: error: "
TASK_KEYS = {
    "id",
    "module",
    "title",
    "state",
    "priority",
    "data",
    "due_at",
    "attempts",
    "created_at",
    "updated_at",
    "result",
}
RUN_KEYS = {"started_at", "ended_at", "elapsed", "outcome"}
TABLE_COLUMNS = ["id", "module", "title", "state", "priority", "due", "attempts"]
ISO_OFFSET = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?([+-]\d\d:\d\d|Z)$")


# --- helpers ----------------------------------------------------------------


def runner_for(home: Path, cwd: Path) -> Run:
    """Like the `run_cli` fixture, for a home and working directory of our choosing."""

    def run(
        *args: str,
        input: str | bytes | None = None,
        env: dict[str, str] | None = None,
        cwd_: Path | None = None,
        timeout: float = 120,
    ) -> subprocess.CompletedProcess[Any]:
        return subprocess.run(
            [script(), *args],
            input=input,
            capture_output=True,
            text=not isinstance(input, bytes),
            env=clean_env(TASKCRON_HOME=str(home), **(env or {})),
            cwd=cwd_ or cwd,
            timeout=timeout,
            check=False,
        )

    return run


def ok(result: subprocess.CompletedProcess[Any]) -> str:
    """The stdout of a command that must succeed silently on stderr."""
    assert result.returncode == 0, (result.returncode, result.stdout[-2000:], result.stderr)
    assert result.stderr == ""
    return str(result.stdout)


def ok_json(result: subprocess.CompletedProcess[Any]) -> Any:
    out = ok(result)
    assert out.endswith("\n") and out.count("\n") == 1, "one JSON document on one line"
    return json.loads(out)


def assert_one_error_line(
    result: subprocess.CompletedProcess[Any], code: int, *, prefix: str = ERROR
) -> str:
    """Exit `code`, exactly one line on stderr starting with `prefix`, no traceback."""
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    err = str(result.stderr)
    assert err.endswith("\n") and err.count("\n") == 1, f"not one line: {err!r}"
    assert err.startswith(prefix), err
    assert "Traceback" not in err
    return err


def assert_iso_with_offset(value: Any) -> datetime:
    assert isinstance(value, str) and ISO_OFFSET.match(value), value
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    assert moment.utcoffset() is not None
    return moment


def schedule(run: Run, module: str, *args: str, **kwargs: Any) -> int:
    out = ok(run("schedule", module, *args, **kwargs))
    assert re.fullmatch(r"\d+\n", out), out
    return int(out)


def show(run: Run, task_id: int) -> dict[str, Any]:
    task: dict[str, Any] = ok_json(run("show", str(task_id), "--json"))
    return task


def states(run: Run, *args: str) -> dict[int, str]:
    return {t["id"]: t["state"] for t in ok_json(run("list", "--json", *args))}


def q(path: Path) -> str:
    return shlex.quote(str(path))


def wait_command(tmp_path: Path) -> str:
    """A shell command that says it started, then waits for a `stop` file."""
    started, stop = tmp_path / "started", tmp_path / "stop"
    return f"touch {q(started)}; while [ ! -e {q(stop)} ]; do sleep 0.05; done"


@pytest.fixture
def background_tick(home: Path, tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen[str]]]:
    """Start `taskcron tick ARGS` in the background; stopped and reaped after the test."""
    procs: list[subprocess.Popen[str]] = []

    def start(*args: str) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [script(), "tick", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=clean_env(TASKCRON_HOME=str(home)),
            cwd=tmp_path,
        )
        procs.append(proc)
        return proc

    yield start
    (tmp_path / "stop").touch()
    for proc in procs:
        try:
            proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()


# --- schedule -----------------------------------------------------------------


@EVERY_STORE
def test_schedule_prints_only_the_new_id(run_cli: Run) -> None:
    assert ok(run_cli("schedule", "m", "--", "true")) == "1\n"
    assert ok(run_cli("schedule", "billing.invoices.eu", "--", "true")) == "2\n"


@EVERY_STORE
def test_schedule_json_prints_the_task_as_one_object(run_cli: Run) -> None:
    before = datetime.now(timezone.utc)
    task = ok_json(
        run_cli(
            "schedule",
            "billing.eu",
            "--json",
            "--data",
            '{"day": 1, "name": "ü"}',
            "--priority",
            "7",
            "--title",
            "Invoices",
            "--",
            "true",
        )
    )
    after = datetime.now(timezone.utc)
    assert task.keys() >= TASK_KEYS
    assert task["id"] == 1
    assert task["module"] == "billing.eu"
    assert task["title"] == "Invoices"
    assert task["state"] == "queued"
    assert task["priority"] == 7
    assert task["data"] == {"day": 1, "name": "ü"}
    assert task["attempts"] == 0
    assert task["result"] is None
    for key in ("due_at", "created_at", "updated_at"):
        moment = assert_iso_with_offset(task[key])
        assert before - timedelta(seconds=1) <= moment <= after + timedelta(seconds=1)


@EVERY_STORE
def test_schedule_without_data_gives_empty_data_and_the_target_as_title(run_cli: Run) -> None:
    task = ok_json(run_cli("schedule", "m", "--json", "--", "echo", "hi there"))
    assert task["data"] == {}
    assert task["title"] == "echo 'hi there'"  # as a shell would read it back
    assert task["priority"] == 0


@EVERY_STORE
def test_data_from_a_file(run_cli: Run, tmp_path: Path) -> None:
    (tmp_path / "payload.json").write_text('{"rows": [1, 2, 3], "ok": true}', encoding="utf-8")
    task_id = schedule(run_cli, "m", "--data", "@payload.json", "--", "true")
    assert show(run_cli, task_id)["data"] == {"rows": [1, 2, 3], "ok": True}


@EVERY_STORE
def test_data_from_standard_input(run_cli: Run) -> None:
    task_id = schedule(run_cli, "m", "--data", "-", "--", "true", input='["a", {"b": null}]')
    assert show(run_cli, task_id)["data"] == ["a", {"b": None}]


@EVERY_STORE
@pytest.mark.slow
def test_a_100_mb_payload_through_standard_input_round_trips(run_cli: Run) -> None:
    data = {"blob": "x" * 100_000_000}
    text = json.dumps(data).encode()
    assert len(text) > 100_000_000
    result = run_cli("schedule", "m", "--data", "-", "--", "true", input=text)
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"1\n"
    shown = run_cli("show", "1", "--json", input=b"")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["data"] == data


def test_concurrent_first_schedules_on_a_fresh_home_all_succeed(run_cli: Run, home: Path) -> None:
    assert not home.exists()
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda n: run_cli("schedule", f"m{n}", "--", "true"), range(8)))
    ids = sorted(int(ok(r)) for r in results)
    assert ids == list(range(1, 9))
    assert len(ok_json(run_cli("list", "--json"))) == 8


# --- command targets ------------------------------------------------------------


@EVERY_STORE
def test_a_command_gets_its_data_on_stdin_and_its_id_in_the_environment(
    run_cli: Run, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    command = (
        f'printf %s "$TASKCRON_TASK_ID" > {q(out / "id")}; '
        f'printf %s "$TASKCRON_DEADLINE" > {q(out / "deadline")}; '
        f"cat > {q(out / 'stdin')}"
    )
    data = {"n": 1, "text": "héllo\nworld"}
    task_id = schedule(run_cli, "m", "--data", json.dumps(data), "--", "sh", "-c", command)
    assert ok(run_cli("tick")) == ""
    assert (out / "id").read_text() == str(task_id)
    assert (out / "deadline").read_text() == ""
    assert json.loads((out / "stdin").read_text(encoding="utf-8")) == data
    task = show(run_cli, task_id)
    assert task["state"] == "done"
    assert task["result"] is None


@EVERY_STORE
def test_a_command_sees_the_budget_as_an_iso_deadline(run_cli: Run, tmp_path: Path) -> None:
    target = tmp_path / "deadline"
    schedule(run_cli, "m", "--", "sh", "-c", f'printf %s "$TASKCRON_DEADLINE" > {q(target)}')
    before = datetime.now(timezone.utc)
    assert ok(run_cli("tick", "--budget", "30s")) == ""
    after = datetime.now(timezone.utc)
    deadline = assert_iso_with_offset(target.read_text())
    assert before + timedelta(seconds=29) <= deadline <= after + timedelta(seconds=31)


@EVERY_STORE
def test_a_command_output_is_kept_with_its_run(run_cli: Run) -> None:
    task_id = schedule(
        run_cli, "m", "--data", '{"k": "v"}', "--", "sh", "-c", "echo $TASKCRON_TASK_ID; cat"
    )
    assert ok(run_cli("tick")) == ""
    run = show(run_cli, task_id)["runs"][-1]
    first, rest = run["output_tail"].split("\n", 1)
    assert first == str(task_id)
    assert json.loads(rest) == {"k": "v"}


# --- tick -----------------------------------------------------------------------


@EVERY_STORE
def test_good_tick_prints_nothing(run_cli: Run) -> None:
    task_id = schedule(run_cli, "m", "--", "true")
    result = run_cli("tick")
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    assert show(run_cli, task_id)["state"] == "done"


@EVERY_STORE
def test_idle_tick_prints_nothing(run_cli: Run) -> None:
    result = run_cli("tick")
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    schedule(run_cli, "m", "--", "true")
    ok(run_cli("tick"))
    result = run_cli("tick")
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


@EVERY_STORE
def test_verbose_tick_says_what_it_did(run_cli: Run) -> None:
    assert ok(run_cli("tick", "-v")).strip() != ""
    schedule(run_cli, "m", "--", "true")
    said = ok(run_cli("tick", "--verbose"))
    assert said.splitlines()[0] == "running task 1 (m): true"
    assert said.splitlines()[1].startswith("ran task 1 (m): done in ")
    assert said.count("\n") == 2


@EVERY_STORE
def test_idle_tick_json(run_cli: Run) -> None:
    assert ok_json(run_cli("tick", "--json")) == {"outcome": "idle", "task": None}


@EVERY_STORE
def test_tick_json_shows_the_task_it_ran_with_its_runs(run_cli: Run) -> None:
    task_id = schedule(run_cli, "m.sub", "--data", "[1]", "--", "true")
    before = datetime.now(timezone.utc)
    reply = ok_json(run_cli("tick", "--json"))
    after = datetime.now(timezone.utc)
    assert reply["outcome"] == "ran"
    task = reply["task"]
    assert task.keys() >= TASK_KEYS
    assert (task["id"], task["module"], task["state"], task["attempts"]) == (
        task_id,
        "m.sub",
        "done",
        1,
    )
    assert task["data"] == [1]
    assert len(task["runs"]) == 1
    run = task["runs"][0]
    assert run.keys() >= RUN_KEYS
    assert run["outcome"] == "done"
    started = assert_iso_with_offset(run["started_at"])
    ended = assert_iso_with_offset(run["ended_at"])
    assert before - timedelta(seconds=1) <= started <= ended <= after + timedelta(seconds=1)
    assert isinstance(run["elapsed"], int | float) and run["elapsed"] >= 0


@EVERY_STORE
def test_failing_task_gives_one_error_line_and_exit_1(run_cli: Run) -> None:
    task_id = schedule(run_cli, "m", "--", "sh", "-c", "echo oops >&2; exit 3")
    result = run_cli("tick")
    assert_one_error_line(result, 1, prefix=f"{ERROR}task {task_id} (m) failed:")
    assert result.stdout == ""
    task = show(run_cli, task_id)
    assert task["state"] == "failed"
    assert task["runs"][-1]["outcome"] == "failed"


@EVERY_STORE
def test_failing_task_with_json_prints_the_failed_run_and_the_error_line(run_cli: Run) -> None:
    task_id = schedule(run_cli, "m", "--", "false")
    result = run_cli("tick", "--json")
    assert_one_error_line(result, 1, prefix=f"{ERROR}task {task_id} (m) failed:")
    reply = json.loads(result.stdout)
    assert result.stdout.count("\n") == 1
    assert reply["outcome"] == "ran"
    assert reply["task"]["id"] == task_id
    assert reply["task"]["state"] == "failed"
    assert [r["outcome"] for r in reply["task"]["runs"]] == ["failed"]


@EVERY_STORE
def test_failed_run_with_attempts_left_requeues_the_task_and_still_exits_1(run_cli: Run) -> None:
    task_id = schedule(run_cli, "m", "--max-attempts", "3", "--", "false")
    result = run_cli("tick", "--json")
    assert_one_error_line(
        result, 1, prefix=f"{ERROR}task {task_id} (m) failed on attempt 1 of 3, retrying at "
    )
    task = json.loads(result.stdout)["task"]
    assert task["state"] == "queued"
    assert task["attempts"] == 1
    assert assert_iso_with_offset(task["due_at"]) > datetime.now(timezone.utc)


@EVERY_STORE
@SERIAL
def test_a_task_past_its_timeout_is_killed_and_the_tick_fails(run_cli: Run) -> None:
    task_id = schedule(run_cli, "m", "--timeout", "300ms", "--", "sleep", "30")
    start = time.monotonic()
    result = run_cli("tick", "--json", timeout=60)
    assert time.monotonic() - start < 20
    assert_one_error_line(result, 1, prefix=f"{ERROR}task {task_id} (m) ")
    assert json.loads(result.stdout)["task"]["runs"][-1]["outcome"] == "timeout"


@EVERY_STORE
def test_a_tick_of_a_busy_scope_exits_quietly_as_busy(
    run_cli: Run, tmp_path: Path, background_tick: Callable[..., subprocess.Popen[str]]
) -> None:
    task_id = schedule(run_cli, "m", "--", "sh", "-c", wait_command(tmp_path))
    schedule(run_cli, "m", "--", "true")
    first = background_tick()
    wait_for(lambda: (tmp_path / "started").exists() or first.poll() is not None)
    assert first.poll() is None, first.communicate()

    busy = ok_json(run_cli("tick", "--json"))
    assert busy["outcome"] == "busy"
    assert busy["task"]["id"] == task_id
    assert busy["task"]["state"] == "running"
    quiet = run_cli("tick")
    assert (quiet.returncode, quiet.stdout, quiet.stderr) == (0, "", "")
    assert ok_json(run_cli("tick", "--json", "--module", "m"))["outcome"] == "busy"

    other = ok_json(run_cli("tick", "--json", "--except", "m"))
    assert other == {"outcome": "idle", "task": None}

    (tmp_path / "stop").touch()
    out, err = first.communicate(timeout=30)
    assert (first.returncode, out, err) == (0, "", "")
    assert show(run_cli, task_id)["state"] == "done"
    assert show(run_cli, task_id + 1)["state"] == "queued"


@EVERY_STORE
def test_actions_on_a_running_task_are_refused_naming_its_state(
    run_cli: Run, tmp_path: Path, background_tick: Callable[..., subprocess.Popen[str]]
) -> None:
    task_id = schedule(run_cli, "m", "--", "sh", "-c", wait_command(tmp_path))
    first = background_tick()
    wait_for(lambda: (tmp_path / "started").exists() or first.poll() is not None)
    assert first.poll() is None, first.communicate()
    for action in ("cancel", "retry", "pause", "resume", "remove"):
        err = assert_one_error_line(run_cli(action, str(task_id)), 1)
        assert "running" in err
    assert show(run_cli, task_id)["state"] == "running"
    (tmp_path / "stop").touch()
    assert first.wait(timeout=30) == 0


@EVERY_STORE
def test_the_brief_order_example_through_the_cli(run_cli: Run) -> None:
    line = [("a1", "a", 0), ("a2", "a", 10), ("ax", "a.x", 100), ("a3", "a", 5)]
    line += [("b1", "b", 0), ("b2", "b", 5), ("c1", "c", -3)]
    for title, module, priority in line:
        schedule(run_cli, module, "--title", title, "--priority", str(priority), "--", "true")
    ran = [ok_json(run_cli("tick", "--json"))["task"]["title"] for _ in line]
    assert ran == ["a2", "a1", "ax", "a3", "b2", "b1", "c1"]
    assert ok_json(run_cli("tick", "--json"))["outcome"] == "idle"


def test_concurrent_ticks_run_every_task_exactly_once(
    run_cli: Run, home: Path, tmp_path: Path
) -> None:
    ran = tmp_path / "ran.txt"
    command = f"echo $TASKCRON_TASK_ID >> {q(ran)}"
    modules = ["m0", "m1.sub", "m2", "m3"]
    with TaskCron(config=Config(home=home)) as app:  # fast; ticks below are the test
        ids = [app.schedule(modules[n % 4], command=["sh", "-c", command]).id for n in range(40)]
    assert ids == list(range(1, 41))

    scopes: list[Sequence[str]] = [
        (),
        (),
        ("--module", "m0"),
        ("--module", "m1"),
        ("--module", "m2"),
        ("--module", "m3"),
        ("--except", "m0,m1"),
        ("--module", "m2", "--module", "m1.sub"),
    ]
    deadline = time.monotonic() + 90

    def loop(scope: Sequence[str]) -> list[str]:
        outcomes = []
        while time.monotonic() < deadline:
            reply = ok_json(run_cli("tick", "--json", *scope))
            outcomes.append(reply["outcome"])
            if reply["outcome"] == "idle" and "queued" not in states(run_cli).values():
                return outcomes
        raise AssertionError(f"tick loop {scope} did not finish: {outcomes[-5:]}")

    with ThreadPoolExecutor(len(scopes)) as pool:
        outcomes = [o for done in pool.map(loop, scopes) for o in done]
    assert outcomes.count("ran") == 40
    assert sorted(int(x) for x in ran.read_text().split()) == ids
    tasks = ok_json(run_cli("list", "--all", "--json"))
    assert {t["id"]: (t["state"], t["attempts"]) for t in tasks} == dict.fromkeys(ids, ("done", 1))


# --- Python targets -------------------------------------------------------------

HANDLERS = """\
def func(ctx, data):
    return {"data": data, "task_id": ctx.task_id, "module": ctx.module}


def boom(ctx, data):
    raise ValueError("boom " + str(data))
"""


def write_package(root: Path, name: str) -> None:
    (root / name).mkdir(parents=True)
    (root / name / "__init__.py").write_text("")
    (root / name / "mod.py").write_text(HANDLERS)


@EVERY_STORE
def test_call_target_result_is_stored_and_found_from_the_config_dir(
    run_cli: Run, tmp_path: Path
) -> None:
    app = tmp_path / "app"
    write_package(app, "calls_pkg_a")
    (app / "taskcron.toml").write_text("")
    task_id = schedule(
        run_cli, "m", "--call", "calls_pkg_a.mod:func", "--data", '{"n": 1}', cwd=app
    )
    assert ok(run_cli("--config", str(app / "taskcron.toml"), "tick", cwd=Path("/"))) == ""
    task = show(run_cli, task_id)
    assert task["state"] == "done"
    assert task["result"] == {"data": {"n": 1}, "task_id": task_id, "module": "m"}


@EVERY_STORE
def test_call_target_found_through_the_config_pythonpath(run_cli: Run, tmp_path: Path) -> None:
    app = tmp_path / "app"
    write_package(app / "src", "calls_pkg_b")
    (app / "taskcron.toml").write_text('pythonpath = ["src"]\n')
    task_id = schedule(run_cli, "m", "--call", "calls_pkg_b.mod:func", "--data", "2")
    assert ok(run_cli("--config", str(app / "taskcron.toml"), "tick", cwd=Path("/"))) == ""
    assert show(run_cli, task_id)["result"] == {"data": 2, "task_id": task_id, "module": "m"}


@EVERY_STORE
def test_call_target_that_raises_fails_the_run_with_its_traceback(
    run_cli: Run, tmp_path: Path
) -> None:
    write_package(tmp_path, "calls_pkg_c")
    (tmp_path / "taskcron.toml").write_text("")
    task_id = schedule(run_cli, "m", "--call", "calls_pkg_c.mod:boom", "--data", '"x"')
    err = assert_one_error_line(run_cli("tick"), 1, prefix=f"{ERROR}task {task_id} (m) failed:")
    assert "boom x" in err
    run = show(run_cli, task_id)["runs"][-1]
    assert run["outcome"] == "failed"
    assert "ValueError" in run["traceback"]


@EVERY_STORE
def test_call_target_that_does_not_import_fails_at_run_time_saying_why(run_cli: Run) -> None:
    task_id = schedule(run_cli, "m", "--call", "no_such_pkg_zz.mod:func")
    err = assert_one_error_line(run_cli("tick"), 1, prefix=f"{ERROR}task {task_id} (m) failed:")
    assert "no_such_pkg_zz" in err
    assert "no_such_pkg_zz" in show(run_cli, task_id)["runs"][-1]["error"]


@EVERY_STORE
def test_task_target_runs_a_registered_handler(run_cli: Run, tmp_path: Path) -> None:
    (tmp_path / "mytasks.py").write_text(
        "from taskcron import task\n\n\n"
        "@task\n"
        "def greet(ctx, data):\n"
        "    return 'hello ' + data['name']\n"
    )
    (tmp_path / "taskcron.toml").write_text('modules = ["mytasks"]\n')
    task_id = schedule(run_cli, "m", "--task", "greet", "--data", '{"name": "ann"}')
    assert ok(run_cli("tick")) == ""
    task = show(run_cli, task_id)
    assert (task["state"], task["result"]) == ("done", "hello ann")


# --- list -----------------------------------------------------------------------

TITLE = "[bold]x[/]"


@pytest.fixture(scope="module")
def populated(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """A home with one task in each state but running (ids 1-5), read-only for the tests."""
    root = tmp_path_factory.mktemp("populated")
    run = runner_for(root / "home", root)
    schedule(run, "a", "--title", "one", "--", "true")
    schedule(run, "a", "--title", "two", "--", "false")
    assert run("tick").returncode == 0
    assert run("tick").returncode == 1
    schedule(run, "b.c", "--title", TITLE, "--priority", "5", "--", "true")
    schedule(run, "b", "--title", "four", "--", "true")
    schedule(run, "c", "--title", "five", "--", "true")
    ok(run("cancel", "4"))
    ok(run("pause", "5"))
    return run


EXPECTED_STATES = {1: "done", 2: "failed", 3: "queued", 4: "cancelled", 5: "paused"}


def test_list_hides_done_and_cancelled_tasks_by_default(populated: Run) -> None:
    assert states(populated) == {2: "failed", 3: "queued", 5: "paused"}


def test_list_all_shows_every_task(populated: Run) -> None:
    assert states(populated, "--all") == EXPECTED_STATES


@pytest.mark.parametrize("state", ["queued", "running", "done", "failed", "cancelled", "paused"])
def test_list_state_shows_exactly_that_state(populated: Run, state: str) -> None:
    expected = {i: s for i, s in EXPECTED_STATES.items() if s == state}
    assert states(populated, "--state", state) == expected


def test_list_module_covers_the_module_and_those_under_it(populated: Run) -> None:
    assert states(populated, "--all", "--module", "b") == {3: "queued", 4: "cancelled"}
    assert states(populated, "--all", "--module", "b.c,c") == {3: "queued", 5: "paused"}
    assert states(populated, "--all", "--except", "a", "--except", "b.c") == {
        4: "cancelled",
        5: "paused",
    }


def test_list_json_is_an_array_of_task_objects(populated: Run) -> None:
    tasks = ok_json(populated("list", "--all", "--json"))
    assert isinstance(tasks, list)
    for task in tasks:
        assert task.keys() >= TASK_KEYS
        for key in ("due_at", "created_at", "updated_at"):
            assert_iso_with_offset(task[key])
    assert next(t for t in tasks if t["id"] == 3)["title"] == TITLE


def test_list_table_has_the_contract_columns_and_prints_titles_literally(populated: Run) -> None:
    out = ok(populated("list", "--all"))
    header, *rows = out.splitlines()
    assert header.split() == TABLE_COLUMNS
    assert TITLE in out
    expected = {
        1: ["a", "one", "done", "0", "1/1"],
        2: ["a", "two", "failed", "0", "1/1"],
        3: ["b.c", TITLE, "queued", "5", "0/1"],
        4: ["b", "four", "cancelled", "0", "0/1"],
        5: ["c", "five", "paused", "0", "0/1"],
    }
    seen = {}
    for row in rows:
        task_id, module, title, state, priority, day, clock, attempts = row.split()
        assert re.fullmatch(r"\d{4}-\d\d-\d\d", day) and re.fullmatch(r"\d\d:\d\d:\d\d", clock)
        seen[int(task_id)] = [module, title, state, priority, attempts]
    assert seen == expected


@pytest.mark.parametrize("env", [{}, {"NO_COLOR": "1"}], ids=["piped", "piped-no-color"])
def test_piped_output_has_no_ansi_escapes(populated: Run, env: dict[str, str]) -> None:
    for args in (("list", "--all"), ("show", "2"), ("tick", "-v", "--module", "zz"), ("--help",)):
        result = populated(*args, env=env)
        assert "\x1b" not in result.stdout + result.stderr, args


def run_in_terminal(run_dir: Path, home: Path, args: Sequence[str], env: dict[str, str]) -> str:
    """Run taskcron with a pseudo-terminal as stdout; return what it wrote."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [script(), *args],
        stdin=subprocess.DEVNULL,
        stdout=follower,
        stderr=follower,
        cwd=run_dir,
        env=clean_env(TASKCRON_HOME=str(home), TERM="xterm-256color", COLUMNS="200", **env),
    )
    os.close(follower)
    chunks = []
    try:
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the other side closed
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(leader)
        proc.wait(timeout=30)
    assert proc.returncode == 0
    return b"".join(chunks).decode()


def colour_codes(text: str) -> list[str]:
    """SGR parameters in `text` that set a colour (foreground or background)."""
    found = []
    for params in re.findall(r"\x1b\[([0-9;]*)m", text):
        parts = [int(p) for p in params.split(";") if p]
        found += [str(p) for p in parts if 30 <= p <= 49 or 90 <= p <= 107]
    return found


def test_no_color_turns_colour_off_on_a_terminal(tmp_path: Path, home: Path) -> None:
    run = runner_for(home, tmp_path)
    schedule(run, "m", "--title", TITLE, "--", "true")
    coloured = run_in_terminal(tmp_path, home, ["list"], {})
    assert colour_codes(coloured), "control: on a terminal the state is coloured"
    plain = run_in_terminal(tmp_path, home, ["list"], {"NO_COLOR": "1"})
    assert colour_codes(plain) == []
    assert TITLE in plain


# --- show -----------------------------------------------------------------------


@EVERY_STORE
def test_show_prints_the_task_and_its_runs(run_cli: Run) -> None:
    task_id = schedule(run_cli, "billing.eu", "--title", TITLE, "--data", '{"k": 1}', "--", "true")
    ok(run_cli("tick"))
    out = ok(run_cli("show", str(task_id)))
    fields = dict(line.split(None, 1) for line in out.split("\n\n")[0].splitlines())
    assert fields["id"] == str(task_id)
    assert fields["module"] == "billing.eu"
    assert fields["title"] == TITLE
    assert fields["state"] == "done"
    assert fields["attempts"] == "1/1"
    assert '"k": 1' in fields["data"]
    runs_header = out.split("\n\n")[1].splitlines()[0]
    assert runs_header.split() == ["attempt", "started", "ended", "elapsed", "outcome", "detail"]
    assert "done" in out.split("\n\n")[1].splitlines()[1].split()


@EVERY_STORE
def test_show_json_has_the_task_and_its_runs(run_cli: Run) -> None:
    task_id = schedule(run_cli, "m", "--", "false")
    assert run_cli("tick").returncode == 1
    ok(run_cli("retry", str(task_id)))
    assert run_cli("tick").returncode == 1
    task = show(run_cli, task_id)
    assert TASK_KEYS | {"runs"} <= task.keys()
    assert len(task["runs"]) == 2
    for run in task["runs"]:
        assert run.keys() >= RUN_KEYS
        assert assert_iso_with_offset(run["started_at"]) <= assert_iso_with_offset(run["ended_at"])
        assert isinstance(run["elapsed"], int | float) and run["elapsed"] >= 0
        assert run["outcome"] == "failed"


@EVERY_STORE
def test_show_of_an_unknown_id_is_one_line_and_exit_1(run_cli: Run) -> None:
    schedule(run_cli, "m", "--", "true")
    result = run_cli("show", "99")
    assert (result.returncode, result.stdout, result.stderr) == (
        1,
        "",
        "taskcron: error: no task with id 99\n",
    )
    assert run_cli("show", "99", "--json").stderr == "taskcron: error: no task with id 99\n"


# --- cancel, retry, pause, resume, remove ---------------------------------------


def put_one_task_in(home: Path, state: str) -> int:
    """Through the Python API (fast): one task in `state`; the CLI then acts on it."""
    with TaskCron(config=Config(home=home)) as app:
        task = app.schedule("m", command=["false" if state == "failed" else "true"])
        if state in ("done", "failed"):
            app.tick()
        elif state == "cancelled":
            app.cancel(task.id)
        elif state == "paused":
            app.pause(task.id)
        assert app.get(task.id).state.value == state
        return task.id


ALLOWED = {
    ("cancel", "queued"): "cancelled",
    ("cancel", "paused"): "cancelled",
    ("pause", "queued"): "paused",
    ("resume", "paused"): "queued",
    ("retry", "failed"): "queued",
    ("retry", "cancelled"): "queued",
    ("remove", "queued"): None,
    ("remove", "done"): None,
    ("remove", "failed"): None,
    ("remove", "cancelled"): None,
    ("remove", "paused"): None,
    ("run-now", "queued"): "queued",
}


@pytest.mark.parametrize("state", ["queued", "done", "failed", "cancelled", "paused"])
@pytest.mark.parametrize("action", ["cancel", "retry", "pause", "resume", "remove", "run-now"])
def test_actions_follow_the_allowed_transitions(
    run_cli: Run, home: Path, action: str, state: str
) -> None:
    task_id = put_one_task_in(home, state)
    result = run_cli(action, str(task_id))
    if (action, state) in ALLOWED:
        ok(result)
        after = ALLOWED[action, state]
        if after is None:
            assert ok_json(run_cli("list", "--all", "--json")) == []
        else:
            assert states(run_cli, "--all") == {task_id: after}
    else:
        err = assert_one_error_line(result, 1)
        assert re.search(rf"\b{state}\b", err), err
        assert re.search(rf"\b{task_id}\b", err), err
        assert result.stdout == ""
        assert states(run_cli, "--all") == {task_id: state}


@EVERY_STORE
def test_retry_resets_attempts_and_the_task_runs_again(run_cli: Run) -> None:
    task_id = schedule(run_cli, "m", "--", "false")
    assert run_cli("tick").returncode == 1
    assert show(run_cli, task_id)["attempts"] == 1
    ok(run_cli("retry", str(task_id)))
    task = show(run_cli, task_id)
    assert (task["state"], task["attempts"]) == ("queued", 0)
    result = run_cli("tick", "--json")
    assert result.returncode == 1
    assert json.loads(result.stdout)["task"]["id"] == task_id


@EVERY_STORE
def test_a_retried_task_that_was_cancelled_during_its_backoff_is_due_now(run_cli: Run) -> None:
    task_id = schedule(run_cli, "m", "--max-attempts", "2", "--", "false")
    assert run_cli("tick").returncode == 1
    ok(run_cli("cancel", str(task_id)))
    before = datetime.now(timezone.utc)
    ok(run_cli("retry", str(task_id)))
    task = show(run_cli, task_id)
    assert (task["state"], task["attempts"]) == ("queued", 0)
    assert assert_iso_with_offset(task["due_at"]) <= datetime.now(timezone.utc)
    assert assert_iso_with_offset(task["due_at"]) >= before - timedelta(seconds=1)
    result = run_cli("tick", "--json")
    assert json.loads(result.stdout)["outcome"] == "ran"


@EVERY_STORE
def test_run_now_makes_a_delayed_task_due_at_the_back_of_the_line(run_cli: Run) -> None:
    later = schedule(run_cli, "a", "--in", "1h", "--", "true")
    waiting = schedule(run_cli, "b", "--", "true")
    result = run_cli("run-now", str(later))
    assert (result.returncode, result.stdout, result.stderr) == (0, f"task {later} due now\n", "")
    assert assert_iso_with_offset(show(run_cli, later)["due_at"]) <= datetime.now(timezone.utc)
    assert ok_json(run_cli("tick", "--json"))["task"]["id"] == waiting
    assert ok_json(run_cli("tick", "--json"))["task"]["id"] == later


@EVERY_STORE
def test_run_now_refuses_a_running_or_finished_task_in_the_clis_words(run_cli: Run) -> None:
    done = schedule(run_cli, "a", "--", "true")
    ok(run_cli("tick"))
    result = run_cli("run-now", str(done))
    assert (result.returncode, result.stdout, result.stderr) == (
        1,
        "",
        f"taskcron: error: cannot run now task {done}: it is done\n",
    )


@EVERY_STORE
def test_a_retried_failed_task_goes_to_the_back_of_the_line(run_cli: Run) -> None:
    failing = schedule(run_cli, "a", "--", "false")
    assert run_cli("tick").returncode == 1
    waiting = schedule(run_cli, "b", "--", "true")
    ok(run_cli("retry", str(failing)))
    assert ok_json(run_cli("tick", "--json"))["task"]["id"] == waiting


@EVERY_STORE
@pytest.mark.parametrize("action", ["cancel", "retry", "pause", "resume", "remove", "run-now"])
def test_actions_on_an_unknown_id_are_one_line_and_exit_1(run_cli: Run, action: str) -> None:
    ok(run_cli("init"))
    result = run_cli(action, "42")
    assert (result.returncode, result.stdout, result.stderr) == (
        1,
        "",
        "taskcron: error: no task with id 42\n",
    )


# --- bad input --------------------------------------------------------------------

BAD_CONFIGS = {
    "unknown.toml": "bogus_key = 1\n",
    "wrong-type.toml": "lease = true\n",
    "wrong-list.toml": 'modules = "myapp.tasks"\n',
    "wrong-table.toml": '[retry]\nbackoff = "soon"\n',
    "not-toml.toml": "lease = \n",
}

# (args, stdin, what the one line must contain; None for click's own usage errors)
BAD_INPUT: list[tuple[tuple[str, ...], str | None, str | None]] = [
    *(
        (("schedule", module, "--", "true"), None, f"invalid module id {module!r}")
        for module in ("", "a..b", ".a", "a.", "a b", "a/b", "../x", "a\nb", "é", "x" * 256)
    ),
    (("schedule", "m", "--call", "nocolon"), None, "invalid call target 'nocolon'"),
    (("schedule", "m", "--call", "pkg.mod:"), None, "invalid call target"),
    (("schedule", "m", "--call", "pkg/mod:f"), None, "invalid call target"),
    (("schedule", "m", "--task", "a b"), None, "invalid task name"),
    (("schedule", "m", "--data", "{", "--", "true"), None, "invalid JSON"),
    (("schedule", "m", "--data", "NaN", "--", "true"), None, "invalid JSON"),
    (("schedule", "m", "--data", "[Infinity]", "--", "true"), None, "invalid JSON"),
    (("schedule", "m", "--data", "-", "--", "true"), "{", "invalid JSON"),
    (("schedule", "m", "--data", "@missing.json", "--", "true"), None, "missing.json"),
    (("schedule", "m", "--timeout", "-5s", "--", "true"), None, "invalid duration '-5s'"),
    (("schedule", "m", "--timeout", "5x", "--", "true"), None, "invalid duration '5x'"),
    (("schedule", "m", "--timeout", "0", "--", "true"), None, "invalid duration '0'"),
    (("schedule", "m", "--max-attempts", "0", "--", "true"), None, "max attempts"),
    (("schedule", "m", "--max-attempts", "-1", "--", "true"), None, "max attempts"),
    (("schedule", "m", "--priority", "99999999999999999999", "--", "true"), None, "priority"),
    (("schedule", "m", "--timeout", "999999999999w", "--", "true"), None, "999999999999w"),
    (("schedule", "m", "--data", "@.", "--", "true"), None, "cannot read data file"),
    (("schedule", "m", "--data", "@latin1.json", "--", "true"), None, "not UTF-8"),
    (("schedule", "m", "--data", "-", "--", "true"), "[" * 100_000, "invalid JSON"),
    (("tick", "--budget", "-5s"), None, "invalid duration '-5s'"),
    (("tick", "--budget", "5x"), None, "invalid duration '5x'"),
    (("tick", "--module", "a..b"), None, "invalid module id 'a..b'"),
    (("tick", "--except", "a b"), None, "invalid module id 'a b'"),
    (("tick", "--module", "ok,é"), None, "invalid module id 'é'"),
    (("list", "--module", ".a"), None, "invalid module id '.a'"),
    (("list", "--except", "a/"), None, "invalid module id"),
    (("list", "--state", "bogus"), None, "invalid state 'bogus'"),
    (("list", "--state", "Queued"), None, "invalid state 'Queued'"),
    (("--config", "unknown.toml", "list"), None, "bogus_key"),
    (("--config", "wrong-type.toml", "list"), None, "lease"),
    (("--config", "wrong-list.toml", "schedule", "m", "--", "true"), None, "modules"),
    (("--config", "wrong-table.toml", "tick"), None, "retry.backoff"),
    (("--config", "not-toml.toml", "list"), None, "not-toml.toml"),
    (("--config", "no-such.toml", "list"), None, "no-such.toml"),
    (("schedule", "m", "--priority", "x", "--", "true"), None, None),
    (("schedule", "m"), None, None),
    (("schedule", "m", "--call", "a.b:c", "--", "true"), None, None),
    (("schedule",), None, None),
    (("tick", "--no-such-option"), None, None),
    (("show", "x"), None, None),
    (("no-such-command",), None, None),
]


def assert_bad_input(result: subprocess.CompletedProcess[Any], says: str | None) -> None:
    if says is None:  # click's own usage error: one line in taskcron's form, exit 2
        assert_one_error_line(result, 2)
    else:
        err = assert_one_error_line(result, 2)
        assert says in err, err
    assert result.stdout == ""


@pytest.fixture(scope="module")
def one_task_home(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A home holding one good task, and its `list --all --json` output."""
    root = tmp_path_factory.mktemp("one-task")
    run = runner_for(root / "home", root)
    schedule(run, "m", "--data", '{"keep": true}', "--", "true")
    return root / "home", ok(run("list", "--all", "--json"))


@pytest.mark.parametrize(
    ("args", "stdin", "says"),
    BAD_INPUT,
    ids=[" ".join(a).replace("\n", "\\n") or "empty" for a, _, _ in BAD_INPUT],
)
def test_bad_input_is_one_line_exit_2_and_changes_nothing(
    tmp_path: Path,
    one_task_home: tuple[Path, str],
    args: tuple[str, ...],
    stdin: str | None,
    says: str | None,
) -> None:
    for name, text in BAD_CONFIGS.items():
        (tmp_path / name).write_text(text)
    (tmp_path / "latin1.json").write_bytes('"café"'.encode("latin-1"))
    fresh_home = tmp_path / "fresh"
    fresh = runner_for(fresh_home, tmp_path)
    assert_bad_input(fresh(*args, input=stdin), says)
    assert not (fresh_home / "tasks.db").exists(), "a bad first command created the store"

    template, before = one_task_home
    shutil.copytree(template, tmp_path / "home")
    run = runner_for(tmp_path / "home", tmp_path)
    assert_bad_input(run(*args, input=stdin), says)
    assert ok(run("list", "--all", "--json")) == before


@EVERY_STORE
def test_an_invalid_module_id_gets_the_documented_line(run_cli: Run) -> None:
    result = run_cli("schedule", "a..b", "--", "true")
    assert (result.returncode, result.stdout, result.stderr) == (
        2,
        "",
        "taskcron: error: invalid module id 'a..b': empty segment\n",
    )


BYTE_FF = "\udcff"  # how Python spells a 0xff byte of argv: subprocess passes it on as that byte


@pytest.mark.parametrize(
    "args",
    [
        ("--title", BYTE_FF, "--", "true"),
        ("--data", f'"{BYTE_FF}"', "--", "true"),
        ("--task", BYTE_FF),
        ("--", "echo", BYTE_FF),
    ],
    ids=["title", "data", "task", "command"],
)
def test_arguments_that_are_not_utf8_get_a_clear_error(
    one_task_home: tuple[Path, str], tmp_path: Path, args: tuple[str, ...]
) -> None:
    template, before = one_task_home
    shutil.copytree(template, tmp_path / "home")
    run = runner_for(tmp_path / "home", tmp_path)
    result = run("schedule", "m", *args)
    assert "unexpected" not in result.stderr
    if args[0] == "--" and result.returncode == 0:
        return  # a command may well take such an argument as it is
    assert_one_error_line(result, 2)
    assert ok(run("list", "--all", "--json")) == before


@EVERY_STORE
def test_a_command_that_cannot_start_fails_its_run_with_one_line(run_cli: Run) -> None:
    task_id = schedule(run_cli, "m", "--", "/no/such/program", "arg")
    err = assert_one_error_line(run_cli("tick"), 1, prefix=f"{ERROR}task {task_id} (m) failed:")
    assert "/no/such/program" in err
    assert show(run_cli, task_id)["state"] == "failed"


# --- store refusal ------------------------------------------------------------------


def newer_store(run: Run, home: Path) -> None:
    ok(run("init"))
    with sqlite3.connect(home / "tasks.db") as con:
        con.execute("PRAGMA user_version = 99")
    con.close()


def text_store(run: Run, home: Path) -> None:
    home.mkdir(mode=0o700)
    (home / "tasks.db").write_text("these are my notes, not a database\n")


def foreign_store(run: Run, home: Path) -> None:
    home.mkdir(mode=0o700)
    with sqlite3.connect(home / "tasks.db") as con:
        con.execute("CREATE TABLE recipes (name TEXT)")
        con.execute("INSERT INTO recipes VALUES ('soup')")
    con.close()


@pytest.mark.parametrize("make", [newer_store, text_store, foreign_store])
@pytest.mark.parametrize(
    "args",
    [("list",), ("tick",), ("schedule", "m", "--", "true"), ("show", "1"), ("cancel", "1")],
    ids=" ".join,
)
def test_a_store_that_is_not_ours_is_refused_and_left_as_it_was(
    run_cli: Run, home: Path, make: Callable[[Run, Path], None], args: tuple[str, ...]
) -> None:
    make(run_cli, home)
    store = home / "tasks.db"
    original = store.read_bytes()
    result = run_cli(*args)
    err = assert_one_error_line(result, 1)
    assert "tasks.db" in err
    assert result.stdout == ""
    assert store.read_bytes() == original


# --- version, help, init ----------------------------------------------------------------


def test_version_from_the_script_and_from_python_m(run_cli: Run, tmp_path: Path) -> None:
    out = ok(run_cli("--version"))
    assert __version__ in out and out.count("\n") == 1
    module = subprocess.run(
        [sys.executable, "-m", "taskcron", "--version"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=clean_env(),
        timeout=60,
        check=False,
    )
    assert (module.returncode, module.stdout, module.stderr) == (0, out, "")


@pytest.mark.parametrize("command", sorted(cli.commands))
def test_help_works_on_every_command_without_touching_a_home(
    run_cli: Run, home: Path, command: str
) -> None:
    out = ok(run_cli(command, "--help"))
    assert out.startswith(f"Usage: taskcron {command} ")
    assert ok(run_cli(command, "-h")) == out
    assert not home.exists()


def test_top_level_help_lists_every_command(run_cli: Run) -> None:
    out = ok(run_cli("--help"))
    for command in cli.commands:
        assert re.search(rf"^\s+{re.escape(command)}\s", out, re.MULTILINE), command


def test_init_creates_a_private_home_store_and_a_commented_config(
    run_cli: Run, home: Path, tmp_path: Path
) -> None:
    ok(run_cli("init"))
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert stat.S_IMODE((home / "tasks.db").stat().st_mode) == 0o600
    text = (tmp_path / "taskcron.toml").read_text()
    document = tomllib.loads(text)
    assert all(not value for value in document.values()), "every key is commented out"
    for key in ("home", "modules", "pythonpath", "timezone", "budget", "lease", "kill_grace"):
        assert re.search(rf"^# {key} = ", text, re.MULTILINE), key
    for table, keys in (
        ("retry", ("backoff", "max_backoff")),
        ("log", ("level", "max_bytes", "backups", "retention", "output_tail")),
    ):
        assert re.search(rf"^\[{table}\]$", text, re.MULTILINE)
        section = text.split(f"[{table}]", 1)[1]
        for key in keys:
            assert re.search(rf"^# {key} = ", section, re.MULTILINE), f"{table}.{key}"
    assert re.search(r'^# lease = "30s"', text, re.MULTILINE)
    assert re.search(r'^# kill_grace = "10s"', text, re.MULTILINE)
    assert re.search(r'^# backoff = "10s"', text, re.MULTILINE)
    assert re.search(r'^# max_backoff = "1h"', text, re.MULTILINE)
    assert ok(run_cli("list")).split() == TABLE_COLUMNS


def test_init_twice_is_safe_and_keeps_the_config(run_cli: Run, home: Path, tmp_path: Path) -> None:
    ok(run_cli("init"))
    first = (tmp_path / "taskcron.toml").read_text()
    schedule(run_cli, "m", "--", "true")
    ok(run_cli("init"))
    assert (tmp_path / "taskcron.toml").read_text() == first
    assert list(states(run_cli)) == [1]


def test_init_does_not_overwrite_an_existing_config(run_cli: Run, tmp_path: Path) -> None:
    mine = '# mine\nlease = "45s"\n'
    (tmp_path / "taskcron.toml").write_text(mine)
    ok(run_cli("init"))
    assert (tmp_path / "taskcron.toml").read_text() == mine


def test_init_creates_the_home_given_by_the_config(tmp_path: Path) -> None:
    (tmp_path / "taskcron.toml").write_text('home = "var/tc"\n')
    result = subprocess.run(
        [script(), "init"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=clean_env(),
        timeout=60,
        check=False,
    )
    ok(result)
    assert stat.S_IMODE((tmp_path / "var" / "tc").stat().st_mode) == 0o700
    assert (tmp_path / "var" / "tc" / "tasks.db").is_file()


def test_tick_json_prints_only_the_run_it_ran_of_a_long_history(run_cli: Run, home: Path) -> None:
    task_id = schedule(run_cli, "m", "--every", "1m", "--", "true")
    with sqlite3.connect(home / "tasks.db") as con:
        con.execute(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000)"
            " INSERT INTO runs (task_id, attempt, started_at, ended_at, elapsed, outcome,"
            " host, pid) SELECT ?, 1, i, i, 0.0, 'failed', 'h', 1 FROM n",
            (task_id,),
        )
        con.execute("UPDATE tasks SET due_at = 0")  # due now
    con.close()

    task = ok_json(run_cli("tick", "--json"))["task"]

    assert task["id"] == task_id
    assert [run["outcome"] for run in task["runs"]] == ["done"]


def test_show_gives_the_newest_20_runs_unless_told_and_counts_them_all(
    run_cli: Run, home: Path
) -> None:
    task_id = schedule(run_cli, "m", "--every", "1h", "--", "true")
    with sqlite3.connect(home / "tasks.db") as con:
        con.execute(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 30)"
            " INSERT INTO runs (task_id, attempt, started_at, ended_at, elapsed, outcome,"
            " host, pid) SELECT ?, 1, i, i, 0.0, 'done', 'h', 1 FROM n",
            (task_id,),
        )
        con.execute("INSERT INTO task_outcomes VALUES (?, 'done', 30)", (task_id,))
    con.close()

    task = show(run_cli, task_id)
    assert len(task["runs"]) == 20 and task["runs"][-1]["id"] == 30
    assert (task["runs_kept"], task["runs_total"], task["outcomes"]) == (30, 30, {"done": 30})
    assert len(ok_json(run_cli("show", str(task_id), "--json", "--runs", "3"))["runs"]) == 3
    assert len(ok_json(run_cli("show", str(task_id), "--json", "--runs", "all"))["runs"]) == 30
    text = ok(run_cli("show", str(task_id)))
    assert "30 in all: 30 done (30 kept)" in text
    assert "the newest 20 runs of 30 kept; --runs all shows every one" in text
    assert_one_error_line(
        run_cli("show", str(task_id), "--runs", "some"),
        2,
        prefix=f"{ERROR}invalid runs 'some': expected 0 to 1000000 or 'all'",
    )
