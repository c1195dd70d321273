"""Metrics from the store's counters, in the OpenMetrics text format (and Prometheus'
classic text format, which node_exporter's textfile collector reads).

Nothing here counts for itself: every value is read from the store (its counts
of runs by module id and outcome, of tasks by state, its counters of missed runs
and alerts, its recurring tasks and the heads of its line) or from the home's
tick marks (`taskcron.tickmarks`). So the values are right across processes and
hosts, and through trimming and `prune`; with several hosts sharing a store,
each host shows the same store-wide series (aggregate them with `max by`).

`FAMILIES` names every family with its type, help and labels. The text is
written here (prometheus_client takes too long to import for a tick); the tests
parse it with prometheus_client's parsers. `write_textfile` replaces a file
atomically (a temporary file in its directory, then `os.replace`), mode 0644.

Imported only by the commands that show metrics, and after a tick that ran
something when `[metrics] textfile` is set: never by an idle tick.
"""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from taskcron import tickmarks
from taskcron.model import DURATION_BUCKETS, Scope, State
from taskcron.values import value

if TYPE_CHECKING:
    from taskcron.store.protocol import OutcomeTotal, Store

#: The content type of the OpenMetrics text (`/metrics`).
CONTENT_TYPE = "application/openmetrics-text; version=1.0.0; charset=utf-8"
#: The most recurring tasks shown (a series each, twice).
RECURRING_SHOWN = 10_000


@value
class Family:
    """A metric family: its name as samples carry it (a counter's ends in `_total`), its
    type, help and labels (a histogram's `le` aside)."""

    name: str
    type: str  #: `counter`, `gauge` or `histogram`.
    help: str
    labels: tuple[str, ...]

    @property
    def base(self) -> str:
        """The family's name in metadata: a counter's without `_total` (OpenMetrics)."""
        return self.name.removesuffix("_total") if self.type == "counter" else self.name


#: Every family taskcron shows, in the order it shows them.
FAMILIES: tuple[Family, ...] = (
    Family(
        name="taskcron_runs_total",
        type="counter",
        help="Runs that ended, by module id and outcome, ever.",
        labels=("module", "outcome"),
    ),
    Family(
        name="taskcron_run_duration_seconds",
        type="histogram",
        help="How long runs took, by module id.",
        labels=("module",),
    ),
    Family(
        name="taskcron_tasks",
        type="gauge",
        help="Tasks in the store, by module id and state.",
        labels=("module", "state"),
    ),
    Family(
        name="taskcron_oldest_due_age_seconds",
        type="gauge",
        help="How long the oldest due task of each module id has waited (0: none is due).",
        labels=("module",),
    ),
    Family(
        name="taskcron_missed_total",
        type="counter",
        help="Missed runs of recurring tasks found, by module id.",
        labels=("module",),
    ),
    Family(
        name="taskcron_alerts_total",
        type="counter",
        help="Alerts decided, by rule and channel (webhook, command or a notify URL's scheme).",
        labels=("rule", "channel"),
    ),
    Family(
        name="taskcron_last_success_timestamp_seconds",
        type="gauge",
        help="When each recurring task's last run that ended done ended (task: key, else id).",
        labels=("task", "module"),
    ),
    Family(
        name="taskcron_next_due_timestamp_seconds",
        type="gauge",
        help="When each queued recurring task is next due (task: key, else id).",
        labels=("task", "module"),
    ),
    Family(
        name="taskcron_last_tick_timestamp_seconds",
        type="gauge",
        help="When a tick of each scope last ran on this host.",
        labels=("host", "scope"),
    ),
)
BY_NAME = {family.name: family for family in FAMILIES}


@value
class Sample:
    """One sample: its name (the family's, or a histogram's `_bucket`, `_sum`, `_count`),
    its labels in order, and its value."""

    name: str
    labels: tuple[tuple[str, str], ...]
    value: float


Samples = dict[str, list[Sample]]
#: Adds a sample to its family: family name, value, suffix, labels.
_Add = Callable[..., None]


def collect(store: Store, *, home: Path, host: str, now: datetime) -> Samples:
    """Every family's samples, by family name, read from `store` and the home's tick marks
    at `now`: a few reads, each along an index or of a counting table."""
    samples: Samples = {family.name: [] for family in FAMILIES}

    def add(family: str, value: float, suffix: str = "", **labels: str) -> None:
        samples[family].append(
            Sample(name=family + suffix, labels=tuple(labels.items()), value=value)
        )

    totals = store.outcome_totals()
    for total in totals:
        add("taskcron_runs_total", total.runs, module=total.module, outcome=total.outcome)
    _durations(totals, add)
    counts = store.counts(Scope())
    oldest = store.oldest_queued(Scope())
    for module in sorted(set(counts) | set(oldest)):
        for state in State:
            add(
                "taskcron_tasks",
                counts.get(module, {}).get(state.value, 0),
                module=module,
                state=state.value,
            )
    for module in sorted(set(counts) | set(oldest)):
        due = oldest.get(module)
        waited = 0.0 if due is None else max(0.0, (now - due).total_seconds())
        add("taskcron_oldest_due_age_seconds", waited, module=module)
    for counter in store.counters():
        if counter.name == "missed":
            add("taskcron_missed_total", counter.value, module=counter.labels["module"])
        elif counter.name == "alerts":
            labels = counter.labels
            add(
                "taskcron_alerts_total",
                counter.value,
                rule=labels["rule"],
                channel=labels["channel"],
            )
    _recurring(store, add)
    for scope, at in tickmarks.last_ticks(home).items():
        add("taskcron_last_tick_timestamp_seconds", at, host=host, scope=scope)
    return samples


def _durations(totals: Iterable[OutcomeTotal], add: _Add) -> None:
    """The duration histogram by module id: each outcome's buckets summed, cumulated."""
    by_module: dict[str, tuple[list[int], list[float]]] = {}
    for total in totals:
        empty = ([0] * (len(DURATION_BUCKETS) + 1), [0.0])
        buckets, seconds = by_module.setdefault(total.module, empty)
        for index, runs in enumerate(total.buckets):
            buckets[index] += runs
        seconds[0] += total.seconds
    family = "taskcron_run_duration_seconds"
    for module, (buckets, seconds) in sorted(by_module.items()):
        running = 0
        for bound, runs in zip((*DURATION_BUCKETS, math.inf), buckets, strict=True):
            running += runs
            add(family, running, "_bucket", module=module, le=_le(bound))
        add(family, running, "_count", module=module)
        add(family, seconds[0], "_sum", module=module)


def _recurring(store: Store, add: _Add) -> None:
    """The recurring tasks' last success and next due time, a series each by task (its key,
    else its id) and module id; a name seen twice keeps the newer task's."""
    seen: dict[tuple[str, str], tuple[datetime | None, datetime | None]] = {}
    for task in store.recurring(limit=RECURRING_SHOWN):
        due = task.due_at if task.state == State.QUEUED.value else None
        seen[(task.key or str(task.id), task.module)] = (task.succeeded_at, due)
    for (name, module), (succeeded, _) in sorted(seen.items()):
        if succeeded is not None:
            add(
                "taskcron_last_success_timestamp_seconds",
                succeeded.timestamp(),
                task=name,
                module=module,
            )
    for (name, module), (_, due) in sorted(seen.items()):
        if due is not None:
            add("taskcron_next_due_timestamp_seconds", due.timestamp(), task=name, module=module)


def _le(bound: float) -> str:
    return "+Inf" if math.isinf(bound) else repr(float(bound))


def text(samples: Samples, *, openmetrics: bool = True) -> str:
    """The samples as text: OpenMetrics (ending `# EOF`), or Prometheus' classic format
    (which node_exporter's textfile collector reads)."""
    lines: list[str] = []
    for family in FAMILIES:
        name = family.base if openmetrics else family.name
        lines.append(f"# HELP {name} {family.help}")
        lines.append(f"# TYPE {name} {family.type}")
        lines.extend(_line(sample) for sample in samples.get(family.name, ()))
    if openmetrics:
        lines.append("# EOF")
    return "\n".join(lines) + "\n"


def _line(sample: Sample) -> str:
    labels = ",".join(f'{key}="{escape(value)}"' for key, value in sample.labels)
    return (
        f"{sample.name}{{{labels}}} {_number(sample.value)}"
        if labels
        else f"{sample.name} {_number(sample.value)}"
    )


def escape(label_value: str) -> str:
    """A label value as the text formats quote it: `\\`, `"` and newlines escaped."""
    return label_value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(number: float) -> str:
    if isinstance(number, int) or float(number).is_integer():
        return str(int(number))
    return repr(float(number))


def write_textfile(path: Path, content: str) -> None:
    """Replace `path` with `content` at once (a temporary file beside it, then
    `os.replace`), readable by all (0644), so that a reader sees the old or the new."""
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(content)
            os.fchmod(out.fileno(), 0o644)
        Path(temporary).replace(path)
    except BaseException:
        with contextlib.suppress(OSError):
            Path(temporary).unlink()
        raise


def touch_textfile(path: Path) -> None:
    """Move the textfile's time to now (an idle tick changes no value); create nothing."""
    os.utime(path)
