"""Alerts: what one says (`Alert`), which rules send it, and its delivery.

An alert goes out through every channel of a rule (`[[alerts]]` in the config,
`taskcron.config.AlertRule`): each Apprise URL of `notify`, the `command` (the
alert's JSON on its stdin) and the `webhook` (the alert's JSON POSTed). The store
decides which events fire (`Task.alerts`); once the run is recorded, a `Teller`
sends them:

    teller.tell(task, task.alerts, at=now, run=run)

(or, step by step, `rules_for`, `alert_for`, then `deliver` or `Courier.send`).

`deliver` sends one alert through one rule's channels at once and waits at most
the rule's `timeout`; `Courier` does the same beside the caller's loop, on a
thread of its own. Neither ever raises: each channel's answer is a `Delivery`,
given to a `Report` (`Recorder.alert_delivery` writes `alert.sent` or
`alert.failed`), and a failed one is also one warning (`taskcron: warning: alert
"NAME" via CHANNEL failed: ...` on the command line).

Nothing here is imported by an idle tick; Apprise and urllib are imported only
when a channel needs them.
"""

from __future__ import annotations

import inspect
import json
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from taskcron import errors
from taskcron.config import AlertRule, Config
from taskcron.model import Run, Task, iso
from taskcron.values import field, value

log = logging.getLogger(__name__)

#: The version of the alert's JSON; it changes only when a key changes meaning or goes.
VERSION = 1
#: The last lines of a run's output an alert carries, and at most this many characters.
OUTPUT_LINES, OUTPUT_CHARS = 20, 4000
#: How long past a rule's timeout `deliver` waits for a channel's own timeout to end it.
GRACE = 0.25


@value
class Alert:
    """What an alert says of a task; `to_json` is the JSON a command or webhook receives."""

    event: str  #: `failed`, `recovered`, `missed`, `overrun` or `interrupted`.
    task: int  #: The task's id.
    module: str
    title: str
    attempt: int  #: The attempt of the run it is about ("N" of "attempt N of M").
    max_attempts: int
    error: str | None  #: The first line of the run's error, if it failed.
    output: str  #: The last lines of the run's output.
    host: str  #: The host that sends it.
    url: str | None  #: The task's page on the dashboard, when `web.url` is set.
    at: datetime  #: When it was decided.
    #: What the event adds (for `missed`: when it was first due, fire times missed).
    details: Mapping[str, Any] = field(default_factory=dict)
    test: bool = False  #: True for `taskcron alerts test`'s sample.

    def to_json(self, rule: str) -> dict[str, Any]:
        """The alert's JSON, as sent by rule `rule` (see the alerts guide for each key)."""
        return {
            "version": VERSION,
            "event": self.event,
            "rule": rule,
            "task": self.task,
            "module": self.module,
            "title": self.title,
            "attempt": self.attempt,
            "max_attempts": self.max_attempts,
            "error": self.error,
            "output": self.output,
            "host": self.host,
            "url": self.url,
            "at": iso(self.at),
            "details": dict(self.details),
            "test": self.test,
        }

    def subject(self) -> str:
        """One line: the title of a message or mail."""
        sample = " (test)" if self.test else ""
        return f"taskcron{sample}: task {self.task} {self.event}: {self.module} {self.title}"

    def body(self) -> str:
        """The text of a message or mail."""
        lines = [
            f"Task {self.task} ({self.module}) {self.title!r}: {self.event}.",
            f"Attempt {self.attempt} of {self.max_attempts}, on host {self.host},"
            f" at {iso(self.at)}.",
        ]
        if self.error:
            lines.append(f"Error: {self.error}")
        lines += [f"{key}: {shown}" for key, shown in self.details.items()]
        if self.output:
            lines += ["", "Output (last lines):", self.output]
        if self.url:
            lines += ["", self.url]
        if self.test:
            lines += ["", "This is a test alert sent by `taskcron alerts test`."]
        return "\n".join(lines)


def alert_for(
    event: str,
    task: Task,
    run: Run | None = None,
    *,
    host: str,
    at: datetime,
    web_url: str | None = None,
    details: Mapping[str, Any] | None = None,
) -> Alert:
    """The alert of `event` for `task`, about `run` (its newest run, if any): the error's
    first line and the last lines of its output. `web_url` is the config's `web.url`."""
    error = None if run is None or not run.error else run.error.strip().splitlines()[0]
    return Alert(
        event=event,
        task=task.id,
        module=task.module,
        title=task.title,
        attempt=task.attempts if run is None else run.attempt,
        max_attempts=task.max_attempts,
        error=error,
        output="" if run is None else last_lines(run.output_tail),
        host=host,
        url=None if web_url is None else f"{web_url.rstrip('/')}/tasks/{task.id}",
        at=at,
        details=dict(details or {}),
    )


def last_lines(output: str, count: int = OUTPUT_LINES, chars: int = OUTPUT_CHARS) -> str:
    """The last `count` lines of `output`, and at most its last `chars` characters."""
    return "\n".join(output.rstrip("\n").splitlines()[-count:])[-chars:]


def rules_for(rules: Iterable[AlertRule], module: str, event: str) -> tuple[AlertRule, ...]:
    """The rules that send `event` for a task of module id `module`, in the config's order."""
    return tuple(rule for rule in rules if rule.covers(module, event))


def sample(rule: AlertRule, *, host: str, at: datetime, web_url: str | None = None) -> Alert:
    """A sample `failed` alert for `rule` (`test` is True), as `taskcron alerts test` sends."""
    module = rule.scope.modules[0] if rule.scope.modules else "example"
    return Alert(
        event="failed",
        task=0,
        module=module,
        title="a sample task",
        attempt=3,
        max_attempts=3,
        error="RuntimeError: a sample error",
        output="a sample line of output\nand its last line",
        host=host,
        url=None if web_url is None else f"{web_url.rstrip('/')}/tasks/0",
        at=at,
        test=True,
    )


# --- delivery ---------------------------------------------------------------


@value
class Delivery:
    """What one channel of a rule answered to one alert."""

    rule: str  #: The rule's name.
    channel: str  #: `webhook`, `command`, or a `notify` URL's scheme (`slack`, `mailto#2`).
    ok: bool
    detail: str  #: What it answered (`HTTP 200`, `exit 0`, `sent`), or why it failed.
    elapsed: float  #: Seconds.

    def to_json(self) -> dict[str, Any]:
        """`{"rule", "channel", "ok", "detail", "elapsed"}`."""
        return {
            "rule": self.rule,
            "channel": self.channel,
            "ok": self.ok,
            "detail": self.detail,
            "elapsed": round(self.elapsed, 3),
        }


#: Told each channel's answer: `Recorder.alert_delivery` writes it to the log.
Report = Callable[[Alert, Delivery], None]


@value
class Channel:
    """One way a rule sends: its label, and the URL or argv it sends to."""

    label: str
    kind: str  #: `notify`, `command` or `webhook`.
    target: str | tuple[str, ...]


def channels(rule: AlertRule) -> tuple[Channel, ...]:
    """The rule's channels, labelled without their secrets: a `notify` URL by its scheme
    (`slack`; `slack#2` for a second one), then `command`, then `webhook`."""
    found: list[Channel] = []
    seen: dict[str, int] = {}
    for url in rule.notify:
        scheme = url.partition("://")[0].lower() if "://" in url else "notify"
        seen[scheme] = seen.get(scheme, 0) + 1
        label = scheme if seen[scheme] == 1 else f"{scheme}#{seen[scheme]}"
        found.append(Channel(label=label, kind="notify", target=url))
    if rule.command:
        found.append(Channel(label="command", kind="command", target=rule.command))
    if rule.webhook is not None:
        found.append(Channel(label="webhook", kind="webhook", target=rule.webhook))
    return tuple(found)


def metric_channel(channel: Channel) -> str:
    """A channel as metrics count it: `webhook`, `command`, or a `notify` URL's scheme
    (`slack`), never the URL, which holds secrets."""
    return channel.label.partition("#")[0]


class DeliveryFailed(Exception):
    """A channel's failure, said in one line."""


def deliver(
    rule: AlertRule, alert: Alert, *, report: Report | None = None, warn: bool = True
) -> tuple[Delivery, ...]:
    """Send `alert` through every channel of `rule` at once; return each one's answer.

    Returns within the rule's `timeout` (and `GRACE`): a channel that has not
    answered by then failed ("no answer within 10s") and is left to end on its
    own. Never raises. Each answer is given to `report` (its failure logged, not
    raised); a failed one is also a warning on this module's logger, unless not
    `warn`.
    """
    timeout = rule.timeout.total_seconds()
    payload = json.dumps(alert.to_json(rule.name)).encode()
    started = time.monotonic()
    answers: dict[int, Delivery] = {}
    threads = []
    for index, channel in enumerate(channels(rule)):

        def send(index: int = index, channel: Channel = channel) -> None:
            answers[index] = _send(rule.name, channel, alert, payload, timeout)

        thread = threading.Thread(target=send, name=f"taskcron-alert-{channel.label}", daemon=True)
        thread.start()
        threads.append((channel, thread))
    deliveries = []
    for index, (channel, thread) in enumerate(threads):
        thread.join(max(0.0, started + timeout + GRACE - time.monotonic()))
        answer = answers.get(index) or Delivery(
            rule=rule.name,
            channel=channel.label,
            ok=False,
            detail=f"no answer within {timeout:g}s",
            elapsed=time.monotonic() - started,
        )
        deliveries.append(answer)
        _tell(rule, alert, answer, report, warn)
    return tuple(deliveries)


def _tell(
    rule: AlertRule, alert: Alert, answer: Delivery, report: Report | None, warn: bool
) -> None:
    if warn and not answer.ok:
        log.warning('alert "%s" via %s failed: %s', rule.name, answer.channel, answer.detail)
    if report is not None:
        try:
            report(alert, answer)
        except Exception as exc:  # a log that cannot be written never stops the caller
            log.warning('cannot record alert "%s" via %s: %s', rule.name, answer.channel, exc)


def _send(rule: str, channel: Channel, alert: Alert, payload: bytes, timeout: float) -> Delivery:
    """One channel's delivery, its failure caught and said in one line."""
    started = time.monotonic()
    try:
        if channel.kind == "webhook":
            detail = _post(str(channel.target), payload, timeout)
        elif channel.kind == "command":
            detail = _run(tuple(channel.target), payload, timeout)
        else:
            detail = _notify(str(channel.target), alert, timeout)
        ok = True
    except DeliveryFailed as exc:
        detail, ok = str(exc), False
    except Exception as exc:
        detail, ok = f"{type(exc).__name__}: {exc}", False
    elapsed = time.monotonic() - started
    return Delivery(
        rule=rule, channel=channel.label, ok=ok, detail=_one_line(detail), elapsed=elapsed
    )


def _one_line(text: str) -> str:
    first = text.strip().splitlines()[0] if text.strip() else ""
    return first[:500]


def _post(url: str, payload: bytes, timeout: float) -> str:
    """POST the alert's JSON to `url`; its HTTP status, or `DeliveryFailed`."""
    import urllib.error
    import urllib.request

    from taskcron import __version__

    request = urllib.request.Request(
        url,
        data=payload,
        method="POST",
        headers={"Content-Type": "application/json", "User-Agent": f"taskcron/{__version__}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return f"HTTP {response.status}"
    except urllib.error.HTTPError as exc:
        raise DeliveryFailed(f"HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        raise DeliveryFailed(f"cannot reach it: {exc.reason}") from None
    except TimeoutError:
        raise DeliveryFailed(f"no answer within {timeout:g}s") from None


def _run(argv: tuple[str, ...], payload: bytes, timeout: float) -> str:
    """Run `argv` with the alert's JSON on its stdin; `exit 0` and its first line of
    output, or `DeliveryFailed`."""
    import subprocess

    try:
        done = subprocess.run(
            argv, input=payload, capture_output=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        raise DeliveryFailed(f"no answer within {timeout:g}s: stopped") from None
    except OSError as exc:
        raise DeliveryFailed(f"cannot run {argv[0]}: {exc.strerror or exc}") from None
    said = _one_line((done.stdout or done.stderr).decode(errors="replace"))
    text = f"exit {done.returncode}" + (f": {said}" if said else "")
    if done.returncode != 0:
        if done.returncode < 0:
            text = f"stopped by signal {-done.returncode}" + (f": {said}" if said else "")
        raise DeliveryFailed(text)
    return text


def _notify(url: str, alert: Alert, timeout: float) -> str:
    """Send the alert's text through Apprise URL `url`; `sent`, or `DeliveryFailed`."""
    apprise = _apprise()
    server = apprise.Apprise.instantiate(url)
    if server is None:
        raise DeliveryFailed(f"not an Apprise URL it can use: {_scheme(url)}://...")
    for name in ("socket_connect_timeout", "socket_read_timeout"):
        if isinstance(getattr(server, name, None), int | float):
            setattr(server, name, timeout)
    notifier = apprise.Apprise()
    notifier.add(server)
    said: list[str] = []
    if "log_callback" in inspect.signature(notifier.notify).parameters:  # Apprise 2

        def keep(entry: Any, _service: Any) -> None:
            if str(getattr(entry, "level", "")).upper() in ("WARNING", "ERROR", "CRITICAL"):
                said.append(str(entry.message))

        sent = notifier.notify(title=alert.subject(), body=alert.body(), log_callback=keep)
    else:
        with _apprise_said() as said:
            sent = notifier.notify(title=alert.subject(), body=alert.body())
    if not sent:
        raise DeliveryFailed(said[-1] if said else "Apprise could not send it")
    return "sent"


def _apprise() -> Any:
    try:
        import apprise
    except ImportError:
        raise DeliveryFailed(
            "notify needs Apprise, the alerts extra: pip install 'taskcron[alerts]'"
        ) from None
    return apprise


def _scheme(url: str) -> str:
    return url.partition("://")[0] if "://" in url else "?"


@contextmanager
def _apprise_said() -> Iterator[list[str]]:
    """Apprise's warnings and errors logged while the block runs (before Apprise 2, whose
    `notify` takes a `log_callback`: these may mix with another channel's)."""
    said: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            said.append(record.getMessage())

    handler = Keep(logging.WARNING)
    logger = logging.getLogger("apprise")
    logger.addHandler(handler)
    try:
        yield said
    finally:
        logger.removeHandler(handler)


#: The most alerts a `Courier` holds waiting for delivery.
MOST_PENDING = 1000


class Courier:
    """Delivers alerts on a thread of its own, so that the caller (a pool, `work`) never
    waits for a channel: `send` queues, the thread runs `deliver` for each in turn.

    `report` is called on the courier's thread. `close(timeout)` waits at most
    `timeout` seconds for what is queued; what is left is not delivered (a
    warning says how many). At most `MOST_PENDING` wait: while channels that
    hang hold the line, a further alert is dropped with a warning rather than
    kept without a bound.
    """

    def __init__(self, *, report: Report | None = None, warn: bool = True) -> None:
        self._report = report
        self._warn = warn
        self._queue: queue.Queue[tuple[AlertRule, Alert] | None] = queue.Queue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None  # started by the first `send`
        self._pending = 0  # sent and not yet delivered
        self._closed = False

    def send(self, rule: AlertRule, alert: Alert) -> None:
        """Queue `alert` for delivery through `rule`'s channels; returns at once."""
        with self._lock:
            if self._closed:
                log.warning('alert "%s" not sent: its courier is closed', rule.name)
                return
            if self._pending >= MOST_PENDING:
                log.warning(
                    'alert "%s" not sent: %d alerts already wait for delivery',
                    rule.name,
                    self._pending,
                )
                return
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._deliver_all, name="taskcron-courier", daemon=True
                )
                self._thread.start()
            self._pending += 1
        self._queue.put((rule, alert))

    @property
    def pending(self) -> int:
        """Alerts sent and not yet delivered."""
        with self._lock:
            return self._pending

    def _deliver_all(self) -> None:
        while (item := self._queue.get()) is not None:
            try:
                deliver(*item, report=self._report, warn=self._warn)
            finally:
                with self._lock:
                    self._pending -= 1

    def close(self, timeout: float | None = None) -> bool:
        """Take no more alerts, and wait at most `timeout` seconds (None: until done) for
        those queued; True when every one was delivered."""
        with self._lock:
            self._closed = True
            thread = self._thread
        if thread is None:
            return True
        self._queue.put(None)
        thread.join(timeout)
        left = self.pending
        if left:
            log.warning("%d alert(s) not delivered: the process ends before them", left)
        return left == 0

    def __enter__(self) -> Courier:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- checking and testing the rules --------------------------------------------


def check_urls(rules: Iterable[AlertRule]) -> list[str]:
    """What is wrong with the rules' Apprise URLs, one line each (empty: nothing).

    Imports Apprise only when some rule has a `notify` URL: `taskcron check` and
    `taskcron alerts test` call it, never a tick."""
    wanted = [(rule, index, url) for rule in rules for index, url in enumerate(rule.notify)]
    if not wanted:
        return []
    try:
        apprise = _apprise()
    except DeliveryFailed as exc:
        return [str(exc)]
    problems = []
    for rule, index, url in wanted:
        if apprise.Apprise.instantiate(url, suppress_exceptions=True) is None:
            problems.append(
                f'alert "{rule.name}": notify[{index}] ({_scheme(url)}://...) is not an Apprise'
                " URL Apprise can use"
            )
    return problems


def test(
    config: Config,
    *,
    host: str,
    at: datetime,
    name: str | None = None,
    report: Report | None = None,
) -> tuple[Delivery, ...]:
    """Send a sample alert through every channel of the rule named `name` (None: of every
    rule), one rule after the other; each channel's answer. A `ConfigError` when there is
    no such rule; no warnings (the answers are returned)."""
    rules = config.alerts
    if not rules:
        raise errors.ConfigError("no alert rules: the config has no [[alerts]] table")
    if name is not None:
        rules = tuple(rule for rule in rules if rule.name == name)
        if not rules:
            known = ", ".join(repr(rule.name) for rule in config.alerts)
            raise errors.ConfigError(f"no alert rule named {name!r}: the rules are {known}")
    answers: list[Delivery] = []
    for rule in rules:
        alert = sample(rule, host=host, at=at, web_url=config.web.url)
        answers += deliver(rule, alert, report=report, warn=False)
    return tuple(answers)


# --- telling what the store decided ---------------------------------------------


class Teller:
    """Sends the alerts a store's write decided (`Task.alerts`) through the rules that
    want them: at once, each rule within its timeout (a tick, which ends next), or by a
    `Courier` beside the caller's loop (`queued`: a pool, `work`, the dashboard).

    A rule's `cooldown` holds back an event of a task that it sent less than that long
    ago; a task still failing (`failing`) sends `failed` again only by a rule with
    `repeat`, that long after it last did. What each rule sends is noted on the task
    (`note`: `Store.note_alerted`), as it is decided, with how many alerts each rule
    sends through each kind of channel (`channels`: `metric_channel`), which the store
    counts: an alert is counted as it is decided, whether its delivery then succeeds or
    not (a failed one is in the log, `alert.failed`).
    """

    def __init__(
        self,
        config: Config,
        *,
        host: str,
        note: Callable[..., None],
        report: Report | None = None,
        queued: bool = False,
    ) -> None:
        self.rules = config.alerts
        self.web_url = config.web.url
        self.host = host
        self.note = note
        self.report = report
        self.courier = Courier(report=report) if queued else None

    def tell(
        self,
        task: Task,
        events: Iterable[str],
        *,
        at: datetime,
        run: Run | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        """Send each of `events` of `task` (about `run`, else its newest) by each rule
        that covers it and is not holding it back; never raises."""
        sent: dict[str, datetime] = {}
        counted: dict[tuple[str, str], int] = {}
        last = {key: datetime.fromisoformat(at) for key, at in task.alerted.items()}
        for event in events:
            said = "failed" if event == "failing" else event
            for rule in rules_for(self.rules, task.module, said):
                key = f"{rule.name}:{said}"
                if not _due(rule, event, last.get(key), at):
                    continue
                sent[key] = at
                for channel in channels(rule):
                    counting = (rule.name, metric_channel(channel))
                    counted[counting] = counted.get(counting, 0) + 1
                alert = alert_for(
                    said,
                    task,
                    run if run is not None else task.last_run,
                    host=self.host,
                    at=at,
                    web_url=self.web_url,
                    details=details,
                )
                if self.courier is not None:
                    self.courier.send(rule, alert)
                else:
                    deliver(rule, alert, report=self.report)
        if sent:
            try:
                self.note(task.id, sent, channels=counted)
            except errors.StoreError as exc:  # the alert is out: its note may go
                log.warning("cannot note the alerts sent of task %d: %s", task.id, exc)

    def close(self, timeout: float | None = None) -> None:
        """Wait at most `timeout` seconds for the alerts still queued."""
        if self.courier is not None:
            self.courier.close(timeout)


def _due(rule: AlertRule, event: str, last: datetime | None, at: datetime) -> bool:
    """Whether `rule` sends `event` at `at`, having last sent it at `last`."""
    if event == "failing":  # the change to failing sent it; again only by `repeat`
        return rule.repeat is not None and (last is None or at - last >= rule.repeat)
    return rule.cooldown is None or last is None or at - last >= rule.cooldown
