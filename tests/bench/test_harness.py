"""The benchmark harness runs and writes its JSON, so that it cannot rot between uses."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.bench import __main__ as command
from tests.bench.harness import Bench, Command, Figures, Params, Skipped, Target, Timing, rows

ROOT = Path(__file__).parents[2]


def bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tests.bench", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_quick_rows_print_a_table_and_write_one_json_object_each(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    done = bench("--quick", "--rows", "tick,claim", "--runs", "1", "--json", str(out))
    assert done.returncode == 0, done.stderr
    rows = json.loads(out.read_text())
    assert [row["name"] for row in rows] == ["tick", "claim", "claim", "claim"]
    for row in rows:
        assert row["name"] in done.stdout
        assert row["value"] > 0 and row["floor"] > 0
        assert row["ratio"] == pytest.approx(row["value"] / row["floor"], rel=0.01)
        assert row["met"] == (row["ratio"] <= row["goal"])
        assert row["unit"] in ("ms", "us")
        assert row["errors"] is None
        assert row["mode"] == "quick"
        assert row["parameters"]["runs"] == row["runs"] == 1
        assert row["value_min"] <= row["value"] and row["floor_min"] <= row["floor"]
    assert rows[1]["parameters"]["tasks"] == 5_000
    assert [row["case"] for row in rows] == [None, *rows_cases("claim")]


def rows_cases(name: str) -> list[str]:
    return list(rows()[name].cases)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--rows", "nosuch"], "no row named nosuch"),
        (["--quick", "--python", sys.executable], "--python"),
        (["--runs", "0"], "not a positive number"),
    ],
)
def test_bad_arguments_are_usage_errors(args: list[str], message: str) -> None:
    done = bench(*args)
    assert done.returncode == 2
    assert message in done.stderr


def test_a_row_that_cannot_be_measured_here_is_skipped_saying_why(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def measure(bench: Bench, params: Params) -> Figures:
        raise Skipped("no such peer here")

    peer = dataclasses.replace(rows()["tick"], name="peer", title="a peer", measure=measure)
    monkeypatch.setattr(command, "rows", lambda: {"peer": peer})
    assert command.main(["--quick"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-2].split() == ["peer", "a", "peer", "skipped:", "no", "such", "peer", "here"]
    assert lines[-1] == "goals met: 0 of 0 (1 skipped)"


def test_a_row_of_several_cases_prints_a_line_and_writes_an_object_for_each_with_its_notes(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    def timing(seconds: float) -> Timing:
        return Timing(median=seconds, min=seconds, runs=1)

    def measure(bench: Bench, params: Params) -> list[Figures]:
        return [
            Figures(value=timing(0.002), floor=timing(0.001), case="one", notes=("first note",)),
            Figures(value=timing(0.001), floor=timing(0.001), case="two", goal=0.5),
        ]

    cases = dataclasses.replace(
        rows()["tick"], name="cases", title="a pair", measure=measure, cases=("one", "two")
    )
    monkeypatch.setattr(command, "rows", lambda: {"cases": cases})
    out = tmp_path / "bench.json"

    assert command.main(["--quick", "--json", str(out)]) == 0

    lines = capsys.readouterr().out.splitlines()
    assert lines[-4].split()[:4] == ["cases", "a", "pair,", "one"]
    assert lines[-4].split()[-1] == "missed"
    assert lines[-3].split() == ["first", "note"]
    assert lines[-2].split()[:4] == ["cases", "a", "pair,", "two"]
    assert lines[-2].split()[-3:] == ["<=", "0.50x", "missed"]
    assert lines[-1] == "goals met: 0 of 2"
    written = json.loads(out.read_text())
    assert [(row["case"], row["measures"], row["notes"]) for row in written] == [
        ("one", "a pair, one", ["first note"]),
        ("two", "a pair, two", []),
    ]
    assert [row["ratio"] for row in written] == [2.0, 1.0]
    assert [row["goal"] for row in written] == [cases.goal, 0.5]


def test_time_each_runs_every_subject_in_turns_the_order_rotating(tmp_path: Path) -> None:
    order: list[str] = []
    bench = Bench(
        target=Target(python=sys.executable, script="", taskcron=""), runs=3, scratch=tmp_path
    )
    subjects = {name: (lambda name=name: order.append(name)) for name in "abc"}

    timed = bench.time_each(subjects, per=2)

    warmup = list("abc") * bench.warmup
    assert order == [*warmup, *"abc", *"bca", *"cab"]
    assert list(timed) == ["a", "b", "c"]
    assert all(timing.runs == 3 for timing in timed.values())


def test_a_row_whose_goal_is_no_errors_is_judged_by_its_errors_alone(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    def measure(bench: Bench, params: Params) -> list[Figures]:
        slow, fast = (
            Timing(median=0.002, min=0.002, runs=1),
            Timing(median=0.001, min=0.001, runs=1),
        )
        return [
            Figures(value=fast, floor=fast, case="one", errors=2),
            Figures(value=slow, floor=fast, case="two", errors=0),
        ]

    counted = dataclasses.replace(
        rows()["tick"],
        name="counted",
        title="errors",
        measure=measure,
        cases=("one", "two"),
        goal=None,
    )
    monkeypatch.setattr(command, "rows", lambda: {"counted": counted})
    out = tmp_path / "bench.json"

    assert command.main(["--quick", "--json", str(out)]) == 0

    lines = capsys.readouterr().out.splitlines()
    assert lines[-3].endswith("no errors  missed, 2 errors")
    assert lines[-2].endswith("no errors  met, 0 errors")
    written = json.loads(out.read_text())
    assert [(row["met"], row["errors"], row["goal"]) for row in written] == [
        (False, 2, None),
        (True, 0, None),
    ]


def test_peak_rss_is_the_childs_own_not_this_processs(tmp_path: Path) -> None:
    grow = "b = bytearray(64 << 20); b[::4096] = b'x' * len(b[::4096])"
    small = Command(argv=(sys.executable, "-c", "pass"), env={}, cwd=tmp_path)
    large = Command(argv=(sys.executable, "-c", grow), env={}, cwd=tmp_path)
    ballast = bytearray(256 << 20)  # this process is larger than either child
    ballast[::4096] = b"x" * len(ballast[::4096])
    assert small.peak_rss() < 64 << 20
    assert large.peak_rss() - small.peak_rss() > 60 << 20


def test_a_row_reporting_a_case_it_does_not_name_is_an_error() -> None:
    figures = Figures(
        value=Timing(median=1, min=1, runs=1), floor=Timing(median=1, min=1, runs=1), case="x"
    )
    with pytest.raises(ValueError, match="reported cases"):
        rows()["tick"].figures(figures)


@pytest.mark.parametrize("name", list(rows()))
def test_every_row_is_in_the_performance_pages_table(name: str) -> None:
    assert f"| `{name}` |" in (ROOT / "docs" / "pages" / "performance.md").read_text()
