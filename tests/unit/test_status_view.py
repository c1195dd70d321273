"""What `status` draws: panels at a terminal (with progress bars), plain text otherwise.

The tasks are built by hand, with progress as a handler would report it.
"""

from __future__ import annotations

import io
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from rich.cells import cell_len
from rich.console import Console

from taskcron import render, values
from taskcron.api import Status
from taskcron.model import Outcome, Progress, Run, State, Target, Task
from taskcron.render import status as render_status
from tests.conftest import T0

#: Times are drawn in local time: UTC here, so the output is the same everywhere.
pytestmark = pytest.mark.usefixtures("utc_local_time")


def task(task_id: int, module: str, title: str, **fields: Any) -> Task:
    return Task(
        id=task_id,
        module=module,
        title=title,
        target=Target.call("shop.tasks:run"),
        due_at=fields.pop("due_at", T0),
        created_at=T0,
        updated_at=fields.pop("updated_at", T0),
        **fields,
    )


def running(
    task_id: int, module: str, title: str, progress: Progress | None, **fields: Any
) -> Task:
    run = Run(id=task_id, task_id=task_id, attempt=1, started_at=T0, host="web-1", pid=4242)
    return task(
        task_id, module, title, state=State.RUNNING, progress=progress, runs=(run,), **fields
    )


STATUS = Status(
    read_at=T0 + timedelta(minutes=2, seconds=5),
    modules={
        "billing.eu": {"queued": 1, "failed": 1},
        "shop": {"queued": 2, "running": 1, "done": 12, "paused": 1},
        "shop.mail": {"running": 1, "cancelled": 3},
    },
    running=(
        running(
            7,
            "shop",
            "sync catalogue",
            Progress(done=4, total=10, updated_at=T0),
            job_started_at=T0 - timedelta(minutes=1),  # its second step runs
        ),
        running(9, "shop.mail", "newsletter", Progress(done=250, message="sent", updated_at=T0)),
    ),
    next=(
        task(3, "shop", "restock", due_at=T0 + timedelta(minutes=5)),
        task(4, "billing.eu", "invoices", due_at=T0 + timedelta(hours=1)),
    ),
    failures=(
        task(
            5,
            "billing.eu",
            "charge card",
            state=State.FAILED,
            last_outcome=Outcome.TIMEOUT,
            updated_at=T0 + timedelta(seconds=30),
        ),
    ),
)

TERMINAL = """\
╭─ tasks by module ────────────────────────────────────────────────────────────────────────────────╮
│ module      queued  running  done  failed  cancelled  paused                                     │
│ billing.eu       1        0     0       1          0       0                                     │
│ shop             2        1    12       0          0       1                                     │
│ shop.mail        0        1     0       0          3       0                                     │
╰──────────────────────────────────────────────────────────────────────────────────────────────────╯
╭─ running ────────────────────────────────────────────────────────────────────────────────────────╮
│ id  module     title           progress                       step   job  host                   │
│  7  shop       sync catalogue  ━━━━━━━━╺━━━━━━━━━━━ 40% 4/10  2m5s  3m5s  web-1                  │
│  9  shop.mail  newsletter      250 done sent                  2m5s  2m5s  web-1                  │
╰──────────────────────────────────────────────────────────────────────────────────────────────────╯
╭─ next due ───────────────────────────────────────────────────────────────────────────────────────╮
│ due                  id  module      title                                                       │
│ 2026-01-05 12:05:00   3  shop        restock                                                     │
│ 2026-01-05 13:00:00   4  billing.eu  invoices                                                    │
╰──────────────────────────────────────────────────────────────────────────────────────────────────╯
╭─ last failures ──────────────────────────────────────────────────────────────────────────────────╮
│ when                 id  module      title        state   last run                               │
│ 2026-01-05 12:00:30   5  billing.eu  charge card  failed  timeout                                │
╰──────────────────────────────────────────────────────────────────────────────────────────────────╯
"""

PLAIN = """\
tasks by module
module      queued  running  done  failed  cancelled  paused
billing.eu       1        0     0       1          0       0
shop             2        1    12       0          0       1
shop.mail        0        1     0       0          3       0

running
id  module     title           progress       step   job  host
 7  shop       sync catalogue  40% 4/10       2m5s  3m5s  web-1
 9  shop.mail  newsletter      250 done sent  2m5s  2m5s  web-1

next due
due                  id  module      title
2026-01-05 12:05:00   3  shop        restock
2026-01-05 13:00:00   4  billing.eu  invoices

last failures
when                 id  module      title        state   last run
2026-01-05 12:00:30   5  billing.eu  charge card  failed  timeout
"""


class Tty(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def report(status: Status, stream: io.StringIO) -> str:
    render_status.status_report(status, file=stream)
    return stream.getvalue()


def test_the_view_at_a_terminal_draws_a_panel_a_part_and_a_bar_for_progress_with_a_total() -> None:
    assert render.capture(render_status.status_view(STATUS), width=100) == TERMINAL


def test_the_bar_follows_the_progress() -> None:
    half = Progress(done=5, total=10, updated_at=T0)
    status = Status(read_at=T0, modules={}, running=(running(7, "shop", "sync", half),))

    drawn = render.capture(render_status.status_view(status), width=100).splitlines()[5]

    assert "│  7  shop    sync   ━━━━━━━━━━╺━━━━━━━━━ 50% 5/10    0s   0s  web-1 " in drawn


def test_the_view_keeps_to_the_width_it_is_given() -> None:
    lines = render.capture(render_status.status_view(STATUS, width=80), width=100).splitlines()

    assert {len(line) for line in lines} == {80}


def test_piped_the_report_is_plain_text_with_every_part() -> None:
    text = report(STATUS, io.StringIO())

    assert text == PLAIN


def test_at_a_terminal_the_report_draws_panels_unless_no_color_is_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert "╭─" in report(STATUS, Tty())

    monkeypatch.setenv("NO_COLOR", "1")
    assert report(STATUS, Tty()) == PLAIN


def test_an_empty_status_says_none_for_each_part() -> None:
    text = report(Status(read_at=T0, modules={}), io.StringIO())

    assert text == (
        "tasks by module: none\n\nrunning: none\n\nnext due: none\n\nlast failures: none\n"
    )


@pytest.mark.parametrize("title", ["[bold]x[/]", "a\x1b[31mred"])
def test_text_from_tasks_is_drawn_literally(title: str) -> None:
    shown = render.one_line(title)
    status = Status(
        read_at=T0,
        modules={"shop": {"running": 1}},
        running=(running(7, "shop", title, Progress(done=1, message=title, updated_at=T0)),),
    )

    assert f"{shown}  1 done {shown}" in render.capture(render_status.status_view(status))
    assert f"{shown}  1 done {shown}" in report(status, io.StringIO())


def test_status_json_has_the_counts_and_each_task_without_its_runs() -> None:
    obj = STATUS.to_json()

    assert list(obj) == ["modules", "running", "next", "failures"]
    assert obj["modules"] == STATUS.modules
    times = [
        {"step_elapsed": 125.0, "job_elapsed": 185.0},
        {"step_elapsed": 125.0, "job_elapsed": 125.0},
    ]
    assert obj["running"] == [
        {**t.to_json(runs=False), **elapsed}
        for t, elapsed in zip(STATUS.running, times, strict=True)
    ]
    assert obj["running"][0]["progress"]["percent"] == 40.0
    assert [t["id"] for t in obj["next"]] == [3, 4]
    assert [t["id"] for t in obj["failures"]] == [5]


def test_the_status_guide_shows_what_status_prints() -> None:
    guide = (Path(__file__).parents[2] / "docs" / "pages" / "guides" / "status.md").read_text()

    assert f"$ taskcron status | cat\n{PLAIN}```" in guide


# --- status --watch at a terminal's size -------------------------------------------------

#: 22 module ids, as many as a real install shows, with the two running tasks of STATUS.
CROWDED = values.replace(
    STATUS, modules={f"app.module{n:02d}": {"queued": n, "done": 3} for n in range(22)}
)


def watched(status: Status, width: int, height: int) -> list[str]:
    """The first frame `status --watch` draws at a terminal `width` by `height`, as lines."""
    con = Console(
        file=io.StringIO(),
        width=width,
        height=height,
        force_terminal=True,
        color_system=None,
        legacy_windows=False,
    )
    reads = iter([status])

    def read() -> Status:
        return next(reads, None) or _interrupt()

    with pytest.raises(KeyboardInterrupt):
        render_status.watch_status(read, every=0, out=con)
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", con.file.getvalue())  # type: ignore[attr-defined]
    return text.split("\r")[0].split("\n")  # the next frame begins by going back to it


def _interrupt() -> Status:
    raise KeyboardInterrupt


def test_watch_at_80x24_with_22_module_ids_shows_the_running_tasks_first() -> None:
    lines = watched(CROWDED, 80, 24)

    assert len(lines) == 24
    assert lines[0].startswith("╭─ running ")
    assert "sync catalogue" in lines[2] and "newsletter" in lines[3]
    assert lines[5].startswith("╭─ tasks by module ")
    assert lines[-2].startswith("│ … and 7 more module ids ")
    assert lines[-1].startswith("╰")
    assert not any(line.startswith("...") for line in lines)


@pytest.mark.parametrize(("width", "height"), [(80, 24), (60, 15), (100, 40), (120, 30), (70, 8)])
def test_the_watch_view_fits_the_terminal_with_the_running_tasks_first(
    width: int, height: int
) -> None:
    lines = watched(CROWDED, width, height)

    assert lines[0].startswith("╭─ running ") and lines[-1].startswith("╰")
    assert len(lines) <= height
    assert all(cell_len(line) <= width for line in lines)
    assert not any(line.startswith("...") for line in lines)


def test_no_cell_of_the_watch_view_wraps_at_60x15() -> None:
    long = running(
        8, "shop.images", "resize every product image", Progress(done=3, total=9, updated_at=T0)
    )
    lines = watched(values.replace(CROWDED, running=(*CROWDED.running, long)), 60, 15)

    inside = [line for line in lines if line.startswith("│")]
    assert inside[0].split() == [
        "│",
        "id",
        "module",
        "title",
        "progress",
        "step",
        "job",
        "host",
        "│",
    ]
    assert [line.split()[1] for line in inside[1:4]] == ["7", "9", "8"]
    assert inside[4].split()[1:4] == ["module", "queued", "done"]
    rows = inside[5:-1]
    assert rows and all(line.startswith("│ app.module") for line in rows)
    assert inside[-1].startswith(f"│ … and {22 - len(rows)} more module ids")


def test_the_watch_view_says_how_many_running_tasks_it_leaves_out() -> None:
    many = tuple(running(n, "shop", f"job {n}", None) for n in range(30))
    lines = watched(values.replace(CROWDED, running=many), 80, 24)

    assert len(lines) == 24
    assert lines[-2].startswith("│ … and 10 more running tasks ")
    assert [line.split()[1] for line in lines[2:22]] == [str(n) for n in range(20)]


def test_an_empty_watch_view_says_none_for_each_part() -> None:
    lines = watched(Status(read_at=T0, modules={}), 60, 15)

    assert [line.split()[1] for line in lines if line.startswith("│")] == ["none"] * 4


def test_a_missed_task_says_so_beside_its_due_time() -> None:
    missed = task(9, "reports", "daily", due_at=T0, missed_since=T0)
    status = Status(read_at=T0, modules={}, next=(missed, task(10, "shop", "sync")))

    drawn = render.capture(render_status.status_view(status), width=100)

    assert re.search(r"missed +9  reports", drawn), drawn
    assert len(re.findall("missed", drawn)) == 1
