"""Flow YAML as plain values plus the position of every key and value: the `Document`.

`yaml_reader.load_text` reads a file's text into one (and says what it refuses)
and never raises on bad input; every problem is a diagnostic with a 1-based line:col,
which `Document.pos`/`offset_pos` find for any path, down to a character of a template.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from dataclasses import dataclass, field
from typing import Any

from engine import codes
from engine.diagnostics import Diagnostic

MAX_FLOW_BYTES = 1024 * 1024

Path = tuple  # ("nodes", "Call", "to") or ("conditions", 0, "value")

_LINE_BREAK = re.compile("\r\n|[\r\n\x85\u2028\u2029]")  # what YAML counts as a line break


@dataclass(slots=True)
class Document:
    """Plain data plus where each piece came from."""

    path: str
    data: Any = None
    # Path -> character offset in `text` of the value / of the mapping key (offsets, not
    # (line, col) pairs: a big flow has hundreds of thousands; `pos` turns them into lines).
    value_pos: dict = field(default_factory=dict)
    key_pos: dict = field(default_factory=dict)
    diagnostics: list = field(default_factory=list)
    text: str = ""
    # Paths of string scalars that may hold templates -> (start, end, style) in `text`, so
    # an offset inside the value maps back to a line:col (see `offset_pos`).
    spans: dict = field(default_factory=dict)
    _line_starts: list | None = None

    def pos(self, path: Path, *, key: bool = False) -> tuple[int, int]:
        """Best known position for a path: its key, its value, or its nearest parent."""
        table = self.key_pos if key else self.value_pos
        other = self.value_pos if key else self.key_pos
        p = tuple(path)
        while p:
            if p in table:
                return self.line_col(table[p])
            if p in other:
                return self.line_col(other[p])
            p = p[:-1]
        root = self.value_pos.get(())
        return self.line_col(root) if root is not None else (1, 1)

    def key_position(self, path: Path) -> tuple[int, int] | None:
        """(line, col) of the key of a mapping entry, if the file has it."""
        offset = self.key_pos.get(tuple(path))
        return None if offset is None else self.line_col(offset)

    def offset_pos(self, path: Path, index: int | None) -> tuple[int, int]:
        """Position of character `index` of the string value at `path` (a template offset),
        following quotes, escapes, folding and block indentation; the value's start if unknown."""
        span = self.spans.get(tuple(path))
        if index is None or span is None:
            return self.pos(path)
        start, end, style = span
        raw = self.text[start:end]
        value = _value_at(self.data, path)
        if not isinstance(value, str):
            return self.pos(path)
        r = 0
        if style in ('"', "'"):
            r = 1
        elif style in ("|", ">"):
            r = raw.find("\n") + 1 if "\n" in raw else len(raw)
        r = _align(raw, r, value, index, style)
        return self.line_col(start + r)

    def line_col(self, offset: int) -> tuple[int, int]:
        """1-based (line, col) of a character offset, counting line breaks as YAML does."""
        if self._line_starts is None:
            self._line_starts = [0] + [m.end() for m in _LINE_BREAK.finditer(self.text)]
        line = bisect_right(self._line_starts, offset)
        return line, offset - self._line_starts[line - 1] + 1

    def diag(self, path: Path, code: codes.Code, message: str, *, key: bool = False,
             at: tuple[int, int] | int | None = None) -> Diagnostic:
        """Report a problem at `at` (a line:col or an offset in `text`), else at the path's
        key or value; the severity is the code's."""
        if isinstance(at, int):
            at = self.line_col(at)
        line, col = at or self.pos(path, key=key)
        d = Diagnostic(self.path, line, col, code.severity, code.name, message)
        self.diagnostics.append(d)
        return d


def _value_at(data: Any, path: Path) -> Any:
    for part in path:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data


_ESCAPE_WIDTH = {"x": 4, "u": 6, "U": 10}


def _align(raw: str, r: int, value: str, index: int, style: str | None) -> int:
    """Walk `value[:index]` through its source text `raw` from offset r; return the offset
    of value[index] in raw. Whitespace runs stand for folded line breaks and indentation."""
    n = len(raw)
    for ch in value[:index]:
        while r < n:
            c = raw[r]
            if c == ch:
                if style == "'" and c == "'":  # '' is one quote in a single-quoted scalar
                    r += 1
                r += 1
                break
            if c == "\\" and style == '"':
                r += _ESCAPE_WIDTH.get(raw[r + 1:r + 2], 2)
                break
            if c in " \t\r\n":
                if ch in " \t\n":  # a folded line break: the whole run is this one character
                    while r < n and raw[r] in " \t\r\n":
                        r += 1
                    break
                r += 1
                continue
            return r  # lost track: the best guess so far
    while r < n and raw[r] in " \t\r\n" and index < len(value) and value[index] not in " \t\n":
        r += 1
    return r
