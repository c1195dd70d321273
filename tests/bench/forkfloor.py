"""The floor of a draining tick: per task, the least the same work needs, in one process.

    python forkfloor.py DB N

For each of N tasks: claim it (`BEGIN IMMEDIATE`; the next queued task set
running and a run row added), fork a child that calls a no-op and
`os._exit(0)`, wait for it, then finish (`BEGIN IMMEDIATE`; the run and the
task updated); `records` does the same without the child. The store is one
SQLite file in WAL mode with `synchronous=NORMAL`, as taskcron's is;
`fill(DB, count)` makes it. Only the standard library, so that it runs as a
script under any interpreter.
"""

from __future__ import annotations

import os
import sqlite3
import sys
import time
from pathlib import Path

SCHEMA = """
CREATE TABLE tasks (id INTEGER PRIMARY KEY, state TEXT NOT NULL, updated_at REAL);
CREATE INDEX tasks_by_state ON tasks (state, id);
CREATE TABLE runs (id INTEGER PRIMARY KEY, task INTEGER NOT NULL, started_at REAL NOT NULL,
                   ended_at REAL, outcome TEXT);
"""


def connect(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    return db


def fill(path: Path, count: int) -> None:
    """A new store at `path` with `count` queued tasks."""
    db = connect(path)
    db.executescript(SCHEMA)
    db.execute("BEGIN")
    db.executemany("INSERT INTO tasks (state) VALUES ('queued')", [()] * count)
    db.execute("COMMIT")
    db.close()


def noop() -> None:
    pass


def claim(db: sqlite3.Connection) -> tuple[int, int]:
    """Claim the next queued task in one write transaction: the task and its new run."""
    db.execute("BEGIN IMMEDIATE")
    (task,) = db.execute(
        "SELECT id FROM tasks WHERE state = 'queued' ORDER BY id LIMIT 1"
    ).fetchone()
    db.execute(
        "UPDATE tasks SET state = 'running', updated_at = ? WHERE id = ?", (time.time(), task)
    )
    run = db.execute(
        "INSERT INTO runs (task, started_at) VALUES (?, ?)", (task, time.time())
    ).lastrowid
    db.execute("COMMIT")
    assert run is not None
    return task, run


def finish(db: sqlite3.Connection, task: int, run: int) -> None:
    """Record `run` of `task` as done in one write transaction."""
    db.execute("BEGIN IMMEDIATE")
    db.execute("UPDATE runs SET ended_at = ?, outcome = 'done' WHERE id = ?", (time.time(), run))
    db.execute("UPDATE tasks SET state = 'done', updated_at = ? WHERE id = ?", (time.time(), task))
    db.execute("COMMIT")


def drain(path: Path, count: int) -> None:
    """Claim, fork, wait for and finish `count` tasks of the store at `path`."""
    db = connect(path)
    for _ in range(count):
        task, run = claim(db)
        pid = os.fork()
        if pid == 0:
            noop()
            os._exit(0)
        os.waitpid(pid, 0)
        finish(db, task, run)
    db.close()


def records(db: sqlite3.Connection, count: int) -> None:
    """Claim and finish `count` tasks with no child: the floor of claim+record alone."""
    for _ in range(count):
        finish(db, *claim(db))


if __name__ == "__main__":
    drain(Path(sys.argv[1]), int(sys.argv[2]))
