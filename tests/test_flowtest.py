"""`callflow test`: flow test cases next to the flows, run on the embedded sandbox."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.cli import main
from engine.load.build import load_flow
from engine.local.flowtest import coverage, run_file, run_tests

ROOT = Path(__file__).resolve().parent.parent
FLOWS = ROOT / "flows"
FLOW_FILES = sorted(p for p in FLOWS.glob("*.yaml") if not p.name.endswith((".test.yaml", ".scenario.yaml")))

FLOW = """\
spec: callflow/v1
id: greet
nodes:
  Start:
    type: trigger
    payload: {from: "+12025551234"}
    required: [to]
    next: Call
  Call:
    type: call_out
    from: "{{ Start.http.params.from }}"
    to: "{{ Start.http.params.to }}"
    next: {answered: Menu, busy: Note, no_answer: Note, failed: Note}
  Menu:
    type: get_input
    prompt: Press 1.
    next: {input: Lookup}
  Lookup:
    type: http_request
    url: "https://example.com/x/{{ Menu.digits }}"
    next: {success: Say, failed: Sorry}
  Say:
    type: speak
    text: "It is {{ Lookup.body.state }}."
  Sorry:
    type: speak
    text: Sorry.
  Note:
    type: set_variables
    values: {why: "{{ Call.status }}"}
"""


def cli(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.fixture
def project(tmp_path):
    (tmp_path / "greet.yaml").write_text(FLOW)

    def write(test_text: str, name: str = "greet.test.yaml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(test_text))
        return path

    return write


# -- the bundled flows ---------------------------------------------------------------------------
def test_bundled_flow_tests_pass():
    lines = []
    assert run_tests([FLOWS], echo=lines.append) == 0, "\n".join(lines)
    assert re.fullmatch(r"\d+ passed, 0 failed", lines[-1])


@pytest.mark.parametrize("flow_path", FLOW_FILES, ids=[p.stem for p in FLOW_FILES])
def test_every_bundled_flow_covers_each_call_outcome(flow_path):
    test_path = flow_path.with_name(flow_path.stem + ".test.yaml")
    assert test_path.exists(), f"{flow_path.name} ships without {test_path.name}"
    fr = run_file(test_path)
    assert all(r.passed for r in fr.results), [(r.label, r.problems) for r in fr.results if not r.passed]
    flow = fr.flow
    taken = {(s["node"], s["outcome"]) for r in fr.results for s in r.record["steps"]}
    for name, spec in flow.nodes.items():
        if spec.type != "call_out":
            continue
        wanted = {"answered", "busy", "no_answer", "failed"}
        if "machine" in spec.next and spec.config.get("machine_detection"):
            wanted.add("machine")
        missing = {o for o in wanted if (name, o) not in taken}
        assert not missing, f"{flow_path.name}: no case takes {name}.{sorted(missing)}"
    # and every routed outcome that can happen is taken by some case (except an SMS refused)
    assert [m for m in coverage(flow, fr.results) if not m.endswith("failed") or "Missed" not in m] == []


# -- running cases ----------------------------------------------------------------------------------
def test_pass_and_fail_lines_and_the_closing_count(project):
    path = project("""\
        cases:
          ok:
            payload: {to: "+12025550100"}
            callee: busy
            expect: {status: completed, path: [Start, Call, Note], variables: {Note: {why: busy}}}
          wrong:
            payload: {to: "+12025550100"}
            callee: busy
            expect:
              path: [Start, Call, Menu]
              variables: {Note: {why: no-answer}}
    """)
    result = cli("test", str(path))
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert lines[0] == "PASS greet/ok"
    assert lines[1] == "FAIL greet/wrong: path: expected [Start, Call, Menu]"
    assert lines[2] == "          got      [Start, Call, Note]"
    assert lines[3] == '    variables.Note.why: expected "no-answer", got "busy"'
    assert lines[-1] == "1 passed, 1 failed"


def test_requests_match_as_subsets_in_order(project):
    path = project("""\
        cases:
          answered:
            payload: {to: "+12025550100"}
            callee: {result: answered, digits: "1"}
            http:
              Lookup: {status: 200, json: {state: ready}}
            expect:
              requests:
                - node: Call
                  json: {to: "+12025550100"}
                - {node: Lookup, method: GET, url: "https://example.com/x/1"}
              documents:
                - contains: [<GetDigits, Press 1.]
                - contains: "{callback:Lookup/redirect}"
                - <Response><Speak voice="WOMAN" language="en-US">It is ready.</Speak></Response>
          mismatch:
            payload: {to: "+12025550100"}
            callee: {result: answered, digits: "1"}
            http:
              Lookup: {status: 200, json: {state: ready}}
            expect:
              requests:
                - node: Call
                  json: {to: "+12025550199", ring_timeout: 30}
              documents:
                - contains: Press 2.
                - contains: "{callback:Lookup/redirect}"
                - <Response><Speak voice="WOMAN" language="en-US">It is done.</Speak></Response>
    """)
    lines = []
    assert run_tests([path], echo=lines.append) == 1
    assert lines[0] == "PASS greet/answered"
    text = "\n".join(lines)
    assert "requests: expected 1, got 2: Call POST https://api.plivo.com/v1/Account/" in text
    assert 'requests[0].json.to: expected "+12025550199", got "+12025550100"' in text
    assert 'requests[0].json.ring_timeout: expected 30, missing' in text
    assert "documents[0]: expected it to contain 'Press 2.'" in text
    assert "documents[2] differs:" in text
    assert '  -<Speak voice="WOMAN" language="en-US">It is done.</Speak>' in text
    assert '  +<Speak voice="WOMAN" language="en-US">It is ready.</Speak>' in text


def test_types_matter_in_subset_matching(project):
    path = project("""\
        cases:
          digits:
            payload: {to: "+12025550100"}
            callee: {result: answered, digits: "1"}
            http: {Lookup: {status: 200, json: {state: ready}}}
            expect: {variables: {Menu: {digits: 1}, Lookup: {status_code: 200}}}
    """)
    lines = []
    assert run_tests([path], echo=lines.append) == 1
    assert 'variables.Menu.digits: expected 1, got "1"' in "\n".join(lines)


def test_an_unmocked_http_request_fails_the_node_without_the_network(project):
    path = project("""\
        cases:
          unmocked:
            payload: {to: "+12025550100"}
            callee: {result: answered, digits: "1"}
            expect:
              path: [Start, Call, Menu, Lookup, Sorry]
              variables: {Lookup: {status_code: 0}}
    """)
    fr = run_file(path)
    assert [r.problems for r in fr.results] == [[]]
    step = next(s for s in fr.results[0].record["steps"] if s["node"] == "Lookup")
    assert step["outcome"] == "failed" and "no mocked response for node 'Lookup'" in step["error"]


def test_same_run_as_callflow_run(project, tmp_path):
    """Cases go through runner.LocalRun, the shell `callflow run` uses: same record."""
    import json

    from engine.local.run import LocalRun
    from engine.local.scenario import Behaviour, Scenario

    path = project("""\
        cases:
          busy:
            payload: {to: "+12025550100"}
            callee: busy
    """)
    fr = run_file(path)
    direct = LocalRun(load_flow(tmp_path / "greet.yaml"), Scenario(default=Behaviour(result="busy"))).run({"to": "+12025550100"}, run_id="test").record()
    mine = fr.results[0].record
    for key in ("status", "path", "documents"):
        assert mine[key] == direct[key]
    # the requests too, but for the ids the sandbox minted in each Call's answer
    def plain(requests):
        return [{**r, "response": {**r["response"], "body": None}} for r in requests]
    assert plain(mine["requests"]) == plain(direct["requests"])
    assert mine["requests"][0]["response"]["status"] == 201
    assert json.dumps(mine["steps"][1]["outcome"]) == '"busy"'


def test_missing_required_payload_fails_the_case(project):
    path = project("""\
        cases:
          nothing:
            payload: {}
            expect: {status: completed}
    """)
    lines = []
    assert run_tests([path], echo=lines.append) == 1
    assert lines[0] == "FAIL greet/nothing: the payload lacks required key(s) to"


# -- --update ---------------------------------------------------------------------------------------
def test_update_rewrites_failing_and_new_expectations_keeping_the_rest(project):
    path = project("""\
        # comments stay
        cases:
          new:
            payload: {to: "+12025550100"}   # so does this one
            callee: busy

          stale:
            payload: {to: "+12025550100"}
            callee: no_answer
            expect:
              status: failed       # wrong on purpose
              path: [Start]
            # a comment after the expectations
          good:
            payload: {to: "+12025550100"}
            callee: busy
            expect: {path: [Start, Call, Note]}   # hand-written subset: left alone
    """)
    lines = []
    assert run_tests([path], update=True, echo=lines.append) == 0
    assert lines == ["PASS greet/new (expectations updated)", "PASS greet/stale (expectations updated)",
                     "PASS greet/good", "3 passed, 0 failed"]
    text = path.read_text()
    assert "# comments stay" in text and "# so does this one" in text and "# a comment after" in text
    assert "expect: {path: [Start, Call, Note]}   # hand-written subset: left alone" in text
    assert "wrong on purpose" not in text
    data = yaml.safe_load(text)
    assert data["cases"]["new"]["expect"]["variables"]["Note"] == {"why": "busy"}
    assert data["cases"]["stale"]["expect"]["path"] == ["Start", "Call", "Note"]
    assert data["cases"]["stale"]["expect"]["variables"]["Call"]["status"] == "no-answer"
    assert "\n\n  stale:" in text  # the blank line between cases is kept
    out = []
    assert run_tests([path], echo=out.append) == 0, out


def test_update_snapshot_is_readable(project):
    path = project("""\
        cases:
          answered:
            payload: {to: "+12025550100"}
            callee: {result: answered, digits: "1"}
            http: {Lookup: {status: 200, json: {state: ready}}}
    """)
    run_tests([path], update=True, echo=lambda _: None)
    expect = path.read_text().split("expect:\n", 1)[1]
    assert expect.startswith("      status: completed\n      path: [Start, Call, Menu, Lookup, Say]\n")
    assert "answer_url" not in expect  # engine plumbing is left out of snapshots
    assert "call_uuid" not in expect and "request_uuid" not in expect  # differs on every run
    assert "        - node: Call\n          json:\n            from: '+12025551234'\n" in expect


def test_update_of_flow_style_cases_rewrites_the_file(project):
    path = project("""\
        cases: {busy: {payload: {to: "+12025550100"}, callee: busy}}
    """)
    assert run_tests([path], update=True, echo=lambda _: None) == 0
    assert yaml.safe_load(path.read_text())["cases"]["busy"]["expect"]["path"] == ["Start", "Call", "Note"]
    assert run_tests([path], echo=lambda _: None) == 0


# -- test files: discovery and diagnostics -------------------------------------------------------
def test_a_flow_path_finds_its_test_file_and_folders_are_searched(project, tmp_path):
    project("cases:\n  busy:\n    payload: {to: '+12025550100'}\n    callee: busy\n    expect: {status: completed}\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "other.yaml").write_text(FLOW.replace("id: greet", "id: other"))
    (tmp_path / "sub" / "other.test.yml").write_text("cases:\n  x:\n    payload: {to: '+12025550100'}\n"
                                                     "    expect: {status: completed}\n")
    for args in ([str(tmp_path / "greet.yaml")], [str(tmp_path)]):
        lines = []
        run_tests([Path(a) for a in args], echo=lines.append)
        assert "PASS greet/busy" in lines
    lines = []
    assert run_tests([tmp_path], echo=lines.append) == 0
    assert lines[-1] == "2 passed, 0 failed"


def test_nothing_to_run_is_an_error(tmp_path):
    (tmp_path / "lonely.yaml").write_text(FLOW)
    result = cli("test", str(tmp_path / "lonely.yaml"), str(tmp_path / "nope"))
    assert result.exit_code == 1
    assert "lonely.test.yaml not found" in result.output
    assert "nope: no such file or folder" in result.output
    empty = tmp_path / "empty"
    empty.mkdir()
    result = cli("test", str(empty))
    assert result.exit_code == 1 and "no test files found" in result.output


def test_invalid_test_files_give_positioned_diagnostics(project):
    path = project("""\
        flow: greet.yaml
        cases:
          bad name:
            payload: {to: [1]}
            callee: {result: maybe}
            http: {Nope: {status: 200}, Call: {status: 200}}
            expect: {status: done, documents: [3], colour: red}
    """)
    lines = []
    assert run_tests([path], echo=lines.append) == 1
    text = "\n".join(lines)
    p = str(path)
    assert f"{p}:3:3: error invalid-name" in text
    assert f"{p}:4:19: error wrong-type" in text
    assert f"{p}:5:22: error invalid-choice 'maybe' is not one of" in text
    assert f"{p}:7:22: error invalid-choice 'done' is not one of" in text
    assert f"{p}:7:40: error wrong-type" in text
    assert f"{p}:7:44: error unknown-key unknown key 'colour'" in text
    assert lines[-1] == "0 passed, 1 failed"


def test_mocks_must_name_http_request_nodes(project):
    path = project("""\
        cases:
          x:
            payload: {to: "+12025550100"}
            http: {Nope: {status: 200}, Call: {status: 200}}
    """)
    lines = []
    assert run_tests([path], echo=lines.append) == 1
    text = "\n".join(lines)
    assert ":4:12: error unknown-node http mocks node 'Nope', which is not a node of greet" in text
    assert ":4:33: error wrong-type http mocks only nodes that call HTTP APIs; 'Call' is a call_out node" in text


def test_a_broken_flow_fails_its_cases_with_its_diagnostics(project, tmp_path):
    (tmp_path / "greet.yaml").write_text(FLOW.replace("next: {input: Lookup}", "next: {input: Nowhere}"))
    path = project("cases:\n  x:\n    payload: {to: '+12025550100'}\n")
    lines = []
    assert run_tests([path], echo=lines.append) == 1
    assert any("error unknown-node next 'input' goes to 'Nowhere'" in line for line in lines)
    assert "FAIL greet.test.yaml/x: the flow does not load" in lines


BUNDLED_TESTS = [p.read_text() for p in sorted(FLOWS.glob("*.test.yaml"))]


@pytest.fixture(scope="module")
def flows_copy(tmp_path_factory):
    import shutil

    where = tmp_path_factory.mktemp("flows")
    for f in FLOWS.glob("*.yaml"):
        shutil.copy(f, where / f.name)
    return where


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(text=st.sampled_from(BUNDLED_TESTS),
       edits=st.lists(st.tuples(st.integers(0, 10**6), st.sampled_from(["drop", "dup", "junk", "indent"])),
                      max_size=4),
       junk=st.text(max_size=8))
def test_mutated_test_files_never_raise(flows_copy, text, edits, junk):
    lines = text.splitlines(keepends=True)
    for where, action in edits:
        if not lines:
            break
        i = where % len(lines)
        if action == "drop":
            del lines[i]
        elif action == "dup":
            lines.insert(i, lines[i])
        elif action == "junk":
            lines[i] = junk + lines[i]
        else:
            lines[i] = "  " + lines[i]
    path = flows_copy / "mutant.test.yaml"
    path.write_text("".join(lines))
    fr = run_file(path)  # diagnostics or results, never an exception
    assert fr.results
    assert all(d.line >= 1 and d.col >= 1 for d in fr.diagnostics)
