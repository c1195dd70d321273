"""generate-cron's line: periods, budgets, quoting, the marker, reading it back."""

from __future__ import annotations

import shlex
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from croniter import croniter
from crontab import CronTab
from hypothesis import given, settings
from hypothesis import strategies as st

from taskcron import cronline, errors
from taskcron.model import Scope
from tests.cronlines import HOME, HOSTILE, cron_command, make_job

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
    assert cronline.period_schedule(period)[0] == expr


@pytest.mark.parametrize(
    "period", ["7m", "90m", "5h", "0m", "-5m", "90s", "45s", "2d", "1w", "soon", ""]
)
def test_a_period_cron_cannot_repeat_exactly_is_refused_naming_cron(period: str) -> None:
    with pytest.raises(errors.InputError, match="--cron"):
        cronline.period_schedule(period)


@pytest.mark.parametrize(
    ("every", "budget"),
    [("1m", "54s"), ("5m", "4m30s"), ("1h", "54m"), ("1d", "21h36m")],
)
def test_the_default_budget_is_the_period_less_ten_percent(every: str, budget: str) -> None:
    assert make_job(every=every).budget == budget


def test_the_budget_margin_is_at_least_five_seconds() -> None:
    assert cronline.default_budget(timedelta(seconds=30)) == timedelta(seconds=25)
    assert cronline.default_budget(timedelta(seconds=3)) == timedelta(0)


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
    assert cronline.parse_marker(job.marker) == (HOME, Scope.parse(["a", "b"]))


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
    assert cronline.executable(str(script), "/usr/bin/python3") == (str(script),)
    assert cronline.executable("/x/taskcron/__main__.py", "/v/bin/python") == (
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


# --- hypothesis: hostile input ------------------------------------------------------


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
