"""The fast path for simple templates agrees with Liquid.

`templating.compile` accepts a strict subset of Liquid without parsing it (Liquid parses it
at first render) and `references` reads references and filters from it with regular
expressions. Property: whatever the subset accepts, Liquid parses, and the static analysis
of both ways is the same."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.load.references import _analyze, _analyze_outputs, _analyze_simple
from engine.templating import is_simple, templates

FAST = settings(max_examples=int(__import__("os").environ.get("FUZZ_EXAMPLES", "400")), deadline=None, suppress_health_check=[HealthCheck.too_slow])

ident = st.from_regex(r"[A-Za-z_](?:[A-Za-z0-9_-]{0,6}[A-Za-z0-9_])?", fullmatch=True)
string = st.one_of(st.from_regex(r"'[^'\\{}\n]{0,8}'", fullmatch=True),
                   st.from_regex(r'"[^"\\{}\n]{0,8}"', fullmatch=True))
number = st.from_regex(r"-?[0-9]{1,4}(\.[0-9]{1,3})?", fullmatch=True)
segment = st.one_of(ident.map(lambda i: "." + i), st.integers(0, 99).map(lambda i: f"[{i}]"),
                    string.map(lambda s: f"[{s}]"))
# A path's root is never a Liquid word ({{ if }} is not a variable read; the simple subset leaves it to Liquid).
WORDS = {"true", "false", "nil", "null", "empty", "blank", "and", "or", "not", "contains", "in", "with", "as",
         "for", "if", "else"}
root = ident.filter(lambda i: i not in WORDS)
path = st.builds(lambda root, segs: root + "".join(segs), root, st.lists(segment, max_size=4))
arg = st.one_of(string, number, st.sampled_from(["true", "false", "nil"]), path)
spaces = st.sampled_from(["", " ", "  "])
filter_ = st.builds(lambda s1, name, args, s2: f"{s1}|{s2}{name}" + (": " + ", ".join(args) if args else ""),
                    spaces, st.sampled_from(["default", "upcase", "plus", "append", "size", "nosuch", "date"]),
                    st.lists(arg, max_size=3), spaces)
output = st.builds(lambda s1, left, filters, s2: "{{" + s1 + left + "".join(filters) + s2 + "}}",
                   spaces, st.one_of(path, string, number), st.lists(filter_, max_size=3), spaces)
text = st.from_regex(r"[^{]{0,10}", fullmatch=True)
simple = st.builds(lambda parts, tail: "".join(t + o for t, o in parts) + tail,
                   st.lists(st.tuples(text, output), min_size=1, max_size=4), text)


def _order(ref):
    return ref[1], repr(ref[0])


def liquid_view(source: str):
    """Liquid's own analysis, in the shape ours has."""
    bound = templates.parse(source)
    analysis = bound.analyze()
    refs = sorted(((tuple(s if isinstance(s, (str, int)) else None for s in v.segments), v.span.index)
                   for found in analysis.globals.values() for v in found), key=_order)
    filters = sorted((name, span.index) for name, spans in analysis.filters.items() for span in spans)
    return refs, filters


@FAST
@given(simple)
def test_simple_templates_are_recognised_parsed_and_read_alike(source):
    assert is_simple(source), source
    refs, filters = liquid_view(source)  # Liquid parses it
    mine = _analyze_simple(source)
    assert sorted(((r.segments, r.index) for r in mine.refs), key=_order) == refs
    assert sorted(mine.filters) == filters
    # and the guards agree with the AST walk of the parsed template
    assert mine == _analyze_outputs(templates.parse(source))


@FAST
@given(st.text(alphabet=st.sampled_from(list("{}%|:.,[]'\"-_ aZ0-9\n")), max_size=30))
def test_whatever_the_subset_accepts_liquid_parses(source):
    if is_simple(source):
        liquid_view(source)


@FAST
@given(st.one_of(simple, st.text(max_size=40)))
def test_compile_defers_only_simple_templates(source):
    try:
        template = templates.compile(source)
    except Exception:  # noqa: BLE001 - a syntax error: only non-simple sources may raise
        assert not is_simple(source)
        return
    if not is_simple(source):
        assert template.parsed  # parsed (and checked) now; simple ones may wait for their first render
    info = _analyze(template)
    assert sorted(((r.segments, r.index) for r in info.refs), key=_order) == liquid_view(source)[0]


def test_not_simple_examples():
    for source in ["{{ true }}", "{{ a | t: k: v }}", "{% if a %}x{% endif %}", "{{- a }}", "{{ a -}}",
                   "{{ a == b }}", "{{ (1..3) }}", "{{ a[b] }}", "{{ 'a\\'b' }}", "{{ a }", "{{ '}}' }}",
                   "{{ a\n}}", "{{ nil | default: 1 }}", "{{A.or}}"]:
        assert not is_simple(source), source


def test_a_deferred_template_renders_like_a_parsed_one():
    source = "Hi {{ A.name | default: 'you' | upcase }} #{{ A.n | plus: 1 }}"
    deferred = templates.compile(source)
    assert not deferred.parsed
    assert deferred.render({"A": {"n": 1}}) == "Hi YOU #2"
    assert deferred.parsed
