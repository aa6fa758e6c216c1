"""The catalogue of diagnostic codes (engine/codes.py) against its documentation and its use.

docs/diagnostics.md explains every `Code` under its anchor, with its severity, a failing
example and a fix, and nothing else; every `Code` is reported somewhere in the engine or
the node types; reporters are handed `Code`s, never bare strings.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from engine import codes
from engine.codes import CATALOGUE, Code

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "diagnostics.md"
CORPUS = ROOT / "tests" / "corpus"
SOURCES = sorted((ROOT / "engine").rglob("*.py")) + sorted((ROOT / "nodes").glob("*.py"))
_REPORTERS = {"diag", "error", "template_error", "report", "report_in_template", "at", "Diagnostic", "of"}


def _anchor(heading: str) -> str:
    """The anchor GitHub gives a markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def documented() -> dict[str, str]:
    """Anchor of each code section in docs/diagnostics.md -> its text."""
    sections = re.split(r"^### ", DOCS.read_text(), flags=re.M)[1:]
    return {_anchor(section.split("\n", 1)[0]): section for section in sections}


def test_every_code_is_documented_under_its_anchor_with_its_severity():
    sections = documented()
    missing = [code.name for code in CATALOGUE.values() if code.anchor not in sections]
    assert not missing, f"document these codes in docs/diagnostics.md: {missing}"
    for code in CATALOGUE.values():
        stated = re.search(r"\*\*(error|warning)\*\*", sections[code.anchor])
        assert stated and stated.group(1) == code.severity, code.name


def test_every_documented_code_is_in_the_catalogue():
    anchors = {code.anchor for code in CATALOGUE.values()}
    stale = sorted(set(documented()) - anchors)
    assert not stale, f"documented but not in engine/codes.py: {stale}"


def test_documented_codes_each_have_an_example_and_a_fix():
    sections = documented()
    assert len(sections) > 40
    for anchor, section in sections.items():
        assert "```yaml" in section or "```" in section, f"{anchor}: no failing example"
        assert re.search(r"\*\*Fix", section), f"{anchor}: no fix"
        assert re.search(r"\*\*(error|warning)\*\*", section), f"{anchor}: severity not stated"


def test_each_constant_is_named_after_its_code():
    constants = {name: value for name, value in vars(codes).items() if isinstance(value, Code)}
    assert {name: code.name for name, code in constants.items()} == \
        {code.name.upper().replace("-", "_"): code.name for code in CATALOGUE.values()}
    assert all(code.doc == f"docs/diagnostics.md#{code.name}" for code in CATALOGUE.values())


def _code_references() -> dict[str, set[str]]:
    """`codes.NAME` in the engine's and node types' source -> the files that use it."""
    found: dict[str, set[str]] = {}
    for f in SOURCES:
        if f == ROOT / "engine" / "codes.py":
            continue
        for node in ast.walk(ast.parse(f.read_text(), str(f))):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "codes" \
                    and node.attr.isupper():
                found.setdefault(node.attr, set()).add(f.name)
    return found


def test_every_code_is_reported_somewhere():
    used = _code_references()
    constants = {code.name.upper().replace("-", "_") for code in CATALOGUE.values()}
    assert not set(used) - constants, "not in the catalogue"
    assert not constants - set(used), f"catalogued but never reported: {sorted(constants - set(used))}"


def test_reporters_take_codes_not_strings():
    bare = []
    for f in SOURCES:
        for node in ast.walk(ast.parse(f.read_text(), str(f))):
            if not isinstance(node, ast.Call):
                continue
            fn = node.func
            name = fn.attr if isinstance(fn, ast.Attribute) else getattr(fn, "id", None)
            if name in _REPORTERS:
                bare += [f"{f.name}:{node.lineno}" for arg in node.args
                         if isinstance(arg, ast.Constant) and arg.value in CATALOGUE]
    assert not bare, f"pass a Code from engine.codes, not its name: {bare}"


def test_the_corpus_reports_codes_of_the_catalogue_at_their_severity():
    seen = set()
    for case in CORPUS.glob("*.expected"):
        for line in case.read_text().splitlines():
            severity, name = line.split(" ")[1:3]
            assert name in CATALOGUE and CATALOGUE[name].severity == severity, f"{case.name}: {line}"
            seen.add(name)
    assert len(seen) > 40
