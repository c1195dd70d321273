"""An idle `taskcron tick` is answered before click and the rest of taskcron load.

It must say and do what the full tick says and does: nothing, exit 0. Every
other command line (a tick with work, -v, --json, a mistake, a config that
asks for debug records, a home still to create) goes to the full CLI and
behaves as it always has. `python -X importtime` shows which way a run went.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from contextlib import closing, suppress
from pathlib import Path

import pytest

from tests.conftest import clean_env, script, taskcron_in


def run(cwd: Path, *args: str, **env: str) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """Run the installed script in `cwd`, with `env` added; the run, with the modules it
    imported."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", script(), *args],
        cwd=cwd,
        env=clean_env(**env),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    timings = [line for line in done.stderr.splitlines() if line.startswith("import time:")]
    modules = {line.rsplit("|", 1)[1].strip() for line in timings}
    done.stderr = "".join(
        line + "\n" for line in done.stderr.splitlines() if not line.startswith("import time:")
    )
    return done, modules


def full_cli(modules: set[str]) -> bool:
    return "click" in modules and "taskcron.api" in modules


@pytest.fixture(scope="module")
def made_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project with a config file, a home and three tasks due in an hour, made once a
    module by the installed script (the home is `.taskcron` beside the config: no path
    in it names the directory)."""
    made = tmp_path_factory.mktemp("project")
    ok(made, "init")
    for module in ("billing", "billing.eu", "mail"):
        ok(made, "schedule", module, "--in", "1h", "--", "true")
    return made


@pytest.fixture
def project(made_project: Path, tmp_path: Path) -> Path:
    """A copy of `made_project` of the test's own (modes and times kept), for it to change."""
    shutil.copytree(made_project, tmp_path, dirs_exist_ok=True)
    return tmp_path


def ok(cwd: Path, *args: str) -> str:
    """What the installed script printed, run in `cwd`; it must succeed."""
    done = taskcron_in(cwd, *args)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize(
    "args",
    [
        ["tick"],
        ["tick", "--module", "billing", "-x", "billing.eu"],
        ["tick", "-m", "billing,mail", "--budget=54s"],
        ["tick", "--except", "mail", "--budget", "1m30s"],
    ],
)
def test_an_idle_tick_loads_neither_click_nor_the_api(project: Path, args: list[str]) -> None:
    done, modules = run(project, *args)
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    assert "click" not in modules
    assert not {name for name in modules if name.startswith("taskcron.") and "api" in name}


def test_the_generated_crontab_line_is_answered_early(project: Path) -> None:
    printed = ok(project, "generate-cron", "--every", "1m", "--module", "billing")
    line = next(text for text in printed.splitlines() if not text.startswith("#"))
    argv = line.split(" >> ")[0].split()[5:]  # after the five time fields
    assert argv[0].endswith("taskcron") and "tick" in argv
    done, modules = run(Path("/"), *argv[1:])
    assert (done.returncode, done.stderr) == (0, "")
    assert "click" not in modules


def test_a_tick_with_work_goes_the_full_way(project: Path) -> None:
    ok(project, "schedule", "mail", "--", "true")
    done, modules = run(project, "tick", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["outcome"] == "ran"
    assert full_cli(modules)
    done, modules = run(project, "tick", "--module", "billing")  # mail's task is not in scope
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    assert "click" not in modules


@pytest.mark.parametrize(
    ("args", "code", "out", "err"),
    [
        (["tick", "-v"], 0, "idle: nothing due\n", ""),
        (["tick", "--budget", "soon"], 2, "", "invalid duration"),
        (["tick", "--module", "bad id"], 2, "", "invalid module id"),
        (["tick", "--home", "elsewhere"], 2, "", "No such option"),
        (["tick", "--drain", "--module", "mail"], 0, "", ""),
        (["--debug", "tick"], 0, "", ""),
        (["tick", "-mmail"], 0, "", ""),
        (["tick", "--budget", "99999999d"], 2, "", "invalid duration '99999999d': too large"),
    ],
)
def test_every_other_tick_goes_to_the_cli(
    project: Path, args: list[str], code: int, out: str, err: str
) -> None:
    done, modules = run(project, *args)
    assert full_cli(modules)
    assert done.returncode == code
    assert done.stdout == out
    assert err in done.stderr and len(done.stderr.splitlines()) == (1 if err else 0)


@pytest.mark.parametrize(
    ("value", "code", "err"),
    [("maybe", 2, "Invalid value for '--debug': 'maybe' is not a valid boolean"), ("1", 0, "")],
)
def test_a_debug_environment_goes_to_the_cli(
    project: Path, value: str, code: int, err: str
) -> None:
    """click reads TASKCRON_DEBUG as --debug, and refuses what is not a boolean."""
    done, modules = run(project, "tick", TASKCRON_DEBUG=value)
    assert full_cli(modules)
    assert (done.returncode, done.stdout) == (code, "")
    assert err in done.stderr and len(done.stderr.splitlines()) == (1 if err else 0)


def test_a_config_the_idle_tick_cannot_vouch_for_goes_to_the_cli(project: Path) -> None:
    config = project / "taskcron.toml"  # the home is .taskcron beside it, as before
    for misspelt, key in (("leese = '10s'\n", "leese"), ("[log]\nlevle = 'info'\n", "log.levle")):
        config.write_text(misspelt)  # the CLI says so
        done, modules = run(project, "tick")
        assert full_cli(modules)
        assert done.returncode == 2 and f"unknown config key {key!r}" in done.stderr

    for key in ("lease", "budget"):  # past the calendar's end from now: refused, not idle
        config.write_text(f"{key} = '99999999d'\n")
        done, modules = run(project, "tick")
        assert full_cli(modules)
        assert (done.returncode, done.stderr) == (
            2,
            f"taskcron: error: config key {key!r}: invalid duration '99999999d': too large\n",
        )

    config.write_text("[log]\nlevel = 'debug'\n")  # an idle tick records itself
    done, modules = run(project, "tick")
    assert full_cli(modules) and done.returncode == 0
    records = ok(project, "log", "--json", "--level", "debug")
    assert "tick.idle" in {json.loads(line)["event"] for line in records.splitlines()}


def test_a_tick_while_another_process_writes_sees_what_it_wrote(project: Path) -> None:
    """The claim waits for the write lock and runs what the writer made due: so does an
    idle tick's question, instead of answering from the snapshot before the write."""
    with closing(sqlite3.connect(project / ".taskcron" / "tasks.db")) as writer:
        writer.execute("BEGIN IMMEDIATE")
        writer.execute("UPDATE tasks SET due_at = 0 WHERE module = 'mail'")
        tick = subprocess.Popen([script(), "tick"], cwd=project, env=clean_env())
        with suppress(subprocess.TimeoutExpired):  # not needed to pass: it asks meanwhile
            tick.wait(timeout=1)
        writer.commit()
    assert tick.wait(timeout=60) == 0
    listed = ok(project, "list", "--all", "--json", "--module", "mail")
    assert [task["state"] for task in json.loads(listed)] == ["done"]


def test_a_store_path_through_a_directory_still_to_create_goes_the_full_way(
    project: Path,
) -> None:
    """The claim makes the store's directory as the system reads the path: x, here
    (SQLite alone would read "x/.." as nothing)."""
    url = f"sqlite:///{project}/x/../.taskcron/tasks.db"
    done, modules = run(project, "--store", url, "tick")
    assert full_cli(modules) and (done.returncode, done.stderr) == (0, "")
    assert (project / "x").is_dir()
    done, modules = run(project, "--store", url, "tick")
    assert done.returncode == 0 and "click" not in modules


@pytest.mark.parametrize(
    ("config", "args", "error"),
    [
        ("x = " + "[" * 5000 + "]" * 5000 + "\n", ["tick"], "RecursionError"),
        ("", ["--home", "~nosuchuser-x/home", "tick"], "RuntimeError"),
    ],
)
def test_what_breaks_while_reading_the_settings_is_said_by_the_cli(
    project: Path, config: str, args: list[str], error: str
) -> None:
    """Not a traceback from the early answer: the CLI's one line."""
    (project / "taskcron.toml").write_text(config)
    done, modules = run(project, *args)
    assert full_cli(modules)
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr.startswith(f"taskcron: error: unexpected {error}")
    assert len(done.stderr.splitlines()) == 1


def test_a_store_this_process_may_not_write_goes_the_full_way(project: Path) -> None:
    """The store opens its file for writing first: an immutable one is refused (SQLite
    alone would read it, and write beside it)."""
    store = project / ".taskcron" / "tasks.db"
    if (
        shutil.which("chattr") is None
        or subprocess.run(["chattr", "+i", str(store)], capture_output=True, check=False).returncode
    ):
        pytest.skip("needs chattr +i: root, on a filesystem with immutable files")
    try:
        done, modules = run(project, "tick")
    finally:
        subprocess.run(["chattr", "-i", str(store)], check=True)
    assert full_cli(modules)
    assert (done.returncode, done.stderr) == (
        1,
        f"taskcron: error: cannot open store {store}: Operation not permitted\n",
    )


def test_a_home_still_to_create_is_created_by_the_full_tick(tmp_path: Path) -> None:
    done, modules = run(tmp_path, "--home", str(tmp_path / "new"), "tick")
    assert full_cli(modules) and done.returncode == 0
    assert (tmp_path / "new" / "tasks.db").is_file()
    done, modules = run(tmp_path, "--home", str(tmp_path / "new"), "tick")
    assert done.returncode == 0 and "click" not in modules


def test_a_home_nothing_names_warns_once_from_the_full_tick_then_the_tick_is_idle(
    tmp_path: Path,
) -> None:
    done, modules = run(tmp_path, "tick")
    assert full_cli(modules)
    assert (done.returncode, done.stdout) == (0, "")
    assert done.stderr == f"taskcron: warning: created a new home at {tmp_path / '.taskcron'}\n"
    done, modules = run(tmp_path, "tick")
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    assert "click" not in modules


def test_an_idle_tick_with_alert_rules_loads_no_alert_code(project: Path) -> None:
    (project / "taskcron.toml").write_text(
        '[[alerts]]\nname = "ops"\nnotify = ["slack://A/B/C"]\nwebhook = "https://h.example/x"\n'
    )
    done, modules = run(project, "tick")
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    assert not modules & {"click", "apprise", "urllib.request", "http.client", "taskcron.alerts"}
