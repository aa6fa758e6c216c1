"""Flow files -> checked Flow objects with a networkx graph.

`check_text` never raises on bad input: everything wrong with a file comes back as a list
of diagnostics, all at once, each with a 1-based line:col.
"""

from __future__ import annotations

import gc
import hashlib
import re
from pathlib import Path
from typing import Any

import networkx as nx

from engine import codes
from engine.diagnostics import Diagnostic, has_errors, sort_key
from engine.errors import FlowInvalid
from engine.fields import Reporter, compile_fields, did_you_mean
from engine.flow import Flow
from engine.load.checks import check_flow
from engine.load.document import MAX_FLOW_BYTES, Document
from engine.load.yaml_reader import load_text
from engine.node import NodeSpec
from engine.params import PARAM_NAME, Param
from engine.registry import node_types

SPEC_VERSION = "callflow/v1"
FLOW_ID = re.compile(r"^[a-z0-9][a-z0-9-]*$")
NODE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
TOP_KEYS = ("spec", "id", "name", "description", "params", "nodes")
NODE_KEYS = frozenset({"type", "next", "error"})
PARAM_KEYS = ("default", "secret", "description")
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_-]+")


def _names(outcomes) -> str:
    """Outcome names for a message; they may come from the file (branch conditions), so any
    that is not a plain word is quoted (a message stays one line)."""
    return ", ".join(o if _PLAIN_NAME.fullmatch(str(o)) else repr(o) for o in outcomes)


# -- loading -----------------------------------------------------------------------------------
def load_flow(path: str | Path) -> Flow:
    """Load a flow file; raises `FlowInvalid` (with every diagnostic) when it cannot run.

        flow = load_flow("flows/outbound-sip-headers.yaml")
        flow.id, list(flow.nodes), flow.diagnostics   # warnings of a valid flow
    """
    flow, diagnostics = check_file(path)
    if flow is None:
        raise FlowInvalid(diagnostics)
    return flow


def check_file(path: str | Path) -> tuple[Flow | None, list[Diagnostic]]:
    """Check a flow file without raising: `(flow, diagnostics)`, flow None when any is an error
    (a file over 1 MiB or unreadable is a diagnostic too)."""
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
            return None, [Diagnostic.of(codes.FILE_TOO_LARGE, str(path),
                                        f"flow file is {size} bytes; the limit is {MAX_FLOW_BYTES} bytes (1 MiB)")]
        return p.read_bytes(), []
    except OSError as e:
        return None, [Diagnostic.of(codes.UNREADABLE, str(path), f"cannot read file: {e.strerror}")]


def check_text(text: str | bytes, path: str = "<flow>") -> tuple[Flow | None, list[Diagnostic]]:
    """Check flow text without raising: `(flow, diagnostics)`; `path` names it in diagnostics.

        flow, diagnostics = check_text(open("f.yaml").read(), "f.yaml")
        for d in diagnostics: print(d)      # f.yaml:3:9: error dangling-next ...
    """
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
        doc.diag((), codes.EMPTY_FLOW, "the file holds no flow")
    flow = None
    if doc.data is not None:
        try:
            flow = _Builder(doc).build()
        except RecursionError:  # absurdly nested values: report, never crash
            doc.diag((), codes.TOO_DEEP, "values nested too deeply")
    diagnostics = sorted(set(doc.diagnostics), key=sort_key)
    if has_errors(diagnostics):
        return None, diagnostics, doc
    if flow is not None:
        flow.diagnostics = diagnostics
        flow.revision = revision_of(text)
        flow.source = text.decode("utf-8") if isinstance(text, bytes) else text
    return flow, diagnostics, doc


def revision_of(text: str | bytes) -> str:
    """A flow's revision: the SHA-256 (hex) of its file's bytes."""
    return hashlib.sha256(text.encode("utf-8") if isinstance(text, str) else text).hexdigest()


class _Builder:
    def __init__(self, doc: Document):
        self.doc = doc
        self.types = node_types()

    # reporters -------------------------------------------------------------------------------
    def report(self, path: tuple, code: codes.Code, message: str, key: bool = False) -> None:
        self.doc.diag(path, code, message, key=key)

    def report_in_template(self, path: tuple, index: int | None, code: codes.Code, message: str) -> None:
        """A problem at character `index` of the template at `path`."""
        self.doc.diag(path, code, message, at=self.doc.offset_pos(path, index))

    # build ---------------------------------------------------------------------------------------
    def build(self) -> Flow | None:
        data = self.doc.data
        if not isinstance(data, dict):
            self.report((), codes.WRONG_TYPE, "a flow file is a mapping with spec, id, name and nodes")
            return None
        for key in data:
            if key not in TOP_KEYS:
                self.report((key,), codes.UNKNOWN_KEY, f"unknown key {key!r}{did_you_mean(key, TOP_KEYS)}", key=True)
        for key in ("spec", "id", "nodes"):
            if key not in data:
                self.report((), codes.MISSING_KEY, f"missing required key {key!r}")
        spec = data.get("spec")
        if "spec" in data and spec != SPEC_VERSION:
            self.report(("spec",), codes.SPEC_VERSION, f"unsupported spec {spec!r}; this engine reads {SPEC_VERSION!r}")
        flow_id = data.get("id")
        if "id" in data and (not isinstance(flow_id, str) or not FLOW_ID.match(flow_id)):
            self.report(("id",), codes.INVALID_ID, f"flow id {flow_id!r} must be url-safe: lower-case letters, digits and '-'")
        for key in ("name", "description"):
            if key in data and not isinstance(data[key], str):
                self.report((key,), codes.WRONG_TYPE, f"{key} must be text")
        raw_nodes = data.get("nodes")
        if "nodes" in data and not isinstance(raw_nodes, dict):
            self.report(("nodes",), codes.WRONG_TYPE, "nodes is a mapping: node name -> node")
            return None
        raw_nodes = raw_nodes or {}
        params = self.build_params(data.get("params"))
        if "nodes" in data and not raw_nodes:
            self.report(("nodes",), codes.NO_NODES, "the flow has no nodes")

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
            self.report(where, codes.TRIGGER_COUNT, f"a flow has exactly one trigger node; found {len(triggers)}"
                        + (f" ({', '.join(triggers)})" if triggers else ""), key=len(triggers) > 1)
        known_names = set(raw_nodes)
        for name, spec_ in specs.items():
            self.link(spec_, raw_next[name], known_names)
        graph = self.graph(specs)
        call_states = check_flow(self.doc, specs, graph, triggers[0] if len(triggers) == 1 else None, known_names,
                                 params)
        if has_errors(self.doc.diagnostics) or len(triggers) != 1:
            return None
        return Flow(id=flow_id, name=data.get("name") or flow_id, description=data.get("description") or "",
                    path=self.doc.path, nodes=specs, trigger=triggers[0], graph=graph, params=params,
                    call_states=call_states)

    def build_params(self, raw: Any) -> dict[str, Param]:
        """`params:` name -> {default, secret, description} (a null entry: no default)."""
        if raw is None:
            return {}
        if not isinstance(raw, dict):
            self.report(("params",), codes.WRONG_TYPE, "params is a mapping: name -> {default, secret, description}")
            return {}
        params = {}
        for name, entry in raw.items():
            path = ("params", name)
            if not PARAM_NAME.match(str(name)):
                self.report(path, codes.INVALID_NAME,
                            f"param name {name!r} must hold only letters, digits and '_' (not first a digit)", key=True)
                continue
            entry = {} if entry is None else entry
            if not isinstance(entry, dict):
                self.report(path, codes.WRONG_TYPE, f"param {name!r} is a mapping: default, secret, description")
                continue
            for key in entry:
                if key not in PARAM_KEYS:
                    self.report(path + (key,), codes.UNKNOWN_KEY,
                                f"unknown key {key!r}{did_you_mean(str(key), PARAM_KEYS)}", key=True)
            default, secret = entry.get("default"), entry.get("secret", False)
            if default is not None and not isinstance(default, (str, int, float, bool)):
                self.report(path + ("default",), codes.WRONG_TYPE, "a param's default is text, a number or true/false")
            if not isinstance(secret, bool):
                self.report(path + ("secret",), codes.WRONG_TYPE, "secret is true or false")
            if not isinstance(entry.get("description", ""), str):
                self.report(path + ("description",), codes.WRONG_TYPE, "description must be text")
            line, col = self.doc.pos(path, key=True)
            params[name] = Param(name, default, secret is True, str(entry.get("description") or ""), line, col)
        return params

    def build_node(self, name: Any, raw: Any) -> NodeSpec | None:
        path = ("nodes", name)
        if not NODE_NAME.match(str(name)):
            self.report(path, codes.INVALID_NAME,
                        f"node name {name!r} must start with a letter and hold only letters, digits and '_'", key=True)
        elif name == "params":
            self.report(path, codes.INVALID_NAME, "'params' is reserved: templates read {{ params.name }} "
                        "as the flow's parameters; rename the node", key=True)
        if not isinstance(raw, dict):
            self.report(path, codes.WRONG_TYPE, f"node {name!r} must be a mapping with a 'type'")
            return None
        type_name = raw.get("type")
        if type_name is None:
            self.report(path, codes.MISSING_KEY, f"node {name!r} has no 'type'", key=True)
            return None
        if not isinstance(type_name, str):
            self.report(path + ("type",), codes.WRONG_TYPE,
                        f"type names a node type ({', '.join(sorted(self.types))})")
            return None
        node_type = self.types.get(type_name)
        if node_type is None:
            self.report(path + ("type",), codes.UNKNOWN_NODE_TYPE,
                        f"unknown node type {type_name!r}{did_you_mean(str(type_name), self.types)}")
            return None
        report = Reporter(self.report, self.report_in_template)
        config = compile_fields(node_type.fields, raw, path, report, ignore=NODE_KEYS)
        node_type.check(config, path, report)
        error = raw.get("error")
        if error is not None and not isinstance(error, str):
            self.report(path + ("error",), codes.WRONG_TYPE, "error names the node to go to when this one fails")
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
                    self.report(path, codes.UNKNOWN_OUTCOME, f"a {spec.type} node has no outcomes, so no next")
                else:
                    self.report(path, codes.AMBIGUOUS_NEXT,
                                f"a {spec.type} node has several outcomes ({_names(outcomes)}): "
                                "map each one to a node")
            else:
                spec.next[default] = raw_next
        elif isinstance(raw_next, dict):
            for outcome, target in raw_next.items():
                if outcome not in outcomes:
                    hint = did_you_mean(str(outcome), outcomes)
                    declared = _names(outcomes) or "none"
                    self.report(path + (outcome,), codes.UNKNOWN_OUTCOME,
                                f"{spec.type} has no outcome {outcome!r} (its outcomes: {declared}){hint}", key=True)
                    continue
                if target is None:
                    continue
                if not isinstance(target, str):
                    self.report(path + (outcome,), codes.WRONG_TYPE, "next names a node")
                    continue
                if outcome not in spec.node_type.possible_outcomes(spec.config):
                    self.report(path + (outcome,), codes.IMPOSSIBLE_OUTCOME,
                                f"this {spec.type} node, as configured, can never take {outcome!r}: "
                                "the path behind it is dead", key=True)
                spec.next[outcome] = target
        else:
            self.report(path, codes.WRONG_TYPE, "next is a node name or a mapping: outcome -> node name")
        for outcome, target in list(spec.next.items()):
            tpath = path if isinstance(raw_next, str) else path + (outcome,)
            if target not in names:
                self.report(tpath, codes.UNKNOWN_NODE, f"next {outcome!r} goes to {target!r}, which is not a node"
                            + did_you_mean(target, names))
                del spec.next[outcome]
        if spec.error is not None and spec.error not in names:
            self.report(("nodes", spec.name, "error"), codes.UNKNOWN_NODE,
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
