"""The log store: records of every run, concurrent appends, rotation, reading from the end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from taskcron import TaskCron
from taskcron.config import Config, LogConfig
from taskcron.logstore import LogFilter, LogStore, iter_all, record
from taskcron.model import Scope
from tests.conftest import T0, FakeClock

WRITER = """
import sys
from datetime import datetime, timezone
from taskcron.logstore import LogStore, record
store = LogStore(sys.argv[1], max_bytes=int(sys.argv[2]), backups=1000)
writer = int(sys.argv[3])
now = datetime.now(timezone.utc)
for i in range(int(sys.argv[4])):
    pad = "x" * (i % 300)  # records of varied length
    store.append(record("test.write", at=now, message=pad, writer=writer, seq=i))
"""


def test_concurrent_writers_lose_and_tear_nothing_across_rotations(tmp_path: Path) -> None:
    directory = tmp_path / "log"
    writers, each = 8, 10_000
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(directory), "400000", str(w), str(each)]
        )
        for w in range(writers)
    ]
    for proc in procs:
        assert proc.wait(timeout=300) == 0
    store = LogStore(directory, backups=1000)
    assert len(store.rotated()) > 5, "rotation should have happened while writing"
    seen: dict[tuple[int, int], int] = {}
    for path in store.files():
        for line in path.read_bytes().splitlines():
            rec = json.loads(line)  # every line is one whole record
            key = (rec["writer"], rec["seq"])
            seen[key] = seen.get(key, 0) + 1
            assert rec["message"] == "x" * (rec["seq"] % 300)
    assert len(seen) == writers * each
    assert set(seen.values()) == {1}


def test_each_writer_s_records_stay_in_order(tmp_path: Path) -> None:
    store = LogStore(tmp_path / "log", max_bytes=2000, backups=100)
    for i in range(200):
        store.append(record("e", at=T0, seq=i))
    assert [r["seq"] for r in iter_all(store)] == list(range(200))


def test_rotation_keeps_only_the_configured_backups(tmp_path: Path) -> None:
    store = LogStore(tmp_path / "log", max_bytes=500, backups=2)
    for i in range(100):
        store.append(record("e", at=T0, seq=i, pad="y" * 100))
    assert [p.name for p in store.files()] == [
        "taskcron.jsonl",
        "taskcron.jsonl.1",
        "taskcron.jsonl.2",
    ]
    assert [r["seq"] for r in iter_all(store)][-1] == 99


def test_records_have_the_common_fields_with_millisecond_utc_times(tmp_path: Path) -> None:
    store = LogStore(tmp_path / "log")
    store.append(record("task.done", at=T0 + timedelta(microseconds=123456), task=3, module="m"))
    (rec,) = store.tail(5)
    assert rec == {
        "ts": "2026-01-05T12:00:00.123+00:00",
        "level": "info",
        "event": "task.done",
        "task": 3,
        "module": "m",
        "message": "",
    }


def test_records_below_the_configured_level_are_not_written(tmp_path: Path) -> None:
    store = LogStore(tmp_path / "log", level="warning")
    store.append(record("a", at=T0, level="info"), record("b", at=T0, level="error"))
    assert [r["event"] for r in store.tail(10)] == ["b"]


def test_tail_reads_from_the_end_whatever_the_size_of_the_log(tmp_path: Path) -> None:
    directory = tmp_path / "log"
    directory.mkdir()
    active = directory / "taskcron.jsonl"
    with active.open("wb") as handle:
        handle.truncate(1 << 30)  # a 1 GB (sparse) file ...
        handle.seek(0, os.SEEK_END)
        handle.write(b"\n")
        for i in range(50):  # ... ending with the records asked for
            handle.write(json.dumps({"event": "e", "seq": i}).encode() + b"\n")
    store = LogStore(directory)
    io = Path(f"/proc/{os.getpid()}/io")
    if not io.exists():
        pytest.skip("needs /proc/<pid>/io to count bytes read")

    def bytes_read() -> int:
        fields = dict(line.split(": ") for line in io.read_text().splitlines())
        return int(fields["rchar"])

    before = bytes_read()
    found = store.tail(20)
    spent = bytes_read() - before
    assert [r["seq"] for r in found] == list(range(30, 50))
    assert spent < 1 << 20, f"read {spent} bytes of a 1 GB log for 20 records"


def test_tail_goes_on_into_rotated_files_and_filters(tmp_path: Path) -> None:
    store = LogStore(tmp_path / "log", max_bytes=300, backups=50)
    for i in range(60):
        module = "billing.eu" if i % 3 == 0 else "shop"
        level = "error" if i % 10 == 0 else "info"
        store.append(record("e", at=T0 + timedelta(seconds=i), module=module, level=level, seq=i))
    billing = LogFilter(scope=Scope.parse(["billing"]))
    assert [r["seq"] for r in store.tail(3, keep=billing)] == [51, 54, 57]
    errors_only = LogFilter(level="warning")
    assert [r["seq"] for r in store.tail(100, keep=errors_only)] == [0, 10, 20, 30, 40, 50]
    recent = LogFilter(since=T0 + timedelta(seconds=55))
    assert [r["seq"] for r in store.tail(100, keep=recent, stop=recent.before_since)] == list(
        range(55, 60)
    )


def test_a_run_leaves_started_output_and_done_records(tc: TaskCron) -> None:
    task = tc.schedule("m.sub", command=["sh", "-c", "echo one; echo two >&2"], title="t")
    tc.tick()
    records = [r for r in iter_all(tc.logstore) if r["task"] == task.id]
    assert [r["event"] for r in records[:2]] == ["task.scheduled", "task.started"]
    outputs = {(r["stream"], r["message"]) for r in records if r["event"] == "task.output"}
    assert outputs == {("stdout", "one"), ("stderr", "two")}
    done = records[-1]
    run = tc.get(task.id).runs[-1]
    assert done["event"] == "task.done"
    assert done["module"] == "m.sub"
    assert done["elapsed"] == run.elapsed
    assert done["exit_code"] == 0
    assert done["started_at"] == run.started_at.isoformat()
    assert done["ended_at"] == run.ended_at.isoformat() if run.ended_at else False


def test_a_failed_callable_records_its_error_traceback_and_logging(
    tmp_path: Path, clock: FakeClock
) -> None:
    (tmp_path / "logging_tasks.py").write_text(
        "import logging\n"
        "def f(ctx, data):\n"
        "    ctx.log.info('working on %s', data)\n"
        "    logging.getLogger('app.db').warning('slow query')\n"
        "    ctx.log.debug('not written at info')\n"
        "    ctx.progress(1, 2)\n"
        "    raise RuntimeError('boom')\n"
    )
    config = tmp_path / "taskcron.toml"
    config.write_text('home = "h"\n')
    app = TaskCron(config=str(config), clock=clock)
    task = app.schedule("m", call="logging_tasks:f", data=5)
    app.tick()
    records = [r for r in iter_all(app.logstore) if r["task"] == task.id]
    logged = [(r["logger"], r["level"], r["message"]) for r in records if r.get("stream") == "log"]
    assert logged == [
        ("taskcron.task.m", "info", "working on 5"),
        ("app.db", "warning", "slow query"),
    ]
    progress = [r for r in records if r["event"] == "task.progress"]
    assert [(p["done"], p["total"], p["message"]) for p in progress] == [(1, 2, "1/2 (50%)")]
    failed = records[-1]
    assert failed["event"] == "task.failed"
    assert failed["level"] == "error"
    assert failed["error"] == "RuntimeError: boom"
    assert "raise RuntimeError('boom')" in failed["traceback"]


def test_a_task_printing_50_mb_finishes_and_keeps_the_tail(home: Path, clock: FakeClock) -> None:
    app = TaskCron(config=Config(home=home), clock=clock)
    line = "z" * 999
    script = f"import sys\nfor i in range(50_000): sys.stdout.write('{line}\\n')\nprint('last')"
    task = app.schedule("m", command=[sys.executable, "-c", script])
    result = app.tick()
    assert not result.failed
    run = app.get(task.id).runs[-1]
    assert run.truncated
    assert run.output_tail.endswith(line + "\nlast\n")
    assert len(run.output_tail.encode()) == app.config.log.output_tail
    last = app.logstore.tail(2)
    assert (last[0]["event"], last[0]["message"]) == ("task.output", "last")


def test_idle_and_busy_ticks_write_only_at_debug_level(home: Path, clock: FakeClock) -> None:
    quiet = TaskCron(config=Config(home=home), clock=clock)
    assert quiet.tick().outcome == "idle"
    assert not quiet.logstore.active.exists()
    loud = TaskCron(config=Config(home=home, log=LogConfig(level="debug")), clock=clock)
    assert loud.tick().outcome == "idle"
    assert [r["event"] for r in loud.logstore.tail(5)] == ["tick.idle"]


def test_prune_removes_old_finished_tasks_and_old_rotated_logs(
    tc: TaskCron, clock: FakeClock
) -> None:
    old_done = tc.schedule("m", command=["true"])
    tc.tick()
    old_cancelled = tc.schedule("m", command=["true"])
    tc.cancel(old_cancelled.id)
    old_queued = tc.schedule("later", command=["true"])
    tc.pause(old_queued.id)
    waiting = tc.schedule("m", command=["true"])
    rotated = tc.logstore.directory / "taskcron.jsonl.1"
    rotated.write_text("")
    stamp = (clock.now - timedelta(days=40)).timestamp()
    os.utime(rotated, (stamp, stamp))
    clock.advance(timedelta(days=31))
    recent = tc.schedule("m", command=["false"])
    tc.cancel(recent.id)
    assert tc.prune() == (2, 1, None, 1)
    left = {t.id for t in tc.list(all=True)}
    assert left == {old_queued.id, waiting.id, recent.id}
    assert old_done.id not in left
    assert not rotated.exists()
