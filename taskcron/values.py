"""`@value`: taskcron's records, frozen, typed and keyword-only, for almost nothing at import.

`dataclasses` writes each class's methods as source and compiles them (several
compiles a class, and `slots=True` builds the class twice), on the path of every
command's start. A `@value` class gets the same promises from methods shared by
every class, and type checkers read it as a dataclass (PEP 681,
`dataclass_transform`):

- `__init__` takes each field by keyword (by position too with `kw_only=False`),
  fills in defaults (`field(default_factory=...)` calls its factory each time),
  refuses an unknown or missing field with `TypeError`, then calls
  `__post_init__` if the class has one;
- fields cannot be assigned or deleted (`FrozenError`) unless `frozen=False`;
- `==` and `hash` compare the fields (but those with `compare=False`), `repr`
  shows them (but those with `repr=False`);
- `replace(value, **changes)` makes a changed copy, through `__init__` again, as
  `dataclasses.replace` does (and `copy.replace` from Python 3.13).

No inheritance between value classes: none is needed, and it keeps each class's
fields its own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, overload

if TYPE_CHECKING:
    from typing_extensions import dataclass_transform  # in typing from Python 3.11
else:

    def dataclass_transform(**_: object) -> Callable[[Any], Any]:
        return lambda decorated: decorated


T = TypeVar("T")
#: A field's default when it has none (as `dataclasses.MISSING`).
MISSING: Any = object()
_MISSING = MISSING


class FrozenError(AttributeError):
    """An assignment to a field of a frozen value."""


class Field:
    """One field of a value class: its name and type (as written), default or default
    factory, and whether it takes part in `==`/`hash` and `repr`."""

    __slots__ = ("compare", "default", "default_factory", "name", "repr", "type")

    def __init__(
        self,
        default: Any = _MISSING,
        default_factory: Any = _MISSING,
        compare: bool = True,
        repr: bool = True,
        name: str = "",
    ) -> None:
        self.default = default
        self.default_factory = default_factory
        self.compare = compare
        self.repr = repr
        self.name = name
        self.type = ""

    @property
    def required(self) -> bool:
        """Whether the field has neither a default nor a default factory."""
        return self.default is _MISSING and self.default_factory is _MISSING


def field(
    *,
    default: Any = _MISSING,
    default_factory: Callable[[], Any] = _MISSING,
    compare: bool = True,
    repr: bool = True,
) -> Any:
    """A field's default, or the factory that makes one per value, and whether the field
    takes part in `==`/`hash` (`compare`) and in `repr`."""
    return Field(default, default_factory, compare, repr)


@overload
def value(cls: type[T], /) -> type[T]: ...


@overload
def value(*, kw_only: bool = True, frozen: bool = True) -> Callable[[type[T]], type[T]]: ...


@dataclass_transform(kw_only_default=True, frozen_default=True, field_specifiers=(field,))
def value(
    cls: type[T] | None = None, /, *, kw_only: bool = True, frozen: bool = True
) -> type[T] | Callable[[type[T]], type[T]]:
    """Make `cls` a value class (see the module's docstring)."""
    if cls is None:
        return lambda found: _build(found, kw_only=kw_only, frozen=frozen)
    return _build(cls, kw_only=kw_only, frozen=frozen)


def fields(cls_or_value: Any) -> tuple[Field, ...]:
    """The fields of a value class (or of a value), in the order they are declared."""
    found: tuple[Field, ...] = cls_or_value.__value_fields__
    return found


def replace(obj: T, /, **changes: Any) -> T:
    """A copy of the value `obj` with `changes`, made (and checked) by its `__init__`."""
    given = {f.name: obj.__dict__[f.name] for f in fields(obj)}
    given.update(changes)
    return obj.__class__(**given)


def _declared(cls: type) -> tuple[Field, ...]:
    """The fields the class body declares: annotated names, but ClassVars, with the
    defaults found beside them (a `Field` there is replaced by its plain default)."""
    notes: dict[str, Any] = getattr(cls, "__annotations__", {})  # its own, from Python 3.10
    found = []
    for name, note in notes.items():
        if str(note).startswith(("ClassVar", "typing.ClassVar")):
            continue
        default = cls.__dict__.get(name, _MISSING)
        spec = default if isinstance(default, Field) else Field(default)
        spec.name, spec.type = name, str(note)
        found.append(spec)
        if isinstance(default, Field):
            if spec.default is _MISSING:
                delattr(cls, name)
            else:
                setattr(cls, name, spec.default)
    return tuple(found)


def _build(cls: type[T], *, kw_only: bool, frozen: bool) -> type[T]:
    specs = _declared(cls)
    names = tuple(f.name for f in specs)
    allowed = frozenset(names)
    required = frozenset(f.name for f in specs if f.required)
    defaults = {f.name: f.default for f in specs if f.default is not _MISSING}
    factories = tuple(
        (f.name, f.default_factory) for f in specs if f.default_factory is not _MISSING
    )
    compared = tuple(f.name for f in specs if f.compare)
    shown = tuple(f.name for f in specs if f.repr)
    post_init = getattr(cls, "__post_init__", None)
    title = cls.__qualname__

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        if args:
            if kw_only or len(args) > len(names):
                raise TypeError(f"{title}() takes its fields by keyword, at most {len(names)}")
            for name, arg in zip(names, args, strict=False):
                if name in kwargs:
                    raise TypeError(f"{title}() got multiple values for {name!r}")
                kwargs[name] = arg
        if not kwargs.keys() <= allowed:
            unknown = sorted(kwargs.keys() - allowed)[0]
            raise TypeError(f"{title}() got an unexpected keyword argument {unknown!r}")
        if not required <= kwargs.keys():
            missing = sorted(required - kwargs.keys())[0]
            raise TypeError(f"{title}() missing required keyword argument {missing!r}")
        state = self.__dict__
        state.update(defaults)
        for name, factory in factories:
            if name not in kwargs:
                state[name] = factory()
        state.update(kwargs)
        if post_init is not None:
            post_init(self)

    def __eq__(self: Any, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        mine, theirs = self.__dict__, other.__dict__
        return all(mine[name] == theirs[name] for name in compared)

    def __hash__(self: Any) -> int:
        state = self.__dict__
        return hash(tuple(state[name] for name in compared))

    def __repr__(self: Any) -> str:
        state = self.__dict__
        return f"{title}({', '.join(f'{name}={state[name]!r}' for name in shown)})"

    def __setattr__(self: Any, name: str, _: object) -> None:
        raise FrozenError(f"cannot assign to field {name!r} of a frozen {title}")

    def __delattr__(self: Any, name: str) -> None:
        raise FrozenError(f"cannot delete field {name!r} of a frozen {title}")

    methods: dict[str, Any] = {
        "__init__": __init__,
        "__eq__": __eq__,
        "__repr__": __repr__,
        "__replace__": replace,
        "__value_fields__": specs,
    }
    if frozen:
        methods.update(__hash__=__hash__, __setattr__=__setattr__, __delattr__=__delattr__)
    else:
        methods["__hash__"] = None  # mutable and compared by value: not hashable
    for name, method in methods.items():
        if getattr(method, "__qualname__", "").startswith("_build."):
            method.__qualname__ = f"{title}.{name}"
        setattr(cls, name, method)
    return cls
