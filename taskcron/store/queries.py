"""Every statement the SQL stores' shared rules run, written once, by name.

A statement is one text for both dialects, with named parameters (`:name`);
`Statements(dialect)` renders it for a backend. The dialects differ only in
what the rendering states here:

- SQLite runs the text as written, less `FOR UPDATE [OF t]` (a write
  transaction holds the file's write lock already) and `RETURNING id` (the
  new row's id is the cursor's `lastrowid`).
- PostgreSQL reads `:name` as `%(name)s` (`to_pyformat`), less `INDEXED BY
  index` (its planner picks the index; the name tells the reader which one).

A statement the dialects say differently is a `Pair`: SQLite's and
PostgreSQL's texts beside each other. `{scope}`, `{states}`, `{ids}`,
`{owner}` and `{range}` are filled when the statement runs (see
`taskcron.store.scopes` and `taskcron.store.sql`).
"""

from __future__ import annotations

from taskcron.store.scopes import SELECT_RUNNING, SQLITE_ANY_MISSED, SQLITE_WATCH_AT, WATCHED

SQLITE = "sqlite"
POSTGRES = "postgres"


class Pair(str):
    """A statement the dialects write differently: SQLite's text (the string itself)
    and PostgreSQL's (`postgres`)."""

    postgres: str

    def __new__(cls, *, sqlite: str, postgres: str) -> Pair:
        made = super().__new__(cls, sqlite)
        made.postgres = postgres
        return made


#: `Statements.MOVE_TASK`, less the dialect's name for the larger of two numbers.
_MOVE_TASK = (
    "UPDATE tasks SET state = :state, due_at = :due_at, updated_at = :updated_at,"
    " run_id = NULL, lease_host = NULL, lease_machine = NULL, lease_pid = NULL,"
    " lease_expires_at = NULL,"
    " attempts = CASE WHEN :reset THEN 0 WHEN :save_step THEN {greatest}(attempts - 1, 0)"
    " ELSE attempts END,"
    " result = CASE WHEN :set_result THEN :result ELSE result END,"
    " progress = CASE WHEN :set_progress THEN :progress ELSE progress END,"
    " step_state = CASE WHEN :save_step THEN :step_state WHEN :clear_steps THEN NULL"
    " ELSE step_state END,"
    " steps = CASE WHEN :save_step THEN steps + 1 WHEN :clear_steps THEN 0 ELSE steps END,"
    " failing_since = CASE WHEN :set_health THEN :failing_since ELSE failing_since END,"
    " missed_since = CASE WHEN :set_health THEN :missed_since ELSE missed_since END"
    " WHERE id = :id"
)
#: When a queued recurring task is missed, as the tasks_watch index holds it (its due
#: time, then `missed_after`): PostgreSQL's `watch_time` adds seconds to a time
#: (immutable, as an index needs). SQLite's is `scopes.SQLITE_WATCH_AT`.
WATCH_AT = Pair(sqlite=SQLITE_WATCH_AT, postgres="watch_time(due_at, missed_after)")

#: The columns `SqlStore._task` reads.
TASK_COLUMNS = (
    "id, module, title, target, data, priority, state, due_at, attempts, max_attempts,"
    " timeout, created_at, updated_at, result, schedule, max_lateness, key, owner,"
    " progress, steps, step_state, keep_runs, missed_after, failing_since, missed_since,"
    " alerted,"
    " (SELECT outcome FROM runs WHERE runs.task_id = tasks.id ORDER BY runs.id DESC LIMIT 1)"
    " AS last_outcome"
)
#: The columns `SqlStore._run` reads, and `restore` writes.
RUN_COLUMNS = (
    "id, task_id, attempt, started_at, ended_at, elapsed, outcome, exit_code, error,"
    " traceback, output_tail, truncated, host, machine, pid, child_pid, child_start"
)
#: The columns `restore` writes of a task: every one but a lease.
RESTORE_TASK_COLUMNS = (
    "id, module, title, target, data, priority, state, due_at, attempts, max_attempts,"
    " timeout, created_at, updated_at, result, schedule, max_lateness, key, owner,"
    " progress, steps, step_state, keep_runs, missed_after, failing_since, missed_since,"
    " alerted"
)


#: The duration buckets' columns of outcome_totals (`taskcron.model.DURATION_BUCKETS`,
#: then the longer runs).
BUCKET_COLUMNS = tuple(f"bucket_{n}" for n in range(10))


def _values(columns: str) -> str:
    """`(:a, :b, ...)` for the columns "a, b, ...": each value named as its column."""
    return "(" + ", ".join(":" + name.strip() for name in columns.split(",")) + ")"


class Statements:
    """The statements, each an attribute holding the neutral text; an instance holds
    them rendered for its dialect."""

    # Reading.
    SELECT_TASK = f"SELECT {TASK_COLUMNS} FROM tasks WHERE id = :id"
    #: The task's row, locked until the transaction ends.
    SELECT_TASK_FOR_UPDATE = f"{SELECT_TASK} FOR UPDATE OF tasks"
    SELECT_TASK_RUNS = f"SELECT {RUN_COLUMNS} FROM runs WHERE task_id = :task_id ORDER BY id"
    #: A task's newest runs, the newest first, read backwards along runs_task.
    SELECT_LAST_RUNS = (
        f"SELECT {RUN_COLUMNS} FROM runs INDEXED BY runs_task WHERE task_id = :task_id"
        " ORDER BY id DESC LIMIT :count"
    )
    SELECT_RUN = f"SELECT {RUN_COLUMNS} FROM runs WHERE id = :id"
    #: How many runs of a task the store holds, counted along runs_task.
    COUNT_TASK_RUNS = "SELECT count(*) AS n FROM runs INDEXED BY runs_task WHERE task_id = :task_id"
    #: A running job's first step: the (offset + 1)-th `continued` run before its current run.
    SELECT_JOB_START = (
        "SELECT started_at FROM runs WHERE task_id = :task_id AND id < :run_id"
        " AND outcome = 'continued' ORDER BY id DESC LIMIT 1 OFFSET :offset"
    )
    #: Tasks in scope and in some states, in line order; `{states}`: one parameter a
    #: state, `{owner}`: OWNER_IS or ANY_OWNER.
    LIST_TASKS = (
        f"SELECT {TASK_COLUMNS} FROM tasks WHERE state IN ({{states}}) AND {{scope}}"
        " AND {owner} ORDER BY due_at, id"
    )
    OWNER_IS = "owner = :owner"
    ANY_OWNER = "TRUE"
    #: Where a page's tasks of one state in scope stand in line order, read along
    #: (state, due_at, id): the first `rows` of them (a page's offset plus its length).
    PAGE_KEYS = (
        "SELECT due_at, id FROM tasks INDEXED BY tasks_state WHERE state = :state AND {scope}"
        " ORDER BY due_at, id LIMIT :rows"
    )
    #: The same for one owner: found by (owner, state), then only that owner's tasks sorted.
    PAGE_OWNED_KEYS = (
        "SELECT due_at, id FROM tasks INDEXED BY tasks_owner"
        " WHERE owner = :owner AND state = :state AND {scope} ORDER BY due_at, id LIMIT :rows"
    )
    #: Tasks by id, in no order; `{ids}`: one parameter an id.
    SELECT_TASKS = f"SELECT {TASK_COLUMNS} FROM tasks WHERE id IN ({{ids}})"

    # Writing.
    #: The queued, running or paused task of a module with a key, if any. SQLite's
    #: tasks_key holds queued and running tasks only, a module's paused tasks are few and
    #: read by their own index; PostgreSQL reads tasks_key, then tasks_key_paused.
    SELECT_KEYED_TASK = Pair(
        sqlite=(
            "SELECT id FROM tasks INDEXED BY tasks_key WHERE module = :module AND key = :key"
            " AND key IS NOT NULL AND state IN ('queued', 'running')"
            " UNION ALL SELECT id FROM tasks INDEXED BY tasks_module_state"
            " WHERE module = :module AND state = 'paused' AND key = :key LIMIT 1"
        ),
        postgres=(
            "(SELECT id FROM tasks WHERE module = :module AND key = :key"
            " AND key IS NOT NULL AND state IN ('queued', 'running') LIMIT 1)"
            " UNION ALL (SELECT id FROM tasks WHERE module = :module AND key = :key"
            " AND key IS NOT NULL AND state = 'paused' LIMIT 1) LIMIT 1"
        ),
    )
    INSERT_TASK = (
        "INSERT INTO tasks (module, title, target, data, priority, state, due_at,"
        " attempts, max_attempts, timeout, created_at, updated_at, schedule,"
        " max_lateness, key, owner, keep_runs, missed_after)"
        " VALUES (:module, :title, :target, :data, :priority, 'queued', :due_at, 0,"
        " :max_attempts, :timeout, :created_at, :updated_at, :schedule, :max_lateness,"
        " :key, :owner, :keep_runs, :missed_after) RETURNING id"
    )
    #: What `transition` changes: state, attempts and due time.
    SET_TASK_STATE = (
        "UPDATE tasks SET state = :state, attempts = :attempts, due_at = :due_at,"
        " updated_at = :updated_at WHERE id = :id"
    )
    DELETE_TASK_RUNS = "DELETE FROM runs WHERE task_id = :task_id"
    DELETE_TASK_OUTCOMES = "DELETE FROM task_outcomes WHERE task_id = :task_id"
    DELETE_TASK = "DELETE FROM tasks WHERE id = :id"
    #: The tasks `prune` deletes: finished, and last updated before a time.
    _FINISHED_BEFORE = "state IN ('done', 'failed', 'cancelled') AND updated_at < :before"
    PRUNE_RUNS = (
        f"DELETE FROM runs WHERE task_id IN (SELECT id FROM tasks WHERE {_FINISHED_BEFORE})"
    )
    PRUNE_TASK_OUTCOMES = (
        "DELETE FROM task_outcomes WHERE task_id IN"
        f" (SELECT id FROM tasks WHERE {_FINISHED_BEFORE})"
    )
    PRUNE_TASKS = f"DELETE FROM tasks WHERE {_FINISHED_BEFORE}"
    #: What `prune --dry-run` counts: the same tasks and runs.
    COUNT_PRUNE_RUNS = (
        "SELECT count(*) AS n FROM runs WHERE task_id IN"
        f" (SELECT id FROM tasks WHERE {_FINISHED_BEFORE})"
    )
    COUNT_PRUNE_TASKS = f"SELECT count(*) AS n FROM tasks WHERE {_FINISHED_BEFORE}"
    #: The next batch of task ids, in id order: those after an id, at most a count.
    TASK_IDS = "SELECT id FROM tasks WHERE id > :after ORDER BY id LIMIT :count"
    #: What `cancel_owned` cancels: an owner's queued and paused tasks.
    _OWNED_WAITING = "owner = :owner AND state IN ('queued', 'paused')"
    SELECT_OWNED_WAITING = (
        f"SELECT id FROM tasks INDEXED BY tasks_owner WHERE {_OWNED_WAITING} FOR UPDATE"
    )
    CANCEL_OWNED = (
        "UPDATE tasks INDEXED BY tasks_owner SET state = 'cancelled', updated_at = :updated_at"
        f" WHERE {_OWNED_WAITING}"
    )

    # Claiming.
    #: A task running in scope, if any (the idle question asks it too).
    SELECT_RUNNING = SELECT_RUNNING
    #: The leases of the tasks running in scope, to find the dead ones.
    SELECT_RUNNING_LEASES = (
        "SELECT id, run_id, lease_host, lease_machine, lease_pid, lease_expires_at FROM tasks"
        " WHERE state = 'running' AND {scope}"
    )
    #: One of those leases read again (under a row lock), while its run is still current.
    LOCK_RUNNING_LEASE = (
        "SELECT id, run_id, lease_host, lease_machine, lease_pid, lease_expires_at FROM tasks"
        " WHERE id = :id AND state = 'running' AND run_id = :run_id FOR UPDATE"
    )
    #: The highest priority among a module's queued tasks.
    MODULE_TOP_PRIORITY = (
        "SELECT priority FROM tasks INDEXED BY tasks_priority"
        " WHERE state = 'queued' AND module = :module ORDER BY priority DESC LIMIT 1"
    )
    #: The highest priority below a given one among a module's queued tasks.
    MODULE_PRIORITY_BELOW = (
        "SELECT priority FROM tasks INDEXED BY tasks_priority"
        " WHERE state = 'queued' AND module = :module AND priority < :priority"
        " ORDER BY priority DESC LIMIT 1"
    )
    #: A module's oldest queued task of one priority.
    OLDEST_AT_PRIORITY = (
        "SELECT due_at, id FROM tasks INDEXED BY tasks_priority"
        " WHERE state = 'queued' AND module = :module AND priority = :priority"
        " ORDER BY due_at, id LIMIT 1"
    )
    INSERT_RUN = (
        "INSERT INTO runs (task_id, attempt, started_at, host, machine, pid)"
        " VALUES (:task_id, :attempt, :started_at, :host, :machine, :pid) RETURNING id"
    )
    #: Mark a task running under a lease, with the run just opened.
    CLAIM_TASK = (
        "UPDATE tasks SET state = 'running', attempts = :attempts, updated_at = :updated_at,"
        " run_id = :run_id, lease_host = :lease_host, lease_machine = :lease_machine,"
        " lease_pid = :lease_pid, lease_expires_at = :lease_expires_at WHERE id = :id"
    )

    # Running and finishing.
    #: Only while the run is the task's current one and the lease is the caller's.
    RENEW_LEASE = (
        "UPDATE tasks SET lease_expires_at = :lease_expires_at WHERE state = 'running'"
        " AND run_id = :run_id AND lease_host = :lease_host AND lease_pid = :lease_pid"
    )
    SET_CHILD_PID = (
        "UPDATE runs SET child_pid = :child_pid, child_start = :child_start WHERE id = :id"
    )
    #: The task a run belongs to, while that run is its current one (locked).
    SELECT_TASK_OF_RUN = (
        "SELECT id FROM tasks WHERE state = 'running' AND run_id = :run_id FOR UPDATE"
    )
    END_RUN = (
        "UPDATE runs SET ended_at = :ended_at, elapsed = :elapsed, outcome = :outcome,"
        " exit_code = :exit_code, error = :error, traceback = :traceback,"
        " output_tail = :output_tail, truncated = :truncated WHERE id = :id"
    )
    #: Trimming a task's runs (`taskcron.model.Retention`), oldest first, along indexes.
    #: The id of the task's run that has `offset` newer ones: it and older ones are beyond
    #: the newest `offset`.
    RUN_AT_RANK = (
        "SELECT id FROM runs INDEXED BY runs_task WHERE task_id = :task_id"
        " ORDER BY id DESC LIMIT 1 OFFSET :offset"
    )
    #: A task's oldest runs, the oldest first: the candidates to trim.
    OLDEST_RUNS = (
        "SELECT id, started_at, outcome FROM runs INDEXED BY runs_task"
        " WHERE task_id = :task_id ORDER BY id LIMIT :count"
    )
    #: The newest run of a task that ended with an outcome: kept whatever its age.
    LAST_OF_OUTCOME = (
        "SELECT id FROM runs INDEXED BY runs_outcome WHERE task_id = :task_id"
        " AND outcome = :outcome ORDER BY id DESC LIMIT 1"
    )
    #: Runs by id; `{ids}`: one parameter an id.
    DELETE_RUNS = "DELETE FROM runs WHERE id IN ({ids})"
    #: Counting runs as they end, one upsert a table; keyed by the outcome's name.
    COUNT_TASK_OUTCOME = (
        "INSERT INTO task_outcomes (task_id, outcome, runs) VALUES (:task_id, :outcome, 1)"
        " ON CONFLICT (task_id, outcome) DO UPDATE SET runs = task_outcomes.runs + 1"
    )
    #: A run counted in its module's totals: one more, its duration, its bucket (each
    #: `bucket_n` parameter 1 or 0).
    COUNT_OUTCOME_TOTAL = (
        f"INSERT INTO outcome_totals (module, outcome, runs, seconds, {', '.join(BUCKET_COLUMNS)})"
        " VALUES (:module, :outcome, 1, :seconds, "
        + ", ".join(f":{c}" for c in BUCKET_COLUMNS)
        + ") ON CONFLICT (module, outcome) DO UPDATE SET runs = outcome_totals.runs + 1,"
        " seconds = outcome_totals.seconds + excluded.seconds, "
        + ", ".join(f"{c} = outcome_totals.{c} + excluded.{c}" for c in BUCKET_COLUMNS)
    )
    COUNT_OUTCOME_MINUTE = (
        "INSERT INTO outcome_minutes (minute, module, outcome, runs, seconds)"
        " VALUES (:minute, :module, :outcome, 1, :seconds)"
        " ON CONFLICT (minute, module, outcome) DO UPDATE SET runs = outcome_minutes.runs + 1,"
        " seconds = outcome_minutes.seconds + excluded.seconds"
    )
    #: The minutes older than those kept (`MINUTES_KEPT`): a finish drops them.
    DROP_OLD_MINUTES = "DELETE FROM outcome_minutes WHERE minute < :before"
    SELECT_TASK_OUTCOMES = (
        "SELECT outcome, runs FROM task_outcomes WHERE task_id = :task_id ORDER BY outcome"
    )
    SELECT_OUTCOME_TOTALS = (
        f"SELECT module, outcome, runs, seconds, {', '.join(BUCKET_COLUMNS)}"
        " FROM outcome_totals ORDER BY module, outcome"
    )
    SELECT_OUTCOME_MINUTES = (
        "SELECT minute, module, outcome, runs, seconds FROM outcome_minutes"
        " WHERE minute >= :since ORDER BY minute, module, outcome"
    )
    #: Progress a running task reports, while the run is still its current one.
    SAVE_PROGRESS = (
        "UPDATE tasks SET progress = :progress WHERE state = 'running' AND run_id = :run_id"
    )
    #: Put a task where a policy said, resetting its attempts if told to; drop its lease;
    #: and keep what its run left (`SqlRuns._settle`, each flag with its value): a result,
    #: progress, a step's state (one more step, the attempt not counted) or no steps
    #: once the job is over. One statement, so that a finish writes its task once.
    #: SQLite's two-argument `max` is PostgreSQL's GREATEST.
    MOVE_TASK = Pair(
        sqlite=_MOVE_TASK.format(greatest="max"), postgres=_MOVE_TASK.format(greatest="GREATEST")
    )

    # Status.
    #: Tasks by module and state in one range of module ids, in module id order; `{range}`:
    #: MODULE_RANGE or MODULE_FROM. SQLite's triggers keep them counted in task_counts;
    #: PostgreSQL's in task_counts and the deltas not yet folded into it (byte order:
    #: `module` is COLLATE "C").
    COUNT_TASKS = Pair(
        sqlite="SELECT module, state, tasks FROM task_counts WHERE {range}",
        postgres=(
            "SELECT module, state, sum(tasks)::bigint AS tasks FROM ("
            "SELECT module, state, tasks FROM task_counts WHERE {range}"
            " UNION ALL SELECT module, state, delta FROM task_count_deltas WHERE {range}"
            ") AS counted GROUP BY module, state HAVING sum(tasks) <> 0 ORDER BY module, state"
        ),
    )
    MODULE_RANGE = "module >= :low AND module < :high"
    MODULE_FROM = "module >= :low"
    #: The running tasks in scope, with the id of their current run.
    SELECT_RUNNING_TASKS = (
        f"SELECT {TASK_COLUMNS}, run_id FROM tasks WHERE state = 'running' AND {{scope}}"
    )
    #: A module's first queued tasks by due time, then id.
    MODULE_FIRST_QUEUED = (
        "SELECT due_at, id FROM tasks INDEXED BY tasks_line"
        " WHERE state = 'queued' AND module = :module ORDER BY due_at, id LIMIT :count"
    )
    #: The failed tasks in scope, the most recently updated first.
    LATEST_FAILED = (
        "SELECT updated_at, id FROM tasks INDEXED BY tasks_failed WHERE state = 'failed'"
        " AND {scope} ORDER BY updated_at DESC, id DESC LIMIT :count"
    )
    #: Waiting tasks in scope that will run again, and whose last run failed or timed out.
    WAITING_AFTER_FAILURE = (
        "SELECT updated_at, id FROM tasks INDEXED BY tasks_rerun"
        " WHERE state IN ('queued', 'paused') AND (attempts > 0 OR schedule IS NOT NULL)"
        " AND {scope} AND (SELECT outcome FROM runs WHERE runs.task_id = tasks.id"
        " ORDER BY runs.id DESC LIMIT 1) IN ('failed', 'timeout')"
    )

    # Pools.
    #: Pools whose lease ran out: dropped before a pool registers.
    DELETE_EXPIRED_POOLS = "DELETE FROM pools INDEXED BY pools_expires WHERE expires_at <= :now"
    #: The pools on a host whose lease still runs, oldest first.
    SELECT_LIVE_POOLS = (
        "SELECT id, host, machine, pid, scope, expires_at FROM pools INDEXED BY pools_host"
        " WHERE host = :host AND expires_at > :now ORDER BY id"
    )
    DELETE_POOL = "DELETE FROM pools WHERE id = :id"
    INSERT_POOL = (
        "INSERT INTO pools (host, machine, pid, scope, started_at, expires_at)"
        " VALUES (:host, :machine, :pid, :scope, :started_at, :expires_at) RETURNING id"
    )
    RENEW_POOL = "UPDATE pools SET expires_at = :expires_at WHERE id = :id"

    # Moving stores: `dump` reads every task in id order, `restore` writes them with their ids.
    #: The next batch of tasks in id order: those after an id, at most a count.
    DUMP_TASKS = f"SELECT {TASK_COLUMNS} FROM tasks WHERE id > :after ORDER BY id LIMIT :count"
    #: The runs of the tasks whose ids lie in a range (inclusive), by task then run.
    DUMP_RUNS = (
        f"SELECT {RUN_COLUMNS} FROM runs INDEXED BY runs_task"
        " WHERE task_id >= :first AND task_id <= :last ORDER BY task_id, id"
    )
    #: The runs counted by outcome of the tasks whose ids lie in a range (inclusive).
    DUMP_OUTCOMES = (
        "SELECT task_id, outcome, runs FROM task_outcomes"
        " WHERE task_id >= :first AND task_id <= :last ORDER BY task_id, outcome"
    )
    #: How many tasks and runs the store holds: `restore` writes into an empty one only.
    COUNT_STORED = (
        "SELECT (SELECT count(*) FROM tasks) AS tasks, (SELECT count(*) FROM runs) AS runs"
    )
    #: A task with its id and every field but a lease (a running task is not restored).
    #: An explicit id moves SQLite's sqlite_sequence past it; PostgreSQL's identity
    #: sequence is moved by the backend.
    RESTORE_TASK = (
        f"INSERT INTO tasks ({RESTORE_TASK_COLUMNS}) VALUES {_values(RESTORE_TASK_COLUMNS)}"
    )
    #: A task's runs of one outcome, counted (trimmed ones too).
    RESTORE_OUTCOME = (
        "INSERT INTO task_outcomes (task_id, outcome, runs) VALUES (:task_id, :outcome, :runs)"
    )
    #: A run with its id and every field.
    RESTORE_RUN = f"INSERT INTO runs ({RUN_COLUMNS}) VALUES {_values(RUN_COLUMNS)}"
    #: A module's runs of one outcome counted ever, added to any the store counts already
    #: (`remove` and `prune` leave counts in a store that holds no task).
    RESTORE_OUTCOME_TOTAL = (
        f"INSERT INTO outcome_totals (module, outcome, runs, seconds, {', '.join(BUCKET_COLUMNS)})"
        " VALUES (:module, :outcome, :runs, :seconds, "
        + ", ".join(f":{c}" for c in BUCKET_COLUMNS)
        + ") ON CONFLICT (module, outcome) DO UPDATE SET"
        " runs = outcome_totals.runs + excluded.runs,"
        " seconds = outcome_totals.seconds + excluded.seconds, "
        + ", ".join(f"{c} = outcome_totals.{c} + excluded.{c}" for c in BUCKET_COLUMNS)
    )
    #: A minute's runs of a module id and outcome, added to any the store counts already.
    RESTORE_OUTCOME_MINUTE = (
        "INSERT INTO outcome_minutes (minute, module, outcome, runs, seconds)"
        " VALUES (:minute, :module, :outcome, :runs, :seconds)"
        " ON CONFLICT (minute, module, outcome) DO UPDATE SET"
        " runs = outcome_minutes.runs + excluded.runs,"
        " seconds = outcome_minutes.seconds + excluded.seconds"
    )

    # Missed runs (`SqlStore.mark_missed`), along tasks_watch.
    #: Whether any watched task is past its time: one probe.
    ANY_MISSED = Pair(
        sqlite=SQLITE_ANY_MISSED,
        postgres=(
            f"SELECT 1 AS yes FROM tasks WHERE {WATCHED} AND {WATCH_AT.postgres} <= :now LIMIT 1"
        ),
    )
    #: The watched tasks past their time, the longest missed first.
    MISSED_TASKS = Pair(
        sqlite=(
            f"SELECT id FROM tasks INDEXED BY tasks_watch WHERE {WATCHED}"
            f" AND {WATCH_AT} <= :now ORDER BY {WATCH_AT} LIMIT :limit"
        ),
        postgres=(
            f"SELECT id FROM tasks WHERE {WATCHED} AND {WATCH_AT.postgres} <= :now"
            f" ORDER BY {WATCH_AT.postgres} LIMIT :limit"
        ),
    )
    #: When a task's alerts were last sent (`SqlStore.note_alerted`), read under its lock.
    SELECT_ALERTED = "SELECT alerted FROM tasks WHERE id = :id FOR UPDATE"
    SET_ALERTED = "UPDATE tasks SET alerted = :alerted WHERE id = :id"
    #: The tasks missed: found so (tasks_missed), or past their time and not found yet.
    MISSED_NOW = Pair(
        sqlite=(
            "SELECT id FROM tasks INDEXED BY tasks_missed WHERE missed_since IS NOT NULL"
            f" UNION SELECT id FROM tasks INDEXED BY tasks_watch WHERE {WATCHED}"
            f" AND {WATCH_AT} <= :now ORDER BY id LIMIT :limit"
        ),
        postgres=(
            "SELECT id FROM tasks WHERE missed_since IS NOT NULL"
            f" UNION SELECT id FROM tasks WHERE {WATCHED}"
            f" AND {WATCH_AT.postgres} <= :now ORDER BY id LIMIT :limit"
        ),
    )
    #: A task found missed at its due time, unless another process found it first.
    MARK_MISSED = f"UPDATE tasks SET missed_since = due_at WHERE id = :id AND {WATCHED}"

    # Metrics.
    #: Add to a counter (`counters`), made at its first count.
    COUNT = (
        "INSERT INTO counters (name, labels, value) VALUES (:name, :labels, :value)"
        " ON CONFLICT (name, labels) DO UPDATE SET value = counters.value + excluded.value"
    )
    SELECT_COUNTERS = "SELECT name, labels, value FROM counters ORDER BY name, labels"
    #: The recurring tasks (tasks_recurring), with the end of each one's newest run that
    #: ended done (runs_outcome: trimming keeps it).
    SELECT_RECURRING = (
        "SELECT id, module, key, state, due_at, (SELECT ended_at FROM runs"
        " INDEXED BY runs_outcome WHERE runs.task_id = tasks.id AND outcome = 'done'"
        " ORDER BY runs.id DESC LIMIT 1) AS succeeded_at"
        " FROM tasks INDEXED BY tasks_recurring WHERE schedule IS NOT NULL"
        " ORDER BY id LIMIT :limit"
    )

    def __init__(self, dialect: str) -> None:
        self.dialect = dialect
        for name, text in vars(Statements).items():
            if name.isupper() and not name.startswith("_"):
                setattr(self, name, render(text, dialect))

    def mark(self, name: str) -> str:
        """The parameter `name` as this dialect writes it in a statement."""
        return mark(name, self.dialect)


def mark(name: str, dialect: str) -> str:
    """The parameter `name` as `dialect` writes it in a statement."""
    return f"%({name})s" if dialect == POSTGRES else f":{name}"


def render(text: str, dialect: str) -> str:
    """A neutral statement (see the module's docstring) in `dialect`'s words."""
    import re

    if dialect == SQLITE:
        return re.sub(r" FOR UPDATE( OF \w+)?| RETURNING id", "", str(text))
    chosen = text.postgres if isinstance(text, Pair) else text
    return to_pyformat(re.sub(r" INDEXED BY \w+", "", chosen))


def to_pyformat(text: str) -> str:
    """`:name` parameters as psycopg's `%(name)s`, and a lone `%` as `%%`, outside string
    literals and quoted names; a `::type` cast is left alone."""
    import re

    out: list[str] = []
    for piece in re.split(r"""('(?:[^']|'')*'|"(?:[^"]|"")*")""", text):
        if piece[:1] in ("'", '"'):
            out.append(piece.replace("%", "%%"))
            continue
        piece = piece.replace("%", "%%")
        out.append(re.sub(r"(?<![:\w]):([A-Za-z_]\w*)", r"%(\1)s", piece))
    return "".join(out)
