"""`callflow graph --format svg`: a flow drawn as a self-contained SVG image.

It draws the model of `engine.graph_export` (nodes, edges, colours: the same meaning as the
Mermaid and DOT drawings) where `engine.graph_layout` placed it. The output is
deterministic, byte for byte: the layout is, and floats are written with one decimal.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from xml.sax.saxutils import escape as _xml_escape

from engine.graph_export import (
    BROKEN_FILL,
    BROKEN_STROKE,
    BROKEN_TEXT,
    CALL_FILL,
    CALL_STROKE,
    CALL_TEXT,
    EDGE_COLOR,
    ERROR_COLOR,
    NODE_FILL,
    NODE_STROKE,
    NODE_TEXT,
    START_FILL,
    START_STROKE,
    START_TEXT,
    GraphNode,
    clean_text,
)
from engine.graph_layout import (
    LABEL_SIZE,
    NAME_SIZE,
    TYPE_SIZE,
    Box,
    Routed,
    layout,
    text_lines,
    text_width,
)

if TYPE_CHECKING:
    from engine.flow import Flow

__all__ = ["to_svg"]

FONT = "ui-monospace, SFMono-Regular, Menlo, Consolas, 'DejaVu Sans Mono', 'Liberation Mono', monospace"
TITLE_SIZE = 15
MARGIN = 20.0
LEGEND = "green pill: start (trigger) \u00b7 blue rounded: in-call node \u00b7 dashed red: error edge"


def _num(v: float) -> str:
    s = f"{v:.1f}"
    if s.endswith(".0"):
        s = s[:-2]
    return "0" if s == "-0" else s


def _x(text: str) -> str:
    """Text content or a double-quoted attribute value (a newline kept as &#10;)."""
    return _xml_escape(clean_text(text), {'"': "&quot;", "\n": "&#10;"})


def _head(uid: str, title: str, total_w: float, total_h: float) -> list[str]:
    """The document up to the edges: the svg element, title, arrow markers, background, legend."""
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
    ]
    return out


def _edges(routed: list[Routed], uid: str, ox: float, oy: float) -> list[str]:
    """The edge paths, then their labels (boxes with text), each group in a <g>."""
    n = _num
    out = ['<g class="edges" fill="none" stroke-width="1.5" stroke-linejoin="round">']
    for e, _, points in routed:
        red = e.error or e.broken
        color = ERROR_COLOR if red else EDGE_COLOR
        d = " ".join(("M" if i == 0 else "L") + f"{n(x + ox)},{n(y + oy)}" for i, (x, y) in enumerate(points))
        dash = ' stroke-dasharray="6 4"' if red else ""
        marker = f"{uid}-arrow-error" if red else f"{uid}-arrow"
        kinds = (" error" if e.error else "") + (" broken" if e.broken else "")
        out.append(f'<path class="edge{kinds}" data-source="{_x(e.source)}" '
                   f'data-target="{_x(e.target)}" data-outcomes="{_x(e.label)}" d="{d}" stroke="{color}"{dash} '
                   f'marker-end="url(#{marker})"/>')
    out.append("</g>")
    out.append(f'<g class="edge-labels" font-size="{LABEL_SIZE}" text-anchor="middle">')
    for e, b, _ in routed:
        color = ERROR_COLOR if e.error or e.broken else EDGE_COLOR
        out.append(f'<rect class="edge-label{" error" if e.error else ""}" x="{n(b.cx - b.w / 2 + ox)}" '
                   f'y="{n(b.cy - b.h / 2 + oy)}" width="{n(b.w)}" height="{n(b.h)}" rx="3" fill="#ffffff" '
                   f'stroke="{color}" stroke-width="0.5"/>')
        lines = text_lines((e.label))
        for i, line in enumerate(lines):
            y = b.cy + oy + (i - (len(lines) - 1) / 2) * LABEL_SIZE * 1.25
            out.append(f'<text x="{n(b.cx + ox)}" y="{n(y)}" dominant-baseline="central" fill="{color}">'
                       f"{_x(line)}</text>")
    out.append("</g>")
    return out


def _node(node: GraphNode, b: Box, ox: float, oy: float) -> list[str]:
    """One node: a <g> with its tooltip, its box and its lines of text (name, then type)."""
    n = _num
    if node.start:
        kind, fill, stroke, ink, rx, sw = "start", START_FILL, START_STROKE, START_TEXT, b.h / 2, 2.5
    elif node.in_call:
        kind, fill, stroke, ink, rx, sw = "in-call", CALL_FILL, CALL_STROKE, CALL_TEXT, 10.0, 1.5
    else:
        kind, fill, stroke, ink, rx, sw = "plain", NODE_FILL, NODE_STROKE, NODE_TEXT, 2.0, 1.0
    dash = ""
    if node.broken:  # a flow that does not load: this node is where it breaks
        kind, fill, stroke, ink, sw, dash = kind + " broken", BROKEN_FILL, BROKEN_STROKE, BROKEN_TEXT, 2.0, \
            ' stroke-dasharray="5 3"'
    out = [f'<g class="node {kind}" data-name="{_x(node.name)}" data-type="{_x(node.type)}">',
           f"<title>{_x(node.name)} ({_x(node.type)})</title>",
           f'<rect class="node {kind}" x="{n(b.cx - b.w / 2 + ox)}" y="{n(b.cy - b.h / 2 + oy)}" '
           f'width="{n(b.w)}" height="{n(b.h)}" rx="{n(rx)}" fill="{fill}" stroke="{stroke}" '
           f'stroke-width="{n(sw)}"{dash}/>']
    lines = [(line, NAME_SIZE, ' font-weight="bold"') for line in text_lines((node.title))]
    lines += [(line, TYPE_SIZE, ' font-style="italic"') for line in text_lines((node.type))]
    for i, (line, size, extra) in enumerate(lines):
        y = b.cy + oy + (i - (len(lines) - 1) / 2) * NAME_SIZE * 1.25
        out.append(f'<text x="{n(b.cx + ox)}" y="{n(y)}" dominant-baseline="central" font-size="{size}"'
                   f'{extra} fill="{ink}">{_x(line)}</text>')
    out.append("</g>")
    return out


def to_svg(flow: "Flow") -> str:
    """The flow as an SVG document: title and legend on top, then edges, labels and nodes."""
    nodes, boxes, routed, width, height = layout(flow)
    uid = "cf-" + "".join(ch if ch.isascii() and (ch.isalnum() or ch == "-") else "_" for ch in str(flow.id))
    title = f"{flow.name} ({flow.id})" if str(flow.name) != str(flow.id) else str(flow.id)
    header = MARGIN + TITLE_SIZE + 8 + TYPE_SIZE + 14
    ox, oy = MARGIN, header
    total_w = max(width, text_width(clean_text(title), TITLE_SIZE), text_width(LEGEND, TYPE_SIZE)) + 2 * MARGIN
    total_h = height + header + MARGIN
    out = _head(uid, title, total_w, total_h) + _edges(routed, uid, ox, oy)
    out.append('<g class="nodes" text-anchor="middle">')
    for node in nodes:
        out += _node(node, boxes[node.name], ox, oy)
    out.append("</g>")
    out.append("</svg>")
    return "\n".join(out) + "\n"
