"""The SQLite store's schema: its migrations, and the version they lead to.

A module of its own, importing nothing, so that the idle question checks a
store's version against the migrations without loading the store.
"""

from __future__ import annotations

#: `PRAGMA application_id` of a taskcron store: "tcrn".
APPLICATION_ID = 0x7463726E

_V1 = """
CREATE TABLE tasks (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    module           TEXT    NOT NULL,
    title            TEXT    NOT NULL,
    target           TEXT    NOT NULL,
    data             TEXT    NOT NULL,
    priority         INTEGER NOT NULL,
    state            TEXT    NOT NULL,
    due_at           INTEGER NOT NULL,
    attempts         INTEGER NOT NULL,
    max_attempts     INTEGER NOT NULL,
    timeout          REAL,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    result           TEXT,
    run_id           INTEGER,
    lease_host       TEXT,
    lease_pid        INTEGER,
    lease_expires_at INTEGER
);
-- The line: each module's oldest queued task, found without a scan.
CREATE INDEX tasks_line ON tasks (module, due_at, id) WHERE state = 'queued';
-- Inside a module: the oldest task of each priority.
CREATE INDEX tasks_priority ON tasks (module, priority, due_at, id) WHERE state = 'queued';
CREATE INDEX tasks_running ON tasks (module) WHERE state = 'running';
CREATE INDEX tasks_state ON tasks (state, due_at, id);
CREATE TABLE runs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id     INTEGER NOT NULL,
    attempt     INTEGER NOT NULL,
    started_at  INTEGER NOT NULL,
    ended_at    INTEGER,
    elapsed     REAL,
    outcome     TEXT,
    exit_code   INTEGER,
    error       TEXT,
    traceback   TEXT,
    output_tail TEXT    NOT NULL DEFAULT '',
    truncated   INTEGER NOT NULL DEFAULT 0,
    host        TEXT    NOT NULL,
    pid         INTEGER NOT NULL,
    child_pid   INTEGER
);
CREATE INDEX runs_task ON runs (task_id, id);
"""

_V2 = """
ALTER TABLE tasks ADD COLUMN schedule TEXT;
ALTER TABLE tasks ADD COLUMN max_lateness REAL;
ALTER TABLE tasks ADD COLUMN key TEXT;
CREATE INDEX tasks_key ON tasks (module, key) WHERE key IS NOT NULL
    AND state IN ('queued', 'running');
"""

_V3 = """
ALTER TABLE tasks ADD COLUMN owner TEXT;
-- An owner's waiting tasks, for `list --owner` and `cancel --owner`.
CREATE INDEX tasks_owner ON tasks (owner, state) WHERE owner IS NOT NULL;
ALTER TABLE runs ADD COLUMN child_start TEXT;
-- The pools serving a scope on a host, with the scope as `Scope.to_json` in JSON.
CREATE TABLE pools (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    host        TEXT    NOT NULL,
    pid         INTEGER NOT NULL,
    scope       TEXT    NOT NULL,
    started_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
);
CREATE INDEX pools_host ON pools (host);
CREATE INDEX pools_expires ON pools (expires_at);
"""

_V4 = """
ALTER TABLE tasks ADD COLUMN progress TEXT;
ALTER TABLE tasks ADD COLUMN steps INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN step_state TEXT;
"""

_STATUS_INDEXES = """
-- `status`: tasks counted by module and state from this index alone.
CREATE INDEX tasks_module_state ON tasks (module, state);
-- `status`: the failed tasks, the most recently updated first, with their module for the scope.
CREATE INDEX tasks_failed ON tasks (state, updated_at, id, module) WHERE state = 'failed';
-- `status`: tasks that ran and will run again (a one-off task with attempts left, a
-- recurring task), among which are those whose last run failed.
CREATE INDEX tasks_rerun ON tasks (state, module) WHERE attempts > 0 OR schedule IS NOT NULL;
"""

_V6 = """
-- The machine a lease, run or pool was taken on (`/etc/machine-id`, else the boot id).
ALTER TABLE tasks ADD COLUMN lease_machine TEXT;
ALTER TABLE runs ADD COLUMN machine TEXT;
ALTER TABLE pools ADD COLUMN machine TEXT;
"""

_TASK_COUNTS = """
-- `status`: how many tasks each module id has in each state, kept by the triggers below as
-- tasks come, move and go, so that counting reads one row a pair and never every task.
CREATE TABLE task_counts (
    module TEXT    NOT NULL,
    state  TEXT    NOT NULL,
    tasks  INTEGER NOT NULL,
    PRIMARY KEY (module, state)
) WITHOUT ROWID;
CREATE TRIGGER task_counts_insert AFTER INSERT ON tasks BEGIN
    INSERT INTO task_counts (module, state, tasks) VALUES (NEW.module, NEW.state, 1)
        ON CONFLICT (module, state) DO UPDATE SET tasks = tasks + 1;
END;
CREATE TRIGGER task_counts_delete AFTER DELETE ON tasks BEGIN
    UPDATE task_counts SET tasks = tasks - 1 WHERE module = OLD.module AND state = OLD.state;
    DELETE FROM task_counts WHERE module = OLD.module AND state = OLD.state AND tasks = 0;
END;
CREATE TRIGGER task_counts_update AFTER UPDATE OF module, state ON tasks
    WHEN OLD.module IS NOT NEW.module OR OLD.state IS NOT NEW.state BEGIN
    UPDATE task_counts SET tasks = tasks - 1 WHERE module = OLD.module AND state = OLD.state;
    DELETE FROM task_counts WHERE module = OLD.module AND state = OLD.state AND tasks = 0;
    INSERT INTO task_counts (module, state, tasks) VALUES (NEW.module, NEW.state, 1)
        ON CONFLICT (module, state) DO UPDATE SET tasks = tasks + 1;
END;
INSERT INTO task_counts (module, state, tasks)
    SELECT module, state, count(*) FROM tasks GROUP BY module, state;
"""

#: The runs counted by duration bucket: `taskcron.model.DURATION_BUCKETS`' upper bounds, in
#: seconds, then the longer runs (`bucket_9`).
_BUCKET_BOUNDS = (0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600)
BUCKET_NAMES = ", ".join(f"bucket_{n}" for n in range(10))
#: For each bucket, whether a run's elapsed time falls in it (an SQL condition).
IN_BUCKET = tuple(
    f"coalesce(elapsed, 0) > {low} AND coalesce(elapsed, 0) <= {high}"
    for low, high in zip((-1, *_BUCKET_BOUNDS), (*_BUCKET_BOUNDS, 1e308), strict=True)
)

_HISTORY = f"""
-- Runs kept of a task (`--keep-runs`); NULL: the config's `history.keep_runs`.
ALTER TABLE tasks ADD COLUMN keep_runs INTEGER;
-- Trimming runs keeps the newest run of each outcome of a task.
CREATE INDEX runs_outcome ON runs (task_id, outcome, id);
-- How many runs of each task ended with each outcome, trimmed ones too; gone with the task.
CREATE TABLE task_outcomes (
    task_id INTEGER NOT NULL,
    outcome TEXT    NOT NULL,
    runs    INTEGER NOT NULL,
    PRIMARY KEY (task_id, outcome)
) WITHOUT ROWID;
-- The runs of each module id by outcome, ever: trimming, prune and remove leave them.
CREATE TABLE outcome_totals (
    module  TEXT    NOT NULL,
    outcome TEXT    NOT NULL,
    runs    INTEGER NOT NULL,
    seconds REAL    NOT NULL,
    {", ".join(f"bucket_{n} INTEGER NOT NULL DEFAULT 0" for n in range(10))},
    PRIMARY KEY (module, outcome)
) WITHOUT ROWID;
-- The same by minute (the minute's start), kept for two days.
CREATE TABLE outcome_minutes (
    minute  INTEGER NOT NULL,
    module  TEXT    NOT NULL,
    outcome TEXT    NOT NULL,
    runs    INTEGER NOT NULL,
    seconds REAL    NOT NULL,
    PRIMARY KEY (minute, module, outcome)
) WITHOUT ROWID;
INSERT INTO task_outcomes (task_id, outcome, runs)
    SELECT task_id, outcome, count(*) FROM runs WHERE outcome IS NOT NULL
    GROUP BY task_id, outcome;
INSERT INTO outcome_totals (module, outcome, runs, seconds, {BUCKET_NAMES})
    SELECT tasks.module, runs.outcome, count(*), total(runs.elapsed),
    {", ".join(f"sum(CASE WHEN {cond} THEN 1 ELSE 0 END)" for cond in IN_BUCKET)}
    FROM runs JOIN tasks ON tasks.id = runs.task_id WHERE runs.outcome IS NOT NULL
    GROUP BY tasks.module, runs.outcome;
"""

#: Alerts and missed runs: how late a recurring task may be before it is missed (seconds;
#: NULL: never, as a one-off task), since when it fails or was missed, when each rule
#: last sent each event of it (JSON, `Task.alerted_json`); tasks_missed holds the tasks
#: found missed; tasks_watch holds
#: the queued tasks watched, by when they are missed (`queries.WATCH_AT`).
_HEALTH = """
ALTER TABLE tasks ADD COLUMN missed_after REAL;
ALTER TABLE tasks ADD COLUMN failing_since INTEGER;
ALTER TABLE tasks ADD COLUMN missed_since INTEGER;
ALTER TABLE tasks ADD COLUMN alerted TEXT;
CREATE INDEX tasks_watch ON tasks ((due_at + CAST(missed_after * 1000000 AS INTEGER)))
    WHERE state = 'queued' AND missed_after IS NOT NULL AND missed_since IS NULL;
CREATE INDEX tasks_missed ON tasks (missed_since) WHERE missed_since IS NOT NULL;
"""

#: Metrics: counters kept by the writes that cause them (`Store.counters`): a counter's
#: name, its labels (a JSON object, its keys sorted), its value; the missed runs found
#: (`missed`, by module id), counted as `mark_missed` marks them, and the alerts each
#: rule decided to send through each channel (`alerts`, by rule and channel), counted as
#: `note_alerted` notes them. And the recurring tasks, found without a scan.
_COUNTERS = """
CREATE TABLE counters (
    name   TEXT    NOT NULL,
    labels TEXT    NOT NULL,
    value  INTEGER NOT NULL,
    PRIMARY KEY (name, labels)
) WITHOUT ROWID;
CREATE INDEX tasks_recurring ON tasks (id) WHERE schedule IS NOT NULL;
"""

#: MIGRATIONS[n] takes a store from version n to n + 1.
MIGRATIONS: tuple[str, ...] = (
    _V1,
    _V2,
    _V3,
    _V4,
    _STATUS_INDEXES,
    _V6,
    _TASK_COUNTS,
    _HISTORY,
    _HEALTH,
    _COUNTERS,
)
SCHEMA_VERSION = len(MIGRATIONS)
