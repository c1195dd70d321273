"""examples/monitoring: the Prometheus alert rules and the Grafana dashboard.

The rules pass `promtool check rules`, and their unit tests
(`taskcron-rules.test.yml`: two hosts counted once, a stale tick, a growing
backlog) pass `promtool test rules`, both with Debian's Prometheus. Every metric
a rule or a panel names is one taskcron exports.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from taskcron.metrics import FAMILIES, Family

EXAMPLES = Path(__file__).parents[2] / "examples" / "monitoring"
RULES = EXAMPLES / "taskcron-rules.yml"
RULE_TESTS = EXAMPLES / "taskcron-rules.test.yml"
DASHBOARD = EXAMPLES / "taskcron-dashboard.json"


def sample_names(family: Family) -> set[str]:
    """The names a query may use of a family: a histogram's series, else its own."""
    if family.type == "histogram":
        return {f"{family.name}_{part}" for part in ("bucket", "sum", "count")}
    return {family.name}


#: The metric families taskcron exports, as the sample names a query uses.
EXPORTED = set().union(*(sample_names(family) for family in FAMILIES))
#: node_exporter's own, for the textfile's age.
NODE_EXPORTER = {"node_textfile_mtime_seconds"}
METRIC = re.compile(r"\b(taskcron_[a-z_]+|node_[a-z_]+)\b")


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.skip("promtool is not installed (Debian's prometheus package)")
    return found


def run_promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool(), *args], cwd=EXAMPLES, capture_output=True, text=True, timeout=60, check=False
    )


def test_the_alert_rules_pass_promtool_check_rules() -> None:
    done = run_promtool("check", "rules", RULES.name)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 5 rules found" in done.stdout


def test_the_alert_rules_fire_as_their_unit_tests_expect() -> None:
    done = run_promtool("test", "rules", RULE_TESTS.name)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def dashboard_queries() -> list[tuple[str, str]]:
    dashboard = json.loads(DASHBOARD.read_text())
    found = [
        (panel["title"], target["expr"])
        for panel in dashboard["panels"]
        for target in panel["targets"]
    ]
    found += [("$module", v["definition"]) for v in dashboard["templating"]["list"]]
    return found


def test_every_panel_queries_metrics_taskcron_exports() -> None:
    queries = dashboard_queries()
    assert len(queries) >= 10
    for title, expr in queries:
        names = set(METRIC.findall(expr))
        assert names, title
        assert names <= EXPORTED, (title, names - EXPORTED)


def test_every_rule_names_metrics_taskcron_or_node_exporter_exports() -> None:
    exprs = re.findall(r"expr: >?\n?\s*(.+?)\n\s+(?:for|labels):", RULES.read_text(), re.S)
    assert len(exprs) == 5
    for expr in exprs:
        names = set(METRIC.findall(expr))
        assert names and names <= EXPORTED | NODE_EXPORTER, expr
