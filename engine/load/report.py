"""Diagnostics as `callflow validate` prints them: text lines, JSON, or GitHub workflow commands."""

from __future__ import annotations

import json

from engine.diagnostics import Diagnostic


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def format_diagnostics(diagnostics: list[Diagnostic], fmt: str, checked: int) -> str:
    """The report on `checked` files as "text", "json" or "github", with the counts."""
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
