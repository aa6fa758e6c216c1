"""Property: whatever the input, validation answers with diagnostics or a clean flow, never
an exception. Inputs: random text, random YAML, and the bundled flows mutated (keys deleted,
duplicated, renamed or retyped, scalars replaced, lines dropped, duplicated or re-indented)."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.diagnostics import has_errors
from engine.load.build import check_text
from engine.load.yaml_reader import load_text

ROOT = Path(__file__).resolve().parent.parent
FLOW_FILES = sorted(p for p in (ROOT / "flows").glob("*.yaml") if not p.name.endswith((".test.yaml", ".scenario.yaml")))
FLOW_TEXTS = [p.read_text() for p in FLOW_FILES]
FLOW_DATA = [load_text(t, "f.yaml").data for t in FLOW_TEXTS]
DOCUMENTED = set(re.findall(r"^### `([a-z0-9-]+)`", (ROOT / "docs" / "diagnostics.md").read_text(), re.M))
FUZZ = settings(max_examples=int(__import__("os").environ.get("FUZZ_EXAMPLES", "150")), deadline=None, suppress_health_check=[HealthCheck.too_slow])


def assert_answer(text, path="fuzz.yaml") -> None:
    flow, diagnostics = check_text(text, path)
    decoded = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    lines = len(re.split(r"\r\n|\r|\n|\x85|\u2028|\u2029", decoded)) + 1  # YAML's line breaks
    for d in diagnostics:
        assert d.severity in ("error", "warning")
        assert 1 <= d.line <= lines and d.col >= 1, d
        assert d.code in DOCUMENTED, d
        assert d.message and "\n" not in d.message, d
    assert (flow is None) == has_errors(diagnostics)


scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-10**12, 10**12), st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
    st.sampled_from(["{{", "{{ Start.http.params.to }}", "{% if x %}", "+12025551234", "sip:a@b.c", "https://x.io",
                     "no_match", "answered", "Start", "Call", "trigger", "call_out", "{{ Call.call_uuid }}",
                     "X-PH-a", "{{ a | nope }}", "{% include 'x' %}", "hangup", "matches", "(["]),
)
yaml_values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.text(max_size=12), inner, max_size=4)),
    max_leaves=12,
)


@FUZZ
@given(st.text(max_size=400))
def test_random_text(text):
    assert_answer(text)


@FUZZ
@given(st.binary(max_size=300))
def test_random_bytes(data):
    assert_answer(data)


YAML_BITS = ["spec: callflow/v1\n", "id: x\n", "nodes:\n", "  A:\n", "    type: trigger\n", "    next: B\n",
             "  B:\n", "    type: speak\n", "    text: '{{ A.http.params.x }}'\n", "  - a\n", "&a x\n", "*a\n",
             "? [a]\n", ": b\n", "---\n", "    next: {answered: B, busy: A}\n", "    type: call_out\n",
             '    from: "+12025551234"\n', "    to: +12025550100\n", "\t", "  ", "{", "}", "[", "]", ": ", "- ",
             "'", '"', "|\n", ">\n", "!!python/object:os.system\n", "#", "\n"]


@FUZZ
@given(st.lists(st.sampled_from(YAML_BITS), max_size=40))
def test_random_yaml_fragments(bits):
    assert_answer("".join(bits))


@FUZZ
@given(yaml_values)
def test_random_yaml_documents(value):
    assert_answer(yaml.safe_dump(value, allow_unicode=True))


# -- mutations of the bundled flows --------------------------------------------------------------
def _paths(value, path=()):
    yield path
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, path + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, path + (i,))


def _get(value, path):
    for p in path:
        value = value[p]
    return value


@st.composite
def mutated_flows(draw):
    data = copy.deepcopy(draw(st.sampled_from(FLOW_DATA)))
    for _ in range(draw(st.integers(1, 4))):
        paths = [p for p in _paths(data) if p]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = _get(data, path[:-1])
        key = path[-1]
        action = draw(st.sampled_from(["delete", "retype", "rename", "copy", "scalar"]))
        if action == "delete":
            del parent[key]
        elif action == "retype":
            parent[key] = draw(yaml_values)
        elif action == "scalar":
            parent[key] = draw(scalars)
        elif action == "rename" and isinstance(parent, dict):
            parent[draw(st.text(min_size=1, max_size=10))] = parent.pop(key)
        elif action == "copy" and isinstance(parent, dict):
            other = draw(st.sampled_from(paths))
            parent[key] = copy.deepcopy(_get(data, other)) if other[:len(path)] != path else None
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


@FUZZ
@given(mutated_flows())
def test_mutated_flows(text):
    assert_answer(text)


@st.composite
def mutated_text(draw):
    lines = draw(st.sampled_from(FLOW_TEXTS)).splitlines(keepends=True)
    for _ in range(draw(st.integers(1, 5))):
        i = draw(st.integers(0, len(lines) - 1))
        action = draw(st.sampled_from(["drop", "duplicate", "indent", "dedent", "insert", "swap", "cut"]))
        if action == "drop" and len(lines) > 1:
            del lines[i]
        elif action == "duplicate":
            lines.insert(i, lines[i])
        elif action == "indent":
            lines[i] = "  " + lines[i]
        elif action == "dedent":
            lines[i] = lines[i][2:] if lines[i].startswith("  ") else lines[i]
        elif action == "insert":
            at = draw(st.integers(0, len(lines[i])))
            lines[i] = lines[i][:at] + draw(st.text(max_size=6)) + lines[i][at:]
        elif action == "swap":
            j = draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
        elif action == "cut":
            at = draw(st.integers(0, len(lines[i])))
            lines[i] = lines[i][:at] + "\n"
    return "".join(lines)


@FUZZ
@given(mutated_text())
def test_mutated_flow_text(text):
    assert_answer(text)


def test_bundled_flows_are_clean():
    for path, text in zip(FLOW_FILES, FLOW_TEXTS):
        flow, diagnostics = check_text(text, path.name)
        assert flow is not None and diagnostics == [], diagnostics


# -- the graph algorithms behind the checks agree with networkx and brute force -----------------
@st.composite
def digraphs(draw):
    import networkx as nx

    n = draw(st.integers(1, 12))
    edges = draw(st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)), max_size=30))
    g = nx.DiGraph()
    g.add_nodes_from(f"n{i}" for i in range(n))
    g.add_edges_from((f"n{a}", f"n{b}") for a, b in edges)
    return g


@settings(max_examples=int(__import__("os").environ.get("FUZZ_EXAMPLES", "300")), deadline=None)
@given(digraphs(), st.integers(0, 3))
def test_graph_algorithms(g, budget):
    import networkx as nx

    from engine.load.graphs import IndexedGraph, RunsBefore

    fast = IndexedGraph(g)
    root = "n0"
    enter, leave = fast.dominator_intervals(fast.index[root])
    idom = nx.immediate_dominators(g, root)
    reachable = nx.descendants(g, root) | {root}

    def dominates(a, b):  # by networkx: a is on b's idom chain
        while True:
            if a == b:
                return True
            if b == root:
                return False
            b = idom[b]

    for a in reachable:
        for b in reachable:
            ia, ib = fast.index[a], fast.index[b]
            mine = enter[ia] <= enter[ib] and leave[ib] <= leave[ia]
            assert mine == dominates(a, b), (a, b)
    assert {fast.names[i] for i in fast.postorder(fast.index[root])} == reachable
    _, comps = fast.components()
    assert {frozenset(fast.names[i] for i in c) for c in comps} == {frozenset(c) for c in nx.strongly_connected_components(g)}
    questions = [(fast.index[a], fast.index[b]) for a in g for b in g]
    for limit in (None, budget):
        runs = RunsBefore(fast, questions, budget=limit)
        for a in g:
            for b in g:
                truth = b in nx.descendants(g, a) or (a == b and any(a in nx.descendants(g, s) or s == a
                                                                    for s in g.successors(a)))
                assert runs(fast.index[a], fast.index[b]) == truth, (a, b, limit)
