"""`callflow graph`: Mermaid, DOT and SVG drawings of a flow (engine/graph_export.py,
engine/graph_layout.py, engine/graph_svg.py).

Each format is parsed back here (Mermaid and DOT by their statement grammar, SVG as XML)
and checked against the flow: every node and edge, styles, escaping, layout geometry,
determinism across processes.
"""

import hashlib
import os
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET

import networkx as nx
import pytest
from click.testing import CliRunner
from conftest import CALLFLOW, FLOWS, ROOT, flow_text
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_timer_service import REMINDER

from engine.cli import main
from engine.flow import Flow
from engine.graph_export import (
    START_MARK,
    graph_model,
    render,
    to_dot,
    to_mermaid,
)
from engine.graph_svg import to_svg
from engine.load.build import check_text
from engine.node import NodeSpec, NodeType
from engine.registry import node_types

SVG = "{http://www.w3.org/2000/svg}"
BUNDLED = sorted(p for p in FLOWS.glob("*.yaml") if re.search(r"^spec:", p.read_text(), re.M))

# A flow with everything a drawing must cope with: error edges (one beside a plain edge to
# the same node), a self-loop, loops, a branch whose condition and a
# node are both called `end`, and a part that the trigger does not reach.
IVR = """\
Start:
  type: trigger
  next:
    call: Menu
    http: Lookup
Lookup:
  type: http_request
  method: GET
  url: https://example.com/lookup
  error: Fail
  next:
    success: Dial
    failed: Fail
Dial:
  type: call_out
  from: "+12025551234"
  to: "+12025550100"
  next: {answered: Menu, no_answer: Fail, busy: Fail, failed: Fail}
Menu:
  type: get_input
  prompt: Press 1 for sales, 2 for support
  num_digits: 1
  next: {input: Route, no_input: Menu}
Route:
  type: branch
  value: "{{ Menu.digits }}"
  conditions:
    - {name: sales, op: equals, value: "1"}
    - {name: support, op: equals, value: "2"}
    - {name: end, op: equals, value: "3"}
  next: {sales: Sales, support: Support, no_match: Menu, end: Bye}
Sales: {type: speak, text: Hello, next: Bye}
Support: {type: play, url: "https://example.com/a.mp3", error: Bye, next: Pause}
Pause: {type: wait, seconds: 2, next: Menu}
Bye: {type: hangup}
Fail: {type: send_sms, from: "+12025551234", to: "+12025551235", text: sorry}
end: {type: set_variables, values: {a: b}, next: Orphan}
Orphan: {type: set_variables, values: {a: c}}
"""


@pytest.fixture
def ivr(tmp_path):
    path = tmp_path / "ivr.yaml"
    path.write_text(flow_text(IVR, flow_id="ivr"))
    flow, diagnostics = check_text(path.read_text(), str(path))
    assert flow is not None, "\n".join(map(str, diagnostics))
    return flow


def expected_edges(flow):
    """(source, target, outcome, is_error) for every outcome and error edge of the flow."""
    out = set()
    for name, spec in flow.nodes.items():
        for outcome, target in spec.next.items():
            out.add((name, target, outcome, False))
        if spec.error:
            out.add((name, spec.error, "error", True))
    return out


def in_call(flow, name) -> bool:
    """Drawn in-call: needs a call, or call-optional and entered with a call up on every path."""
    need = flow.nodes[name].node_type.needs_call
    return need == "required" or (need == "optional" and flow.call_states.get(name) == {True})


# -- flows built directly, with names no flow file allows --------------------------------------
class Chime(NodeType):
    name = "chime"
    needs_call = "required"


class FakeSpeak(NodeType):  # named like an in-call type, but it says it needs no call
    name = "speak"
    needs_call = "none"


class Soft(NodeType):
    name = "soft"
    needs_call = "optional"
    outcomes = ("done", "skip")


NASTY_NAMES = ["end", 'say "hi"', "x]y[z", "#35;", "%%{init: {}}%%", "<script>alert(1)</script>", "subgraph",
               "click", "style: a#b;", "line\nbreak", "naïve 電話 😀", "a|b", "-->", "`md`", "back\\slash\\",
               "o", "x", "&amp;", "graph", "A-->B", "classDef x fill:#f00;", "n0", "node", "edge"]
NASTY_OUTCOMES = ['q"uote', "end", "pi|pe", "#x;", "two\nlines", "<i>", "error", "%% c", "[x]", "😀"]


def build_flow(names, types, links, errors=(), trigger=None, flow_id="built", name="Built flow"):
    """links: (source, outcome, target); errors: (source, target)."""
    nodes = {n: NodeSpec(name=n, node_type=t, config={}, next={}, error=None, line=i + 1, col=1)
             for i, (n, t) in enumerate(zip(names, types))}
    for source, outcome, target in links:
        nodes[source].next[outcome] = target
    for source, target in errors:
        nodes[source].error = target
    return Flow(id=flow_id, name=name, description="", path="", nodes=nodes, trigger=trigger or names[0],
                graph=nx.DiGraph())


@pytest.fixture
def nasty():
    registry = node_types()
    kinds = [registry["trigger"], registry["speak"], registry["branch"], registry["hangup"], Chime(),
             FakeSpeak(), Soft(), registry["http_request"]]
    names = NASTY_NAMES
    types = [kinds[i % len(kinds)] for i in range(len(names))]
    links, errors = [], []
    for i, n in enumerate(names):
        if i + 1 < len(names):
            links.append((n, NASTY_OUTCOMES[i % len(NASTY_OUTCOMES)], names[i + 1]))
        if i % 3 == 0 and i + 2 < len(names):
            links.append((n, NASTY_OUTCOMES[(i + 3) % len(NASTY_OUTCOMES)], names[i + 2]))
        if i % 4 == 1:
            errors.append((n, names[0]))
    links.append((names[5], "again", names[5]))  # self-loop
    return build_flow(names, types, links, errors, flow_id="nasty-1", name='Nasty "flow" <&> #1')


def all_flows(ivr, nasty):
    from engine.load.build import load_flow

    return [load_flow(p) for p in BUNDLED] + [ivr, nasty]


# -- Mermaid: parsed back by its statement grammar ---------------------------------------------
M_NODE = re.compile(r'^    (n\d+)(\(\[|\(|\[)"([^"]*)"(\]\)|\)|\])$')
M_EDGE = re.compile(r'^    (n\d+) (-->|-\.->)\|"([^"]*)"\| (n\d+)$')
M_CLASSDEF = re.compile(r"^    classDef (\w+) ([\w:#,.-]+)$")
M_CLASS = re.compile(r"^    class (n\d+(?:,n\d+)*) (\w+)$")
M_LINKSTYLE = re.compile(r"^    linkStyle (\d+(?:,\d+)*) ([\w:#,.-]+)$")
M_COMMENT = re.compile(r"^    %% .*$")
M_LABEL = re.compile(r"(?:[A-Za-z0-9 _.,+=/!?@'-]|#quot;|#\d+;|<br/>)*")
SHAPES = {"([": ("])", "start"), "(": (")", "in-call"), "[": ("]", "plain")}


def mermaid_decode(label: str) -> str:
    assert M_LABEL.fullmatch(label), f"unsafe characters in Mermaid label {label!r}"

    def one(m):
        s = m.group(0)
        return '"' if s == "#quot;" else "\n" if s == "<br/>" else chr(int(s[1:-1]))

    return re.sub(r"#quot;|#\d+;|<br/>", one, label)


def parse_mermaid(text: str):
    lines = text.splitlines()
    assert lines[0] == "flowchart TD"
    nodes, edges, classes, classdefs, linkstyles = {}, [], {}, {}, []
    for line in lines[1:]:
        if m := M_NODE.match(line):
            ident, opening, label, closing = m.groups()
            assert ident not in nodes, f"id {ident} declared twice"
            assert SHAPES[opening][0] == closing, line
            nodes[ident] = (SHAPES[opening][1], mermaid_decode(label))
        elif m := M_EDGE.match(line):
            source, arrow, label, target = m.groups()
            edges.append((source, arrow, mermaid_decode(label), target))
        elif m := M_CLASSDEF.match(line):
            classdefs[m.group(1)] = m.group(2)
        elif m := M_CLASS.match(line):
            for ident in m.group(1).split(","):
                assert ident not in classes, f"{ident} in two classes"
                classes[ident] = m.group(2)
        elif m := M_LINKSTYLE.match(line):
            linkstyles += [(int(i), m.group(2)) for i in m.group(1).split(",")]
        else:
            assert M_COMMENT.match(line), f"not a statement this test knows: {line!r}"
    for source, _, _, target in edges:
        assert source in nodes and target in nodes, "an edge refers to an undeclared id"
    assert set(classes) == set(nodes), "every node gets exactly one class"
    assert set(classes.values()) <= set(classdefs)
    return nodes, edges, classes, classdefs, linkstyles


def check_mermaid(flow):
    nodes, edges, classes, classdefs, linkstyles = parse_mermaid(to_mermaid(flow))
    by_name = {}
    for ident, (shape, label) in nodes.items():
        title, _, type_ = label.rpartition("\n")
        name = title.removeprefix(f"{START_MARK} ") if title.startswith(START_MARK) else title
        assert name in flow.nodes and name not in by_name
        by_name[name] = ident
        spec = flow.nodes[name]
        assert type_ == spec.type
        start = name == flow.trigger
        assert title.startswith(START_MARK) == start
        assert shape == ("start" if start else "in-call" if in_call(flow, name) else "plain")
        assert classes[ident] == ("cfStart" if start else "cfInCall" if in_call(flow, name) else "cfNode")
    assert set(by_name) == set(flow.nodes)
    assert len(set(nodes)) == len(nodes) and "end" not in nodes
    name_of = {i: n for n, i in by_name.items()}
    got = {(name_of[s], name_of[t], outcome, arrow == "-.->")
           for s, arrow, label, t in edges for outcome in label.split(", ")}
    assert got == expected_edges(flow)
    dashed = {i for i, e in enumerate(edges) if e[1] == "-.->"}
    assert {i for i, _ in linkstyles} == dashed
    assert all(edges[i][2] == "error" for i in dashed)
    assert "stroke-dasharray" not in classdefs.get("cfInCall", "")


def test_mermaid_bundled_and_generated(ivr, nasty):
    for flow in all_flows(ivr, nasty):
        check_mermaid(flow)


def test_mermaid_survives_nasty_names(nasty):
    text = to_mermaid(nasty)
    body = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith(("classDef", "linkStyle")))
    # nothing a user wrote reaches the output raw: no quote, bracket, pipe, ';', '%', '#x;' of theirs
    for raw in ('say "hi"', "x]y", "a|b", "<script>", "%%{", "fill:#f00", "`md`", "-->B"):
        assert raw not in body
    nodes, edges, *_ = parse_mermaid(text)
    assert len(nodes) == len(NASTY_NAMES) and all(re.fullmatch(r"n\d+", i) for i in nodes)
    # the node named `end` is declared under a generated id and the outcome `end` is a quoted label
    assert any(label.endswith("end\ntrigger") for _, label in nodes.values())
    assert any(label == "end" for _, _, label, _ in edges)


def test_mermaid_ivr_shape(ivr):
    text = to_mermaid(ivr)
    assert text.startswith("flowchart TD\n") and text.endswith("\n")
    nodes, edges, classes, _, linkstyles = parse_mermaid(text)
    ids = {label.split("\n")[0].removeprefix(f"{START_MARK} "): i for i, (_, label) in nodes.items()}
    assert (ids["Lookup"], "-->", "failed", ids["Fail"]) in edges
    assert (ids["Lookup"], "-.->", "error", ids["Fail"]) in edges  # the error edge apart from `failed`
    assert (ids["Dial"], "-->", "no_answer, busy, failed", ids["Fail"]) in edges
    assert (ids["Menu"], "-->", "no_input", ids["Menu"]) in edges
    assert {classes[ids[n]] for n in ("Menu", "Sales", "Support", "Pause", "Bye")} == {"cfInCall"}
    assert {classes[ids[n]] for n in ("Lookup", "Dial", "Route", "Fail", "end", "Orphan")} == {"cfNode"}
    assert len(linkstyles) == 2


# -- DOT -----------------------------------------------------------------------------------------
Q = r'"(?:[^"\\]|\\.)*"'
ATTR = rf"(\w+)=({Q}|[\w.#]+)"
ATTRS = rf"\[{ATTR}(?:, {ATTR})*\]"
D_NODE = re.compile(rf"^    ({Q}) ({ATTRS});$")
D_EDGE = re.compile(rf"^    ({Q}) -> ({Q}) ({ATTRS});$")
D_DEFAULTS = re.compile(rf"^    (graph|node|edge) ({ATTRS});$")
D_RANK = re.compile(rf"^    \{{ rank=source; ({Q}); \}}$")


def dot_unquote(s: str) -> str:
    assert s[0] == s[-1] == '"'
    return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), s[1:-1], flags=re.S)


def dot_attrs(text: str) -> dict:
    return {k: dot_unquote(v) if v.startswith('"') else v for k, v in re.findall(ATTR, text)}


def parse_dot(text: str):
    lines = text.splitlines()
    assert re.fullmatch(rf"digraph {Q} \{{", lines[0]) and lines[-1] == "}"
    nodes, edges, source_rank = {}, [], []
    for line in lines[1:-1]:
        if m := D_EDGE.match(line):
            edges.append((dot_unquote(m.group(1)), dot_unquote(m.group(2)), dot_attrs(m.group(3))))
        elif m := D_NODE.match(line):
            name = dot_unquote(m.group(1))
            assert name not in nodes
            nodes[name] = dot_attrs(m.group(2))
        elif m := D_RANK.match(line):
            source_rank.append(dot_unquote(m.group(1)))
        else:
            assert D_DEFAULTS.match(line), f"not a DOT statement this test knows: {line!r}"
    for s, t, _ in edges:
        assert s in nodes and t in nodes
    return nodes, edges, source_rank


def check_dot(flow):
    nodes, edges, source_rank = parse_dot(to_dot(flow))
    assert set(nodes) == set(flow.nodes)
    assert source_rank == [flow.trigger]
    for name, attrs in nodes.items():
        spec = flow.nodes[name]
        start = name == flow.trigger
        assert attrs["label"] == f"{START_MARK + ' ' if start else ''}{name}\n{spec.type}"
        if start:
            assert attrs["shape"] == "ellipse"
        elif in_call(flow, name):
            assert attrs["style"] == "rounded,filled" and attrs["fillcolor"] == "#dbeafe"
        else:
            assert "style" not in attrs and "fillcolor" not in attrs  # the defaults
    got = {(s, t, outcome, a.get("style") == "dashed") for s, t, a in edges for outcome in a["label"].split(", ")}
    assert got == expected_edges(flow)
    assert all(a["label"] == "error" for _, _, a in edges if a.get("style") == "dashed")


def test_dot_bundled_and_generated(ivr, nasty):
    for flow in all_flows(ivr, nasty):
        check_dot(flow)


def test_dot_escapes_quotes_and_backslashes(nasty):
    text = to_dot(nasty)
    assert '"say \\"hi\\"" [label="say \\"hi\\"\\nspeak"' in text
    assert '"back\\\\slash\\\\" [' in text
    assert '"line\\nbreak"' in text


def test_dot_parses_with_pydot(ivr, nasty):
    pydot = pytest.importorskip("pydot")
    for flow in (ivr, nasty):
        graphs = pydot.graph_from_dot_data(to_dot(flow))
        assert graphs and len(graphs) == 1
        g = graphs[0]
        names = [n.get_name() for n in g.get_nodes() if n.get_name() not in ("graph", "node", "edge")]
        names += [n.get_name() for sub in g.get_subgraphs() for n in sub.get_nodes()]
        assert {dot_unquote(n) for n in names} == set(flow.nodes)
        assert len(g.get_edges()) == len(graph_model(flow)[1])


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz is not installed")
def test_dot_renders_with_graphviz(ivr, nasty):
    for flow in (ivr, nasty):
        p = subprocess.run(["dot", "-Tsvg"], input=to_dot(flow).encode(), capture_output=True, timeout=60)
        assert p.returncode == 0 and not p.stderr, p.stderr
        root = ET.fromstring(p.stdout)
        titles = [t.text for g in root.iter(f"{SVG}g") if g.get("class") == "node" for t in g.iter(f"{SVG}title")]
        assert len(titles) == len(flow.nodes)


# -- SVG -----------------------------------------------------------------------------------------
def classes(element) -> list[str]:
    return (element.get("class") or "").split()


def rect(element) -> tuple[float, float, float, float]:
    return tuple(float(element.get(k)) for k in ("x", "y", "width", "height"))


def path_points(d: str) -> list[tuple[float, float]]:
    assert re.fullmatch(r"M-?[\d.]+,-?[\d.]+(?: L-?[\d.]+,-?[\d.]+)+", d), d
    return [(float(x), float(y)) for x, y in re.findall(r"(-?[\d.]+),(-?[\d.]+)", d)]


def overlap(a, b) -> bool:
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


def crosses(p, q, r, inset=0.5) -> bool:
    """Does segment p-q pass through the inside of rectangle r (shrunk by `inset`)?"""
    x0, y0, x1, y1 = r[0] + inset, r[1] + inset, r[0] + r[2] - inset, r[1] + r[3] - inset
    t0, t1 = 0.0, 1.0
    dx, dy = q[0] - p[0], q[1] - p[1]
    for den, num in ((-dx, p[0] - x0), (dx, x1 - p[0]), (-dy, p[1] - y0), (dy, y1 - p[1])):
        if den == 0:
            if num < 0:
                return False
        else:
            t = num / den
            if den < 0:
                t0 = max(t0, t)
            else:
                t1 = min(t1, t)
    return t0 < t1 - 1e-9


def on_border(p, r, tol=0.11) -> bool:
    x, y = p
    inside = r[0] - tol <= x <= r[0] + r[2] + tol and r[1] - tol <= y <= r[1] + r[3] + tol
    deep = r[0] + tol < x < r[0] + r[2] - tol and r[1] + tol < y < r[1] + r[3] - tol
    return inside and not deep


def parse_svg(text: str):
    root = ET.fromstring(text.encode("utf-8"))
    assert root.tag == f"{SVG}svg"
    nodes = {}
    for g in root.iter(f"{SVG}g"):
        if "node" in classes(g):
            rects = [r for r in g.iter(f"{SVG}rect") if "node" in classes(r)]
            assert len(rects) == 1
            assert g.get("data-name") not in nodes
            nodes[g.get("data-name")] = (g, rect(rects[0]), classes(rects[0]))
    labels = [rect(r) for r in root.iter(f"{SVG}rect") if "edge-label" in classes(r)]
    paths = [p for p in root.iter(f"{SVG}path") if "edge" in classes(p)]
    return root, nodes, labels, paths


def check_svg(flow):
    text = to_svg(flow)
    root, nodes, labels, paths = parse_svg(text)
    assert set(nodes) == set(flow.nodes)
    for name, (g, _, cls) in nodes.items():
        spec = flow.nodes[name]
        assert g.get("data-type") == spec.type
        texts = ["".join(t.itertext()) for t in g.iter(f"{SVG}text")]
        assert "\n".join(texts).endswith(f"{name}\n{spec.type}")
        kind = "start" if name == flow.trigger else "in-call" if in_call(flow, name) else "plain"
        assert kind in cls
    start_rect = nodes[flow.trigger][1]
    assert float(nodes[flow.trigger][0].find(f"{SVG}rect").get("rx")) == pytest.approx(start_rect[3] / 2, abs=0.1)
    boxes = [r for _, r, _ in nodes.values()] + labels
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            assert not overlap(a, b), (a, b)
    ids = {e.get("id") for e in root.iter() if e.get("id")}
    got = set()
    for p in paths:
        source, target = p.get("data-source"), p.get("data-target")
        error = "error" in classes(p)
        assert (p.get("stroke-dasharray") is not None) == error
        assert p.get("marker-end", "").startswith("url(#") and p.get("marker-end")[5:-1] in ids
        for outcome in p.get("data-outcomes").split(", "):
            got.add((source, target, outcome, error))
        points = path_points(p.get("d"))
        assert on_border(points[0], nodes[source][1]) and on_border(points[-1], nodes[target][1])
        for q0, q1 in zip(points, points[1:]):
            for name, (_, r, _) in nodes.items():
                assert not crosses(q0, q1, r), f"edge {source}->{target} crosses node {name}"
    assert got == expected_edges(flow)
    assert len(labels) == len(paths)
    return text


def test_svg_bundled_and_generated(ivr, nasty):
    for flow in all_flows(ivr, nasty):
        check_svg(flow)


def test_svg_is_self_contained(ivr):
    text = to_svg(ivr)
    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?>\n<svg xmlns="http://www.w3.org/2000/svg"')
    for outside in ("http://", "https://", "@import", "url(http", "xlink:href", "<image", "<style", "<script"):
        assert outside not in text.replace('xmlns="http://www.w3.org/2000/svg"', "")
    root = ET.fromstring(text.encode())
    w, h = float(root.get("width")), float(root.get("height"))
    assert root.get("viewBox") == f"0 0 {root.get('width')} {root.get('height')}"
    for r in root.iter(f"{SVG}rect"):
        x, y, rw, rh = rect(r)
        assert 0 <= x and 0 <= y and x + rw <= w + 0.05 and y + rh <= h + 0.05


def test_svg_escapes_nasty_names(nasty):
    text = check_svg(nasty)
    assert "<script>" not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert 'data-name="say &quot;hi&quot;"' in text


def test_svg_box_widths_follow_the_text():
    t = node_types()
    short, long_ = "A", "A" + "b" * 60
    flow = build_flow(["S", short, long_], [t["trigger"], t["set_variables"], t["set_variables"]],
                      [("S", "http", short), ("S", "call", long_)])
    _, nodes, _, _ = parse_svg(to_svg(flow))
    assert nodes[long_][1][2] > 60 * 11 * 0.6 > nodes[short][1][2]


def test_svg_is_byte_identical_across_runs_and_processes(tmp_path, ivr):
    path = tmp_path / "ivr.yaml"
    path.write_text(flow_text(IVR, flow_id="ivr"))
    first, second = to_svg(ivr), to_svg(check_text(path.read_text(), str(path))[0])
    assert first == second
    digests = set()
    for seed in ("0", "4242"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        p = subprocess.run([*CALLFLOW, "graph", str(path), "--format", "svg"], capture_output=True, env=env,
                           cwd=ROOT, timeout=60)
        assert p.returncode == 0, p.stderr
        digests.add(hashlib.sha256(p.stdout).hexdigest())
    assert digests == {hashlib.sha256(first.encode()).hexdigest()}


def test_custom_node_types_styled_by_call_not_by_name():
    t = node_types()
    flow = build_flow(["Go", "Ding", "Fake", "Maybe"], [t["trigger"], Chime(), FakeSpeak(), Soft()],
                      [("Go", "http", "Ding"), ("Ding", "done", "Fake"), ("Fake", "done", "Maybe")])
    flow.call_states = {"Maybe": frozenset({True})}  # what validation proves of a flow file
    nodes, _, classes_, _, _ = parse_mermaid(to_mermaid(flow))
    by_name = {label.split("\n")[0]: ident for ident, (_, label) in nodes.items()}
    assert classes_[by_name["Ding"]] == "cfInCall" and classes_[by_name["Maybe"]] == "cfInCall"
    assert classes_[by_name["Fake"]] == "cfNode"  # called speak, but call: none
    dot_nodes, _, _ = parse_dot(to_dot(flow))
    assert dot_nodes["Fake"].get("fillcolor") is None and dot_nodes["Ding"]["fillcolor"] == "#dbeafe"
    _, svg_nodes, _, _ = parse_svg(to_svg(flow))
    assert "plain" in svg_nodes["Fake"][2] and "in-call" in svg_nodes["Maybe"][2]


# tests/test_timer_service.py's flow: a timer, a call, then a wait in the call; Done reached both ways
WAITS = REMINDER.replace("next: {answered: Greet}", "next: {answered: Pause, busy: Done}").replace(
    "  Greet:", "  Pause:\n    type: wait\n    seconds: 2\n    next: Greet\n  Greet:")


def test_call_optional_nodes_are_drawn_in_call_only_where_every_path_has_a_call_up():
    flow, diags = check_text(WAITS, "waits.yaml")
    assert flow is not None, diags
    kinds = {name: cls for name, (_, _, cls) in parse_svg(to_svg(flow))[1].items()}
    # Later is a timer (no call yet), Pause silence in the call, Done reached both ways
    assert ["in-call" in kinds[n] for n in ("Later", "Pause", "Greet", "Done", "Call")] == [False, True, True, False, False]
    _, _, classes_, _, _ = parse_mermaid(to_mermaid(flow))
    assert sorted(n for n, c in classes_.items() if c == "cfInCall") == ["n3", "n4"]  # Pause, Greet (file order)
    dot_nodes, _, _ = parse_dot(to_dot(flow))
    assert dot_nodes["Later"].get("fillcolor") is None and dot_nodes["Pause"]["fillcolor"] == "#dbeafe"


def test_trigger_on_top_even_when_a_path_loops_back_to_it():
    t = node_types()
    flow = build_flow(["Z", "A", "B", "S"], [t["speak"], t["speak"], t["speak"], t["trigger"]],
                      [("S", "http", "A"), ("A", "done", "B"), ("B", "done", "S"), ("Z", "done", "S")], trigger="S")
    check_svg(flow)
    _, nodes, _, _ = parse_svg(to_svg(flow))
    top = {name: r[1] for name, (_, r, _) in nodes.items()}
    assert top["S"] < top["A"] < top["B"]


def test_single_node_flow():
    flow = build_flow(["Only"], [node_types()["trigger"]], [])
    check_mermaid(flow)
    check_dot(flow)
    check_svg(flow)


# random flows: any shape of graph lays out without overlaps or edges through boxes
@st.composite
def random_flows(draw):
    t = node_types()
    kinds = [t["trigger"], t["speak"], t["branch"], t["hangup"], t["set_variables"], t["get_input"]]
    n = draw(st.integers(1, 14))
    names = [f"N{i}" for i in range(n)]
    types = [kinds[0]] + [draw(st.sampled_from(kinds[1:])) for _ in range(n - 1)]
    links = [(names[s], f"o{k}", names[d]) for s in range(n) for k in range(draw(st.integers(0, 3)))
             for d in [draw(st.integers(0, n - 1))]]
    errors = [(names[s], names[draw(st.integers(0, n - 1))]) for s in range(n) if draw(st.booleans())]
    trigger = names[draw(st.integers(0, n - 1))]
    return build_flow(names, types, links, errors, trigger=trigger)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_flows())
def test_random_flows_lay_out_cleanly(flow):
    assert check_svg(flow) == to_svg(flow)
    check_mermaid(flow)
    check_dot(flow)


# -- CLI -----------------------------------------------------------------------------------------
def cli(*args):
    try:
        runner = CliRunner(mix_stderr=False)
    except TypeError:  # click >= 8.2 keeps stderr apart anyway
        runner = CliRunner()
    return runner.invoke(main, list(args))


def test_cli_defaults_to_mermaid_on_stdout(ivr):
    r = cli("graph", ivr.path)
    assert r.exit_code == 0, r.stderr
    assert r.stdout == to_mermaid(ivr)


@pytest.mark.parametrize("fmt", ["mermaid", "dot", "svg"])
def test_cli_writes_output_file(tmp_path, ivr, fmt):
    out = tmp_path / f"drawing.{fmt}"
    r = cli("graph", ivr.path, "--format", fmt, "-o", str(out))
    assert r.exit_code == 0, r.stderr
    assert r.stdout == ""
    assert out.read_bytes() == render(ivr, fmt).encode("utf-8")


def test_cli_draws_an_invalid_flow_marking_the_broken_parts(tmp_path):
    """An invalid flow is drawn as far as it parses (exit 1, diagnostics on stderr): a dangling
    edge ends at a red "missing" node, a node of an unknown type is red and says so."""
    bad = tmp_path / "bad.yaml"
    bad.write_text(flow_text("Start:\n  type: trigger\n  next: {http: Greet}\n"
                             "Greet:\n  type: speek\n  text: hi\n  next: Nowhere\n"))
    out = tmp_path / "out.svg"
    r = cli("graph", str(bad), "--format", "svg", "-o", str(out))
    assert r.exit_code == 1
    assert f"{bad}:" in r.stderr and "unknown-node" in r.stderr and "unknown-node-type" in r.stderr
    assert r.stdout == ""
    svg = ET.fromstring(out.read_text())
    ns = {"s": "http://www.w3.org/2000/svg"}
    broken = {g.get("data-name"): g.get("data-type") for g in svg.iterfind(".//s:g[@data-name]", ns)
              if "broken" in g.get("class")}
    assert broken == {"Greet": "speek (unknown type)", "Nowhere": "missing"}
    edges = {(p.get("data-source"), p.get("data-target")): p.get("class") for p in svg.iterfind(".//s:path", ns)
             if p.get("data-source")}
    assert edges == {("Start", "Greet"): "edge", ("Greet", "Nowhere"): "edge broken"}
    mermaid = cli("graph", str(bad))
    assert mermaid.exit_code == 1 and "class n1,n2 cfBroken" in mermaid.stdout
    assert '-.->|"next"| n2' in mermaid.stdout and "Nowhere<br/>missing" in mermaid.stdout
    dot = cli("graph", str(bad), "--format", "dot")
    assert '"Greet" -> "Nowhere" [label="next", style=dashed' in dot.stdout


def test_cli_with_nothing_to_draw_exits_2(tmp_path):
    r = cli("graph", str(tmp_path / "missing.yaml"))
    assert r.exit_code == 2 and "unreadable" in r.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("spec: callflow/v1\nnodes: [\n")
    r = cli("graph", str(bad))
    assert r.exit_code == 2 and "yaml-syntax" in r.stderr and "nothing to draw" in r.stderr and r.stdout == ""


def test_cli_rejects_unknown_format(ivr):
    r = cli("graph", ivr.path, "--format", "png")
    assert r.exit_code == 2


def test_cli_in_a_real_process(tmp_path):
    out = tmp_path / "seed.dot"
    seed = FLOWS / "outbound-sip-headers.yaml"
    p = subprocess.run([*CALLFLOW, "graph", str(seed), "--format", "dot", "-o", str(out)], capture_output=True,
                       text=True, cwd=ROOT, timeout=60)
    assert p.returncode == 0, p.stderr
    nodes, edges, _ = parse_dot(out.read_text())
    assert set(nodes) == {"Start", "Call", "Greet", "Done"}
    assert ("Call", "Done", {"label": "no_answer, busy, failed"}) in edges


def test_every_edge_ends_straight_into_its_target_so_the_arrowhead_shows():
    """A loop-back edge used to arrive at a shallow angle: its arrowhead lay under the target's
    border and read as going the other way. Every edge now ends with a vertical stretch."""
    from engine.graph_layout import ARROW_STUB, layout
    from engine.load.build import load_flow

    for path in sorted(FLOWS.glob("*.yaml")):
        if path.name.endswith((".test.yaml", ".scenario.yaml")):
            continue
        _, boxes, routed, _, _ = layout(load_flow(path))
        for edge, _, points in routed:
            (xa, ya), (xb, yb) = points[-2], points[-1]
            target = boxes[edge.target]
            assert xa == xb and abs(yb - target.cy) == target.h / 2, (path.name, edge)
            assert abs(yb - ya) >= ARROW_STUB, (path.name, edge)


def test_a_loop_back_edge_runs_straight_to_its_target_through_its_label():
    """Retry -> Menu (done) goes up: its label sits between the two, and the path never turns
    back down (it used to run down to its label below Retry, then all the way up)."""
    from engine.graph_layout import layout
    from engine.load.build import load_flow

    _, boxes, routed, _, _ = layout(load_flow(FLOWS / "ivr-order-status.yaml"))
    (edge, label, points), = [r for r in routed if (r[0].source, r[0].target) == ("Retry", "Menu")]
    assert boxes["Menu"].cy < label.cy < boxes["Retry"].cy
    ys = [y for _, y in points]
    assert all(b <= a for a, b in zip(ys, ys[1:])), points
