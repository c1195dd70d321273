"""What a new user runs into, through real subprocesses of the installed script.

Each test here is a trip reported by someone trying taskcron for the first time:
a command run from the wrong directory, data left out, a mistake that showed
only at tick time, a retry that read like a final failure, a silent `tick -v`,
`--debug` in the wrong place, a title that lost its quoting, three-line usage
errors.
"""

from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
import textwrap
from pathlib import Path

import pytest

from taskcron import TaskCron
from tests.conftest import clean_env, script, taskcron_in

ERROR = "taskcron: error: "


def taskcron(
    *args: str, cwd: Path, env: dict[str, str] | None = None, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    return taskcron_in(cwd, *args, env=env, input=input)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


# --- the wrong directory ----------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [("list",), ("list", "--json"), ("show", "1"), ("next",), ("log",)],
    ids=lambda a: " ".join(a),
)
def test_a_read_only_command_in_a_directory_without_a_home_says_so_and_creates_nothing(
    tmp_path: Path, args: tuple[str, ...]
) -> None:
    result = taskcron(*args, cwd=tmp_path)
    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(ERROR + f"no taskcron home at {tmp_path / '.taskcron'}")
    assert "taskcron init" in lines[0]
    assert list(tmp_path.iterdir()) == []


def test_a_home_without_a_store_yet_lists_as_empty_and_stays_without_one(tmp_path: Path) -> None:
    (tmp_path / ".taskcron").mkdir()
    result = taskcron("list", "--json", cwd=tmp_path)
    assert (result.returncode, result.stdout, result.stderr) == (0, "[]\n", "")
    assert list((tmp_path / ".taskcron").iterdir()) == []


def test_the_config_is_found_in_a_parent_directory_and_its_home_sits_beside_it(
    tmp_path: Path,
) -> None:
    project = tmp_path / "project"
    write(project / "taskcron.toml", 'timezone = "UTC"\n')
    deep = project / "src" / "app"
    deep.mkdir(parents=True)
    scheduled = taskcron("schedule", "app.mail", "--", "true", cwd=deep)
    assert (scheduled.returncode, scheduled.stderr) == (0, "")
    assert (project / ".taskcron" / "tasks.db").is_file()
    assert not (deep / ".taskcron").exists()
    listed = taskcron("list", "--json", cwd=project / "src")
    assert [t["module"] for t in json.loads(listed.stdout)] == ["app.mail"]


def test_a_pyproject_without_a_taskcron_table_does_not_stop_the_walk(tmp_path: Path) -> None:
    write(tmp_path / "taskcron.toml", 'home = "state"\n')
    write(tmp_path / "pkg" / "pyproject.toml", '[project]\nname = "pkg"\n')
    result = taskcron("check", "--json", cwd=tmp_path / "pkg")
    report = json.loads(result.stdout)
    assert report["config"] == str(tmp_path / "taskcron.toml")
    assert report["home"] == str(tmp_path / "state")


def test_taskcron_toml_wins_over_a_pyproject_table_in_the_same_directory(tmp_path: Path) -> None:
    write(tmp_path / "pyproject.toml", '[tool.taskcron]\nhome = "from-pyproject"\n')
    write(tmp_path / "taskcron.toml", 'home = "from-taskcron-toml"\n')
    report = json.loads(taskcron("check", "--json", cwd=tmp_path).stdout)
    assert report["home"] == str(tmp_path / "from-taskcron-toml")


def test_a_config_file_others_can_write_is_skipped_with_a_warning(tmp_path: Path) -> None:
    unsafe = write(tmp_path / "taskcron.toml", 'modules = ["evil"]\n')
    unsafe.chmod(0o666)
    (tmp_path / "work").mkdir()
    result = taskcron("schedule", "app", "--", "true", cwd=tmp_path / "work")
    assert result.returncode == 0
    assert result.stderr == (
        f"taskcron: warning: ignoring config file {unsafe}: others can write to it\n"
        f"taskcron: warning: created a new home at {tmp_path / 'work' / '.taskcron'}\n"
    )
    assert (tmp_path / "work" / ".taskcron" / "tasks.db").is_file()


def test_check_reports_a_config_it_ignored_as_unsafe_as_broken(tmp_path: Path) -> None:
    write(tmp_path / "taskcron.toml", 'home = "state"\n').chmod(0o666)
    (tmp_path / "work").mkdir()
    result = taskcron("check", "--json", cwd=tmp_path / "work")
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert report["ok"] is False
    assert report["checks"][0] == {
        "name": "config",
        "ok": False,
        "detail": "none found: defaults; ignoring config file "
        f"{tmp_path / 'taskcron.toml'}: others can write to it",
    }
    table = taskcron("check", cwd=tmp_path / "work").stdout.splitlines()
    assert table[0].startswith("BROKEN config ")


# --- a home made in the wrong place ---------------------------------------------------


def created(home: Path) -> str:
    return f"taskcron: warning: created a new home at {home}\n"


@pytest.mark.parametrize("args", [("tick",), ("schedule", "app", "--", "true")], ids=lambda a: a[0])
def test_a_home_nothing_names_is_created_with_one_warning(
    tmp_path: Path, args: tuple[str, ...]
) -> None:
    first = taskcron(*args, cwd=tmp_path)
    assert (first.returncode, first.stderr) == (0, created(tmp_path / ".taskcron"))
    assert (tmp_path / ".taskcron" / "tasks.db").is_file()
    again = taskcron(*args, cwd=tmp_path)
    assert (again.returncode, again.stderr) == (0, "")


@pytest.mark.parametrize("how", ["--home", "TASKCRON_HOME", "--config", "config file"])
def test_a_home_named_anywhere_is_created_silently(tmp_path: Path, how: str) -> None:
    config = write(tmp_path / "project" / "taskcron.toml", 'home = "state"\n')
    args: tuple[str, ...] = ("tick",)
    env: dict[str, str] = {}
    cwd = tmp_path
    if how == "--home":
        args = ("--home", str(tmp_path / "state"), "tick")
    elif how == "TASKCRON_HOME":
        env = {"TASKCRON_HOME": str(tmp_path / "state")}
    elif how == "--config":
        args = ("--config", str(config), "tick")
    else:
        cwd = config.parent
    result = taskcron(*args, cwd=cwd, env=env)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    home = (
        tmp_path / "project" / "state" if how in ("--config", "config file") else tmp_path / "state"
    )
    assert (home / "tasks.db").is_file()
    assert not (tmp_path / ".taskcron").exists()


def test_a_home_beside_a_store_named_elsewhere_is_created_silently(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'db' / 'tasks.db'}"
    result = taskcron("--store", store, "schedule", "app", "--", "true", cwd=tmp_path)
    assert (result.returncode, result.stdout, result.stderr) == (0, "1\n", "")
    assert (tmp_path / "db" / "tasks.db").is_file()


def test_a_command_that_finds_no_home_says_the_config_file_it_skipped_was_not_usable(
    tmp_path: Path,
) -> None:
    unsafe = write(tmp_path / "taskcron.toml", 'home = "state"\n')
    unsafe.chmod(0o666)
    result = taskcron("list", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr == (
        f"taskcron: warning: ignoring config file {unsafe}: others can write to it\n"
        f"taskcron: error: no taskcron home at {tmp_path / '.taskcron'} (no usable config file"
        f" in {tmp_path} or its parents): run 'taskcron init' to create one, or give --home"
        " or --config\n"
    )


@pytest.mark.parametrize("command", [("tick",), ("schedule", "app", "--", "true")], ids=str)
def test_a_store_that_cannot_be_reached_leaves_no_home_behind(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    unreachable = "postgresql://nobody@127.0.0.1:1/tasks?connect_timeout=2"
    result = taskcron("--store", unreachable, *command, cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.startswith("taskcron: error: cannot connect to store ")
    assert result.stderr.count("\n") == 1  # one line, and no warning of a home made
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_init_never_warns_of_the_home_it_creates(tmp_path: Path) -> None:
    result = taskcron("init", cwd=tmp_path)
    assert (result.returncode, result.stderr) == (0, "")
    assert (tmp_path / ".taskcron" / "tasks.db").is_file()


def test_check_names_a_home_that_no_config_names(tmp_path: Path) -> None:
    taskcron("tick", cwd=tmp_path)
    report = json.loads(taskcron("check", "--json", cwd=tmp_path).stdout)
    home = next(c for c in report["checks"] if c["name"] == "home")
    assert home == {
        "name": "home",
        "ok": True,
        "detail": f"{tmp_path / '.taskcron'} exists (no config names a home: no --home, "
        "TASKCRON_HOME, --config or config file found, so it is ./.taskcron here)",
    }
    write(tmp_path / "taskcron.toml", "")
    report = json.loads(taskcron("check", "--json", cwd=tmp_path).stdout)
    home = next(c for c in report["checks"] if c["name"] == "home")
    assert home["detail"] == f"{tmp_path / '.taskcron'} exists"


# --- data left out, mistakes that show only at tick time -----------------------------


def test_a_handler_gets_an_empty_object_when_data_is_left_out(tmp_path: Path) -> None:
    write(
        tmp_path / "app.py",
        """
        def show(ctx, data):
            print(type(data).__name__, data)
        """,
    )
    write(tmp_path / "taskcron.toml", "")
    assert taskcron("schedule", "app", "--call", "app:show", cwd=tmp_path).returncode == 0
    assert taskcron("schedule", "app", "--", "cat", cwd=tmp_path).returncode == 0
    for _ in range(2):
        assert taskcron("tick", cwd=tmp_path).returncode == 0
    tasks = json.loads(taskcron("list", "--all", "--json", cwd=tmp_path).stdout)
    outputs = [
        json.loads(taskcron("show", str(t["id"]), "--json", cwd=tmp_path).stdout)["runs"][-1][
            "output_tail"
        ]
        for t in tasks
    ]
    assert outputs == ["dict {}\n", "{}"]


def test_check_reports_a_healthy_home_and_exits_zero(tmp_path: Path) -> None:
    write(
        tmp_path / "app.py",
        """
        import taskcron

        @taskcron.task
        def send(ctx, data):
            pass
        """,
    )
    write(tmp_path / "taskcron.toml", 'modules = ["app"]\n')
    assert taskcron("schedule", "mail", "--task", "send", cwd=tmp_path).returncode == 0
    result = taskcron("check", "--json", cwd=tmp_path)
    report = json.loads(result.stdout)
    assert result.returncode == 0, report
    assert report["ok"] is True
    assert report["config"] == str(tmp_path / "taskcron.toml")
    assert report["home"] == str(tmp_path / ".taskcron")
    checks = {c["name"]: c for c in report["checks"]}
    assert {"config", "modules", "store", "targets", "log", "crontab"} <= set(checks)
    assert all(set(c) == {"name", "ok", "detail"} for c in report["checks"])
    assert "tasks: send" in checks["modules"]["detail"]
    assert checks["targets"]["detail"] == "1 of 1 waiting tasks resolve"


def test_check_names_each_task_whose_target_does_not_resolve(tmp_path: Path) -> None:
    write(tmp_path / "app.py", "def ok(ctx, data):\n    pass\n")
    write(tmp_path / "taskcron.toml", "")
    for target in ("app:ok", "app:nope", "nosuchmodule:run"):
        assert taskcron("schedule", "m", "--call", target, cwd=tmp_path).returncode == 0
    assert taskcron("schedule", "m", "--task", "ghost", "--no-check", cwd=tmp_path).returncode == 0
    assert taskcron("schedule", "m", "--", "/no/such/program", cwd=tmp_path).returncode == 0
    result = taskcron("check", cwd=tmp_path)
    assert result.returncode == 1
    broken = [line for line in result.stdout.splitlines() if line.startswith("BROKEN")]
    assert [line.split()[1:3] for line in broken] == [
        ["targets", "1"],
        ["task", "2"],
        ["task", "3"],
        ["task", "4"],
        ["task", "5"],
    ]
    assert "'nope'" in broken[1] and "nosuchmodule" in broken[2]
    assert "'ghost'" in broken[3] and "/no/such/program" in broken[4]


def test_check_in_a_directory_without_a_home_reports_one_broken_item_and_creates_nothing(
    tmp_path: Path,
) -> None:
    result = taskcron("check", "--json", cwd=tmp_path)
    report = json.loads(result.stdout)
    assert result.returncode == 1
    assert [c["name"] for c in report["checks"] if not c["ok"]] == ["home"]
    assert list(tmp_path.iterdir()) == []


def test_check_reports_a_config_it_cannot_read_as_broken(tmp_path: Path) -> None:
    write(tmp_path / "taskcron.toml", 'modles = ["app"]\n')
    result = taskcron("check", "--json", cwd=tmp_path)
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert report["ok"] is False
    assert report["checks"] == [
        {
            "name": "config",
            "ok": False,
            "detail": "unknown config key 'modles': did you mean 'modules'?",
        }
    ]


@pytest.mark.parametrize(
    "target", [("--call", "app:nope"), ("--task", "ghost"), ("--", "/no/such/program")]
)
def test_schedule_check_refuses_a_target_that_does_not_resolve(
    tmp_path: Path, target: tuple[str, ...]
) -> None:
    write(tmp_path / "app.py", "def ok(ctx, data):\n    pass\n")
    write(tmp_path / "taskcron.toml", "")
    assert taskcron("init", cwd=tmp_path).returncode == 0
    result = taskcron("schedule", "m", "--check", *target, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith(ERROR) and "does not resolve" in result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert taskcron("list", "--json", cwd=tmp_path).stdout == "[]\n"
    assert taskcron("schedule", "m", "--check", "--call", "app:ok", cwd=tmp_path).returncode == 0


@pytest.fixture
def greeter(tmp_path: Path) -> Path:
    """A project whose config's module `app` registers the handlers `hello` and `help_me`."""
    write(
        tmp_path / "app.py",
        """
        import taskcron

        @taskcron.task
        def hello(ctx, data):
            pass

        @taskcron.task
        def help_me(ctx, data):
            pass
        """,
    )
    write(tmp_path / "taskcron.toml", 'modules = ["app"]\n')
    return tmp_path


def test_schedule_refuses_a_misspelt_task_name_and_says_which_one_it_meant(
    greeter: Path,
) -> None:
    result = taskcron("schedule", "mail", "--task", "helo", cwd=greeter)
    assert (result.returncode, result.stdout, result.stderr) == (
        2,
        "",
        f"{ERROR}no task handler named 'helo' (searched modules app and entry points "
        "'taskcron.tasks'); did you mean 'hello'?\n",
    )
    assert not (greeter / ".taskcron").exists()
    assert taskcron("schedule", "mail", "--task", "hello", cwd=greeter).stdout == "1\n"


def test_schedule_no_check_adds_a_task_name_that_no_module_registers(greeter: Path) -> None:
    result = taskcron("schedule", "mail", "--task", "helo", "--no-check", cwd=greeter)
    assert (result.returncode, result.stdout, result.stderr) == (0, "1\n", "")
    tick = taskcron("tick", cwd=greeter)
    assert tick.returncode == 1
    assert tick.stderr.startswith(f"{ERROR}task 1 (mail) failed: ")
    assert tick.stderr.endswith("did you mean 'hello'?\n")


def test_schedule_check_of_a_misspelt_task_name_says_which_one_it_meant(greeter: Path) -> None:
    result = taskcron("schedule", "mail", "--task", "helo", "--check", cwd=greeter)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == (
        f"{ERROR}target 'helo' does not resolve: no task handler named 'helo' (searched "
        "modules app and entry points 'taskcron.tasks'); did you mean 'hello'?\n"
    )


def test_schedule_warns_and_adds_the_task_when_a_task_module_cannot_be_imported(
    greeter: Path,
) -> None:
    write(greeter / "taskcron.toml", 'modules = ["app", "gone_zz"]\n')
    result = taskcron("schedule", "mail", "--task", "helo", cwd=greeter)
    assert (result.returncode, result.stdout, result.stderr) == (
        0,
        "1\n",
        "taskcron: warning: cannot import task module 'gone_zz': No module named 'gone_zz'; "
        "task 'helo' could not be checked\n",
    )


# --- failures with attempts left, tick -v ---------------------------------------------


@pytest.fixture
def failing(tmp_path: Path) -> Path:
    write(
        tmp_path / "app.py",
        """
        def err(ctx, data):
            raise ValueError("kaboom")

        def chatty(ctx, data):
            print("first line", flush=True)
            print("second line", flush=True)
        """,
    )
    write(tmp_path / "taskcron.toml", '[retry]\nbackoff = "0s"\n')
    return tmp_path


def test_a_failure_with_attempts_left_says_when_it_retries(failing: Path) -> None:
    taskcron("schedule", "app.err", "--call", "app:err", "--max-attempts", "2", cwd=failing)
    first = taskcron("tick", cwd=failing)
    assert first.returncode == 1
    assert re.fullmatch(
        r"taskcron: error: task 1 \(app\.err\) failed on attempt 1 of 2, retrying at "
        r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC: ValueError: kaboom\n",
        first.stderr,
    ), first.stderr
    last = taskcron("tick", cwd=failing)
    assert (last.returncode, last.stderr) == (
        1,
        "taskcron: error: task 1 (app.err) failed on attempt 2 of 2: ValueError: kaboom\n",
    )


def test_a_recurring_failure_says_when_it_runs_next(failing: Path) -> None:
    taskcron("schedule", "app.err", "--call", "app:err", "--every", "1h", "--in", "0s", cwd=failing)
    result = taskcron("tick", cwd=failing)
    assert result.returncode == 1
    assert re.fullmatch(
        r"taskcron: error: task 1 \(app\.err\) failed on attempt 1 of 1, next run at "
        r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC: ValueError: kaboom\n",
        result.stderr,
    ), result.stderr


def test_a_task_with_one_attempt_keeps_the_short_failure_line(failing: Path) -> None:
    taskcron("schedule", "app.err", "--call", "app:err", cwd=failing)
    result = taskcron("tick", cwd=failing)
    assert (result.returncode, result.stderr) == (
        1,
        "taskcron: error: task 1 (app.err) failed: ValueError: kaboom\n",
    )


def test_tick_verbose_says_which_task_it_runs_and_keeps_its_output_off_a_pipe(
    failing: Path,
) -> None:
    taskcron("schedule", "app.slow", "--call", "app:chatty", "--title", "Chat", cwd=failing)
    result = taskcron("tick", "-v", cwd=failing)
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert lines[0] == "running task 1 (app.slow): Chat"
    assert re.fullmatch(r"ran task 1 \(app\.slow\): done in \d+\.\d{3}s", lines[1])
    assert len(lines) == 2


def test_tick_verbose_at_a_terminal_shows_the_output_as_it_comes(failing: Path) -> None:
    taskcron("schedule", "app.slow", "--call", "app:chatty", "--title", "Chat", cwd=failing)
    primary, secondary = pty.openpty()
    proc = subprocess.Popen(
        [script(), "tick", "-v"],
        cwd=failing,
        env=clean_env(),
        stdin=subprocess.DEVNULL,
        stdout=secondary,
        stderr=subprocess.PIPE,
    )
    os.close(secondary)
    seen = b""
    try:
        while True:
            ready, _, _ = select.select([primary], [], [], 30)
            assert ready, f"no output from tick -v: {seen!r}"
            try:
                chunk = os.read(primary, 4096)
            except OSError:  # the terminal's other side closed: the tick is gone
                break
            if not chunk:
                break
            seen += chunk
    finally:
        os.close(primary)
        assert proc.wait(timeout=30) == 0
    text = seen.decode().replace("\r\n", "\n")
    assert text.splitlines()[:3] == ["running task 1 (app.slow): Chat", "first line", "second line"]


# --- --debug, titles, one-line usage errors -----------------------------------------


@pytest.mark.parametrize(
    ("args", "env"),
    [
        (("--debug", "show", "7"), {}),
        (("show", "7", "--debug"), {}),
        (("show", "7"), {"TASKCRON_DEBUG": "1"}),
    ],
    ids=["before", "after", "env"],
)
def test_debug_shows_the_traceback_wherever_it_is_given(
    tmp_path: Path, args: tuple[str, ...], env: dict[str, str]
) -> None:
    (tmp_path / ".taskcron").mkdir()
    result = taskcron(*args, cwd=tmp_path, env=env)
    assert result.returncode == 1
    assert result.stderr.startswith("Traceback (most recent call last):")
    assert result.stderr.endswith(ERROR + "no task with id 7\n")


def test_a_commands_title_keeps_its_quoting(tmp_path: Path) -> None:
    env = {"TASKCRON_HOME": str(tmp_path / "home")}
    taskcron("schedule", "m", "--", "sh", "-c", "echo hi; sleep 1", cwd=tmp_path, env=env)
    listed = json.loads(taskcron("list", "--json", cwd=tmp_path, env=env).stdout)
    assert listed[0]["title"] == "sh -c 'echo hi; sleep 1'"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("shedule",), "No such command 'shedule'. Did you mean 'schedule'?"),
        (("show", "abc"), "Invalid value for 'ID': 'abc' is not a valid integer."),
        (
            ("schedule", "m", "--priority", "high", "--", "true"),
            "Invalid value for '--priority': 'high' is not a valid integer.",
        ),
        (("list", "--bogus"), "No such option '--bogus'."),
    ],
    ids=["command", "argument", "option value", "option"],
)
def test_usage_errors_are_one_line_in_taskcrons_form(
    tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    result = taskcron(*args, cwd=tmp_path)
    assert (result.returncode, result.stdout, result.stderr) == (2, "", ERROR + message + "\n")
    assert list(tmp_path.iterdir()) == []


def test_an_unknown_config_key_suggests_the_nearest_known_one(tmp_path: Path) -> None:
    write(tmp_path / "taskcron.toml", 'tiemzone = "UTC"\n')
    result = taskcron("list", cwd=tmp_path)
    assert (result.returncode, result.stderr) == (
        2,
        ERROR + "unknown config key 'tiemzone': did you mean 'timezone'?\n",
    )


def test_the_main_help_gives_every_command_a_whole_description() -> None:
    result = subprocess.run(
        [script(), "--help"], capture_output=True, text=True, env=clean_env(), check=True
    )
    commands = result.stdout.split("Commands:\n", 1)[1].splitlines()
    assert commands
    assert not [line for line in commands if line.rstrip().endswith("...")]


def test_init_says_it_keeps_an_existing_config(tmp_path: Path) -> None:
    config = write(tmp_path / "taskcron.toml", "# mine\n")
    result = taskcron("init", cwd=tmp_path)
    assert result.returncode == 0
    assert result.stdout.splitlines()[0] == f"kept {config}"
    assert config.read_text() == "# mine\n"


# --- list on many tasks ----------------------------------------------------------------


@pytest.fixture
def crowded(tmp_path: Path) -> Path:
    """A home of 105 queued tasks, scheduled through the API (the CLI reads it)."""
    home = tmp_path / "home"
    with TaskCron(home) as app:
        for number in range(105):
            app.schedule(f"m{number:03d}", command=["true"], delay="1h")
    return home


def test_list_shows_a_page_by_default_and_says_how_many_more(crowded: Path, tmp_path: Path) -> None:
    result = taskcron("list", cwd=tmp_path, env={"TASKCRON_HOME": str(crowded)})
    assert (result.returncode, result.stderr) == (0, "")
    lines = result.stdout.splitlines()
    assert len(lines) == 1 + 100 + 1
    assert lines[0].split() == ["id", "module", "title", "state", "priority", "due", "attempts"]
    assert [line.split()[1] for line in lines[1:101]] == [f"m{n:03d}" for n in range(100)]
    assert lines[-1] == "\u2026 and 5 more: --limit 0 for all"


@pytest.mark.parametrize(("limit", "rows", "last"), [("0", 105, "m104"), ("3", 3, "m002")])
def test_list_limit_sets_the_page_and_zero_shows_every_task(
    crowded: Path, tmp_path: Path, limit: str, rows: int, last: str
) -> None:
    env = {"TASKCRON_HOME": str(crowded)}
    lines = taskcron("list", "--limit", limit, cwd=tmp_path, env=env).stdout.splitlines()
    assert len(lines) == 1 + rows + (rows < 105)
    assert lines[rows].split()[1] == last
    if rows < 105:
        assert lines[-1] == f"\u2026 and {105 - rows} more: --limit 0 for all"


def test_list_json_prints_every_task_unless_a_limit_is_given(crowded: Path, tmp_path: Path) -> None:
    env = {"TASKCRON_HOME": str(crowded)}
    every = json.loads(taskcron("list", "--json", cwd=tmp_path, env=env).stdout)
    assert [t["module"] for t in every] == [f"m{n:03d}" for n in range(105)]
    page = json.loads(taskcron("list", "--json", "--limit", "2", cwd=tmp_path, env=env).stdout)
    assert [t["module"] for t in page] == ["m000", "m001"]
    zero = json.loads(taskcron("list", "--json", "--limit", "0", cwd=tmp_path, env=env).stdout)
    assert len(zero) == 105


def test_a_list_that_fits_on_one_page_has_no_last_line(tmp_path: Path) -> None:
    env = {"TASKCRON_HOME": str(tmp_path / "home")}
    taskcron("schedule", "app", "--", "true", cwd=tmp_path, env=env)
    lines = taskcron("list", cwd=tmp_path, env=env).stdout.splitlines()
    assert len(lines) == 2 and lines[1].split()[:2] == ["1", "app"]


# --- small things a new user tripped over --------------------------------------------


def test_tick_verbose_says_which_tasks_it_skipped_for_being_too_late(tmp_path: Path) -> None:
    taskcron("init", cwd=tmp_path)
    late = ("--max-lateness", "1s", "--at", "2020-01-01T00:00:00Z", "--", "true")
    taskcron("schedule", "reports", *late, cwd=tmp_path)

    result = taskcron("tick", "-v", cwd=tmp_path)

    assert (result.returncode, result.stdout) == (
        0,
        (
            "skipped task 1 (reports): later than its max lateness; now cancelled\n"
            "idle: nothing due\n"
        ),
    )


def test_log_takes_warn_for_warning(tmp_path: Path) -> None:
    taskcron("init", cwd=tmp_path)

    result = taskcron("log", "--level", "warn", cwd=tmp_path)

    assert (result.returncode, result.stderr) == (0, "")


def test_an_at_more_than_a_minute_in_the_past_gets_one_warning_line(tmp_path: Path) -> None:
    taskcron("init", cwd=tmp_path)

    past = taskcron("schedule", "m", "--at", "2020-01-01T00:00:00Z", "--", "true", cwd=tmp_path)
    future = taskcron("schedule", "m", "--at", "2999-01-01T00:00:00Z", "--", "true", cwd=tmp_path)

    assert (past.returncode, past.stdout) == (0, "1\n")
    (line,) = past.stderr.splitlines()
    assert line.startswith("taskcron: warning: --at 2020-01-01T00:00:00Z is ")
    assert line.endswith(" in the past: the task is due at once")
    assert (future.returncode, future.stdout, future.stderr) == (0, "2\n", "")


def test_the_store_option_names_postgresql_urls_too(tmp_path: Path) -> None:
    result = taskcron("--help", cwd=tmp_path)

    assert "postgresql://user@host/db" in " ".join(result.stdout.split())


def test_a_short_web_token_stops_only_the_dashboard(tmp_path: Path) -> None:
    write(tmp_path / "taskcron.toml", '[web]\ntoken = "short"\n')
    taskcron("init", cwd=tmp_path)
    assert taskcron("schedule", "m", "--", "true", cwd=tmp_path).returncode == 0

    for args in (("tick",), ("list",), ("status",), ("check",)):
        result = taskcron(*args, cwd=tmp_path)
        assert (args, result.returncode) == (args, 0), result.stderr
    web = taskcron("web", "--port", "0", cwd=tmp_path)

    assert (web.returncode, web.stdout) == (2, "")
    assert web.stderr == (
        "taskcron: error: invalid token (config key 'web.token'): expected at least 16"
        " printable ASCII characters, no spaces\n"
    )
