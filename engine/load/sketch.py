"""A drawing of a flow that does not load: what parses, with the broken parts marked.

`callflow graph` on an invalid flow draws this instead of refusing: every node the YAML
holds, its `next` and `error` edges as written, a node with an unknown type or with errors
of its own marked broken, and every edge to a node that does not exist ending at a red
"missing" node. It reads the document as plain values, so it never raises on bad input.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.diagnostics import Diagnostic
from engine.graph_export import GraphEdge, GraphNode
from engine.load.document import Document
from engine.registry import node_types

MISSING = "missing"  # the type line of a node that edges name but the flow lacks


@dataclass(frozen=True)
class Sketch:
    """What `engine.graph_export` draws for a flow that did not load: id, name, the model."""

    id: str
    name: str
    nodes: list[GraphNode]
    edges: list[GraphEdge]

    def model(self) -> tuple[list[GraphNode], list[GraphEdge]]:
        """What `engine.graph_export.graph_model` returns for a Flow."""
        return list(self.nodes), list(self.edges)


def sketch(doc: Document, diagnostics: list[Diagnostic]) -> Sketch | None:
    """The drawable part of `doc`, or None when it holds no `nodes` mapping at all."""
    data = doc.data if isinstance(doc.data, dict) else {}
    raw_nodes = data.get("nodes")
    if not isinstance(raw_nodes, dict) or not raw_nodes:
        return None
    types = node_types()
    error_lines = _error_lines(doc, raw_nodes, diagnostics)
    nodes: list[GraphNode] = []
    edges: list[GraphEdge] = []
    missing: list[str] = []
    trigger = next((str(n) for n, raw in raw_nodes.items() if isinstance(raw, dict) and raw.get("type") == "trigger"),
                   None)
    names = {str(n) for n in raw_nodes}
    for name, raw in raw_nodes.items():
        name = str(name)
        raw = raw if isinstance(raw, dict) else {}
        type_name = raw.get("type")
        node_type = types.get(type_name) if isinstance(type_name, str) else None
        if node_type is None:
            label = f"{type_name} (unknown type)" if isinstance(type_name, str) else "(no type)"
        else:
            count = error_lines.get(name, 0)
            label = type_name + (f" ({count} error{'s' if count > 1 else ''})" if count else "")
        broken = node_type is None or bool(error_lines.get(name))
        # No proof of the call state in a flow that does not load: only the nodes that always need a call.
        in_call = node_type is not None and node_type.needs_call == "required"
        nodes.append(GraphNode(name, label, in_call, name == trigger, broken))
        for target, outcomes, is_error in _links(raw, node_type):
            if target not in names and target not in missing:
                missing.append(target)
            edges.append(GraphEdge(name, target, outcomes, is_error, broken=target not in names))
    nodes += [GraphNode(t, MISSING, False, False, True) for t in missing]
    title = data.get("name") if isinstance(data.get("name"), str) else None
    flow_id = data.get("id") if isinstance(data.get("id"), str) else doc.path
    return Sketch(str(flow_id), str(title or flow_id), nodes, edges)


def _links(raw: dict, node_type) -> list[tuple[str, tuple[str, ...], bool]]:
    """(target, outcomes, is the error edge) as written, outcomes grouped by target."""
    nxt = raw.get("next")
    by_target: dict[str, list[str]] = {}
    if isinstance(nxt, str):
        default = node_type.default_outcome({}) if node_type is not None else None
        by_target[nxt] = [default or "next"]
    elif isinstance(nxt, dict):
        for outcome, target in nxt.items():
            if isinstance(target, str):
                by_target.setdefault(target, []).append(str(outcome))
    out = [(t, tuple(o), False) for t, o in by_target.items()]
    if isinstance(raw.get("error"), str):
        out.append((raw["error"], ("error",), True))
    return out


def _error_lines(doc: Document, raw_nodes: dict, diagnostics: list[Diagnostic]) -> dict[str, int]:
    """Node name -> how many errors sit on its lines (from its key to the next node's)."""
    starts: list[tuple[int, str | None]] = []
    for name in raw_nodes:
        pos = doc.key_position(("nodes", name))
        if pos is not None:
            starts.append((pos[0], str(name)))
    first = min((line for line, _ in starts), default=0)
    for key in doc.data:  # top-level keys after `nodes:` end the last node's lines
        pos = doc.key_position((key,))
        if pos is not None and pos[0] > first:
            starts.append((pos[0], None))
    starts.sort(key=lambda s: s[0])
    counts: dict[str, int] = {}
    for d in diagnostics:
        if d.severity != "error":
            continue
        owner = None
        for line, name in starts:
            if line <= d.line:
                owner = name
            else:
                break
        if owner is not None:
            counts[owner] = counts.get(owner, 0) + 1
    return counts
