"""The task model: module ids, scopes, durations, states, targets, tasks and runs."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from taskcron import errors
from taskcron.inputs import parse_duration, parse_module_id, parse_module_list
from taskcron.model import Outcome, Run, Scope, State, Target, TargetKind, Task

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=timezone.utc)
CET = timezone(timedelta(hours=1))

TASK_KEYS = {
    "id",
    "module",
    "title",
    "target",
    "state",
    "priority",
    "data",
    "due_at",
    "attempts",
    "max_attempts",
    "keep_runs",
    "missed_after",
    "failing_since",
    "missed",
    "runs_kept",
    "runs_total",
    "outcomes",
    "timeout",
    "created_at",
    "updated_at",
    "result",
    "owner",
    "progress",
    "steps",
    "saved_state",
    "schedule",
    "max_lateness",
    "key",
    "last_outcome",
    "runs",
}
RUN_KEYS = {
    "id",
    "attempt",
    "started_at",
    "ended_at",
    "elapsed",
    "outcome",
    "exit_code",
    "error",
    "traceback",
    "output_tail",
    "truncated",
    "host",
    "pid",
    "child_pid",
}


def make_task(**overrides: Any) -> Task:
    fields: dict[str, Any] = {
        "id": 7,
        "module": "billing.invoices",
        "title": "send invoices",
        "target": Target.call("billing.tasks:send"),
        "data_json": '{"n": 1}',
        "priority": 5,
        "due_at": T0,
        "created_at": T0 - timedelta(minutes=1),
        "updated_at": T0,
    }
    fields.update(overrides)
    return Task(**fields)


def make_run(**overrides: Any) -> Run:
    fields: dict[str, Any] = {"id": 3, "task_id": 7, "attempt": 1, "started_at": T0}
    fields.update(overrides)
    return Run(**fields)


# --- module ids -------------------------------------------------------------


FORMAT = "expected e.g. '90s', '1h30m', '1.5s' or a number of seconds"


@pytest.mark.parametrize(
    "value", ["a", "billing.invoices.eu", "a-b_c.9", "A.Z", "x" * 255, "a." * 127 + "a"]
)
def test_valid_module_id_is_returned_unchanged(value: str) -> None:
    assert parse_module_id(value) == value


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "invalid module id '': must not be empty"),
        ("a..b", "invalid module id 'a..b': empty segment"),
        (".a", "invalid module id '.a': empty segment"),
        ("a.", "invalid module id 'a.': empty segment"),
        ("../x", "invalid module id '../x': empty segment"),
        (
            "a b",
            "invalid module id 'a b': invalid character ' ' "
            "(allowed: letters, digits, '_', '-', '.')",
        ),
        (
            "a/b",
            "invalid module id 'a/b': invalid character '/' "
            "(allowed: letters, digits, '_', '-', '.')",
        ),
        (
            "a\nb",
            "invalid module id 'a\\nb': invalid character '\\n' "
            "(allowed: letters, digits, '_', '-', '.')",
        ),
        (
            "é",
            "invalid module id 'é': invalid character 'é' "
            "(allowed: letters, digits, '_', '-', '.')",
        ),
        (
            "billing.café",
            "invalid module id 'billing.café': invalid character 'é' "
            "(allowed: letters, digits, '_', '-', '.')",
        ),
        ("x" * 256, f"invalid module id '{'x' * 256}': longer than 255 characters"),
    ],
    ids=["empty", "double-dot", "leading-dot", "trailing-dot", "dotdot-slash", "space", "slash",
         "newline", "non-ascii", "non-ascii-segment", "256-chars"],
)  # fmt: skip
def test_invalid_module_id_is_refused_with_its_reason(value: str, message: str) -> None:
    with pytest.raises(errors.ModuleIdError) as info:
        parse_module_id(value)
    assert str(info.value) == message
    assert info.value.value == value


def test_module_id_error_is_an_input_error() -> None:
    with pytest.raises(errors.InputError):
        parse_module_id("a..b")


def test_module_list_splits_commas_strips_spaces_drops_duplicates_and_sorts() -> None:
    assert parse_module_list(["c,a", "b, a", "a.x"]) == ("a", "a.x", "b", "c")


def test_empty_module_list_is_empty() -> None:
    assert parse_module_list([]) == ()


@pytest.mark.parametrize("values", [["a,,b"], ["a,"], ["a", ""], ["a,b c"]])
def test_module_list_with_an_invalid_item_is_refused(values: list[str]) -> None:
    with pytest.raises(errors.ModuleIdError):
        parse_module_list(values)


# --- scopes -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("module", "inside"),
    [
        ("billing", True),
        ("billing.x", True),
        ("billing.x.y", True),
        ("billing2", False),
        ("billing-x", False),
        ("billing_x", False),
        ("bill", False),
        ("other.billing", False),
    ],
)
def test_module_filter_covers_itself_and_what_is_under_it_only(module: str, inside: bool) -> None:
    assert (module in Scope.parse(modules=["billing"])) is inside


def test_scope_without_modules_covers_every_module() -> None:
    scope = Scope.parse()
    assert "a" in scope
    assert "billing.invoices.eu" in scope


def test_scope_excepts_remove_a_module_and_what_is_under_it() -> None:
    scope = Scope.parse(excepts=["billing"])
    assert "billing" not in scope
    assert "billing.eu" not in scope
    assert "billing2" in scope
    assert "shipping" in scope


def test_scope_with_modules_and_excepts_covers_modules_minus_excepts() -> None:
    scope = Scope.parse(modules=["billing,shipping"], excepts=["billing.eu"])
    assert scope.modules == ("billing", "shipping")
    assert scope.excepts == ("billing.eu",)
    assert "billing" in scope
    assert "billing.us" in scope
    assert "shipping.x" in scope
    assert "billing.eu" not in scope
    assert "billing.eu.de" not in scope
    assert "billing.eus" in scope
    assert "other" not in scope


def test_scope_does_not_contain_non_strings() -> None:
    assert 1 not in Scope.parse()


def test_scope_with_an_invalid_module_is_refused() -> None:
    with pytest.raises(errors.ModuleIdError, match=r"^invalid module id 'a\.\.b': empty segment$"):
        Scope.parse(excepts=["a..b"])


# --- durations --------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", timedelta(seconds=90)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("1.5s", timedelta(seconds=1.5)),
        ("250ms", timedelta(milliseconds=250)),
        ("2w", timedelta(weeks=2)),
        ("1d", timedelta(days=1)),
        ("5m", timedelta(minutes=5)),
        ("1d2h3m4s5ms", timedelta(days=1, hours=2, minutes=3, seconds=4, milliseconds=5)),
        (".5s", timedelta(milliseconds=500)),
        ("90", timedelta(seconds=90)),
        ("2.5", timedelta(seconds=2.5)),
        ("0", timedelta(0)),
        ("0s", timedelta(0)),
        (" 90s ", timedelta(seconds=90)),
        (90, timedelta(seconds=90)),
        (1.5, timedelta(seconds=1.5)),
    ],
)
def test_duration_is_read(text: str | float, expected: timedelta) -> None:
    assert parse_duration(text) == expected


FORMAT_HINT = "expected e.g. '90s', '1h30m', '1.5s' or a number of seconds"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("-5s", "invalid duration '-5s': must not be negative"),
        ("-5", "invalid duration '-5': must not be negative"),
        (-5, "invalid duration '-5': must not be negative"),
        ("5x", f"invalid duration '5x': {FORMAT_HINT}"),
        ("5S", f"invalid duration '5S': {FORMAT_HINT}"),
        ("s", f"invalid duration 's': {FORMAT_HINT}"),
        ("", f"invalid duration '': {FORMAT_HINT}"),
        ("   ", f"invalid duration '   ': {FORMAT_HINT}"),
        ("1h 30m", f"invalid duration '1h 30m': {FORMAT_HINT}"),
        ("5.s", f"invalid duration '5.s': {FORMAT_HINT}"),
        ("1h30", f"invalid duration '1h30': {FORMAT_HINT}"),
        (
            "inf",
            "invalid duration 'inf': expected e.g. '90s', '1h30m', '1.5s' or a number of seconds",
        ),
        (
            "nan",
            "invalid duration 'nan': expected e.g. '90s', '1h30m', '1.5s' or a number of seconds",
        ),
        (
            "1e400",
            "invalid duration '1e400': expected e.g. '90s', '1h30m', '1.5s' or a number of seconds",
        ),
        (float("inf"), "invalid duration 'inf': must be finite"),
        (float("nan"), "invalid duration 'nan': must be finite"),
        (
            "1e20",
            "invalid duration '1e20': expected e.g. '90s', '1h30m', '1.5s' or a number of seconds",
        ),
        (
            "30m1h",
            "invalid duration '30m1h': expected e.g. '90s', '1h30m', '1.5s' or a number of seconds",
        ),
        (
            "1h1h",
            "invalid duration '1h1h': expected e.g. '90s', '1h30m', '1.5s' or a number of seconds",
        ),
        (
            "1_000",
            "invalid duration '1_000': expected e.g. '90s', '1h30m', '1.5s' or a number of seconds",
        ),
        ("\u0665", "invalid duration '\u0665': " + FORMAT),
        ("5m\n", "invalid duration '5m\\n': contains a control character"),
        ("\t5m", "invalid duration '\\t5m': contains a control character"),
        ("99999999999w", "invalid duration '99999999999w': too large"),
        (True, "invalid duration 'True': expected a number of seconds or e.g. '90s'"),
    ],
)
def test_unreadable_duration_is_refused_with_its_reason(value: str | float, message: str) -> None:
    with pytest.raises(errors.DurationError) as info:
        parse_duration(value)
    assert str(info.value) == message


def test_huge_integer_duration_is_refused_as_too_large() -> None:
    with pytest.raises(errors.DurationError, match=r"too large$"):
        parse_duration(10**400)


def test_duration_error_is_an_input_error() -> None:
    with pytest.raises(errors.InputError):
        parse_duration("soon")


# --- states -----------------------------------------------------------------


def test_state_is_parsed_from_its_name() -> None:
    assert State.parse("paused") is State.PAUSED


@pytest.mark.parametrize("name", ["x", "QUEUED", "", "done "])
def test_unknown_state_name_is_refused_with_the_choices(name: str) -> None:
    with pytest.raises(errors.StateNameError) as info:
        State.parse(name)
    assert str(info.value) == (
        f"invalid state {name!r}: expected one of queued, running, done, failed, cancelled, paused"
    )
    assert isinstance(info.value, errors.InputError)


# --- targets ----------------------------------------------------------------


@pytest.mark.parametrize("path", ["pkg.mod:func", "pkg:Class.method", "pkg:f", "_p.m2:_f"])
def test_call_target_of_the_right_form_is_accepted(path: str) -> None:
    target = Target.call(path)
    assert target.kind is TargetKind.CALL
    assert target.value == path
    assert str(target) == path
    assert target.to_json() == {"kind": "call", "value": path}


@pytest.mark.parametrize(
    "path",
    ["pkg", "pkg:", ":f", "pkg.mod:func()", "a b:c", "pkg..mod:f", "1pkg:f", "pkg:f:g", ""],
)
def test_call_target_of_the_wrong_form_is_refused(path: str) -> None:
    with pytest.raises(errors.TargetError) as info:
        Target.call(path)
    assert str(info.value) == f"invalid call target {path!r}: expected package.module:function"
    assert isinstance(info.value, errors.InputError)


@pytest.mark.parametrize("name", ["send-invoices", "billing.send", "x", "é", "n" * 255])
def test_task_target_names_a_registered_handler(name: str) -> None:
    target = Target.task(name)
    assert target.kind is TargetKind.TASK
    assert target.to_json() == {"kind": "task", "value": name}


@pytest.mark.parametrize("name", ["", "a b", "a\tb", "a\nb", "a\x00b", "a\x7fb", "n" * 256])
def test_task_target_with_a_bad_name_is_refused(name: str) -> None:
    with pytest.raises(errors.TargetError) as info:
        Target.task(name)
    assert str(info.value) == (
        f"invalid task name {name!r}: expected 1 to 255 characters, no spaces"
    )


def test_command_target_keeps_its_argv() -> None:
    target = Target.command(["echo", "a b", ""])
    assert target.kind is TargetKind.COMMAND
    assert target.value == ("echo", "a b", "")
    assert target.to_json() == {"kind": "command", "value": ["echo", "a b", ""]}
    assert str(target) == "echo 'a b' ''"  # as a shell would read it back


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "invalid command: it is empty"),
        ([""], "invalid command: it is empty"),
        (["echo", "a\x00b"], "invalid command: an argument contains a NUL byte"),
    ],
)
def test_bad_command_target_is_refused(argv: list[str], message: str) -> None:
    with pytest.raises(errors.TargetError) as info:
        Target.command(argv)
    assert str(info.value) == message


@pytest.mark.parametrize(
    "target",
    [Target.call("p.m:f"), Target.task("send"), Target.command(["echo", "hi"])],
)
def test_target_survives_a_json_round_trip(target: Target) -> None:
    assert Target.from_json(json.loads(json.dumps(target.to_json()))) == target


# --- tasks and runs ---------------------------------------------------------


def test_task_json_has_every_field_a_script_reads() -> None:
    obj = make_task().to_json()
    assert set(obj) == TASK_KEYS
    assert obj["id"] == 7
    assert obj["module"] == "billing.invoices"
    assert obj["title"] == "send invoices"
    assert obj["target"] == {"kind": "call", "value": "billing.tasks:send"}
    assert obj["state"] == "queued"
    assert obj["priority"] == 5
    assert obj["data"] == {"n": 1}
    assert obj["attempts"] == 0
    assert obj["max_attempts"] == 1
    assert obj["timeout"] is None
    assert obj["result"] is None
    assert obj["owner"] is None
    assert obj["runs"] == []


def test_task_json_times_are_iso_8601_in_utc_with_an_offset() -> None:
    task = make_task(
        due_at=datetime(2026, 1, 5, 13, 0, tzinfo=CET),
        created_at=T0 - timedelta(minutes=1),
        updated_at=T0,
    )
    obj = task.to_json()
    assert obj["due_at"] == "2026-01-05T12:00:00+00:00"
    assert obj["created_at"] == "2026-01-05T11:59:00+00:00"
    assert obj["updated_at"] == "2026-01-05T12:00:00+00:00"
    assert datetime.fromisoformat(obj["due_at"]) == task.due_at


def test_task_json_shows_timeout_as_seconds_and_result_decoded() -> None:
    obj = make_task(timeout=timedelta(minutes=2), result_json='[1, "x"]').to_json()
    assert obj["timeout"] == 120.0
    assert obj["result"] == [1, "x"]


def test_task_json_without_runs_leaves_the_runs_key_out() -> None:
    assert "runs" not in make_task(runs=(make_run(),)).to_json(runs=False)


def test_task_json_lists_its_runs_oldest_first() -> None:
    runs = (make_run(id=1, attempt=1), make_run(id=2, attempt=2))
    obj = make_task(runs=runs).to_json()
    assert [r["attempt"] for r in obj["runs"]] == [1, 2]
    assert make_task(runs=runs).last_run == runs[-1]


def test_task_json_is_serialisable() -> None:
    task = make_task(runs=(make_run(ended_at=T0, outcome=Outcome.DONE),))
    assert json.loads(json.dumps(task.to_json())) == task.to_json()


def test_run_json_has_every_field_a_script_reads() -> None:
    run = make_run(
        started_at=datetime(2026, 1, 5, 13, 0, tzinfo=CET),
        ended_at=T0 + timedelta(seconds=2),
        elapsed=2.0,
        outcome=Outcome.FAILED,
        exit_code=3,
        error="boom",
        output_tail="out\n",
        truncated=True,
        host="h1",
        pid=42,
        child_pid=43,
    )
    obj = run.to_json()
    assert set(obj) == RUN_KEYS
    assert obj == {
        "id": 3,
        "attempt": 1,
        "started_at": "2026-01-05T12:00:00+00:00",
        "ended_at": "2026-01-05T12:00:02+00:00",
        "elapsed": 2.0,
        "outcome": "failed",
        "exit_code": 3,
        "error": "boom",
        "traceback": None,
        "output_tail": "out\n",
        "truncated": True,
        "host": "h1",
        "pid": 42,
        "child_pid": 43,
    }


def test_unfinished_run_json_has_no_end_and_no_outcome() -> None:
    obj = make_run().to_json()
    assert obj["ended_at"] is None
    assert obj["outcome"] is None
    assert obj["elapsed"] is None
    assert obj["child_pid"] is None


@pytest.mark.parametrize("name", ["due_at", "created_at", "updated_at"])
def test_task_with_a_naive_datetime_is_refused(name: str) -> None:
    with pytest.raises(ValueError, match=rf"^{name} must be timezone-aware$"):
        make_task(**{name: datetime(2026, 1, 5, 12, 0)})


@pytest.mark.parametrize("name", ["started_at", "ended_at"])
def test_run_with_a_naive_datetime_is_refused(name: str) -> None:
    with pytest.raises(ValueError, match=rf"^{name} must be timezone-aware$"):
        make_run(**{name: datetime(2026, 1, 5, 12, 0)})
