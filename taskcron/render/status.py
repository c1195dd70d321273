"""`taskcron status`: the panels drawn once, or redrawn in place by `--watch` to fit the
terminal, and the same parts as plain text when piped."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import IO, TYPE_CHECKING, Any

from taskcron.model import Progress, State, Task, format_duration
from taskcron.render import STATE_STYLES, console, draw, line, one_line, outcome_cell, when

if TYPE_CHECKING:
    from rich.console import Console, RenderableType
    from rich.table import Table

    from taskcron.reading import Status

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
            draw(con, table)


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
            style = STATE_STYLES.get(state.value, "") if count else "dim"
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
        if task.missed_since is None:
            table.add_row(Text(when(task.due_at)), *_named(task))
        else:  # past its missed_after with no run started
            due = Text(f"{when(task.due_at)} missed", style=STATE_STYLES["failed"])
            table.add_row(due, *_named(task))
    return table


def _failures_table(tasks: Sequence[Task], *, fit: bool = False) -> Table:
    from rich.text import Text

    table = _status_table("when", "id>", "module", "title", "state", "last run", fit=fit)
    for task in tasks:
        state = Text(task.state.value, style=STATE_STYLES.get(task.state.value, ""))
        table.add_row(Text(when(task.updated_at)), *_named(task), state, Text(*outcome_cell(task)))
    return table
