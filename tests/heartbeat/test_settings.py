"""The heartbeat's settings: `[heartbeat]` in the config, `tick --heartbeat` and
`generate-cron --heartbeat`. A bad value is one line and exit 2, on the idle path as on
the full one; an idle tick without a heartbeat loads nothing for it."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from taskcron import config
from taskcron.config import HeartbeatConfig
from tests.cli.test_idle_tick import full_cli, run
from tests.heartbeat.conftest import Pings, configure, ok, tick


def test_the_heartbeat_is_off_by_default_and_its_keys_are_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "taskcron.toml").write_text("")
    assert config.load().heartbeat == HeartbeatConfig(
        url=None, style="healthchecks", timeout=timedelta(seconds=3)
    )
    (tmp_path / "taskcron.toml").write_text(
        '[heartbeat]\nurl = "https://cronitor.link/p/KEY/job"\nstyle = "cronitor"\ntimeout = 10\n'
    )
    assert config.load().heartbeat == HeartbeatConfig(
        url="https://cronitor.link/p/KEY/job", style="cronitor", timeout=timedelta(seconds=10)
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '[heartbeat]\nurl = "ftp://hc-ping.com/x"\n',
            "config key 'heartbeat.url' must be an http:// or https:// URL, not 'ftp://hc-ping.com/x'",
        ),
        (
            '[heartbeat]\nurl = "https://"\n',
            "config key 'heartbeat.url' must be an http:// or https:// URL, not 'https://'",
        ),
        ("[heartbeat]\nurl = 7\n", "config key 'heartbeat.url' must be a string"),
        (
            '[heartbeat]\nurl = "https://hc-ping.com/a b"\n',
            "config key 'heartbeat.url' must not hold spaces",
        ),
        (
            '[heartbeat]\nstyle = "nagios"\n',
            "config key 'heartbeat.style' must be one of healthchecks, cronitor, not 'nagios'",
        ),
        ('[heartbeat]\ntimeout = "0s"\n', "config key 'heartbeat.timeout' must be more than zero"),
        (
            '[heartbeat]\ntimeout = "soon"\n',
            "config key 'heartbeat.timeout': invalid duration 'soon': "
            "expected e.g. '90s', '1h30m', '1.5s' or a number of seconds",
        ),
        (
            '[heartbeat]\nuri = "https://hc-ping.com/x"\n',
            "unknown config key 'heartbeat.uri': did you mean 'heartbeat.url'?",
        ),
        ('heartbeat = "https://hc-ping.com/x"\n', "config key 'heartbeat' must be a table"),
    ],
)  # fmt: skip
def test_a_bad_heartbeat_setting_is_one_line_and_exit_2(
    project: Path, text: str, message: str
) -> None:
    configure(project, text)
    done, modules = run(project, "tick")
    assert full_cli(modules)  # the idle path leaves every mistake to the CLI
    assert (done.returncode, done.stdout, done.stderr) == (2, "", f"taskcron: error: {message}\n")


@pytest.mark.parametrize(
    "url",
    [
        "hc-ping.com/x",
        "ftp://hc-ping.com/x",
        "https://",
        "",
        "https://hc-ping.com/a b",
        "http://h/\x7f",
    ],
)
@pytest.mark.parametrize(
    "command", [["tick"], ["tick", "--drain"], ["generate-cron", "--every", "1m"]]
)
def test_a_bad_heartbeat_url_on_the_command_line_is_one_line_and_exit_2(
    project: Path, url: str, command: list[str]
) -> None:
    done, _ = run(project, *command, "--heartbeat", url)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == (
        f"taskcron: error: invalid heartbeat URL {url!r}: expected an http:// or https:// URL,"
        " such as https://hc-ping.com/UUID\n"
    )


def test_a_bad_url_marks_no_tick(project: Path) -> None:
    """Bad input changes nothing: not even the tick's mark is touched."""
    done, _ = run(project, "tick", "--heartbeat", "nowhere")
    assert done.returncode == 2
    assert not (project / ".taskcron" / "ticks").exists()


def test_an_idle_tick_without_a_heartbeat_loads_nothing_for_it(project: Path) -> None:
    done, modules = run(project, "tick")
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    assert "click" not in modules
    assert not {m for m in modules if m.startswith("taskcron.heartbeat")}
    assert not modules & {"json", "urllib.request", "http.client", "ssl", "fcntl"}


def test_an_idle_tick_with_a_heartbeat_loads_no_http_client(project: Path, pings: Pings) -> None:
    configure(project, f'[heartbeat]\nurl = "{pings.url}/idle"\n')
    done, modules = run(project, "tick")
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    assert "click" not in modules and "taskcron.heartbeat" in modules
    assert not modules & {"urllib.request", "http.client", "ssl", "taskcron.lifecycle"}
    assert pings.wait(1) == ["/idle"]


def test_the_idle_path_takes_one_heartbeat_option_and_leaves_two_to_the_cli(
    project: Path, pings: Pings
) -> None:
    done, modules = run(project, "tick", f"--heartbeat={pings.url}/one")
    assert done.returncode == 0 and not full_cli(modules)
    done, modules = run(project, "tick", "--heartbeat", "x", "--heartbeat", f"{pings.url}/two")
    assert done.returncode == 0 and full_cli(modules)  # click takes the last one
    assert sorted(pings.wait(2)) == ["/one", "/two"]


def test_generate_cron_without_heartbeat_writes_no_option(project: Path) -> None:
    printed = ok(project, "generate-cron", "--every", "1m")
    assert "--heartbeat" not in printed


def test_a_heartbeat_that_cannot_go_into_a_crontab_is_refused(project: Path) -> None:
    done = tick(project, "--heartbeat", "https://hc-ping.com/x\n* * * * * rm -rf ~")
    assert done.returncode == 2 and len(done.stderr.splitlines()) == 1
