"""`taskcron web` on a PostgreSQL server that stops and starts again: 503 with one line
while it is away, pages and the event stream again once it is back, and one line on
stderr for each. The server is this module's own: the session's is never stopped."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import pytest

from tests.conftest import wait_for
from tests.pgserver import Cluster, PostgresServer
from tests.web.conftest import Server, copy_examples, run_tc, serve, stop
from tests.web.test_command import Events

LOST = "taskcron: warning: the store is unreachable; retrying: "
BACK = "taskcron: the store is reachable again, after "
UNREACHABLE = "the store is unreachable; retrying: "


@pytest.fixture
def dashboard(tmp_path: Path, private_postgres: PostgresServer) -> Iterator[Server]:
    """`taskcron web` on the example project, its store on this module's own server."""
    url = private_postgres.fresh_database()
    yield from serve(copy_examples(tmp_path), {"TASKCRON_STORE": url})


def get(server: Server, path: str) -> httpx.Response:
    headers = {"Authorization": f"Bearer {server.token}"}
    return httpx.get(server.base + path, headers=headers, timeout=30)


def stderr_of(server: Server) -> str:
    stop(server.process)
    assert server.process.stderr is not None
    return server.process.stderr.read()


def test_while_the_store_is_down_pages_answer_503_with_one_line_and_200_once_back(
    dashboard: Server, private_cluster: Cluster
) -> None:
    assert get(dashboard, "/tasks").status_code == 200
    private_cluster.halt()

    page = get(dashboard, "/tasks")
    assert page.status_code == 503, page.text
    assert UNREACHABLE in page.text and "Traceback" not in page.text
    answer = get(dashboard, "/api/status")
    assert answer.status_code == 503
    message = answer.json()["error"]
    assert message.startswith(UNREACHABLE) and "\n" not in message
    assert int(answer.headers["retry-after"]) >= 1
    assert get(dashboard, "/login").status_code == 200  # it needs nothing of the store

    private_cluster.resume()
    wait_for(lambda: get(dashboard, "/tasks").status_code == 200, timeout=5, interval=0.1)
    assert get(dashboard, "/api/status").status_code == 200
    assert get(dashboard, "/log").status_code == 200

    said = stderr_of(dashboard).splitlines()
    assert [line for line in said if line.startswith(LOST)] == [said[0]], said
    assert len([line for line in said if line.startswith(BACK)]) == 1, said
    assert len(said) == 2, said


def test_the_log_page_reads_the_shared_log_again_after_a_restart(
    dashboard: Server, private_cluster: Cluster
) -> None:
    assert get(dashboard, "/api/log").status_code == 200
    private_cluster.restart()

    wait_for(lambda: get(dashboard, "/api/log").status_code == 200, timeout=5, interval=0.1)
    task_id = int(
        run_tc(dashboard.config, "schedule", "mail.x", "--", "true", env=dashboard.env).stdout
    )
    records = get(dashboard, "/api/log").json()
    assert any(r.get("task") == task_id for r in records), records


def test_the_event_stream_hears_a_task_scheduled_after_a_restart(
    dashboard: Server, private_cluster: Cluster
) -> None:
    headers = {"Authorization": f"Bearer {dashboard.token}"}
    with httpx.Client(base_url=dashboard.base, timeout=httpx.Timeout(30, read=30)) as client:
        request = client.build_request("GET", "/events", headers=headers)
        response = client.send(request, stream=True)
        assert response.status_code == 200
        heard_after_a_restart(dashboard, private_cluster, Events(response))


def heard_after_a_restart(dashboard: Server, private_cluster: Cluster, events: Events) -> None:
    private_cluster.restart()

    schedule = ("schedule", "mail.x", "--in", "1h", "--", "true")
    task_id = int(run_tc(dashboard.config, *schedule, env=dashboard.env).stdout)
    found = events.until(lambda n, d: n == "task" and d["id"] == task_id, timeout=20)
    assert found["state"] == "queued"
    assert dashboard.process.poll() is None
