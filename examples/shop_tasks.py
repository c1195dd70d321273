"""Task handlers of a small shop, registered by name with @task.

Each handler is called as handler(ctx, data). What it returns (JSON) is the
task's result; an exception fails the run; ctx.log goes to the run's log.
"""

from __future__ import annotations

import time
from typing import Any

from taskcron import Context, task


@task
def send_invoice(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    """Pretend to e-mail an invoice."""
    ctx.log.info("sending invoice %s to customer %s", data["invoice"], data["customer"])
    return {"sent": data["invoice"]}


@task("resize-images")
def resize_images(ctx: Context, data: dict[str, Any]) -> int:
    """Pretend to resize images, stopping early if the tick's budget runs out."""
    done = 0
    for name in data["images"]:
        left = ctx.time_left()
        if left is not None and left.total_seconds() < 1:
            ctx.log.warning("budget nearly spent after %d images", done)
            break
        time.sleep(0.01)
        ctx.log.info("resized %s", name)
        done += 1
    return done


def nightly_report(ctx: Context, data: Any) -> str:
    """A plain function, scheduled by import path with --call shop_tasks:nightly_report."""
    return f"report for task {ctx.task_id}"
