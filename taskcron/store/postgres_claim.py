"""The PostgreSQL store's claim in one round trip: a server-side function.

`claim_next`, created by the schema's migrations (`taskcron.store.postgres_schema`),
runs a claim's common path under the line's lock: the busy rule or the lanes'
widths, the order rule's walk (the statements `SqlRuns._pick` runs, as they are),
and the take. Whenever Python must decide, it changes nothing and says so, and
`PostgresStore.claim_next` runs the full path. How and why: "The PostgreSQL
store inside" in docs/pages/development.md.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from taskcron.model import Lanes, Scope, Task
from taskcron.store.protocol import Claim, ClaimOutcome, Decide, Lease, Skip
from taskcron.store.queries import POSTGRES, Statements
from taskcron.store.scopes import module_ranges
from taskcron.store.sql import SqlStore
from taskcron.store.sql_base import pid_alive
from taskcron.values import replace

#: Each module's oldest queued task from a module id on: the skip-scan as one
#: recursive query, each step one probe of tasks_line. `{below}`: NO_BOUND or BELOW.
HEADS = (
    "WITH RECURSIVE heads AS ("
    " (SELECT module, due_at, id FROM tasks WHERE state = 'queued' AND module >= %(low)s"
    " {below} ORDER BY module, due_at, id LIMIT 1)"
    " UNION ALL"
    " SELECT step.module, step.due_at, step.id FROM heads, LATERAL"
    " (SELECT module, due_at, id FROM tasks WHERE state = 'queued'"
    " AND module > heads.module {below} ORDER BY module, due_at, id LIMIT 1) AS step"
    ") SELECT module, due_at, id FROM heads"
)
NO_BOUND = ""
BELOW = "AND module < %(high)s"

# --- the claim in one round trip ----------------------------------------------
#
# Why a function that takes the line's lock, and not FOR UPDATE SKIP LOCKED alone (as
# a queue of independent jobs may): SKIP LOCKED makes two claims skip each other's
# rows, so two claims at once each see a scope with nothing running yet, and both run
# a task of it (a plain tick's busy rule broken), or each count a lane's running tasks
# before the other's claim commits and both take its last place (a lane's width
# broken). Whether a scope is busy and whether a lane has room are facts about other
# rows than the one taken; only the line's lock, held from the reads to the commit,
# keeps them true. See "Why a lock and not FOR UPDATE SKIP LOCKED" in
# docs/pages/development.md.

#: What the claim function reads, each a statement of its own so that
#: tests/postgres/test_postgres_plans.py explains it: every running task, store-wide
#: (the tasks_running index: the few that run).
RUNNING_LEASES = (
    "SELECT id, module, lease_host, lease_machine, lease_pid, lease_expires_at FROM tasks"
    " WHERE state = 'running'"
)

#: The columns the claim function returns: the task's (as TASK_COLUMNS), the run's
#: prefixed "run_" (as RUN_COLUMNS), with their types.
CLAIM_TASK_COLUMNS = (
    ("id", "BIGINT"), ("module", "TEXT"), ("title", "TEXT"), ("target", "TEXT"),
    ("data", "TEXT"), ("priority", "BIGINT"), ("state", "TEXT"),
    ("due_at", "TIMESTAMPTZ"), ("attempts", "BIGINT"), ("max_attempts", "BIGINT"),
    ("timeout", "DOUBLE PRECISION"), ("created_at", "TIMESTAMPTZ"),
    ("updated_at", "TIMESTAMPTZ"), ("result", "TEXT"), ("schedule", "TEXT"),
    ("max_lateness", "DOUBLE PRECISION"), ("key", "TEXT"), ("owner", "TEXT"),
    ("progress", "TEXT"), ("steps", "BIGINT"), ("step_state", "TEXT"),
    ("keep_runs", "BIGINT"), ("missed_after", "DOUBLE PRECISION"),
    ("failing_since", "TIMESTAMPTZ"), ("missed_since", "TIMESTAMPTZ"), ("alerted", "TEXT"),
)  # fmt: skip
CLAIM_RUN_COLUMNS = (
    ("id", "BIGINT"), ("task_id", "BIGINT"), ("attempt", "BIGINT"),
    ("started_at", "TIMESTAMPTZ"), ("ended_at", "TIMESTAMPTZ"),
    ("elapsed", "DOUBLE PRECISION"), ("outcome", "TEXT"), ("exit_code", "INTEGER"),
    ("error", "TEXT"), ("traceback", "TEXT"), ("output_tail", "TEXT"),
    ("truncated", "BOOLEAN"), ("host", "TEXT"), ("machine", "TEXT"), ("pid", "INTEGER"),
    ("child_pid", "INTEGER"), ("child_start", "TEXT"),
)  # fmt: skip


def inside(statement: str, **names: str) -> str:
    """A statement's `%(name)s` parameters as the function's variables."""
    return re.sub(r"%\((\w+)\)s", lambda found: names[found[1]], statement)


_PG = Statements(POSTGRES)
#: The statements the function runs, with its variables for their parameters.
_HEADS_OPEN = inside(HEADS.format(below=NO_BOUND), low="v_low")
_HEADS_BELOW = inside(HEADS.format(below=BELOW), low="v_low", high="v_high")
_TOP_PRIORITY = inside(_PG.MODULE_TOP_PRIORITY, module="v_module")
_PRIORITY_BELOW = inside(_PG.MODULE_PRIORITY_BELOW, module="v_module", priority="v_priority")
_OLDEST = inside(_PG.OLDEST_AT_PRIORITY, module="v_module", priority="v_priority")
#: What a server-side function returns of a task with one run, after its own columns
#: (claim_next's, finish_run's): the task's columns, its last outcome, the run's
#: prefixed "run_", its runs by outcome (`ClaimCall._with_run` reads them).
TASK_WITH_RUN = ", ".join(
    [f"{name} {kind}" for name, kind in CLAIM_TASK_COLUMNS]
    + ["last_outcome TEXT"]
    + [f"run_{name} {kind}" for name, kind in CLAIM_RUN_COLUMNS]
    + ["outcome_names TEXT[]", "outcome_runs BIGINT[]"]
)


def task_with_run(last_outcome: str) -> str:
    """The select list of TASK_WITH_RUN from `TASK_WITH_RUN_FROM`'s `t`, `r` and `o`,
    with `last_outcome` for the task's last outcome."""
    return ", ".join(
        [f"t.{name}" for name, _ in CLAIM_TASK_COLUMNS]
        + [last_outcome]
        + [f"r.{name}" for name, _ in CLAIM_RUN_COLUMNS]
        + ["o.names", "o.counts"]
    )


#: Where TASK_WITH_RUN is read from: one row whatever is found, the task `{task}` (`t`),
#: the run `{run}` (`r`), and the task's runs by outcome (`o`) while `{wanted}` holds.
TASK_WITH_RUN_FROM = """(SELECT 1) AS one LEFT JOIN tasks AS t ON t.id = {task}
        LEFT JOIN runs AS r ON r.id = {run}
        LEFT JOIN LATERAL (SELECT array_agg(c.outcome ORDER BY c.outcome) AS names,
                                  array_agg(c.runs ORDER BY c.outcome) AS counts
                           FROM task_outcomes AS c
                           WHERE c.task_id = {task} AND {wanted}) AS o ON TRUE"""
_CLAIM_RETURNS = ", ".join(
    ["status TEXT", "server_now TIMESTAMPTZ", "pids INTEGER[]", "row_version TEXT", TASK_WITH_RUN]
)
_CLAIM_FROM = TASK_WITH_RUN_FROM.format(
    task="v_task_id", run="v_run_id", wanted="v_status = 'claimed'"
)
# The task's newest run is the one it runs (claimed or busy): no outcome yet.
_CLAIM_SELECTS = ", ".join(
    ["v_status", "v_clock", "v_pids", "t.xmin::text", task_with_run("NULL::text")]
)


def _in_scope(module: str) -> str:
    """plpgsql that sets v_in: whether `module` is in the claim's scope (as `Scope`):
    under a module id of p_modules (none: every one) and under none of p_excepts.
    Loops of the function's own, not a SQL function: a call of one from plpgsql costs
    an executor start of its own."""
    under = f"({module} = v_prefix OR starts_with({module}, v_prefix || '.'))"
    return f"""
                v_in := v_everything OR cardinality(p_modules) = 0;
                IF NOT v_in THEN
                    FOREACH v_prefix IN ARRAY p_modules LOOP
                        IF {under} THEN v_in := TRUE; EXIT; END IF;
                    END LOOP;
                END IF;
                IF v_in AND NOT v_everything THEN
                    FOREACH v_prefix IN ARRAY p_excepts LOOP
                        IF {under} THEN v_in := FALSE; EXIT; END IF;
                    END LOOP;
                END IF;""".strip()


#: What the claim function does with each module's head (`HEADS`): in scope, due, its
#: lane with room (the module id's running tasks against the width of the longest lane
#: prefix it is under, 1 under none), it may be the first or the second of the line.
_HEAD = f"""
                CONTINUE WHEN rec.due_at > v_now;
                {_in_scope("rec.module")}
                CONTINUE WHEN NOT v_in;
                IF p_lanes THEN
                    v_running := 0;
                    FOREACH v_prefix IN ARRAY v_running_modules LOOP
                        IF v_prefix = rec.module THEN v_running := v_running + 1; END IF;
                    END LOOP;
                    v_width := 1;
                    v_longest := -1;
                    FOR j IN 1 .. coalesce(cardinality(p_lane_prefixes), 0) LOOP
                        v_prefix := p_lane_prefixes[j];
                        IF length(v_prefix) > v_longest AND (rec.module = v_prefix
                           OR starts_with(rec.module, v_prefix || '.')) THEN
                            v_width := p_lane_widths[j];
                            v_longest := length(v_prefix);
                        END IF;
                    END LOOP;
                    CONTINUE WHEN v_running >= v_width;
                END IF;
                IF v_first_id IS NULL OR (rec.due_at, rec.id) < (v_first_due, v_first_id) THEN
                    v_bound_due := v_first_due;
                    v_bound_id := v_first_id;
                    v_first_due := rec.due_at;
                    v_first_id := rec.id;
                    v_module := rec.module;
                ELSIF v_bound_id IS NULL OR (rec.due_at, rec.id) < (v_bound_due, v_bound_id) THEN
                    v_bound_due := rec.due_at;
                    v_bound_id := rec.id;
                END IF;""".strip()
#: The claim's common path as one call (`PostgresStore.claim_next`), under the line's
#: lock: the running tasks (the busy rule for those in scope; every module id's count
#: for the lanes' widths), the order rule's walk (as `SqlRuns._pick` and HEADS), the
#: take. Whenever Python must decide (a running task in scope whose lease expired, or
#: a late task with a skip policy: status "recover" or "late"; a running task of this
#: machine whose pid is not in `p_alive`: "check", with those pids), it changes nothing
#: and says so.
#:
#: `enable_sort` is off inside it: PostgreSQL's `INDEXED BY`. A queue's statistics are
#: always behind its rows (a burst of new tasks, a table never analyzed yet), and with
#: a module's rows misjudged as few the planner may read every queued task of the
#: module along tasks_line and sort them for the top priority, where tasks_priority
#: gives it in one probe. None of its statements needs a sort.
#:
#: Made again by the newest migration that names it (CREATE OR REPLACE), so that a
#: store made before a change of it gets the change.
CLAIM_FUNCTIONS = (
    f"""
CREATE OR REPLACE FUNCTION claim_next(
    p_lock_class INTEGER, p_lock_key INTEGER, p_now TIMESTAMPTZ, p_server_clock BOOLEAN,
    p_host TEXT, p_machine TEXT, p_alive INTEGER[],
    p_lease_host TEXT, p_lease_machine TEXT, p_lease_pid INTEGER, p_lease_expires_at TIMESTAMPTZ,
    p_modules TEXT[], p_excepts TEXT[], p_low TEXT[], p_high TEXT[],
    p_lanes BOOLEAN, p_lane_prefixes TEXT[], p_lane_widths BIGINT[], p_skip BOOLEAN
) RETURNS TABLE ({_CLAIM_RETURNS})
LANGUAGE plpgsql SET search_path FROM CURRENT SET enable_sort = off AS $$
#variable_conflict use_column
DECLARE
    v_clock TIMESTAMPTZ; v_now TIMESTAMPTZ; v_status TEXT; v_pids INTEGER[] := '{{}}';
    v_task_id BIGINT; v_run_id BIGINT; v_busy BIGINT; rec RECORD; v_running BIGINT;
    v_low TEXT; v_high TEXT;
    v_everything BOOLEAN := cardinality(p_modules) = 0 AND cardinality(p_excepts) = 0;
    v_module TEXT; v_first_due TIMESTAMPTZ; v_first_id BIGINT;
    v_bound_due TIMESTAMPTZ; v_bound_id BIGINT; v_in BOOLEAN; v_prefix TEXT;
    v_running_modules TEXT[] := '{{}}'; v_width BIGINT; v_longest INTEGER;
    v_priority BIGINT; v_due TIMESTAMPTZ; v_id BIGINT; v_task tasks%ROWTYPE;
BEGIN
    PERFORM pg_advisory_xact_lock(p_lock_class, p_lock_key);
    v_clock := clock_timestamp();
    v_now := CASE WHEN p_server_clock THEN v_clock ELSE p_now END;
    <<walk>>
    BEGIN
        FOR rec IN {RUNNING_LEASES} LOOP
            IF p_lanes THEN
                v_running_modules := v_running_modules || rec.module;
            END IF;
            {_in_scope("rec.module")}
            CONTINUE WHEN NOT v_in;
            IF rec.lease_expires_at IS NULL OR rec.lease_expires_at <= v_now THEN
                v_status := 'recover';
                EXIT walk;
            END IF;
            IF rec.lease_host = p_host
               AND (rec.lease_machine IS NULL OR rec.lease_machine = ''
                    OR rec.lease_machine = p_machine)
               AND rec.lease_pid IS NOT NULL AND rec.lease_pid <> ALL (p_alive) THEN
                v_pids := v_pids || rec.lease_pid;
            END IF;
            v_busy := coalesce(v_busy, rec.id);
        END LOOP;
        IF cardinality(v_pids) > 0 THEN
            v_status := 'check';
            EXIT walk;
        END IF;
        IF NOT p_lanes AND v_busy IS NOT NULL THEN
            v_status := 'busy';
            v_task_id := v_busy;
            EXIT walk;
        END IF;
        FOR i IN 1 .. coalesce(cardinality(p_low), 0) LOOP
            v_low := p_low[i];
            v_high := p_high[i];
            IF v_high IS NULL THEN
                FOR rec IN {_HEADS_OPEN} LOOP
                    {_HEAD}
                END LOOP;
            ELSE
                FOR rec IN {_HEADS_BELOW} LOOP
                    {_HEAD}
                END LOOP;
            END IF;
        END LOOP;
        v_status := 'idle';
        EXIT walk WHEN v_first_id IS NULL;
        v_priority := NULL;
        LOOP
            IF v_priority IS NULL THEN
                v_priority := ({_TOP_PRIORITY});
            ELSE
                v_priority := ({_PRIORITY_BELOW});
            END IF;
            EXIT walk WHEN v_priority IS NULL;
            SELECT oldest.due_at, oldest.id INTO v_due, v_id
                FROM ({_OLDEST}) AS oldest;
            EXIT WHEN v_due <= v_now
                AND (v_bound_id IS NULL OR (v_due, v_id) < (v_bound_due, v_bound_id));
        END LOOP;
        SELECT * INTO v_task FROM tasks WHERE id = v_id;
        -- A task that may be late goes to Python, which alone applies the skip policy;
        -- a millisecond's margin keeps the two clocks' roundings on its side.
        IF p_skip AND v_task.max_lateness IS NOT NULL AND v_now - v_task.due_at
           > make_interval(secs => v_task.max_lateness) - interval '1 millisecond' THEN
            v_status := 'late';
            EXIT walk;
        END IF;
        INSERT INTO runs (task_id, attempt, started_at, host, machine, pid)
            VALUES (v_id, v_task.attempts + 1, v_now, p_lease_host, p_lease_machine, p_lease_pid)
            RETURNING id INTO v_run_id;
        UPDATE tasks SET state = 'running', attempts = v_task.attempts + 1, updated_at = v_now,
            run_id = v_run_id, lease_host = p_lease_host, lease_machine = p_lease_machine,
            lease_pid = p_lease_pid, lease_expires_at = p_lease_expires_at + (v_now - p_now)
            WHERE id = v_id;
        v_status := 'claimed';
        v_task_id := v_id;
    END walk;
    RETURN QUERY SELECT {_CLAIM_SELECTS}
        FROM {_CLAIM_FROM};
END $$""",
)

#: One claim's common path (see CLAIM_FUNCTIONS); Python runs the rest.
CLAIM_NEXT = (
    "SELECT * FROM claim_next(%(lock_class)s, %(lock_key)s, %(now)s, %(server_clock)s,"
    " %(host)s, %(machine)s, %(alive)s::integer[], %(lease_host)s, %(lease_machine)s,"
    " %(lease_pid)s, %(lease_expires_at)s, %(modules)s::text[], %(excepts)s::text[],"
    " %(low)s::text[], %(high)s::text[], %(lanes)s, %(lane_prefixes)s::text[],"
    " %(lane_widths)s::bigint[], %(skip)s)"
)
#: How many times a claim asks the function again after checking this machine's pids.
PID_CHECKS = 3
#: How many claimed tasks a store keeps for their finish (`FinishCall`): a process
#: finishes the runs it claimed, a few at a time; one finished elsewhere is forgotten.
CLAIMS_KEPT = 256


class ClaimCall(SqlStore):
    """`PostgresStore`'s claim: the function's common path, Python's when it says so."""

    clock: str  #: Whose clock times are compared with ("server" or "caller").
    skew: timedelta  #: The server's clock less the caller's, as last measured.
    _lock_key: tuple[int, int]  #: The line's advisory lock.
    _alive: set[int]  #: The pids of this machine's running tasks last found alive.
    #: Each task this store claimed by its run's id, with the row version the claim left.
    _claimed: dict[int, tuple[Task, str]]

    def _call(self, statement: str, params: Mapping[str, Any]) -> Any:
        """The one row of one statement run in autocommit (`PostgresStore._call`)."""
        raise NotImplementedError

    def claim_next(
        self,
        *,
        scope: Scope,
        now: datetime,
        lease: Lease,
        decide: Decide,
        skip: Skip | None = None,
        lanes: Lanes | None = None,
    ) -> Claim:
        """The `Store` claim (see `SqlRuns.claim_next`): its common path in one call of
        the claim function (CLAIM_NEXT), the whole of it in Python when a dead run may
        need recovering or a late task skipping.

        The pids of this machine's running tasks are checked here (the function cannot
        see them): those found alive go with the next call, and a dead one sends the
        claim to Python, which records it. Pids found alive are checked again before
        each call; this process's own is alive.
        """
        alive = {pid for pid in self._alive if pid_alive(pid)} | {os.getpid()}
        for _ in range(PID_CHECKS):
            row = self._claim_call(scope, now, lease, skip, lanes, alive)
            status = row["status"]
            if status == "check":
                found = set(row["pids"])
                if not all(pid_alive(pid) for pid in found):
                    break
                alive |= found
                continue
            self._alive = alive
            if status == "claimed":
                task = self._with_run(row)
                run = task.runs[-1]
                self._remember(task, row["row_version"])
                return Claim(outcome=ClaimOutcome.CLAIMED, task=task, run=run, lease=lease)
            if status == "idle":
                return Claim(outcome=ClaimOutcome.IDLE)
            if status == "busy":
                return Claim(outcome=ClaimOutcome.BUSY, task=self._task(row))
            break  # "recover" or "late": Python decides
        return super().claim_next(
            scope=scope, now=now, lease=lease, decide=decide, skip=skip, lanes=lanes
        )

    def _remember(self, task: Task, row_version: str) -> None:
        """Keep a claimed task and its row's version for its run's finish."""
        claimed = self._claimed
        claimed[task.runs[-1].id] = (task, row_version)
        if len(claimed) > CLAIMS_KEPT:
            del claimed[next(iter(claimed))]

    def _with_run(self, row: Mapping[str, Any]) -> Task:
        """A task with one run and its runs by outcome, from a row of the task's columns,
        the run's prefixed "run_" (CLAIM_RUN_COLUMNS), `outcome_names` and `outcome_runs`."""
        run = self._run({name: row["run_" + name] for name, _ in CLAIM_RUN_COLUMNS})
        outcomes = tuple(zip(row["outcome_names"] or (), row["outcome_runs"] or (), strict=True))
        return replace(self._task(row, (run,)), outcomes=outcomes)

    def _claim_call(
        self,
        scope: Scope,
        now: datetime,
        lease: Lease,
        skip: Skip | None,
        lanes: Lanes | None,
        alive: set[int],
    ) -> dict[str, Any]:
        """One call of the claim function, in autocommit: its own transaction, no BEGIN."""
        ranges = module_ranges(scope.modules)
        widths = {} if lanes is None else dict(lanes.widths)
        params = {
            "lock_class": self._lock_key[0],
            "lock_key": self._lock_key[1],
            "now": now,
            "server_clock": self.clock == "server",
            "host": self.host,
            "machine": self.machine,
            "alive": sorted(alive),
            "lease_host": lease.host,
            "lease_machine": lease.machine,
            "lease_pid": lease.pid,
            "lease_expires_at": lease.expires_at,
            "modules": list(scope.modules),
            "excepts": list(scope.excepts),
            "low": [low for low, _ in ranges],
            "high": [high for _, high in ranges],
            "lanes": lanes is not None,
            "lane_prefixes": list(widths),
            "lane_widths": list(widths.values()),
            "skip": skip is not None,
        }
        row: dict[str, Any] = self._call(CLAIM_NEXT, params)
        self.skew = row["server_now"] - now if self.clock == "server" else timedelta(0)
        return row
