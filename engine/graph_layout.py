"""The layout of a flow's drawing: boxes for nodes and edge labels, and edge paths.

Laid out with grandalf's Sugiyama (layered) layout, deterministically: the same flow gives
the same geometry, whatever the hash seed or the memory layout of the process. (grandalf's
`Graph` splits components through a set of edges hashed by id(), whose order changes from
run to run; so we find the components ourselves and give each `graph_core` its vertices
and edges as lists in file order.) `engine.graph_svg` draws the result.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import TYPE_CHECKING

from engine.graph_export import GraphEdge, GraphNode, clean_text, graph_model

if TYPE_CHECKING:
    from engine.flow import Flow

__all__ = ["ARROW_STUB", "LABEL_SIZE", "NAME_SIZE", "TYPE_SIZE", "Box", "Routed", "layout", "text_lines", "text_width"]

NAME_SIZE, TYPE_SIZE, LABEL_SIZE = 13, 11, 11  # font sizes: node names, node types, edge labels
NODE_H, LABEL_H = 42.0, 18.0
NODE_PAD, LABEL_PAD, MIN_NODE_W = 14.0, 6.0, 72.0
X_SPACE, Y_SPACE = 28.0, 24.0  # between boxes in a layer; between layers
COMPONENT_GAP = 48.0
ARROW_STUB = 10.0  # the straight end of every edge: longer than the arrowhead (8)


def text_width(text: str, size: float) -> float:
    """A generous estimate of the drawn width of one line in a monospace font."""
    units = 0.0
    for ch in text:
        if unicodedata.combining(ch):
            continue
        units += 1.0 if unicodedata.east_asian_width(ch) in ("W", "F") else 0.62
    return units * size


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


Routed = tuple[GraphEdge, Box, list]  # an edge, its label's box, its path points


def text_lines(text: str) -> list[str]:
    """The lines of a text as drawn (cleaned by `clean_text`)."""
    return clean_text(text).split("\n")


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
    sug.init_all(inverted_edges=_feedback_with_partners(g))
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


def _feedback_with_partners(g) -> list:
    """The edges to invert: the feedback edges, and the other half of each (an edge runs
    source -> label -> target). Inverting one half only would rank a loop-back edge's label
    past its source, so the edge would run away from its target to its label and back;
    inverted whole, the label sits between the two. (No new cycle: target is an ancestor of
    source along edges that stay. A self-loop keeps one half: both would be a cycle again.)"""
    inverted = [e for e in g.sE if e.feedback]
    chosen = {id(e) for e in inverted}
    for e in list(inverted):
        for end in (0, 1):
            label = e.v[end]
            if not (isinstance(label.data, tuple) and label.data[0] == "label"):
                continue
            # e leaves the label (end 0): its partner enters it, from the edge's source
            partners = label.e_in() if end == 0 else label.e_out()
            far = e.v[1 - end]  # the node at e's other end
            for p in partners:
                node = p.v[0] if end == 0 else p.v[1]
                if id(p) not in chosen and node is not far:
                    chosen.add(id(p))
                    inverted.append(p)
    return inverted


def _vertices(nodes: list[GraphNode], edges: list[GraphEdge]) -> tuple[list, dict[str, int], list[int], list]:
    """grandalf vertices sized to their text: the nodes, then one per edge label.

    Returns (vertices, {node name: index}, [index of each edge's label], links), where
    `links` are the (from, to) index pairs: each edge runs source -> label -> target.
    """
    from grandalf.graphs import Vertex

    verts: list = []
    index: dict[str, int] = {}
    for n in nodes:
        lines = text_lines((n.title)) + text_lines((n.type))
        w = max(text_width(line, NAME_SIZE) for line in lines) + 2 * NODE_PAD + (NODE_H / 2 if n.start else 0)
        v = Vertex(("node", n.name))
        v.view = _View(max(w, MIN_NODE_W), NODE_H + (len(lines) - 2) * NAME_SIZE * 1.25)
        index[n.name] = len(verts)
        verts.append(v)
    links: list[tuple[int, int]] = []
    label_of: list[int] = []
    for k, e in enumerate(edges):
        lines = text_lines((e.label))
        v = Vertex(("label", k))
        v.view = _View(max(text_width(line, LABEL_SIZE) for line in lines) + 2 * LABEL_PAD,
                       LABEL_H + (len(lines) - 1) * LABEL_SIZE * 1.25)
        label_of.append(len(verts))
        verts.append(v)
        links += [(index[e.source], len(verts) - 1), (len(verts) - 1, index[e.target])]
    return verts, index, label_of, links


def _component_roots(count: int, links: list[tuple[int, int]]) -> list[int]:
    """The weakly connected component of each vertex, named by its smallest index (union-find)."""
    parent = list(range(count))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a, b in links:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return [find(i) for i in range(count)]


def _place_components(verts: list, links: list, gedges: list, start_i: int | None) -> dict:
    """Lay out each component, left to right, the trigger's first; returns the dummy
    vertices of each long layout edge (see `_layout_component`)."""
    roots = _component_roots(len(verts), links)
    components: dict[int, list[int]] = {}
    for i in range(len(verts)):
        components.setdefault(roots[i], []).append(i)
    start = verts[start_i] if start_i is not None else None
    order = sorted(components, key=lambda root: start_i is None or root != roots[start_i])  # stable
    edges_by_root: dict[int, list] = {}
    for (a, _), ge in zip(links, gedges):
        edges_by_root.setdefault(roots[a], []).append(ge)
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
    return dummies


def _port_positions(chains: list[list], ends: list[tuple[int, int]], verts: list) -> dict[tuple[int, int], float]:
    """Where each edge leaves and enters its nodes: {(edge k, 0 source / 1 target): x}.

    The edges that leave a node's bottom (or top) are spread along it in the order of the
    x of their neighbouring vertex, so they do not cross right at the box.
    """
    ports: dict[tuple[int, int], list] = {}  # (node index, +1 bottom / -1 top) -> [(x of neighbour, k, end)]
    for k, (chain, (source, target)) in enumerate(zip(chains, ends)):
        down = 1 if chain[1].view.xy[1] > chain[0].view.xy[1] else -1
        ports.setdefault((source, down), []).append((chain[1].view.xy[0], k, 0))
        up = 1 if chain[-2].view.xy[1] > chain[-1].view.xy[1] else -1
        ports.setdefault((target, up), []).append((chain[-2].view.xy[0], k, 1))
    port_x: dict[tuple[int, int], float] = {}
    for (i, _), users in ports.items():
        v = verts[i]
        usable = max(v.view.w - max(v.view.h, 24.0), 0.0)  # keep off rounded corners
        step = min(12.0, usable / (len(users) - 1)) if len(users) > 1 else 0.0
        for j, (_, k, end) in enumerate(sorted(users)):
            port_x[(k, end)] = v.view.xy[0] + (j - (len(users) - 1) / 2) * step
    return port_x


def _route(chain: list, x0: float, x1: float) -> list[tuple[float, float]]:
    """The path of one edge through its chain of vertices, leaving at x0 and entering at x1."""
    s, t = chain[0].view, chain[-1].view
    d0 = 1 if chain[1].view.xy[1] > s.xy[1] else -1
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
    # The last stretch is straight into the box, at least ARROW_STUB long, so the arrowhead
    # points at the node (a loop-back edge arriving at a shallow angle would hide it under
    # the border and read as leaving).
    approach = max(t.band, t.h / 2 + ARROW_STUB)
    points += [(x1, t.xy[1] + d1 * approach), (x1, t.xy[1] + d1 * t.h / 2)]
    path = [points[0]]
    for p in points[1:]:
        if p != path[-1]:
            path.append(p)
    return path


def _box(v) -> Box:
    return Box(v.view.xy[0], v.view.xy[1], v.view.w, v.view.h)


def layout(flow: "Flow") -> tuple[list[GraphNode], dict[str, Box], list[Routed], float, float]:
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
    from grandalf.graphs import Edge

    nodes, edges = graph_model(flow)
    verts, index, label_of, links = _vertices(nodes, edges)
    start_i = next((index[n.name] for n in nodes if n.start), None)
    gedges = [Edge(verts[a], verts[b]) for a, b in links]
    dummies = _place_components(verts, links, gedges, start_i)
    chains = []  # each edge's vertices: source, dummies, label, dummies, target
    for k, e in enumerate(edges):
        first, second = gedges[2 * k], gedges[2 * k + 1]
        chains.append([verts[index[e.source]]] + dummies.get(first, []) + [verts[label_of[k]]]
                      + dummies.get(second, []) + [verts[index[e.target]]])
    port_x = _port_positions(chains, [(index[e.source], index[e.target]) for e in edges], verts)
    routed = [(e, _box(verts[label_of[k]]), _route(chain, port_x[(k, 0)], port_x[(k, 1)]))
              for k, (e, chain) in enumerate(zip(edges, chains))]
    boxes = {n.name: _box(verts[index[n.name]]) for n in nodes}
    right = [b.cx + b.w / 2 for b in boxes.values()] + [r[1].cx + r[1].w / 2 for r in routed]
    bottom = [b.cy + b.h / 2 for b in boxes.values()] + [r[1].cy + r[1].h / 2 for r in routed]
    for _, _, path in routed:
        right += [p[0] for p in path]
        bottom += [p[1] for p in path]
    return nodes, boxes, routed, max(right, default=0.0), max(bottom, default=0.0)
