"""The `[[alerts]]` rules as the config reads them, and what an alert says."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from taskcron import alerts, config, configfile, errors
from taskcron.config import AlertRule
from taskcron.model import Outcome, Run, Scope, Target, TargetKind, Task
from tests.conftest import clean_env, script

NOW = datetime(2026, 12, 7, 3, 0, tzinfo=timezone.utc)


@pytest.fixture(autouse=True)
def cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    for name in (configfile.ENV_HOME, configfile.ENV_CONFIG):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def load(cwd: Path, text: str) -> config.Config:
    (cwd / "taskcron.toml").write_text(text)
    return config.load()


def test_a_rule_is_read_with_its_defaults(cwd: Path) -> None:
    settings = load(
        cwd,
        '[web]\nurl = "https://tasks.example.com/"\n'
        '[[alerts]]\nname = "ops"\nwebhook = "https://example.com/hook"\n'
        '[[alerts]]\nname = "billing"\nmodules = ["billing"]\nexcept = ["billing.test"]\n'
        'on = ["failed", "overrun"]\nnotify = ["slack://A/B/C", "slack://D/E/F"]\n'
        'command = ["/bin/page", "-v"]\ncooldown = "1h"\nrepeat = "1d"\ntimeout = 3\n',
    )

    ops, billing = settings.alerts
    assert ops == AlertRule(name="ops", webhook="https://example.com/hook")
    assert ops.on == ("failed", "recovered", "missed") and ops.timeout == timedelta(seconds=10)
    assert billing.scope == Scope(modules=("billing",), excepts=("billing.test",))
    assert (billing.cooldown, billing.repeat) == (timedelta(hours=1), timedelta(days=1))
    assert [c.label for c in alerts.channels(billing)] == ["slack", "slack#2", "command"]
    assert settings.web.url == "https://tasks.example.com"
    assert settings.web.task_url(7) == "https://tasks.example.com/tasks/7"


def test_a_rule_covers_its_events_and_its_scope(cwd: Path) -> None:
    rule = AlertRule(
        name="b", scope=Scope(modules=("billing",), excepts=("billing.test",)), command=("x",)
    )
    everything = AlertRule(name="all", command=("x",), on=("overrun",))

    assert rule.covers("billing.eu", "failed") and rule.covers("billing", "missed")
    assert not rule.covers("billing.test.a", "failed")
    assert not rule.covers("billingx", "failed") and not rule.covers("billing", "overrun")
    assert alerts.rules_for([rule, everything], "billing.eu", "overrun") == (everything,)
    assert alerts.rules_for([rule, everything], "billing.eu", "failed") == (rule,)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("alerts = 1\n", "config key 'alerts' must be a list of tables ([[alerts]])"),
        ('[[alerts]]\nwebhook = "http://h/"\n', "config key 'alerts[0].name' is missing: name"),
        (
            '[[alerts]]\nname = "a"\ncommand = ["x"]\nnotfy = []\n',
            "unknown config key 'alerts[0].notfy': did you mean 'alerts[0].notify'?",
        ),
        (
            '[[alerts]]\nname = "a"\ncommand = ["x"]\n[[alerts]]\nname = "a"\ncommand = ["y"]\n',
            "config key 'alerts[1].name': another rule is named 'a'",
        ),
        ('[[alerts]]\nname = "a"\n', "config key 'alerts[0]' (rule 'a') sends nowhere"),
        (
            '[[alerts]]\nname = "a"\ncommand = ["x"]\non = ["failed", "exploded"]\n',
            "config key 'alerts[0].on' must list events among failed, recovered, missed,"
            " overrun, interrupted, not 'exploded'",
        ),
        (
            '[[alerts]]\nname = "a"\ncommand = ["x"]\nmodules = ["bad..id"]\n',
            "config key 'alerts[0].modules': ",
        ),
        ('[[alerts]]\nname = "a"\nnotify = "slack://x"\n', "config key 'alerts[0].notify' must"),
        ('[[alerts]]\nname = "a"\ncommand = []\n', "config key 'alerts[0].command' must be a"),
        (
            '[[alerts]]\nname = "a"\nwebhook = "ftp://h/x"\n',
            "config key 'alerts[0].webhook' must be an http:// or https:// URL, not 'ftp://h/x'",
        ),
        (
            '[[alerts]]\nname = "a"\ncommand = ["x"]\ncooldown = "soon"\n',
            "config key 'alerts[0].cooldown': ",
        ),
        (
            '[[alerts]]\nname = "a"\ncommand = ["x"]\ntimeout = 0\n',
            "config key 'alerts[0].timeout' must be more",
        ),
        ('[web]\nurl = "tasks.example.com"\n', "config key 'web.url' must be an http:// or"),
    ],
)
def test_a_bad_rule_is_one_error_naming_its_key(cwd: Path, text: str, message: str) -> None:
    with pytest.raises(errors.ConfigError) as info:
        load(cwd, text)

    assert str(info.value).startswith(message), str(info.value)


def test_every_command_checks_the_rules_even_an_idle_tick(cwd: Path) -> None:
    import subprocess

    (cwd / "taskcron.toml").write_text('[[alerts]]\nname = "a"\ncommand = ["x"]\non = "failed"\n')
    for args in (["tick"], ["list"]):
        result = subprocess.run(
            [script(), *args], capture_output=True, text=True, env=clean_env(), cwd=cwd
        )
        assert (result.returncode, result.stdout) == (2, "")
        assert result.stderr == (
            "taskcron: error: config key 'alerts[0].on' must be a list of strings\n"
        )


def task_and_run() -> tuple[Task, Run]:
    task = Task(
        id=12,
        module="billing.invoices",
        title="send invoices",
        target=Target(kind=TargetKind.CALL, value="app:send"),
        due_at=NOW,
        attempts=3,
        max_attempts=3,
        created_at=NOW,
        updated_at=NOW,
    )
    output = "".join(f"line {n}\n" for n in range(1, 31))
    run = Run(
        id=40,
        task_id=12,
        attempt=3,
        started_at=NOW,
        ended_at=NOW,
        outcome=Outcome.FAILED,
        error="ZeroDivisionError: division by zero\nmore",
        output_tail=output,
    )
    return task, run


def test_an_alert_carries_the_task_the_attempt_the_error_and_the_last_lines() -> None:
    task, run = task_and_run()
    alert = alerts.alert_for(
        "failed", task, run, host="web-1", at=NOW, web_url="https://t.example.com"
    )

    shown = alert.to_json("billing")
    assert shown == {
        "version": 1,
        "event": "failed",
        "rule": "billing",
        "task": 12,
        "module": "billing.invoices",
        "title": "send invoices",
        "attempt": 3,
        "max_attempts": 3,
        "error": "ZeroDivisionError: division by zero",
        "output": "\n".join(f"line {n}" for n in range(11, 31)),
        "host": "web-1",
        "url": "https://t.example.com/tasks/12",
        "at": "2026-12-07T03:00:00+00:00",
        "details": {},
        "test": False,
    }
    assert json.loads(json.dumps(shown)) == shown
    assert alert.subject() == "taskcron: task 12 failed: billing.invoices send invoices"
    body = alert.body()
    assert "Attempt 3 of 3, on host web-1" in body and "line 30" in body
    assert body.endswith("https://t.example.com/tasks/12")


def test_the_guide_documents_every_key_of_the_alert_json() -> None:
    guide = (Path(__file__).resolve().parents[2] / "docs/pages/guides/alerts.md").read_text()
    table = guide.split("## The alert's JSON", 1)[1].split("\n## ", 1)[0]
    task, run = task_and_run()
    keys = alerts.alert_for("failed", task, run, host="h", at=NOW).to_json("r")

    assert [k for k in keys if f"| `{k}` |" not in table] == []
