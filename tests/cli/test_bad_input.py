"""Bad input, everywhere: every command and option since the first bad-input table.

Each row runs the installed script twice, on a fresh home (which it must not
create a store in) and on a home holding a task (whose store, dumped before
and after, must be the same): one line on stderr, the row's exit code, nothing
on stdout. Then hypothesis throws arbitrary argv at every command that returns:
never a traceback, never an exit code but 0, 1 or 2.
"""

from __future__ import annotations

import os
import shutil
import string
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from taskcron import TaskCron
from taskcron.cli import cli
from taskcron.config import Config
from taskcron.model import Task
from tests.cli.test_contract import (
    BAD_CONFIGS,
    assert_one_error_line,
    ok,
    runner_for,
    schedule,
)
from tests.conftest import clean_env, script

CONFIGS = {
    **BAD_CONFIGS,
    "lanes-zero.toml": '[lanes]\n"mail" = 0\n',
    "lanes-text.toml": '[lanes]\n"mail" = "x"\n',
    "lanes-module.toml": '[lanes]\n"a..b" = 2\n',
    "lanes-not-table.toml": "lanes = 3\n",
    "host-space.toml": 'host = "a b"\n',
    "host-number.toml": "host = 5\n",
    "host-empty.toml": 'host = ""\n',
    "workers-zero.toml": "workers = 0\n",
    "workers-text.toml": 'workers = "x"\n',
    "max-steps.toml": "max_steps = -1\n",
    "budget.toml": 'budget = "5x"\n',
    "poll.toml": 'poll = "5x"\n',
    "kill-grace.toml": "kill_grace = -1\n",
    "lease-zero.toml": 'lease = "0s"\n',
    "lease-short.toml": "lease = 0.5\n",
    "store-scheme.toml": 'store = "bogus://x"\n',
    "store-schema.toml": 'store = "postgresql://u@h/d?schema=Bad"\n',
}

BIG = "99999999999999999999"
CRONTAB = "crontab"  # a file in the test's directory: the user's crontab is never touched
DRY = ("--dry-run", "--crontab-file", CRONTAB)


def row(
    *args: str, says: str | None = None, env: dict[str, str] | None = None, code: int = 2
) -> Any:
    """A row of the table: argv, extra environment, what the line says (None: click's own
    usage error) and the exit code."""
    name = " ".join(args).replace("\n", "\\n") or "empty"
    if env:
        name = " ".join(f"{k}={v!r}" for k, v in env.items()) + " " + name
    return pytest.param(args, env or {}, says, code, id=name)


BAD_INPUT = [
    # tick: draining, pools
    row("tick", "--drain", "--max-tasks", "-1", says="invalid max tasks -1"),
    row("tick", "--max-tasks", "3", says="--max-tasks goes with --drain or --workers"),
    row("tick", "--drain", "--max-tasks", BIG, says=f"invalid max tasks {BIG}: out of range"),
    row("tick", "--drain", "--max-tasks", "x"),
    row("tick", "--workers", "0", says="invalid workers 0: must be at least 1"),
    row("tick", "--workers", "-3", says="invalid workers -3"),
    row("tick", "--workers", BIG, says=f"invalid workers {BIG}: out of range"),
    row("tick", "--workers", "x"),
    row("tick", "--workers", "2", "--module", "a..b", says="invalid module id 'a..b'"),
    row("tick", "--drain", "--budget", "5x", says="invalid duration '5x'"),
    row("tick", "--drain", "--budget", "99999999999w", says="too large"),
    row("tick", "--drain", "--except", "a/b", says="invalid module id 'a/b'"),
    # heartbeat: the URL pinged, the age of the last tick
    row("tick", "--heartbeat", "ftp://x", says="invalid heartbeat URL 'ftp://x'"),
    row("tick", "--drain", "--heartbeat", "hc-ping.com/x", says="invalid heartbeat URL"),
    row("generate-cron", "--every", "1m", "--heartbeat", "h", *DRY, says="heartbeat URL 'h'"),
    row("check", "--max-tick-age", "0s", says="invalid max tick age '0s'"),
    row("check", "--max-tick-age", "5x", says="invalid duration '5x'"),
    row("check", "--except", "legacy", says="name the scope of --max-tick-age"),
    # work (each refused before it starts to wait)
    row("work", "--workers", "0", says="invalid workers 0"),
    row("work", "--workers", "-1", says="invalid workers -1"),
    row("work", "--workers", BIG, says="out of range"),
    row("work", "--workers", "x"),
    row("work", "--budget", "5x", says="invalid duration '5x'"),
    row("work", "--budget", "-1s", says="invalid duration '-1s'"),
    row("work", "--module", "a..b", says="invalid module id 'a..b'"),
    row("work", "--except", "a b", says="invalid module id 'a b'"),
    row("work", "--no-such-option"),
    # owners
    row("schedule", "m", "--owner", "", "--", "true", says="invalid owner ''"),
    row("schedule", "m", "--owner", "a\nb", "--", "true", says="invalid owner 'a\\nb'"),
    row("schedule", "m", "--owner", "x" * 256, "--", "true", says="invalid owner"),
    row("list", "--owner", "", says="invalid owner ''"),
    row("list", "--owner", "a\x1b[31m", says="invalid owner"),
    row("cancel", "--owner", "", says="invalid owner ''"),
    row("cancel", "--owner", "a\rb", says="invalid owner"),
    row("cancel", "1", "--owner", "x", says="give a task ID or --owner OWNER, not both"),
    row("cancel", says="give a task ID or --owner OWNER, one of them"),
    row("cancel", "--owner"),
    # bytes that are not UTF-8 (argv's lone surrogates)
    row("schedule", "m", "--owner", "caf\udce9", "--", "true", says="invalid owner: byte b'\\xe9'"),
    row("list", "--owner", "\udcff", says="invalid owner: byte b'\\xff' at 0 is not UTF-8 text"),
    row("cancel", "--owner", "\udcff", says="invalid owner: byte b'\\xff'"),
    row("schedule", "m", "--key", "k\udcff", "--", "true", says="invalid key: byte b'\\xff'"),
    # task ids no store can hold
    *(
        row(action, BIG, says=f"invalid task id {BIG}: out of range")
        for action in ("show", "cancel", "retry", "pause", "resume", "remove")
    ),
    row("show", "--", f"-{BIG}", says="out of range"),
    row("log", "--task", BIG, says=f"invalid task id {BIG}: out of range"),
    row("log", "--task", "x"),
    # schedule options since the first table
    row("schedule", "m", "--every", "0s", "--", "true", says="invalid duration '0s'"),
    row("schedule", "m", "--every", "5x", "--", "true", says="invalid duration '5x'"),
    row("schedule", "m", "--cron", "61 * * * *", "--", "true", says="61 * * * *"),
    row("schedule", "m", "--cron", "* *", "--", "true", says="invalid cron expression"),
    row("schedule", "m", "--cron", "* * * * *", "--every", "1m", "--", "true", says="--cron"),
    row("schedule", "m", "--at", "garbage", "--", "true", says="invalid time 'garbage'"),
    *(
        row("schedule", "m", "--at", at, "--", "true", says=f"invalid time '{at}': out of range")
        for at in ("9999-12-31T23:59:59-12:00", "0001-01-01T00:00:00+14:00")
    ),
    row("schedule", "m", "--in", "-5m", "--", "true", says="invalid duration '-5m'"),
    row("schedule", "m", "--tz", "Mars/Olympus", "--cron", "@daily", "--", "true", says="Mars"),
    row("schedule", "m", "--key", "", "--", "true", says="invalid key ''"),
    row("schedule", "m", "--max-lateness", "5x", "--every", "1m", "--", "true", says="'5x'"),
    # status and next
    row("status", "--module", "a..b", says="invalid module id 'a..b'"),
    row("status", "--except", ".x", says="invalid module id '.x'"),
    row("status", "--watch", "--json", says="give --watch or --json, not both"),
    row("status", "--watch", says="--watch redraws a terminal, and stdout is not one"),
    row("status", "--no-such-option"),
    row("next", "-n", "-1"),
    row("next", "--count", BIG),
    row("next", "-n", "1000000000", says="invalid count 1000000000: expected 0 to 10000"),
    row("next", "--count", "10001", says="invalid count 10001: expected 0 to 10000"),
    row("next", "--module", "..", says="invalid module id '..'"),
    # log and prune
    row("log", "--level", "bogus", says="invalid level 'bogus'"),
    row("log", "--since", "yesterdayish", says="invalid time 'yesterdayish'"),
    row("log", "-n", "-1"),
    row("log", "--module", "a..b", says="invalid module id 'a..b'"),
    row("prune", "--older-than", "5x", says="invalid duration '5x'"),
    row("prune", "--older-than", "-1d", says="invalid duration '-1d'"),
    # store URLs
    row("--store", "bogus://x", "list", says="scheme 'bogus'"),
    row("--store", "", "list", says="no scheme"),
    row("--store", "sqlite://", "list", says="invalid store URL 'sqlite://'"),
    row("--store", "bogus://x", "schedule", "m", "--", "true", says="scheme 'bogus'"),
    row("--store", "postgresql://u@h/db?schema=bad-name", "list", says="schema 'bad-name'"),
    row("--store", "postgresql://u@h/db?schema=", "list", says="schema"),
    row("--store", "postgresql://[::1", "list", says="invalid store URL 'postgresql://[::1'"),
    row("--store", "postgresql://h:99999/db", "list", says="invalid store URL"),
    row("list", says="scheme 'bogus'", env={"TASKCRON_STORE": "bogus://x"}),
    row("tick", says="schema", env={"TASKCRON_STORE": "postgres://h/d?schema=1x"}),
    # migrate-store
    row("migrate-store", "--to", "bogus://x", says="scheme 'bogus'"),
    row("migrate-store", "--to", "", says="no scheme"),
    row("migrate-store", "--to", "postgresql://[bad", says="invalid store URL"),
    row("migrate-store", "--to", "postgresql://u@h/d?schema=Bad", says="schema 'Bad'"),
    row("migrate-store"),
    # the host
    row("list", says="invalid host 'bad\\nhost'", env={"TASKCRON_HOST": "bad\nhost"}),
    row("tick", says="invalid host 'a b'", env={"TASKCRON_HOST": "a b"}),
    row("schedule", "m", "--", "true", says="invalid host", env={"TASKCRON_HOST": "x" * 300}),
    # config files
    row("--config", "lanes-zero.toml", "tick", "--workers", "2", says="lanes.mail"),
    row("--config", "lanes-text.toml", "list", says="lanes.mail"),
    row("--config", "lanes-module.toml", "list", says="invalid module id 'a..b'"),
    row("--config", "lanes-not-table.toml", "tick", says="'lanes' must be a table"),
    row("--config", "host-space.toml", "list", says="invalid host 'a b'"),
    row("--config", "host-number.toml", "list", says="config key 'host'"),
    row("--config", "host-empty.toml", "list", says="invalid host ''"),
    row("--config", "workers-zero.toml", "tick", says="config key 'workers'"),
    row("--config", "workers-text.toml", "list", says="config key 'workers'"),
    row("--config", "max-steps.toml", "tick", says="config key 'max_steps'"),
    row("--config", "budget.toml", "tick", says="config key 'budget'"),
    row("--config", "poll.toml", "list", says="config key 'poll'"),
    row("--config", "kill-grace.toml", "list", says="config key 'kill_grace'"),
    row("--config", "lease-zero.toml", "tick", says="'lease' must be at least 1s, not '0s'"),
    row("--config", "lease-short.toml", "list", says="'lease' must be at least 1s, not 0.5"),
    row("--config", "store-scheme.toml", "list", says="scheme 'bogus'"),
    row("--config", "store-schema.toml", "list", says="schema 'Bad'"),
    # generate-cron, always into a file of the test's own
    row("generate-cron", "--every", "7m", *DRY, says="cron cannot run a job exactly every '7m'"),
    row("generate-cron", "--every", "5x", *DRY, says="5x"),
    row("generate-cron", "--cron", "bad", *DRY, says="invalid cron expression 'bad'"),
    row("generate-cron", "--every", "5m", "--budget", "5x", *DRY, says="invalid duration '5x'"),
    row("generate-cron", "--every", "5m", "--user", "bad user", *DRY, says="invalid user name"),
    row("generate-cron", "--every", "5m", "--user", "-r", *DRY, says="invalid user name"),
    row("generate-cron", "--every", "5m", "--module", "a..b", *DRY, says="invalid module id"),
    row("generate-cron", *DRY, says="give exactly one of --every PERIOD or --cron EXPR"),
    row("generate-cron", "--every", "1m", "--cron", "@daily", *DRY, says="exactly one of"),
    row("generate-cron", "--every", "1m", "--install", "--uninstall", *DRY, says="not both"),
    row("generate-cron", "--every", "1m", "--crontab-file", CRONTAB, says="add --install"),
    # what a new user tripped over
    row("--config", ".", "list", says="is a directory: give the config file's path"),
    row("schedule", "m", "--title", "", "--", "true", says="leave the title out to use the target"),
    row(
        "schedule",
        "m",
        "--cron",
        "@daily",
        "--tz",
        "Europe/Pariss",
        "--",
        "true",
        says="unknown time zone 'Europe/Pariss': did you mean 'Europe/Paris'?",
    ),
    # other errors: one line, exit 1
    row("--store", "postgresql:///db?host=/no/such/dir", "list", says="cannot connect", code=1),
    row("--home", "budget.toml", "list", says="exists and is not a directory", code=1),
]


def dump(home: Path) -> list[Task]:
    """Every task of the home's store with its runs."""
    with TaskCron(config=Config(home=home)) as app:
        return list(app.store.dump())


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Task]]:
    """A home holding one good task with a run, and its dump."""
    root = tmp_path_factory.mktemp("template")
    run = runner_for(root / "home", root)
    schedule(run, "m", "--data", '{"keep": true}', "--owner", "alice", "--", "true")
    ok(run("tick"))
    schedule(run, "n", "--every", "1h", "--", "true")
    return root / "home", dump(root / "home")


def assert_refused(result: subprocess.CompletedProcess[Any], says: str | None, code: int) -> None:
    err = assert_one_error_line(result, code)
    if says is not None:
        assert says in err, err
    assert result.stdout == ""


def test_a_number_far_out_of_range_is_shown_by_its_first_digits_and_its_length(
    tmp_path: Path,
) -> None:
    run = runner_for(tmp_path / "home", tmp_path)
    result = run("show", "9" * 300)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == (
        f"taskcron: error: invalid task id {'9' * 21}... (300 digits): out of range\n"
    )
    result = run("show", "9" * 5000)  # more than Python reads as a number
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == (
        f"taskcron: error: Invalid value for 'ID': {'9' * 21}... (5000 digits): out of range\n"
    )


@pytest.mark.parametrize(("args", "env", "says", "code"), BAD_INPUT)
def test_bad_input_since_the_first_table_is_one_line_and_changes_nothing(
    tmp_path: Path,
    template: tuple[Path, list[Task]],
    args: tuple[str, ...],
    env: dict[str, str],
    says: str | None,
    code: int,
) -> None:
    for name, text in CONFIGS.items():
        (tmp_path / name).write_text(text)
    fresh_home = tmp_path / "fresh"
    assert_refused(runner_for(fresh_home, tmp_path)(*args, env=env), says, code)
    assert not (fresh_home / "tasks.db").exists(), "a bad first command created the store"

    home, before = template
    shutil.copytree(home, tmp_path / "home")
    assert_refused(runner_for(tmp_path / "home", tmp_path)(*args, env=env), says, code)
    assert dump(tmp_path / "home") == before
    assert not (tmp_path / CRONTAB).exists()


# --- arbitrary argv ------------------------------------------------------------------

#: Commands that return by themselves (not `work`, `web`, `log -f`, `status --watch`).
RETURNING = sorted(set(cli.commands) - {"work", "web"})
NEVER = {"-f", "--follow", "--watch", "--install", "--uninstall", "--user"}

WORDS = st.sampled_from(
    [
        "--module", "-m", "--except", "-x", "--json", "--all", "--state", "--owner", "--data",
        "--priority", "--title", "--timeout", "--cron", "--every", "--in", "--at", "--tz",
        "--key", "--call", "--task", "--budget", "--drain", "--max-tasks", "--workers", "-v",
        "-n", "--lines", "--level", "--since", "--older-than", "--to", "--count", "--check",
        "--max-attempts", "--max-lateness", "--mail", "--dry-run", "--help", "--",
        "m", "a.b", "a..b", "", "-1", "0", "1", "2", BIG, "5m", "1h", "5x", "@daily",
        "* * * * *", "{", "{}", "[1]", "-", "@missing.json", "queued", "done", "x y",
        "sqlite://", "bogus://x", "postgresql://[::1", "UTC", "Mars/X", "2026-01-01T00:00",
        "true", "false", "é", "a\nb", "\x1b[31m", "[red]x[/red]",
    ]
)  # fmt: skip
TEXT = st.text(alphabet=string.printable + "é\x00\x1b", max_size=12)
GLOBAL = st.lists(
    st.sampled_from([("--store", "bogus://x"), ("--config", "none.toml"), ("--home", "h2")]),
    max_size=1,
)


def _options(command: str) -> list[tuple[str, bool]]:
    """Each option of `command` (its first name) and whether it takes a value."""
    found = []
    for param in cli.commands[command].params:
        if isinstance(param, click.Option) and not param.hidden:
            name = param.opts[0]
            if name not in NEVER and name != "--crontab-file" and name != "--help":
                found.append((name, not param.is_flag))
    return found


@st.composite
def argvs(draw: st.DrawFn) -> list[str]:
    """A command that returns, then its own options with arbitrary values, and arbitrary
    words, in any order (never touching the user's crontab)."""
    command = draw(st.sampled_from(RETURNING))
    options = _options(command)
    words: list[str] = []
    for _ in range(draw(st.integers(0, 6))):
        if options and draw(st.booleans()):
            name, takes_value = draw(st.sampled_from(options))
            words += [name, draw(st.one_of(WORDS, TEXT))] if takes_value else [name]
        else:
            words.append(draw(st.one_of(WORDS, TEXT)))
    words = [w.replace("\x00", "") for w in words if w not in NEVER and w != "--crontab-file"]
    if command == "generate-cron":
        words += DRY
    prefix = [word for option in draw(GLOBAL) for word in option]
    return [*prefix, command, *words]


@pytest.fixture(scope="module")
def in_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Run `taskcron ARGV` in-process, in a directory of its own, with a home there."""
    where = tmp_path_factory.mktemp("argv")
    template_home = where / "home"
    runner_for(template_home, where)("schedule", "m", "--", "true")
    runner = CliRunner()
    env = {"TASKCRON_HOME": str(template_home), "TASKCRON_CONFIG": None, "NO_COLOR": None}
    previous = Path.cwd()
    os.chdir(where)
    try:
        yield lambda argv: runner.invoke(cli, argv, env=env, prog_name="taskcron", input="")
    finally:
        os.chdir(previous)


def test_arbitrary_argv_never_gives_a_traceback_or_a_strange_exit_code(
    in_process: Any, record_property: Any
) -> None:
    codes: Counter[int] = Counter()

    @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(argv=argvs())
    def check(argv: list[str]) -> None:
        result = in_process(argv)
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise AssertionError(f"{argv!r} raised") from result.exception
        assert result.exit_code in (0, 1, 2), (argv, result.exit_code, result.output)
        assert "Traceback" not in result.output, (argv, result.output)
        assert "run with --debug" not in result.stderr, (argv, result.stderr)
        codes[result.exit_code] += 1

    check()
    figures = ", ".join(f"exit {code}: {n}" for code, n in sorted(codes.items()))
    record_property("argv_exit_codes", figures)
    print(f"\nsuite 7, arbitrary argv in-process: {codes.total()} command lines; {figures}")


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(argv=argvs())
def test_arbitrary_argv_through_the_installed_script(
    tmp_path_factory: pytest.TempPathFactory, argv: list[str]
) -> None:
    where = tmp_path_factory.mktemp("script-argv")
    result = subprocess.run(
        [script(), *argv],
        capture_output=True,
        text=True,
        env=clean_env(TASKCRON_HOME=str(where / "home")),
        cwd=where,
        input="",
        timeout=60,
        check=False,
    )
    assert result.returncode in (0, 1, 2), (argv, result.returncode, result.stderr)
    assert "Traceback" not in result.stderr, (argv, result.stderr)
    assert "run with --debug" not in result.stderr, (argv, result.stderr)
