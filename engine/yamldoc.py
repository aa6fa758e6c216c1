"""Read flow YAML into plain values plus the position of every key and value.

We build values straight from PyYAML's C event stream instead of using its
constructor, so that we can refuse what the constructor would silently accept
(duplicate keys, anchors and aliases, the root of "YAML bombs") and keep a
1-based line:col for everything a diagnostic may need to point at.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.resolver import Resolver

from .diagnostics import Diagnostic

MAX_FLOW_BYTES = 1024 * 1024

Path = tuple  # ("nodes", "Call", "to") or ("conditions", 0, "value")

_resolver = Resolver()
_constructor = SafeConstructor()
_STR = "tag:yaml.org,2002:str"
# First characters that may make a plain scalar something other than a string (true, 12,
# ~, .inf ...): any other plain scalar is a string without asking the resolver.
_RESOLVABLE_FIRST = frozenset(k for k in Resolver.yaml_implicit_resolvers if k)
_ALWAYS_RESOLVE = None in Resolver.yaml_implicit_resolvers  # "" (empty: null) is caught by `and value`


@dataclass(slots=True)
class Document:
    """Plain data plus where each piece came from."""

    path: str
    data: Any = None
    value_pos: dict = field(default_factory=dict)  # Path -> (line, col) of the value
    key_pos: dict = field(default_factory=dict)  # Path -> (line, col) of the mapping key
    quoted: set = field(default_factory=set)  # Paths of single-line quoted scalars
    block: set = field(default_factory=set)  # Paths of block (| >) scalars
    diagnostics: list = field(default_factory=list)
    text: str = ""
    # Paths of string scalars that may hold templates -> (start, end, style) in `text`, so
    # an offset inside the value maps back to a line:col (see `offset_pos`).
    spans: dict = field(default_factory=dict)
    _line_starts: list | None = None

    def pos(self, path: Path, *, key: bool = False) -> tuple[int, int]:
        """Best known position for a path: its key, its value, or its nearest parent."""
        table = self.key_pos if key else self.value_pos
        p = tuple(path)
        while p:
            if p in table:
                return table[p]
            other = self.value_pos if key else self.key_pos
            if p in other:
                return other[p]
            p = p[:-1]
        return self.value_pos.get((), (1, 1))

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
        return self._line_col(start + r)

    def _line_col(self, offset: int) -> tuple[int, int]:
        if self._line_starts is None:
            starts = [0]
            find = self.text.find
            i = find("\n")
            while i >= 0:
                starts.append(i + 1)
                i = find("\n", i + 1)
            self._line_starts = starts
        line = bisect_right(self._line_starts, offset)
        return line, offset - self._line_starts[line - 1] + 1

    def diag(self, path: Path, code: str, message: str, *, key: bool = False,
             severity: str = "error", at: tuple[int, int] | None = None) -> Diagnostic:
        line, col = at or self.pos(path, key=key)
        d = Diagnostic(self.path, line, col, severity, code, message)
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


_ALIAS = object()  # what an alias stands for while building: nothing


class _Stop(Exception):
    """Stop reading: the problem is already reported."""


_PLAIN_TAGS = (None, "!", "tag:yaml.org,2002:map", "tag:yaml.org,2002:seq", "tag:yaml.org,2002:omap")


def _mark(m) -> tuple[int, int]:
    return (m.line + 1, m.column + 1)


def _scalar_value(ev, doc: Document, path: Path):
    if ev.tag is None and (ev.style or (not _ALWAYS_RESOLVE and ev.value[:1] not in _RESOLVABLE_FIRST
                                        and ev.value)):
        return ev.value  # the common case: a quoted, block or plain string
    if ev.tag and ev.tag not in ("!", _STR):
        tag = ev.tag
        if tag not in _constructor.yaml_constructors or tag.startswith("tag:yaml.org,2002:python"):
            doc.diag(path, "yaml-tag", f"unsupported YAML tag {tag!r}", at=_mark(ev.start_mark))
            return ev.value
    elif ev.tag == _STR or ev.tag == "!" or not ev.implicit[0]:
        return ev.value
    else:
        tag = _resolver.resolve(yaml.ScalarNode, ev.value, ev.implicit)
    if tag == _STR:
        return ev.value
    if tag == "tag:yaml.org,2002:int" and ev.value.startswith("+") and ev.implicit[0]:
        # "+12025551234" unquoted: YAML makes it an int and drops the '+'. Keep the text so
        # nothing downstream cascades, and say what happened.
        doc.diag(path, "unquoted-number",
                 f"{ev.value} is read by YAML as the number {ev.value[1:]}: quote it, as \"{ev.value}\"",
                 at=_mark(ev.start_mark))
        return ev.value
    node = yaml.ScalarNode(tag, ev.value, ev.start_mark, ev.end_mark, ev.style)
    try:
        return _constructor.yaml_constructors[tag](_constructor, node)
    except Exception:  # a malformed timestamp or int literal: keep the text
        return ev.value


def load_text(text: str | bytes, path: str) -> Document:
    """Parse one flow file. Never raises on bad input: problems land in doc.diagnostics."""
    doc = Document(path)
    size = len(text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text)
    if size > MAX_FLOW_BYTES:
        doc.diag((), "file-too-large", f"flow file is {size} bytes; the limit is {MAX_FLOW_BYTES} bytes (1 MiB)")
        return doc
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as e:
            doc.diag((), "yaml-syntax", f"file is not UTF-8 text ({e.reason} at byte {e.start})")
            return doc
    doc.text = text
    try:
        _compose(text, doc)
    except _Stop:
        doc.data = None
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        at = _mark(mark) if mark else (1, 1)
        problem = e.problem or e.context or "invalid YAML"
        doc.diag((), "yaml-syntax", f"YAML syntax error: {problem}", at=at)
        doc.data = None
    except yaml.reader.ReaderError as e:  # a character YAML does not allow (control characters)
        char = e.character if isinstance(e.character, int) else ord(e.character or "\0")
        at = doc._line_col(e.position) if isinstance(e.position, int) and 0 <= e.position <= len(text) else (1, 1)
        doc.diag((), "yaml-syntax", f"YAML syntax error: character #x{char:04x} is not allowed: {e.reason}", at=at)
        doc.data = None
    except yaml.YAMLError as e:
        doc.diag((), "yaml-syntax", f"YAML error: {str(e).splitlines()[0] if str(e) else type(e).__name__}")
        doc.data = None
    return doc


def _compose(text: str, doc: Document) -> None:
    # Stack frames: [container, path, pending_key] ; pending_key is a sentinel for "expect key".
    stack: list[list] = []
    root_set = False
    documents = 0
    expect_key = object()
    for ev in yaml.parse(text, Loader=yaml.CSafeLoader):
        kind = type(ev)
        if kind is yaml.DocumentStartEvent:
            documents += 1
            if documents > 1:
                doc.diag((), "yaml-multiple-documents", "a flow file holds one YAML document; found another",
                         at=_mark(ev.start_mark))
                return
            continue
        if kind in (yaml.StreamStartEvent, yaml.StreamEndEvent, yaml.DocumentEndEvent):
            continue
        if kind is yaml.MappingEndEvent or kind is yaml.SequenceEndEvent:
            frame = stack.pop()
            value, vpath = frame[0], frame[1]
            _attach(stack, _ALIAS if len(frame) > 4 else value, vpath, doc, expect_key)
            if not stack:
                doc.data = None if len(frame) > 4 else value
                root_set = True
            continue

        # A node event: work out its path and, if it is a mapping key, handle it as such.
        if stack and isinstance(stack[-1][0], dict) and stack[-1][2] is expect_key:
            parent = stack[-1]
            at = _mark(ev.start_mark)
            if kind is not yaml.ScalarEvent:
                doc.diag(parent[1], "yaml-complex-key", "mapping keys must be plain strings", at=at)
                raise _Stop
            key = ev.value if ev.implicit[1] or not ev.implicit[0] else _scalar_value(ev, doc, parent[1])
            if not isinstance(key, str):
                key = str(key) if not isinstance(key, bool) else ev.value
            kpath = parent[1] + (key,)
            if key in parent[0] or kpath in parent[3]:
                first = doc.key_pos.get(kpath, (0, 0))
                doc.diag(kpath, "duplicate-key",
                         f"duplicate key {key!r} (first defined at line {first[0]}); YAML would keep only the last",
                         at=at)
                parent[2] = ("dup", kpath + ("#duplicate",))
            else:
                parent[2] = key
                parent[3].add(kpath)
                doc.key_pos[kpath] = at
            if ev.anchor:
                doc.diag(kpath, "yaml-anchor", "anchors and aliases are not allowed in flow files", at=at)
            continue

        if stack:
            top = stack[-1]
            if isinstance(top[0], dict):
                pk = top[2]
                vpath = pk[1] if isinstance(pk, tuple) else top[1] + (pk,)
            else:
                vpath = top[1] + (len(top[0]),)
        else:
            vpath = ()
        at = _mark(ev.start_mark)
        doc.value_pos[vpath] = at

        if kind is yaml.AliasEvent:
            doc.diag(vpath, "yaml-alias",
                     f"alias *{ev.anchor} is not allowed: anchors and aliases can blow up a file's size",
                     at=at)
            # Leave the key out (a list keeps a None placeholder): a stand-in value would only
            # add misleading type errors to the one that matters.
            _attach(stack, _ALIAS, vpath, doc, expect_key)
            continue
        if getattr(ev, "anchor", None):
            doc.diag(vpath, "yaml-anchor", f"anchor &{ev.anchor} is not allowed: write the value out", at=at)
        if kind is yaml.ScalarEvent:
            value = _scalar_value(ev, doc, vpath)
            if "{" in ev.value and type(value) is str:
                doc.spans[vpath] = (ev.start_mark.index, ev.end_mark.index, ev.style)
            if ev.style in ('"', "'") and ev.start_mark.line == ev.end_mark.line:
                doc.quoted.add(vpath)
            elif ev.style in ("|", ">"):
                doc.block.add(vpath)
            if not stack:
                doc.data = value
                root_set = True
            else:
                _attach(stack, value, vpath, doc, expect_key)
        elif kind is yaml.MappingStartEvent or kind is yaml.SequenceStartEvent:
            frame = [{}, vpath, expect_key, set()] if kind is yaml.MappingStartEvent else [[], vpath, None, set()]
            if ev.tag not in _PLAIN_TAGS:
                doc.diag(vpath, "yaml-tag", f"unsupported YAML tag {ev.tag!r}", at=at)
                frame.append("drop")  # left out when it ends, as an alias is
            stack.append(frame)
    if not root_set:
        doc.data = None


def _attach(stack, value, vpath, doc, expect_key) -> None:
    if not stack:
        return
    top = stack[-1]
    container = top[0]
    if isinstance(container, dict):
        pk = top[2]
        if not isinstance(pk, tuple) and value is not _ALIAS:  # not a duplicate: keep it
            container[pk] = value
        top[2] = expect_key
    else:
        container.append(None if value is _ALIAS else value)
