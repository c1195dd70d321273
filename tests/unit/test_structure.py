"""The house's structure, read from the imports: what may import what, and how long things are."""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "taskcron"
#: Modules at or above the API: they compose the parts and talk to people.
TOP = {"api", "cli", "render", "__main__", "__init__"}
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
        and not name.startswith(("taskcron.store", "taskcron.web"))
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
    "taskcron.runner.supervisor",
    "taskcron.runner",
)
#: What the runner may import of taskcron outside itself: nothing that knows of a store or a tick.
BELOW_THE_RUNNER = {"taskcron.errors", "taskcron.handlers", "taskcron.context", "taskcron.model"}


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
        if name != "taskcron.cli":
            assert "taskcron.render" not in found, name
            assert "click" not in found, name


#: What the CLI may import of taskcron: the API, render, errors and the package itself
#: (and the web package, inside its command).
CLI_IMPORTS = {"taskcron", "taskcron.api", "taskcron.render", "taskcron.errors"}


def test_the_cli_imports_only_the_api_render_errors_and_the_package() -> None:
    package = modules()
    tree = package["taskcron.cli"]
    ours = {n for n in imports(tree) if n in package} - {"taskcron.web"}
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


def test_the_cli_has_no_function_longer_than_about_forty_lines() -> None:
    long = {name: n for name, n in functions(modules()["taskcron.cli"]).items() if n > 40}
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
            and node.value.split(".")[0] in {"task", "tick", "store"}
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
API_FROM_WEB = {"taskcron.web.auth", "taskcron.web.auth.owner_signature"}


def test_only_the_cli_imports_the_web_package_and_only_in_its_command() -> None:
    for name, tree in modules().items():
        if name.startswith("taskcron.web"):
            continue
        found = {n for n in imports(tree) if n.startswith("taskcron.web")}
        if name in ("taskcron.cli", "taskcron.api"):
            assert not {n for n in top_level_imports(tree) if n.startswith("taskcron.web")}
        if name == "taskcron.api":
            assert found <= API_FROM_WEB, found
        elif name != "taskcron.cli":
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
    "taskcron.syntax",
    "taskcron.configfile",
    "taskcron.store",
    "taskcron.store.sqlite_line",
    "taskcron.store.scopes",
    "taskcron.store.sqlite_schema",
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
BACKENDS = {"taskcron.store.sqlite", "taskcron.store.postgres", "taskcron.store.postgres_log"}
#: What the store may import of taskcron outside itself: it lies below everything else.
BELOW_THE_STORE = {"taskcron.errors", "taskcron.model", "taskcron.syntax"}


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
