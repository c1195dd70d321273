"""The reference pages are generated from the code, are current, and describe everything."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import click
import pytest

from taskcron import config, configfile, jsonshapes
from taskcron.cli import cli
from taskcron.lifecycle import EVENT_DOCS, Event
from tests.conftest import clean_env, script
from tests.docs.conftest import load_generator

gen = load_generator()


def visible_options() -> list[tuple[str, click.Option]]:
    found = [("taskcron", p) for p in cli.params if isinstance(p, click.Option)]
    for name, command in gen.commands(cli):
        found += [(f"taskcron {name}", p) for p in command.params if isinstance(p, click.Option)]
    return [(where, p) for where, p in found if not p.hidden]


@pytest.mark.parametrize("name", sorted(gen.BUILDERS))
def test_the_committed_reference_page_is_what_the_generator_writes(name: str) -> None:
    path = gen.REFERENCE / name
    assert path.exists(), f"{path} is missing: run python docs/gen_reference.py"
    stale = f"{path} is stale: run python docs/gen_reference.py"
    assert path.read_text() == gen.BUILDERS[name](), stale


@pytest.mark.parametrize(
    ("where", "option"), visible_options(), ids=lambda v: v if isinstance(v, str) else v.opts[0]
)
def test_every_option_has_a_description(where: str, option: click.Option) -> None:
    assert option.help, f"{where} {option.opts[0]} has no help"


@pytest.mark.parametrize("name", [name for name, _ in gen.commands(cli)])
def test_every_command_has_a_description(name: str) -> None:
    command = dict(gen.commands(cli))[name]
    assert command.help, f"taskcron {name} has no help"


def test_every_config_key_has_a_description_and_a_field() -> None:
    keys = set(configfile.KEYS - configfile.TABLE_KEYS.keys())
    keys |= {f"{table}.{key}" for table, inner in configfile.TABLE_KEYS.items() for key in inner}

    assert {key for key, _ in gen.config_keys()} == keys
    assert set(config.KEY_DOCS) == keys
    assert all(config.KEY_DOCS.values())


def test_every_event_has_a_description() -> None:
    names = {value for key, value in vars(Event).items() if key.isupper()}

    assert set(EVENT_DOCS) == names
    assert all(meaning for _level, _fields, meaning in EVENT_DOCS.values())


def test_a_missing_description_stops_the_generator(monkeypatch: pytest.MonkeyPatch) -> None:
    option = click.Option(["--undescribed"])
    monkeypatch.setattr(cli.commands["tick"], "params", [*cli.commands["tick"].params, option])

    with pytest.raises(gen.MissingDescriptionError, match="taskcron tick --undescribed"):
        gen.pages()


def test_the_check_mode_names_a_stale_page(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gen, "REFERENCE", tmp_path)
    monkeypatch.setattr(gen, "pages", lambda: {tmp_path / "cli.md": "new\n"})
    (tmp_path / "cli.md").write_text("old\n")

    assert gen.main(["--check"]) == 1
    assert gen.main([]) == 0
    assert gen.main(["--check"]) == 0


# --- the JSON shapes are the keys the commands print ------------------------


def taskcron(home: Path, *args: str, input: str | None = None) -> Any:
    result = subprocess.run(
        [script(), *args],
        capture_output=True,
        text=True,
        env=clean_env(TASKCRON_HOME=str(home)),
        cwd=home.parent,
        input=input,
        check=True,
    )
    lines = result.stdout.splitlines()
    return json.loads(lines[0]) if len(lines) == 1 else [json.loads(line) for line in lines]


@pytest.fixture(scope="module")
def printed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, Any]]]:
    """Every JSON object the commands print on a small home, by shape name."""
    home = tmp_path_factory.mktemp("shapes") / "home"
    step = "printf '::progress 1/2 half\\n'; exit 75"
    scheduled = [
        taskcron(home, "schedule", "a", "--json", "--", "sh", "-c", step),
        taskcron(home, "schedule", "b", "--every", "1h", "--in", "1h", "--json", "--", "true"),
        taskcron(
            home, "schedule", "c", "--cron", "0 6 * * *", "--key", "k", "--json", "--", "true"
        ),
    ]
    ticked = taskcron(home, "tick", "--json")
    task = taskcron(home, "show", "1", "--json")
    other = tmp_path_factory.mktemp("other") / "tasks.db"
    recurring = [s for s in scheduled if s["schedule"]]
    rules = tmp_path_factory.mktemp("alerts") / "taskcron.toml"
    rules.write_text('[[alerts]]\nname = "ops"\ncommand = ["true"]\n')
    return {
        "task": [task, *taskcron(home, "list", "--json")],
        "run": task["runs"],
        "progress": [task["progress"]],
        "target": [task["target"]],
        "schedule": [s["schedule"] for s in recurring],
        "schedule --json": scheduled,
        "next --json": taskcron(home, "next", "--json"),
        "tick --json": [ticked],
        "status --json": [taskcron(home, "status", "--json")],
        "check --json": [taskcron(home, "check", "--json")],
        "prune --json": [taskcron(home, "prune", "--dry-run", "--json")],
        "migrate-store --json": [
            taskcron(home, "migrate-store", "--to", f"sqlite:///{other}", "--json")
        ],
        "alerts test --json": [taskcron(home, "--config", str(rules), "alerts", "test", "--json")],
        "log record": taskcron(home, "log", "--json"),
    }


@pytest.mark.parametrize("shape", jsonshapes.SHAPES, ids=lambda s: s.name)
def test_each_json_shape_lists_the_keys_printed(
    shape: jsonshapes.Shape, printed: dict[str, list[dict[str, Any]]]
) -> None:
    seen = {key for obj in printed[shape.name] for key in obj}
    if shape.name in {"schedule --json", "next --json"}:
        seen -= set(jsonshapes.TASK.keys)  # the task's own keys, documented there
        seen |= set(shape.keys) & {"due_at"}
    if shape.name == "log record":
        seen &= set(shape.keys)  # each event adds its own fields, documented with the events
        assert all(set(shape.keys) <= set(obj) for obj in printed[shape.name])

    assert seen == set(shape.keys)
