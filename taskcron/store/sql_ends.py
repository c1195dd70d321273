"""What a run's end writes beside the run itself, over SQL: the history counts, the
task's health and the alert events it makes, and the missed runs found."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from taskcron.model import Next, Outcome, RunEnd, State, Task, bucket_of, iso
from taskcron.store.protocol import MINUTES_KEPT
from taskcron.store.queries import BUCKET_COLUMNS
from taskcron.store.sql_base import Connection, SqlBase, job_over
from taskcron.values import replace

#: What a run left on its task, as `Statements.MOVE_TASK`'s flags and values.
Left = dict[str, Any]
#: A move that keeps nothing of a run.
NOTHING_LEFT: Left = {
    "set_result": False,
    "result": None,
    "set_progress": False,
    "progress": None,
    "save_step": False,
    "step_state": None,
    "clear_steps": False,
    "set_health": False,
    "failing_since": None,
    "missed_since": None,
}


class SqlEnds(SqlBase):
    """Counting a run that ended, a task's health as its runs end, and missed runs."""

    #: The minute whose older minutes this store last dropped (`_count`).
    _minutes_dropped: datetime | None = None

    def _health(self, task: Task, end: RunEnd, where: Next | tuple[State, datetime]) -> Left:
        """How a task's health changes as a run ends, as `_place`'s parameters, and the
        alert events that change makes (`alerts`), decided here, in the finish's
        transaction, so that one process alone makes them.

        A job that ends done recovers a failing or missed task; one that fails for good
        makes a healthy task failing (`failed`; a failing one stays so: `failing`). A
        run ended as interrupted says so (`interrupted`). A job not over yet (a retry
        to come, a step to continue) changes nothing else.
        """
        alerts: list[str] = []
        if end.outcome is Outcome.INTERRUPTED:
            alerts.append("interrupted")
        failing, missed = task.failing_since, task.missed_since
        if job_over(end.outcome, where):
            if end.outcome is Outcome.DONE:
                if failing is not None or missed is not None:
                    alerts.append("recovered")
                failing = None
            else:
                alerts.append("failing" if failing is not None else "failed")
                failing = failing or end.ended_at
            missed = None
        return {
            "set_health": True,
            "failing_since": None if failing is None else self._encode_time(failing),
            "missed_since": None if missed is None else self._encode_time(missed),
            "alerts": tuple(alerts),
        }

    def _count(self, db: Connection, task: Task, end: RunEnd) -> None:
        """Count a run that ended: for its task, and by module id and outcome ever and by
        minute (`_counted`), one upsert a table; drop the minutes no longer kept."""
        sql, counted = self.sql, self._counted(task, end)
        for statement in (
            sql.COUNT_TASK_OUTCOME,
            sql.COUNT_OUTCOME_TOTAL,
            sql.COUNT_OUTCOME_MINUTE,
        ):
            db.execute(statement, counted)
        self._drop_minutes(db, end)

    def _counted(self, task: Task, end: RunEnd) -> dict[str, Any]:
        """The counting statements' parameters (each takes those it names): the task, its
        module id, the outcome, the duration and its bucket (`bucket_n`: 1 or 0), the
        minute it ended in."""
        seconds = max(end.elapsed, 0.0)
        bucket = bucket_of(seconds)
        minute = end.ended_at.astimezone(timezone.utc).replace(second=0, microsecond=0)
        return {
            "task_id": task.id,
            "module": task.module,
            "outcome": end.outcome.value,
            "seconds": seconds,
            "minute": self._encode_time(minute),
            **{name: int(n == bucket) for n, name in enumerate(BUCKET_COLUMNS)},
        }

    def _drop_minutes(self, db: Connection, end: RunEnd) -> None:
        """Drop the minutes no longer kept, the first time this store counts a run in a
        minute (none is older yet the next time; a drop that rolled back waits for the
        next minute)."""
        minute, before = self._minutes_to_drop(end)
        if before is not None:
            db.execute(self.sql.DROP_OLD_MINUTES, {"before": self._encode_time(before)})
            self._minutes_dropped = minute

    def _minutes_to_drop(self, end: RunEnd) -> tuple[datetime, datetime | None]:
        """The minute a run ended in, and the minutes before which to drop as it is
        counted: None when this store dropped them already in that minute."""
        minute = end.ended_at.astimezone(timezone.utc).replace(second=0, microsecond=0)
        return minute, None if minute == self._minutes_dropped else minute - MINUTES_KEPT

    def mark_missed(self, now: datetime, *, limit: int = 100) -> list[Task]:
        """The `Store` missed runs: the recurring tasks found missed at `now` (queued more
        than their `missed_after` past due, no run started since), each marked missed at
        its due time in this transaction, so that one process alone finds it, and
        returned with the alert event `missed`; at most `limit`, the longest missed
        first. When none is, it costs one probe of tasks_watch, read-only."""
        sql, now_kept = self.sql, self._encode_time(now)
        with self._read(now=now) as db:
            if db.execute(sql.ANY_MISSED, {"now": now_kept}).fetchone() is None:
                return []
        found: list[Task] = []
        with self._transaction(now=now) as db:
            rows = db.execute(sql.MISSED_TASKS, {"now": now_kept, "limit": limit}).fetchall()
            for row in rows:
                if db.execute(sql.MARK_MISSED, {"id": row["id"]}).rowcount == 1:
                    found.append(replace(self._load(db, row["id"], runs=False), alerts=("missed",)))
            for module in sorted({task.module for task in found}):
                many = sum(task.module == module for task in found)
                self._add_count(db, "missed", {"module": module}, many)
        return found

    def _add_count(self, db: Connection, name: str, labels: Mapping[str, str], value: int) -> None:
        """Add `value` to a counter in the caller's transaction."""
        labels_kept = json.dumps(dict(labels), sort_keys=True, separators=(",", ":"))
        db.execute(self.sql.COUNT, {"name": name, "labels": labels_kept, "value": value})

    def note_alerted(
        self,
        task_id: int,
        sent: Mapping[str, datetime],
        *,
        channels: Mapping[tuple[str, str], int] | None = None,
    ) -> None:
        """The `Store` note of alerts sent: when each rule sent each event (`"RULE:EVENT"`)
        of a task, merged into what it holds (`Task.alerted_json`), and the alerts counted
        by (rule, channel). A task gone meanwhile is left alone; its alerts are counted."""
        with self._transaction() as db:
            for (rule, channel), many in sorted((channels or {}).items()):
                self._add_count(db, "alerts", {"channel": channel, "rule": rule}, many)
            row = db.execute(self.sql.SELECT_ALERTED, {"id": task_id}).fetchone()
            if row is None:
                return
            held = json.loads(row["alerted"] or "{}")
            held.update({key: iso(at) for key, at in sent.items()})
            db.execute(self.sql.SET_ALERTED, {"alerted": json.dumps(held), "id": task_id})

    def missed(self, now: datetime, *, limit: int = 100) -> list[Task]:
        """The `Store` missed tasks: those found missed, and those past their time that
        no tick has found yet, by id; at most `limit`. Reads only (two index probes)."""
        with self._read(now=now) as db:
            rows = db.execute(
                self.sql.MISSED_NOW, {"now": self._encode_time(now), "limit": limit}
            ).fetchall()
            return [self._load(db, row["id"], runs=False) for row in rows]
