"""generate-cron's core: periods, budgets, quoting, the marker, and splicing a crontab's text."""

from __future__ import annotations

import shlex
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from croniter import croniter
from crontab import CronTab
from hypothesis import given, settings
from hypothesis import strategies as st

from taskcron import cronjob, errors
from taskcron.cronjob import CronJob, FileCrontab
from taskcron.model import Scope
from tests.cronlines import cron_command

NOW = datetime(2026, 1, 5, 12, 0, tzinfo=timezone.utc)
EXE = ("/opt/venv/bin/taskcron",)
HOME = Path("/srv/app/.taskcron")
USER_TEXT = (
    "MAILTO=''\n"
    "# my own jobs\n"
    "\n"
    "0 * * * * cmd # comment\n"
    "*/5 * * * *   date +\\%s > /tmp/stamp   \n"
    "30 4 * * * backup %input%line\n"
)


def make_job(home: Path = HOME, **overrides: Any) -> CronJob:
    fields: dict[str, Any] = {
        "home": home,
        "scope": Scope(),
        "every": "1m",
        "now": NOW,
        "tz": timezone.utc,
        "command": EXE,
    }
    fields.update(overrides)
    return cronjob.build(**fields)


# --- periods and budgets ---------------------------------------------------


@pytest.mark.parametrize(
    ("period", "expr"),
    [
        ("1m", "* * * * *"),
        ("2m", "*/2 * * * *"),
        ("5m", "*/5 * * * *"),
        ("15m", "*/15 * * * *"),
        ("30m", "*/30 * * * *"),
        ("120s", "*/2 * * * *"),
        ("60m", "0 * * * *"),
        ("1h", "0 * * * *"),
        ("2h", "0 */2 * * *"),
        ("6h", "0 */6 * * *"),
        ("12h", "0 */12 * * *"),
        ("24h", "0 0 * * *"),
        ("1d", "0 0 * * *"),
    ],
)
def test_a_period_cron_repeats_exactly_becomes_its_expression(period: str, expr: str) -> None:
    assert cronjob.period_schedule(period)[0] == expr


@pytest.mark.parametrize(
    "period", ["7m", "90m", "5h", "0m", "-5m", "90s", "45s", "2d", "1w", "soon", ""]
)
def test_a_period_cron_cannot_repeat_exactly_is_refused_naming_cron(period: str) -> None:
    with pytest.raises(errors.InputError, match="--cron"):
        cronjob.period_schedule(period)


@pytest.mark.parametrize(
    ("every", "budget"),
    [("1m", "54s"), ("5m", "4m30s"), ("1h", "54m"), ("1d", "21h36m")],
)
def test_the_default_budget_is_the_period_less_ten_percent(every: str, budget: str) -> None:
    assert make_job(every=every).budget == budget


def test_the_budget_margin_is_at_least_five_seconds() -> None:
    assert cronjob.default_budget(timedelta(seconds=30)) == timedelta(seconds=25)
    assert cronjob.default_budget(timedelta(seconds=3)) == timedelta(0)


@pytest.mark.parametrize(
    ("expr", "budget"),
    [
        ("*/10 * * * *", "9m"),
        ("0,5 * * * *", "4m30s"),  # gaps of 5m and 55m: the shortest counts
        ("@hourly", "54m"),
        ("0 9 * * 1-5", "21h36m"),
    ],
)
def test_a_cron_budget_comes_from_the_shortest_gap_between_fire_times(
    expr: str, budget: str
) -> None:
    assert make_job(every=None, cron=expr).budget == budget


def test_an_explicit_budget_is_written_as_given() -> None:
    assert make_job(budget="40s").argv[-2:] == ("--budget", "40s")


@pytest.mark.parametrize(
    "expr", ["* * * * * *", "0 0 L * *", "0 0 * * 5#2", "H * * * *", "@reboot", "100 * * * *"]
)
def test_a_cron_expression_that_is_not_debian_crons_is_refused(expr: str) -> None:
    with pytest.raises(errors.CronError):
        make_job(every=None, cron=expr)


def test_an_at_word_is_written_as_its_five_fields() -> None:
    assert make_job(every=None, cron="@daily").schedule == "0 0 * * *"


# --- the line ------------------------------------------------------------------


def test_the_line_ticks_the_home_and_scope_with_absolute_paths() -> None:
    job = make_job(
        scope=Scope.parse(["b,a", "a"], ["a.x"]),
        config=Path("/srv/app/taskcron.toml"),
        every="5m",
    )
    assert job.line == (
        "*/5 * * * * /opt/venv/bin/taskcron --home /srv/app/.taskcron --config "
        "/srv/app/taskcron.toml tick --module a --module b --except a.x --budget 4m30s "
        ">> /srv/app/.taskcron/cron.log 2>&1"
    )


def test_mail_leaves_the_output_to_cron() -> None:
    assert not make_job(mail=True).line.endswith("2>&1")


def test_the_marker_names_the_home_and_the_normalised_scope() -> None:
    job = make_job(scope=Scope.parse(["b", "a,b"]))
    assert job.block.splitlines()[0] == (
        '# taskcron generate-cron {"home": "/srv/app/.taskcron", "modules": ["a", "b"], '
        '"except": []}'
    )
    assert cronjob.parse_marker(job.marker) == (HOME, Scope.parse(["a", "b"]))


def test_a_home_with_shell_and_cron_characters_is_quoted_and_escaped() -> None:
    home = Path("/srv/my app/100%/#1/$x;(y)/'q\"/back\\slash\\%")
    job = make_job(home)
    assert "%" not in job.line.replace("\\%", "")
    assert " #" not in job.line
    words = shlex.split(cron_command(job.line))
    assert words[words.index("--home") + 1] == str(home)
    assert words[-3:] == [">>", str(home / "cron.log"), "2>&1"]


@pytest.mark.parametrize("bad", ["\n", "\r", "\x00"])
@pytest.mark.parametrize("where", ["home", "config", "budget", "cron", "every", "command"])
def test_line_breaks_and_nul_are_refused_in_every_value(bad: str, where: str) -> None:
    values: dict[str, Any] = {
        "home": {"home": Path(f"/srv/a{bad}b")},
        "config": {"config": Path(f"/srv/a{bad}.toml")},
        "budget": {"budget": f"5s{bad}"},
        "cron": {"every": None, "cron": f"* * * * *{bad}* * * * * evil"},
        "every": {"every": f"1m{bad}"},
        "command": {"command": (f"/bin/task{bad}cron",)},
    }[where]
    with pytest.raises(errors.InputError):
        make_job(**values)


def test_a_command_longer_than_cron_keeps_is_refused() -> None:
    with pytest.raises(errors.InputError, match="999"):
        make_job(Path("/" + "x" * 500))


def test_the_executable_is_the_console_script_when_it_runs(tmp_path: Path) -> None:
    script = tmp_path / "taskcron"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    assert cronjob.executable(str(script), "/usr/bin/python3") == (str(script),)
    assert cronjob.executable("/x/taskcron/__main__.py", "/v/bin/python") == (
        "/v/bin/python",
        "-m",
        "taskcron",
    )


def test_a_user_field_goes_after_the_five_fields() -> None:
    job = make_job(user="www-data")
    assert job.line.startswith("* * * * * www-data /opt/venv/bin/taskcron ")
    (item,) = CronTab(tab=job.block, user=False)
    assert item.user == "www-data"


@pytest.mark.parametrize("user", ["", "-u", "a b", "a#b", "a\nb"])
def test_a_user_name_that_cannot_be_one_is_refused(user: str) -> None:
    with pytest.raises(errors.InputError):
        make_job(user=user)


@pytest.mark.parametrize(
    "options",
    [
        {"every": "1m"},
        {"every": "15m", "mail": True},
        {"every": "1d", "user": "root"},
        {"every": None, "cron": "@weekly"},
        {"every": None, "cron": "*/10 8-18 * jan-mar mon-fri"},
    ],
)
def test_every_generated_line_parses_with_python_crontab_and_croniter(
    options: dict[str, Any],
) -> None:
    job = make_job(Path("/srv/a b/%#'"), **options)
    (item,) = CronTab(tab=job.block, user=False if job.user else None)
    assert item.is_valid() and item.is_enabled()
    assert item.command == cron_command(job.line, system=job.user is not None)
    assert croniter.is_valid(job.schedule)


# --- splicing -------------------------------------------------------------------


def test_installing_keeps_every_user_line_byte_for_byte() -> None:
    job = make_job()
    text, removed = cronjob.splice(USER_TEXT, job.home, job.scope, job.block)
    assert (text, removed) == (USER_TEXT + job.block, 0)


def test_installing_after_a_last_line_without_a_line_break_adds_one() -> None:
    job = make_job()
    assert cronjob.splice("0 * * * * cmd", HOME, Scope(), job.block)[0] == (
        "0 * * * * cmd\n" + job.block
    )


def test_installing_twice_gives_one_line_in_the_same_place() -> None:
    first = make_job(every="1m")
    second = make_job(every="5m")
    once, _ = cronjob.splice(USER_TEXT, HOME, Scope(), first.block)
    twice, removed = cronjob.splice(once + "# after\n", HOME, Scope(), second.block)
    assert removed == 1
    assert twice == USER_TEXT + second.block + "# after\n"


def test_scopes_compare_normalised() -> None:
    one = make_job(scope=Scope.parse(["b,a"]))
    other = make_job(scope=Scope.parse(["a", "b", "a"]), every="5m")
    text, _ = cronjob.splice("", HOME, one.scope, one.block)
    assert cronjob.splice(text, HOME, other.scope, other.block) == (other.block, 1)


def test_a_second_scope_or_home_adds_a_second_line() -> None:
    billing = make_job(scope=Scope.parse(["billing"]))
    rest = make_job(scope=Scope.parse([], ["billing"]))
    elsewhere = make_job(Path("/srv/other"), scope=Scope.parse(["billing"]))
    text = USER_TEXT
    for job in (billing, rest, elsewhere):
        text, removed = cronjob.splice(text, job.home, job.scope, job.block)
        assert removed == 0
    assert text == USER_TEXT + billing.block + rest.block + elsewhere.block
    assert len(CronTab(tab=text).crons) == 3 + 3


def test_uninstalling_removes_only_our_line() -> None:
    billing = make_job(scope=Scope.parse(["billing"]))
    rest = make_job(scope=Scope.parse([], ["billing"]))
    text = USER_TEXT + billing.block + "# between\n" + rest.block
    assert cronjob.splice(text, HOME, billing.scope, None) == (
        USER_TEXT + "# between\n" + rest.block,
        1,
    )
    assert cronjob.splice(USER_TEXT, HOME, billing.scope, None) == (USER_TEXT, 0)


def test_an_orphaned_marker_never_takes_the_users_next_line_with_it() -> None:
    job = make_job()
    text = job.marker + "\n0 * * * * cmd\n"
    assert cronjob.splice(text, HOME, Scope(), None) == ("0 * * * * cmd\n", 1)


def test_bytes_that_are_not_utf8_survive_a_file_install(tmp_path: Path) -> None:
    path = tmp_path / "crontab"
    user_bytes = b"# caf\xe9 latin-1\n0 * * * * cmd\n"
    path.write_bytes(user_bytes)
    job = make_job()
    change = cronjob.install(job, FileCrontab(path), lock=tmp_path / "lock")
    assert change.written
    assert path.read_bytes() == user_bytes + job.block.encode()
    assert cronjob.uninstall(HOME, Scope(), FileCrontab(path), lock=tmp_path / "lock").removed == 1
    assert path.read_bytes() == user_bytes


def test_a_dry_run_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "crontab"
    change = cronjob.install(make_job(), FileCrontab(path), lock=None, dry_run=True)
    assert not change.written and not path.exists()
    assert change.text == make_job().block


def test_a_file_install_keeps_the_files_mode(tmp_path: Path) -> None:
    path = tmp_path / "crontab"
    path.write_text("")
    path.chmod(0o600)
    cronjob.install(make_job(), FileCrontab(path), lock=tmp_path / "lock")
    assert path.stat().st_mode & 0o777 == 0o600


# --- hypothesis: hostile input ------------------------------------------------------

HOSTILE = st.text(
    alphabet=st.sampled_from(list("\n\r\x00%#;$()'\"\\ \tab./-_é")), min_size=1, max_size=24
)


@settings(max_examples=300, deadline=None)
@given(values=st.lists(HOSTILE, min_size=1, max_size=3), excepts=st.booleans())
def test_module_ids_and_scopes_are_refused_unless_valid(values: list[str], excepts: bool) -> None:
    valid = all(
        part and all(seg and set(seg) <= set("ab_-") for seg in part.split("."))
        for value in values
        for part in (p.strip() for p in value.split(","))
    )
    try:
        scope = Scope.parse([] if excepts else values, values if excepts else [])
    except errors.ModuleIdError:
        assert not valid
        return
    assert valid
    job = make_job(scope=scope)
    assert len(CronTab(tab=job.block).crons) == 1


@settings(max_examples=300, deadline=None)
@given(name=HOSTILE)
def test_a_home_is_refused_only_for_line_breaks_and_nul(name: str) -> None:
    home = Path("/srv", name)
    try:
        job = make_job(home)
    except errors.InputError:
        assert any(c in str(home) for c in "\n\r\x00")
        return
    text, _ = cronjob.splice(USER_TEXT, job.home, job.scope, job.block)
    (item,) = [i for i in CronTab(tab=text).crons if "taskcron" in i.command]
    assert item.is_valid()
    line = cronjob.split_lines(text)[-1].rstrip("\n")
    assert cron_command(line) == item.command
    words = shlex.split(cron_command(line))
    assert words[words.index("--home") + 1] == str(home)
    assert "tick" in words
