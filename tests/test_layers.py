"""The package's layers, kept by a test: the core (modules directly in engine/) does no I/O
and knows no outer layer; load/ knows no service; nothing below the CLI imports click."""

from __future__ import annotations

import ast
from pathlib import Path

ENGINE = Path(__file__).resolve().parent.parent / "engine"
IO_LIBRARIES = {"starlette", "uvicorn", "aiohttp", "httpx", "sqlite3", "asyncpg", "psycopg", "psycopg2",
                "psycopg_pool", "click", "socket", "yarl", "multidict"}
OUTER = {"engine.load", "engine.local", "engine.service", "engine.cli"}
SHELLS = {"cli.py", "cli_campaign.py", "cli_start.py"}  # the command line: the outermost shell, allowed to import every layer


def imported(path: Path) -> set[str]:
    """Every module a file imports, at any depth (function-level imports included)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return names


def top(name: str) -> str:
    return name.split(".")[0]


def under(name: str, packages: set[str]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in packages)


def core_modules() -> list[Path]:
    return [p for p in sorted(ENGINE.glob("*.py")) if p.name not in SHELLS]


def test_the_core_imports_no_io_library_and_no_outer_layer():
    problems = []
    for path in core_modules():
        # engine/__init__.py is the public API: it names outer-layer classes (loaded lazily).
        outer = {"engine.service", "engine.cli"} if path.name == "__init__.py" else OUTER
        for name in sorted(imported(path)):
            if top(name) in IO_LIBRARIES or under(name, outer):
                problems.append(f"engine/{path.name} imports {name}")
    assert not problems, problems


def test_load_imports_no_service_and_no_local_module():
    problems = []
    for path in sorted((ENGINE / "load").glob("*.py")):
        for name in sorted(imported(path)):
            if under(name, {"engine.service", "engine.local", "engine.cli"}) or top(name) in IO_LIBRARIES - {"socket"}:
                problems.append(f"engine/load/{path.name} imports {name}")
    assert not problems, problems


def test_local_imports_no_service_app():
    # The local shells may share the service's HTTP helpers and signatures, never its app.
    problems = []
    for path in sorted((ENGINE / "local").glob("*.py")):
        for name in sorted(imported(path)):
            if under(name, {"engine.service.app", "engine.service.runs", "engine.service.api", "engine.service.callbacks", "engine.service.sweeper", "engine.service.main", "engine.service.console", "engine.cli"}):
                problems.append(f"engine/local/{path.name} imports {name}")
    assert not problems, problems


def test_node_types_import_only_the_core():
    problems = []
    for path in sorted((ENGINE.parent / "nodes").glob("*.py")):
        for name in sorted(imported(path)):
            if top(name) in IO_LIBRARIES or under(name, OUTER):
                problems.append(f"nodes/{path.name} imports {name}")
    assert not problems, problems


def test_the_check_sees_imports_inside_functions(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("def f():\n    import httpx\n    from engine.service import store\n")
    assert {"httpx", "engine.service", "engine.service.store"} <= imported(sample)
