"""Flow loading: every problem is a diagnostic with its line:col, all at once, never a traceback."""

import pytest
from conftest import FLOWS

from engine.errors import FlowInvalid
from engine.load.build import check_file, check_text, load_flow
from engine.load.document import MAX_FLOW_BYTES


def codes(diagnostics):
    return [(d.line, d.col, d.severity, d.code) for d in diagnostics]


def check(text):
    flow, diagnostics = check_text(text, "f.yaml")
    return flow, diagnostics


def test_bundled_flows_are_valid():
    for path in FLOWS.glob("*.yaml"):
        if path.name.endswith((".test.yaml", ".scenario.yaml")):
            continue
        flow = load_flow(path)
        assert flow.nodes[flow.trigger].type == "trigger"


def test_duplicate_key_unquoted_number_and_dangling_next_all_reported():
    text = """spec: callflow/v1
id: broken
nodes:
  Start:
    type: trigger
    next: Call
  Call:
    type: call_out
    from: +12025551234
    to: "+12025550100"
    to: "+12025550101"
    next:
      answered: Greet
  Greet:
    type: speak
    text: hi
    next: Nowhere
"""
    flow, diagnostics = check(text)
    assert flow is None
    got = codes(diagnostics)
    assert (9, 11, "error", "unquoted-number") in got
    assert (11, 5, "error", "duplicate-key") in got
    assert (17, 11, "error", "unknown-node") in got
    dangling = next(d for d in diagnostics if d.code == "unknown-node")
    assert "'Nowhere'" in dangling.message
    assert str(dangling) == "f.yaml:17:11: error unknown-node next 'done' goes to 'Nowhere', which is not a node"


def test_anchor_and_alias_refused_at_their_positions():
    text = 'spec: callflow/v1\nid: a\nx: &big [1, 2]\ny: *big\nnodes: {}\n'
    _, diagnostics = check(text)
    got = codes(diagnostics)
    assert (3, 4, "error", "yaml-anchor") in got
    assert (4, 4, "error", "yaml-alias") in got


def test_billion_laughs_is_refused_quickly():
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 10):
        lines.append(f"a{i}: &a{i} [" + ",".join([f"*a{i-1}"] * 9) + "]")
    flow, diagnostics = check("\n".join(lines) + "\n")
    assert flow is None
    assert sum(d.code == "yaml-alias" for d in diagnostics) == 81


def test_unknown_key_suggests_the_close_one():
    _, diagnostics = check("""spec: callflow/v1
id: a
nodes:
  Start:
    type: trigger
    next: Say
  Say:
    type: speak
    txt: hello
""")
    unknown = [d for d in diagnostics if d.code == "unknown-key"]
    assert [(d.line, d.col) for d in unknown] == [(9, 5)]
    assert "did you mean 'text'" in unknown[0].message
    missing = [d for d in diagnostics if d.code == "missing-key"]
    assert missing and "'text'" in missing[0].message


def test_wrong_types_and_missing_required_keys():
    _, diagnostics = check("""spec: callflow/v1
id: a
nodes:
  Start:
    type: trigger
    required: to
    next: Call
  Call:
    type: call_out
    from: "+12025551234"
    ring_timeout: soon
    next: {answered: Done}
  Done:
    type: hangup
""")
    got = codes(diagnostics)
    assert (6, 15, "error", "wrong-type") in got  # required must be a list
    assert (11, 19, "error", "wrong-type") in got  # ring_timeout must be an integer
    assert any(c == "missing-key" and "'to'" in d.message for d, c in zip(diagnostics, [x.code for x in diagnostics]))


def test_missing_top_level_keys_and_bad_spec_version():
    _, diagnostics = check("spec: callflow/v9\nname: x\n")
    messages = {d.code: d for d in diagnostics}
    assert messages["spec-version"].line == 1 and messages["spec-version"].col == 7
    assert {d.message for d in diagnostics if d.code == "missing-key"} == {
        "missing required key 'id'", "missing required key 'nodes'"}


def test_syntax_error_has_a_position():
    _, diagnostics = check("spec: callflow/v1\nnodes: [1, 2\nid: x\n")
    assert codes(diagnostics)[0][2:] == ("error", "yaml-syntax")
    assert diagnostics[0].line >= 2


def test_file_over_one_mebibyte_refused_without_parsing(tmp_path):
    big = tmp_path / "big.yaml"
    big.write_text("# " + "x" * MAX_FLOW_BYTES + "\n")
    flow, diagnostics = check_file(big)
    assert flow is None
    assert [d.code for d in diagnostics] == ["file-too-large"]
    _, diagnostics = check_text("#" * (MAX_FLOW_BYTES + 1), "big.yaml")
    assert [d.code for d in diagnostics] == ["file-too-large"]


def test_exactly_one_trigger():
    _, diagnostics = check("spec: callflow/v1\nid: a\nnodes:\n  A: {type: speak, text: hi}\n")
    assert "trigger-count" in [d.code for d in diagnostics]
    _, diagnostics = check("spec: callflow/v1\nid: a\nnodes:\n  A: {type: trigger}\n  B: {type: trigger}\n")
    tc = [d for d in diagnostics if d.code == "trigger-count"]
    assert tc and (tc[0].line, tc[0].col) == (5, 3)


def test_undeclared_outcome_named_with_suggestion():
    _, diagnostics = check("""spec: callflow/v1
id: a
nodes:
  Start: {type: trigger, next: Call}
  Call:
    type: call_out
    from: "+12025551234"
    to: "+12025550100"
    next: {anwsered: Done}
  Done: {type: hangup}
""")
    d = next(d for d in diagnostics if d.code == "unknown-outcome")
    assert (d.line, d.col) == (9, 12)
    assert "did you mean 'answered'" in d.message


def test_in_call_node_reachable_without_a_call():
    _, diagnostics = check("""spec: callflow/v1
id: a
nodes:
  Start: {type: trigger, next: Call}
  Call:
    type: call_out
    from: "+12025551234"
    to: "+12025550100"
    next: {answered: Greet, busy: Greet}
  Greet: {type: speak, text: hi}
""")
    d = next(d for d in diagnostics if d.code == "needs-call")
    assert (d.line, d.col) == (10, 3)
    assert "Call.busy" in d.message


def test_unreachable_node_is_a_warning_and_the_flow_still_loads():
    flow, diagnostics = check("spec: callflow/v1\nid: a\nnodes:\n  Start: {type: trigger}\n  Lost: {type: hangup}\n")
    assert flow is not None
    assert codes(diagnostics) == [(5, 3, "warning", "unreachable-node")]


def test_template_syntax_and_unknown_node_point_inside_the_string():
    _, diagnostics = check("""spec: callflow/v1
id: a
nodes:
  Start: {type: trigger, next: Call}
  Call:
    type: call_out
    from: "{{ Strat.http.params.from }}"
    to: "{{ Start.http.params.to | nosuchfilter }}"
    caller_name: "{{ Start.http.params.name "
    next: {answered: Done}
  Done: {type: hangup}
""")
    by_code = {d.code: d for d in diagnostics}
    assert (by_code["unknown-variable"].line, by_code["unknown-variable"].col) == (7, 15)
    assert "did you mean 'Start'" in by_code["unknown-variable"].message
    assert (by_code["unknown-filter"].line, by_code["unknown-filter"].col) == (8, 36)
    assert by_code["template-syntax"].line == 9


def test_sip_header_rules():
    _, diagnostics = check("""spec: callflow/v1
id: a
nodes:
  Start: {type: trigger, next: Call}
  Call:
    type: call_out
    from: "+12025551234"
    to: "+12025550100"
    sip_headers:
      X-PH-customer: abc
      plan: gold-plus
    next: {answered: Done}
  Done: {type: hangup}
""")
    got = codes(diagnostics)
    assert (10, 7, "error", "invalid-name") in got
    assert (11, 13, "error", "sip-header-value") in got


def test_phone_numbers_must_be_e164_or_sip():
    _, diagnostics = check("""spec: callflow/v1
id: a
nodes:
  Start: {type: trigger, next: Call}
  Call:
    type: call_out
    from: "12025551234"
    to: ["sip:alice@example.com", "call me"]
    next: {answered: Done}
  Done: {type: hangup}
""")
    phones = [d for d in diagnostics if d.code == "invalid-phone"]
    assert [(d.line, d.col) for d in phones] == [(7, 11), (8, 35)]
    assert "'+12025551234'" in phones[0].message


@pytest.mark.parametrize("text", [
    "", "[]", "nodes: 3", "spec: callflow/v1\nid: x\nnodes:\n  A: 3\n", "spec: callflow/v1\nid: x\nnodes:\n  A: {}\n",
    "spec: callflow/v1\nid: x\nnodes:\n  A: {type: [1]}\n", "? [a]\n: 1\n", "!!python/object:os.system {}\n",
    "a: !!binary xyz\n", "\xff\xfe", "---\na: 1\n---\nb: 2\n", "spec: callflow/v1\nid: x\nnodes:\n  1: {type: trigger}\n",
])
def test_garbage_gives_diagnostics_not_tracebacks(text):
    flow, diagnostics = check_text(text.encode("latin-1") if "\xff" in text else text, "g.yaml")
    assert flow is None
    assert diagnostics and all(d.line >= 1 and d.col >= 1 for d in diagnostics)


def test_load_flow_raises_with_every_diagnostic(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("spec: callflow/v1\nid: Bad_Id\nnodes: {}\n")
    with pytest.raises(FlowInvalid) as info:
        load_flow(bad)
    assert {d.code for d in info.value.diagnostics} == {"invalid-id", "no-nodes"}
    assert str(bad) in str(info.value)


def test_byte_order_mark_does_not_shift_columns():
    text = "\ufeffspec: callflow/v1\nid: a\nnodes:\n  S: {type: trigger}\n  S: {type: trigger}\n"
    _, diagnostics = check_text(text.encode("utf-8"), "bom.yaml")
    assert [(d.line, d.col, d.code) for d in diagnostics] == [(5, 3, "duplicate-key")]


def test_routing_an_outcome_the_node_cannot_take_is_a_warning():
    text = """spec: callflow/v1
id: a
nodes:
  Start: {type: trigger, next: Call}
  Call:
    type: call_out
    from: "+12025551234"
    to: "+12025550100"
    next: {answered: Done, machine: Done}
  Done: {type: hangup}
"""
    flow, diagnostics = check_text(text, "f.yaml")
    assert flow is not None
    assert codes(diagnostics) == [(9, 28, "warning", "impossible-outcome")]
    flow, diagnostics = check_text(text.replace('    next:', '    machine_detection: true\n    next:'), "f.yaml")
    assert diagnostics == []


def test_a_template_where_a_mapping_or_list_belongs_is_a_wrong_type():
    _, diagnostics = check("""spec: callflow/v1
id: a
nodes:
  Start: {type: trigger, required: "{{ x }}", next: Call}
  Call:
    type: call_out
    from: "+12025551234"
    to: "{{ Start.http.params.to }}"
    sip_headers: "{{ Start.http.params.h }}"
    next: {answered: Pick}
  Pick: {type: branch, value: x, conditions: "{{ Start.http.params.c }}"}
""")
    assert [(d.line, d.col, d.code) for d in diagnostics if d.code == "wrong-type"] == [
        (4, 36, "wrong-type"), (9, 18, "wrong-type"), (11, 46, "wrong-type")]
