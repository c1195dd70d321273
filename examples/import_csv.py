"""A long job in time-boxed steps: import a large CSV file in chunks, with progress.

Each step reads from where the last one stopped (`ctx.state["offset"]`), handles
rows until its budget is nearly spent, reports progress, and ends with
`taskcron.Continue()`: the task goes to the back of the line and the next tick
that reaches it goes on from the saved offset. Other module ids' tasks run in
between. Try it with examples/steps_demo.sh, and watch it with
`taskcron status --watch` in another terminal.
"""

from __future__ import annotations

import csv
import time
from pathlib import Path
from typing import Any

import taskcron
from taskcron import Context, task

STEP_SECONDS = 2.0  #: How long a step works when the tick gives it no budget.


@task("import-csv")
def import_csv(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    """Import `data["path"]`, a CSV file, a chunk of rows per step."""
    path = Path(data["path"])
    total = ctx.state.get("total") or sum(1 for _ in path.open()) - 1
    offset = ctx.state.get("offset", 0)
    left = ctx.time_left()
    stop_at = time.monotonic() + (STEP_SECONDS if left is None else left.total_seconds() * 0.8)
    with path.open(newline="") as handle:
        rows = csv.DictReader(handle)
        for number, row in enumerate(rows):
            if number < offset:
                continue
            time.sleep(0.001)  # the real work: write `row` to your database
            offset = number + 1
            if offset % 100 == 0:
                ctx.progress(offset, total, f"imported row {offset} ({row['sku']})")
            if time.monotonic() >= stop_at and offset < total:
                ctx.state.update(offset=offset, total=total)
                ctx.progress(offset, total, f"imported {offset} rows; more on the next step")
                raise taskcron.Continue()
    ctx.progress(total, total, "imported every row")
    return {"rows": total, "steps": ctx.step}
