"""PostgresLog: the `log` table of a PostgreSQL store, which every host's records are copied to."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from taskcron import errors
from taskcron.lifecycle import Recorder
from taskcron.logstore import LogStore, iter_all, record
from taskcron.store.postgres_log import PostgresLog, batched, unbatched
from tests.conftest import T0, FakeClock

#: A server that is not there: its socket directory does not exist.
NOWHERE = "postgresql:///taskcron?host=/nonexistent-taskcron-socket"


def output(message: str, **fields: Any) -> dict[str, Any]:
    return record("task.output", at=T0, host="h", task=1, module="m", message=message, **fields)


def test_records_that_differ_only_in_their_message_share_a_row() -> None:
    records = [
        output("one", stream="stdout"),
        output("two", stream="stdout"),
        output("err", stream="stderr"),
        output("three", stream="stdout"),
        output("four", stream="stdout"),
        record("task.done", at=T0, host="h", task=1, module="m", message="done"),
    ]
    rows = batched(records)
    assert [row.get("lines") for row in rows] == [["one", "two"], None, ["three", "four"], None]
    assert [rec for row in rows for rec in unbatched(row)] == records
    assert [list(rec) for row in rows for rec in unbatched(row)] == [list(r) for r in records]


def test_a_write_that_cannot_reach_the_server_fails_and_the_table_is_left_alone_a_while() -> None:
    shared = PostgresLog(NOWHERE, host="h")
    with pytest.raises(errors.StoreError, match=r"^cannot connect to store postgresql:///"):
        shared.append([output("one")])
    with pytest.raises(errors.StoreError, match=r"the log table failed less than 30s ago$"):
        shared.append([output("two")])
    shared.close()


def test_the_recorder_keeps_records_local_and_warns_once_while_copies_fail(
    tmp_path: Path, clock: FakeClock
) -> None:
    local = LogStore(tmp_path / "log")
    shared = PostgresLog(NOWHERE, host="h")
    recorder = Recorder(lambda: local, clock, host="h", shared=lambda: shared)
    for n in range(3):
        recorder.emit("test.event", message=str(n))
    written = [(r["event"], r["level"], r["message"][:32]) for r in iter_all(local)]
    assert written == [
        ("test.event", "info", "0"),
        ("log.unshared", "warning", "records stay in this host's log "),
        ("test.event", "info", "1"),
        ("test.event", "info", "2"),
    ]
    assert "cannot connect to store postgresql:///taskcron" in list(iter_all(local))[1]["message"]
