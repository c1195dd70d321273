"""The order rule as a pure function: which due task runs next.

Due tasks stand in one line by due time, then id. The oldest due task names
the module id served next. Inside that module id the task with the highest
priority runs, chosen among its due tasks that are older than every other
module id's oldest due task (ties: older first). Priority therefore reorders a
module's own waiting work but never jumps another module's older task, and no
module id can starve another.

A pool's claim is bounded by lanes instead of running one task at a time:
only modules whose lane has room (fewer running tasks than its width) stand
in the line, and the rule is applied among them.

The store implements the same rule with indexes; this function is the
reference its tests compare against.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import datetime

from taskcron.model import Lanes
from taskcron.values import value


@value(kw_only=False)
class Candidate:
    """What the order rule needs to know of a due task."""

    id: int
    module: str
    priority: int
    due_at: datetime

    @property
    def position(self) -> tuple[datetime, int]:
        """Its place in the one FIFO line: due time, then id."""
        return (self.due_at, self.id)


def pick_next(
    due: Iterable[Candidate], *, lanes: Lanes | None = None, running: Iterable[str] = ()
) -> Candidate | None:
    """The task that runs next among `due` (all already due and in scope), or None.

    With `lanes`, `running` names the module of every running task (one entry
    a task), and only modules that run fewer tasks than their lane's width
    are served.
    """
    tasks = list(due)
    if lanes is not None:
        busy = Counter(running)
        tasks = [t for t in tasks if busy[t.module] < lanes.width(t.module)]
    oldest: dict[str, Candidate] = {}
    for task in tasks:
        head = oldest.get(task.module)
        if head is None or task.position < head.position:
            oldest[task.module] = task
    if not oldest:
        return None
    first = min(oldest.values(), key=lambda t: t.position)
    others = [t.position for m, t in oldest.items() if m != first.module]
    bound = min(others) if others else None
    eligible = [
        t for t in tasks if t.module == first.module and (bound is None or t.position < bound)
    ]
    return min(eligible, key=lambda t: (-t.priority, t.position))


def run_order(due: Iterable[Candidate]) -> list[Candidate]:
    """The order in which ticks would run `due` if nothing else arrived."""
    waiting = list(due)
    order = []
    while waiting:
        chosen = pick_next(waiting)
        assert chosen is not None
        order.append(chosen)
        waiting.remove(chosen)
    return order
