"""/metrics on the dashboard: its own token, else open on the loopback only, else refused."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("starlette", reason="the web extra is not installed")

from starlette.testclient import TestClient

from taskcron import TaskCron, errors
from taskcron.config import Config, WebConfig
from taskcron.metrics import CONTENT_TYPE
from taskcron.web import Settings, settings
from taskcron.web.routes import build
from tests.metrics.conftest import HOSTILE_KEY, parsed, sample

TOKEN = "the-token-of-this-test-1"
METRICS_TOKEN = "the-metrics-token-of-this-test"


@pytest.fixture
def app(tmp_path: Path) -> Iterator[TaskCron]:
    made = TaskCron(config=Config(home=tmp_path / "home"))
    made.schedule("m", command=["true"], every="1h", key=HOSTILE_KEY)
    made.schedule("m", command=["true"])
    made.tick()
    yield made
    made.close()


def client(app: TaskCron, **chosen: object) -> TestClient:
    settings = Settings(**{"host": "127.0.0.1", "port": 8765, "token": TOKEN, **chosen})  # type: ignore[arg-type]
    return TestClient(build(app, settings), follow_redirects=False)


def test_without_a_metrics_token_metrics_are_open_on_the_loopback(app: TaskCron) -> None:
    with client(app) as open_client:
        response = open_client.get("/metrics")

    assert response.status_code == 200
    assert response.headers["content-type"] == CONTENT_TYPE
    families = parsed(response.text)
    assert sample(families, "taskcron_runs_total", module="m", outcome="done") == 1
    assert sample(families, "taskcron_next_due_timestamp_seconds", task=HOSTILE_KEY, module="m")


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.7", "::"])
def test_without_a_metrics_token_metrics_are_refused_beyond_the_loopback(
    app: TaskCron, host: str
) -> None:
    with client(app, host=host) as far_client:
        response = far_client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})

    assert response.status_code == 403
    assert response.text == "set web.metrics_token to serve /metrics beyond the loopback\n"


@pytest.mark.parametrize(
    ("header", "status"),
    [
        (None, 401),
        (f"Bearer {TOKEN}", 401),  # the dashboard's token is not the metrics token
        ("Bearer wrong-metrics-token-of-this-test", 401),
        (f"Basic {METRICS_TOKEN}", 401),
        (f"Bearer {METRICS_TOKEN}", 200),
    ],
)
def test_with_a_metrics_token_metrics_need_it(
    app: TaskCron, header: str | None, status: int
) -> None:
    headers = {} if header is None else {"Authorization": header}
    with client(app, host="0.0.0.0", metrics_token=METRICS_TOKEN) as far_client:
        response = far_client.get("/metrics", headers=headers)

    assert response.status_code == status
    if status == 401:
        assert response.text.count("\n") == 1 and "web.metrics_token" in response.text
    else:
        assert response.text.endswith("# EOF\n")


def test_the_metrics_token_reads_nothing_else(app: TaskCron) -> None:
    with client(app, metrics_token=METRICS_TOKEN) as metrics_client:
        response = metrics_client.get(
            "/api/status", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}
        )

    assert response.status_code == 401


@pytest.mark.parametrize(
    ("metrics_token", "message"),
    [
        ("short", "invalid token (config key 'web.metrics_token')"),
        (TOKEN, "config key 'web.metrics_token' must differ from web.token and web.read_token"),
    ],
)
def test_a_short_or_shared_metrics_token_is_refused(
    tmp_path: Path, metrics_token: str, message: str
) -> None:
    web = WebConfig(token=TOKEN, metrics_token=metrics_token)
    with (
        TaskCron(config=Config(home=tmp_path / "home", web=web)) as app,
        pytest.raises(errors.ConfigError, match=re.escape(message)),
    ):
        settings(app)
