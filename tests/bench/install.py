"""The installation under test, and running a row against it.

--quick measures this environment: the interpreter running the harness and
the `taskcron` script beside it. The full run builds a virtual environment
with a regular (non-editable) install of a copy of this checkout, with the
`bench` extra (the peers compared against), the `postgres` one (psycopg,
for the PostgreSQL rows) and the `web` one with httpx2 (the `web` row asks the
dashboard through Starlette's test client), and measures that, since an editable install's
import hook adds to every start.

A row that imports taskcron (`in_target`) runs in a child of the target's
interpreter, started outside the checkout with the checkout appended to
`sys.path`: `tests` imports from the checkout, `taskcron` from the target's
own install, and the child checks that it is the one the target's script uses.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

from tests.bench.harness import (
    Bench,
    Command,
    Figures,
    Params,
    Row,
    Skipped,
    Target,
    Timing,
    clean_env,
    rows,
)

#: The checkout that holds tests/ and the project.
ROOT = Path(__file__).resolve().parents[2]

_WHERE = "import taskcron; print(taskcron.__file__)"

_CHILD = (
    "import sys; sys.path.append(sys.argv[1]);"
    " from tests.bench.install import child; child(sys.argv[2])"
)


def current(workdir: Path) -> Target:
    """This interpreter and the `taskcron` script beside it."""
    script = Path(sys.executable).parent / "taskcron"
    if not script.exists():
        raise SystemExit(f"no taskcron script beside {sys.executable}: install the project first")
    return _target(sys.executable, str(script), cwd=workdir)


def build(python: str, workdir: Path) -> Target:
    """A new virtual environment in `workdir` made by `python`, with taskcron and its `bench`,
    `postgres` and `web` extras (and httpx2, for the test client) installed from a copy.

    pip builds in the source tree, so it builds a copy and the checkout stays
    untouched.
    """
    source = workdir / "source"
    shutil.copytree(ROOT, source, ignore=_not_source)
    venv = workdir / "venv"
    _quietly([python, "-m", "venv", str(venv)], cwd=workdir)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install"]
    _quietly([*pip, f"{source}[bench,postgres,web]", "httpx2>=2.17"], cwd=workdir)
    target = _target(str(venv / "bin" / "python"), str(venv / "bin" / "taskcron"), cwd=workdir)
    if not Path(target.taskcron).resolve().is_relative_to(venv.resolve()):
        raise RuntimeError(f"the new environment imports taskcron from {target.taskcron}")
    return target


def measure(row: Row, params: Params, target: Target, scratch: Path) -> list[Figures]:
    """Run `row` with `params` against `target`, in a child of its interpreter if need be.

    Its figures, one a case (see `Row.figures`); `Skipped` when the row cannot
    be measured there.
    """
    scratch.mkdir(parents=True)
    if not row.in_target:
        bench = Bench(target=target, runs=params["runs"], scratch=scratch)
        return row.figures(row.measure(bench, params))
    out = scratch / "figures.json"
    order = {
        "row": row.name,
        "params": dict(params),
        "target": asdict(target),
        "scratch": str(scratch),
        "out": str(out),
    }
    _quietly([target.python, "-c", _CHILD, str(ROOT), json.dumps(order)], cwd=scratch)
    answer = json.loads(out.read_text())
    if "skipped" in answer:
        raise Skipped(answer["skipped"])
    return [
        Figures(
            value=Timing(**figures["value"]),
            floor=Timing(**figures["floor"]),
            case=figures["case"],
            notes=tuple(figures["notes"]),
            errors=figures["errors"],
            goal=figures["goal"],
        )
        for figures in answer["figures"]
    ]


def child(order_json: str) -> None:
    """The child's side of `measure`: run the row, write its figures where asked."""
    order = json.loads(order_json)
    target = Target(**order["target"])
    import taskcron  # here only: the harness's own process never imports what it measures

    if taskcron.__file__ != target.taskcron:
        raise RuntimeError(f"imported taskcron from {taskcron.__file__}, not {target.taskcron}")
    params = order["params"]
    bench = Bench(target=target, runs=params["runs"], scratch=Path(order["scratch"]))
    row = rows()[order["row"]]
    answer: dict[str, object]
    try:
        measured = row.figures(row.measure(bench, params))
        answer = {"figures": [asdict(figures) for figures in measured]}
    except Skipped as exc:
        answer = {"skipped": str(exc)}
    Path(order["out"]).write_text(json.dumps(answer))


def _target(python: str, script: str, *, cwd: Path) -> Target:
    where = subprocess.run(
        [python, "-c", _WHERE], cwd=cwd, env=clean_env(), capture_output=True, text=True, check=True
    )
    return Target(python=python, script=script, taskcron=where.stdout.strip())


def _quietly(argv: list[str], *, cwd: Path) -> None:
    Command(argv=tuple(argv), env=clean_env(), cwd=cwd).run()


def _not_source(directory: str, names: list[str]) -> set[str]:
    """What a copy for building leaves out: dot-files, caches, build output, environments."""
    return {
        name
        for name in names
        if name.startswith(".")
        or name in ("__pycache__", "build", "dist")
        or name.endswith(".egg-info")
        or (Path(directory) / name / "pyvenv.cfg").exists()
    }
