"""What the dashboard asks of the API: pages of tasks, owner links, running tasks, the log feed."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

import pytest

from taskcron import TaskCron, errors, values
from taskcron.config import Config, WebConfig
from tests.conftest import FakeClock

TOKEN = "a-token-of-twenty-chars"


def test_a_page_of_tasks_is_a_slice_of_the_list(tc: TaskCron) -> None:
    for i in range(7):
        tc.schedule("m" if i % 2 else "n", command=["true"], owner="ann" if i < 4 else None)
    whole = [t.id for t in tc.list(all=True)]

    assert [t.id for t in tc.list(all=True, limit=3)] == whole[:3]
    assert [t.id for t in tc.list(all=True, limit=3, offset=3)] == whole[3:6]
    assert [t.id for t in tc.list(all=True, offset=5)] == whole[5:]
    owned = [t.id for t in tc.list(owner="ann")]
    assert [t.id for t in tc.list(owner="ann", limit=2, offset=1)] == owned[1:3]


@pytest.mark.parametrize(
    ("limit", "offset", "message"),
    [(0, 0, "invalid limit 0: must be at least 1"), (5, -1, "invalid offset -1")],
)
def test_a_bad_page_is_bad_input(tc: TaskCron, limit: int, offset: int, message: str) -> None:
    with pytest.raises(errors.InputError, match=message):
        tc.list(limit=limit, offset=offset)


def test_an_owner_link_is_signed_with_a_key_derived_from_the_token(
    home: Path, clock: FakeClock
) -> None:
    app = TaskCron(config=Config(home=home, web=WebConfig(token=TOKEN)), clock=clock)
    key = hmac.new(TOKEN.encode(), b"taskcron owner-link v1", hashlib.sha256).digest()
    message = "owner-link\0user/42 é".encode()
    signature = hmac.new(key, message, hashlib.sha256).hexdigest()

    assert app.owner_link("user/42 é") == f"/owner/user%2F42%20%C3%A9?sig={signature}"


def test_an_owner_link_needs_a_configured_token(tc: TaskCron) -> None:
    with pytest.raises(errors.ConfigError, match=r"web\.token"):
        tc.owner_link("ann")
    configured = values.replace(tc.config, web=WebConfig(token=TOKEN))
    with pytest.raises(errors.InputError, match="invalid owner"):
        TaskCron(config=configured).owner_link("bad\nowner")


def test_the_log_feed_gives_new_records_without_waiting(tc: TaskCron) -> None:
    tc.schedule("m", command=["true"])
    feed = tc.log_feed(tc.log_filter(modules=["m"]))
    try:
        assert feed.poll() == []
        task = tc.schedule("m", command=["true"])
        tc.schedule("other", command=["true"])
        tc.pause(task.id)
        assert [(r["event"], r["task"]) for r in feed.poll()] == [
            ("task.scheduled", task.id),
            ("task.paused", task.id),
        ]
        assert feed.poll() == []
    finally:
        feed.close()


def test_running_lists_nothing_on_a_fresh_home_and_creates_nothing(tc: TaskCron) -> None:
    tc.home.mkdir()
    assert tc.running() == []
    assert not (tc.home / "tasks.db").exists()
