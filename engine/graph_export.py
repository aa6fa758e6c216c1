"""Drawing a flow: Mermaid (for READMEs and pull requests), Graphviz DOT, and a laid-out SVG.

`callflow graph FLOW --format mermaid|dot|svg` (contract section 2) uses these.

What every format shows, the same way:
* each node with its name and type; the trigger is the start (drawn first, on top, as a
  green pill marked with a triangle);
* in-call nodes (node types whose `call` is `required` or `optional`: they run while a
  call is up) drawn apart: rounded, blue;
* one edge per (node, target) pair labelled with its outcomes in the order of the file
  ("no_answer, busy"), and one dashed red edge for each `error:`. Error edges come from
  `NodeSpec.error`, not from the graph's `outcomes`, so a branch condition that happens to
  be called `error` is still drawn as a plain edge.

Every text goes through an escaper of its format, so any node name or outcome (quotes,
`end`, `#`, markup, non-ASCII) gives output that parses. The SVG is laid out with
grandalf's Sugiyama (layered) layout; it is deterministic: the same flow gives the same
bytes, whatever the hash seed or the memory layout of the process. (grandalf's `Graph`
splits components through a set of edges hashed by id(), whose order changes from run to
run; so we find the components ourselves and give each `graph_core` its vertices and edges
as lists in file order. Floats are written with one decimal.)
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import TYPE_CHECKING
from xml.sax.saxutils import escape as _xml_escape

if TYPE_CHECKING:
    from engine.flow import Flow

FORMATS = ("mermaid", "dot", "svg")
START_MARK = "\u25b6"  # black right-pointing triangle: the trigger, where runs start

# Colours shared by the three formats.
START_FILL, START_STROKE, START_TEXT = "#dcfce7", "#15803d", "#14532d"
CALL_FILL, CALL_STROKE, CALL_TEXT = "#dbeafe", "#1d4ed8", "#1e3a8a"
NODE_FILL, NODE_STROKE, NODE_TEXT = "#f9fafb", "#6b7280", "#111827"
EDGE_COLOR, ERROR_COLOR = "#4b5563", "#b91c1c"


# -- the model every format draws --------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class GraphNode:
    name: str
    type: str
    in_call: bool  # the node type runs during a call (call: required | optional)
    start: bool  # the trigger

    @property
    def title(self) -> str:
        return f"{START_MARK} {self.name}" if self.start else self.name


@dataclass(frozen=True, slots=True)
class GraphEdge:
    source: str
    target: str
    outcomes: tuple[str, ...]
    error: bool  # the node's `error:` edge

    @property
    def label(self) -> str:
        return ", ".join(self.outcomes)


def graph_model(flow: "Flow") -> tuple[list[GraphNode], list[GraphEdge]]:
    """Nodes in file order; edges by source in file order, outcomes grouped by target."""
    nodes = []
    edges = []
    for name, spec in flow.nodes.items():
        call = spec.node_type.needs_call
        nodes.append(GraphNode(name=str(name), type=str(spec.type), in_call=call in ("required", "optional"),
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


def _clean(text: str) -> str:
    """Control characters (other than newline), surrogates and non-characters -> U+FFFD."""
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
    if fmt == "mermaid":
        return to_mermaid(flow)
    if fmt == "dot":
        return to_dot(flow)
    if fmt == "svg":
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
    for ch in _clean(text):
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
        arrow = "-.->" if e.error else "-->"
        lines.append(f'    {ids[e.source]} {arrow}|"{mermaid_text(e.label)}"| {ids[e.target]}')
        if e.error:
            error_links.append(str(i))
    lines.append(f"    classDef cfStart fill:{START_FILL},stroke:{START_STROKE},stroke-width:3px,color:{START_TEXT}")
    lines.append(f"    classDef cfInCall fill:{CALL_FILL},stroke:{CALL_STROKE},color:{CALL_TEXT}")
    lines.append(f"    classDef cfNode fill:{NODE_FILL},stroke:{NODE_STROKE},color:{NODE_TEXT}")
    for cls, members in (("cfStart", [n for n in nodes if n.start]),
                         ("cfInCall", [n for n in nodes if n.in_call and not n.start]),
                         ("cfNode", [n for n in nodes if not n.in_call and not n.start])):
        if members:
            lines.append(f"    class {','.join(ids[n.name] for n in members)} {cls}")
    if error_links:
        lines.append(f"    linkStyle {','.join(error_links)} stroke:{ERROR_COLOR},color:{ERROR_COLOR}")
    return "\n".join(lines) + "\n"


# -- Graphviz DOT ------------------------------------------------------------------------------
def dot_string(text: str) -> str:
    """A quoted DOT string; backslashes and quotes escaped, newlines as label line breaks."""
    s = _clean(text).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
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
        lines.append(f"    {q(n.name)} [{', '.join(attrs)}];")
    start = [n for n in nodes if n.start]
    if start:
        lines.append(f"    {{ rank=source; {q(start[0].name)}; }}")
    for e in edges:
        attrs = [f"label={q(e.label)}"]
        if e.error:
            attrs += ["style=dashed", f'color="{ERROR_COLOR}"', f'fontcolor="{ERROR_COLOR}"']
        lines.append(f"    {q(e.source)} -> {q(e.target)} [{', '.join(attrs)}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


# -- SVG ---------------------------------------------------------------------------------------
FONT = "ui-monospace, SFMono-Regular, Menlo, Consolas, 'DejaVu Sans Mono', 'Liberation Mono', monospace"
NAME_SIZE, TYPE_SIZE, LABEL_SIZE, TITLE_SIZE = 13, 11, 11, 15
NODE_H, LABEL_H = 42.0, 18.0
NODE_PAD, LABEL_PAD, MIN_NODE_W = 14.0, 6.0, 72.0
X_SPACE, Y_SPACE = 28.0, 24.0  # between boxes in a layer; between layers
COMPONENT_GAP, MARGIN = 48.0, 20.0
LEGEND = "green pill: start (trigger) \u00b7 blue rounded: in-call node \u00b7 dashed red: error edge"


def text_width(text: str, size: float) -> float:
    """A generous estimate of the drawn width of one line in a monospace font."""
    units = 0.0
    for ch in text:
        if unicodedata.combining(ch):
            continue
        units += 1.0 if unicodedata.east_asian_width(ch) in ("W", "F") else 0.62
    return units * size


def _num(v: float) -> str:
    s = f"{v:.1f}"
    if s.endswith(".0"):
        s = s[:-2]
    return "0" if s == "-0" else s


def _x(text: str) -> str:
    """Text content or a double-quoted attribute value (a newline kept as &#10;)."""
    return _xml_escape(_clean(text), {'"': "&quot;", "\n": "&#10;"})


class _View:
    """What grandalf reads (w, h) and writes (xy) for a vertex; `band` is our own."""

    __slots__ = ("w", "h", "xy", "band")

    def __init__(self, w: float, h: float):
        self.w, self.h, self.xy, self.band = w, h, None, h / 2


@dataclass(frozen=True, slots=True)
class Box:
    """A laid-out box: centre, width and height (SVG user units, before the header offset)."""

    cx: float
    cy: float
    w: float
    h: float


def _lines(text: str) -> list[str]:
    return text.split("\n")


def _layout_component(members: list, gedges: list, start) -> dict:
    """grandalf's Sugiyama layout of one connected component: sets view.xy and view.band.

    Feedback edges come from a depth-first search that starts at the trigger, so the
    trigger stays on top even when a path loops back to it. A last sweep per layer keeps
    every pair of neighbours at least X_SPACE apart, whatever the coordinate assignment did.
    Returns the dummy vertices of each long edge, in order from its source to its target.
    """
    from grandalf.graphs import graph_core
    from grandalf.layouts import SugiyamaLayout

    g = graph_core(members, gedges)
    if len(members) == 1:
        members[0].view.xy = (0.0, 0.0)
        return {}
    sug = SugiyamaLayout(g)
    sug.xspace, sug.yspace = X_SPACE, Y_SPACE
    roots = [v for v in g.sV if not v.e_in()]
    if start is not None and start in members:
        roots = [start] + [v for v in roots if v is not start]
    g.get_scs_with_feedback(roots)
    sug.init_all(inverted_edges=[e for e in g.sE if e.feedback])
    sug.draw()
    for layer in sug.layers:
        band = max(v.view.h / 2 for v in layer)
        prev = None
        for v in sorted(layer, key=lambda v: v.view.xy[0]):
            v.view.band = band
            if prev is not None:
                x = max(v.view.xy[0], prev.view.xy[0] + (prev.view.w + v.view.w) / 2 + X_SPACE)
                v.view.xy = (x, v.view.xy[1])
            prev = v
    dummies = {}
    for e in gedges:
        if e in sug.ctrls:
            ctrl = sug.ctrls[e]
            r0, r1 = sug.grx[e.v[0]].rank, sug.grx[e.v[1]].rank
            ranks = range(r0 + 1, r1) if r0 < r1 else range(r0 - 1, r1, -1)
            dummies[e] = [ctrl[r] for r in ranks]
    # every vertex of the component, dummies too, for the shift that follows
    real = set(members)  # looked up only, never iterated: order stays the file's
    dummies[None] = [v for layer in sug.layers for v in layer if v not in real]
    return dummies


def layout(flow: "Flow") -> tuple[list[GraphNode], dict[str, Box], list[tuple[GraphEdge, Box, list]], float, float]:
    """(nodes, {name: Box}, [(edge, label Box, path points)], width, height).

    Each edge becomes two layout edges through a vertex the size of its label, so labels
    take room in the layering (as dot does) and never sit on a node. grandalf ranks the
    vertices (breaking cycles by reversing feedback edges), orders each layer to reduce
    crossings and places them (Brandes-Koepf). Weakly connected components are laid out
    one by one, left to right, the trigger's first.

    Edges are routed through their label and dummy vertices: straight down (or up) inside
    a layer's band, at the x of the vertex, which no other box of the layer covers, and
    diagonal only between bands, where there are no boxes. So no edge crosses a box.
    """
    from grandalf.graphs import Edge, Vertex

    nodes, edges = graph_model(flow)
    verts: list = []
    index: dict[str, int] = {}
    for n in nodes:
        lines = _lines(_clean(n.title)) + _lines(_clean(n.type))
        w = max(text_width(line, NAME_SIZE) for line in lines) + 2 * NODE_PAD + (NODE_H / 2 if n.start else 0)
        v = Vertex(("node", n.name))
        v.view = _View(max(w, MIN_NODE_W), NODE_H + (len(lines) - 2) * NAME_SIZE * 1.25)
        index[n.name] = len(verts)
        verts.append(v)
    links: list[tuple[int, int]] = []
    label_of: list[int] = []
    for k, e in enumerate(edges):
        lines = _lines(_clean(e.label))
        v = Vertex(("label", k))
        v.view = _View(max(text_width(line, LABEL_SIZE) for line in lines) + 2 * LABEL_PAD,
                       LABEL_H + (len(lines) - 1) * LABEL_SIZE * 1.25)
        label_of.append(len(verts))
        verts.append(v)
        links += [(index[e.source], len(verts) - 1), (len(verts) - 1, index[e.target])]

    # weakly connected components (union-find; the smallest index names a component)
    parent = list(range(len(verts)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a, b in links:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    components: dict[int, list[int]] = {}
    for i in range(len(verts)):
        components.setdefault(find(i), []).append(i)
    start_i = next((index[n.name] for n in nodes if n.start), None)
    start = verts[start_i] if start_i is not None else None
    order = sorted(components, key=lambda root: start_i is None or root != find(start_i))  # stable

    gedges = [Edge(verts[a], verts[b]) for a, b in links]
    edges_by_root: dict[int, list] = {}
    for (a, _), ge in zip(links, gedges):
        edges_by_root.setdefault(find(a), []).append(ge)
    dummies: dict = {}
    offset_x = 0.0
    for root in order:
        members = [verts[i] for i in components[root]]
        found = _layout_component(members, edges_by_root.get(root, []), start)
        extra = found.pop(None, [])
        dummies.update(found)
        everything = members + extra
        left = min(v.view.xy[0] - v.view.w / 2 for v in everything)
        top = min(v.view.xy[1] - v.view.band for v in everything)
        for v in everything:
            v.view.xy = (v.view.xy[0] - left + offset_x, v.view.xy[1] - top)
        offset_x = max(v.view.xy[0] + v.view.w / 2 for v in everything) + COMPONENT_GAP

    def box(v) -> Box:
        return Box(v.view.xy[0], v.view.xy[1], v.view.w, v.view.h)

    # chains of vertices, then ports: where each edge leaves and enters its nodes
    chains = []
    ports: dict[tuple[int, int], list] = {}  # (node index, +1 bottom / -1 top) -> [(x of neighbour, k, end)]
    for k, e in enumerate(edges):
        first, second = gedges[2 * k], gedges[2 * k + 1]
        chain = ([verts[index[e.source]]] + dummies.get(first, []) + [verts[label_of[k]]]
                 + dummies.get(second, []) + [verts[index[e.target]]])
        chains.append(chain)
        down = 1 if chain[1].view.xy[1] > chain[0].view.xy[1] else -1
        ports.setdefault((index[e.source], down), []).append((chain[1].view.xy[0], k, 0))
        up = 1 if chain[-2].view.xy[1] > chain[-1].view.xy[1] else -1
        ports.setdefault((index[e.target], up), []).append((chain[-2].view.xy[0], k, 1))
    port_x: dict[tuple[int, int], float] = {}
    for (i, _), users in ports.items():
        v = verts[i]
        usable = max(v.view.w - max(v.view.h, 24.0), 0.0)  # keep off rounded corners
        step = min(12.0, usable / (len(users) - 1)) if len(users) > 1 else 0.0
        for j, (_, k, end) in enumerate(sorted(users)):
            port_x[(k, end)] = v.view.xy[0] + (j - (len(users) - 1) / 2) * step

    routed = []
    for k, (e, chain) in enumerate(zip(edges, chains)):
        s, t = chain[0].view, chain[-1].view
        d0 = 1 if chain[1].view.xy[1] > s.xy[1] else -1
        x0 = port_x[(k, 0)]
        points = [(x0, s.xy[1] + d0 * s.h / 2), (x0, s.xy[1] + d0 * s.band)]
        for i in range(1, len(chain) - 1):
            (x, y), band, w = chain[i].view.xy, chain[i].view.band, chain[i].view.w
            entry = -1 if chain[i - 1].view.xy[1] < y else 1  # -1: the top of the band
            leave = 1 if chain[i + 1].view.xy[1] > y else -1
            if entry == leave:  # the path turns back at this (label) vertex
                q = w / 4 if chain[i - 1].view.xy[0] <= chain[i + 1].view.xy[0] else -w / 4
                points += [(x - q, y + entry * band), (x - q, y), (x + q, y), (x + q, y + leave * band)]
            else:
                points += [(x, y + entry * band), (x, y + leave * band)]
        d1 = 1 if chain[-2].view.xy[1] > t.xy[1] else -1
        x1 = port_x[(k, 1)]
        points += [(x1, t.xy[1] + d1 * t.band), (x1, t.xy[1] + d1 * t.h / 2)]
        path = [points[0]]
        for p in points[1:]:
            if p != path[-1]:
                path.append(p)
        routed.append((e, box(verts[label_of[k]]), path))
    boxes = {n.name: box(verts[index[n.name]]) for n in nodes}
    right = [b.cx + b.w / 2 for b in boxes.values()] + [r[1].cx + r[1].w / 2 for r in routed]
    bottom = [b.cy + b.h / 2 for b in boxes.values()] + [r[1].cy + r[1].h / 2 for r in routed]
    for _, _, path in routed:
        right += [p[0] for p in path]
        bottom += [p[1] for p in path]
    return nodes, boxes, routed, max(right, default=0.0), max(bottom, default=0.0)


def to_svg(flow: "Flow") -> str:
    nodes, boxes, routed, width, height = layout(flow)
    uid = "cf-" + "".join(ch if ch.isascii() and (ch.isalnum() or ch == "-") else "_" for ch in str(flow.id))
    title = f"{flow.name} ({flow.id})" if str(flow.name) != str(flow.id) else str(flow.id)
    header = MARGIN + TITLE_SIZE + 8 + TYPE_SIZE + 14
    ox, oy = MARGIN, header
    total_w = max(width, text_width(_clean(title), TITLE_SIZE), text_width(LEGEND, TYPE_SIZE)) + 2 * MARGIN
    total_h = height + header + MARGIN
    n = _num
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{n(total_w)}" height="{n(total_h)}" '
        f'viewBox="0 0 {n(total_w)} {n(total_h)}" font-family="{_x(FONT)}" role="img" '
        f'aria-labelledby="{uid}-title">',
        f'<title id="{uid}-title">{_x(title)}</title>',
        "<defs>",
    ]
    for suffix, color in (("arrow", EDGE_COLOR), ("arrow-error", ERROR_COLOR)):
        out.append(f'<marker id="{uid}-{suffix}" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="8" '
                   f'markerHeight="8" markerUnits="userSpaceOnUse" orient="auto">'
                   f'<path d="M0,0 L10,5 L0,10 z" fill="{color}"/></marker>')
    out += [
        "</defs>",
        f'<rect class="background" x="0" y="0" width="{n(total_w)}" height="{n(total_h)}" fill="#ffffff"/>',
        f'<text class="flow-title" x="{n(MARGIN)}" y="{n(MARGIN + TITLE_SIZE)}" font-size="{TITLE_SIZE}" '
        f'font-weight="bold" fill="{NODE_TEXT}">{_x(title)}</text>',
        f'<text class="legend" x="{n(MARGIN)}" y="{n(MARGIN + TITLE_SIZE + 8 + TYPE_SIZE)}" '
        f'font-size="{TYPE_SIZE}" fill="{NODE_STROKE}">{_x(LEGEND)}</text>',
        '<g class="edges" fill="none" stroke-width="1.5" stroke-linejoin="round">',
    ]
    for e, _, points in routed:
        color = ERROR_COLOR if e.error else EDGE_COLOR
        d = " ".join(("M" if i == 0 else "L") + f"{n(x + ox)},{n(y + oy)}" for i, (x, y) in enumerate(points))
        dash = ' stroke-dasharray="6 4"' if e.error else ""
        marker = f"{uid}-arrow-error" if e.error else f"{uid}-arrow"
        out.append(f'<path class="edge{" error" if e.error else ""}" data-source="{_x(e.source)}" '
                   f'data-target="{_x(e.target)}" data-outcomes="{_x(e.label)}" d="{d}" stroke="{color}"{dash} '
                   f'marker-end="url(#{marker})"/>')
    out.append("</g>")
    out.append(f'<g class="edge-labels" font-size="{LABEL_SIZE}" text-anchor="middle">')
    for e, b, _ in routed:
        color = ERROR_COLOR if e.error else EDGE_COLOR
        out.append(f'<rect class="edge-label{" error" if e.error else ""}" x="{n(b.cx - b.w / 2 + ox)}" '
                   f'y="{n(b.cy - b.h / 2 + oy)}" width="{n(b.w)}" height="{n(b.h)}" rx="3" fill="#ffffff" '
                   f'stroke="{color}" stroke-width="0.5"/>')
        lines = _lines(_clean(e.label))
        for i, line in enumerate(lines):
            y = b.cy + oy + (i - (len(lines) - 1) / 2) * LABEL_SIZE * 1.25
            out.append(f'<text x="{n(b.cx + ox)}" y="{n(y)}" dominant-baseline="central" fill="{color}">'
                       f"{_x(line)}</text>")
    out.append("</g>")
    out.append('<g class="nodes" text-anchor="middle">')
    for node in nodes:
        b = boxes[node.name]
        if node.start:
            kind, fill, stroke, ink, rx, sw = "start", START_FILL, START_STROKE, START_TEXT, b.h / 2, 2.5
        elif node.in_call:
            kind, fill, stroke, ink, rx, sw = "in-call", CALL_FILL, CALL_STROKE, CALL_TEXT, 10.0, 1.5
        else:
            kind, fill, stroke, ink, rx, sw = "plain", NODE_FILL, NODE_STROKE, NODE_TEXT, 2.0, 1.0
        out.append(f'<g class="node {kind}" data-name="{_x(node.name)}" data-type="{_x(node.type)}">')
        out.append(f"<title>{_x(node.name)} ({_x(node.type)})</title>")
        out.append(f'<rect class="node {kind}" x="{n(b.cx - b.w / 2 + ox)}" y="{n(b.cy - b.h / 2 + oy)}" '
                   f'width="{n(b.w)}" height="{n(b.h)}" rx="{n(rx)}" fill="{fill}" stroke="{stroke}" '
                   f'stroke-width="{n(sw)}"/>')
        lines = [(line, NAME_SIZE, ' font-weight="bold"') for line in _lines(_clean(node.title))]
        lines += [(line, TYPE_SIZE, ' font-style="italic"') for line in _lines(_clean(node.type))]
        for i, (line, size, extra) in enumerate(lines):
            y = b.cy + oy + (i - (len(lines) - 1) / 2) * NAME_SIZE * 1.25
            out.append(f'<text x="{n(b.cx + ox)}" y="{n(y)}" dominant-baseline="central" font-size="{size}"'
                       f'{extra} fill="{ink}">{_x(line)}</text>')
        out.append("</g>")
    out.append("</g>")
    out.append("</svg>")
    return "\n".join(out) + "\n"
