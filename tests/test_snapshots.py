"""`callflow test --update` snapshots: nothing minted per run, nothing tied to step numbers."""

from __future__ import annotations

from pathlib import Path

import yaml
from click.testing import CliRunner

from engine.cli import main

FLOW = """\
spec: callflow/v1
id: notify
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
    next: {answered: Note, busy: Done, no_answer: Done, failed: Done}
  Note:
    type: http_request
    method: POST
    url: "https://crm.example.com/calls/{{ Call.call_uuid }}"
    json: {call_uuid: "{{ Call.call_uuid }}", to: "{{ Call.to }}"}
    next: {success: Menu, failed: Menu}
  Menu:
    type: get_input
    prompt: Press 1.
    next: {input: Done}
  Done:
    type: hangup
"""

CASES = """\
flow: notify.yaml
cases:
  answered:
    payload: {to: "+12025550100"}
    callee: {result: answered, digits: "1"}
    http:
      Note: {status: 200, json: {ok: true}}
"""


def cli(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def _project(tmp_path: Path, flow: str = FLOW) -> Path:
    (tmp_path / "notify.yaml").write_text(flow)
    test = tmp_path / "notify.test.yaml"
    test.write_text(CASES)
    return test


def test_a_snapshot_with_minted_values_passes_on_the_next_run(tmp_path):
    test = _project(tmp_path)
    assert cli("test", "--update", str(test)).exit_code == 0
    again = cli("test", str(test))
    assert again.exit_code == 0, again.output
    expect = yaml.safe_load(test.read_text())["cases"]["answered"]["expect"]
    note = expect["requests"][1]
    assert note["url"] == "https://crm.example.com/calls/{uuid}"
    assert note["json"] == {"call_uuid": "{uuid}", "to": "+12025550100"}
    assert expect["documents"][0] == '<Response><Redirect method="POST">{callback:Note/redirect}</Redirect></Response>'
    assert "{callback:Menu/digits}" in expect["documents"][1]
    assert "/callbacks/" not in test.read_text()


def test_inserting_a_node_rewrites_no_document(tmp_path):
    test = _project(tmp_path)
    cli("test", "--update", str(test))
    before = yaml.safe_load(test.read_text())["cases"]["answered"]["expect"]["documents"]
    inserted = FLOW.replace("next: {success: Menu, failed: Menu}", "next: {success: Mark, failed: Mark}") + (
        "  Mark:\n    type: set_variables\n    values: {seen: 'yes'}\n    next: Menu\n")
    (tmp_path / "notify.yaml").write_text(inserted)
    result = cli("test", str(test))
    assert "documents" not in result.output, result.output  # only the path moved
    assert "got      [Start, Call, Note, Mark, Menu, Done]" in result.output
    cli("test", "--update", str(test))
    assert yaml.safe_load(test.read_text())["cases"]["answered"]["expect"]["documents"] == before


def test_old_snapshots_with_exact_callback_urls_still_pass(tmp_path):
    test = _project(tmp_path)
    exact = ('<Response><GetDigits action="http://127.0.0.1:8080/callbacks/test/3/digits" method="POST"'
             ' timeout="5" finishOnKey="#" redirect="true"><Speak voice="WOMAN" language="en-US">Press 1.</Speak>'
             '</GetDigits><Redirect method="POST">http://127.0.0.1:8080/callbacks/test/3/no_input</Redirect>'
             '</Response>')
    case = CASES.split("cases:\n")[1]
    redirect = '<Response><Redirect method="POST">http://127.0.0.1:8080/callbacks/test/2/redirect</Redirect></Response>'
    test.write_text(CASES + f"    expect:\n      documents: ['{redirect}', '{exact}', <Response><Hangup/></Response>]\n"
                    + case.replace("answered:", "contains:", 1)
                    + "    expect:\n      documents: [{contains: callbacks/test/2/redirect}, "
                      "{contains: callbacks/test/3/digits}, {contains: Hangup}]\n")
    result = cli("test", str(test))
    assert result.exit_code == 0, result.output
    assert "2 passed, 0 failed" in result.output
