"""Drawing a flow: Mermaid (for READMEs and pull requests), Graphviz DOT, and a laid-out SVG.

`callflow graph FLOW --format mermaid|dot|svg` (contract section 2) uses these.

What every format shows, the same way:
* each node with its name and type; the trigger is the start (drawn first, on top, as a
  green pill marked with a triangle);
* in-call nodes (they run while a call is up: node types whose `call` is `required`, and
  call-optional ones such as `wait` or `hangup` where every path to them has a call up, as
  validation proves it) drawn apart: rounded, blue; a call-optional node reached with no
  call up on some path (a `wait` that is a timer there) is drawn as any other node;
* one edge per (node, target) pair labelled with its outcomes in the order of the file
  ("no_answer, busy"), and one dashed red edge for each `error:`;
* for a flow that does not load (`engine.load.sketch`), its broken parts in red: nodes of
  an unknown type or with errors, dashed, and a "missing" node for every name an edge
  points at that the flow lacks. Error edges come from
  `NodeSpec.error`, not from the graph's `outcomes`, so a branch condition that happens to
  be called `error` is still drawn as a plain edge.

Every text goes through an escaper of its format, so any node name or outcome (quotes,
`end`, `#`, markup, non-ASCII) gives output that parses. This module holds the model every
format draws, Mermaid and DOT; the laid-out SVG is `engine.graph_svg`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from engine.flow import Flow

FORMATS = ("mermaid", "dot", "svg")
START_MARK = "\u25b6"  # black right-pointing triangle: the trigger, where runs start

# Colours shared by the three formats.
START_FILL, START_STROKE, START_TEXT = "#dcfce7", "#15803d", "#14532d"
CALL_FILL, CALL_STROKE, CALL_TEXT = "#dbeafe", "#1d4ed8", "#1e3a8a"
NODE_FILL, NODE_STROKE, NODE_TEXT = "#f9fafb", "#6b7280", "#111827"
EDGE_COLOR, ERROR_COLOR = "#4b5563", "#b91c1c"
BROKEN_FILL, BROKEN_STROKE, BROKEN_TEXT = "#fee2e2", "#b91c1c", "#7f1d1d"  # a flow that does not load


# -- the model every format draws --------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class GraphNode:
    name: str
    type: str
    in_call: bool  # the node runs during a call on every path to it (Flow.always_in_call)
    start: bool  # the trigger
    broken: bool = False  # drawing a flow that does not load: unknown type, errors, or missing

    @property
    def title(self) -> str:
        return f"{START_MARK} {self.name}" if self.start else self.name


@dataclass(frozen=True, slots=True)
class GraphEdge:
    source: str
    target: str
    outcomes: tuple[str, ...]
    error: bool  # the node's `error:` edge
    broken: bool = False  # it names a node the flow does not have (drawn to a "missing" node)

    @property
    def label(self) -> str:
        return ", ".join(self.outcomes)


def graph_model(flow: "Flow") -> tuple[list[GraphNode], list[GraphEdge]]:
    """Nodes in file order; edges by source in file order, outcomes grouped by target. A
    flow that did not load comes as a sketch (`engine.load.sketch`) holding its model."""
    model = getattr(flow, "model", None)
    if model is not None:
        return model()
    nodes = []
    edges = []
    for name, spec in flow.nodes.items():
        nodes.append(GraphNode(name=str(name), type=str(spec.type), in_call=flow.always_in_call(name),
                               start=name == flow.trigger))
        by_target: dict[str, list[str]] = {}
        for outcome, target in spec.next.items():
            if target in flow.nodes:
                by_target.setdefault(target, []).append(str(outcome))
        for target, outcomes in by_target.items():
            edges.append(GraphEdge(str(name), str(target), tuple(outcomes), error=False))
        if spec.error is not None and spec.error in flow.nodes:
            edges.append(GraphEdge(str(name), str(spec.error), ("error",), error=True))
    return nodes, edges


def clean_text(text: str) -> str:
    """Text fit for any format: control characters (other than newline), surrogates and non-characters -> U+FFFD."""
    out = []
    for ch in str(text).replace("\r\n", "\n").replace("\r", "\n"):
        o = ord(ch)
        if ch == "\n" or (o >= 0x20 and not 0x7F <= o <= 0x9F and not 0xD800 <= o <= 0xDFFF
                          and o not in (0xFFFE, 0xFFFF)):
            out.append(ch)
        else:
            out.append("\ufffd")
    return "".join(out)


def render(flow: "Flow", fmt: str) -> str:
    """The flow drawn in `fmt`, one of FORMATS."""
    if fmt == "mermaid":
        return to_mermaid(flow)
    if fmt == "dot":
        return to_dot(flow)
    if fmt == "svg":
        # engine.graph_svg draws this module's model, so it imports this module: imported
        # here, when an SVG is asked for, the dependency stays one-way at import time.
        from engine.graph_svg import to_svg

        return to_svg(flow)
    raise ValueError(f"unknown graph format {fmt!r}; one of {', '.join(FORMATS)}")


# -- Mermaid -----------------------------------------------------------------------------------
# Characters written as themselves inside a quoted Mermaid label; everything else becomes an
# entity (`#quot;`, `#35;`...). `:` and `;` are encoded too: Mermaid's preprocessor rewrites
# `style...:...#...;` on a line, and `;` ends a statement.
_MERMAID_PLAIN = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 _.,-+=/!?@'")


def mermaid_text(text: str) -> str:
    """Text for inside a quoted Mermaid label (node or edge); newlines become <br/>."""
    out = []
    for ch in clean_text(text):
        if ch in _MERMAID_PLAIN:
            out.append(ch)
        elif ch == '"':
            out.append("#quot;")
        elif ch == "\n":
            out.append("<br/>")
        else:
            out.append(f"#{ord(ch)};")
    return "".join(out)


def to_mermaid(flow: "Flow") -> str:
    """A `flowchart TD` that renders on GitHub: generated ids n0, n1..., quoted labels."""
    nodes, edges = graph_model(flow)
    ids = {n.name: f"n{i}" for i, n in enumerate(nodes)}
    lines = ["flowchart TD", f"    %% callflow graph of {mermaid_text(str(flow.id))}"]
    for n in nodes:
        label = f"{mermaid_text(n.title)}<br/>{mermaid_text(n.type)}"
        if n.start:
            lines.append(f'    {ids[n.name]}(["{label}"])')  # stadium
        elif n.in_call:
            lines.append(f'    {ids[n.name]}("{label}")')  # rounded
        else:
            lines.append(f'    {ids[n.name]}["{label}"]')
    error_links = []
    for i, e in enumerate(edges):
        arrow = "-.->" if e.error or e.broken else "-->"
        lines.append(f'    {ids[e.source]} {arrow}|"{mermaid_text(e.label)}"| {ids[e.target]}')
        if e.error or e.broken:
            error_links.append(str(i))
    lines.append(f"    classDef cfStart fill:{START_FILL},stroke:{START_STROKE},stroke-width:3px,color:{START_TEXT}")
    lines.append(f"    classDef cfInCall fill:{CALL_FILL},stroke:{CALL_STROKE},color:{CALL_TEXT}")
    lines.append(f"    classDef cfNode fill:{NODE_FILL},stroke:{NODE_STROKE},color:{NODE_TEXT}")
    broken = [n for n in nodes if n.broken]
    if broken:
        lines.append(f"    classDef cfBroken fill:{BROKEN_FILL},stroke:{BROKEN_STROKE},stroke-width:2px,"
                     f"stroke-dasharray:5 3,color:{BROKEN_TEXT}")
    for cls, members in (("cfStart", [n for n in nodes if n.start and not n.broken]),
                         ("cfInCall", [n for n in nodes if n.in_call and not n.start and not n.broken]),
                         ("cfNode", [n for n in nodes if not n.in_call and not n.start and not n.broken]),
                         ("cfBroken", broken)):
        if members:
            lines.append(f"    class {','.join(ids[n.name] for n in members)} {cls}")
    if error_links:
        lines.append(f"    linkStyle {','.join(error_links)} stroke:{ERROR_COLOR},color:{ERROR_COLOR}")
    return "\n".join(lines) + "\n"


# -- Graphviz DOT ------------------------------------------------------------------------------
def dot_string(text: str) -> str:
    """A quoted DOT string; backslashes and quotes escaped, newlines as label line breaks."""
    s = clean_text(text).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{s}"'


def to_dot(flow: "Flow") -> str:
    nodes, edges = graph_model(flow)
    q = dot_string
    lines = [
        f"digraph {q(str(flow.id))} {{",
        f'    graph [rankdir=TB, fontname="Helvetica", labelloc=t, label={q(str(flow.name))}];',
        f'    node [fontname="Helvetica", fontsize=12, shape=box, style=filled, '
        f'color="{NODE_STROKE}", fillcolor="{NODE_FILL}", fontcolor="{NODE_TEXT}"];',
        f'    edge [fontname="Helvetica", fontsize=10, color="{EDGE_COLOR}", fontcolor="{EDGE_COLOR}"];',
    ]
    for n in nodes:
        attrs = [f"label={q(n.title + chr(10) + n.type)}"]
        if n.start:
            attrs += ["shape=ellipse", 'style="filled,bold"', "penwidth=2",
                      f'color="{START_STROKE}"', f'fillcolor="{START_FILL}"', f'fontcolor="{START_TEXT}"']
        elif n.in_call:
            attrs += ['style="rounded,filled"', f'color="{CALL_STROKE}"', f'fillcolor="{CALL_FILL}"',
                      f'fontcolor="{CALL_TEXT}"']
        if n.broken:
            attrs += ['style="dashed,filled"', "penwidth=2", f'color="{BROKEN_STROKE}"',
                      f'fillcolor="{BROKEN_FILL}"', f'fontcolor="{BROKEN_TEXT}"']
        lines.append(f"    {q(n.name)} [{', '.join(attrs)}];")
    start = [n for n in nodes if n.start]
    if start:
        lines.append(f"    {{ rank=source; {q(start[0].name)}; }}")
    for e in edges:
        attrs = [f"label={q(e.label)}"]
        if e.error or e.broken:
            attrs += ["style=dashed", f'color="{ERROR_COLOR}"', f'fontcolor="{ERROR_COLOR}"']
        lines.append(f"    {q(e.source)} -> {q(e.target)} [{', '.join(attrs)}];")
    lines.append("}")
    return "\n".join(lines) + "\n"
