"""Run the benchmark rows, print their table, and optionally write it as JSON.

    python -m tests.bench [--quick] [--rows NAME,...] [--runs N] [--json FILE] [--python PATH]

Every row is a ratio against a floor measured in the same run, with a goal.
A missed goal is reported, never a failure, and so is a row that cannot be
measured here (skipped, saying why): the exit status is 0 unless the harness
itself breaks. tests/bench/harness.py says how to add a row.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.bench.harness import UNITS, Figures, Params, Row, Skipped, rows
from tests.bench.install import build, current, measure


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.quick and args.python:
        parser.error("--python picks the interpreter to build with; --quick builds nothing")
    registry = rows()
    names = args.rows.split(",") if args.rows else list(registry)
    unknown = [name for name in names if name not in registry]
    if unknown:
        parser.error(f"no row named {', '.join(unknown)} (there are: {', '.join(registry)})")
    chosen = [
        registry[name] for name in names if not args.quick or registry[name].quick is not None
    ]
    if len(chosen) < len(names):
        left = sorted(set(names) - {row.name for row in chosen})
        print(f"not measured with --quick: {', '.join(left)}", file=sys.stderr)
    mode = "quick" if args.quick else "full"
    results, skipped = [], 0
    with tempfile.TemporaryDirectory(prefix="taskcron-bench-") as tmp:
        workdir = Path(tmp)
        if args.quick:
            target = current(workdir)
        else:
            python = args.python or sys.executable
            print(f"building an environment with {python} ...", file=sys.stderr, flush=True)
            target = build(python, workdir)
        print(f"{mode} run: {target.python}, taskcron from {Path(target.taskcron).parent}")
        table = _Table(chosen, quick=args.quick, runs=args.runs)
        for row in chosen:
            params = row.params(quick=args.quick, runs=args.runs)
            start = time.perf_counter()
            try:
                measured = measure(row, params, target, workdir / "rows" / row.name)
            except Skipped as exc:
                skipped += 1
                table.skipped(row, params, str(exc))
                continue
            seconds = time.perf_counter() - start
            for figures in measured:
                results.append(
                    {**_result(row, params, figures, mode), "seconds": round(seconds, 1)}
                )
                table.line(results[-1])
    met = sum(result["met"] for result in results)
    print(f"goals met: {met} of {len(results)}" + (f" ({skipped} skipped)" if skipped else ""))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tests.bench", description=(__doc__ or "").splitlines()[0]
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="small sizes and few runs, in this environment (default: build a new one)",
    )
    parser.add_argument("--rows", metavar="NAME,...", help="only these rows (default: all)")
    parser.add_argument("--runs", type=_positive, metavar="N", help="timed runs for every row")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the rows here")
    parser.add_argument(
        "--python", metavar="PATH", help="interpreter to build the environment with (default: this)"
    )
    return parser


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive number")
    return value


def _result(row: Row, params: Params, figures: Figures, mode: str) -> dict[str, Any]:
    """One JSON row (a row's case): value and floor are medians in `unit`, with their
    minimums beside."""
    scale = UNITS[row.unit]
    ratio = figures.value.median / figures.floor.median
    goal = row.goal if figures.goal is None else figures.goal
    return {
        "name": row.name,
        "case": figures.case or None,
        "measures": row.measures(params, figures.case),
        "against": row.floor.format(**params),
        "value": round(figures.value.median * scale, 3),
        "floor": round(figures.floor.median * scale, 3),
        "unit": row.unit,
        "ratio": round(ratio, 3),
        "goal": goal,
        "met": (goal is None or ratio <= goal) and not figures.errors,
        "errors": figures.errors,
        "value_min": round(figures.value.min * scale, 3),
        "floor_min": round(figures.floor.min * scale, 3),
        "runs": figures.value.runs,
        "mode": mode,
        "parameters": dict(params),
        "notes": list(figures.notes),
    }


class _Table:
    """Prints the table a line at a time, as rows finish."""

    def __init__(self, chosen: list[Row], *, quick: bool, runs: int | None) -> None:
        titles = [
            row.measures(row.params(quick=quick, runs=runs), case)
            for row in chosen
            for case in row.cases or ("",)
        ]
        self.name = max([4, *(len(row.name) for row in chosen)])
        self.title = max([8, *(len(title) for title in titles)])
        print(self._format("row", "measures", "value", "floor", "ratio", "goal", ""))

    def line(self, result: dict[str, Any]) -> None:
        unit = result["unit"]
        print(
            self._format(
                result["name"],
                result["measures"],
                _figure(result["value"], unit),
                _figure(result["floor"], unit),
                f"{result['ratio']:.2f}x",
                "no errors" if result["goal"] is None else f"<= {result['goal']:.2f}x",
                _verdict(result),
            ),
            flush=True,
        )
        for note in result["notes"]:
            print(f"{'':<{self.name}}  {note}".rstrip(), flush=True)

    def skipped(self, row: Row, params: Params, why: str) -> None:
        title = row.measures(params)
        print(f"{row.name:<{self.name}}  {title:<{self.title}}  skipped: {why}", flush=True)

    def _format(self, *cells: str) -> str:
        name, title, value, floor, ratio, goal, verdict = cells
        return (
            f"{name:<{self.name}}  {title:<{self.title}}  {value:>10}  {floor:>10}"
            f"  {ratio:>6}  {goal:>8}  {verdict}"
        ).rstrip()


def _verdict(result: dict[str, Any]) -> str:
    verdict = "met" if result["met"] else "missed"
    errors = result["errors"]
    return verdict if errors is None else f"{verdict}, {errors} errors"


def _figure(value: float, unit: str) -> str:
    return f"{value:,.1f} {unit}" if value < 1000 else f"{value:,.0f} {unit}"


if __name__ == "__main__":
    sys.exit(main())
