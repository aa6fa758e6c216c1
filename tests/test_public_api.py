"""`import engine`: the public API for embedding (docs/embedding.md), pinned."""

from __future__ import annotations

import inspect
import re
import subprocess
import sys
from pathlib import Path

import engine

ROOT = Path(__file__).resolve().parent.parent

# Adding a name is a decision: change this list with the docs.
PUBLIC = [
    "CallflowError", "Callback", "Diagnostic", "Executor", "Expired", "Finished", "Flow", "FlowInvalid",
    "InboundCall", "InboundMessage", "LocalRun", "NodeType", "Request", "Response", "RunEnvironment", "RunState", "Scenario",
    "ServeDocument", "TimerFired", "Trigger", "check_file", "check_text", "load_flow", "load_scenario", "register",
]


def test_all_is_pinned():
    assert engine.__all__ == sorted(PUBLIC)


def test_every_public_name_resolves_and_is_documented():
    for name in engine.__all__:
        value = getattr(engine, name)
        doc = inspect.getdoc(value) or ""
        assert len(doc) > 20 and not doc.startswith(f"{name}("), f"engine.{name} has no docstring worth the name"
        assert name in dir(engine)


def test_unknown_names_are_attribute_errors():
    try:
        engine.no_such_thing  # noqa: B018
    except AttributeError as e:
        assert "no_such_thing" in str(e)
    else:
        raise AssertionError("engine.no_such_thing resolved")


def test_importing_engine_loads_nothing_heavy():
    code = ("import sys, engine; heavy = [m for m in ('networkx', 'liquid', 'yaml', 'starlette', 'aiohttp', "
            "'httpx', 'click', 'engine.executor', 'engine.load') if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"


def test_errors_share_one_base():
    from engine import errors

    for name in errors.__all__:
        cls = getattr(errors, name)
        assert issubclass(cls, errors.CallflowError), name
        assert name in errors.__doc__, f"{name} is missing from the hierarchy in errors.py's docstring"


def _python_blocks(markdown: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", markdown, re.S)


def test_the_embedding_guide_runs(tmp_path):
    blocks = _python_blocks((ROOT / "docs" / "embedding.md").read_text())
    assert blocks, "docs/embedding.md shows no Python"
    for block in blocks:
        script = tmp_path / "example.py"
        script.write_text(block)
        out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=ROOT, timeout=60)
        assert out.returncode == 0, f"{block}\n--- stderr:\n{out.stderr}"
        assert out.stdout.strip(), "the example prints nothing"


def test_every_public_name_has_a_home():
    assert sorted(engine._HOMES) == engine.__all__
