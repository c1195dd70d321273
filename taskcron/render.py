"""Everything people and scripts see: tables, detail views, JSON and error lines.

The only module that imports rich, and only inside the functions that draw,
so that `taskcron tick` never pays for it. Text that comes from tasks (titles,
data, output, errors) is always given to rich as `Text`, never as markup:
`[bold]` in a title is printed as `[bold]`.
"""

from __future__ import annotations

import io
import json
import os
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import IO, TYPE_CHECKING, Any

from taskcron.model import Outcome, Progress, Run, State, Task, format_duration

if TYPE_CHECKING:
    from rich.console import Console, RenderableType
    from rich.table import Table

    from taskcron.api import Check, Status

PROG = "taskcron"
DATA_PREVIEW = 2000  #: Characters of a task's data that `show` prints.

_STATE_STYLES = {
    "queued": "cyan",
    "running": "bold yellow",
    "done": "green",
    "failed": "bold red",
    "cancelled": "dim",
    "paused": "magenta",
    "timeout": "red",
    "interrupted": "red",
    "continued": "cyan",
}


def one_line(text: str) -> str:
    """`text` with line breaks and other control characters made visible, on one line."""
    return "".join(
        c if c.isprintable() or c == " " else c.encode("unicode_escape").decode() for c in text
    )


def visible(text: str) -> str:
    """`text` with its lines kept and every other control character (ANSI escapes too) shown."""
    return "\n".join(one_line(part) for part in text.split("\n"))


def error(message: str, *, exc: BaseException | None = None, debug: bool = False) -> None:
    """Print `taskcron: error: <message>` on stderr, and the traceback when debugging."""
    if debug and exc is not None:
        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
    sys.stderr.write(f"{PROG}: error: {one_line(message)}\n")
    sys.stderr.flush()


def pruned(tasks: int, files: int, records: int | None, *, dry_run: bool) -> str:
    """`removed 1 task and 2 log files` (`would remove ...` on a dry run), with the log
    records when the store keeps them."""
    counts = [_count(tasks, "task"), _count(files, "log file")]
    if records is not None:
        counts.append(_count(records, "log record"))
    verb = "would remove" if dry_run else "removed"
    return f"{verb} {', '.join(counts[:-1])} and {counts[-1]}"


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'s' * (number != 1)}"


def warning(message: str) -> None:
    """Print `taskcron: warning: <message>` on stderr."""
    sys.stderr.write(f"{PROG}: warning: {one_line(message)}\n")
    sys.stderr.flush()


def line(text: str, *, file: IO[str] | None = None) -> None:
    """Print one plain line (no markup, no colour) on stdout or `file`."""
    out = file or sys.stdout
    out.write(text + "\n")
    out.flush()


def json_out(obj: Any, *, file: IO[str] | None = None) -> None:
    """Print `obj` as one JSON document."""
    out = file or sys.stdout
    out.write(json.dumps(obj) + "\n")
    out.flush()


def check_report(checks: Sequence[Check], *, file: IO[str] | None = None) -> None:
    """One line per check: `ok` or `BROKEN`, its name, and what was found."""
    width = max((len(c.name) for c in checks), default=0)
    for item in checks:
        status = "ok" if item.ok else "BROKEN"
        line(f"{status:<7}{item.name:<{width}}  {one_line(item.detail)}", file=file)


def console(
    file: IO[str] | None = None, *, width: int | None = None, plain: bool = False
) -> Console:
    """A rich Console for people: colour on a terminal unless NO_COLOR is set; plain otherwise.

    Off a terminal the width is generous (or $COLUMNS), so that piped tables are not folded.
    With `plain`, no style is written even at a terminal: no escape codes at all.
    """
    from rich.console import Console

    target = file or sys.stdout
    is_tty = hasattr(target, "isatty") and target.isatty()
    if width is None and not is_tty and "COLUMNS" not in os.environ:
        width = 200
    return Console(
        file=target,
        width=width,
        highlight=False,
        emoji=False,
        markup=False,
        color_system=None if plain else "auto",
    )


def capture(renderable: Any, *, width: int = 100) -> str:
    """What a terminal `width` columns wide shows of `renderable`, as text without styles.

    For exact-string tests, as rich's own tests draw.
    """
    from rich.console import Console

    con = Console(
        file=io.StringIO(),
        record=True,
        width=width,
        force_terminal=True,
        color_system="truecolor",
        legacy_windows=False,
        highlight=False,
        emoji=False,
        markup=False,
    )
    con.print(renderable)
    return con.export_text()


_LEVEL_STYLES = {"debug": "dim", "info": "", "warning": "yellow", "error": "bold red"}


def log_record(rec: dict[str, Any], *, out: Console, host_width: int | None = None) -> None:
    """One log record on one line: time, level, event, task, module, message (all literal).

    With `host_width`, its host follows the time, in a column that wide.
    """
    from rich.text import Text

    try:
        moment = datetime.fromisoformat(str(rec.get("ts"))).astimezone()
        when = moment.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    except ValueError:
        when = str(rec.get("ts"))
    level = str(rec.get("level", ""))
    style = _LEVEL_STYLES.get(level, "")
    text = Text()
    text.append(when, style="dim")
    if host_width is not None:
        text.append(f" {_host(rec):<{host_width}}", style="blue")
    text.append(f" {level.upper():<7}", style=style or None)
    text.append(f" {one_line(str(rec.get('event', ''))):<16}", style="bold")
    task = rec.get("task")
    text.append(f" {'#' + str(task) if task is not None else '-':>5}")
    text.append(f" {one_line(str(rec.get('module') or '-'))}", style="cyan")
    stream = rec.get("stream")
    if stream:
        text.append(f" {one_line(str(stream))}>", style="dim")
    text.append(" " + one_line(str(rec.get("message", ""))), style=style or None)
    out.print(text, soft_wrap=True)
    trace = rec.get("traceback")
    if trace:
        out.print(Text(visible(str(trace).rstrip("\n")), style="red"), soft_wrap=True)


def host_width(records: Sequence[dict[str, Any]], at_least: int = 0) -> int:
    """The width of a host column that fits `records`, and is `at_least` wide."""
    return max([at_least, *(len(_host(rec)) for rec in records)])


def _host(rec: dict[str, Any]) -> str:
    return one_line(str(rec.get("host") or "-"))


def _print(con: Console, renderable: Any) -> None:
    """Print without the padding rich leaves at the end of table lines."""
    with con.capture() as captured:
        con.print(renderable)
    text = "\n".join(part.rstrip(" ") for part in captured.get().split("\n"))
    con.file.write(text if text.endswith("\n") else text + "\n")
    con.file.flush()


def _when(moment: datetime | None) -> str:
    if moment is None:
        return "-"
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def task_table(tasks: Sequence[Task], *, out: Console | None = None, more: int = 0) -> None:
    """The `list` table: id, module, title, state, priority, due, attempts.

    When any task listed recurs, two more columns: its schedule and how its
    last run ended (the last one too when a step of a long job asked to
    continue); when any has an owner, an owner column; when any reported
    progress, a progress column. `more` tasks left out of the page are named
    on a last line, with how to see them all.
    """
    recurring = any(task.recurrence is not None for task in tasks)
    columns = [
        ("id", "right"),
        ("module", "left"),
        ("title", "left"),
        ("state", "left"),
        ("priority", "right"),
        ("due", "left"),
        ("attempts", "right"),
    ]
    if recurring:
        columns.append(("schedule", "left"))
    last = recurring or any(task.last_outcome is Outcome.CONTINUED for task in tasks)
    if last:
        columns.append(("last", "left"))
    owned = any(task.owner is not None for task in tasks)
    if owned:
        columns.append(("owner", "left"))
    progressing = any(task.progress is not None for task in tasks)
    if progressing:
        columns.append(("progress", "left"))
    rows: list[list[Cell]] = []
    for task in tasks:
        cells: list[Cell] = [
            (str(task.id), ""),
            (task.module, ""),
            (one_line(task.title), ""),
            (task.state.value, _STATE_STYLES.get(task.state.value, "")),
            (str(task.priority), ""),
            (_when(task.due_at), ""),
            (f"{task.attempts}/{task.max_attempts}", ""),
        ]
        if recurring:
            cells.append(("-" if task.recurrence is None else one_line(str(task.recurrence)), ""))
        if last:
            cells.append(_outcome(task))
        if owned:
            cells.append(("-" if task.owner is None else one_line(task.owner), ""))
        if progressing:
            cells.append((progress_text(task.progress), ""))
        rows.append(cells)
    con = out or console()
    grid(con, columns, rows)
    if more:
        line(f"\u2026 and {more} more: --limit 0 for all", file=con.file)


#: A table cell: its text (one line) and its rich style ("" for none).
Cell = tuple[str, str]


def grid(con: Console, columns: Sequence[tuple[str, str]], rows: Sequence[Sequence[Cell]]) -> None:
    """A table without borders, as rich draws one (`box=None`, bold headers, two spaces
    between columns), each row on one line.

    rich lays a table out cell by cell, seconds for thousands of rows; a table
    that fits the console's width needs none of that: its lines are joined here,
    each styled cell drawn by rich once per value. One that does not fit is
    left to rich, which folds its cells.
    """
    header = [(name, "bold") for name, _ in columns]
    widths = [max(_width(row[i][0]) for row in (header, *rows)) for i in range(len(columns))]
    if sum(widths) + 2 * (len(widths) - 1) > con.width:
        _print(con, _rich_grid(columns, rows))
        return
    styled: dict[Cell, str] = {}
    right = [justify == "right" for _, justify in columns]
    lines = []
    for row in (header, *rows):
        parts = []
        for (value, style), width, on_right in zip(row, widths, right, strict=True):
            pad = " " * (width - _width(value))
            if style:
                if (value, style) not in styled:
                    styled[value, style] = _styled(con, value, style)
                value = styled[value, style]
            parts.append(pad + value if on_right else value + pad)
        lines.append("  ".join(parts).rstrip(" "))
    con.file.write("\n".join(lines) + "\n")
    con.file.flush()


def _width(text: str) -> int:
    """How many columns `text` takes at a terminal."""
    from rich.cells import cell_len

    return len(text) if text.isascii() else cell_len(text)


def _styled(con: Console, text: str, style: str) -> str:
    """`text` in `style` as `con` writes it (plain where it writes no styles)."""
    from rich.text import Text

    with con.capture() as captured:
        con.print(Text(text, style=style), end="", soft_wrap=True)
    return captured.get()


def _rich_grid(columns: Sequence[tuple[str, str]], rows: Sequence[Sequence[Cell]]) -> Table:
    from rich.table import Table
    from rich.text import Text

    table = Table(box=None, pad_edge=False, header_style="bold")
    for name, justify in columns:
        table.add_column(name, justify=justify, overflow="fold")  # type: ignore[arg-type]
    for row in rows:
        table.add_row(*(Text(value, style=style) for value, style in row))
    return table


def progress_text(progress: Progress | None, *, long: bool = False) -> str:
    """A compact progress cell: a ten-step bar and the percent, or `done/total` without one.

    `long` adds the message and when it was reported.
    """
    if progress is None:
        return "-"
    percent = progress.percent
    if percent is None:
        text = f"{progress.done:g}" + ("" if progress.total is None else f"/{progress.total:g}")
    else:
        filled = int(percent // 10)
        text = "#" * filled + "." * (10 - filled) + f" {percent:5.1f}%"
    if long:
        if progress.message:
            text += f"  {one_line(progress.message)}"
        text += f"  ({_when(progress.updated_at)})"
    return text


def _outcome(task: Task) -> Cell:
    if task.last_outcome is None:
        return ("-", "")
    value = task.last_outcome.value
    return (value, _STATE_STYLES.get(value, ""))


def upcoming_table(
    upcoming: Sequence[tuple[datetime, Task]], *, out: Console | None = None
) -> None:
    """The `next` table: due time, id, module, title, schedule."""
    from rich.table import Table
    from rich.text import Text

    table = Table(box=None, pad_edge=False, header_style="bold")
    for name in ("due", "id", "module", "title", "schedule"):
        table.add_column(name, justify="right" if name == "id" else "left", overflow="fold")
    for due, task in upcoming:
        table.add_row(
            Text(_when(due)),
            Text(str(task.id)),
            Text(task.module),
            Text(one_line(task.title)),
            Text("-" if task.recurrence is None else one_line(str(task.recurrence))),
        )
    _print(out or console(), table)


def _run_line(run: Run) -> list[Any]:
    from rich.text import Text

    outcome = run.outcome.value if run.outcome is not None else "running"
    detail = run.error or ("" if run.exit_code in (None, 0) else f"exit code {run.exit_code}")
    return [
        Text(str(run.attempt)),
        Text(_when(run.started_at)),
        Text(_when(run.ended_at)),
        Text("-" if run.elapsed is None else f"{run.elapsed:.3f}s"),
        Text(outcome, style=_STATE_STYLES.get(outcome, "")),
        Text(one_line(detail)),
    ]


def task_detail(task: Task, *, out: Console | None = None) -> None:
    """The `show` view: the task's fields, its data and result, its runs, the last output."""
    from rich.table import Table
    from rich.text import Text

    con = out or console()
    fields = Table.grid(padding=(0, 2))
    fields.add_column(style="bold", no_wrap=True)
    fields.add_column(overflow="fold")
    data = task.data_json
    if len(data) > DATA_PREVIEW:
        data = data[:DATA_PREVIEW] + f"… ({len(task.data_json)} characters)"
    rows = [
        ("id", str(task.id)),
        ("module", task.module),
        ("title", one_line(task.title)),
        ("state", task.state.value),
        ("target", f"{task.target.kind.value}: {one_line(str(task.target))}"),
        ("priority", str(task.priority)),
        ("due", _when(task.due_at)),
        ("attempts", f"{task.attempts}/{task.max_attempts}"),
        ("timeout", "-" if task.timeout is None else format_duration(task.timeout)),
        *([("schedule", one_line(str(task.recurrence)))] if task.recurrence else []),
        *([("lateness", format_duration(task.max_lateness))] if task.max_lateness else []),
        *([("key", one_line(task.key))] if task.key is not None else []),
        *([("owner", one_line(task.owner))] if task.owner is not None else []),
        *([("progress", progress_text(task.progress, long=True))] if task.progress else []),
        ("created", _when(task.created_at)),
        ("updated", _when(task.updated_at)),
        ("data", visible(data)),
        ("result", "-" if task.result_json is None else visible(task.result_json)),
    ]
    for name, value in rows:
        style = _STATE_STYLES.get(value, "") if name == "state" else ""
        fields.add_row(Text(name), Text(value, style=style))
    _print(con, fields)
    if not task.runs:
        return
    runs = Table(box=None, pad_edge=False, header_style="bold", title=None)
    for name in ("attempt", "started", "ended", "elapsed", "outcome", "detail"):
        runs.add_column(name, overflow="fold")
    for run in task.runs:
        runs.add_row(*_run_line(run))
    con.print()
    _print(con, runs)
    last = task.runs[-1]
    if last.traceback:
        con.print()
        con.print(Text(visible(last.traceback.rstrip("\n"))))
    if last.output_tail:
        con.print()
        note = " (truncated)" if last.truncated else ""
        con.print(Text(f"output of attempt {last.attempt}{note}:", style="bold"))
        con.print(Text(visible(last.output_tail.rstrip("\n"))))


# --- status ---------------------------------------------------------------------------

WATCH_EVERY = 0.5  #: Seconds between two redraws of `status --watch`.
BAR_WIDTH = 20  #: Columns of a running task's progress bar.


def status_report(status: Status, *, file: IO[str] | None = None) -> None:
    """`taskcron status` once: panels at a terminal; plain text, with no escape codes, when
    `file` is not a terminal or NO_COLOR is set."""
    target = file or sys.stdout
    is_tty = hasattr(target, "isatty") and target.isatty()
    if is_tty and not os.environ.get("NO_COLOR"):
        console(target).print(status_view(status))
        return
    con = console(target, plain=True)
    for number, (title, table) in enumerate(_status_parts(status, bars=False)):
        if number:
            line("", file=target)
        if table is None:
            line(f"{title}: none", file=target)
        else:
            line(title, file=target)
            _print(con, table)


def status_view(status: Status, *, width: int | None = None) -> RenderableType:
    """The `status` layout: a panel each for the counts by module id, the running tasks (a
    progress bar for each that reports its progress), the next due tasks and the last
    failures; `width` columns wide, or as wide as the console."""
    from rich.console import Group
    from rich.panel import Panel
    from rich.text import Text

    panels = [
        Panel(
            Text("none", style="dim") if table is None else table,
            title=Text(title, style="bold"),
            title_align="left",
            width=width,
        )
        for title, table in _status_parts(status, bars=True)
    ]
    return Group(*panels)


def watch_status(
    read: Callable[[], Status], *, every: float = WATCH_EVERY, out: Console | None = None
) -> None:
    """Draw `watch_view(read())` in place at the terminal's size, reading again every
    `every` seconds, until interrupted: Ctrl-C's KeyboardInterrupt reaches the caller once
    the last view is left on the screen."""
    from rich.live import Live

    con = out or console()

    def view() -> RenderableType:
        return watch_view(read(), width=con.size.width, height=con.size.height)

    with Live(view(), console=con, auto_refresh=False) as live:
        while True:
            time.sleep(every)
            live.update(view(), refresh=True)


def watch_view(status: Status, *, width: int, height: int) -> RenderableType:
    """The `status --watch` layout, which fits a terminal `width` by `height`: the running
    tasks first, then the counts by module id (as many module ids as fit, then how many
    more), then the next due tasks and the last failures when they fit whole. No cell
    wraps: a long one is cut with an ellipsis."""
    from rich.console import Group

    shown, more = _fit(list(status.running), height - _PANEL)
    running = _running_table(status, bars=_bars(width), rows=shown)
    parts = [_watch_panel("running", running, more, "running tasks")]
    left = height - _lines(shown, more)
    modules, more = _fit(list(status.modules), left - _PANEL)
    if left >= _lines(modules, more) and (modules or not status.modules):
        counts = _counts_table(status, rows=modules)
        parts.append(_watch_panel("tasks by module", counts, more, "module ids"))
        left -= _lines(modules, more)
    for title, tasks, table in (
        ("next due", status.next, _next_table),
        ("last failures", status.failures, _failures_table),
    ):
        if left >= _lines(tasks, 0):
            parts.append(_watch_panel(title, table(tasks, fit=True)))
            left -= _lines(tasks, 0)
    return Group(*parts)


#: The lines a panel of the watch view takes besides its rows: two borders and a header.
_PANEL = 3


def _lines(rows: Sequence[Any], more: int) -> int:
    """The lines a panel of the watch view takes with `rows`, and `more` left out."""
    if not rows and not more:
        return _PANEL  # two borders and "none"
    return _PANEL + len(rows) + (more > 0)


def _fit(rows: list[Any], room: int) -> tuple[list[Any], int]:
    """The first of `rows` that fit in `room` lines, with one line kept to say how many are
    left out when not all fit; and how many are left out."""
    if len(rows) <= max(room, 1):
        return rows, 0
    kept = max(room - 1, 0)
    return rows[:kept], len(rows) - kept


def _bars(width: int) -> int:
    """How wide a running task's progress bar is in a view `width` columns wide (0: none)."""
    return BAR_WIDTH if width >= 100 else 10 if width >= 70 else 0


def _watch_panel(title: str, table: Table, more: int = 0, noun: str = "") -> Any:
    """A part of the watch view: `table` in a panel, its text cells cut to fit (`_cut`),
    and a line for `more` `noun` left out ("none" when it has no rows)."""
    from rich.console import Group
    from rich.panel import Panel
    from rich.text import Text

    body: Any = _cut(table) if table.row_count or more else Text("none", style="dim")
    if more:
        note = Text(
            f"\u2026 and {more} more {noun}", style="dim", no_wrap=True, overflow="ellipsis"
        )
        body = Group(body, note)
    return Panel(body, title=Text(title, style="bold"), title_align="left")


def _status_parts(status: Status, *, bars: bool) -> list[tuple[str, Table | None]]:
    """Each part of the status view: its title, and its table (None when it has no rows)."""
    return [
        ("tasks by module", _counts_table(status) if status.modules else None),
        ("running", _running_table(status, bars=bars) if status.running else None),
        ("next due", _next_table(status.next) if status.next else None),
        ("last failures", _failures_table(status.failures) if status.failures else None),
    ]


#: The columns of the status tables that give up width first when a view must fit: names.
_NAMES = frozenset({"module", "title", "host", "progress"})


def _status_table(*columns: str, fit: bool = False) -> Table:
    """A borderless table; a column whose name ends in `>` (dropped) is right-aligned.
    Its cells fold where they are too long; to `fit`, see `_cut`."""
    from rich.table import Table
    from rich.text import Text

    table = Table(box=None, pad_edge=False, header_style="bold")
    for name in columns:
        right = name.endswith(">")
        header = name.rstrip(">")
        table.add_column(
            Text(header, no_wrap=True, overflow="ellipsis") if fit else header,
            justify="right" if right else "left",
            overflow="ellipsis" if fit else "fold",
            # rich narrows the columns that may wrap first: names, not numbers or times
            no_wrap=fit and header not in _NAMES,
        )
    return table


def _cut(table: Table) -> Table:
    """`table` (from `_status_table(fit=True)`) with every text cell kept on one line, cut
    with an ellipsis where its column is too narrow."""
    from rich.text import Text

    for column in table.columns:
        for cell in column.cells:
            if isinstance(cell, Text):
                cell.no_wrap, cell.overflow = True, "ellipsis"
    return table


def _counts_table(status: Status, *, rows: Sequence[str] | None = None) -> Table:
    """The counts of each module id by state. Given `rows`, only those module ids, and only
    the states some module id has tasks in, to fit."""
    from rich.text import Text

    states = list(State)
    if rows is not None:
        states = [s for s in State if any(c.get(s.value) for c in status.modules.values())]
    table = _status_table("module", *(f"{s.value}>" for s in states), fit=rows is not None)
    for module in status.modules if rows is None else rows:
        counts = status.modules[module]
        cells = [Text(module)]
        for state in states:
            count = counts.get(state.value, 0)
            style = _STATE_STYLES.get(state.value, "") if count else "dim"
            cells.append(Text(str(count), style=style))
        table.add_row(*cells)
    return table


def _running_table(
    status: Status, *, bars: bool | int, rows: Sequence[Task] | None = None
) -> Table:
    """The running tasks, with progress bars `bars` columns wide (True: `BAR_WIDTH`); only
    `rows`, cut to fit, if given."""
    from rich.text import Text

    fit = rows is not None
    table = _status_table("id>", "module", "title", "progress", "step>", "job>", "host", fit=fit)
    for task in status.running if rows is None else rows:
        run, times = task.last_run, task.elapsed(status.read_at)
        table.add_row(
            *_named(task),
            _progress_cell(task.progress, bars=BAR_WIDTH if bars is True else int(bars), fit=fit),
            *(Text("-") for _ in range(2) if times is None),
            *(Text(_elapsed(delta)) for delta in times or ()),
            Text("-" if run is None else one_line(run.host)),
        )
    return table


def _named(task: Task) -> list[Any]:
    """A task's id, module id and title: the cells that name it in every list of the status."""
    from rich.text import Text

    return [Text(str(task.id)), Text(task.module), Text(one_line(task.title))]


def _elapsed(delta: timedelta) -> str:
    """Whole seconds: `0s`, `42s`, `1h2m3s`."""
    return format_duration(timedelta(seconds=round(max(delta.total_seconds(), 0.0))))


def _progress_cell(progress: Progress | None, *, bars: int, fit: bool = False) -> Any:
    """`40% 4/10 message` (`4 done message` without a total), after a bar `bars` columns
    wide when `bars` and the progress has a total; to `fit`, the text is cut, not folded."""
    from rich.progress_bar import ProgressBar
    from rich.table import Table
    from rich.text import Text

    if progress is None:
        return Text("-")
    words = []
    if progress.percent is not None:
        words.append(f"{_number(progress.percent)}%")
    total = " done" if progress.total is None else f"/{_number(progress.total)}"
    words.append(_number(progress.done) + total)
    if progress.message:
        words.append(one_line(progress.message))
    text = Text(" ".join(words), no_wrap=fit, overflow="ellipsis" if fit else None)
    if not bars or progress.percent is None:
        return text
    cell = Table.grid(padding=(0, 1))
    cell.add_column(no_wrap=True)
    cell.add_column(no_wrap=fit, overflow="ellipsis" if fit else "fold")
    cell.add_row(ProgressBar(total=100, completed=progress.percent, width=bars), text)
    return cell


def _number(value: float) -> str:
    """`4` for 4.0, `2.5` for 2.5."""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _next_table(tasks: Sequence[Task], *, fit: bool = False) -> Table:
    from rich.text import Text

    table = _status_table("due", "id>", "module", "title", fit=fit)
    for task in tasks:
        table.add_row(Text(_when(task.due_at)), *_named(task))
    return table


def _failures_table(tasks: Sequence[Task], *, fit: bool = False) -> Table:
    from rich.text import Text

    table = _status_table("when", "id>", "module", "title", "state", "last run", fit=fit)
    for task in tasks:
        state = Text(task.state.value, style=_STATE_STYLES.get(task.state.value, ""))
        table.add_row(Text(_when(task.updated_at)), *_named(task), state, Text(*_outcome(task)))
    return table
