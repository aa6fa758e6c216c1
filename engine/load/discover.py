"""`callflow validate`: every flow file under the given paths, every diagnostic at once."""

from __future__ import annotations

import json
from pathlib import Path

from engine.diagnostics import Diagnostic, sort_key
from engine.load.build import check_source, read_flow_file

FLOW_SUFFIXES = (".yaml", ".yml")
_NOT_FLOWS = (".test.yaml", ".test.yml", ".scenario.yaml", ".scenario.yml")
_SKIP_DIRS = {".git", ".venv", "venv", "node_modules", "__pycache__", ".tox"}


def flow_files(paths: list[Path]) -> tuple[list[Path], list[Diagnostic]]:
    """Flow files under the paths: files as given, folders searched (test cases, scenarios,
    hidden files and folders, virtualenvs skipped), each file once, in a stable order."""
    files, problems, seen = [], [], set()
    for p in paths:
        if p.is_dir():
            found = sorted(f for f in p.rglob("*")
                           if f.suffix in FLOW_SUFFIXES and f.is_file() and _is_flow(f)
                           and not _SKIP_DIRS.intersection(f.relative_to(p).parts[:-1])
                           and not any(part.startswith(".") for part in f.relative_to(p).parts))
        elif p.exists():
            found = [p]
        else:
            problems.append(Diagnostic(str(p), 1, 1, "error", "unreadable", "no such file or folder"))
            continue
        for f in found:
            key = f.resolve()
            if key not in seen:
                seen.add(key)
                files.append(f)
    return files, problems


def _is_flow(path: Path) -> bool:
    """In folders, flow test cases and scenarios sit beside flows: skip them by name."""
    return not path.name.endswith(_NOT_FLOWS)


def validate_paths(paths: list[Path]) -> tuple[list[Diagnostic], int]:
    files, diagnostics = flow_files(paths)
    seen_ids: dict[str, str] = {}
    for f in files:
        data, problems = read_flow_file(f)
        if data is None:
            diagnostics.extend(problems)
            continue
        _, diags, doc = check_source(data, str(f))
        diagnostics.extend(diags)
        # Ids must be unique among the flows loaded together, broken or not.
        flow_id = doc.data.get("id") if isinstance(doc.data, dict) else None
        if isinstance(flow_id, str) and flow_id:
            if flow_id in seen_ids:
                line, col = doc.pos(("id",))
                diagnostics.append(Diagnostic(str(f), line, col, "error", "duplicate-flow-id",
                                              f"flow id {flow_id!r} is also used by {seen_ids[flow_id]}"))
            else:
                seen_ids[flow_id] = str(f)
    return sorted(diagnostics, key=sort_key), len(files)


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def format_diagnostics(diagnostics: list[Diagnostic], fmt: str, checked: int) -> str:
    errors = sum(d.severity == "error" for d in diagnostics)
    warnings = len(diagnostics) - errors
    if fmt == "json":
        return json.dumps({"files": checked, "errors": errors, "warnings": warnings,
                           "diagnostics": [d.as_dict() for d in diagnostics]}, indent=2)
    if fmt == "github":
        # GitHub Actions workflow commands: each becomes an annotation on the file and line.
        lines = []
        for d in diagnostics:
            props = (f"file={_escape_property(d.path)},line={d.line},col={d.col},"
                     f"title={_escape_property(d.code)}")
            lines.append(f"::{d.severity} {props}::{_escape_data(d.code + ' ' + d.message)}")
        lines.append(f"{checked} file(s) checked: {errors} error(s), {warnings} warning(s)")
        return "\n".join(lines)
    lines = [str(d) for d in diagnostics]
    lines.append(f"{checked} file(s) checked: {errors} error(s), {warnings} warning(s)")
    return "\n".join(lines)
