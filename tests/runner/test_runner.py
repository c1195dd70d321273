"""Running tasks for real: callables, registered handlers and commands, in child processes."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import textwrap
from datetime import timedelta
from pathlib import Path

import pytest

from taskcron import TaskCron, errors
from taskcron.api import utc_now
from taskcron.config import Config, LogConfig
from taskcron.model import Outcome, State
from tests.conftest import SERIAL, FakeClock, clean_env, script, wait_for

HANDLERS = """
import json, logging, os, sys, time
from pathlib import Path

def echo(ctx, data):
    return {
        "task_id": ctx.task_id,
        "module": ctx.module,
        "data": ctx.data,
        "attempt": ctx.attempt,
        "deadline": None if ctx.deadline is None else ctx.deadline.isoformat(),
        "same_data": ctx.data == data,
        "logger": ctx.log.name,
        "cwd": os.getcwd(),
    }

def boom(ctx, data):
    raise ValueError("no invoices for " + str(data))

def not_json(ctx, data):
    return {1, 2}

def exits(ctx, data):
    sys.exit(3)

def chatty(ctx, data):
    print("to stdout")
    print("to stderr", file=sys.stderr)
    ctx.log.info("logged")
    return "ok"

def wait_for_file(ctx, data):
    Path(data["started"]).touch()
    while not Path(data["stop"]).exists():
        time.sleep(0.02)
    return "stopped"

def big_output(ctx, data):
    sys.stdout.write("y" * data["size"])
    return None
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """An application directory with a handlers module and a taskcron.toml."""
    app = tmp_path / "app"
    app.mkdir()
    (app / "apptasks.py").write_text(HANDLERS)
    (app / "taskcron.toml").write_text('home = "state"\n')
    return app


@pytest.fixture
def app(project: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> TaskCron:
    monkeypatch.chdir("/")
    monkeypatch.delenv("TASKCRON_HOME", raising=False)
    return TaskCron(config=str(project / "taskcron.toml"), clock=clock)


def run_one(app: TaskCron, **kwargs: object) -> tuple[State, object, str | None]:
    result = app.tick()
    assert result.outcome == "ran" and result.task is not None
    run = result.task.last_run
    assert run is not None
    return result.task.state, result.task.result, run.error


def test_callable_receives_context_and_its_result_is_stored(
    app: TaskCron, project: Path, clock: FakeClock
) -> None:
    task = app.schedule("billing.invoices", call="apptasks:echo", data={"day": 1})
    result = app.tick(budget="50s")
    assert result.task is not None
    assert result.task.state is State.DONE
    assert result.task.result == {
        "task_id": task.id,
        "module": "billing.invoices",
        "data": {"day": 1},
        "attempt": 1,
        "deadline": (clock.now + timedelta(seconds=50)).isoformat(),
        "same_data": True,
        "logger": "taskcron.task.billing.invoices",
        "cwd": str(project),
    }
    assert app.home == project / "state"


def test_callable_is_found_from_another_directory_through_the_config_directory(
    app: TaskCron,
) -> None:
    assert str(Path.cwd()) == "/"
    app.schedule("m", call="apptasks:chatty")
    state, result, _ = run_one(app)
    assert (state, result) == (State.DONE, "ok")


def test_exception_fails_the_run_with_its_traceback(app: TaskCron) -> None:
    task = app.schedule("m", call="apptasks:boom", data=7)
    state, _, error = run_one(app)
    assert state is State.FAILED
    assert error == "ValueError: no invoices for 7"
    run = app.get(task.id).runs[-1]
    assert run.outcome is Outcome.FAILED
    assert run.traceback is not None and 'raise ValueError("no invoices for "' in run.traceback


@pytest.mark.parametrize(
    ("call", "error"),
    [
        ("apptasks:not_json", "the handler's result is not JSON: "),
        ("apptasks:exits", "the handler called sys.exit(3)"),
        ("apptasks:missing", "cannot find 'missing' in module 'apptasks' for 'apptasks:missing'"),
        ("nosuchmodule.x:f", "cannot import 'nosuchmodule.x' for 'nosuchmodule.x:f': "),
    ],
)
def test_a_broken_handler_fails_the_run_saying_why(app: TaskCron, call: str, error: str) -> None:
    app.schedule("m", call=call)
    state, _, found = run_one(app)
    assert state is State.FAILED
    assert found is not None and found.startswith(error)


def test_output_of_a_callable_is_kept_with_its_run(app: TaskCron) -> None:
    task = app.schedule("m", call="apptasks:chatty")
    run_one(app)
    run = app.get(task.id).runs[-1]
    assert "to stdout\n" in run.output_tail
    assert "to stderr\n" in run.output_tail
    assert not run.truncated


def test_large_output_never_blocks_and_only_the_tail_is_kept(app: TaskCron) -> None:
    task = app.schedule("m", call="apptasks:big_output", data={"size": 5_000_000})
    state, _, _ = run_one(app)
    assert state is State.DONE
    run = app.get(task.id).runs[-1]
    assert run.truncated
    assert run.output_tail == "y" * app.config.log.output_tail


def test_pythonpath_directories_are_importable(tmp_path: Path, clock: FakeClock) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "deep_tasks.py").write_text("def f(ctx, data):\n    return data * 2\n")
    config = tmp_path / "taskcron.toml"
    config.write_text('home = "h"\npythonpath = ["src"]\n')
    app = TaskCron(config=str(config), clock=clock)
    app.schedule("m", call="deep_tasks:f", data=21)
    assert run_one(app)[:2] == (State.DONE, 42)


def test_registered_tasks_are_found_by_name(tmp_path: Path, clock: FakeClock) -> None:
    (tmp_path / "named.py").write_text(
        textwrap.dedent(
            """
            from taskcron import task

            @task
            def plain(ctx, data):
                return "plain"

            @task()
            def called(ctx, data):
                return "called"

            @task("renamed")
            def positional(ctx, data):
                return "renamed"

            @task(name="keyword")
            def by_keyword(ctx, data):
                return "keyword"
            """
        )
    )
    config = tmp_path / "taskcron.toml"
    config.write_text('home = "h"\nmodules = ["named"]\n')
    app = TaskCron(config=str(config), clock=clock)
    for name in ("plain", "called", "renamed", "keyword"):
        app.schedule("m", task=name)
        assert run_one(app)[:2] == (State.DONE, name)
    app.schedule("m", task="positional", check_task=False)
    state, _, error = run_one(app)
    assert state is State.FAILED
    assert error is not None and error.startswith("no task handler named 'positional'")


def test_two_functions_under_one_name_is_an_error_naming_both(
    tmp_path: Path, clock: FakeClock
) -> None:
    (tmp_path / "one.py").write_text("from taskcron import task\n@task('x')\ndef f(c, d): pass\n")
    (tmp_path / "two.py").write_text("from taskcron import task\n@task('x')\ndef g(c, d): pass\n")
    config = tmp_path / "taskcron.toml"
    config.write_text('home = "h"\nmodules = ["one", "two"]\n')
    app = TaskCron(config=str(config), clock=clock)
    app.schedule("m", task="x")
    state, _, error = run_one(app)
    assert state is State.FAILED
    assert error == "task name 'x' is registered twice: by one:f and two:g"


def test_entry_points_register_tasks(tmp_path: Path, clock: FakeClock) -> None:
    site = tmp_path / "site"
    (site / "plugin_pkg").mkdir(parents=True)
    (site / "plugin_pkg" / "__init__.py").write_text("def hello(ctx, data):\n    return 'hi'\n")
    dist = site / "plugin_pkg-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: plugin-pkg\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[taskcron.tasks]\ngreet = plugin_pkg:hello\n")
    config = tmp_path / "taskcron.toml"
    config.write_text('home = "h"\npythonpath = ["site"]\n')
    app = TaskCron(config=str(config), clock=clock)
    app.schedule("m", task="greet")
    assert run_one(app)[:2] == (State.DONE, "hi")


def test_schedule_refuses_a_task_name_neither_modules_nor_entry_points_register(
    tmp_path: Path, clock: FakeClock
) -> None:
    site = tmp_path / "site"
    (site / "plugin_pkg2").mkdir(parents=True)
    (site / "plugin_pkg2" / "__init__.py").write_text("def hello(ctx, data):\n    pass\n")
    dist = site / "plugin_pkg2-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: plugin-pkg2\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[taskcron.tasks]\nwelcome_mail = plugin_pkg2:hello\n")
    config = tmp_path / "taskcron.toml"
    config.write_text('home = "h"\npythonpath = ["site"]\n')
    app = TaskCron(config=str(config), clock=clock)
    with pytest.raises(errors.TargetError, match="did you mean 'welcome_mail'") as caught:
        app.schedule("m", task="welcome_mial")
    assert isinstance(caught.value, errors.InputError)
    assert not (tmp_path / "h").exists()
    skipped = app.schedule("m", task="welcome_mial", check_task=False)
    assert app.schedule("m", task="welcome_mail").id == skipped.id + 1


def test_command_gets_data_on_stdin_and_its_id_and_deadline_in_env(
    tc: TaskCron, tmp_path: Path, clock: FakeClock
) -> None:
    out = tmp_path / "out.txt"
    task = tc.schedule(
        "m",
        command=[
            "sh",
            "-c",
            f'cat > {out}; echo "|$TASKCRON_TASK_ID|$TASKCRON_DEADLINE|" >> {out}',
        ],
        data={"k": [1, 2]},
    )
    run_one(tc)
    deadline = ""
    assert out.read_text() == f'{{"k": [1, 2]}}|{task.id}|{deadline}|\n'
    task = tc.schedule("m", command=["sh", "-c", f'echo "$TASKCRON_DEADLINE" > {out}'])
    tc.tick(budget="90s")
    assert out.read_text() == (clock.now + timedelta(seconds=90)).isoformat() + "\n"


@pytest.mark.parametrize(
    ("argv", "outcome", "exit_code", "error"),
    [
        (["true"], Outcome.DONE, 0, None),
        (["sh", "-c", "exit 3"], Outcome.FAILED, 3, "exited with code 3"),
        (["sh", "-c", "kill -9 $$"], Outcome.FAILED, -9, "killed by SIGKILL"),
        (["/no/such/program"], Outcome.FAILED, None, "cannot start command '/no/such/program': "),
    ],
)
def test_command_outcomes(
    tc: TaskCron, argv: list[str], outcome: Outcome, exit_code: int | None, error: str | None
) -> None:
    task = tc.schedule("m", command=argv)
    tc.tick()
    run = tc.get(task.id).runs[-1]
    assert (run.outcome, run.exit_code) == (outcome, exit_code)
    if error is None:
        assert run.error is None
    else:
        assert run.error is not None and run.error.startswith(error)


@SERIAL
def test_timeout_kills_the_run_and_counts_as_a_failed_attempt(home: Path, clock: FakeClock) -> None:
    app = TaskCron(config=Config(home=home, kill_grace=timedelta(seconds=0.2)), clock=clock)
    # The shell ignores SIGTERM, so only the SIGKILL after the grace ends it.
    task = app.schedule(
        "m", command=["sh", "-c", "trap '' TERM; while :; do sleep 0.05; done"], timeout="0.3s"
    )
    result = app.tick()
    assert result.failed
    run = app.get(task.id).runs[-1]
    assert run.outcome is Outcome.TIMEOUT
    assert run.error == "timed out after 0.3s"
    assert app.get(task.id).state is State.FAILED


def test_failed_run_with_attempts_left_is_retried_after_the_backoff(
    tc: TaskCron, clock: FakeClock
) -> None:
    task = tc.schedule("m", command=["false"], max_attempts=2)
    assert tc.tick().failed
    queued = tc.get(task.id)
    assert queued.state is State.QUEUED
    wait = (queued.due_at - clock.now).total_seconds()
    assert 8 <= wait <= 12  # retry.backoff 10s, ±20%
    assert tc.tick().outcome == "idle"
    clock.advance(13)
    assert tc.tick().failed
    assert tc.get(task.id).state is State.FAILED
    assert tc.get(task.id).attempts == 2
    tc.retry(task.id)
    assert tc.get(task.id).attempts == 0


def _tick_process(home: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [script(), "tick", *args],
        env=clean_env(TASKCRON_HOME=str(home)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _waiting_task(app: TaskCron, tmp_path: Path, **kwargs: object) -> tuple[int, Path, Path]:
    started, stop = tmp_path / "started", tmp_path / "stop"
    loop = f"touch {started}; while [ ! -e {stop} ]; do sleep 0.02; done"
    task = app.schedule("m", command=["sh", "-c", loop], **kwargs)  # type: ignore[arg-type]
    return task.id, started, stop


@SERIAL
def test_a_killed_tick_is_recovered_by_the_next_one_which_stops_its_orphan(
    home: Path, tmp_path: Path
) -> None:
    app = TaskCron(config=Config(home=home))
    task_id, started, _ = _waiting_task(app, tmp_path, max_attempts=2)
    tick = _tick_process(home)
    wait_for(started.exists)
    # the task may start before its tick has recorded the child's pid
    wait_for(lambda: app.get(task_id).runs[-1].child_pid is not None)
    tick.kill()
    tick.wait(timeout=10)
    orphan = app.get(task_id).runs[-1].child_pid
    assert orphan is not None
    assert Path(f"/proc/{orphan}").exists()  # the task outlived its tick
    result = app.tick()
    assert result.outcome == "idle"
    assert [r.task.id for r in result.recovered] == [task_id]
    task = app.get(task_id)
    assert task.state is State.QUEUED
    run = task.runs[-1]
    assert run.outcome is Outcome.INTERRUPTED
    assert run.error is not None and "is gone" in run.error
    wait_for(lambda: not _alive(orphan))
    killed = [r for r in app.logstore.tail(5) if r["event"] == "task.killed"]
    assert [(r["task"], r["pid"]) for r in killed] == [(task_id, orphan)]


def _alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "State:\tZ" not in status  # a zombie has finished


@SERIAL
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP], ids=str)
def test_a_signal_to_a_tick_interrupts_its_run_requeues_it_and_ends_the_tick_by_that_signal(
    home: Path, tmp_path: Path, sig: signal.Signals
) -> None:
    app = TaskCron(config=Config(home=home))
    task_id, started, _ = _waiting_task(app, tmp_path, max_attempts=3)
    tick = _tick_process(home)
    wait_for(started.exists)
    tick.send_signal(sig)
    _, err = tick.communicate(timeout=20)
    assert tick.returncode == -sig  # a shell sees 128 + N; systemd counts SIGTERM as a stop
    assert re.fullmatch(
        rf"taskcron: error: task {task_id} \(m\) was interrupted on attempt 1 of 3, retrying "
        rf"at [0-9: -]+ UTC: the tick received {sig.name}\n",
        err,
    ), err
    task = app.get(task_id)
    assert task.state is State.QUEUED
    assert task.runs[-1].outcome is Outcome.INTERRUPTED


def test_a_long_run_renews_its_lease_so_no_other_tick_takes_it(home: Path, tmp_path: Path) -> None:
    # A lease short enough to expire several times over, long enough that a loaded
    # machine never stalls the tick's renewal (every third of it) past its end.
    config = Config(home=home, lease=timedelta(seconds=2.5))
    (tmp_path / "taskcron.toml").write_text(f'home = "{home}"\nlease = "2.5s"\n')
    app = TaskCron(config=config, clock=utc_now)
    task_id, started, stop = _waiting_task(app, tmp_path)
    tick = subprocess.Popen(
        [script(), "--config", str(tmp_path / "taskcron.toml"), "tick"],
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for(started.exists)
    first = app.store.get(task_id).updated_at
    # Outlive the first lease several times over while other ticks keep checking.
    deadline = first + timedelta(seconds=7.5)
    while utc_now() < deadline:
        result = app.tick()
        assert result.outcome == "busy", (result, app.get(task_id).runs)
    stop.touch()
    out, err = tick.communicate(timeout=20)
    assert (tick.returncode, out, err) == (0, "", "")
    task = app.get(task_id)
    assert task.state is State.DONE
    assert [r.outcome for r in task.runs] == [Outcome.DONE]


def test_output_tail_size_follows_the_config(home: Path, clock: FakeClock) -> None:
    app = TaskCron(config=Config(home=home, log=LogConfig(output_tail=10)), clock=clock)
    task = app.schedule("m", command=[sys.executable, "-c", "print('0123456789abcdef')"])
    app.tick()
    run = app.get(task.id).runs[-1]
    assert (run.output_tail, run.truncated) == ("789abcdef\n", True)


def test_tick_json_of_a_run_matches_show(tc: TaskCron) -> None:
    task = tc.schedule("m", command=["true"])
    result = tc.tick()
    assert json.loads(json.dumps(result.to_json()))["task"] == tc.get(task.id).to_json()
