"""Delivery through real channels: a local HTTP server (webhooks, Apprise's json://), a
local SMTP server (Apprise's mailto://) and real scripts; `taskcron alerts test` and
`taskcron check` as the installed script runs them."""

from __future__ import annotations

import json
import logging
import subprocess
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from taskcron import TaskCron, alerts
from taskcron.config import AlertRule, Config
from taskcron.model import Scope
from tests.alerts.conftest import Hooks, Mailbox
from tests.conftest import clean_env, script, wait_for

NOW = datetime(2026, 12, 7, 3, 0, tzinfo=timezone.utc)


def an_alert(event: str = "failed") -> alerts.Alert:
    return alerts.Alert(
        event=event,
        task=12,
        module="billing.invoices",
        title="send invoices",
        attempt=2,
        max_attempts=3,
        error="ValueError: no customer",
        output="sending\nfailed",
        host="web-1",
        url="https://tasks.example.com/tasks/12",
        at=NOW,
    )


def executable(path: Path, text: str) -> str:
    path.write_text("#!/bin/sh\n" + text)
    path.chmod(0o755)
    return str(path)


def test_a_webhook_receives_the_alert_json(hooks: Hooks) -> None:
    rule = AlertRule(name="ops", webhook=f"{hooks.url}/hook")

    (answer,) = alerts.deliver(rule, an_alert())

    assert (answer.rule, answer.channel, answer.ok, answer.detail) == (
        "ops",
        "webhook",
        True,
        "HTTP 200",
    )
    assert hooks.received == [("/hook", an_alert().to_json("ops"))]


def test_a_command_reads_the_alert_json_on_its_stdin(tmp_path: Path) -> None:
    got = tmp_path / "got.json"
    page = executable(tmp_path / "page", f'cat > "{got}"\necho "paged the on-call"\n')
    rule = AlertRule(name="pager", command=(page,))

    (answer,) = alerts.deliver(rule, an_alert())

    assert (answer.channel, answer.ok, answer.detail) == (
        "command",
        True,
        "exit 0: paged the on-call",
    )
    assert json.loads(got.read_text()) == an_alert().to_json("pager")


def test_apprise_sends_json_and_mail_through_its_own_code(hooks: Hooks, mailbox: Mailbox) -> None:
    mailto = f"mailto://127.0.0.1:{mailbox.port}?from=taskcron@example.com&to=ops@example.com"
    rule = AlertRule(name="ops", notify=(f"json://127.0.0.1:{hooks.port}/apprise", mailto))

    answers = alerts.deliver(rule, an_alert())

    assert [(a.channel, a.ok, a.detail) for a in answers] == [
        ("json", True, "sent"),
        ("mailto", True, "sent"),
    ]
    ((path, body),) = hooks.received
    assert path == "/apprise"
    assert body["title"] == an_alert().subject() and body["message"] == an_alert().body()
    ((sender, to, mail),) = mailbox.mails
    assert (sender, to) == ("taskcron@example.com", ["ops@example.com"])
    assert "Subject: taskcron: task 12 failed: billing.invoices send invoices" in mail


def test_failures_are_answers_and_warnings_never_exceptions(
    hooks: Hooks, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    failing = executable(tmp_path / "page", 'echo "no pager here" >&2\nexit 3\n')
    rule = AlertRule(
        name="ops",
        notify=(f"json://127.0.0.1:{hooks.port}/fail", "nosuchservice://x"),
        command=(failing,),
        webhook=f"{hooks.url}/fail",
    )
    reported: list[tuple[str, alerts.Delivery]] = []

    with caplog.at_level(logging.WARNING, logger="taskcron.alerts"):
        answers = alerts.deliver(
            rule, an_alert(), report=lambda a, d: reported.append((a.event, d))
        )

    assert [(a.channel, a.ok) for a in answers] == [
        ("json", False),
        ("nosuchservice", False),
        ("command", False),
        ("webhook", False),
    ]
    details = [a.detail for a in answers]
    assert "500" in details[0]
    assert details[1] == "not an Apprise URL it can use: nosuchservice://..."
    assert details[2:] == ["exit 3: no pager here", "HTTP 500 Internal Server Error"]
    assert reported == [("failed", a) for a in answers]
    warned = [r.getMessage() for r in caplog.records if r.name == "taskcron.alerts"]
    assert warned == [f'alert "ops" via {a.channel} failed: {a.detail}' for a in answers]
    assert warned[2:] == [
        'alert "ops" via command failed: exit 3: no pager here',
        'alert "ops" via webhook failed: HTTP 500 Internal Server Error',
    ]


def test_a_channel_that_hangs_is_given_up_within_the_timeout(hooks: Hooks, tmp_path: Path) -> None:
    sleeper = executable(tmp_path / "slow", "exec sleep 30\n")
    rule = AlertRule(
        name="ops",
        webhook=f"{hooks.url}/hang",
        command=(sleeper,),
        notify=(f"json://127.0.0.1:{hooks.port}/hang",),
        timeout=timedelta(seconds=0.5),
    )

    started = time.monotonic()
    answers = alerts.deliver(rule, an_alert(), warn=False)
    elapsed = time.monotonic() - started

    assert elapsed < 0.5 + alerts.GRACE + 0.75, answers  # a loaded machine's thread starts
    assert [(a.channel, a.ok) for a in answers] == [
        ("json", False),
        ("command", False),
        ("webhook", False),
    ]
    assert answers[1].detail == "no answer within 0.5s: stopped"
    assert answers[2].detail in ("no answer within 0.5s", "cannot reach it: timed out"), answers


def test_a_broken_report_does_not_stop_the_delivery(hooks: Hooks) -> None:
    def broken(alert: alerts.Alert, delivery: alerts.Delivery) -> None:
        raise OSError("disk full")

    (answer,) = alerts.deliver(AlertRule(name="ops", webhook=hooks.url), an_alert(), report=broken)

    assert answer.ok


def test_the_courier_delivers_beside_the_caller_and_records_each_answer(
    hooks: Hooks, tc: TaskCron
) -> None:
    ok = AlertRule(name="ok", webhook=f"{hooks.url}/ok")
    slow = AlertRule(name="slow", webhook=f"{hooks.url}/hang", timeout=timedelta(seconds=5))
    tc.init()
    courier = alerts.Courier(report=tc.recorder.alert_delivery, warn=False)

    started = time.monotonic()
    courier.send(ok, an_alert())
    courier.send(slow, an_alert("recovered"))
    courier.send(ok, an_alert("missed"))
    assert time.monotonic() - started < 0.1  # the caller never waits

    assert courier.close(timeout=0.3) is False  # /hang holds the second one
    log = tc.home / "log" / "taskcron.jsonl"
    records = [json.loads(line) for line in log.read_text().splitlines()]
    sent = [(r["event"], r["rule"], r["alert"], r["task"], r["module"]) for r in records]
    assert sent == [("alert.sent", "ok", "failed", 12, "billing.invoices")]
    assert records[0]["channel"] == "webhook" and records[0]["detail"] == "HTTP 200"
    hooks.release.set()  # the courier's thread goes on to the end of its queue
    wait_for(lambda: len(log.read_text().splitlines()) == 3, timeout=10)
    assert [json.loads(line)["alert"] for line in log.read_text().splitlines()] == [
        "failed",
        "recovered",
        "missed",
    ]


def test_a_courier_holds_a_bounded_number_of_alerts_and_says_what_it_drops(
    hooks: Hooks, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(alerts, "MOST_PENDING", 2)
    courier = alerts.Courier(warn=False)
    rule = AlertRule(name="slow", webhook=f"{hooks.url}/hang", timeout=timedelta(seconds=1))
    for _ in range(4):
        courier.send(rule, an_alert())

    assert courier.pending == 2
    dropped = [r.getMessage() for r in caplog.records if "not sent" in r.getMessage()]
    assert dropped == ['alert "slow" not sent: 2 alerts already wait for delivery'] * 2
    hooks.release.set()
    assert courier.close(10) is True


def test_a_closed_courier_waits_for_what_it_was_sent(hooks: Hooks) -> None:
    reported: list[alerts.Delivery] = []
    with alerts.Courier(report=lambda a, d: reported.append(d)) as courier:
        for n in range(3):
            courier.send(AlertRule(name=f"r{n}", webhook=hooks.url), an_alert())
    assert [d.rule for d in reported] == ["r0", "r1", "r2"]
    assert courier.pending == 0 and alerts.Courier().close(0) is True


def test_a_failed_delivery_is_an_alert_failed_record(tc: TaskCron, hooks: Hooks) -> None:
    rule = AlertRule(name="ops", webhook=f"{hooks.url}/fail")
    tc.init()
    alerts.deliver(rule, an_alert(), report=tc.recorder.alert_delivery, warn=False)

    (record,) = [
        json.loads(line) for line in (tc.home / "log" / "taskcron.jsonl").read_text().splitlines()
    ]
    assert (record["event"], record["level"], record["rule"], record["channel"]) == (
        "alert.failed",
        "warning",
        "ops",
        "webhook",
    )
    assert record["message"] == (
        'failed alert via webhook (rule "ops") failed: HTTP 500 Internal Server Error'
    )


# --- the commands ---------------------------------------------------------------


def taskcron(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [script(), *args], capture_output=True, text=True, env=clean_env(), cwd=cwd, timeout=60
    )


def write_config(cwd: Path, hooks: Hooks, mailbox: Mailbox, failing: str) -> None:
    mailto = f"mailto://127.0.0.1:{mailbox.port}?from=taskcron@example.com&to=ops@example.com"
    (cwd / "taskcron.toml").write_text(
        '[web]\nurl = "https://tasks.example.com"\n'
        f'[[alerts]]\nname = "ops"\nnotify = ["{mailto}"]\nwebhook = "{hooks.url}/ops"\n'
        f'[[alerts]]\nname = "billing"\nmodules = ["billing"]\ncommand = ["{failing}"]\n'
    )


def test_alerts_test_sends_a_sample_through_each_channel_and_says_what_each_answered(
    tmp_path: Path, hooks: Hooks, mailbox: Mailbox
) -> None:
    failing = executable(tmp_path / "page", 'echo "pager is down" >&2\nexit 1\n')
    write_config(tmp_path, hooks, mailbox, failing)

    named = taskcron(tmp_path, "alerts", "test", "ops")
    every = taskcron(tmp_path, "alerts", "test", "--json")

    assert (named.returncode, named.stderr) == (0, "")
    lines = named.stdout.splitlines()
    assert [line.split()[:3] for line in lines] == [
        ["ok", "ops", "mailto"],
        ["ok", "ops", "webhook"],
    ]
    assert lines[1].split("  ")[-1].startswith("HTTP 200 (")
    (path, body), *_ = hooks.received
    assert (path, body["test"], body["rule"], body["url"]) == (
        "/ops",
        True,
        "ops",
        "https://tasks.example.com/tasks/0",
    )
    assert "This is a test alert" in mailbox.mails[0][2]
    assert (every.returncode, every.stderr) == (1, "")
    answered = [json.loads(line) for line in every.stdout.splitlines()]
    assert [(a["rule"], a["channel"], a["ok"], a["detail"]) for a in answered] == [
        ("ops", "mailto", True, "sent"),
        ("ops", "webhook", True, "HTTP 200"),
        ("billing", "command", False, "exit 1: pager is down"),
    ]


def test_alerts_test_refuses_an_unknown_rule_and_a_config_without_rules(
    tmp_path: Path, hooks: Hooks, mailbox: Mailbox
) -> None:
    empty = taskcron(tmp_path, "alerts", "test")
    write_config(tmp_path, hooks, mailbox, "/bin/true")
    unknown = taskcron(tmp_path, "alerts", "test", "opps")

    assert (empty.returncode, empty.stdout) == (2, "")
    assert empty.stderr == "taskcron: error: no alert rules: the config has no [[alerts]] table\n"
    assert (unknown.returncode, unknown.stdout) == (2, "")
    assert unknown.stderr == (
        "taskcron: error: no alert rule named 'opps': the rules are 'ops', 'billing'\n"
    )
    assert hooks.received == []


def test_check_reads_the_apprise_urls(tmp_path: Path) -> None:
    config = tmp_path / "taskcron.toml"
    slack = "slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ"
    config.write_text(f'[[alerts]]\nname = "ops"\nnotify = ["{slack}", "nosuchservice://secret"]\n')
    broken = taskcron(tmp_path, "check", "--json")
    config.write_text(f'[[alerts]]\nname = "ops"\nnotify = ["{slack}"]\ncommand = ["x"]\n')
    fine = taskcron(tmp_path, "check", "--json")

    def alert_check(done: subprocess.CompletedProcess[str]) -> Any:
        return next(c for c in json.loads(done.stdout)["checks"] if c["name"] == "alerts")

    assert alert_check(broken) == {
        "name": "alerts",
        "ok": False,
        "detail": 'alert "ops": notify[1] (nosuchservice://...) is not an Apprise URL Apprise'
        " can use",
    }
    assert broken.returncode == 1 and "secret" not in broken.stdout
    assert alert_check(fine) == {
        "name": "alerts",
        "ok": True,
        "detail": "1 rule(s): ops (slack, command)",
    }


def test_a_sample_names_the_rules_first_module() -> None:
    rule = AlertRule(name="b", scope=Scope(modules=("billing",)), command=("x",))
    alert = alerts.sample(rule, host="h", at=NOW, web_url=None)
    assert (alert.module, alert.test, alert.url) == ("billing", True, None)
    assert Config().alerts == ()


def test_the_command_line_says_a_failed_delivery_in_one_warning_line(
    hooks: Hooks, capsys: pytest.CaptureFixture[str]
) -> None:
    from taskcron import cli

    handler = cli._Warnings(logging.WARNING)  # what `taskcron` puts on the root logger
    logging.getLogger().addHandler(handler)
    try:
        alerts.deliver(AlertRule(name="ops", webhook=f"{hooks.url}/fail"), an_alert())
    finally:
        logging.getLogger().removeHandler(handler)

    assert capsys.readouterr().err == (
        'taskcron: warning: alert "ops" via webhook failed: HTTP 500 Internal Server Error\n'
    )


def test_a_teller_sends_by_every_rule_that_covers_the_task_and_event_and_notes_it(
    hooks: Hooks,
) -> None:
    from tests.alerts.test_rules import task_and_run

    task, run = task_and_run()
    settings = Config(
        alerts=(
            AlertRule(name="all", webhook=f"{hooks.url}/all"),
            AlertRule(name="mail", scope=Scope(modules=("mail",)), webhook=f"{hooks.url}/mail"),
            AlertRule(name="overrun", on=("overrun",), webhook=f"{hooks.url}/overrun"),
        )
    )
    noted: list[tuple[int, dict[str, object]]] = []

    def note(task_id: int, sent: dict[str, object], *, channels: object) -> None:
        noted.append((task_id, sent))

    alerts.Teller(settings, host="h", note=note).tell(task, ("failed", "interrupted"), at=NOW)
    queued = alerts.Teller(settings, host="h", note=note, queued=True)
    queued.tell(task, ("overrun",), at=NOW, run=run)
    queued.close()

    assert [(path, body["event"], body["task"]) for path, body in hooks.received] == [
        ("/all", "failed", 12),
        ("/overrun", "overrun", 12),
    ]
    assert noted == [(12, {"all:failed": NOW}), (12, {"overrun:overrun": NOW})]
