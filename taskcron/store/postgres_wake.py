"""PostgresWake: a connection that LISTENs for tasks made claimable or changed.

Opened by a process that waits for tasks (`work`, the dashboard's hub), never by a
tick. The store's trigger (`tasks_wake` in `taskcron.store.postgres`) notifies the
tasks' channel with a task's id when a write adds a task, puts one back in the line,
makes one due sooner, pauses or cancels one; the notification is delivered when
that write commits. The waiting process watches `fileno()` and calls `drain()`
when it is readable; what a lost connection missed, its poll finds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from taskcron import errors
from taskcron.store.postgres import connect
from taskcron.store.postgres_faults import first_line
from taskcron.store.postgres_schema import wake_channel

if TYPE_CHECKING:
    import psycopg

#: `{channel}`: the tasks' channel, from a checked schema name.
LISTEN = 'LISTEN "{channel}"'


class PostgresWake:
    """A listening connection of its own. See the module docstring and `WakeSource`."""

    def __init__(self, conninfo: str, *, url: str, schema: str) -> None:
        """Connect and LISTEN; `StoreUnreachable` while the server is away."""
        import psycopg

        self.url = url
        self._db: psycopg.Connection[Any] = connect(conninfo, url=url, schema=schema)
        try:
            self._db.execute(LISTEN.format(channel=wake_channel(schema)))
        except psycopg.Error as exc:
            self._db.close()
            raise self._lost(exc) from exc

    def fileno(self) -> int:
        """The connection's socket: readable when a notification (or its loss) arrives."""
        return self._db.fileno()

    def drain(self) -> list[str]:
        """The payloads (task ids) of the notifications received so far, without waiting;
        `StoreUnreachable` once the connection is lost (then close it and open another)."""
        import psycopg

        try:
            return [note.payload for note in self._db.notifies(timeout=0)]
        except psycopg.Error as exc:
            raise self._lost(exc) from exc

    def _lost(self, exc: Exception) -> errors.StoreUnreachable:
        return errors.StoreUnreachable(
            f"store {self.url}: the listening connection is lost: {first_line(exc)}"
        )

    def close(self) -> None:
        """Release the connection."""
        self._db.close()
