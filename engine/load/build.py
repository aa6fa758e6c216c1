"""Flow files -> checked Flow objects with a networkx graph.

`check_text` never raises on bad input: everything wrong with a file comes back as a list
of diagnostics, all at once, each with a 1-based line:col.
"""

from __future__ import annotations

import gc
import re
from pathlib import Path
from typing import Any

import networkx as nx

from engine.diagnostics import Diagnostic, has_errors, sort_key
from engine.errors import FlowInvalid
from engine.fields import Reporter, compile_fields, did_you_mean
from engine.flow import Flow
from engine.load.analysis import check_flow
from engine.load.document import MAX_FLOW_BYTES, Document, load_text
from engine.node import NodeSpec
from engine.registry import node_types

SPEC_VERSION = "callflow/v1"
FLOW_ID = re.compile(r"^[a-z0-9][a-z0-9-]*$")
NODE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
TOP_KEYS = ("spec", "id", "name", "description", "nodes")
NODE_KEYS = frozenset({"type", "next", "error"})


# -- loading -----------------------------------------------------------------------------------
def load_flow(path: str | Path) -> Flow:
    """Load a flow file or raise FlowInvalid with every diagnostic."""
    flow, diagnostics = check_file(path)
    if flow is None:
        raise FlowInvalid(diagnostics)
    return flow


def check_file(path: str | Path) -> tuple[Flow | None, list[Diagnostic]]:
    data, problems = read_flow_file(path)
    if data is None:
        return None, problems
    return check_text(data, str(path))


def read_flow_file(path: str | Path) -> tuple[bytes | None, list[Diagnostic]]:
    """The bytes of a flow file, or why not (too large: refused without reading it)."""
    p = Path(path)
    try:
        size = p.stat().st_size
        if size > MAX_FLOW_BYTES:
            return None, [Diagnostic(str(path), 1, 1, "error", "file-too-large",
                                     f"flow file is {size} bytes; the limit is {MAX_FLOW_BYTES} bytes (1 MiB)")]
        return p.read_bytes(), []
    except OSError as e:
        return None, [Diagnostic(str(path), 1, 1, "error", "unreadable", f"cannot read file: {e.strerror}")]


def check_text(text: str | bytes, path: str = "<flow>") -> tuple[Flow | None, list[Diagnostic]]:
    flow, diagnostics, _ = check_source(text, path)
    return flow, diagnostics


def check_source(text: str | bytes, path: str = "<flow>") -> tuple[Flow | None, list[Diagnostic], Document]:
    """check_text, plus the parsed document (positions of everything, for callers that
    report more, like `callflow validate`'s duplicate flow ids)."""
    # Loading a big flow allocates hundreds of thousands of small objects and frees none:
    # the cyclic GC would rescan them again and again (quadratic-looking time). Pause it, and
    # afterwards move what survived straight to the oldest generation (freeze + unfreeze is
    # two list splices) instead of letting the next young collection walk all of it.
    pause = len(text) > 64 * 1024 and gc.isenabled()
    if pause:
        gc.disable()
    try:
        return _check(text, path)
    finally:
        if pause:
            gc.freeze()
            gc.unfreeze()
            gc.enable()


def _check(text: str | bytes, path: str) -> tuple[Flow | None, list[Diagnostic], Document]:
    doc = load_text(text, path)
    if doc.data is None and not doc.diagnostics:
        doc.diag((), "empty-flow", "the file holds no flow")
    flow = None
    if doc.data is not None:
        try:
            flow = _Builder(doc).build()
        except RecursionError:  # absurdly nested values: report, never crash
            doc.diag((), "too-deep", "values nested too deeply")
    diagnostics = sorted(set(doc.diagnostics), key=sort_key)
    if has_errors(diagnostics):
        return None, diagnostics, doc
    if flow is not None:
        flow.diagnostics = diagnostics
    return flow, diagnostics, doc


class _Builder:
    def __init__(self, doc: Document):
        self.doc = doc
        self.types = node_types()

    # reporters -------------------------------------------------------------------------------
    def error(self, path, code, message, key=False, severity="error"):
        self.doc.diag(path, code, message, key=key, severity=severity)

    def template_error(self, path, index, code, message):
        self.doc.diag(path, code, message, at=self.doc.offset_pos(path, index))

    # build ---------------------------------------------------------------------------------------
    def build(self) -> Flow | None:
        data = self.doc.data
        if not isinstance(data, dict):
            self.error((), "wrong-type", "a flow file is a mapping with spec, id, name and nodes")
            return None
        for key in data:
            if key not in TOP_KEYS:
                self.error((key,), "unknown-key", f"unknown key {key!r}{did_you_mean(key, TOP_KEYS)}", key=True)
        for key in ("spec", "id", "nodes"):
            if key not in data:
                self.error((), "missing-key", f"missing required key {key!r}")
        spec = data.get("spec")
        if "spec" in data and spec != SPEC_VERSION:
            self.error(("spec",), "spec-version", f"unsupported spec {spec!r}; this engine reads {SPEC_VERSION!r}")
        flow_id = data.get("id")
        if "id" in data and (not isinstance(flow_id, str) or not FLOW_ID.match(flow_id)):
            self.error(("id",), "invalid-id", f"flow id {flow_id!r} must be url-safe: lower-case letters, digits and '-'")
        for key in ("name", "description"):
            if key in data and not isinstance(data[key], str):
                self.error((key,), "wrong-type", f"{key} must be text")
        raw_nodes = data.get("nodes")
        if "nodes" in data and not isinstance(raw_nodes, dict):
            self.error(("nodes",), "wrong-type", "nodes is a mapping: node name -> node")
            return None
        raw_nodes = raw_nodes or {}
        if "nodes" in data and not raw_nodes:
            self.error(("nodes",), "no-nodes", "the flow has no nodes")

        specs: dict[str, NodeSpec] = {}
        raw_next: dict[str, Any] = {}
        for name, raw in raw_nodes.items():
            spec_ = self.build_node(name, raw)
            if spec_ is not None:
                specs[name] = spec_
                raw_next[name] = raw.get("next")
        triggers = [n for n, s in specs.items() if s.node_type.is_trigger]
        if len(triggers) != 1 and raw_nodes:
            where = ("nodes", triggers[1]) if len(triggers) > 1 else ("nodes",)
            self.error(where, "trigger-count", f"a flow has exactly one trigger node; found {len(triggers)}"
                       + (f" ({', '.join(triggers)})" if triggers else ""), key=len(triggers) > 1)
        known_names = set(raw_nodes)
        for name, spec_ in specs.items():
            self.link(spec_, raw_next[name], known_names)
        graph = self.graph(specs)
        check_flow(self.doc, specs, graph, triggers[0] if len(triggers) == 1 else None, known_names)
        if has_errors(self.doc.diagnostics) or len(triggers) != 1:
            return None
        return Flow(id=flow_id, name=data.get("name") or flow_id, description=data.get("description") or "",
                    path=self.doc.path, nodes=specs, trigger=triggers[0], graph=graph)

    def build_node(self, name: Any, raw: Any) -> NodeSpec | None:
        path = ("nodes", name)
        if not NODE_NAME.match(str(name)):
            self.error(path, "invalid-name",
                       f"node name {name!r} must start with a letter and hold only letters, digits and '_'", key=True)
        if not isinstance(raw, dict):
            self.error(path, "wrong-type", f"node {name!r} must be a mapping with a 'type'")
            return None
        type_name = raw.get("type")
        if type_name is None:
            self.error(path, "missing-key", f"node {name!r} has no 'type'", key=True)
            return None
        if not isinstance(type_name, str):
            self.error(path + ("type",), "wrong-type",
                       f"type names a node type ({', '.join(sorted(self.types))})")
            return None
        node_type = self.types.get(type_name)
        if node_type is None:
            self.error(path + ("type",), "unknown-node-type",
                       f"unknown node type {type_name!r}{did_you_mean(str(type_name), self.types)}")
            return None
        report = Reporter(self.error, self.template_error)
        config = compile_fields(node_type.fields, raw, path, report, ignore=NODE_KEYS)
        node_type.check(config, path, report)
        error = raw.get("error")
        if error is not None and not isinstance(error, str):
            self.error(path + ("error",), "wrong-type", "error names the node to go to when this one fails")
            error = None
        line, col = self.doc.pos(path, key=True)
        return NodeSpec(name=str(name), node_type=node_type, config=config, next={}, error=error, line=line, col=col)

    def link(self, spec: NodeSpec, raw_next: Any, names: set) -> None:
        path = ("nodes", spec.name, "next")
        outcomes = spec.node_type.node_outcomes(spec.config)
        if raw_next is None:
            pass
        elif isinstance(raw_next, str):
            default = spec.node_type.default_outcome(spec.config)
            if default is None:
                if not outcomes:
                    self.error(path, "unknown-outcome", f"a {spec.type} node has no outcomes, so no next")
                else:
                    self.error(path, "ambiguous-next",
                               f"a {spec.type} node has several outcomes ({', '.join(outcomes)}): "
                               "map each one to a node")
            else:
                spec.next[default] = raw_next
        elif isinstance(raw_next, dict):
            for outcome, target in raw_next.items():
                if outcome not in outcomes:
                    hint = did_you_mean(str(outcome), outcomes)
                    declared = ", ".join(outcomes) or "none"
                    self.error(path + (outcome,), "unknown-outcome",
                               f"{spec.type} has no outcome {outcome!r} (its outcomes: {declared}){hint}", key=True)
                    continue
                if target is None:
                    continue
                if not isinstance(target, str):
                    self.error(path + (outcome,), "wrong-type", "next names a node")
                    continue
                if outcome not in spec.node_type.possible_outcomes(spec.config):
                    self.error(path + (outcome,), "impossible-outcome",
                               f"this {spec.type} node, as configured, can never take {outcome!r}: "
                               "the path behind it is dead", key=True, severity="warning")
                spec.next[outcome] = target
        else:
            self.error(path, "wrong-type", "next is a node name or a mapping: outcome -> node name")
        for outcome, target in list(spec.next.items()):
            tpath = path if isinstance(raw_next, str) else path + (outcome,)
            if target not in names:
                self.error(tpath, "unknown-node", f"next {outcome!r} goes to {target!r}, which is not a node"
                           + did_you_mean(target, names))
                del spec.next[outcome]
        if spec.error is not None and spec.error not in names:
            self.error(("nodes", spec.name, "error"), "unknown-node",
                       f"error goes to {spec.error!r}, which is not a node{did_you_mean(spec.error, names)}")
            spec.error = None

    def graph(self, specs: dict[str, NodeSpec]) -> nx.DiGraph:
        g = nx.DiGraph()
        for name, spec in specs.items():
            g.add_node(name, type=spec.type, config=spec.config, line=spec.line, col=spec.col)
        for name, spec in specs.items():
            for outcome, target in spec.next.items():
                if g.has_edge(name, target):
                    g.edges[name, target]["outcomes"] += (outcome,)
                    g.edges[name, target]["outcome"] = ", ".join(g.edges[name, target]["outcomes"])
                else:
                    g.add_edge(name, target, outcome=outcome, outcomes=(outcome,))
            if spec.error is not None:
                if g.has_edge(name, spec.error):
                    g.edges[name, spec.error]["outcomes"] += ("error",)
                    g.edges[name, spec.error]["outcome"] = ", ".join(g.edges[name, spec.error]["outcomes"])
                else:
                    g.add_edge(name, spec.error, outcome="error", outcomes=("error",))
        return g
