"""Finding the code a task runs: the `@task` registry, entry points, import paths.

Handlers are called as `handler(ctx, data)`. They are registered by name with
the `task` decorator in a module the config lists under `modules`, or through
the entry point group `taskcron.tasks` (`name = "pkg.mod:func"`), or named
directly by an import path `package.module:function`.
"""

from __future__ import annotations

import functools
import importlib
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar, overload

from taskcron import errors
from taskcron.model import Target, TargetKind

ENTRY_POINT_GROUP = "taskcron.tasks"

Handler = Callable[..., Any]
F = TypeVar("F", bound=Handler)

_registry: dict[str, Handler] = {}


def _describe(fn: Handler) -> str:
    return f"{getattr(fn, '__module__', '?')}:{getattr(fn, '__qualname__', repr(fn))}"


def register(name: str, fn: Handler) -> None:
    """Register `fn` under `name`; a different function already there is a `HandlerError`."""
    present = _registry.get(name)
    if present is not None and present is not fn and _describe(present) != _describe(fn):
        raise errors.HandlerError(
            f"task name {name!r} is registered twice: by {_describe(present)} and {_describe(fn)}"
        )
    _registry[name] = fn


@overload
def task(fn: F, /) -> F: ...
@overload
def task(name: str | None = None, /) -> Callable[[F], F]: ...
@overload
def task(*, name: str | None = None) -> Callable[[F], F]: ...


def task(fn: Any = None, /, name: str | None = None) -> Any:
    """Register a handler so that `taskcron schedule MODULE --task NAME` can run it.

    Use as `@task`, `@task()`, `@task("name")` or `@task(name="name")`; the
    default name is the function's `__name__`. The function is returned
    unchanged.
    """
    if callable(fn):
        register(fn.__name__, fn)
        return fn
    if isinstance(fn, str):
        name = fn

    def decorate(func: F) -> F:
        register(name or func.__name__, func)
        return func

    return decorate


def add_import_paths(paths: Iterable[Path]) -> None:
    """Put `paths` first on sys.path, in order (the config's directory, then `pythonpath`)."""
    for path in reversed(list(paths)):
        text = str(path)
        if text in sys.path:
            sys.path.remove(text)
        sys.path.insert(0, text)


def import_path(path: str) -> Handler:
    """The object named by `package.module:attribute.chain`, or `HandlerError` saying why not."""
    module_name, _, attribute = path.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
    except errors.HandlerError:
        raise
    except ImportError as exc:
        raise errors.HandlerError(f"cannot import {module_name!r} for {path!r}: {exc}") from exc
    for part in attribute.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise errors.HandlerError(
                f"cannot find {attribute!r} in module {module_name!r} for {path!r}"
            ) from None
    if not callable(obj):
        raise errors.HandlerError(f"{path!r} is not callable")
    return obj  # type: ignore[no-any-return]


def load_modules(modules: Sequence[str]) -> None:
    """Import the config's `modules`, so that their `@task` handlers register."""
    for name in modules:
        try:
            importlib.import_module(name)
        except errors.HandlerError:
            raise
        except ImportError as exc:
            raise errors.HandlerError(f"cannot import task module {name!r}: {exc}") from exc


def find(name: str, modules: Sequence[str]) -> Handler:
    """The handler registered as `name` by the config's `modules`, else by an entry point.

    Entry points are read only for a name no module registers: reading them
    costs more than the rest of starting a task (`taskcron check` lists both).
    """
    load_modules(modules)
    found = _registry.get(name)
    if found is not None:
        return found
    from importlib.metadata import entry_points

    entries = entry_points(group=ENTRY_POINT_GROUP)
    for entry in entries:
        if entry.name != name:
            continue
        fn = import_path(entry.value.replace(" ", ""))
        if found is not None and found is not fn and _describe(found) != _describe(fn):
            raise errors.HandlerError(
                f"task name {name!r} is registered twice: by {_describe(found)} "
                f"and entry point {entry.value}"
            )
        found = fn
    if found is None:
        raise _unknown(name, modules, {*_registry, *(entry.name for entry in entries)})
    return found


def _unknown(name: str, modules: Sequence[str], names: Iterable[str]) -> errors.HandlerError:
    """No handler is registered as `name`: where that was looked for, and the registered
    `names` it is probably a misspelling of."""
    import difflib

    where = f"modules {', '.join(modules)}" if modules else "no modules (config 'modules')"
    close = difflib.get_close_matches(name, sorted(names), n=3)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    return errors.HandlerError(
        f"no task handler named {name!r} (searched {where} and entry points "
        f"{ENTRY_POINT_GROUP!r}){hint}"
    )


def registered(modules: Sequence[str]) -> list[str]:
    """The names of every handler the config's `modules` and the entry points register."""
    load_modules(modules)
    from importlib.metadata import entry_points

    return sorted({*_registry, *(e.name for e in entry_points(group=ENTRY_POINT_GROUP))})


def check_name(name: str, modules: Sequence[str]) -> tuple[bool, list[str]]:
    """Whether `name` is a handler the config's `modules` or the entry points register,
    and why each module that cannot be imported (whatever its import raised) cannot.

    A name that is not registered while every module imports is a `HandlerError`
    that says which registered name it is probably a misspelling of. Entry points
    are read only for a name no module registers, as `find` does.
    """
    unimportable = []
    for module in modules:
        try:
            _guarded(functools.partial(load_modules, [module]), module)
        except errors.HandlerError as exc:
            unimportable.append(str(exc))
    if name in _registry:
        return True, unimportable
    from importlib.metadata import entry_points

    names = {*_registry, *(e.name for e in entry_points(group=ENTRY_POINT_GROUP))}
    if name in names or unimportable:
        return name in names, unimportable
    raise _unknown(name, modules, names)


def resolve(target: Target, *, modules: Sequence[str], cwd: Path | None) -> None:
    """Check that `target` can be run from here, or raise `HandlerError` saying why not.

    A callable must import, a task name must be registered, a command's
    program must exist and be executable (found on PATH, or relative to `cwd`).
    """
    if target.kind is TargetKind.CALL:
        assert isinstance(target.value, str)
        _guarded(lambda: import_path(str(target.value)), str(target.value))
    elif target.kind is TargetKind.TASK:
        assert isinstance(target.value, str)
        _guarded(lambda: find(str(target.value), modules), str(target.value))
    else:
        program = target.value[0]
        if os.sep in program:
            path = Path(program) if cwd is None else cwd / program
            found = path.is_file() and os.access(path, os.X_OK)
        else:
            import shutil  # only `check` and `schedule --check` resolve a command

            found = shutil.which(program) is not None
        if not found:
            raise errors.HandlerError(f"command {program!r} not found or not executable")


def _guarded(load: Callable[[], Any], what: str) -> None:
    """Run `load`; code that fails at import time is a `HandlerError`, whatever it raised."""
    try:
        load()
    except errors.HandlerError:
        raise
    except Exception as exc:
        raise errors.HandlerError(
            f"importing the code of {what!r} failed: {type(exc).__name__}: {exc}"
        ) from exc
