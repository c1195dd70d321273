"""Fixtures for the metrics' tests: a project whose config writes the textfile, run by
the installed script, and prometheus_client's parsers over what it prints."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

pytest.importorskip("prometheus_client", reason="prometheus_client (the test extra) is missing")

from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics
from prometheus_client.parser import text_string_to_metric_families as classic

from tests.conftest import clean_env, script

#: Text that a key and a rule's name may hold, and the text formats must escape.
HOSTILE_KEY = 'k"ey\\ \u2028é{x="1"}'
HOSTILE_RULE = 'ops "night" \\ shift'
#: A module id as odd as one may be.
ODD_MODULE = "a.B-c_9.x-"


@dataclass
class Project:
    """A config file, its home and its textfile; `run` runs the installed script on it."""

    config: Path
    home: Path
    textfile: Path

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [script(), "--config", str(self.config), *args],
            capture_output=True,
            text=True,
            env=clean_env(),
            timeout=60,
            check=False,
        )
        if check:
            assert done.returncode == 0, (args, done.stdout, done.stderr)
        return done


def write_project(tmp_path: Path, *, extra: str = "") -> Project:
    """A project keeping one run a task, writing the textfile, with an alert rule that
    sends a task's failure through a command and an Apprise URL to a closed local port;
    `extra`: top-level keys."""
    config = tmp_path / "taskcron.toml"
    config.write_text(
        'home = "home"\n' + extra + "[history]\nkeep_runs = 1\n"
        '[metrics]\ntextfile = "textfile/taskcron.prom"\n'
        "[[alerts]]\n"
        f"name = {json.dumps(HOSTILE_RULE)}\n"
        'on = ["failed"]\ncommand = ["true"]\nnotify = ["json://127.0.0.1:9/"]\n'
        'timeout = "2s"\n'
    )
    (tmp_path / "textfile").mkdir()
    return Project(
        config=config, home=tmp_path / "home", textfile=tmp_path / "textfile" / "taskcron.prom"
    )


@pytest.fixture
def project(tmp_path: Path) -> Project:
    made = write_project(tmp_path)
    made.run("init")
    return made


Families = dict[str, list[tuple[str, dict[str, str], float]]]


def parsed(text: str, parser: Callable[[str], object] = openmetrics) -> Families:
    """The families a text holds, by name: each sample's name, labels and value."""
    found: Families = {}
    for family in parser(text):  # type: ignore[attr-defined]
        found[family.name] = [(s.name, dict(s.labels), s.value) for s in family.samples]
    return found


def sample(families: Families, name: str, **labels: str) -> float | None:
    """The value of the sample `name` with exactly `labels` (None when absent)."""
    family = name.removesuffix("_total")
    for suffix in ("_bucket", "_count", "_sum"):
        family = family.removesuffix(suffix)
    for found, its_labels, value in families.get(family, []):
        if found == name and its_labels == labels:
            return value
    return None


__all__ = ["classic", "openmetrics"]
