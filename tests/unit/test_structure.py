"""The house's structure, read from the imports: what may import what, and how long things are."""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "taskcron"
#: Modules at or above the API: they compose the parts and talk to people.
TOP = {"api", "cli", "render", "__main__", "__init__"}
#: The packages that talk to people: the command line, and what it draws and says.
PEOPLE = ("taskcron.cli", "taskcron.render")
CONCRETE_STORES = {"taskcron.store.sqlite", "taskcron.store.postgres"}


def modules() -> dict[str, ast.Module]:
    """Every module of the package by name, parsed (the tests only read the trees)."""
    return dict(_parsed())


@functools.cache
def _parsed() -> dict[str, ast.Module]:
    """The package's modules, parsed once a session: parsing them all takes a fair part
    of a second, and most tests here read them."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__" and len(parts) > 2:
            parts = parts[:-1]  # a subpackage by its name: importing it runs its __init__
        found[".".join(parts)] = ast.parse(path.read_text(), str(path))
    return found


def imports(tree: ast.Module) -> set[str]:
    """Every module a tree imports, at the top or inside functions."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def below_api() -> list[str]:
    return [
        name
        for name in modules()
        if name.split(".")[-1] not in TOP
        and not name.startswith(("taskcron.store", "taskcron.web", *PEOPLE))
    ]


@pytest.mark.parametrize("name", below_api())
def test_no_module_below_the_api_imports_a_concrete_store_click_or_rich(name: str) -> None:
    found = imports(modules()[name])
    assert not found & CONCRETE_STORES
    assert not {n for n in found if n.split(".")[0] in {"click", "rich"}}


def test_the_api_imports_no_concrete_store() -> None:
    assert not imports(modules()["taskcron.api"]) & CONCRETE_STORES


#: The runner's modules, each importing only those before it: the kinds of child beneath the
#: execution that drives them, the loop above it, the package's face on top.
RUNNER = (
    "taskcron.runner.child",
    "taskcron.runner.process",
    "taskcron.runner.command",
    "taskcron.runner.forked",
    "taskcron.runner.execution",
    "taskcron.runner.guard",
    "taskcron.runner.supervisor",
    "taskcron.runner",
)
#: What the runner may import of taskcron outside itself: nothing that knows of a store or a tick.
BELOW_THE_RUNNER = {
    "taskcron.errors",
    "taskcron.handlers",
    "taskcron.context",
    "taskcron.model",
    "taskcron.outage",
    "taskcron.values",
}


def test_the_runner_package_is_listed_in_its_order() -> None:
    listed = sorted(n for n in modules() if n.split(".")[:2] == ["taskcron", "runner"])
    assert listed == sorted(RUNNER)


@pytest.mark.parametrize("name", RUNNER)
def test_the_runner_imports_no_store(name: str) -> None:
    assert not {n for n in imports(modules()[name]) if n.startswith("taskcron.store")}


@pytest.mark.parametrize("name", RUNNER)
def test_a_runner_module_imports_only_what_is_below_it(name: str) -> None:
    package = modules()
    ours = {n for n in imports(package[name]) if n in package} - {"taskcron"}  # `from taskcron`
    assert ours <= BELOW_THE_RUNNER | set(RUNNER[: RUNNER.index(name)]), name


def test_only_the_cli_imports_render_and_click() -> None:
    for name, tree in modules().items():
        found = imports(tree)
        if not name.startswith(PEOPLE):
            assert not {n for n in found if n.startswith("taskcron.render")}, name
        if not name.startswith("taskcron.cli"):
            assert "click" not in found, name


#: What the CLI may import of taskcron: the API, render, errors and the package itself
#: (and the web package, inside its command).
CLI_IMPORTS = {"taskcron", "taskcron.api", "taskcron.render", "taskcron.errors"}


def cli_modules() -> list[str]:
    return [name for name in modules() if name.startswith("taskcron.cli")]


@pytest.mark.parametrize("name", cli_modules())
def test_the_cli_imports_only_the_api_render_errors_and_the_package(name: str) -> None:
    package = modules()
    ours = {n for n in imports(package[name]) if n in package} - {"taskcron.web"}
    ours = {n for n in ours if not n.startswith(PEOPLE)}  # its own modules, and render's
    assert ours <= CLI_IMPORTS, ours - CLI_IMPORTS


@pytest.mark.parametrize("name", ["taskcron.home", "taskcron.ticking", "taskcron.doctor"])
def test_the_parts_the_api_composes_import_nothing_above_them(name: str) -> None:
    package = modules()
    above = {"taskcron.api", "taskcron.cli", "taskcron.render", "taskcron.web"}
    assert not {n for n in imports(package[name]) if n in package} & above


def functions(tree: ast.Module) -> dict[str, int]:
    """Each function's name and the length of its body in lines, without its docstring.

    A click command's signature grows with its options; its body is what holds ideas.
    """
    lengths = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef):
            body = node.body
            if isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                body = body[1:] or body
            lengths[node.name] = (node.end_lineno or node.lineno) - body[0].lineno + 1
    return lengths


@pytest.mark.parametrize("name", cli_modules())
def test_the_cli_has_no_function_longer_than_about_forty_lines(name: str) -> None:
    long = {fn: n for fn, n in functions(modules()[name]).items() if n > 40}
    assert long == {}


def test_tick_is_about_forty_lines() -> None:
    assert functions(modules()["taskcron.api"])["tick"] <= 40


def test_event_names_are_written_in_one_place() -> None:
    for name, tree in modules().items():
        if name == "taskcron.lifecycle":
            continue
        literals = [
            node.value
            for node in ast.walk(tree)
            if isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and node.value.split(".")[0] in {"task", "tick", "store", "alert"}
            and node.value.count(".") == 1
            and node.value.split(".")[1].isalpha()
        ]
        assert literals == [], name


WEB_FRAMEWORK = {"starlette", "uvicorn", "jinja2", "anyio", "httpx"}


def top_level_imports(tree: ast.Module) -> set[str]:
    """The modules a tree imports when it is imported: outside every function."""
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_only_the_web_package_imports_the_web_framework() -> None:
    for name, tree in modules().items():
        if name.startswith("taskcron.web."):
            continue
        found = imports(tree) if name != "taskcron.web" else top_level_imports(tree)
        assert not {n for n in found if n.split(".")[0] in WEB_FRAMEWORK}, name


#: What the API may import of the web package, inside the function that needs it: the
#: signing of owner links (standard library only), kept in one place with the web's own.
API_FROM_WEB = {"taskcron.web.auth", "taskcron.web.auth.owner_link"}


def test_only_the_cli_imports_the_web_package_and_only_in_its_command() -> None:
    for name, tree in modules().items():
        if name.startswith("taskcron.web"):
            continue
        found = {n for n in imports(tree) if n.startswith("taskcron.web")}
        if name.startswith("taskcron.cli") or name == "taskcron.api":
            assert not {n for n in top_level_imports(tree) if n.startswith("taskcron.web")}
        if name == "taskcron.api":
            assert found <= API_FROM_WEB, found
        elif not name.startswith("taskcron.cli"):
            assert not found, name


def test_the_web_signing_needs_only_the_standard_library() -> None:
    import sys

    found = top_level_imports(modules()["taskcron.web.auth"])
    assert {n.split(".")[0] for n in found} <= {"__future__", *sys.stdlib_module_names}, found


def test_a_tick_imports_nothing_of_the_web(tmp_path: Path) -> None:
    import subprocess
    import sys

    probe = (
        "import sys\n"
        "from taskcron import cli\n"
        "try:\n"
        "    cli.main(['--home', sys.argv[1], 'tick'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in "
        f"{sorted(WEB_FRAMEWORK)!r} or m.startswith('taskcron.web'))\n"
        "print(loaded)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe, str(tmp_path / "home")],
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout == "[]\n", result.stdout


#: What an idle tick imports (see taskcron.__main__) before it knows the scope is idle.
IDLE_PATH = {
    "taskcron.errors",
    "taskcron.inputs",
    "taskcron.configfile",
    "taskcron.store",
    "taskcron.store.sqlite_line",
    "taskcron.store.scopes",
    "taskcron.store.sqlite_schema",
    "taskcron.tickmarks",
    "taskcron.heartbeat",  # only with a heartbeat; its sending process is another program
}


@pytest.mark.parametrize("name", sorted(IDLE_PATH | {"taskcron.__main__"}))
def test_an_idle_tick_imports_only_its_modules_and_the_standard_library(name: str) -> None:
    import sys

    package = modules()
    # The store's face imports the protocol and the backends only when they are asked for.
    found = (top_level_imports if name == "taskcron.store" else imports)(package[name])
    ours = {n for n in found if n in package}  # modules, not the names imported from them
    if name == "taskcron.__main__":
        ours -= {"taskcron.cli"}  # every command but an idle tick goes there
    assert ours <= IDLE_PATH
    others = {n.split(".")[0] for n in found} - {"taskcron", "__future__", "tomli"}
    assert others <= set(sys.stdlib_module_names)


#: The store's backends: imported only inside `taskcron.store`, which opens them by URL.
BACKENDS = {
    "taskcron.store.sqlite",
    "taskcron.store.postgres",
    "taskcron.store.postgres_log",
    "taskcron.store.postgres_wake",
}
#: What the store may import of taskcron outside itself: it lies below everything else.
#: (`taskcron.outage` imports only the errors: retry delays and what to say of an outage.)
BELOW_THE_STORE = {
    "taskcron.errors",
    "taskcron.model",
    "taskcron.inputs",
    "taskcron.values",
    "taskcron.outage",
}


def test_no_store_backend_is_imported_outside_the_store() -> None:
    for name, tree in modules().items():
        if not name.startswith("taskcron.store"):
            assert not imports(tree) & BACKENDS, name


def test_no_store_module_imports_back_up() -> None:
    package = modules()
    for name, tree in package.items():
        if name.startswith("taskcron.store"):
            ours = {n for n in imports(tree) if n in package and n != "taskcron"}
            assert {n for n in ours if not n.startswith("taskcron.store")} <= BELOW_THE_STORE, name


def test_the_store_face_loads_no_dataclasses_and_no_protocol() -> None:
    import subprocess
    import sys

    probe = (
        "import sys\n"
        "import taskcron.store.sqlite_line\n"
        "print(sorted(m for m in ('dataclasses', 'taskcron.store.protocol', 'taskcron.model')"
        " if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert result.stdout == "[]\n", result.stdout


#: How long a module, and one class or function, may grow before it holds two ideas.
MODULE_LINES, DEFINITION_LINES = 800, 400


@pytest.mark.parametrize("name", sorted(modules()))
def test_no_module_is_over_800_lines_and_no_definition_over_400(name: str) -> None:
    tree = modules()[name]
    lines = max((node.end_lineno or 0) for node in tree.body) if tree.body else 0
    assert lines <= MODULE_LINES, name
    long = {
        node.name: (node.end_lineno or node.lineno) - node.lineno + 1
        for node in ast.walk(tree)
        if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
    }
    assert {n: size for n, size in long.items() if size > DEFINITION_LINES} == {}


def import_graph() -> dict[str, set[str]]:
    """Each module and the modules of ours it imports when it is imported (neither those
    inside functions nor those for type checkers only), but the package's face."""
    package = modules()
    return {
        name: {n for n in top_level_imports(tree) if n in package} - {name, "taskcron"}
        for name, tree in package.items()
    }


def test_no_module_imports_itself_back_through_others() -> None:
    graph, done, cycles = import_graph(), set(), []

    def visit(name: str, path: list[str]) -> None:
        for found in sorted(graph[name]):
            if found in path:
                cycles.append([*path[path.index(found) :], found])
            elif found not in done:
                visit(found, [*path, found])
        done.add(name)

    for name in sorted(graph):
        if name not in done:
            visit(name, [name])
    assert cycles == []


def test_records_are_value_classes_but_in_the_web_signing() -> None:
    """`dataclasses.replace` refuses a `@value` record: one kind of record, one `replace`.
    The web signing keeps to the standard library (see above), dataclasses included."""
    users = {name for name, tree in modules().items() if "dataclasses" in imports(tree)}
    assert users <= {"taskcron.web.auth"}
