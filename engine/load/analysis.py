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

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterator

import networkx as nx
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
    templates,
)

if TYPE_CHECKING:
    from engine.load.document import Document
    from engine.node import NodeSpec

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
    if not template.parsed:  # a simple template: read it without parsing it with Liquid
        return _analyze_simple(template.source)
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
            where = f"{walked[0]} ({node_type})" if len(walked) == 1 else ".".join(walked)
            fields = ", ".join(node) or "nothing"
            hint = did_you_mean(str(seg), list(node))
            return f"{where} has no output {seg!r} (it has: {fields}){hint}"
        node = node[seg]
        walked.append(str(seg))
    return None


# -- the graph ---------------------------------------------------------------------------------
class _Graph:
    """The flow graph as integer adjacency lists, for the linear-time algorithms below
    (networkx's own are general but slow on views and, for dominators, on long flows)."""

    def __init__(self, graph: nx.DiGraph, nodes: list[str] | None = None):
        self.names = list(graph.nodes) if nodes is None else nodes
        index = self.index = {name: i for i, name in enumerate(self.names)}
        self.succ: list[list[int]] = [[] for _ in self.names]
        self.pred: list[list[int]] = [[] for _ in self.names]
        for u, v in graph.edges:
            iu, iv = index.get(u), index.get(v)
            if iu is not None and iv is not None:
                self.succ[iu].append(iv)
                self.pred[iv].append(iu)

    def postorder(self, root: int) -> list[int]:
        """Nodes reachable from root, in DFS postorder (iterative)."""
        succ = self.succ
        seen = [False] * len(succ)
        seen[root] = True
        order: list[int] = []
        stack = [(root, iter(succ[root]))]
        while stack:
            node, it = stack[-1]
            for nxt in it:
                if not seen[nxt]:
                    seen[nxt] = True
                    stack.append((nxt, iter(succ[nxt])))
                    break
            else:
                stack.pop()
                order.append(node)
        return order

    def dominator_intervals(self, root: int) -> tuple[list[int], list[int]]:
        """Immediate dominators (Cooper, Harvey and Kennedy's iterative algorithm, on reverse
        postorder), then enter/leave times on the dominator tree: a dominates b iff
        enter[a] <= enter[b] and leave[b] <= leave[a]. Unreachable nodes get -1."""
        n = len(self.succ)
        order = self.postorder(root)
        post = [-1] * n
        for i, node in enumerate(order):
            post[node] = i
        idom = [-1] * n
        idom[root] = root
        rpo = order[::-1][1:]
        pred = self.pred
        changed = True
        while changed:
            changed = False
            for b in rpo:
                new = -1
                for p in pred[b]:
                    if idom[p] == -1:
                        continue
                    if new == -1:
                        new = p
                        continue
                    f1, f2 = p, new
                    while f1 != f2:
                        while post[f1] < post[f2]:
                            f1 = idom[f1]
                        while post[f2] < post[f1]:
                            f2 = idom[f2]
                    new = f1
                if idom[b] != new:
                    idom[b] = new
                    changed = True
        children: list[list[int]] = [[] for _ in range(n)]
        for node in rpo:
            children[idom[node]].append(node)
        enter, leave = [-1] * n, [-1] * n
        clock = 0
        stack = [(root, False)]
        while stack:
            node, done = stack.pop()
            if done:
                leave[node] = clock
            else:
                enter[node] = clock
                stack.append((node, True))
                stack.extend((c, False) for c in children[node])
            clock += 1
        return enter, leave

    def components(self, members: list[bool] | None = None) -> tuple[list[int], list[list[int]]]:
        """Strongly connected components (iterative Tarjan) of the nodes in `members` (all by
        default): (component of each node or -1, components in reverse topological order)."""
        n = len(self.succ)
        succ = self.succ
        inside = members if members is not None else [True] * n
        index = [-1] * n
        low = [0] * n
        on_stack = [False] * n
        comp = [-1] * n
        stack: list[int] = []
        comps: list[list[int]] = []
        counter = 0
        for start in range(n):
            if not inside[start] or index[start] != -1:
                continue
            work = [(start, 0)]
            while work:
                node, i = work.pop()
                if i == 0:
                    index[node] = low[node] = counter
                    counter += 1
                    stack.append(node)
                    on_stack[node] = True
                recurse = False
                nexts = succ[node]
                while i < len(nexts):
                    nxt = nexts[i]
                    i += 1
                    if not inside[nxt]:
                        continue
                    if index[nxt] == -1:
                        work.append((node, i))
                        work.append((nxt, 0))
                        recurse = True
                        break
                    if on_stack[nxt] and index[nxt] < low[node]:
                        low[node] = index[nxt]
                if recurse:
                    continue
                if low[node] == index[node]:
                    members_: list[int] = []
                    while True:
                        w = stack.pop()
                        on_stack[w] = False
                        comp[w] = len(comps)
                        members_.append(w)
                        if w == node:
                            break
                    comps.append(members_)
                if work:
                    parent = work[-1][0]
                    if low[node] < low[parent]:
                        low[parent] = low[node]
        return comp, comps


class _RunsBefore:
    """Can node a run before node b on some path (a path a -> ... -> b of at least one edge)?

    On the condensation (strongly connected components in topological order): inside one
    component, yes iff the component has a cycle; a component later in topological order
    cannot reach an earlier one; otherwise a search from a's component that never enters
    components later than b's. Flows are mostly chains of short branches, so these searches
    are short; if they ever add up to more than a few passes over the graph, the remaining
    questions are answered by one bit-set pass carrying a bit per node asked about."""

    def __init__(self, g: _Graph, questions: list[tuple[int, int]], budget: int | None = None):
        comp, comps = g.components()
        ncomp = len(comps)
        topo = [ncomp - 1 - c for c in range(ncomp)]  # Tarjan emits reverse topological order
        csucc: list[set[int]] = [set() for _ in range(ncomp)]
        cyclic = [len(members) > 1 for members in comps]
        for u, nexts in enumerate(g.succ):
            cu = comp[u]
            for v in nexts:
                cv = comp[v]
                if cu != cv:
                    csucc[cu].add(cv)
                elif u == v:
                    cyclic[cu] = True
        self.answers: dict[tuple[int, int], bool] = {}
        if budget is None:
            budget = 8 * (len(g.succ) + sum(map(len, g.succ))) + 1000
        stamp = [-1] * ncomp
        left: list[tuple[int, int]] = []
        for qi, (a, b) in enumerate(questions):
            ca, cb = comp[a], comp[b]
            key = (ca, cb)
            if key in self.answers:
                continue
            if ca == cb:
                self.answers[key] = cyclic[ca]
                continue
            limit = topo[cb]
            if topo[ca] > limit:
                self.answers[key] = False
                continue
            if budget <= 0:
                left.append(key)
                continue
            found = False
            todo = [ca]
            stamp[ca] = qi
            while todo and not found:
                c = todo.pop()
                budget -= 1
                for d in csucc[c]:
                    if d == cb:
                        found = True
                        break
                    if stamp[d] != qi and topo[d] < limit:
                        stamp[d] = qi
                        todo.append(d)
            self.answers[key] = found
        if left:
            self._bitsets(comps, csucc, topo, left)
        self.comp = comp

    def _bitsets(self, comps, csucc, topo, keys) -> None:
        bit = {ca: 1 << i for i, ca in enumerate(sorted({ca for ca, _ in keys}))}
        before = [0] * len(comps)
        for c in sorted(range(len(comps)), key=topo.__getitem__):
            out = before[c] | bit.get(c, 0)
            for d in csucc[c]:
                before[d] |= out
        for ca, cb in keys:
            self.answers[(ca, cb)] = bool(before[cb] & bit[ca])

    def __call__(self, a: int, b: int) -> bool:
        return self.answers[(self.comp[a], self.comp[b])]


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
        self._fast: _Graph | None = None

    def at(self, path, index, code, message, severity="error") -> None:
        self.doc.diag(path, code, message, severity=severity, at=self.doc.offset_pos(path, index))

    def run(self) -> None:
        if self.trigger is not None:
            g = self.fast_graph()
            self.reachable = {g.names[i] for i in g.postorder(g.index[self.trigger])}
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
        specs = self.specs
        seen: set[tuple[str, bool]] = set()
        todo = [(self.trigger, False)]
        bad: dict[tuple[str, bool], list[str]] = {}  # (node, call up?) that breaks a rule -> via
        while todo:
            state = todo.pop()
            if state in seen:
                continue
            seen.add(state)
            name, up = state
            spec = specs.get(name)
            if spec is None:
                continue  # a node that did not build (already reported): nothing to prove past it
            node_type = spec.node_type
            edges = list(spec.next.items())
            if spec.error is not None:
                edges.append(("error", spec.error))
            for outcome, target in edges:
                after = node_type.call_after(outcome, up)
                target_spec = specs.get(target)
                if target_spec is not None:
                    t = target_spec.node_type
                    if (t.needs_call == "required" and not after) or \
                            (after and t.call_outcomes is not None and not t.is_trigger):
                        bad.setdefault((target, after), []).append(f"{name}.{outcome}")
                if (target, after) not in seen:
                    todo.append((target, after))
        for (name, up), via in bad.items():
            spec = specs[name]
            shown = ", ".join(sorted(set(via))[:5]) + (", ..." if len(set(via)) > 5 else "")
            if not up:
                self.doc.diag(("nodes", name), "needs-call",
                              f"{spec.type} node {name!r} runs only during a call, but it can be reached "
                              f"with no call up (via {shown})", key=True)
            else:
                self.doc.diag(("nodes", name), "call-already-up",
                              f"{spec.type} node {name!r} places a call, but it can be reached while a call is "
                              f"still up (via {shown}); a run controls one call at a time", key=True)

    def check_loops(self) -> None:
        g = self.fast_graph()
        spinning = [name in self.reachable and name in self.specs and not self.specs[name].node_type.waits
                    for name in g.names]
        _, comps = g.components(spinning)
        for component in comps:
            if len(component) == 1:
                (only,) = component
                if only not in g.succ[only]:
                    continue
            names = [g.names[i] for i in component]
            ordered = sorted(names, key=lambda n: (self.specs[n].line, self.specs[n].col))
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

    def fast_graph(self) -> _Graph:
        if self._fast is None:
            self._fast = _Graph(self.graph)
        return self._fast

    # -- templates -----------------------------------------------------------------------------------
    def check_templates(self) -> None:
        filters = templates.filter_names
        specs, names, trigger = self.specs, self.names, self.trigger
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
                    key = source.node_type.payload_key(ref.segments)
                    if key is not None:
                        if payload_keys is None:
                            payload_keys = source.node_type.payload_keys(source.config)
                        if key not in payload_keys and not ref.guarded:
                            self.at(path, ref.index, "undeclared-payload-key",
                                    f"{ref.text}: {key!r} is neither in {root}'s payload nor in its "
                                    f"required keys; add it to one of them"
                                    + did_you_mean(key, payload_keys),
                                    severity="warning")
                    if trigger is not None and name in self.reachable:
                        pending.append((path, ref, name, root))
        if pending:
            self.check_order(pending)

    def check_order(self, pending: list) -> None:
        """A node's outputs exist only after it ran: the reader must come after the source on
        every path (the source dominates the reader), or the template must guard the read."""
        g, trigger = self.fast_graph(), self.trigger
        index = g.index
        enter, leave = g.dominator_intervals(index[trigger])
        outcome_reach: dict[str, set] = {}
        for outcome in self.specs[trigger].node_type.started_by:
            target = self.specs[trigger].next.get(outcome)
            reach = g.postorder(index[target]) if target is not None else ()
            outcome_reach[outcome] = {g.names[i] for i in reach}
        undecided = []
        for item in pending:
            path, ref, reader, source = item
            if source == trigger:
                self._check_trigger_read(item, outcome_reach)
                continue
            s_, r_ = index[source], index[reader]
            if s_ != r_ and enter[s_] != -1 and enter[s_] <= enter[r_] and leave[r_] <= leave[s_]:
                continue  # the source dominates the reader: it ran on every path here
            undecided.append(item)
        if not undecided:
            return
        questions = [(index[src], index[rd]) for _, _, rd, src in undecided if src in self.reachable]
        runs_before = _RunsBefore(g, questions)
        for path, ref, reader, source in undecided:
            if source in self.reachable and runs_before(index[source], index[reader]):
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
        """A run that starts with outcome X finds the entry node's outputs under X only."""
        path, ref, reader, source = item
        started_by = self.specs[source].node_type.started_by
        if len(ref.segments) < 2 or ref.segments[1] not in started_by:
            return
        kind = ref.segments[1]
        started = started_by[kind]
        other = next((o for o in started_by if o != kind and reader in outcome_reach[o]), None)
        if reader not in outcome_reach[kind]:
            self.at(path, ref.index, "never-set",
                    f"{ref.text}: {source}.{kind} is set only on runs started by {started} "
                    f"(outcome {kind!r}), and {reader!r} is not reached from that outcome")
        elif other is not None and not ref.guarded:
            self.at(path, ref.index, "maybe-unset",
                    f"{ref.text}: {source}.{kind} is set only on runs started by {started}, and {reader!r} "
                    f"is also reached from the trigger's {other!r} outcome", severity="warning")
