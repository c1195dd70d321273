"""A heartbeat that cannot be delivered costs the tick nothing and says nothing on
stderr (cron would mail it every minute): it is a `heartbeat.failed` record, written
afterwards by the detached process that tried."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import SERIAL, clean_env, script, wait_for
from tests.heartbeat.conftest import (
    Pings,
    configure,
    failed_pings,
    ok,
    records,
    tick,
)

#: The heartbeat's timeout in these tests, and the most a tick may take beside it.
TIMEOUT, FAR_BELOW = 5.0, 2.0


def timed_tick(project: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], float]:
    """A tick run as cron runs it, its output captured (the pipes stay open as long as
    any process holds them); with its wall time."""
    started = time.monotonic()
    done = tick(project, *args)
    return done, time.monotonic() - started


@SERIAL
@pytest.mark.parametrize("work", [[], ["true"]], ids=["idle", "a task"])
def test_a_server_that_never_answers_costs_the_tick_nothing(
    project: Path, hanging_url: str, work: list[str]
) -> None:
    configure(project, f'[heartbeat]\nurl = "{hanging_url}"\ntimeout = "{TIMEOUT:g}s"\n')
    if work:
        ok(project, "schedule", "a", "--", *work)
    done, took = timed_tick(project)
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    assert took < FAR_BELOW < TIMEOUT  # the pings (two with a task) wait, not the tick
    expected = ["start", "success"] if work else ["success"]
    found = failed_pings(project, len(expected))
    assert [record["ping"] for record in found] == expected
    for record in found:
        assert record["level"] == "warning"
        assert record["detail"] == f"no answer within {TIMEOUT:g}s"
        assert TIMEOUT <= record["elapsed"] < TIMEOUT + FAR_BELOW
        assert record["url"].endswith("/hang" if record["ping"] == "success" else "/hang/start")


def test_a_refused_connection_is_a_record_and_nothing_on_stderr(
    project: Path, refused_url: str
) -> None:
    done = tick(project, "--heartbeat", refused_url)
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    (found,) = failed_pings(project)
    assert found["ping"] == "success"
    assert found["detail"] == "Connection refused"
    assert found["message"] == (
        f"heartbeat ping (success) to {refused_url} failed: Connection refused"
    )


def test_an_error_status_is_a_failed_ping(project: Path, pings: Pings) -> None:
    ok(project, "schedule", "a", "--", "false")
    done = tick(project, "--heartbeat", f"{pings.url}/broken/5c8d3a9e-6f4b-4d2a")
    assert done.returncode == 1
    assert pings.wait(2) == ["/broken/5c8d3a9e-6f4b-4d2a/start", "/broken/5c8d3a9e-6f4b-4d2a/1"]
    found = failed_pings(project, 2)
    assert [(r["ping"], r["detail"]) for r in found] == [
        ("start", "HTTP 500 Internal Server Error"),
        ("fail", "HTTP 500 Internal Server Error"),
    ]
    # the check's URL is not handed out by the log: long segments are cut
    assert found[1]["url"] == f"{pings.url}/broken/5c8d.../1"


def test_a_failed_ping_is_not_written_below_the_logs_level(project: Path, hanging_url: str) -> None:
    configure(
        project, f'[heartbeat]\nurl = "{hanging_url}"\ntimeout = "1s"\n[log]\nlevel = "error"\n'
    )
    assert tick(project).returncode == 0
    wait_for(lambda: senders(project), timeout=20)  # it waits a second for an answer...
    wait_for(lambda: not senders(project), timeout=20)  # ... and then it has failed
    assert records(project, "heartbeat.failed") == []


def children(pid: int) -> list[tuple[int, str, str]]:
    """The processes whose parent is `pid`: (pid, state, command line)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid:
            found.append((int(entry.name), fields[0], cmdline))
    return found


def senders(project: Path) -> list[int]:
    """The processes sending a ping of `project`'s ticks now (the ping is in their
    environment, which names the home)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if (
                entry.name.isdigit()
                and b"taskcron.heartbeat" in (entry / "cmdline").read_bytes()
                and str(project).encode() in (entry / "environ").read_bytes()
            ):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


@SERIAL
def test_a_sending_process_is_never_the_ticks_child(project: Path, hanging_url: str) -> None:
    """A long tick's `start` ping (which lasts its timeout here) is not its child, nor a
    zombie of it: the double fork leaves it to init."""
    configure(project, f'[heartbeat]\nurl = "{hanging_url}"\ntimeout = "{TIMEOUT:g}s"\n')
    ok(project, "schedule", "a", "--", "sleep", "30")
    holder = subprocess.Popen(
        [script(), "tick"], cwd=project, env=clean_env(), stdout=subprocess.PIPE
    )
    try:
        wait_for(lambda: "running" in ok(project, "list", "--json"), timeout=30)
        assert wait_for(lambda: senders(project), timeout=20)  # the start ping, still waiting
        assert all(state != "Z" for _, state, _ in children(holder.pid))
        assert not [cmd for _, _, cmd in children(holder.pid) if "taskcron.heartbeat" in cmd]
    finally:
        holder.send_signal(signal.SIGTERM)
        holder.wait(timeout=60)
        assert holder.stdout is not None
        started = time.monotonic()
        assert holder.stdout.read() == b""  # closed as the tick exits, though a ping waits
        assert time.monotonic() - started < FAR_BELOW


def test_a_ping_process_keeps_no_descriptor_of_the_tick(project: Path, hanging_url: str) -> None:
    configure(project, f'[heartbeat]\nurl = "{hanging_url}"\ntimeout = "{TIMEOUT:g}s"\n')
    done, _ = timed_tick(project)
    assert done.returncode == 0
    pids = wait_for(lambda: senders(project), timeout=20)
    for pid in pids:
        try:
            fds = {
                int(fd.name): str(fd.readlink()) for fd in (Path("/proc", str(pid), "fd")).iterdir()
            }
        except OSError:
            continue  # it ended meanwhile
        assert all(fds.get(n) == "/dev/null" for n in (0, 1, 2)), fds
        assert not [t for n, t in fds.items() if n > 2 and t.startswith(("pipe:", str(project)))]
