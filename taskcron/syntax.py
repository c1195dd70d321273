"""SQLite store URLs, read and checked; light, as it is on the idle path.

The module's other readers moved to `taskcron.inputs`; it re-exports the few names
`taskcron.line` and `taskcron.store` still import from here.
"""

from __future__ import annotations

from pathlib import Path

from taskcron import errors
from taskcron.inputs import LOG_LEVELS, covers, in_scope

__all__ = ["LOG_LEVELS", "SQLITE_PREFIX", "covers", "in_scope", "sqlite_path", "sqlite_url"]

# --- SQLite store URLs -------------------------------------------------------

SQLITE_PREFIX = "sqlite:///"


def sqlite_path(url: str) -> str:
    """The file path of a `sqlite:///` URL, as written (relative or absolute).

    Everything after `sqlite:///` is the path, taken literally: a home may hold
    `%`, `#` or `?`, which a general URL parser would read as escapes, a
    fragment or a query.
    """
    if not url.startswith(SQLITE_PREFIX):
        raise errors.StoreURLError(
            f"invalid store URL {url!r}: expected sqlite:///relative/path or "
            "sqlite:////absolute/path"
        )
    path = url[len(SQLITE_PREFIX) :]
    if not path or path.endswith("/"):
        raise errors.StoreURLError(f"invalid store URL {url!r}: it names no file")
    if path == ":memory:":
        raise errors.StoreURLError(
            f"invalid store URL {url!r}: an in-memory store would vanish with each command"
        )
    return path


def sqlite_url(url: str, base: Path) -> str:
    """A `sqlite:///` URL with its path made absolute against `base`."""
    path = Path(sqlite_path(url)).expanduser()
    return SQLITE_PREFIX + str((base / path).absolute())
