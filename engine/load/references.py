"""What a template reads, and what a node outputs: the raw material of the template checks.

`template_info` lists a compiled template's references (`{{ Start.http.params.to }}`), the
filters it uses and its include/render tags, each at its offset in the template source,
and marks the references the template guards itself (`| default:`, `{% if %}`). It is
cached per template source. `output_tree`/`output_problem` say whether a reference names
something the node type outputs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterator

from liquid import RenderContext
from liquid.builtin.expressions import FilteredExpression
from liquid.builtin.expressions import Path as LiquidPath
from liquid.builtin.tags.if_tag import ConditionalBlockNode, IfNode
from liquid.builtin.tags.unless_tag import UnlessNode
from liquid.exceptions import LiquidError

from engine.fields import did_you_mean
from engine.templating import (
    FILTER_NAME,
    IDENT,
    LITERAL,
    NUMBER,
    OUTPUT,
    PATH,
    STRING,
    Template,
)

# Properties Liquid gives every string and array: `{{ Menu.digits.size }}` is fine.
LIQUID_PROPERTIES = frozenset({"size", "first", "last"})
_ANY = "*"
_LEAF = None


# -- templates ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Ref:
    """One variable a template reads, at its offset in the template source."""

    segments: tuple  # ("Start", "http", "params", "to"); None for a computed segment (a[b])
    index: int | None  # offset in the template source
    guarded: bool  # under a `default` filter or an `if` test on the same node
    # (node, output) pairs known unset here: the read is in the `else` of `{% if Start.call %}`
    # (or the body of `{% unless Start.call %}`), so the run did not start with that outcome.
    unset: frozenset = frozenset()

    @property
    def text(self) -> str:
        return ".".join("[...]" if s is None else str(s) for s in self.segments)


@dataclass(frozen=True, slots=True)
class TemplateInfo:
    """What a template reads (variables), uses (filters) and includes, with their offsets."""

    refs: tuple[Ref, ...]
    filters: tuple[tuple[str, int | None], ...]
    includes: tuple[int | None, ...]  # offsets of include/render tags


_info_cache: dict[str, TemplateInfo] = {}


def clear_cache() -> None:
    """Forget every analysed template (for benchmarks that must analyse afresh)."""
    _info_cache.clear()


def template_info(template: Template) -> TemplateInfo:
    """Static references of a compiled template (cached per source)."""
    info = _info_cache.get(template.source)
    if info is None:
        info = _analyze(template)
        if len(_info_cache) < 100_000:
            _info_cache[template.source] = info
    return info


def _analyze(template: Template) -> TemplateInfo:
    if not template.parsed:  # a simple template: read it without parsing it with Liquid
        return _analyze_simple(template.source)
    bound = template.bound  # already parsed: `parsed` is true
    if "{%" not in template.source:
        try:
            return _analyze_outputs(bound)
        except Exception:  # noqa: BLE001 - an AST shape we do not know: the generic way below
            pass
    try:
        analysis = bound.analyze(include_partials=False)
    except (LiquidError, RecursionError):  # pragma: no cover - defensive: analysis of a parsed template
        return TemplateInfo((), (), ())
    guarded, unset = _guarded_offsets(bound)
    refs = []
    for found in analysis.globals.values():
        for v in found:
            index = v.span.index
            refs.append(Ref(_segments(v.segments), index, index in guarded, unset.get(index, frozenset())))
    refs.sort(key=lambda r: (r.index or 0))
    filters = tuple(sorted(((name, span.index) for name, spans in analysis.filters.items() for span in spans),
                           key=lambda f: f[1] or 0))
    includes = tuple(span.index for tag in ("include", "render") for span in analysis.tags.get(tag, ()))
    return TemplateInfo(tuple(refs), filters, includes)


def _segments(segments) -> tuple:
    return tuple(s if isinstance(s, (str, int)) and not isinstance(s, bool) else None for s in segments)


def _analyze_outputs(bound) -> TemplateInfo:
    """The fast path for templates with no tags (most of them): every variable is global,
    so one walk over the output expressions finds references, filters and `default` guards."""
    refs: list[Ref] = []
    filters: list[tuple[str, int | None]] = []

    def visit(expr, guarded: bool) -> None:
        if isinstance(expr, LiquidPath):
            refs.append(Ref(_segments(expr.path), expr.token.start_index, guarded))
        if isinstance(expr, FilteredExpression):
            flist = expr.filters or ()
            for f in flist:
                filters.append((f.name, f.token.start_index))
            guard_left = bool(flist) and flist[0].name == "default"
            visit(expr.left, guarded or guard_left)
            for f in flist:
                for arg in f.children():
                    visit(arg, guarded)
            return
        for child in expr.children():
            visit(child, guarded)

    for node in bound.nodes:
        for expr in node.expressions():
            visit(expr, False)
    refs.sort(key=lambda r: r.index or 0)
    filters.sort(key=lambda f: f[1] or 0)
    return TemplateInfo(tuple(refs), tuple(filters), ())


_OUTPUT = re.compile(OUTPUT)
_TOKEN = re.compile(rf"(?P<str>{STRING})|(?P<num>{NUMBER})|(?P<lit>{LITERAL})|(?P<path>{PATH})"
                    rf"|\|[ ]*(?P<filter>{FILTER_NAME})|[ :,]+")
_SEGMENT = re.compile(rf"\.({IDENT})|\[([0-9]+)\]|\[('[^']*'|\"[^\"]*\")\]")


def _analyze_simple(source: str) -> TemplateInfo:
    """References and filters of a template `templating.is_simple` accepted: outputs only,
    each a path, string or number followed by filters whose arguments are literals or paths."""
    refs: list[Ref] = []
    filters: list[tuple[str, int | None]] = []
    for output in _OUTPUT.finditer(source):
        left: tuple | None = None  # (text, index) of the path being filtered
        args: list[tuple] = []
        first_filter = None
        for token in _TOKEN.finditer(source, output.start() + 2, output.end() - 2):
            kind = token.lastgroup
            if kind == "filter":
                filters.append((token.group("filter"), token.start("filter")))
                first_filter = first_filter or token.group("filter")
            elif kind == "path":
                if first_filter is None:
                    left = (token.group(), token.start())
                else:
                    args.append((token.group(), token.start()))
        if left is not None:
            refs.append(Ref(_split_path(left[0]), left[1], first_filter == "default"))
        refs.extend(Ref(_split_path(text), index, False) for text, index in args)
    refs.sort(key=lambda r: r.index or 0)
    return TemplateInfo(tuple(refs), tuple(filters), ())


def _split_path(text: str) -> tuple:
    if "[" not in text:
        return tuple(text.split("."))
    root = re.match(IDENT, text).group()
    segments: list = [root]
    for m in _SEGMENT.finditer(text, len(root)):
        ident, number, string = m.groups()
        segments.append(ident if ident is not None else int(number) if number is not None else string[1:-1])
    return tuple(segments)


def _paths(expr, out: list) -> list:
    if isinstance(expr, LiquidPath):
        out.append(expr)
    for child in expr.children():
        _paths(child, out)
    return out


def _root(path: LiquidPath) -> Any:
    return path.path[0] if path.path else None


def _bare_test(expr) -> frozenset:
    """{(node, output)} when an `if` tests a bare two-part path (`{% if Start.call %}`)."""
    inner = getattr(expr, "expression", None)
    if isinstance(inner, LiquidPath) and len(inner.path) == 2 and all(isinstance(s, str) for s in inner.path):
        return frozenset({tuple(inner.path)})
    return frozenset()


def _guarded_offsets(bound) -> tuple[set[int], dict[int, frozenset]]:
    """Offsets of variables whose absence the template itself handles: the subject of a
    `default` filter, the test of an `if`/`elsif`/`unless`, and, inside an `if`/`elsif`
    block, any variable of a node that its test names. Also, per offset, the bare tests
    known false there (`else` of an `if`, body of an `unless`): see `Ref.unset`."""
    out: set[int] = set()
    unset_at: dict[int, frozenset] = {}
    context = RenderContext(bound)

    def mark_defaults(expr) -> None:
        if isinstance(expr, FilteredExpression) and expr.filters and expr.filters[0].name == "default":
            for p in _paths(expr.left, []):
                out.add(p.token.start_index)
        for child in expr.children():
            mark_defaults(child)

    def tested_roots(test) -> tuple[list, frozenset]:
        tested = _paths(test, [])
        for p in tested:
            out.add(p.token.start_index)
        return tested, frozenset(_root(p) for p in tested)

    def walk(node, roots: frozenset, unset: frozenset) -> None:
        for expr in node.expressions():
            mark_defaults(expr)
            for p in _paths(expr, []):
                if roots and _root(p) in roots:
                    out.add(p.token.start_index)
                if unset:
                    unset_at[p.token.start_index] = unset
        if isinstance(node, ConditionalBlockNode):  # an `elsif` block
            walk(node.block, roots | tested_roots(node.expression)[1], unset)
            return
        if isinstance(node, (IfNode, UnlessNode)):
            _, names = tested_roots(node.condition)
            is_if = isinstance(node, IfNode)
            walk(node.consequence, roots | names if is_if else roots,
                 unset if is_if else unset | _bare_test(node.condition))
            otherwise = unset | _bare_test(node.condition) if is_if else unset
            for alt in node.alternatives:
                walk(alt, roots, otherwise)
                otherwise = otherwise | _bare_test(alt.expression)
            if node.default is not None:
                walk(node.default, roots if is_if else roots | names, otherwise)
            return
        for child in node.children(context, include_partials=False):
            walk(child, roots, unset)

    try:
        for node in bound.nodes:
            walk(node, frozenset(), frozenset())
    except Exception:  # noqa: BLE001 - guards only soften warnings; never fail a check on them
        return out, unset_at
    return out, unset_at


def iter_templates(value: Any, path: tuple) -> Iterator[tuple[tuple, Template]]:
    if type(value) is Template:
        yield path, value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from iter_templates(v, path + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from iter_templates(v, path + (i,))


# -- outputs -----------------------------------------------------------------------------------
def output_tree(patterns) -> dict:
    """Dotted output patterns ("http.params.*", "call.from") -> a nested dict; `*` means any
    key at any depth below, None a plain value."""
    tree: dict = {}
    for pattern in patterns:
        node = tree
        parts = str(pattern).split(".")
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            if part == _ANY:
                break
            nxt_any = not last and parts[i + 1] == _ANY
            if last:
                node.setdefault(part, _LEAF)
            elif nxt_any:
                node[part] = _ANY
                break
            else:
                child = node.get(part)
                if not isinstance(child, dict):
                    child = node[part] = {} if child is not _ANY else _ANY
                if child is _ANY:
                    break
                node = child
    return tree


def output_problem(tree: dict, segments: tuple, node_type: str) -> str | None:
    """Why `segments` (after the node name) names nothing the node outputs, or None."""
    node: Any = tree
    walked = [str(segments[0])]
    for seg in segments[1:]:
        if node is _ANY or seg is None:
            return None
        if node is _LEAF:
            if seg in LIQUID_PROPERTIES:
                return None
            return f"{'.'.join(walked)} is a plain value; it has no field {seg!r}"
        if isinstance(seg, int) or seg not in node:
            if isinstance(seg, str) and seg in LIQUID_PROPERTIES and len(walked) > 1:
                return None
            where = f"{walked[0]} ({node_type})" if len(walked) == 1 else ".".join(walked)
            fields = ", ".join(node) or "nothing"
            hint = did_you_mean(str(seg), list(node))
            return f"{where} has no output {seg!r} (it has: {fields}){hint}"
        node = node[seg]
        walked.append(str(seg))
    return None
