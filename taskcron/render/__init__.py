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
import shlex
import sys
import traceback
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from taskcron.model import Outcome, Progress, Run, State, Task, format_duration

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

    from taskcron.alerts import Delivery
    from taskcron.cronjobs import CronEdit
    from taskcron.doctor import Check
    from taskcron.lifecycle import TickResult
    from taskcron.maintenance import InitResult, MigrateResult
    from taskcron.store import Recovered

PROG = "taskcron"
DATA_PREVIEW = 2000  #: Characters of a task's data that `show` prints.

STATE_STYLES = {
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


def pruned(tasks: int, runs: int, files: int, records: int | None, *, dry_run: bool) -> str:
    """`removed 1 task, 40 runs and 2 log files` (`would remove ...` on a dry run), with
    the log records when the store keeps them."""
    counts = [count(tasks, "task"), count(runs, "run"), count(files, "log file")]
    if records is not None:
        counts.append(count(records, "log record"))
    verb = "would remove" if dry_run else "removed"
    return f"{verb} {', '.join(counts[:-1])} and {counts[-1]}"


def count(number: int, noun: str) -> str:
    """`1 task`, `2 tasks`: a number and its noun, plural unless it is one."""
    return f"{number} {noun}{'s' * (number != 1)}"


def warning(message: str) -> None:
    """Print `taskcron: warning: <message>` on stderr."""
    sys.stderr.write(f"{PROG}: warning: {one_line(message)}\n")
    sys.stderr.flush()


def notice(message: str) -> None:
    """Print `taskcron: <message>` on stderr: news that is not a warning (`the store is
    reachable again, after 3.2s`)."""
    sys.stderr.write(f"{PROG}: {one_line(message)}\n")
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


def alert_answers(answers: Sequence[Delivery], *, file: IO[str] | None = None) -> None:
    """One line per channel: `ok` or `FAILED`, the rule, the channel and what it answered."""
    rule_width = max((len(a.rule) for a in answers), default=0)
    channel_width = max((len(a.channel) for a in answers), default=0)
    for answer in answers:
        status = "ok" if answer.ok else "FAILED"
        line(
            f"{status:<7}{answer.rule:<{rule_width}}  {answer.channel:<{channel_width}}  "
            f"{one_line(answer.detail)} ({answer.elapsed:.2f}s)",
            file=file,
        )


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


def draw(con: Console, renderable: Any) -> None:
    """Print without the padding rich leaves at the end of table lines."""
    with con.capture() as captured:
        con.print(renderable)
    text = "\n".join(part.rstrip(" ") for part in captured.get().split("\n"))
    con.file.write(text if text.endswith("\n") else text + "\n")
    con.file.flush()


def when(moment: datetime | None) -> str:
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
            state_cell(task),
            (str(task.priority), ""),
            (when(task.due_at), ""),
            (f"{task.attempts}/{task.max_attempts}", ""),
        ]
        if recurring:
            cells.append(("-" if task.recurrence is None else one_line(str(task.recurrence)), ""))
        if last:
            cells.append(outcome_cell(task))
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
        draw(con, _rich_grid(columns, rows))
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
        text += f"  ({when(progress.updated_at)})"
    return text


def outcome_cell(task: Task) -> Cell:
    if task.last_outcome is None:
        return ("-", "")
    value = task.last_outcome.value
    return (value, STATE_STYLES.get(value, ""))


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
            Text(when(due)),
            Text(str(task.id)),
            Text(task.module),
            Text(one_line(task.title)),
            Text("-" if task.recurrence is None else one_line(str(task.recurrence))),
        )
    draw(out or console(), table)


def _run_line(run: Run) -> list[Any]:
    from rich.text import Text

    outcome = run.outcome.value if run.outcome is not None else "running"
    detail = run.error or ("" if run.exit_code in (None, 0) else f"exit code {run.exit_code}")
    return [
        Text(str(run.attempt)),
        Text(when(run.started_at)),
        Text(when(run.ended_at)),
        Text("-" if run.elapsed is None else f"{run.elapsed:.3f}s"),
        Text(outcome, style=STATE_STYLES.get(outcome, "")),
        Text(one_line(detail)),
    ]


def failing(task: Task) -> bool:
    """Whether a task in line fails still (a failed one says so by its state)."""
    return task.failing_since is not None and task.state is not State.FAILED


def state_cell(task: Task) -> Cell:
    """A task's state in a table: a missed one says so, a failing one too."""
    style = STATE_STYLES.get(task.state.value, "")
    if task.missed_since is not None:
        return f"{task.state.value} (missed)", STATE_STYLES.get("failed", style)
    if failing(task) and task.state is State.QUEUED:
        return f"{task.state.value} (failing)", STATE_STYLES.get("failed", style)
    return task.state.value, style


def missed_text(task: Task) -> str:
    """A missed task's line: the due time it missed, and the fire times missed by now."""
    missed = task.missed_json() or {}
    since = task.missed_since or task.due_at
    return f"since {when(since)}: {missed.get('fire_times', 1)} fire time(s) without a run"


def runs_counted(task: Task) -> str:
    """`1,234 in all: 1,200 done, 34 failed (100 kept)`: a task's runs counted by outcome,
    trimmed ones too."""
    counted = dict(task.outcomes or ())
    parts = ", ".join(f"{n:,} {outcome}" for outcome, n in counted.items())
    kept = "" if task.runs_kept is None else f" ({task.runs_kept:,} kept)"
    return f"{sum(counted.values()):,} in all: {parts}{kept}"


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
        ("due", when(task.due_at)),
        ("attempts", f"{task.attempts}/{task.max_attempts}"),
        ("timeout", "-" if task.timeout is None else format_duration(task.timeout)),
        *([("schedule", one_line(str(task.recurrence)))] if task.recurrence else []),
        *([("lateness", format_duration(task.max_lateness))] if task.max_lateness else []),
        *([("missed after", format_duration(task.missed_after))] if task.missed_after else []),
        *([("missed", missed_text(task))] if task.missed_since is not None else []),
        *([("failing since", when(task.failing_since))] if failing(task) else []),
        *([("key", one_line(task.key))] if task.key is not None else []),
        *([("owner", one_line(task.owner))] if task.owner is not None else []),
        *([("runs", runs_counted(task))] if task.outcomes else []),
        *([("progress", progress_text(task.progress, long=True))] if task.progress else []),
        ("created", when(task.created_at)),
        ("updated", when(task.updated_at)),
        ("data", visible(data)),
        ("result", "-" if task.result_json is None else visible(task.result_json)),
    ]
    for name, value in rows:
        style = STATE_STYLES.get(value, "") if name == "state" else ""
        fields.add_row(Text(name), Text(value, style=style))
    draw(con, fields)
    if not task.runs:
        return
    runs = Table(box=None, pad_edge=False, header_style="bold", title=None)
    for name in ("attempt", "started", "ended", "elapsed", "outcome", "detail"):
        runs.add_column(name, overflow="fold")
    for run in task.runs:
        runs.add_row(*_run_line(run))
    con.print()
    draw(con, runs)
    if task.runs_kept is not None and task.runs_kept > len(task.runs):
        con.print(
            Text(
                f"the newest {count(len(task.runs), 'run')} of {task.runs_kept} kept;"
                " --runs all shows every one",
                style="dim",
            )
        )
    last = task.runs[-1]
    if last.traceback:
        con.print()
        con.print(Text(visible(last.traceback.rstrip("\n"))))
    if last.output_tail:
        con.print()
        note = " (truncated)" if last.truncated else ""
        con.print(Text(f"output of attempt {last.attempt}{note}:", style="bold"))
        con.print(Text(visible(last.output_tail.rstrip("\n"))))


# --- sentences ------------------------------------------------------------------------


def _utc(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _named(task: Task) -> str:
    return f"task {task.id} ({task.module})"


def initialized(result: InitResult, *, store_configured: bool) -> list[str]:
    """What `init` says: the config file it wrote or kept, the home, a configured store."""
    said = []
    if result.written is not None:
        said.append(f"wrote {result.written}")
    elif result.config is not None:
        said.append(f"kept {result.config}")
    said.append(f"home {result.home}")
    if store_configured:
        said.append(f"store {result.store}")
    return said


def acted(task: Task, done: str) -> str:
    """`task 4 paused`: what an action did (`done` is the action's)."""
    return f"task {task.id} {done}"


def cancelled_owned(tasks: Sequence[Task], owner: str) -> str:
    """`cancelled 2 tasks of ann`."""
    return f"cancelled {count(len(tasks), 'task')} of {owner}"


def tick_started(task: Task) -> str:
    """`tick -v`: `running task 4 (app.mail): Send the welcome mail`."""
    return f"running {_named(task)}: {one_line(task.title)}"


def recovered(item: Recovered) -> str:
    """`tick -v`: a dead run the tick recorded as interrupted, and why."""
    return f"recovered {_named(item.task)}: {item.run.error}"


def skipped(task: Task) -> str:
    """`tick -v`: a task passed over, being later than its max lateness, and where it went."""
    then = f"next due {task.due_at:%Y-%m-%d %H:%M:%S} UTC" if task.state is State.QUEUED else ""
    return f"skipped {_named(task)}: later than its max lateness; " + (
        then or f"now {task.state.value}"
    )


def tick_summary(result: TickResult) -> str:
    """`tick -v`: `idle: nothing due`, `busy: ...`, or `ran task 4 (app.mail): done in 0.012s`."""
    task = result.task
    if result.outcome == "idle":
        return "idle: nothing due"
    if result.outcome == "busy":
        if task is None:  # a drain's or a pool's: it names no task
            return "busy: another tick or pool serves this scope"
        return f"busy: {_named(task)} is running"
    assert task is not None, "a run names its task"
    run = task.last_run
    elapsed = "" if run is None or run.elapsed is None else f" in {run.elapsed:.3f}s"
    outcome = "?" if run is None or run.outcome is None else run.outcome.value
    return f"ran {_named(task)}: {outcome}{elapsed}"


def tick_failure(result: TickResult) -> str | None:
    """One line saying how a tick's run failed and what happens next; None when it did not.

    `task 4 (app.err) failed on attempt 1 of 2, retrying at 2026-11-29
    19:10:05 UTC: ValueError: kaboom`; a one-off task with one attempt says
    only `task 4 (app.err) failed: ValueError: kaboom`.
    """
    if not result.failed:
        return None
    assert result.task is not None
    task, run = result.task, result.task.last_run
    name = _named(task)
    if run is None or run.outcome is None:
        return f"{name} failed: no run recorded"
    why = run.error or run.outcome.value
    if task.max_attempts == 1 and task.recurrence is None:
        if run.outcome is Outcome.TIMEOUT:
            return f"{name} {why}"
        return f"{name} {run.outcome.value}: {why}"
    verb = "was interrupted" if run.outcome is Outcome.INTERRUPTED else "failed"
    then = ""
    if task.state is State.QUEUED:
        again = task.recurrence is None or run.attempt < task.max_attempts
        then = f", {'retrying at' if again else 'next run at'} {_utc(task.due_at)}"
    return f"{name} {verb} on attempt {run.attempt} of {task.max_attempts}{then}: {why}"


def migrated(result: MigrateResult, config: Path | None) -> list[str]:
    """What `migrate-store` says: what it copied (and the log records it left, moving to a
    store without a log table), and the config line to use the copy."""
    copied = [count(result.tasks, "task"), count(result.runs, "run")]
    if result.records is not None:
        copied.append(count(result.records, "log record"))
    said = [
        f"copied {', '.join(copied[:-1])} and {copied[-1]} from {result.source} to {result.target}"
    ]
    if result.records_left:
        said.append(
            f"left {count(result.records_left, 'log record')} in the log table of {result.source}:"
            " a SQLite store keeps none (read them with: taskcron --store"
            f" {shlex.quote(result.source)} log)"
        )
    said += [
        f"to use it, set in {config or 'a config file'} (or give --store or TASKCRON_STORE):",
        result.config_line,
    ]
    if result.password_left_out:
        said.append("(the password is left out: keep it in ~/.pgpass or PGPASSWORD)")
    return said


def dashboard_open(url: str, token: str | None) -> str:
    """Where to open the dashboard: with a generated `token` in the link, else by login."""
    if token is not None:
        return f"taskcron web: open {url}login?token={token}"
    return f"taskcron web: open {url} and log in with the configured token"


def cron_installed(edit: CronEdit) -> str:
    """`installed in your crontab (replacing the previous one)`."""
    replaced = " (replacing the previous one)" if edit.removed else ""
    return f"installed in {edit.where}{replaced}"


def cron_uninstalled(edit: CronEdit, home: Path) -> str:
    """What `generate-cron --uninstall` did, or that there was nothing to take out."""
    if edit.removed:
        return f"removed the taskcron line for home {home} from {edit.where}"
    return (
        f"nothing to uninstall: {edit.where} has no taskcron line for home {home} and {edit.scope}"
    )
