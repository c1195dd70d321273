"""What people see: tables and detail views print task text literally, errors on one line."""

from __future__ import annotations

import io
import json
import re
from datetime import datetime, timezone
from typing import Any

import pytest
from rich.console import Console

from taskcron import render
from taskcron.model import Outcome, Run, State, Target, Task

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=timezone.utc)


#: Times are drawn in local time: UTC here, so the output is the same everywhere.
pytestmark = pytest.mark.usefixtures("utc_local_time")


def make_task(**overrides: Any) -> Task:
    fields: dict[str, Any] = {
        "id": 12,
        "module": "billing.eu",
        "title": "send invoices",
        "target": Target.call("billing.tasks:send"),
        "due_at": T0,
        "created_at": T0,
        "updated_at": T0,
        "priority": 5,
        "max_attempts": 3,
    }
    fields.update(overrides)
    return Task(**fields)


def draw(draw_fn: Any, *args: Any) -> str:
    buffer = io.StringIO()
    draw_fn(*args, out=Console(file=buffer, width=100, color_system=None))
    return buffer.getvalue()


def table(*tasks: Task) -> list[str]:
    return draw(render.task_table, list(tasks)).splitlines()


def detail(task: Task) -> str:
    return draw(render.task_detail, task)


def test_task_table_has_a_header_and_one_line_per_task() -> None:
    lines = table(make_task(), make_task(id=13, title="other", state=State.PAUSED, priority=-1))
    assert lines == [
        "id  module      title          state   priority  due                  attempts",
        "12  billing.eu  send invoices  queued         5  2026-01-05 12:00:00       0/3",
        "13  billing.eu  other          paused        -1  2026-01-05 12:00:00       0/3",
    ]


def test_task_table_lines_have_no_trailing_spaces() -> None:
    for line in table(make_task(title="x"), make_task(id=2, title="a much longer title")):
        assert line == line.rstrip(" ")


@pytest.mark.parametrize("title", ["[bold]x[/]", "[/]", "a [red]b", "[link=http://x]y[/link]"])
def test_rich_markup_in_a_title_is_printed_literally_in_the_table(title: str) -> None:
    row = table(make_task(title=title))[1]
    assert re.search(rf"billing\.eu  {re.escape(title)} +queued", row), row


@pytest.mark.parametrize("title", ["[bold]x[/]", "[/]"])
def test_rich_markup_in_a_title_is_printed_literally_in_the_detail(title: str) -> None:
    assert f"title     {title}\n" in detail(make_task(title=title))


def test_ansi_escape_and_newline_in_a_title_are_shown_escaped_on_one_line_in_the_table() -> None:
    lines = table(make_task(title="\x1b[31mred\nline"))
    assert len(lines) == 2
    assert "\\x1b[31mred\\nline" in lines[1]
    assert "\x1b" not in "".join(lines)


def test_ansi_escape_and_newline_in_a_title_are_shown_escaped_on_one_line_in_the_detail() -> None:
    text = detail(make_task(title="\x1b[31mred\nline\ttab"))
    assert "title     \\x1b[31mred\\nline\\ttab\n" in text
    assert "\x1b" not in text


def test_detail_shows_every_field() -> None:
    task = make_task(data_json='{"n": 1}', result_json="[1]", state=State.DONE, attempts=1)
    assert detail(task) == (
        "id        12\n"
        "module    billing.eu\n"
        "title     send invoices\n"
        "state     done\n"
        "target    call: billing.tasks:send\n"
        "priority  5\n"
        "due       2026-01-05 12:00:00\n"
        "attempts  1/3\n"
        "timeout   -\n"
        "created   2026-01-05 12:00:00\n"
        "updated   2026-01-05 12:00:00\n"
        'data      {"n": 1}\n'
        "result    [1]\n"
    )


def test_command_target_with_control_characters_is_shown_escaped() -> None:
    task = make_task(target=Target.command(["echo", "\x1b[2J", "[b]x[/b]"]))
    assert "target    command: echo '\\x1b[2J' '[b]x[/b]'\n" in detail(task)


def test_long_data_is_cut_after_the_preview_with_its_length() -> None:
    data = json.dumps(["abcd"] * 600)
    text = detail(make_task(data_json=data))
    assert len(data) == 4800
    assert text.count('"abcd"') == 250
    assert '"abcd",… (4800 characters)\n' in text


@pytest.mark.parametrize("field", ["title", "data"])
def test_long_value_without_spaces_is_shown_whole_in_the_detail(field: str) -> None:
    value = "x" * 300
    task = make_task(title=value) if field == "title" else make_task(data_json=json.dumps(value))
    text = detail(task)
    assert text.count("x") == 300


def test_detail_shows_runs_traceback_and_output_with_escapes_visible() -> None:
    run = Run(
        id=1,
        task_id=12,
        attempt=2,
        started_at=T0,
        ended_at=T0,
        elapsed=1.25,
        outcome=Outcome.FAILED,
        error="bad [i]x[/i]\nsecond line",
        traceback="Traceback\n  \x1b[1mboom\n",
        output_tail="out [u]line[/u]\n\x1b[2Jline2\n",
        truncated=True,
    )
    text = detail(make_task(runs=(run,)))
    runs_part = text.split("result    -\n", 1)[1]
    assert runs_part == (
        "\n"
        "attempt  started              ended                elapsed  outcome  detail\n"
        "2        2026-01-05 12:00:00  2026-01-05 12:00:00  1.250s   failed   "
        "bad [i]x[/i]\\nsecond line\n"
        "\n"
        "Traceback\n"
        "  \\x1b[1mboom\n"
        "\n"
        "output of attempt 2 (truncated):\n"
        "out [u]line[/u]\n"
        "\\x1b[2Jline2\n"
    )  # fmt: skip


def test_detail_of_a_running_run_says_running_and_a_failed_command_its_exit_code() -> None:
    runs = (
        Run(id=1, task_id=12, attempt=1, started_at=T0, ended_at=T0, elapsed=0.5,
            outcome=Outcome.FAILED, exit_code=3),
        Run(id=2, task_id=12, attempt=2, started_at=T0),
    )  # fmt: skip
    lines = detail(make_task(runs=runs)).splitlines()
    assert (
        "1        2026-01-05 12:00:00  2026-01-05 12:00:00  0.500s   failed   exit code 3" in lines
    )
    assert "2        2026-01-05 12:00:00  -                    -        running" in lines


def test_error_is_one_line_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    render.error("no task with id 4")
    captured = capsys.readouterr()
    assert captured.err == "taskcron: error: no task with id 4\n"
    assert captured.out == ""


def test_error_with_line_breaks_and_escapes_stays_on_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    render.error("bad\nthing\r\x1b[31mred")
    captured = capsys.readouterr()
    assert captured.err == "taskcron: error: bad\\nthing\\r\\x1b[31mred\n"
    assert captured.err.count("\n") == 1


def test_error_with_debug_prints_the_traceback_then_the_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    try:
        raise RuntimeError("boom")
    except RuntimeError as exc:
        render.error("it broke", exc=exc, debug=True)
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last):\n")
    assert "RuntimeError: boom\n" in err
    assert err.endswith("taskcron: error: it broke\n")


def test_error_without_debug_prints_no_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    render.error("it broke", exc=RuntimeError("boom"))
    assert capsys.readouterr().err == "taskcron: error: it broke\n"


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("plain text", "plain text"),
        ("a\nb", "a\\nb"),
        ("tab\there", "tab\\there"),
        ("\x1b[31m", "\\x1b[31m"),
        ("\x00\x7f", "\\x00\\x7f"),
        ("\u2028", "\\u2028"),
        ("café ✓", "café ✓"),
    ],
)
def test_one_line_shows_control_characters_as_escapes(text: str, shown: str) -> None:
    assert render.one_line(text) == shown


def test_visible_keeps_line_breaks_and_escapes_the_rest() -> None:
    assert render.visible("a\x1b[1m\nb\tc") == "a\\x1b[1m\nb\\tc"


def test_console_off_a_terminal_does_not_read_markup() -> None:
    buffer = io.StringIO()
    render.console(buffer).print("[bold]x[/]")
    assert buffer.getvalue() == "[bold]x[/]\n"


def test_control_characters_in_data_and_result_are_not_sent_raw_to_the_terminal() -> None:
    raw = "\x9b2J\x7f\u202e"
    text = detail(make_task(data_json=json.dumps({"k": raw}, ensure_ascii=False),
                            result_json=json.dumps(raw, ensure_ascii=False)))  # fmt: skip
    assert not any(c in text for c in "\x9b\x7f\u202e")


def test_list_shows_an_owner_column_only_when_a_task_has_an_owner() -> None:
    plain, owned = make_task(), make_task(id=8, owner="session-42")
    for tasks, expected in (([plain], False), ([plain, owned], True)):
        out = Console(file=io.StringIO(), width=140, color_system=None)
        render.task_table(tasks, out=out)
        text = out.file.getvalue()  # type: ignore[attr-defined]
        assert ("owner" in text.splitlines()[0]) is expected
        assert ("session-42" in text) is expected


def test_progress_is_a_compact_bar_in_list_and_a_line_in_show() -> None:
    from taskcron.model import Progress

    at = datetime(2026, 1, 5, 12, 0, tzinfo=timezone.utc)
    half = Progress(done=45, total=100, message="rows", updated_at=at)
    assert render.progress_text(half) == "####......  45.0%"
    assert render.progress_text(Progress(done=7, updated_at=at)) == "7"
    assert render.progress_text(half, long=True).startswith("####......  45.0%  rows  (")
    out = Console(file=io.StringIO(), width=140, color_system=None)
    render.task_table([make_task(), make_task(id=8, progress=half)], out=out)
    text = out.file.getvalue()  # type: ignore[attr-defined]
    assert "progress" in text.splitlines()[0]
    assert "####......  45.0%" in text


def test_a_log_line_names_its_host_in_a_column_only_when_asked() -> None:
    from taskcron.logstore import record

    records = [
        record("task.started", at=T0, host="web-1", task=3, module="m", message="started x"),
        record("task.output", at=T0, host="worker-2", task=4, module="m", message="hi"),
        record("test.old", at=T0, message="written before records named their host"),
    ]
    width = render.host_width(records[:1])
    width = render.host_width(records[1:], width)
    assert width == 8
    lines = [draw(render.log_record, rec).rstrip("\n") for rec in records[:1]]
    assert lines == ["2026-01-05 12:00:00.000 INFO    task.started        #3 m started x"]
    buffer = io.StringIO()
    con = Console(file=buffer, width=100, color_system=None)
    for rec in records:
        render.log_record(rec, out=con, host_width=width)
    assert buffer.getvalue().splitlines() == [
        "2026-01-05 12:00:00.000 web-1    INFO    task.started        #3 m started x",
        "2026-01-05 12:00:00.000 worker-2 INFO    task.output         #4 m hi",
        "2026-01-05 12:00:00.000 -        INFO    test.old             - - written before records"
        " named their host",
    ]


def rich_layout(header: list[str], rows: list[list[str]], right: set[int], width: int) -> str:
    """The table as rich's own `Table` lays it out, its lines' trailing spaces cut."""
    from rich.table import Table

    grid = Table(box=None, pad_edge=False, header_style="bold")
    for i, name in enumerate(header):
        grid.add_column(name, justify="right" if i in right else "left", overflow="fold")
    for cells in rows:
        grid.add_row(*cells)
    con = Console(file=io.StringIO(), width=width, color_system=None)
    con.print(grid)
    return "".join(line.rstrip(" ") + "\n" for line in con.file.getvalue().splitlines())  # type: ignore[attr-defined]


@pytest.mark.parametrize("width", [200, 60])
def test_the_list_table_is_laid_out_as_richs_table_is_at_any_width(width: int) -> None:
    tasks = [
        make_task(id=1, title="héllo 世界", owner="bob "),
        make_task(id=1234, module="a", title="t", state=State.FAILED, priority=-10),
    ]
    header = ["id", "module", "title", "state", "priority", "due", "attempts", "owner"]
    rows = [
        ["1", "billing.eu", "héllo 世界", "queued", "5", "2026-01-05 12:00:00", "0/3", "bob "],
        ["1234", "a", "t", "failed", "-10", "2026-01-05 12:00:00", "0/3", "-"],
    ]
    out = Console(file=io.StringIO(), width=width, color_system=None)
    render.task_table(tasks, out=out)
    drawn = out.file.getvalue()  # type: ignore[attr-defined]
    assert drawn == rich_layout(header, rows, {0, 4, 6}, width)
    assert (max(len(line) for line in drawn.splitlines()) <= 60) is (width == 60)


def test_the_list_table_names_the_tasks_left_out_of_its_page() -> None:
    out = Console(file=io.StringIO(), width=100, color_system=None)
    render.task_table([make_task()], out=out, more=41)
    lines = out.file.getvalue().splitlines()  # type: ignore[attr-defined]
    assert lines[-1] == "\u2026 and 41 more: --limit 0 for all"
    assert len(lines) == 3
