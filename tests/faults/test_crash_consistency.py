"""Crash consistency: commands killed at random points, writes that fail, a full disk.

Five operations run as the installed `taskcron` script on a real SQLite home,
each from a fresh copy of the same home (150 finished tasks a month old, a
failed one, recent ones, a due one, later ones):

- `schedule`: **before** is the store as it was; **after** is the same store
  with one more task, queued, exactly as scheduled. Nothing else may change.
- `tick` (scoped to the one due task): **before**; **claimed**: the task is
  running under a lease with one run open (not ended) — a tick killed after
  its claim leaves this, and it is legal: the next tick finds the lease's
  process dead and records the run `interrupted`, which is checked each time
  it happens; **after**: the task is done and its run ended `done`. Nothing
  else may change.
- `retry` of a failed task: **before**, or **after**: that task queued,
  attempts reset, every other field and row as it was.
- `prune --older-than 1d`: **before**, or **after**: exactly the finished
  tasks last updated before the cutoff gone with all their runs, nothing else.
- the migration (`tick --json` on a store of schema version 1, 500 tasks with
  runs, in a scope with nothing to run; `--json`, because a plain idle tick
  first glances at the store before the full command opens it, and the aim
  below needs the one opening that migrates):
  **before**: version 1 with every table, index and row as it was (the switch
  of the file to WAL mode, which SQLite does outside the migration, is not
  part of the state); **after**: the current version with the schema of a new
  store and every row kept. Opening the store again works either way.

"The store" is every row of every table (tasks, runs, pools, the per-state
counts and AUTOINCREMENT's counters), the schema and the version. After each
run: the state is one of those above, never in between; the counts kept by
triggers agree with the tasks; SQLite's integrity check passes through
`SqliteStore.integrity()`; and every line of every log file is a whole JSON
record (or an empty line, where a write cut short was blanked out): no torn
record.

Kills: SIGKILL to the command's process group after a delay drawn uniformly
from [0, 1.2 x the command's unkilled duration] for half of them; for the
other half (most of a command's time is Python starting), from [0, 1.2 x the
time unkilled runs hold the store open], counted from the moment the command
is seen opening the store. Just before the kill the process is
stopped, and its open files tell whether the store was open: the figures say
how many kills landed before the store was opened, while it was open, after
it was closed, and after the command had exited.

Write failures: the command runs under a file size limit (RLIMIT_FSIZE;
Python ignores SIGXFSZ, so the write that would cross the limit fails with
EFBIG, and SQLite reports an I/O error). The limit is drawn across the bytes
the operation writes, or just past the end of a log padded to a drawn size
(so that a log record is cut short), with or without another connection
holding the store open (which keeps SQLite's shared memory and WAL in place,
so that their first writes can fail too). A command that fails exits 1 with
the store before (or claimed) and ends with one line, `taskcron: error: store
PATH: disk I/O error`; one that succeeds exits 0 with the store after. Either
may first print a `taskcron: warning:` line for each log record, lease or
process it could not write; nothing else, and never a traceback.

A full disk: a 512 KiB tmpfs in a private mount namespace (`unshare -m` as
root, `unshare -rm` otherwise), filled to 0, 16 or 40 KiB of free space:
`schedule` prints one line naming the store and the full filesystem and exits
1, and the store is as it was.

By default 150 kills (30 an operation) and 50 write failures (10 an
operation); with TASKCRON_STRESS=1, 1,000 kills and 500 write failures.
"""

from __future__ import annotations

import json
import os
import random
import re
import resource
import shutil
import signal
import sqlite3
import statistics
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from taskcron import TaskCron
from taskcron.config import Config
from taskcron.model import Scope
from taskcron.store.sqlite import APPLICATION_ID, MIGRATIONS, SCHEMA_VERSION, SqliteStore
from tests.conftest import SERIAL, FakeClock, clean_env, script

pytestmark = SERIAL

STRESS = os.environ.get("TASKCRON_STRESS") == "1"
KILLS = 200 if STRESS else 30  #: An operation; five operations.
WRITE_FAILURES = 100 if STRESS else 10  #: An operation.
#: Rows of the version 1 store that the migration carries over.
OLD_STORE_TASKS = 500
#: The key of each table's rows.
KEYS = {
    "tasks": ("id",),
    "runs": ("id",),
    "pools": ("id",),
    "task_counts": ("module", "state"),
    "task_outcomes": ("task_id", "outcome"),
    "outcome_totals": ("module", "outcome"),
    "outcome_minutes": ("minute", "module", "outcome"),
    "sqlite_sequence": ("name",),
}
#: The tables that count the runs as they end (in the finish's transaction).
COUNTED = {"task_outcomes", "outcome_totals", "outcome_minutes"}

Rows = dict[tuple[Any, ...], dict[str, Any]]


# --- the store's state --------------------------------------------------------


@dataclass(frozen=True)
class Snapshot:
    """Everything a SQLite store holds: version, schema, and every row of every table."""

    version: int
    schema: dict[str, tuple[str, str, str | None]]
    tables: dict[str, Rows]


def snapshot(path: Path) -> Snapshot:
    """The store at `path` as one read transaction sees it (recovering a WAL left behind)."""
    db = sqlite3.connect(f"{path.as_uri()}?mode=rw", uri=True, isolation_level=None)
    db.row_factory = sqlite3.Row
    try:
        db.execute("BEGIN")
        version = db.execute("PRAGMA user_version").fetchone()[0]
        schema = {
            r["name"]: (r["type"], r["tbl_name"], r["sql"])
            for r in db.execute("SELECT type, name, tbl_name, sql FROM sqlite_master")
        }
        tables: dict[str, Rows] = {}
        for name, (kind, _, _) in schema.items():
            if kind == "table":
                rows = [dict(r) for r in db.execute(f'SELECT * FROM "{name}"')]
                tables[name] = {tuple(r[k] for k in KEYS[name]): r for r in rows}
        db.execute("COMMIT")
    finally:
        db.close()
    return Snapshot(version=version, schema=schema, tables=tables)


@dataclass
class Diff:
    """What changed in one table: rows added, removed, and changed (old, new)."""

    added: Rows = field(default_factory=dict)
    removed: Rows = field(default_factory=dict)
    changed: dict[tuple[Any, ...], tuple[dict[str, Any], dict[str, Any]]] = field(
        default_factory=dict
    )


def diff(before: Snapshot, now: Snapshot) -> dict[str, Diff]:
    """The tables whose rows differ, and how (both stores of one schema)."""
    assert (now.version, now.schema) == (before.version, before.schema), "schema changed"
    found: dict[str, Diff] = {}
    for name, old in before.tables.items():
        new = now.tables[name]
        d = Diff(
            added={k: r for k, r in new.items() if k not in old},
            removed={k: r for k, r in old.items() if k not in new},
            changed={k: (r, new[k]) for k, r in old.items() if k in new and new[k] != r},
        )
        if d.added or d.removed or d.changed:
            found[name] = d
    return found


def counts_agree(state: Snapshot) -> None:
    """The per-module, per-state counts the triggers keep match the tasks."""
    if "task_counts" not in state.tables:
        return  # a store older than the counts
    kept = {k: r["tasks"] for k, r in state.tables["task_counts"].items()}
    real = Counter((r["module"], r["state"]) for r in state.tables["tasks"].values())
    assert kept == dict(real), (kept, real)


def only(d: dict[Any, Any]) -> Any:
    assert len(d) == 1, d
    return next(iter(d.values()))


# --- the operations -----------------------------------------------------------


@dataclass(frozen=True)
class Operation:
    """A command, the home it starts from, and what its end states may be."""

    name: str
    args: tuple[str, ...]
    template: Path
    #: The state now, given the state before: "before", "after" or "claimed"; fails otherwise.
    classify: Callable[[Snapshot, Snapshot], str]


def classify_schedule(before: Snapshot, now: Snapshot) -> str:
    changes = diff(before, now)
    if not changes:
        return "before"
    assert set(changes) <= {"tasks", "task_counts", "sqlite_sequence"}, changes
    tasks = changes["tasks"]
    assert not tasks.removed and not tasks.changed, tasks
    new = only(tasks.added)
    assert (new["module"], new["title"], new["state"], new["attempts"]) == (
        "crash.new",
        "new",
        "queued",
        0,
    ), new
    assert json.loads(new["target"]) == {"kind": "command", "value": ["true"]}, new
    assert now.tables["sqlite_sequence"][("tasks",)]["seq"] == new["id"]
    return "after"


def classify_tick(task_id: int) -> Callable[[Snapshot, Snapshot], str]:
    def classify(before: Snapshot, now: Snapshot) -> str:
        changes = diff(before, now)
        if not changes:
            return "before"
        allowed = {"tasks", "runs", "task_counts", "sqlite_sequence", *COUNTED}
        assert set(changes) <= allowed, changes
        tasks, runs = changes["tasks"], changes["runs"]
        assert not tasks.added and not tasks.removed and set(tasks.changed) == {(task_id,)}
        assert not runs.removed and not runs.changed, runs
        run = only(runs.added)
        _, task = tasks.changed[(task_id,)]
        assert (run["task_id"], run["attempt"], task["attempts"]) == (task_id, 1, 1), run
        if task["state"] == "running":
            assert task["run_id"] == run["id"] and task["lease_pid"] is not None, task
            assert (run["ended_at"], run["outcome"]) == (None, None), run
            assert not set(changes) & COUNTED, changes  # counted when it ends, not before
            return "claimed"
        assert task["state"] == "done", task
        assert run["outcome"] == "done" and run["ended_at"] is not None, run
        counted = now.tables["task_outcomes"][(task_id, "done")]["runs"]
        assert counted == 1, counted  # counted in the finish's own transaction
        return "after"

    return classify


def classify_retry(task_id: int) -> Callable[[Snapshot, Snapshot], str]:
    def classify(before: Snapshot, now: Snapshot) -> str:
        changes = diff(before, now)
        if not changes:
            return "before"
        assert set(changes) <= {"tasks", "task_counts"}, changes
        tasks = changes["tasks"]
        assert not tasks.added and not tasks.removed and set(tasks.changed) == {(task_id,)}
        old, new = tasks.changed[(task_id,)]
        assert (old["state"], new["state"], new["attempts"]) == ("failed", "queued", 0), new
        moved = {"state", "attempts", "due_at", "updated_at"}
        assert {k: v for k, v in old.items() if k not in moved} == {
            k: v for k, v in new.items() if k not in moved
        }
        return "after"

    return classify


def classify_prune(cutoff: datetime) -> Callable[[Snapshot, Snapshot], str]:
    micros = int(cutoff.timestamp() * 1_000_000)

    def classify(before: Snapshot, now: Snapshot) -> str:
        changes = diff(before, now)
        if not changes:
            return "before"
        assert set(changes) <= {"tasks", "runs", "task_counts", "task_outcomes"}, changes
        old = {
            k
            for k, r in before.tables["tasks"].items()
            if r["state"] in ("done", "failed", "cancelled") and r["updated_at"] < micros
        }
        tasks, runs = changes["tasks"], changes["runs"]
        assert not tasks.added and not tasks.changed and set(tasks.removed) == old
        their_runs = {k for k, r in before.tables["runs"].items() if (r["task_id"],) in old}
        assert not runs.added and not runs.changed and set(runs.removed) == their_runs
        return "after"

    return classify


def classify_migration(current: Snapshot) -> Callable[[Snapshot, Snapshot], str]:
    """`current`: a new store of the current version, for its schema."""

    def classify(before: Snapshot, now: Snapshot) -> str:
        if now == before:
            return "before"
        assert now.version == SCHEMA_VERSION, f"version {now.version}"
        assert now.schema == current.schema, "schema differs from a new store's"
        for name, rows in before.tables.items():
            kept = now.tables[name]
            assert set(kept) == set(rows), name
            for key, row in rows.items():
                assert {k: kept[key][k] for k in row} == row, (name, key)
        assert not now.tables["pools"]
        return "after"

    return classify


# --- the homes ----------------------------------------------------------------


def build_home(home: Path) -> dict[str, int]:
    """The home every v7 operation starts from; returns the ids the operations act on."""
    now = datetime.now(timezone.utc)
    clock = FakeClock(now - timedelta(days=30))
    with TaskCron(config=Config(home=home), clock=clock) as tc:
        for n in range(150):
            tc.schedule("crash.old", command=["true"] if n % 5 else ["false"], title=f"old {n}")
        while tc.tick(modules=["crash.old"]).outcome != "idle":
            pass
        failed = tc.schedule("crash.failed", command=["false"], title="to retry")
        tc.tick(modules=["crash.failed"])
        clock.now = now - timedelta(hours=1)
        for n in range(10):
            tc.schedule("crash.recent", command=["true"], title=f"recent {n}")
        while tc.tick(modules=["crash.recent"]).outcome != "idle":
            pass
        due = tc.schedule("crash.tick", command=["true"], title="to tick", max_attempts=2)
        for n in range(10):
            tc.schedule("crash.later", command=["true"], title=f"later {n}", delay="1d")
        tc.pause(tc.schedule("crash.later", command=["true"], title="paused", delay="1d").id)
        assert tc.get(failed.id).state.value == "failed"
    return {"failed": failed.id, "due": due.id}


def build_old_store(home: Path) -> None:
    """A home whose store has schema version 1: tasks and runs written as version 1 wrote them."""
    home.mkdir(mode=0o700, parents=True)
    db = sqlite3.connect(home / "tasks.db", isolation_level=None)
    db.executescript(MIGRATIONS[0])
    target = json.dumps({"kind": "command", "value": ["true"]})
    db.execute("BEGIN")
    for n in range(1, OLD_STORE_TASKS + 1):
        state = ("done", "failed", "queued")[n % 3]
        db.execute(
            "INSERT INTO tasks (module, title, target, data, priority, state, due_at, attempts,"
            " max_attempts, created_at, updated_at) VALUES (?, ?, ?, 'null', 0, ?, ?, ?, 1, ?, ?)",
            (f"old.m{n % 7}", f"old {n}", target, state, n, int(state != "queued"), n, n),
        )
        if state != "queued":
            db.execute(
                "INSERT INTO runs (task_id, attempt, started_at, ended_at, elapsed, outcome,"
                " exit_code, host, pid) VALUES (?, 1, ?, ?, 0.5, ?, ?, 'old', 1)",
                (n, n, n + 1, state, int(state == "failed")),
            )
    db.execute("COMMIT")
    db.executescript(f"PRAGMA application_id = {APPLICATION_ID}; PRAGMA user_version = 1")
    db.close()


@pytest.fixture(scope="module")
def operations(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Operation]:
    base = tmp_path_factory.mktemp("templates")
    ids = build_home(base / "home")
    build_old_store(base / "old" / "home")
    new = base / "new" / "tasks.db"
    new.parent.mkdir()
    SqliteStore(new).close()
    cutoff = datetime.now(timezone.utc) - timedelta(days=1)
    home = base / "home"
    old = base / "old" / "home"
    return {
        op.name: op
        for op in (
            Operation(
                "schedule",
                ("schedule", "crash.new", "--title", "new", "--", "true"),
                home,
                classify_schedule,
            ),
            Operation("tick", ("tick", "--module", "crash.tick"), home, classify_tick(ids["due"])),
            Operation("retry", ("retry", str(ids["failed"])), home, classify_retry(ids["failed"])),
            Operation("prune", ("prune", "--older-than", "1d"), home, classify_prune(cutoff)),
            Operation(
                "migration",
                ("tick", "--json", "--module", "crash.none"),
                old,
                classify_migration(snapshot(new)),
            ),
        )
    }


def fresh(op: Operation, work: Path) -> Path:
    """A copy of the operation's home in `work` (what was there goes)."""
    if work.exists():
        shutil.rmtree(work)
    shutil.copytree(op.template, work / "home")
    return work / "home"


def start(op: Operation, home: Path, **kwargs: Any) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [script(), *op.args],
        cwd=home.parent,
        env=clean_env(TASKCRON_HOME=str(home)),
        start_new_session=True,
        text=True,
        **kwargs,
    )


# --- what is checked after each run ---------------------------------------------


@dataclass
class Tally:
    """What one operation's runs ended in."""

    states: Counter[str] = field(default_factory=Counter)
    landed: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    records: int = 0
    blanked: int = 0
    torn: int = 0
    recovered: int = 0


def log_check(home: Path, tally: Tally) -> None:
    """Every line of every log file is a whole JSON record, or empty (a blanked write)."""
    for path in sorted((home / "log").glob("taskcron.jsonl*")):
        lines = path.read_bytes().split(b"\n")
        if lines.pop():
            tally.torn += 1  # a last line without its newline
        for line in lines:
            if not line.strip():
                tally.blanked += 1
                continue
            try:
                parsed = json.loads(line)
            except ValueError:
                parsed = None
            if isinstance(parsed, dict):
                tally.records += 1
            else:
                tally.torn += 1


def check_after(op: Operation, home: Path, before: Snapshot, tally: Tally) -> str:
    """The store is in one of the operation's states and sound; the log is whole."""
    db = home / "tasks.db"
    now = snapshot(db)
    state = op.classify(before, now)
    counts_agree(now)
    with SqliteStore(db, create=False) as store:  # a version 1 store is migrated here
        assert store.integrity() == []
        assert sum(sum(by.values()) for by in store.counts(Scope()).values()) == len(
            now.tables["tasks"]
        )
    log_check(home, tally)
    if state == "claimed":
        recover(op, home, now, tally)
    tally.states[state] += 1
    return state


def recover(op: Operation, home: Path, claimed: Snapshot, tally: Tally) -> None:
    """A tick after a claimed run's process died records the run interrupted."""
    (task_id,) = (k for k, r in claimed.tables["tasks"].items() if r["state"] == "running")
    run_id = claimed.tables["tasks"][task_id]["run_id"]
    done = subprocess.run(
        [script(), *op.args],
        cwd=home.parent,
        env=clean_env(TASKCRON_HOME=str(home)),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode in (0, 1), done.stderr
    after = snapshot(home / "tasks.db")
    assert after.tables["runs"][(run_id,)]["outcome"] == "interrupted"
    assert after.tables["tasks"][task_id]["state"] != "running" or (
        after.tables["tasks"][task_id]["run_id"] != run_id
    )
    counts_agree(after)
    with SqliteStore(home / "tasks.db", create=False) as store:
        assert store.integrity() == []
    log_check(home, Tally())
    tally.recovered += 1


def print_figures(kind: str, op: Operation, runs: int, tally: Tally) -> None:
    states = ", ".join(f"{n} {s}" for s, n in sorted(tally.states.items()))
    extra = [f"{n} {s}" for s, n in sorted({**tally.landed, **tally.outcomes}.items())]
    print(
        f"\ncrash consistency, {kind}, {op.name}: {runs} runs; {'; '.join(extra)};"
        f" states seen: {states}; {tally.recovered} claimed runs recovered as interrupted;"
        f" log: {tally.records} records read, {tally.blanked} blanked writes,"
        f" {tally.torn} torn records"
    )


# --- kills ---------------------------------------------------------------------


def holds(pid: int, path: Path) -> bool:
    """Whether process `pid` has `path` open."""
    target = path.resolve()
    try:
        fds = list(Path(f"/proc/{pid}/fd").iterdir())
    except FileNotFoundError:
        return False
    for fd in fds:
        try:
            if fd.readlink() == target:
                return True
        except FileNotFoundError:
            continue
    return False


def timing(op: Operation, work: Path) -> tuple[float, float]:
    """The median wall time of three unkilled runs, and the median of five more of the
    longest stretch each was seen holding the store open (polling its open files; a
    glance at the file before SQLite opens it is too short to count)."""
    times, spans = [], []
    db = work / "home" / "tasks.db"
    for _ in range(3):
        home = fresh(op, work)
        began = time.monotonic()
        proc = start(op, home, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        assert proc.wait(timeout=60) == 0
        times.append(time.monotonic() - began)
    for _ in range(5):
        home = fresh(op, work)
        proc = start(op, home, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        longest, opened, deadline = 0.0, None, time.monotonic() + 60
        while proc.poll() is None:
            now = time.monotonic()
            assert now < deadline, "an unkilled run took over a minute"
            if holds(proc.pid, db):
                opened = now if opened is None else opened
                longest = max(longest, now - opened)
            else:
                opened = None
        assert proc.wait(timeout=60) == 0
        spans.append(longest)
    return statistics.median(times), statistics.median(spans)


def kill_at(op: Operation, home: Path, delay: float, *, after_open: bool = False) -> str:
    """Start the command and SIGKILL its process group `delay` seconds after it started
    (`after_open`: after it was seen opening the store); say where the kill landed."""
    proc = start(op, home, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if after_open:
        deadline = time.monotonic() + 60
        while proc.poll() is None and not holds(proc.pid, home / "tasks.db"):
            assert time.monotonic() < deadline, "the command never opened the store"
    try:
        proc.wait(timeout=delay)
    except subprocess.TimeoutExpired:
        pass
    else:
        return "exited before the kill"
    try:
        os.killpg(proc.pid, signal.SIGSTOP)
        store_open = holds(proc.pid, home / "tasks.db")
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        store_open = False
    if proc.wait(timeout=30) != -signal.SIGKILL:
        return "exited before the kill"
    return "killed with the store open" if store_open else "killed with the store closed"


@pytest.mark.parametrize("name", ["schedule", "tick", "retry", "prune", "migration"])
def test_a_killed_command_leaves_the_store_before_or_after_and_no_torn_record(
    name: str, operations: dict[str, Operation], tmp_path: Path
) -> None:
    op = operations[name]
    rng = random.Random(f"kill {name}")
    before = snapshot(op.template / "tasks.db")
    typical, span = timing(op, tmp_path / "work")
    tally = Tally()

    def kill(delay: float, *, after_open: bool) -> None:
        home = fresh(op, tmp_path / "work")
        landed = kill_at(op, home, delay, after_open=after_open)
        state = check_after(op, home, before, tally)
        if landed == "killed with the store closed":
            landed += " (before it opened)" if state == "before" else " (after it closed)"
        tally.landed[landed] += 1

    for n in range(KILLS):
        # Half the kills anywhere in a run, half while the store is open.
        if n % 2:
            kill(rng.uniform(0, 1.2 * typical), after_open=False)
        else:
            kill(rng.uniform(0, 1.2 * span), after_open=True)
    # On a loaded machine the store's few milliseconds can slip past every aimed kill:
    # aim again, at once, until one lands there (bounded), so that the case is tried.
    extra = 0
    while not tally.landed["killed with the store open"] and extra < KILLS:
        extra += 1
        kill(0.0, after_open=True)
    print_figures(
        f"SIGKILL {1.2 * typical:.3f} s at most into a run or {1.2 * span:.3f} s into the store"
        + (f", {extra} more aimed at once" if extra else ""),
        op,
        KILLS + extra,
        tally,
    )
    assert tally.torn == 0
    assert tally.landed["killed with the store open"] > 0


# --- write failures -------------------------------------------------------------

#: A whole record, to pad a log with.
PAD = json.dumps({"ts": "2026-01-05T12:00:00.000+00:00", "level": "info", "event": "pad"})


#: What a command says of a write that failed but did not stop it.
WARNING = re.compile(
    r"taskcron: warning: (cannot write to the log store \S+: \[Errno 27\] File too large"
    r"|task \d+: cannot (record its process|renew its lease|store its progress):"
    r" store \S+: disk I/O error)"
)


def pad_log(home: Path, size: int) -> None:
    """Make the log one file of whole records, about `size` bytes."""
    log = home / "log"
    shutil.rmtree(log, ignore_errors=True)
    log.mkdir(mode=0o700)
    line = PAD.encode() + b"\n"
    (log / "taskcron.jsonl").write_bytes(line * (size // len(line)))


def limited(limit: int) -> Callable[[], None]:
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


@pytest.mark.parametrize("name", ["schedule", "tick", "retry", "prune", "migration"])
def test_a_write_that_fails_is_one_line_and_leaves_the_store_before_or_after(
    name: str, operations: dict[str, Operation], tmp_path: Path
) -> None:
    op = operations[name]
    rng = random.Random(f"write {name}")
    before = snapshot(op.template / "tasks.db")
    top = (op.template / "tasks.db").stat().st_size * 5 // 4 + 64 * 1024
    tally = Tally()
    for n in range(WRITE_FAILURES):
        home = fresh(op, tmp_path / "work")
        db, log = home / "tasks.db", home / "log"
        if n % 2:
            pad_log(home, rng.randint(0, top))
            limit, kind = rng.randint(0, top), "a limit anywhere"
        else:
            size = rng.randint(40 * 1024, top)
            pad_log(home, size)
            limit, kind = (log / "taskcron.jsonl").stat().st_size + rng.randint(1, 299), "log end"
        bystander = None
        if rng.random() < 0.5:
            # Another connection keeps the WAL and the shared memory in place.
            bystander = sqlite3.connect(db, isolation_level=None)
            bystander.execute("SELECT count(*) FROM sqlite_master").fetchone()
        try:
            done = subprocess.run(
                [script(), *op.args],
                cwd=home.parent,
                env=clean_env(TASKCRON_HOME=str(home)),
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
                preexec_fn=limited(limit),
            )
        finally:
            if bystander is not None:
                bystander.close()
        lines = done.stderr.splitlines()
        state = check_after(op, home, before, tally)
        # A warning for each record, lease or process that could not be written, then
        # the error, if any, in one line.
        warnings = [line for line in lines if WARNING.fullmatch(line)]
        errors = lines[len(warnings) :]
        assert lines[: len(warnings)] == warnings, lines
        if done.returncode == 0:
            assert state == "after" and errors == [], (state, lines)
            outcome = "exit 0 with a warning" if warnings else "exit 0"
        else:
            assert done.returncode == 1 and state != "after", (done.returncode, state)
            assert errors == [f"taskcron: error: store {db}: disk I/O error"], lines
            outcome = "exit 1"
        tally.outcomes[f"{outcome} ({kind})"] += 1
    print_figures("RLIMIT_FSIZE", op, WRITE_FAILURES, tally)
    assert tally.torn == 0
    failed = sum(n for outcome, n in tally.outcomes.items() if not outcome.startswith("exit 0 ("))
    assert failed > 0, "no write failed"


# --- a full disk ----------------------------------------------------------------

#: Run in a private mount namespace: a 512 KiB tmpfs at $1 holding a copy of the home
#: $2, filled but for each of $4... KiB, `schedule` run each time; what it said, and
#: the home afterwards, are left in $3. $TASKCRON is the script.
FULL_DISK = """
set -e
disk=$1 home=$2 out=$3
shift 3
mount -t tmpfs -o size=512k,mode=0700 tmpfs "$disk"
touch "$out/mounted"
cp -a "$home" "$disk/home"
for left in "$@"; do
    rm -f "$disk/filler"
    dd if=/dev/zero of="$disk/filler" bs=4096 2>/dev/null || true
    truncate -s "-${left}K" "$disk/filler"
    set +e
    TASKCRON_HOME="$disk/home" "$TASKCRON" schedule crash.disk -- true \\
        >"$out/stdout.$left" 2>"$out/stderr.$left"
    echo $? >"$out/code.$left"
    set -e
done
rm -f "$disk/filler"
cp -a "$disk/home" "$out/home"
"""
#: Free space left: none, less than SQLite's shared memory needs, more (then the WAL fills).
LEFT_KIB = (0, 16, 40)


def test_a_full_disk_is_one_line_naming_it_and_changes_nothing(
    operations: dict[str, Operation], tmp_path: Path
) -> None:
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.skip("the full disk needs unshare (util-linux) for a private mount namespace")
    # As root a mount namespace is enough; otherwise a user namespace maps us to root in it.
    flags = "-m" if os.geteuid() == 0 else "-rm"
    disk, out = tmp_path / "disk", tmp_path / "out"
    disk.mkdir()
    out.mkdir()
    template = operations["schedule"].template
    done = subprocess.run(
        [unshare, flags, "sh", "-c", FULL_DISK, "sh", str(disk), str(template), str(out)]
        + [str(left) for left in LEFT_KIB],
        env=clean_env(TASKCRON=script()),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if not (out / "mounted").exists():
        reason = done.stderr.strip().splitlines()[-1:] or [f"exit {done.returncode}"]
        pytest.skip(f"no tmpfs in a private mount namespace here: {reason[0]}")
    assert done.returncode == 0, done.stderr
    db = disk / "home" / "tasks.db"
    said = []
    for left in LEFT_KIB:
        code = int((out / f"code.{left}").read_text())
        stderr = (out / f"stderr.{left}").read_text().splitlines()
        said.append(f"{left} KiB free: exit {code}: {stderr}")
        assert code == 1, said[-1]
        assert (out / f"stdout.{left}").read_text() == ""
        assert len(stderr) == 1, said[-1]
        assert re.fullmatch(
            rf"taskcron: error: store {re.escape(str(db))}: disk full:"
            rf" no space left on {re.escape(str(disk))} \(.+\)",
            stderr[0],
        ), said[-1]
    assert snapshot(out / "home" / "tasks.db") == snapshot(template / "tasks.db")
    with SqliteStore(out / "home" / "tasks.db", create=False) as store:
        assert store.integrity() == []
    tally = Tally()
    log_check(out / "home", tally)
    assert tally.torn == 0
    print("\ncrash consistency, a full disk (512 KiB tmpfs):", "; ".join(said))
