"""Semantic checks of a whole flow, beyond each node's own config.

`check_flow` runs once the builder has compiled every node and drawn the graph. It
reports, through the document (so every diagnostic has a line:col):

* template references: a variable naming no node (`unknown-variable`), a filter Liquid does
  not have (`unknown-filter`), a field the node type never outputs (`unknown-output`), a
  node that cannot have run before the one reading it (`never-set`) or that does not run on
  every path to it (`maybe-unset`), a payload key neither given nor required
  (`undeclared-payload-key`), partials (`template-include`);
* the graph: nodes the trigger cannot reach (`unreachable-node`), `next` back to the trigger
  (`next-to-trigger`), in-call nodes reachable with no call up (`needs-call`), nodes that
  place a call reachable while one is up (`call-already-up`), loops with no node that waits
  for the outside world (`loop-without-wait`).

Everything here is linear or near-linear in the size of the flow: dominators are computed
once per flow and queried in O(1) through dominator-tree intervals; the rare "can X run
before Y at all" questions are answered with one bit-set pass over the condensation, with
one bit per node that is asked about; template analysis is cached per template source.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterator

import networkx as nx
from liquid import RenderContext
from liquid.builtin.expressions import FilteredExpression
from liquid.builtin.expressions import Path as LiquidPath
from liquid.builtin.tags.if_tag import ConditionalBlockNode, IfNode
from liquid.builtin.tags.unless_tag import UnlessNode
from liquid.exceptions import LiquidError

from .config import did_you_mean
from .templating import Template, templates

if TYPE_CHECKING:
    from .flow import NodeSpec
    from .yamldoc import Document

# Properties Liquid gives every string and array: `{{ Menu.digits.size }}` is fine.
LIQUID_PROPERTIES = frozenset({"size", "first", "last"})
_ANY = "*"
_LEAF = None


# -- templates ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Ref:
    segments: tuple  # ("Start", "http", "params", "to"); None for a computed segment (a[b])
    index: int | None  # offset in the template source
    guarded: bool  # under a `default` filter or an `if` test on the same node

    @property
    def text(self) -> str:
        return ".".join("[...]" if s is None else str(s) for s in self.segments)


@dataclass(frozen=True, slots=True)
class TemplateInfo:
    refs: tuple[Ref, ...]
    filters: tuple[tuple[str, int | None], ...]
    includes: tuple[int | None, ...]  # offsets of include/render tags


_info_cache: dict[str, TemplateInfo] = {}


def template_info(template: Template) -> TemplateInfo:
    """Static references of a compiled template (cached per source)."""
    info = _info_cache.get(template.source)
    if info is None:
        info = _analyze(template)
        if len(_info_cache) < 100_000:
            _info_cache[template.source] = info
    return info


def _analyze(template: Template) -> TemplateInfo:
    bound = template._bound
    if "{%" not in template.source:
        try:
            return _analyze_outputs(bound)
        except Exception:  # noqa: BLE001 - an AST shape we do not know: the generic way below
            pass
    try:
        analysis = bound.analyze(include_partials=False)
    except (LiquidError, RecursionError):  # pragma: no cover - defensive: analysis of a parsed template
        return TemplateInfo((), (), ())
    guarded = _guarded_offsets(bound)
    refs = []
    for found in analysis.globals.values():
        for v in found:
            index = v.span.index
            refs.append(Ref(_segments(v.segments), index, index in guarded))
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


def _paths(expr, out: list) -> list:
    if isinstance(expr, LiquidPath):
        out.append(expr)
    for child in expr.children():
        _paths(child, out)
    return out


def _root(path: LiquidPath) -> Any:
    return path.path[0] if path.path else None


def _guarded_offsets(bound) -> set[int]:
    """Offsets of variables whose absence the template itself handles: the subject of a
    `default` filter, the test of an `if`/`elsif`/`unless`, and, inside an `if`/`elsif`
    block, any variable of a node that its test names."""
    out: set[int] = set()
    context = RenderContext(bound)

    def mark_defaults(expr) -> None:
        if isinstance(expr, FilteredExpression) and expr.filters and expr.filters[0].name == "default":
            for p in _paths(expr.left, []):
                out.add(p.token.start_index)
        for child in expr.children():
            mark_defaults(child)

    def walk(node, roots: frozenset) -> None:
        for expr in node.expressions():
            mark_defaults(expr)
            if roots:
                for p in _paths(expr, []):
                    if _root(p) in roots:
                        out.add(p.token.start_index)
        if isinstance(node, (IfNode, UnlessNode, ConditionalBlockNode)):
            test = node.expression if isinstance(node, ConditionalBlockNode) else node.condition
            tested = _paths(test, [])
            for p in tested:
                out.add(p.token.start_index)
            if not isinstance(node, UnlessNode):
                inner = roots | {_root(p) for p in tested}
                body = node.block if isinstance(node, ConditionalBlockNode) else node.consequence
                walk(body, inner)
                if isinstance(node, IfNode):
                    for alt in node.alternatives:
                        walk(alt, roots)
                    if node.default is not None:
                        walk(node.default, roots)
                return
        for child in node.children(context, include_partials=False):
            walk(child, roots)

    try:
        for node in bound.nodes:
            walk(node, frozenset())
    except Exception:  # noqa: BLE001 - guards only soften warnings; never fail a check on them
        return out
    return out


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
            where = "a " + node_type + " node" if len(walked) == 1 else ".".join(walked)
            fields = ", ".join(node) or "nothing"
            hint = did_you_mean(str(seg), list(node))
            return f"{where} has no output {seg!r} (it has: {fields}){hint}"
        node = node[seg]
        walked.append(str(seg))
    return None


# -- the graph ---------------------------------------------------------------------------------
class _Dominance:
    """Dominator-tree intervals: `dominates(a, b)` in O(1) after one linear pass."""

    def __init__(self, graph: nx.DiGraph, root: str):
        idom = nx.immediate_dominators(graph, root)
        children: dict[str, list[str]] = {}
        for node, parent in idom.items():
            if node != parent:
                children.setdefault(parent, []).append(node)
        self.enter: dict[str, int] = {}
        self.leave: dict[str, int] = {}
        clock = 0
        stack = [(root, False)]
        while stack:
            node, done = stack.pop()
            if done:
                self.leave[node] = clock
                clock += 1
                continue
            self.enter[node] = clock
            clock += 1
            stack.append((node, True))
            stack.extend((c, False) for c in children.get(node, ()))

    def dominates(self, a: str, b: str) -> bool:
        ea = self.enter.get(a)
        eb = self.enter.get(b)
        return ea is not None and eb is not None and ea <= eb and self.leave[b] <= self.leave[a]


class _RunsBefore:
    """Can `a` run before `b` on some path (a path a -> ... -> b of at least one edge)?

    One pass over the condensation of the reachable graph in topological order, carrying a
    bit per source node asked about (Python ints as bit sets)."""

    def __init__(self, graph: nx.DiGraph, sources: set[str]):
        self.bit = {s: 1 << i for i, s in enumerate(sorted(sources))}
        cond = nx.condensation(graph)
        member = cond.graph["mapping"]
        self.member = member
        own = [0] * len(cond)
        cyclic = [False] * len(cond)
        for c, data in cond.nodes(data=True):
            nodes = data["members"]
            bits = 0
            for n in nodes:
                bits |= self.bit.get(n, 0)
            own[c] = bits
            cyclic[c] = len(nodes) > 1 or any(graph.has_edge(n, n) for n in nodes)
        before = [0] * len(cond)
        for c in nx.topological_sort(cond):
            if cyclic[c]:
                before[c] |= own[c]
            out = before[c] | own[c]
            for d in cond.successors(c):
                before[d] |= out
        self.before = before

    def __call__(self, a: str, b: str) -> bool:
        c = self.member.get(b)
        return c is not None and bool(self.before[c] & self.bit.get(a, 0))


def check_flow(doc: "Document", specs: dict[str, "NodeSpec"], graph: nx.DiGraph, trigger: str | None,
               names: set) -> None:
    FlowChecks(doc, specs, graph, trigger, names).run()


class FlowChecks:
    def __init__(self, doc, specs, graph, trigger, names):
        self.doc = doc
        self.specs = specs
        self.graph = graph
        self.trigger = trigger
        self.names = names
        self.reachable: set[str] = set()

    def at(self, path, index, code, message, severity="error") -> None:
        self.doc.diag(path, code, message, severity=severity, at=self.doc.offset_pos(path, index))

    def run(self) -> None:
        if self.trigger is not None:
            self.reachable = nx.descendants(self.graph, self.trigger) | {self.trigger}
            self.check_reachability()
            self.check_next_to_trigger()
            self.check_call_state()
            self.check_loops()
        self.check_templates()

    # -- graph ------------------------------------------------------------------------------------
    def check_reachability(self) -> None:
        for name in self.graph.nodes:
            if name not in self.reachable:
                self.doc.diag(("nodes", name), "unreachable-node",
                              f"node {name!r} cannot be reached from the trigger {self.trigger!r}",
                              key=True, severity="warning")

    def _next_path(self, name: str, outcome: str) -> tuple:
        if outcome == "error" and ("nodes", name, "next", "error") not in self.doc.value_pos:
            return ("nodes", name, "error")
        deep = ("nodes", name, "next", outcome)
        return deep if deep in self.doc.value_pos else ("nodes", name, "next")

    def check_next_to_trigger(self) -> None:
        for source, _, data in self.graph.in_edges(self.trigger, data=True):
            for outcome in data["outcomes"]:
                self.doc.diag(self._next_path(source, outcome), "next-to-trigger",
                              f"{'error' if outcome == 'error' else 'next ' + repr(outcome)} of {source!r} goes "
                              f"back to the trigger {self.trigger!r}; a trigger only starts runs")

    def check_call_state(self) -> None:
        """Prove every in-call node is entered only with a call up, and no node that places a
        call is entered while one is up (a fixpoint over (node, call up?))."""
        g, specs = self.graph, self.specs
        seen: set[tuple[str, bool]] = set()
        todo = [(self.trigger, False)]
        entered: dict[tuple[str, bool], list[str]] = {}
        while todo:
            name, up = todo.pop()
            if (name, up) in seen:
                continue
            seen.add((name, up))
            if name not in specs:
                continue  # a node that did not build (already reported): nothing to prove past it
            node_type = specs[name].node_type
            for _, target, data in g.out_edges(name, data=True):
                for outcome in data["outcomes"]:
                    after = node_type.call_after(outcome, up)
                    entered.setdefault((target, after), []).append(f"{name}.{outcome}")
                    todo.append((target, after))
        for (name, up), via in entered.items():
            spec = specs.get(name)
            if spec is None:
                continue
            shown = ", ".join(sorted(set(via))[:5]) + (", ..." if len(set(via)) > 5 else "")
            if not up and spec.node_type.call == "required":
                self.doc.diag(("nodes", name), "needs-call",
                              f"{spec.type} node {name!r} runs only during a call, but it can be reached "
                              f"with no call up (via {shown})", key=True)
            if up and spec.node_type.call_outcomes is not None and not spec.node_type.is_trigger:
                self.doc.diag(("nodes", name), "call-already-up",
                              f"{spec.type} node {name!r} places a call, but it can be reached while a call is "
                              f"still up (via {shown}); a run controls one call at a time", key=True)

    def check_loops(self) -> None:
        g = self.graph
        spinning = [n for n in self.reachable if n in self.specs and not self.specs[n].node_type.waits]
        sub = g.subgraph(spinning)
        for component in nx.strongly_connected_components(sub):
            if len(component) == 1:
                (only,) = component
                if not g.has_edge(only, only):
                    continue
            ordered = sorted(component, key=lambda n: (self.specs[n].line, self.specs[n].col))
            first = ordered[0]
            if len(ordered) == 1:
                what = f"{first!r} leads back to itself"
            else:
                shown = ", ".join(ordered[:8]) + (", ..." if len(ordered) > 8 else "")
                what = f"nodes {shown} form a loop"
            self.doc.diag(("nodes", first), "loop-without-wait",
                          f"{what} with no node that waits for a call or a caller (call_out, get_input) "
                          "on the way; a run stops after 10 visits of one node",
                          key=True, severity="warning")

    # -- templates -----------------------------------------------------------------------------------
    def check_templates(self) -> None:
        filters = templates.filter_names
        specs, names, trigger = self.specs, self.names, self.trigger
        order = None
        trees: dict[str, dict] = {}
        pending: list[tuple] = []  # (path, index, reader, ref) needing the graph
        payload_keys = None
        for name, spec in specs.items():
            for path, template in iter_templates(spec.config, ("nodes", name)):
                info = template_info(template)
                for index in info.includes:
                    self.at(path, index, "template-include",
                            "include and render need template files; flows have none: write the text inline")
                for fname, index in info.filters:
                    if fname not in filters:
                        self.at(path, index, "unknown-filter",
                                f"unknown Liquid filter {fname!r}{did_you_mean(fname, filters)}")
                for ref in info.refs:
                    root = ref.segments[0]
                    if root not in names:
                        self.at(path, ref.index, "unknown-variable",
                                f"{ref.text}: there is no node named {root!r}" + did_you_mean(str(root), names))
                        continue
                    source = specs.get(root)
                    if source is None:
                        continue  # the node itself is broken and already reported
                    tree = trees.get(root)
                    if tree is None:
                        tree = trees[root] = output_tree(source.node_type.node_outputs(source.config))
                    problem = output_problem(tree, ref.segments, source.type)
                    if problem:
                        self.at(path, ref.index, "unknown-output", f"{ref.text}: {problem}")
                        continue
                    if source.node_type.is_trigger and len(ref.segments) >= 4 and ref.segments[1] == "http" \
                            and ref.segments[2] == "params" and isinstance(ref.segments[3], str):
                        if payload_keys is None:
                            payload_keys = self._payload_keys(source)
                        if ref.segments[3] not in payload_keys and not ref.guarded:
                            self.at(path, ref.index, "undeclared-payload-key",
                                    f"{ref.text}: {ref.segments[3]!r} is neither in {root}'s payload nor in its "
                                    f"required keys; add it to one of them"
                                    + did_you_mean(ref.segments[3], payload_keys),
                                    severity="warning")
                    if trigger is not None and name in self.reachable:
                        pending.append((path, ref, name, root))
        if pending:
            self.check_order(pending)

    @staticmethod
    def _payload_keys(trigger: "NodeSpec") -> set:
        keys = set()
        payload = trigger.config.get("payload")
        if isinstance(payload, dict):
            keys.update(str(k) for k in payload)
        required = trigger.config.get("required")
        if isinstance(required, list):
            keys.update(str(k) for k in required if isinstance(k, str))
        elif isinstance(required, str):
            keys.add(required)
        return keys

    def check_order(self, pending: list) -> None:
        """A node's outputs exist only after it ran: the reader must come after the source on
        every path (the source dominates the reader), or the template must guard the read."""
        g, trigger = self.graph, self.trigger
        # networkx subgraph views are slow to walk: copy only when something is unreachable
        reach = g if len(self.reachable) == len(g) else g.subgraph(self.reachable).copy()
        dom = _Dominance(reach, trigger)
        outcome_reach: dict[str, set] = {}
        for outcome in ("http", "call"):
            target = self.specs[trigger].next.get(outcome)
            outcome_reach[outcome] = (nx.descendants(g, target) | {target}) if target is not None else set()
        undecided = []
        for item in pending:
            path, ref, reader, source = item
            if source == trigger:
                self._check_trigger_read(item, outcome_reach)
            elif source == reader or not dom.dominates(source, reader):
                undecided.append(item)
        if not undecided:
            return
        runs_before = _RunsBefore(reach, {src for *_, src in undecided if src in self.reachable})
        for path, ref, reader, source in undecided:
            if source in self.reachable and runs_before(source, reader):
                if not ref.guarded:
                    self.at(path, ref.index, "maybe-unset",
                            f"{ref.text}: {source!r} does not run on every path to {reader!r}, so its outputs "
                            f"may be unset here; route every path through {source!r}, or guard the read "
                            f"(`| default: ...` or `{{% if {source}... %}}`)", severity="warning")
            elif source == reader:
                self.at(path, ref.index, "never-set",
                        f"{ref.text}: {reader!r} reads its own outputs, which exist only after it ran "
                        "(and it is not in a loop)")
            else:
                self.at(path, ref.index, "never-set",
                        f"{ref.text}: {source!r} never runs before {reader!r} (no path from the trigger "
                        f"passes {source!r} and then {reader!r}), so this is never set")

    def _check_trigger_read(self, item, outcome_reach) -> None:
        path, ref, reader, source = item
        if len(ref.segments) < 2 or ref.segments[1] not in ("http", "call"):
            return
        kind = ref.segments[1]
        other = "call" if kind == "http" else "http"
        started = "a run request" if kind == "http" else "an incoming call"
        if reader not in outcome_reach[kind]:
            self.at(path, ref.index, "never-set",
                    f"{ref.text}: {source}.{kind} is set only on runs started by {started} "
                    f"(outcome {kind!r}), and {reader!r} is not reached from that outcome")
        elif reader in outcome_reach[other] and not ref.guarded:
            self.at(path, ref.index, "maybe-unset",
                    f"{ref.text}: {source}.{kind} is set only on runs started by {started}, and {reader!r} "
                    f"is also reached from the trigger's {other!r} outcome", severity="warning")
