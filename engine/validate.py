"""`callflow validate`: every flow file under the given paths, every diagnostic at once."""

from __future__ import annotations

import json
from pathlib import Path

from .diagnostics import Diagnostic, sort_key
from .flow import check_file

FLOW_SUFFIXES = (".yaml", ".yml")


def flow_files(paths: list[Path]) -> tuple[list[Path], list[Diagnostic]]:
    files, problems = [], []
    for p in paths:
        if p.is_dir():
            files.extend(sorted(f for f in p.rglob("*") if f.suffix in FLOW_SUFFIXES and _is_flow(f)))
        elif p.exists():
            files.append(p)
        else:
            problems.append(Diagnostic(str(p), 1, 1, "error", "unreadable", "no such file or folder"))
    return files, problems


def _is_flow(path: Path) -> bool:
    """In folders, flow test cases and scenarios sit beside flows: skip them by name."""
    name = path.name
    return not (name.endswith((".test.yaml", ".test.yml", ".scenario.yaml", ".scenario.yml")))


def validate_paths(paths: list[Path]) -> tuple[list[Diagnostic], int]:
    files, diagnostics = flow_files(paths)
    seen_ids: dict[str, str] = {}
    for f in files:
        flow, diags = check_file(f)
        diagnostics.extend(diags)
        if flow is not None:
            if flow.id in seen_ids:
                line, col = flow.nodes[flow.trigger].line, 1
                diagnostics.append(Diagnostic(str(f), 1, 1, "error", "duplicate-flow-id",
                                              f"flow id {flow.id!r} is also used by {seen_ids[flow.id]}"))
            else:
                seen_ids[flow.id] = str(f)
    return sorted(diagnostics, key=sort_key), len(files)


def format_diagnostics(diagnostics: list[Diagnostic], fmt: str, checked: int) -> str:
    if fmt == "json":
        return json.dumps({"files": checked, "diagnostics": [d.as_dict() for d in diagnostics]}, indent=2)
    if fmt == "github":
        lines = []
        for d in diagnostics:
            kind = "error" if d.severity == "error" else "warning"
            message = f"{d.code} {d.message}".replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
            lines.append(f"::{kind} file={d.path},line={d.line},col={d.col},title={d.code}::{message}")
        return "\n".join(lines)
    lines = [str(d) for d in diagnostics]
    errors = sum(d.severity == "error" for d in diagnostics)
    warnings = len(diagnostics) - errors
    lines.append(f"{checked} file(s) checked: {errors} error(s), {warnings} warning(s)")
    return "\n".join(lines)
