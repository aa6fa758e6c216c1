"""Diagnostics: what validation reports, one per problem, each tied to a place in a file."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from engine.codes import Code, Severity


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One problem at a 1-based line:col of a file; `code` is the name of its `Code`."""

    path: str
    line: int  # 1-based
    col: int  # 1-based
    severity: Severity
    code: str
    message: str

    @classmethod
    def of(cls, code: Code, path: str, message: str, line: int = 1, col: int = 1) -> Diagnostic:
        """A diagnostic of a catalogued code, with the code's severity."""
        return cls(path, line, col, code.severity, code.name, message)

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.col}: {self.severity} {self.code} {self.message}"

    def as_dict(self) -> dict:
        return {
            "path": self.path,
            "line": self.line,
            "col": self.col,
            "severity": self.severity,
            "code": self.code,
            "message": self.message,
        }


def has_errors(diagnostics: Iterable[Diagnostic]) -> bool:
    return any(d.severity == "error" for d in diagnostics)


def sort_key(d: Diagnostic) -> tuple:
    return (d.path, d.line, d.col, d.code, d.message)
