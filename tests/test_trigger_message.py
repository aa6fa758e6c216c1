"""The trigger's `message` outcome: a run started by an incoming SMS (nodes/trigger.py), the
executor's start with no call up, and what validation says of `Start.message.*` reads."""

from __future__ import annotations

import pytest
from conftest import flow_text

from engine.errors import HttpError
from engine.events import InboundCall, InboundMessage, Request, Trigger
from engine.executor import Executor
from engine.load.build import check_text
from engine.local.incoming import message_params
from engine.local.run import LocalRun
from engine.local.sandbox_message import parse_message
from engine.node import Next, RunEnvironment

SMS = message_params("+12025550123", "+12025551234", "hours?", "m-1")

REPLY = """\
Start:
  type: trigger
  next: {message: Reply}
Reply:
  type: send_sms
  from: "{{ Start.message.to }}"
  to: "{{ Start.message.from }}"
  text: "You asked: {{ Start.message.text }}"
"""


def _diagnostics(body: str) -> list:
    _, diagnostics = check_text(flow_text(body), "t.yaml")
    return diagnostics


def test_start_by_message_outputs_the_message(make_flow):
    spec = make_flow(REPLY).trigger_spec
    assert spec.node_type.start(spec.config, InboundMessage(SMS)) == Next(
        "message", {"message": {"from": "+12025550123", "to": "+12025551234", "text": "hours?", "message_uuid": "m-1"}})
    mms = {"From": "+1", "To": "+2", "Type": "mms", "Body": "a photo", "MessageUUID": "m-2"}
    assert spec.node_type.start(spec.config, InboundMessage(mms)).outputs["message"]["text"] == "a photo"


def test_start_outcome_and_target(make_flow):
    flow = make_flow(REPLY)
    assert flow.trigger_spec.node_type.start_outcome(InboundMessage) == "message"
    assert flow.start_target(InboundMessage) == "Reply"
    assert flow.start_target(InboundCall) is None and flow.start_target(Trigger) is None


def test_a_message_run_has_no_call_and_sends_the_reply(make_flow):
    flow = make_flow(REPLY)
    executor = Executor(flow, RunEnvironment(public_url="https://cf.example", api_url="https://api.example"))
    state = executor.new_run("r1")
    effects = executor.advance(state, InboundMessage(SMS))
    assert state.call is None and state.path == ["Start", "Reply"]
    [request] = [e for e in effects if isinstance(e, Request)]
    assert request.provider and request.url.endswith("/Message/")
    assert request.json == {"src": "+12025551234", "dst": "+12025550123", "text": "You asked: hours?"}


def test_local_run_by_message_sends_the_sms(make_flow):
    runner = LocalRun(make_flow(REPLY))
    state = runner.run_message("+12025550123", "+12025551234", "hours?")
    assert state.status == "completed" and state.call is None
    [sent] = runner.sandbox.messages
    assert sent["request"]["dst"] == "+12025550123" and sent["request"]["text"] == "You asked: hours?"
    assert state.variables["Start"]["message"]["message_uuid"]  # minted, as Plivo's


def test_in_call_nodes_after_message_fail_validation():
    diagnostics = _diagnostics("Start:\n  type: trigger\n  next: {message: Say}\nSay:\n  type: speak\n  text: hi\n")
    assert [d.code for d in diagnostics] == ["needs-call"]
    assert "via Start.message" in diagnostics[0].message


def test_reading_the_message_where_no_message_starts_the_run_is_never_set():
    [d] = _diagnostics("""\
        Start:
          type: trigger
          next: {http: Note, message: Reply}
        Reply:
          type: set_variables
          values: {t: "{{ Start.message.text }}"}
        Note:
          type: set_variables
          values: {t: "{{ Start.message.text }}"}
        """)
    assert d.code == "never-set" and d.line == 13  # Note's read
    assert "Start.message is set only on runs started by an incoming message" in d.message
    assert d.message.endswith("runs started by a run request read their payload: {{ Start.http.params.<key> }}")


def test_never_set_on_the_message_path_suggests_the_message():
    diagnostics = _diagnostics("""\
        Start:
          type: trigger
          next: {message: Reply}
        Reply:
          type: set_variables
          values:
            a: "{{ Start.http.params.text }}"
            b: "{{ Start.call.from }}"
            c: "{{ Start.http.params.order }}"
        """)
    hints = [d.message.partition("; ")[2] for d in diagnostics if d.code == "never-set"]
    assert hints == [
        "runs started by an incoming message have no payload (not even the trigger's static `payload`): "
        "read the message instead, {{ Start.message.text }}",
        "runs started by an incoming message read it: {{ Start.message.from }}",
        "runs started by an incoming message have no payload (not even the trigger's static `payload`): "
        "read the message instead, {{ Start.message.text }}, {{ Start.message.from }} or {{ Start.message.to }}",
    ]


def test_a_node_both_entries_reach_must_guard_the_read():
    body = """\
        Start:
          type: trigger
          next: {call: Log, message: Log}
        Log:
          type: set_variables
          values: {who: "%s"}
        """
    [d] = _diagnostics(body % "{{ Start.message.from }}")
    assert d.code == "maybe-unset" and "also reached from the trigger's 'call' outcome" in d.message
    guarded = "{% if Start.message %}{{ Start.message.from }}{% else %}{{ Start.call.from }}{% endif %}"
    assert _diagnostics(body % guarded) == []


def test_a_flow_test_case_starts_by_message_and_its_mistakes_are_diagnostics(tmp_path):
    from engine.local.flowtest import run_tests

    (tmp_path / "f.yaml").write_text(flow_text(REPLY))
    (tmp_path / "f.test.yaml").write_text(
        "flow: f.yaml\ncases:\n"
        "  ok:\n    message: {from: '+12025550123', text: hours?}\n"
        "    expect: {status: completed, path: [Start, Reply],"
        " requests: [{node: Reply, json: {text: 'You asked: hours?', src: '+12025551234'}}]}\n"
        "  wrong:\n    message: {from: '+12025550123', text: hours?}\n"
        "    expect: {requests: [{node: Reply, json: {text: 'You asked: days?'}}]}\n")
    lines: list[str] = []
    assert run_tests([tmp_path / "f.test.yaml"], echo=lines.append) == 1
    assert lines[0] == "PASS t/ok" and lines[1].startswith("FAIL t/wrong"), lines
    (tmp_path / "f.test.yaml").write_text(
        "flow: f.yaml\ncases:\n  bad:\n    message: {from: '12025550123', txt: hi}\n"
        "    call: {from: '+12025550123', to: '+12025551234'}\n")
    lines = []
    assert run_tests([tmp_path / "f.test.yaml"], echo=lines.append) == 1
    shown = "\n".join(lines)
    assert "f.test.yaml:4:21: error invalid-phone message.from is the sender's E.164 number" in shown
    assert "unknown key 'txt'" in shown and "did you mean 'text'" in shown, shown
    assert "an incoming call or an incoming message, not both" in shown


def test_the_sandbox_reads_an_sms_request_and_finds_its_message_url():
    numbers = {"+12025551234": "sms-auto-reply", "+12025551235": "https://app.example.com/answer"}
    m = parse_message({"from": "+12025550123", "text": "hi"}, numbers, "http://127.0.0.1:8080/")
    assert (m.sender, m.number, m.text) == ("+12025550123", "+12025551234", "hi")
    assert m.url == "http://127.0.0.1:8080/callbacks/inbound-message/sms-auto-reply" and m.message_uuid
    given = parse_message({"from": "+12025550123", "url": "https://x.example/sms", "message_uuid": "M1"}, {})
    assert (given.url, given.message_uuid, given.text) == ("https://x.example/sms", "M1", "")
    for body, says in (({"from": "+12025550123"}, "only serve --sandbox does"),  # no app URL for the flow id
                       ({"from": "+12025550123", "to": "+12025551235"}, "maps to a flow id"),
                       ({"from": "12025550123", "url": "https://x.example"}, "write it as '+12025550123'"),
                       ({"from": "+12025550123", "url": "https://x.example", "text": "x" * 1601}, "1600"),
                       ({"from": "+12025550123", "url": "https://x.example", "txt": "hi"}, "did you mean 'text'"),
                       ([], "a JSON object")):
        with pytest.raises(HttpError) as e:
            parse_message(body, numbers)
        assert e.value.status == 400 and says in e.value.message, (body, e.value.message)
