"""A real Prometheus scrapes the metrics: from `taskcron web`'s /metrics, and from the
textfile through a real node_exporter (Debian's `prometheus` and
`prometheus-node-exporter`, each on a private port of the loopback). It also loads
examples/monitoring's alert rules, which must evaluate, and answers every query of
the example dashboard."""

from __future__ import annotations

import json
import select
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import clean_env, script, wait_for
from tests.metrics.conftest import Project, write_project
from tests.monitoring.test_examples import RULES, dashboard_queries
from tests.web.conftest import stop

PROMETHEUS = "/usr/bin/prometheus"
NODE_EXPORTER = "/usr/bin/prometheus-node-exporter"
#: How long Prometheus may take to start and scrape both targets.
DEADLINE = 60.0
#: The alerts examples/monitoring's rules define.
RULE_NAMES = (
    "TaskcronRunsFailing",
    "TaskcronMissedRuns",
    "TaskcronTickStale",
    "TaskcronTextfileStale",
    "TaskcronBacklogGrowing",
)


def free_port() -> int:
    """A port of the loopback that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def servers() -> Iterator[list[subprocess.Popen[str]]]:
    """The servers a test starts, stopped at its end whatever happens."""
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in reversed(started):
        stop(process)


def start_web(project: Project, servers: list[subprocess.Popen[str]]) -> str:
    """`taskcron web --port 0` on the project; its address (host:port)."""
    process = subprocess.Popen(
        [script(), "--config", str(project.config), "web", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env(TASKCRON_WEB_TOKEN="the-token-of-this-test-1"),
    )
    servers.append(process)
    assert process.stdout is not None
    ready = wait_for(
        lambda: select.select([process.stdout], [], [], 0.1)[0] or process.poll() is not None
    )
    assert ready and process.poll() is None, process.communicate(timeout=10)
    first = process.stdout.readline()
    return first.split("http://", 1)[1].split("/", 1)[0]


def query(port: int, expression: str) -> list[dict[str, object]]:
    """The result of an instant query, or nothing while Prometheus is not answering."""
    try:
        body = api(port, "query?" + urllib.parse.urlencode({"query": expression}))
    except OSError:
        return []
    result: list[dict[str, object]] = body["data"]["result"]
    return result


def api(port: int, path: str) -> dict[str, Any]:
    """What Prometheus's HTTP API answers at `path` (after /api/v1/)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/{path}", timeout=5) as answer:
        body: dict[str, Any] = json.load(answer)
    return body


def rules_evaluated(port: int) -> list[dict[str, Any]]:
    """The example rules as Prometheus evaluates them, once each has been evaluated."""
    try:
        groups = api(port, "rules")["data"]["groups"]
    except OSError:
        return []
    found = [rule for group in groups for rule in group["rules"]]
    return found if found and all(rule.get("health") != "unknown" for rule in found) else []


def test_prometheus_scrapes_the_dashboard_and_node_exporter_reads_the_textfile(
    tmp_path: Path, servers: list[subprocess.Popen[str]]
) -> None:
    missing = [path for path in (PROMETHEUS, NODE_EXPORTER) if shutil.which(path) is None]
    if missing:
        print(f"skipped: {', '.join(missing)} not installed (Debian's prometheus packages)")
        pytest.skip(f"{', '.join(missing)} not installed")
    project = write_project(tmp_path)
    project.run("init")
    project.run("schedule", "scraped.module", "--", "true")
    project.run("tick")
    assert project.textfile.exists()

    web = start_web(project, servers)
    exporter_port, prometheus_port = free_port(), free_port()
    servers.append(
        subprocess.Popen(
            [
                NODE_EXPORTER,
                "--collector.disable-defaults",
                "--collector.textfile",
                f"--collector.textfile.directory={project.textfile.parent}",
                f"--web.listen-address=127.0.0.1:{exporter_port}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            text=True,
        )
    )
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n"
        f"rule_files:\n  - {RULES}\n"
        "scrape_configs:\n"
        f"  - job_name: taskcron\n    static_configs:\n      - targets: ['{web}']\n"
        f"  - job_name: node\n    static_configs:\n"
        f"      - targets: ['127.0.0.1:{exporter_port}']\n"
    )
    servers.append(
        subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{prometheus_port}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            text=True,
        )
    )

    deadline = time.monotonic() + DEADLINE
    jobs: dict[str, str] = {}
    while time.monotonic() < deadline and len(jobs) < 2:
        for series in query(prometheus_port, "taskcron_runs_total"):
            labels = series["metric"]
            assert isinstance(labels, dict)
            if labels.get("module") == "scraped.module":
                jobs[str(labels["job"])] = str(series["value"][1])  # type: ignore[index]
        time.sleep(0.2)
    assert jobs == {"taskcron": "1", "node": "1"}, f"not scraped within {DEADLINE:g}s: {jobs}"
    ages = query(prometheus_port, "node_textfile_scrape_error")
    assert [series["value"][1] for series in ages] == ["0"]  # type: ignore[index]

    # The examples run on this Prometheus: every rule evaluates, every panel's query answers.
    rules = wait_for(lambda: rules_evaluated(prometheus_port), timeout=DEADLINE)
    assert {(rule["name"], rule["health"]) for rule in rules} == {
        (name, "ok") for name in RULE_NAMES
    }, rules
    for title, expression in dashboard_queries():
        if expression.startswith("label_values("):
            continue  # Grafana's, not PromQL: its series are the next query's
        expression = expression.replace("$module", ".*")
        params = urllib.parse.urlencode({"query": expression})
        assert api(prometheus_port, f"query?{params}")["status"] == "success", title
    assert query(prometheus_port, "taskcron_tasks")  # what label_values(taskcron_tasks) reads
    shown = query(prometheus_port, 'max by (module, outcome) (taskcron_runs_total{module=~".*"})')
    assert {str(series["metric"]["module"]) for series in shown} == {"scraped.module"}  # type: ignore[index]
