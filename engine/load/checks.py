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

What templates read comes from `references`, the graph algorithms from `graphs`.
"""

from __future__ import annotations

import networkx as nx

from engine import codes
from engine.fields import Reporter, did_you_mean
from engine.load.document import Document
from engine.load.graphs import IndexedGraph, RunsBefore
from engine.load.references import (
    iter_templates,
    output_problem,
    output_tree,
    template_info,
)
from engine.node import NodeSpec
from engine.templating import templates


def check_flow(doc: "Document", specs: dict[str, "NodeSpec"], graph: nx.DiGraph, trigger: str | None,
               names: set, params=()) -> dict[str, frozenset[bool]]:
    """Run every whole-flow check; `trigger` is None when the flow has not exactly one,
    `names` holds every node name, including nodes that did not build, `params` the
    declared parameter names. Returns each reachable node's call states: whether a call
    can be up when a run enters it (True, False or both)."""
    checks = FlowChecks(doc, specs, graph, trigger, names)
    checks.params = frozenset(params)
    checks.run()
    return {name: frozenset(states) for name, states in checks.call_states.items()}


class FlowChecks:
    """The whole-flow checks of one flow, reporting into its document."""

    def __init__(self, doc: "Document", specs: dict[str, "NodeSpec"], graph: nx.DiGraph, trigger: str | None,
                 names: set):
        self.doc = doc
        self.specs = specs
        self.graph = graph
        self.trigger = trigger
        self.names = names
        self.reachable: set[str] = set()
        self.call_states: dict[str, set[bool]] = {}  # node -> call up? as runs can enter it
        self._fast: IndexedGraph | None = None
        self.params: frozenset[str] = frozenset()

    def at(self, path: tuple, index: int | None, code: codes.Code, message: str) -> None:
        """Report at character `index` of the template at `path`."""
        self.doc.diag(path, code, message, at=self.doc.offset_pos(path, index))

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
                self.doc.diag(("nodes", name), codes.UNREACHABLE_NODE,
                              f"node {name!r} cannot be reached from the trigger {self.trigger!r}",
                              key=True)

    def _next_path(self, name: str, outcome: str) -> tuple:
        if outcome == "error" and ("nodes", name, "next", "error") not in self.doc.value_pos:
            return ("nodes", name, "error")
        deep = ("nodes", name, "next", outcome)
        return deep if deep in self.doc.value_pos else ("nodes", name, "next")

    def check_next_to_trigger(self) -> None:
        for source, _, data in self.graph.in_edges(self.trigger, data=True):
            for outcome in data["outcomes"]:
                self.doc.diag(self._next_path(source, outcome), codes.NEXT_TO_TRIGGER,
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
        for name, up in seen:
            self.call_states.setdefault(name, set()).add(up)
        report = Reporter(self.doc.diag, self.at)
        for name in sorted(n for n, up in seen if up and n in specs):
            specs[name].node_type.check_during_call(specs[name].config, ("nodes", name), report)
        for (name, up), via in bad.items():
            spec = specs[name]
            shown = ", ".join(sorted(set(via))[:5]) + (", ..." if len(set(via)) > 5 else "")
            if not up:
                self.doc.diag(("nodes", name), codes.NEEDS_CALL,
                              f"{spec.type} node {name!r} runs only during a call, but it can be reached "
                              f"with no call up (via {shown})", key=True)
            else:
                self.doc.diag(("nodes", name), codes.CALL_ALREADY_UP,
                              f"{spec.type} node {name!r} places a call, but it can be reached while a call is "
                              f"still up (via {shown}); a run controls one call at a time", key=True)

    def check_loops(self) -> None:
        g = self.fast_graph()
        spinning = [name in self.reachable and name in self.specs and not self._waits(name) for name in g.names]
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
            self.doc.diag(("nodes", first), codes.LOOP_WITHOUT_WAIT,
                          f"{what} with no node that waits for a call, a caller or a timer (call_out, get_input, "
                          "wait outside a call) on the way; a run stops after 10 visits of one node",
                          key=True)

    def _waits(self, name: str) -> bool:
        """Does the node wait for the outside world however a run enters it (with or
        without a call up)?"""
        node_type = self.specs[name].node_type
        return all(node_type.waits_with(up) for up in self.call_states.get(name) or (False,))

    def fast_graph(self) -> IndexedGraph:
        if self._fast is None:
            self._fast = IndexedGraph(self.graph)
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
                    self.at(path, index, codes.TEMPLATE_INCLUDE,
                            "include and render need template files; flows have none: write the text inline")
                for fname, index in info.filters:
                    if fname not in filters:
                        self.at(path, index, codes.UNKNOWN_FILTER,
                                f"unknown Liquid filter {fname!r}{did_you_mean(fname, filters)}")
                for ref in info.refs:
                    root = ref.segments[0]
                    if root == "params":
                        self.check_param_read(path, ref)
                        continue
                    if root not in names:
                        self.at(path, ref.index, codes.UNKNOWN_VARIABLE,
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
                        self.at(path, ref.index, codes.UNKNOWN_OUTPUT, f"{ref.text}: {problem}")
                        continue
                    key = source.node_type.payload_key(ref.segments)
                    if key is not None:
                        if payload_keys is None:
                            payload_keys = source.node_type.payload_keys(source.config)
                        if key not in payload_keys and not ref.guarded:
                            self.at(path, ref.index, codes.UNDECLARED_PAYLOAD_KEY,
                                    f"{ref.text}: {key!r} is neither in {root}'s payload nor in its "
                                    f"required keys; add it to one of them"
                                    + did_you_mean(key, payload_keys))
                    if trigger is not None and name in self.reachable:
                        pending.append((path, ref, name, root))
        if pending:
            self.check_order(pending)

    def check_param_read(self, path: tuple, ref) -> None:
        """`{{ params.name }}` must name a declared param."""
        name = ref.segments[1] if len(ref.segments) > 1 else None
        if name is None or name not in self.params:
            hint = did_you_mean(str(name), self.params) if name is not None else ""
            declared = ", ".join(sorted(self.params)) or "none"
            self.at(path, ref.index, codes.UNDECLARED_PARAM,
                    f"{ref.text}: the flow declares no param {name!r} under params: (declared: {declared}){hint}")

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
        runs_before = RunsBefore(g, questions)
        for path, ref, reader, source in undecided:
            if source in self.reachable and runs_before(index[source], index[reader]):
                if not ref.guarded:
                    self.at(path, ref.index, codes.MAYBE_UNSET,
                            f"{ref.text}: {source!r} does not run on every path to {reader!r}, so its outputs "
                            f"may be unset here; route every path through {source!r}, or guard the read "
                            f"(`| default: ...` or `{{% if {source}... %}}`)")
            elif source == reader:
                self.at(path, ref.index, codes.NEVER_SET,
                        f"{ref.text}: {reader!r} reads its own outputs, which exist only after it ran "
                        "(and it is not in a loop)")
            else:
                self.at(path, ref.index, codes.NEVER_SET,
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
        other = next((o for o in started_by if o != kind and reader in outcome_reach[o]
                      and (source, o) not in ref.unset), None)  # `{% if Start.call %}...{% else %}`
        if reader not in outcome_reach[kind]:
            reached_from = next((o for o in started_by if reader in outcome_reach[o]), None)
            self.at(path, ref.index, codes.NEVER_SET,
                    f"{ref.text}: {source}.{kind} is set only on runs started by {started} "
                    f"(outcome {kind!r}), and {reader!r} is not reached from that outcome"
                    + _entry_hint(source, kind, ref.segments, reached_from))
        elif other is not None and not ref.guarded:
            self.at(path, ref.index, codes.MAYBE_UNSET,
                    f"{ref.text}: {source}.{kind} is set only on runs started by {started}, and {reader!r} "
                    f"is also reached from the trigger's {other!r} outcome; guard the read with "
                    f"`{{% if {source}.{kind} %}}...{{% else %}}...{{% endif %}}`")


# What a run started each way can read (the trigger's outcomes), for the never-set hint.
_ENTRY_READS = {
    "http": ("a run request", ("params.<key>",)),
    "call": ("an incoming call", ("from", "to", "headers.<name>")),
    "message": ("an incoming message", ("text", "from", "to")),
}


def _entry_hint(trigger: str, kind: str, segments: tuple, reached_from: str | None) -> str:
    """What to read instead, when a node reached only from the trigger's `reached_from` outcome
    reads the outputs of its `kind` outcome."""
    if reached_from not in _ENTRY_READS:
        return ""
    started, reads = _ENTRY_READS[reached_from]
    if kind == "http":  # Start.http.params.<key>
        field = segments[3] if len(segments) > 3 and segments[2] == "params" else None
    else:  # Start.call.<field>, Start.message.<field>
        field = segments[2] if len(segments) > 2 else None
    # The numbers calls and messages both have; a payload key `text` is the message's text.
    same = field in ("from", "to") or (field == "text" and reached_from == "message")
    options = [field] if same and reached_from != "http" else list(reads)
    shown = [f"{{{{ {trigger}.{reached_from}.{o} }}}}" for o in options]
    read = shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + " or " + shown[-1]
    if kind == "http":
        what = "the call" if reached_from == "call" else "the message"
        return (f"; runs started by {started} have no payload (not even the trigger's static "
                f"`payload`): read {what} instead, {read}")
    if reached_from == "http":
        return f"; runs started by {started} read their payload: {read}"
    return f"; runs started by {started} read it: {read}"
