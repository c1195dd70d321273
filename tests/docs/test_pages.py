"""The README and the documentation pages say what the code does."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import click
import pytest

from taskcron.cli import cli
from taskcron.lifecycle import Event
from taskcron.model import Outcome
from tests.conftest import SERIAL, clean_env, script

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
PAGES = ROOT / "docs" / "pages"
GENERATED = {
    PAGES / "reference" / name for name in ("cli.md", "config.md", "log-events.md", "json.md")
}
#: The pages written by hand, all in one text.
WRITTEN = "\n".join(p.read_text() for p in sorted(PAGES.rglob("*.md")) if p not in GENERATED)


def page(name: str) -> str:
    return (PAGES / name).read_text()


@pytest.mark.parametrize("name", sorted(cli.commands))
def test_every_command_is_in_the_getting_started_overview(name: str) -> None:
    overview = page("getting-started.md").split("## Every command at a glance", 1)[1]

    assert f"\ntaskcron {name} " in overview


@pytest.mark.parametrize(
    ("command", "option"),
    [
        (name, option)
        for name, command in sorted(cli.commands.items())
        for param in command.params
        if isinstance(param, click.Option)
        for option in param.opts
        if option.startswith("--") and option != "--help"
    ],
)
def test_every_long_option_is_in_a_page_written_by_hand(command: str, option: str) -> None:
    assert re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", WRITTEN), f"{command} {option}"


def test_the_example_crontab_is_what_generate_cron_writes(tmp_path: Path) -> None:
    examples = ROOT / "examples"
    empty = tmp_path / "crontab"
    empty.write_text("")
    result = subprocess.run(
        [
            script(),
            *("--config", str(examples / "taskcron.toml"), "generate-cron", "--every", "1m"),
            *("--crontab-file", str(empty), "--dry-run"),  # writes nothing, not even the home
        ],
        capture_output=True,
        text=True,
        env=clean_env(),
        cwd=tmp_path,
        check=True,
    )
    generated = result.stdout.replace(script(), "/srv/shop/.venv/bin/taskcron")
    generated = generated.replace(str(examples.parent), "/srv/shop")
    shown = (examples / "crontab.txt").read_text()
    assert shown.endswith(generated)


@SERIAL  # four ticks of a 3-second budget must get through the import: no neighbours
def test_the_steps_example_imports_its_csv_in_several_steps(tmp_path: Path) -> None:
    examples = tmp_path / "examples"
    shutil.copytree(ROOT / "examples", examples)
    shutil.rmtree(examples / ".taskcron", ignore_errors=True)
    env = clean_env(PATH=f"{Path(script()).parent}:{clean_env()['PATH']}")
    subprocess.run(
        ["sh", str(examples / "steps_demo.sh")],
        env=env,
        cwd=tmp_path,
        check=True,
        capture_output=True,
    )
    shown = subprocess.run(
        [script(), "--config", str(examples / "taskcron.toml"), "show", "1", "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    task = json.loads(shown.stdout)
    assert task["state"] == "done"
    assert task["result"]["rows"] == 5000
    assert [r["outcome"] for r in task["runs"]][-1] == "done"
    assert len(task["runs"]) >= 2
    assert task["progress"]["percent"] == 100.0


def test_the_states_page_names_every_run_outcome_among_the_outcomes() -> None:
    said = page("concepts/states.md").split("Run outcomes:", 1)[1].split(". ", 1)[0]

    assert [o.value for o in Outcome if f"`{o.value}`" not in said] == []


def test_the_log_events_page_gives_every_task_event_a_row() -> None:
    rows = [
        line for line in page("reference/log-events.md").splitlines() if line.startswith("| `task.")
    ]
    named = {name for row in rows for name in re.findall(r"`(task\.\w+)`", row.split("|")[1])}

    events = [value for name, value in vars(Event).items() if name.startswith("TASK_")]
    assert sorted(events) == sorted(named)


def test_the_readme_says_what_the_test_command_takes_and_what_the_cron_test_needs() -> None:
    section = README.split("Run the tests:", 1)[1].split("\n## ", 1)[0]

    assert "minutes" in section
    assert "CI=1" in section and "tests/cron/test_cron_e2e.py" in section


def test_the_postgresql_guide_says_what_a_tick_does_when_postgresql_is_down(tmp_path: Path) -> None:
    down = "postgresql:///app?host=" + str(tmp_path / "no-server")
    result = subprocess.run(
        [script(), "--store", down, "tick"],
        capture_output=True,
        text=True,
        env=clean_env(TASKCRON_HOME=str(tmp_path)),
        cwd=tmp_path,
        timeout=60,
    )
    guide = page("guides/postgresql.md")
    section = " ".join(
        guide.split("## When the database goes away", 1)[1].split("\n## ")[0].split()
    )

    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr.startswith(f"taskcron: error: cannot connect to store {down}: ")
    assert "`taskcron: error: cannot connect to store URL: ...`, and exit 1" in section


def test_the_configuration_page_says_a_bare_number_is_seconds() -> None:
    assert "it is a number of seconds, never minutes" in " ".join(page("configuration.md").split())


def test_ci_installs_and_tests_as_the_readme_says_and_builds_the_site() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    install = re.search(r"pip install -e '(\.\[[\w,]+\])' && pytest", README)

    assert install is not None, "the README's install and test line"
    assert f"pip install -q -e '{install.group(1)}'" in ci
    assert "\npytest\n" in ci
    assert "docs" in install.group(1)
    assert "mkdocs build --strict" in ci and "-f docs/mkdocs.yml" in ci
