"""PostgresLog: the `log` table of a PostgreSQL store, which every host's records are copied to."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from taskcron import errors
from taskcron.lifecycle import Recorder
from taskcron.logstore import LogFilter, LogStore, iter_all, record
from taskcron.model import Scope
from taskcron.store import postgres_log
from taskcron.store.postgres import PostgresStore
from taskcron.store.postgres_log import PostgresLog, batched, unbatched
from tests.conftest import T0, FakeClock, wait_for

#: A server that is not there: its socket directory does not exist.
NOWHERE = "postgresql://taskcron@/taskcron?host=/nonexistent-taskcron-socket"


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


def test_a_write_that_cannot_reach_the_server_fails_keeping_its_records_to_write_later() -> None:
    shared = PostgresLog(NOWHERE, host="h")
    with pytest.raises(
        errors.StoreUnreachable,
        match=r"^cannot connect to store postgresql://taskcron@/\S+: .* No such file or directory"
        r"; 1 record kept to write when it answers$",
    ):
        shared.append([output("one")])
    with pytest.raises(errors.StoreUnreachable, match=r"; 3 records kept to write when it"):
        shared.append([output("two"), output("three")])
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
        ("log.unshared", "warning", "records are in this host's log b"),
        ("test.event", "info", "1"),
        ("test.event", "info", "2"),
    ]
    assert (
        "cannot connect to store postgresql://taskcron@/taskcron"
        in list(iter_all(local))[1]["message"]
    )


@pytest.fixture
def shared(postgres_url: str) -> Iterator[PostgresLog]:
    """The log table of a new PostgreSQL store."""
    PostgresStore(postgres_url).close()  # makes the schema
    opened = PostgresLog(postgres_url, host="h")
    yield opened
    opened.close()


LEVELS = ("debug", "info", "warning", "error", "critical")


def some_records() -> list[dict[str, Any]]:
    """Records of every level and of several tasks and modules, with runs of output lines."""
    found = []
    for n in range(30):
        module = ("a", "a.x", "ab", "b", None)[n % 5]
        level = LEVELS[n % len(LEVELS)]
        at = T0 + timedelta(minutes=n)
        if n % 4 == 0:
            found += [
                record("task.output", at=at, host="h", task=n % 3, module=module, message=line)
                for line in ("l1", "l2", "l3")
            ]
        else:
            found.append(record("e", at=at, level=level, task=n % 3, module=module, message=""))
    return found


@pytest.mark.parametrize(
    "keep",
    [
        LogFilter(),
        LogFilter(task=1),
        LogFilter(scope=Scope(modules=("a",))),
        LogFilter(scope=Scope(excepts=("a",))),
        LogFilter(scope=Scope(modules=("a",), excepts=("a.x",))),
        *(LogFilter(level=level) for level in LEVELS[:4]),
        LogFilter(since=T0 + timedelta(minutes=12)),
        LogFilter(task=2, level="warning", since=T0 + timedelta(minutes=3)),
    ],
)
def test_the_table_keeps_what_a_file_keeps(
    shared: PostgresLog, tmp_path: Path, keep: LogFilter, monkeypatch: pytest.MonkeyPatch
) -> None:
    records = some_records()
    local = LogStore(tmp_path / "log", level="debug")
    for start in range(0, len(records), 4):  # several rows of output lines each time
        local.append(*records[start : start + 4])
        shared.append(records[start : start + 4])
    monkeypatch.setattr(postgres_log, "PAGE", 2)  # read back two rows a query
    for count in (1, 2, 5, 100):
        expected = local.tail(count, keep=keep, stop=keep.before_since)
        assert shared.tail(count, keep=keep) == expected, count


def test_a_follower_reads_a_row_that_commits_after_a_later_one_once(
    shared: PostgresLog, postgres_url: str
) -> None:
    import psycopg

    follower = shared.follow(5, keep=LogFilter())
    assert next(follower) == []
    shared.append([record("test.first", at=T0)])
    assert [r["event"] for r in wait_for(lambda: next(follower))] == ["test.first"]
    with psycopg.connect(postgres_url) as late:  # a writer whose insert commits late
        text = '{"ts": "2026-01-05T12:00:00.000+00:00", "event": "test.late"}'
        inserted = late.execute(
            "INSERT INTO taskcron.log (at, host, level, event, record)"
            " VALUES (now(), 'h', 'info', 'test.late', %s) RETURNING id",
            (text,),
        ).fetchone()
        assert inserted is not None
        late.execute("SELECT pg_notify('taskcron', %s)", (str(inserted[0]),))
        shared.append([record("test.later", at=T0)])  # a later id, committed first
        assert [r["event"] for r in wait_for(lambda: next(follower))] == ["test.later"]
    assert [r["event"] for r in wait_for(lambda: next(follower))] == ["test.late"]
    shared.append([record("test.last", at=T0)])
    assert [r["event"] for r in wait_for(lambda: next(follower))] == ["test.last"]
    follower.close()


def test_a_follower_whose_connection_is_lost_goes_on_after_the_last_row_it_read(
    shared: PostgresLog, postgres_url: str
) -> None:
    import psycopg

    said: list[bool] = []
    follower = shared.follow(5, keep=LogFilter(), say=lambda lost, _: said.append(lost))
    assert next(follower) == []
    shared.append([record("test.first", at=T0)])
    assert [r["event"] for r in wait_for(lambda: next(follower))] == ["test.first"]
    with psycopg.connect(postgres_url, autocommit=True) as admin:  # the follower's connection
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname ="
            " current_database() AND pid <> pg_backend_pid() AND query NOT LIKE 'WITH added%%'"
        )
    shared.append([record("test.unheard", at=T0)])  # told of to no one

    assert [r["event"] for r in wait_for(lambda: next(follower))] == ["test.unheard"]
    shared.append([record("test.last", at=T0)])
    assert [r["event"] for r in wait_for(lambda: next(follower))] == ["test.last"]
    assert said == [True, False]  # lost, then back
    follower.close()


def test_prune_counts_records_not_rows(shared: PostgresLog) -> None:
    shared.append([record("task.output", at=T0, message=m) for m in ("a", "b", "c")])
    shared.append([record("e", at=T0 + timedelta(hours=1))])
    assert shared.prune(before=T0 + timedelta(minutes=1), dry_run=True) == 3
    assert len(shared.tail(10, keep=LogFilter())) == 4
    assert shared.prune(before=T0 + timedelta(minutes=1)) == 3
    assert [r["event"] for r in shared.tail(10, keep=LogFilter())] == ["e"]


def test_dump_reads_back_in_order_the_rows_that_rows_makes_of_records(shared: PostgresLog) -> None:
    records = some_records()
    for start in range(0, len(records), 4):
        shared.append(records[start : start + 4])
    made = [
        row
        for start in range(0, len(records), 4)
        for row in shared.rows(records[start : start + 4])
    ]

    dumped = list(shared.dump(batch=3))  # three rows a round trip

    assert dumped == made
    assert [rec for row in dumped for rec in unbatched(json.loads(row.record))] == records
    assert sum(row.records for row in dumped) == shared.count() == len(records) > len(dumped)


def test_rows_leave_out_records_without_a_time_and_read_a_time_without_a_zone_as_utc(
    shared: PostgresLog,
) -> None:
    records = [
        {"event": "no.time"},
        {"ts": "yesterday"},
        {"ts": "2026-01-05T12:00:00", "event": "e"},
    ]
    (row,) = shared.rows(records)
    assert (row.at, row.event, row.host, row.records) == (T0, "e", "h", 1)
