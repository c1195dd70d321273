"""Every tick pings its heartbeat, by the service's convention: the right path for each
outcome, in order, from the installed script against a local HTTP server."""

from __future__ import annotations

import shlex
import signal
import subprocess
from pathlib import Path

import pytest

from tests.conftest import clean_env, script
from tests.cronlines import cron_command
from tests.heartbeat.conftest import Pings, configure, ok, tick

UUID = "5c8d3a9e-6f4b-4d2a-9b1e-0a7c2f3e4d5b"


def heartbeat(project: Path, pings: Pings, style: str = "healthchecks") -> str:
    """Configure the heartbeat to the local server; its path."""
    configure(project, f'[heartbeat]\nurl = "{pings.url}/{UUID}"\nstyle = "{style}"\n')
    return f"/{UUID}"


def test_an_idle_tick_pings_the_url(project: Path, pings: Pings) -> None:
    path = heartbeat(project, pings)
    done = tick(project)
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    assert pings.wait(1) == [path]


def test_a_busy_tick_pings_the_url(project: Path, pings: Pings) -> None:
    path = heartbeat(project, pings)
    ok(project, "schedule", "a", "--", "sleep", "30")
    holder = subprocess.Popen([script(), "tick"], cwd=project, env=clean_env())
    try:
        assert pings.wait(1) == [f"{path}/start"]  # its task runs
        done = tick(project)
        assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
        assert pings.wait(2) == [f"{path}/start", path]
    finally:
        holder.send_signal(signal.SIGTERM)  # it stops its task, and records it interrupted
        holder.wait(timeout=60)
    assert pings.wait(3)[-1] == f"{path}/fail"


def test_a_task_that_succeeds_pings_start_then_the_url(project: Path, pings: Pings) -> None:
    path = heartbeat(project, pings)
    ok(project, "schedule", "a", "--", "true")
    done = tick(project)
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    assert pings.wait(2) == [f"{path}/start", path]


@pytest.mark.parametrize(
    ("command", "end"),
    [
        (["sh", "-c", "exit 1"], "/1"),
        (["sh", "-c", "exit 3"], "/3"),
        (["sh", "-c", "kill -9 $$"], "/fail"),  # killed by a signal: no exit code to give
    ],
)
def test_a_task_that_fails_pings_start_then_its_exit_code_or_fail(
    project: Path, pings: Pings, command: list[str], end: str
) -> None:
    path = heartbeat(project, pings)
    ok(project, "schedule", "a", "--", *command)
    done = tick(project)
    assert done.returncode == 1 and len(done.stderr.splitlines()) == 1
    assert pings.wait(2) == [f"{path}/start", path + end]


def test_pings_come_in_order_even_when_the_run_takes_no_time(project: Path, pings: Pings) -> None:
    """The ping after `start` waits for it: a run of a millisecond does not overtake it."""
    path = heartbeat(project, pings)
    for _ in range(5):
        ok(project, "schedule", "a", "--", "true")
        ok(project, "tick")
    assert pings.wait(10) == [f"{path}/start", path] * 5


def test_a_drain_pings_start_once_and_fail_at_its_end_when_a_run_failed(
    project: Path, pings: Pings
) -> None:
    path = heartbeat(project, pings)
    for command in (["true"], ["false"], ["true"]):
        ok(project, "schedule", "a", "--", *command)
    done = tick(project, "--drain")
    assert done.returncode == 1
    assert pings.wait(2) == [f"{path}/start", f"{path}/fail"]


def test_a_pool_pings_start_once_and_the_url_when_all_went_well(
    project: Path, pings: Pings
) -> None:
    path = heartbeat(project, pings)
    for module in ("a", "b", "c"):
        ok(project, "schedule", module, "--", "true")
    done = tick(project, "--workers", "3")
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    assert pings.wait(2) == [f"{path}/start", path]


def test_an_idle_drain_pings_the_url_alone(project: Path, pings: Pings) -> None:
    path = heartbeat(project, pings)
    done = tick(project, "--drain", "--json")
    assert done.returncode == 0
    assert pings.wait(1) == [path]


@pytest.mark.parametrize(
    ("schedule", "code", "expected"),
    [
        ([], 0, ["?state=complete"]),
        (["true"], 0, ["?state=run", "?state=complete"]),
        (["false"], 1, ["?state=run", "?state=fail"]),
    ],
)
def test_cronitor_style_pings_with_its_state_parameter(
    project: Path, pings: Pings, schedule: list[str], code: int, expected: list[str]
) -> None:
    path = heartbeat(project, pings, style="cronitor")
    if schedule:
        ok(project, "schedule", "a", "--", *schedule)
    assert tick(project).returncode == code
    assert pings.wait(len(expected)) == [path + query for query in expected]


def test_the_command_line_url_overrides_the_config(project: Path, pings: Pings) -> None:
    heartbeat(project, pings)
    ok(project, "schedule", "a", "--", "true")
    assert tick(project, "--heartbeat", f"{pings.url}/line?rid=7").returncode == 0
    assert pings.wait(2) == ["/line/start?rid=7", "/line?rid=7"]


def test_the_command_line_url_needs_no_config(project: Path, pings: Pings) -> None:
    assert tick(project, f"--heartbeat={pings.url}/idle").returncode == 0
    assert pings.wait(1) == ["/idle"]


def test_generate_cron_writes_the_option_and_its_line_pings(project: Path, pings: Pings) -> None:
    url = f"{pings.url}/cron%20line?x=1&y=2"
    printed = ok(project, "generate-cron", "--every", "1m", "--heartbeat", url)
    line = next(text for text in printed.splitlines() if not text.startswith("#"))
    assert r"--heartbeat" in line and r"\%20" in line  # cron would cut the line at a bare %
    command = cron_command(line)
    assert shlex.split(command.split(" >> ")[0])[-2:] == ["--heartbeat", url]
    done = subprocess.run(
        ["/bin/sh", "-c", command], cwd="/", env=clean_env(), timeout=60, check=False
    )
    assert done.returncode == 0
    assert (project / ".taskcron" / "cron.log").read_text() == ""
    assert pings.wait(1) == ["/cron%20line?x=1&y=2"]


@pytest.mark.parametrize("args", [[], ["--drain"]])
def test_a_tick_that_stops_on_an_error_pings_fail(
    project: Path, pings: Pings, args: list[str]
) -> None:
    path = heartbeat(project, pings)
    (project / "not-a-store").mkdir()  # a directory where the store's file should be
    configure(project, f'store = "sqlite:///not-a-store"\n[heartbeat]\nurl = "{pings.url}{path}"\n')
    done = tick(project, *args)
    assert done.returncode == 1 and len(done.stderr.splitlines()) == 1, done.stderr
    assert pings.wait(1) == [f"{path}/fail"]
