"""`taskcron check --max-tick-age DUR`: broken when no tick of the scope has run on this
host within DUR (by the tick's mark, `taskcron.tickmarks`), in text and in `--json`;
it reads the mark and creates nothing."""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import pytest

from tests.conftest import taskcron_in
from tests.heartbeat.conftest import ok, tick


def last_tick(project: Path, *args: str) -> tuple[int, str, dict[str, object]]:
    """`check --json` with `args`: its exit code, the `last tick` item's detail, and the
    item; the text form says the same in its `last tick` line."""
    done = taskcron_in(project, "check", "--json", *args)
    (item,) = [c for c in json.loads(done.stdout)["checks"] if c["name"] == "last tick"]
    text = taskcron_in(project, "check", *args)
    assert text.returncode == done.returncode
    (line,) = [t for t in text.stdout.splitlines() if " last tick " in t]
    assert line.split()[0] == ("ok" if item["ok"] else "BROKEN")
    assert without_age(line).endswith(without_age(str(item["detail"])))  # a second later
    return done.returncode, str(item["detail"]), item


def without_age(text: str) -> str:
    return re.sub(r"ran \S+ ago", "ran ... ago", text)


def age(project: Path, name: str, seconds: float) -> None:
    """Set back the mark `name` by `seconds`."""
    mark = project / ".taskcron" / "ticks" / name
    then = time.time() - seconds
    os.utime(mark, (then, then))


def test_a_recent_tick_is_ok(project: Path) -> None:
    assert tick(project).returncode == 0
    code, detail, item = last_tick(project, "--max-tick-age", "5m")
    assert code == 0 and item["ok"] is True
    assert detail.startswith("a tick of all module ids ran ") and detail.endswith("(within 5m)")


def test_an_old_tick_is_broken(project: Path) -> None:
    assert tick(project).returncode == 0
    age(project, "all", 3600)
    code, detail, item = last_tick(project, "--max-tick-age", "5m")
    assert code == 1 and item["ok"] is False
    assert re.fullmatch(
        r"no tick of all module ids has run on this host within 5m: the last ran 1h(\d+s)? ago,"
        r" at \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00",
        detail,
    ), detail


def test_a_tick_never_run_is_broken_and_says_where_it_looked(project: Path) -> None:
    code, detail, _ = last_tick(project, "--max-tick-age", "1h")
    assert code == 1
    assert detail == (
        "no tick of all module ids has run on this host"
        f" ({project / '.taskcron' / 'ticks' / 'all'} is missing): is its crontab line"
        " installed, and does it name this home?"
    )


def test_the_scope_is_the_ticks(project: Path) -> None:
    assert tick(project, "-m", "mail,billing", "-x", "billing.eu").returncode == 0
    assert last_tick(project, "--max-tick-age", "1m", "-m", "billing", "-m", "mail", "--except",
                     "billing.eu")[0] == 0  # fmt: skip
    code, detail, _ = last_tick(project, "--max-tick-age", "1m", "-m", "billing")
    assert code == 1 and detail.startswith("no tick of scope --module billing has run")
    assert last_tick(project, "--max-tick-age", "1m")[0] == 1  # the plain line never ran


def test_without_the_option_there_is_no_such_item(project: Path) -> None:
    done = taskcron_in(project, "check", "--json")
    assert "last tick" not in {c["name"] for c in json.loads(done.stdout)["checks"]}


def test_check_creates_nothing(tmp_path: Path) -> None:
    done = taskcron_in(tmp_path, "--home", str(tmp_path / "h"), "check", "--max-tick-age", "5m")
    assert done.returncode == 1
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--max-tick-age", "soon"], "invalid duration 'soon'"),
        (["--max-tick-age", "0"], "invalid max tick age '0': must be more than 0s"),
        (["--max-tick-age", "5m", "-m", "a..b"], "invalid module id 'a..b'"),
        (["-m", "billing"], "--module and --except name the scope of --max-tick-age"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(project: Path, args: list[str], message: str) -> None:
    done = taskcron_in(project, "check", *args)
    assert (done.returncode, done.stdout) == (2, "")
    assert message in done.stderr and len(done.stderr.splitlines()) == 1
    ok(project, "list")  # the home is as it was
