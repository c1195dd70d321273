"""Which URL each ping goes to, by the service's convention (pure: `ping_url`), and which
URLs a heartbeat takes (`check_url`)."""

from __future__ import annotations

import shlex

import pytest

from taskcron import errors
from taskcron.heartbeat import FAIL, START, SUCCESS, check_url, ping_url
from tests.cronlines import cron_command, make_job

HC = "https://hc-ping.com/5c8d3a9e"


@pytest.mark.parametrize(
    ("url", "ping", "exit_code", "expected"),
    [
        (HC, START, None, f"{HC}/start"),
        (HC, SUCCESS, None, HC),
        (HC, SUCCESS, 0, HC),
        (HC, FAIL, None, f"{HC}/fail"),
        (HC, FAIL, 1, f"{HC}/1"),
        (HC, FAIL, 255, f"{HC}/255"),
        (HC, FAIL, 0, f"{HC}/fail"),  # 0 would say it went well
        (HC, FAIL, 256, f"{HC}/fail"),
        (HC, FAIL, -9, f"{HC}/fail"),  # killed by a signal
        (f"{HC}/", START, None, f"{HC}/start"),
        (f"{HC}?rid=7", START, None, f"{HC}/start?rid=7"),
        (f"{HC}?rid=7", FAIL, 2, f"{HC}/2?rid=7"),
        (f"{HC}?rid=7", SUCCESS, None, f"{HC}?rid=7"),
    ],
)
def test_healthchecks_pings_by_path(
    url: str, ping: str, exit_code: int | None, expected: str
) -> None:
    assert ping_url(url, ping, exit_code=exit_code) == expected


@pytest.mark.parametrize(
    ("url", "ping", "expected"),
    [
        ("https://cronitor.link/p/KEY/job", START, "https://cronitor.link/p/KEY/job?state=run"),
        ("https://cronitor.link/p/KEY/job", SUCCESS, "https://cronitor.link/p/KEY/job?state=complete"),
        ("https://cronitor.link/p/KEY/job", FAIL, "https://cronitor.link/p/KEY/job?state=fail"),
        ("https://cronitor.link/p/KEY/job?env=prod", START, "https://cronitor.link/p/KEY/job?env=prod&state=run"),
    ],
)  # fmt: skip
def test_cronitor_pings_by_state(url: str, ping: str, expected: str) -> None:
    assert ping_url(url, ping, style="cronitor", exit_code=3) == expected


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8000/x", "https://hc-ping.com/5c8d3a9e", "HTTPS://H?x=1%20"]
)
def test_http_urls_are_taken(url: str) -> None:
    assert check_url(url) == url


@pytest.mark.parametrize(
    "url",
    ["", "hc-ping.com", "ftp://h/x", "https://", "https:///x", "https://?x", "http://h/a b",
     "http://h/\t", "http://h/\x00", "file:///etc/passwd"],
)  # fmt: skip
def test_other_urls_are_refused(url: str) -> None:
    with pytest.raises(errors.InputError, match="invalid heartbeat URL"):
        check_url(url)


@pytest.mark.parametrize(
    "url",
    [
        "https://hc-ping.com/5c8d3a9e",
        "https://h/a%20b?x=1&y=$HOME#frag",
        "http://h/'quoted';$(id)`id`\\%",
    ],
)
def test_a_heartbeat_url_goes_into_a_crontab_line_as_it_is(url: str) -> None:
    """The job is read back as cron, /bin/sh and python-crontab read it (`check_job`)."""
    job = make_job(heartbeat=url)
    assert job.argv[-2:] == ("--heartbeat", url)
    assert shlex.split(cron_command(job.line).split(" >> ")[0])[-1] == url


@pytest.mark.parametrize("url", ["https://h/x\n* * * * * id", "ftp://h/x"])
def test_a_heartbeat_url_that_cannot_be_pinged_or_written_is_refused(url: str) -> None:
    with pytest.raises(errors.InputError):
        make_job(heartbeat=url)
