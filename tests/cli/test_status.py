"""`taskcron status` through the installed console script: plain text when piped, JSON,
a live view at a terminal until Ctrl-C, and nothing created without a home.

The homes are written through the store with fixed times, so that what `status`
prints can be compared exactly.
"""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import subprocess
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from taskcron.inputs import parse_duration
from taskcron.model import Outcome, Progress, Recurrence, RunEnd, Scope, State
from taskcron.store.sqlite import SqliteStore
from tests.conftest import clean_env, script, taskcron_in
from tests.store.conftest import T0, at, decide, lease, new_task

Run = Callable[..., subprocess.CompletedProcess[Any]]
UTC = {"TZ": "UTC"}


def open_store(home: Path) -> SqliteStore:
    home.mkdir(mode=0o700, exist_ok=True)
    return SqliteStore(home / "tasks.db")


def run_to(store: SqliteStore, module: str, outcome: Outcome | None, seconds: float) -> int:
    """Claim the due task of `module` at T0 + `seconds` and end its run then with
    `outcome` (None: leave it running). Its run's id."""
    now = at(seconds)
    got = store.claim_next(
        scope=Scope(modules=(module,)), now=now, lease=lease(now, pid=1), decide=decide
    )
    assert got.run is not None, got
    if outcome is not None:
        end = RunEnd(outcome=outcome, ended_at=now, elapsed=0.5, error="it broke")
        store.finish_run(got.run.id, end, decide=decide)
    return got.run.id


def small_home(home: Path) -> None:
    """Tasks in four modules and every state but running, at fixed times.

    1 app.mail "welcome" queued, due 13:00    5 billing.eu "refund" paused
    2 app.mail "digest" queued, due 14:00     6 billing.eu "void" cancelled
    3 app.mail "ping" done at 12:00:10        7 reports "weekly" recurring, timed out at 12:01
    4 billing.eu "charge" failed at 12:00:30  8 shop "restock" queued, due 12:30
    """
    with open_store(home) as store:
        for title, due in (("welcome", 3600), ("digest", 7200), ("ping", 0)):
            store.schedule(new_task("app.mail", title=title, due_at=at(due)), now=T0)
        for title in ("charge", "refund", "void"):
            store.schedule(new_task("billing.eu", title=title, due_at=at(1)), now=T0)
        hourly = Recurrence(every=timedelta(hours=1))
        store.schedule(new_task("reports", title="weekly", recurrence=hourly), now=T0)
        store.schedule(new_task("shop", title="restock", due_at=at(1800)), now=T0)
        run_to(store, "app.mail", Outcome.DONE, 10)
        run_to(store, "billing.eu", Outcome.FAILED, 30)
        for task_id, to in ((5, State.PAUSED), (6, State.CANCELLED)):
            store.transition(task_id, action="test", allowed=(State.QUEUED,), to=to, now=at(40))
        run_to(store, "reports", Outcome.TIMEOUT, 60)


SMALL_HOME_STATUS = """\
tasks by module
module      queued  running  done  failed  cancelled  paused
app.mail         2        0     1       0          0       0
billing.eu       0        0     0       1          1       1
reports          1        0     0       0          0       0
shop             1        0     0       0          0       0

running: none

next due
due                  id  module    title
2026-01-05 12:30:00   8  shop      restock
2026-01-05 13:00:00   1  app.mail  welcome
2026-01-05 13:01:00   7  reports   weekly
2026-01-05 14:00:00   2  app.mail  digest

last failures
when                 id  module      title   state   last run
2026-01-05 12:01:00   7  reports     weekly  queued  timeout
2026-01-05 12:00:30   4  billing.eu  charge  failed  failed
"""


def test_status_piped_prints_every_module_and_the_lists_as_plain_text(
    run_cli: Run, home: Path
) -> None:
    small_home(home)

    result = run_cli("status", env=UTC)

    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == SMALL_HOME_STATUS
    assert "\x1b" not in result.stdout


def test_status_serves_its_scope(run_cli: Run, home: Path) -> None:
    small_home(home)

    result = run_cli("status", "--module", "app,billing", "--except", "billing.eu", env=UTC)

    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == (
        "tasks by module\n"
        "module    queued  running  done  failed  cancelled  paused\n"
        "app.mail       2        0     1       0          0       0\n"
        "\n"
        "running: none\n"
        "\n"
        "next due\n"
        "due                  id  module    title\n"
        "2026-01-05 13:00:00   1  app.mail  welcome\n"
        "2026-01-05 14:00:00   2  app.mail  digest\n"
        "\n"
        "last failures: none\n"
    )


def test_status_json_has_counts_by_module_and_state_and_tasks_as_show_prints_them(
    run_cli: Run, home: Path
) -> None:
    small_home(home)
    with open_store(home) as store:
        store.schedule(new_task("shop.sync", title="sync"), now=T0)
        run_id = run_to(store, "shop.sync", None, 90)
        store.save_progress(run_id, Progress(done=3, total=4, updated_at=at(95)))

    result = run_cli("status", "--json")

    assert (result.returncode, result.stderr) == (0, "")
    status = json.loads(result.stdout)
    assert list(status) == ["modules", "running", "next", "failures"]
    assert status["modules"] == {
        "app.mail": {"done": 1, "queued": 2},
        "billing.eu": {"cancelled": 1, "failed": 1, "paused": 1},
        "reports": {"queued": 1},
        "shop": {"queued": 1},
        "shop.sync": {"running": 1},
    }
    assert [t["id"] for t in status["running"]] == [9]
    assert status["running"][0]["progress"]["percent"] == 75.0
    assert [t["id"] for t in status["next"]] == [8, 1, 7, 2]
    assert [(t["id"], t["last_outcome"]) for t in status["failures"]] == [
        (7, "timeout"),
        (4, "failed"),
    ]
    for task in status["running"]:
        assert task.pop("step_elapsed") == task.pop("job_elapsed") > 0
    for task in (*status["running"], *status["next"], *status["failures"]):
        shown = json.loads(run_cli("show", str(task["id"]), "--json").stdout)
        for only_shown in ("runs", "runs_kept", "runs_total", "outcomes"):
            del shown[only_shown]
        assert task == shown


def test_a_running_jobs_step_and_whole_job_elapsed_times_are_in_status_and_its_json(
    run_cli: Run, home: Path
) -> None:
    """`step` runs from the current run's start, `job` from the job's first step's: here
    the second step started 30 s after the first."""
    with open_store(home) as store:
        store.schedule(new_task("shop.import", title="import"), now=T0)
        first = run_to(store, "shop.import", None, 60)
        end = RunEnd(outcome=Outcome.CONTINUED, ended_at=at(80), elapsed=20.0, state_json="{}")
        store.finish_run(first, end, decide=decide)
        run_to(store, "shop.import", None, 90)

    (running,) = json.loads(run_cli("status", "--json").stdout)["running"]
    text = run_cli("status", env=UTC).stdout

    assert running["job_elapsed"] - running["step_elapsed"] == pytest.approx(30, abs=0.002)
    header, row = text.split("\nrunning\n")[1].splitlines()[:2]
    assert header.split() == ["id", "module", "title", "progress", "step", "job", "host"]
    step, job = (parse_duration(cell) for cell in row.split()[4:6])
    assert abs(job - step - timedelta(seconds=30)) <= timedelta(seconds=1)


def test_status_json_of_a_home_without_a_store_yet_is_empty(run_cli: Run, home: Path) -> None:
    home.mkdir()

    result = run_cli("status", "--json")

    assert (result.returncode, result.stderr) == (0, "")
    assert json.loads(result.stdout) == {"modules": {}, "running": [], "next": [], "failures": []}
    assert list(home.iterdir()) == []


@pytest.mark.parametrize("args", [("status",), ("status", "--json")], ids=" ".join)
def test_status_without_a_home_says_where_it_looked_and_creates_nothing(
    tmp_path: Path, args: tuple[str, ...]
) -> None:
    result = taskcron_in(tmp_path, *args)

    assert (result.returncode, result.stdout) == (1, "")
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"taskcron: error: no taskcron home at {tmp_path / '.taskcron'} (")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--watch",), "--watch redraws a terminal, and stdout is not one"),
        (("--watch", "--json"), "--watch draws for people: give --watch or --json, not both"),
    ],
    ids=" ".join,
)
def test_status_watch_is_refused_in_one_line_when_it_cannot_draw(
    run_cli: Run, home: Path, args: tuple[str, ...], message: str
) -> None:
    result = run_cli("status", *args)

    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == f"taskcron: error: {message}\n"
    assert not home.exists()


class Terminal:
    """A process whose stdout is a pseudo-terminal, and what it has drawn so far."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.primary, secondary = pty.openpty()
        self.proc = subprocess.Popen(
            args,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=secondary,
            stderr=subprocess.PIPE,
        )
        os.close(secondary)
        self.seen = b""

    def read_until(self, wanted: bytes, timeout: float = 30) -> None:
        """Read what it draws until `wanted` appears (after what was read before), within
        `timeout` seconds, however much else it draws meanwhile."""
        start = len(self.seen)
        deadline = time.monotonic() + timeout
        while wanted not in self.seen[start:]:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self.primary], [], [], max(left, 0))
            drawn = self.seen[start:][-2000:]
            assert ready and left > 0, f"{wanted!r} not drawn in {timeout}s: ...{drawn!r}"
            self.seen += os.read(self.primary, 65536)

    def read_to_end(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self.primary], [], [], max(left, 0))
            assert ready and left > 0, f"still drawing after {timeout}s"
            try:
                chunk = os.read(self.primary, 65536)
            except OSError:  # the terminal's other side closed: the process is gone
                return
            if not chunk:
                return
            self.seen += chunk


def test_status_watch_redraws_a_running_tasks_progress_and_ends_cleanly_on_ctrl_c(
    home: Path, tmp_path: Path
) -> None:
    with open_store(home) as store:
        store.schedule(new_task("shop.sync", title="sync catalogue"), now=T0)
        run_id = run_to(store, "shop.sync", None, 0)
        store.save_progress(run_id, Progress(done=4, total=10, updated_at=at(1)))
        env = clean_env(TASKCRON_HOME=str(home), COLUMNS="100", LINES="40", TERM="xterm")
        terminal = Terminal([script(), "status", "--watch"], env)
        try:
            terminal.read_until(b"40% 4/10")
            store.save_progress(run_id, Progress(done=7, total=10, updated_at=at(2)))
            terminal.read_until(b"70% 7/10")
            terminal.proc.send_signal(signal.SIGINT)
            terminal.read_to_end()
        finally:
            os.close(terminal.primary)
            code = terminal.proc.wait(timeout=30)
    assert terminal.proc.stderr is not None
    stderr = terminal.proc.stderr.read().decode()
    terminal.proc.stderr.close()
    assert (code, stderr) == (0, "")
    # Ctrl-C may cut the frame being drawn, and with it a character of a bar.
    drawn = terminal.seen.decode(errors="replace")
    assert "sync catalogue" in drawn and " running " in drawn
    assert "Traceback" not in drawn and "borted" not in drawn


def test_a_reader_that_goes_away_ends_the_command_quietly(home: Path) -> None:
    """`taskcron status | head -1`: the pipe closes before status writes; no error line,
    and the exit status a shell reports for `yes | head` (128 + SIGPIPE)."""
    small_home(home)
    child = subprocess.Popen(
        [script(), "status"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=clean_env(TASKCRON_HOME=str(home)),
    )
    assert child.stdout is not None and child.stderr is not None
    child.stdout.close()  # before the child can write: its first write fails
    stderr = child.stderr.read()
    assert child.wait(timeout=60) == 128 + signal.SIGPIPE
    assert stderr == b""


def test_status_watch_at_80x24_with_22_module_ids_shows_the_running_tasks(
    home: Path, tmp_path: Path
) -> None:
    with open_store(home) as store:
        for number in range(22):
            store.schedule(new_task(f"app.module{number:02d}", due_at=at(3600)), now=T0)
        store.schedule(new_task("shop.sync", title="sync catalogue"), now=T0)
        run_to(store, "shop.sync", None, 0)
    env = clean_env(TASKCRON_HOME=str(home), COLUMNS="80", LINES="24", TERM="xterm")
    terminal = Terminal([script(), "status", "--watch"], env)
    try:
        terminal.read_until(b"more module ids")
        terminal.proc.send_signal(signal.SIGINT)
        terminal.read_to_end()
    finally:
        os.close(terminal.primary)
        code = terminal.proc.wait(timeout=30)
    assert terminal.proc.stderr is not None
    terminal.proc.stderr.close()
    assert code == 0
    frame = terminal.seen.decode(errors="replace").replace("\r\n", "\n").split("\r")[0]
    assert frame.index("running") < frame.index("sync catalogue") < frame.index("tasks by module")
    assert "\u2026 and 7 more module ids" in frame  # 23 module ids, 16 shown
