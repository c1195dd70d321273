"""`taskcron generate-cron` through real subprocesses of the installed script."""

from __future__ import annotations

import json
import shlex
import subprocess
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from crontab import CronTab

from taskcron import TaskCron
from tests.conftest import script
from tests.cronlines import cron_command

Run = Callable[..., subprocess.CompletedProcess[Any]]

FAKE_CRONTAB = """\
#!/bin/sh
# A stand-in for crontab(1): the user's crontab is the file $FAKE_CRONTAB.
echo "$*" >> "$FAKE_CRONTAB.calls"
if [ "$1" = "-u" ]; then user=$2; shift 2; else user=tester; fi
case "$1" in
  -l) if [ -f "$FAKE_CRONTAB" ]; then cat "$FAKE_CRONTAB"; else
        echo "no crontab for $user" >&2; exit 1; fi ;;
  -) cat > "$FAKE_CRONTAB" ;;
  -r) if [ -f "$FAKE_CRONTAB" ]; then rm "$FAKE_CRONTAB"; else
        echo "no crontab for $user" >&2; exit 1; fi ;;
  *) echo "usage" >&2; exit 2 ;;
esac
"""
BROKEN_CRONTAB = """\
#!/bin/sh
echo "$*" >> "$FAKE_CRONTAB.calls"
echo "crontab: cannot open your crontab: Permission denied" >&2
exit 1
"""
USER_TEXT = "MAILTO=''\n# mine\n\n0 * * * * cmd # comment\n*/5 * * * * date +\\%s > /tmp/x\n"
HANDLERS = """\
from pathlib import Path

from taskcron import task


@task
def touch(ctx, data):
    Path(data["path"]).write_text("ran")
    return "ok"
"""


def job_line(stdout: str) -> str:
    """The one line of output that is not a comment."""
    (line,) = [x for x in stdout.splitlines() if not x.startswith("#")]
    return line


@pytest.fixture
def fake_crontab(tmp_path: Path) -> Callable[[str], tuple[dict[str, str], Path]]:
    """Put a `crontab` program on PATH; returns the environment and the crontab's file."""

    def make(body: str = FAKE_CRONTAB) -> tuple[dict[str, str], Path]:
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir(exist_ok=True)
        program = bin_dir / "crontab"
        program.write_text(body)
        program.chmod(0o755)
        store = tmp_path / "user-crontab"
        return {"PATH": f"{bin_dir}:/usr/bin:/bin", "FAKE_CRONTAB": str(store)}, store

    return make


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project directory with handlers and a taskcron.toml that imports them."""
    directory = tmp_path / "project"
    directory.mkdir()
    (directory / "proj_tasks.py").write_text(HANDLERS)
    (directory / "taskcron.toml").write_text('modules = ["proj_tasks"]\n')
    return directory


# --- exit codes and output ----------------------------------------------------


@pytest.mark.parametrize(
    ("args", "code", "says"),
    [
        (["--every", "7m"], 2, "--cron"),
        (["--every", "90m"], 2, "--cron"),
        (["--every", "5h"], 2, "--cron"),
        (["--every", "0m"], 2, "--cron"),
        (["--every=-5m"], 2, "--cron"),
        (["--cron", "0 0 L * *"], 2, "invalid cron expression"),
        (["--every", "1m", "--cron", "* * * * *"], 2, "exactly one of"),
        ([], 2, "exactly one of"),
        (["--every", "1m", "--install", "--uninstall"], 2, "not both"),
        (["--every", "1m", "--module", "a..b"], 2, "invalid module id"),
        (["--every", "1m", "--except", "a;b"], 2, "invalid module id"),
        (["--every", "1m", "--budget", "soon"], 2, "invalid duration"),
        (["--every", "1m", "--crontab-file", "x"], 2, "--install"),
        (["--every", "1m", "--cron-home", "/srv/a\nb"], 2, "line break"),
        (["--every", "1m", "--cron-home", "/srv/a\rb"], 2, "carriage return"),
        (["--every", "1m", "--dry-run", "--user", "a b"], 2, "invalid user name"),
    ],
)
def test_bad_input_exits_2_with_one_line(
    run_cli: Run, args: list[str], code: int, says: str
) -> None:
    root: list[str] = []
    if "--cron-home" in args:  # a root option: it goes before the command
        at = args.index("--cron-home")
        root, args = ["--home", args[at + 1]], args[:at] + args[at + 2 :]
    done = run_cli(*root, "generate-cron", *args)
    assert done.returncode == code, done.stderr
    assert says in done.stderr
    assert done.stdout == ""


def test_it_prints_a_marker_and_one_job_line(run_cli: Run, home: Path) -> None:
    done = run_cli("generate-cron", "--module", "b,a", "--every", "5m")
    assert done.returncode == 0, done.stderr
    assert (done.stderr, done.stdout.count("\n")) == ("", 2)
    line = job_line(done.stdout)
    assert line == (
        f"*/5 * * * * {script()} --home {home} tick --module a --module b --budget 4m30s "
        f">> {home}/cron.log 2>&1"
    )
    (item,) = CronTab(tab=done.stdout)
    assert item.is_valid()
    assert home.is_dir()


def test_the_help_describes_every_option(run_cli: Run) -> None:
    done = run_cli("generate-cron", "--help")
    assert done.returncode == 0
    for option in ("--module", "--except", "--every", "--cron", "--budget", "--mail"):
        assert option in done.stdout
    for option in ("--install", "--uninstall", "--crontab-file", "--user", "--dry-run"):
        assert option in done.stdout


# --- the line works under cron's bare environment --------------------------------------


def test_the_command_ticks_the_right_scope_on_the_right_home_from_a_bare_environment(
    run_cli: Run, project: Path, tmp_path: Path
) -> None:
    home = tmp_path / "a home 100% #1 $x (y); 'q'"
    with TaskCron(home, config=project / "taskcron.toml") as app:
        wanted = app.schedule("billing", task="touch", data={"path": str(tmp_path / "billing")})
        other = app.schedule("reports", task="touch", data={"path": str(tmp_path / "reports")})
    done = run_cli(
        "--home", str(home), "generate-cron", "-m", "billing", "--every", "1m", cwd=project
    )
    assert done.returncode == 0, done.stderr
    line = job_line(done.stdout)
    assert f"--config {project / 'taskcron.toml'}" in line
    ran = subprocess.run(
        ["env", "-i", "PATH=/usr/bin:/bin", f"HOME={tmp_path}", "sh", "-c", cron_command(line)],
        cwd="/",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (ran.returncode, ran.stdout, ran.stderr) == (0, "", "")
    assert (tmp_path / "billing").read_text() == "ran"
    assert not (tmp_path / "reports").exists()
    shown = run_cli("--home", str(home), "show", str(wanted.id), "--json", cwd=project)
    assert json.loads(shown.stdout)["state"] == "done"
    with TaskCron(home, config=project / "taskcron.toml") as app:
        assert app.get(other.id).state.value == "queued"
    assert (home / "cron.log").read_text() == ""


def test_mail_leaves_the_output_to_cron(run_cli: Run) -> None:
    done = run_cli("generate-cron", "--every", "1m", "--mail")
    assert not job_line(done.stdout).endswith("2>&1")
    assert ">>" not in job_line(done.stdout)


# --- a crontab file ---------------------------------------------------------


def test_a_crontab_file_install_replace_and_uninstall(run_cli: Run, tmp_path: Path) -> None:
    path = tmp_path / "crontab.txt"
    path.write_text(USER_TEXT)
    first = run_cli("generate-cron", "--every", "1m", "--install", "--crontab-file", str(path))
    assert first.returncode == 0, first.stderr
    assert path.read_text() == USER_TEXT + first.stdout
    again = run_cli("generate-cron", "--every", "5m", "--install", "--crontab-file", str(path))
    assert "replacing" in again.stderr
    assert path.read_text() == USER_TEXT + again.stdout
    other = run_cli(
        "generate-cron", "-m", "x", "--every", "1h", "--install", "--crontab-file", str(path)
    )
    assert path.read_text() == USER_TEXT + again.stdout + other.stdout
    gone = run_cli("generate-cron", "--uninstall", "--crontab-file", str(path))
    assert (gone.returncode, gone.stdout) == (0, "")
    assert path.read_text() == USER_TEXT + other.stdout
    run_cli("generate-cron", "-m", "x", "--uninstall", "--crontab-file", str(path))
    assert path.read_text() == USER_TEXT


def test_uninstalling_what_is_not_there_says_so_and_exits_0(run_cli: Run, tmp_path: Path) -> None:
    path = tmp_path / "crontab.txt"
    path.write_text(USER_TEXT)
    done = run_cli("generate-cron", "-m", "a", "--uninstall", "--crontab-file", str(path))
    assert (done.returncode, done.stdout) == (0, "")
    assert done.stderr.count("\n") == 1 and "nothing to uninstall" in done.stderr
    assert path.read_text() == USER_TEXT


def test_a_dry_run_prints_the_resulting_crontab_and_writes_nothing(
    run_cli: Run, tmp_path: Path
) -> None:
    path = tmp_path / "crontab.txt"
    path.write_text(USER_TEXT)
    done = run_cli("generate-cron", "--every", "1m", "--dry-run", "--crontab-file", str(path))
    assert done.returncode == 0, done.stderr
    line = run_cli("generate-cron", "--every", "1m").stdout
    assert done.stdout == USER_TEXT + line
    assert path.read_text() == USER_TEXT


def test_user_and_crontab_file_write_etc_cron_d_form(run_cli: Run, tmp_path: Path) -> None:
    path = tmp_path / "cron.d-taskcron"
    done = run_cli(
        "generate-cron",
        "--every",
        "1m",
        "--install",
        "--user",
        "www-data",
        "--crontab-file",
        str(path),
    )
    assert done.returncode == 0, done.stderr
    assert job_line(path.read_text()).startswith(f"* * * * * www-data {script()} ")
    (item,) = CronTab(tab=path.read_text(), user=False)
    assert item.user == "www-data" and item.is_valid()
    assert path.stat().st_mode & 0o777 == 0o644


# --- the user's crontab, through a crontab program on PATH -------------------------


def test_install_into_a_users_crontab_that_does_not_exist_yet(
    run_cli: Run, fake_crontab: Callable[..., tuple[dict[str, str], Path]]
) -> None:
    env, store = fake_crontab()
    done = run_cli("generate-cron", "--every", "1m", "--install", env=env)
    assert done.returncode == 0, done.stderr
    assert "installed in your crontab" in done.stderr
    assert store.read_text() == done.stdout
    again = run_cli("generate-cron", "--every", "1m", "--install", env=env)
    assert store.read_text() == again.stdout


def test_install_and_uninstall_keep_the_users_lines(
    run_cli: Run, fake_crontab: Callable[..., tuple[dict[str, str], Path]]
) -> None:
    env, store = fake_crontab()
    store.write_text(USER_TEXT)
    billing = run_cli("generate-cron", "-m", "billing", "--every", "1m", "--install", env=env)
    rest = run_cli("generate-cron", "-x", "billing", "--every", "5m", "--install", env=env)
    assert store.read_text() == USER_TEXT + billing.stdout + rest.stdout
    run_cli("generate-cron", "-m", "billing", "--uninstall", env=env)
    assert store.read_text() == USER_TEXT + rest.stdout
    run_cli("generate-cron", "-x", "billing", "--uninstall", env=env)
    assert store.read_text() == USER_TEXT


@pytest.mark.parametrize("before", [None, "\n \t\n"], ids=["none", "blank"])
@pytest.mark.parametrize("user", [None, "alice"], ids=["you", "user"])
def test_uninstalling_the_last_line_removes_the_users_crontab(
    run_cli: Run,
    fake_crontab: Callable[..., tuple[dict[str, str], Path]],
    before: str | None,
    user: str | None,
) -> None:
    env, store = fake_crontab()
    if before is not None:
        store.write_text(before)
    who = [] if user is None else ["--user", user]
    installed = run_cli("generate-cron", "--every", "1m", "--install", *who, env=env)
    assert installed.returncode == 0, installed.stderr
    done = run_cli("generate-cron", "--uninstall", *who, env=env)
    assert (done.returncode, done.stdout) == (0, ""), done.stderr
    listed = subprocess.run(
        ["crontab", *([] if user is None else ["-u", user]), "-l"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert (listed.returncode, listed.stdout) == (1, "")
    assert listed.stderr == f"no crontab for {user or 'tester'}\n"


def test_uninstalling_keeps_a_crontab_left_with_only_the_users_comments(
    run_cli: Run, fake_crontab: Callable[..., tuple[dict[str, str], Path]]
) -> None:
    env, store = fake_crontab()
    store.write_text("# mine\n")
    run_cli("generate-cron", "--every", "1m", "--install", env=env)
    done = run_cli("generate-cron", "--uninstall", env=env)
    assert done.returncode == 0, done.stderr
    assert store.read_text() == "# mine\n"


def test_uninstalling_the_last_line_of_a_crontab_file_keeps_the_file_empty(
    run_cli: Run, tmp_path: Path
) -> None:
    path = tmp_path / "crontab.txt"
    run_cli("generate-cron", "--every", "1m", "--install", "--crontab-file", str(path))
    done = run_cli("generate-cron", "--uninstall", "--crontab-file", str(path))
    assert done.returncode == 0, done.stderr
    assert path.read_text() == ""


def test_user_edits_that_users_crontab(
    run_cli: Run, fake_crontab: Callable[..., tuple[dict[str, str], Path]]
) -> None:
    env, store = fake_crontab()
    done = run_cli("generate-cron", "--every", "1m", "--install", "--user", "alice", env=env)
    assert done.returncode == 0, done.stderr
    calls = Path(f"{store}.calls").read_text().splitlines()
    assert calls == ["-u alice -l", "-u alice -", "-u alice -l"]
    assert job_line(store.read_text()).startswith(f"* * * * * {script()} ")


@pytest.mark.parametrize("action", [["--every", "1m", "--install"], ["--uninstall"]])
def test_a_crontab_that_cannot_be_read_is_never_written(
    run_cli: Run, fake_crontab: Callable[..., tuple[dict[str, str], Path]], action: list[str]
) -> None:
    env, store = fake_crontab(BROKEN_CRONTAB)
    done = run_cli("generate-cron", *action, env=env)
    assert done.returncode == 1
    assert done.stderr == (
        "taskcron: error: cannot read your crontab: crontab -l: crontab: cannot open your "
        "crontab: Permission denied\n"
    )
    assert Path(f"{store}.calls").read_text() == "-l\n"


def test_a_missing_crontab_program_is_an_error(run_cli: Run, tmp_path: Path) -> None:
    done = run_cli(
        "generate-cron", "--every", "1m", "--install", env={"PATH": str(tmp_path / "none")}
    )
    assert done.returncode == 1
    assert "cannot run 'crontab'" in done.stderr


def test_a_printed_line_quotes_arguments_for_sh(run_cli: Run, tmp_path: Path) -> None:
    home = tmp_path / "it's 50% off #today"
    done = run_cli("--home", str(home), "generate-cron", "--every", "1m")
    words = shlex.split(cron_command(job_line(done.stdout)))
    assert words[words.index("--home") + 1] == str(home)


def test_concurrent_installs_of_different_scopes_lose_no_line(run_cli: Run, tmp_path: Path) -> None:
    path = tmp_path / "crontab.txt"
    path.write_text(USER_TEXT)
    scopes = [f"m{i}" for i in range(8)]
    with ThreadPoolExecutor(len(scopes)) as pool:
        results = list(
            pool.map(
                lambda m: run_cli(
                    "generate-cron",
                    "-m",
                    m,
                    "--every",
                    "1m",
                    "--install",
                    "--crontab-file",
                    str(path),
                ),
                scopes,
            )
        )
    assert [r.returncode for r in results] == [0] * len(scopes)
    text = path.read_text()
    assert text.startswith(USER_TEXT)
    assert sorted(text[len(USER_TEXT) :].splitlines(keepends=True)) == sorted(
        line for r in results for line in r.stdout.splitlines(keepends=True)
    )
